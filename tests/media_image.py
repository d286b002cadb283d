"""Portraits drawn with numpy/OpenCV for tests: a face-like drawing at a known place, a circle, file savers.

The drawn face is simple shapes (skin-shaded oval, hair, brows, eyes with
irises, nose, lips), but it has the light/dark layout of a real frontal face,
so OpenCV's Haar cascade finds it where that detector exists. Every function
returns where it drew things, so a test can assert where they land.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image


@dataclass(frozen=True)
class DrawnPortrait:
    image: np.ndarray  # uint8 [H, W, 3] RGB
    face_center: tuple[float, float]  # centre of the skin oval (x, y)
    face_size: tuple[float, float]  # width, height of the skin oval
    mouth_center: tuple[float, float]  # the line between the lips (x, y)
    mouth_half_width: float


def draw_face_portrait(
    width: int = 400,
    height: int = 600,
    *,
    face_center: tuple[float, float] | None = None,
    face_width: float | None = None,
    noise: float = 0.0,
    seed: int = 0,
) -> DrawnPortrait:
    """A head-and-shoulders drawing: face centred at ``face_center`` (default: upper-middle), ``face_width`` wide."""
    cx, cy = face_center if face_center is not None else (width / 2.0, height * 0.42)
    fw = float(face_width) if face_width is not None else 0.45 * min(width, height)
    fh = fw * 1.3
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.stack([70 + 40 * yy / height, 90 + 30 * xx / width, np.full_like(xx, 120.0)], axis=-1)
    img = np.ascontiguousarray(img)

    def pt(x: float, y: float) -> tuple[int, int]:
        return int(round(x)), int(round(y))

    def ax(a: float, b: float) -> tuple[int, int]:
        return max(1, int(round(a))), max(1, int(round(b)))

    # shoulders, neck, hair
    cv2.ellipse(img, pt(cx, cy + fh * 1.45), ax(fw * 1.5, fh * 0.8), 0, 180, 360, (60, 70, 110), -1, cv2.LINE_AA)
    cv2.rectangle(img, pt(cx - fw * 1.5, cy + fh * 1.45), pt(cx + fw * 1.5, height + fh * 2), (60, 70, 110), -1)
    cv2.rectangle(img, pt(cx - fw * 0.22, cy + fh * 0.3), pt(cx + fw * 0.22, cy + fh * 0.8), (190, 140, 115), -1)
    cv2.ellipse(img, pt(cx, cy - fh * 0.1), ax(fw * 0.56, fh * 0.58), 0, 0, 360, (50, 35, 25), -1, cv2.LINE_AA)
    # the skin oval, shaded darker towards its sides
    face = np.zeros((height, width), np.float32)
    oval_c = (cx, cy + fh * 0.05)
    cv2.ellipse(face, pt(*oval_c), ax(fw * 0.5, fh * 0.5), 0, 0, 360, 1.0, -1, cv2.LINE_AA)
    shade = 1.0 - 0.25 * ((xx - cx) / (fw * 0.5)) ** 2
    skin = np.stack([225 * shade, 175 * shade, 150 * shade], axis=-1)
    img = np.ascontiguousarray(img * (1 - face[..., None]) + skin * face[..., None])
    # brows, eyes
    for side in (-1, 1):
        ex, ey = cx + side * fw * 0.2, cy - fh * 0.05
        cv2.ellipse(img, pt(ex, ey - fh * 0.1), ax(fw * 0.12, fh * 0.025), 0, 180, 360, (60, 40, 30), max(1, round(fw / 45)), cv2.LINE_AA)
        cv2.ellipse(img, pt(ex, ey), ax(fw * 0.1, fh * 0.04), 0, 0, 360, (235, 235, 230), -1, cv2.LINE_AA)
        cv2.circle(img, pt(ex, ey), max(1, round(fh * 0.035)), (70, 50, 40), -1, cv2.LINE_AA)
        cv2.circle(img, pt(ex, ey), max(1, round(fh * 0.015)), (10, 10, 10), -1, cv2.LINE_AA)
    # nose
    line = max(1, round(fw / 60))
    cv2.line(img, pt(cx + fw * 0.02, cy), pt(cx + fw * 0.05, cy + fh * 0.15), (180, 125, 105), line, cv2.LINE_AA)
    cv2.ellipse(img, pt(cx, cy + fh * 0.17), ax(fw * 0.08, fh * 0.03), 0, 0, 180, (170, 115, 100), line, cv2.LINE_AA)
    # lips and the line between them
    mouth = (cx, cy + fh * 0.3)
    mouth_hw = fw * 0.17
    cv2.ellipse(img, pt(*mouth), ax(mouth_hw, fh * 0.04), 0, 0, 360, (170, 70, 75), -1, cv2.LINE_AA)
    cv2.line(img, pt(cx - mouth_hw, mouth[1]), pt(cx + mouth_hw, mouth[1]), (100, 40, 45), max(1, round(fw / 90)), cv2.LINE_AA)
    img = cv2.GaussianBlur(img, (0, 0), max(0.5, fw / 120))
    if noise > 0:
        img = img + np.random.default_rng(seed).normal(0.0, noise, img.shape).astype(np.float32)
    image = np.clip(img + 0.5, 0, 255).astype(np.uint8)
    return DrawnPortrait(image=image, face_center=oval_c, face_size=(fw, fh), mouth_center=mouth, mouth_half_width=mouth_hw)


def draw_circle_image(width: int, height: int, center: tuple[float, float], radius: float) -> np.ndarray:
    """A white disc on a dark, gently graded background (to check that framing never stretches)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.stack([30 + 20 * yy / height, 30 + 20 * xx / width, np.full_like(xx, 40.0)], axis=-1)
    img = np.ascontiguousarray(img.astype(np.uint8))
    cv2.circle(img, (int(round(center[0])), int(round(center[1]))), int(round(radius)), (255, 255, 255), -1, cv2.LINE_AA)
    return img


def disc_extent(image: np.ndarray, threshold: int = 160) -> tuple[float, float, float, float]:
    """(centre x, centre y, width, height) of the bright pixels in ``image``."""
    mask = image.mean(axis=2) > threshold
    ys, xs = np.nonzero(mask)
    return (xs.min() + xs.max()) / 2.0, (ys.min() + ys.max()) / 2.0, float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)


def save_image(
    image: np.ndarray,
    path: Path,
    *,
    quality: int | None = None,
    exif_orientation: int | None = None,
    mode: str | None = None,
    alpha: np.ndarray | None = None,
) -> Path:
    """Save RGB ``image`` with PIL (format from the suffix), optionally as ``mode``, with an alpha plane or an EXIF orientation tag."""
    path = Path(path)
    im = Image.fromarray(image, "RGB")
    if alpha is not None:
        im.putalpha(Image.fromarray(alpha.astype(np.uint8), "L"))
    if mode is not None and mode != im.mode:
        im = im.convert(mode)
    kwargs: dict = {}
    if quality is not None:
        kwargs["quality"] = quality
    if exif_orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        kwargs["exif"] = exif.tobytes()
    im.save(path, **kwargs)
    return path


def astronaut_or_skip() -> np.ndarray:
    """The bundled demo portrait: a public-domain NASA photo of Eileen Collins (512×512 RGB, see configs/demo/README.md)."""
    from PIL import Image

    path = Path(__file__).resolve().parents[1] / "configs" / "demo" / "portrait.jpg"
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))
