"""Portrait ingest: read any image PIL can, and frame it for the output like a talking head.

``prepare_portrait`` reads the file once, at the boundary (EXIF orientation
applied; alpha, grey, palette and CMYK turned into RGB), finds the largest
frontal face with OpenCV's Haar cascade, and crops to the output aspect with
the face centred horizontally and its centre at ``FACE_CENTER_Y_FRAC`` of the
height, so there is headroom above it. It never stretches: the crop window has
exactly the output aspect and is resized uniformly. Where the window runs past
the image (the face is near an edge, or fills the photo), the missing strip is
filled with a blurred extension of the image's own edge, never black bars.

Problems that do not stop a run (small image, no face, heavy JPEG compression)
come back as ``warnings``; a missing or unreadable file is a ``MediaError``.

The Haar cascades ship inside opencv-python-headless 4.x; the 5.x wheels dropped
them (and ``cv2.CascadeClassifier``). There, ``detect_face`` finds nothing and
the portrait is framed on the image centre with a warning that says so.
"""

from __future__ import annotations

import functools
import os
import warnings as _py_warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from orchestrator.errors import MediaError, not_a_file

MIN_SHORT_SIDE_PX = 512  # below this the video looks soft at 1080×1920
MAX_USEFUL_SIDE_PX = 2000  # the tallest output (1920) needs no more; larger only costs memory
MIN_JPEG_QUALITY = 60  # estimated libjpeg quality below which blocking shows after upscaling
FACE_CENTER_Y_FRAC = 0.40  # face-box centre as a fraction of the frame height: eyes near the upper third
FACE_CENTER_X_TOLERANCE = 0.10  # off-centre by up to this (of the width) before padding is used to fix it
FACE_CENTER_Y_TOLERANCE = 0.08  # likewise above/below FACE_CENTER_Y_FRAC (of the height)
FACE_HEIGHT_FRAC = 0.30  # a talking head's face box fills about this much of the frame height
MIN_FACE_HEIGHT_FRAC = 0.18  # smaller than this (a full-body shot): zoom in, if the resolution allows
MAX_FACE_HEIGHT_FRAC = 0.50  # larger than this (an extreme close-up): zoom out, padding the edges
MAX_PAD_FRAC = 0.15  # at most this much of the window, per side, may be padding
TRANSPARENT_BACKGROUND = (235, 235, 235)  # what shows through transparent pixels
_DETECT_MAX_SIDE_PX = 640  # faces are found on a copy at most this large: fast, and plenty for a portrait
_HAAR_CASCADE = "haarcascade_frontalface_default.xml"

# The IJG (libjpeg) luminance and chrominance tables at quality 50 (Annex K of the JPEG standard).
_IJG_LUMA = np.array([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
], dtype=np.float64)
_IJG_CHROMA = np.array([
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99,
    24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99, 99, 99, 99,
] + [99] * 32, dtype=np.float64)

Box = tuple[int, int, int, int]  # x, y, w, h


@dataclass(frozen=True)
class PreparedPortrait:
    image: np.ndarray  # uint8 [height, width, 3]: cropped/padded to the aspect, centred on the face, resized to width×height
    face_box: Box | None  # x, y, w, h in ``image`` coordinates (None: no face found)
    source_size: tuple[int, int]  # (width, height) of the file as displayed (after EXIF orientation)
    warnings: tuple[str, ...]


def check_portrait(path: Path) -> None:
    """Raise the same MediaError ``prepare_portrait`` would for a missing, unreadable or undecodable file."""
    _read_image(Path(path), [])  # its warnings come when the portrait step runs


def prepare_portrait(path: Path, width: int, height: int) -> PreparedPortrait:
    """Read ``path`` and frame it at ``width``×``height`` around the face (see the module docstring)."""
    # 1. check inputs
    path = Path(path)
    if int(width) != width or int(height) != height or width < 2 or height < 2:
        raise ValueError(f"`width` and `height` must be integers ≥ 2, got {width} and {height}")
    width, height = int(width), int(height)

    # 2. read the file once: pixels, orientation, compression
    warnings: list[str] = []
    rgb, jpeg_quality, had_alpha = _read_image(path, warnings)
    src_h, src_w = rgb.shape[:2]
    if min(src_w, src_h) < MIN_SHORT_SIDE_PX:
        warnings.append(
            f"portrait {path.name} is small ({src_w}×{src_h} px, shorter side under {MIN_SHORT_SIDE_PX} px): "
            f"the video will look soft; use a larger image"
        )
    if jpeg_quality is not None and jpeg_quality < MIN_JPEG_QUALITY:
        warnings.append(
            f"portrait {path.name} is heavily JPEG-compressed (estimated quality {jpeg_quality}, below {MIN_JPEG_QUALITY}): "
            f"compression blocks will show in the video; use the original photo or a PNG"
        )
    if had_alpha:
        warnings.append(f"portrait {path.name} has transparent pixels; they are shown as light grey")

    # 3. find the face
    face = detect_face(rgb)
    if face is None:
        reason = face_detector_unavailable_reason()
        if reason:
            warnings.append(f"no face detector available ({reason}); portrait {path.name} is framed on the image centre")
        else:
            warnings.append(
                f"no face found in portrait {path.name}; framed on the image centre "
                f"(use a front-facing photo with the whole face visible)"
            )

    # 4. choose the crop window (source pixels; it may run past the image)
    x0, y0, win_w, win_h = _crop_window(src_w, src_h, width, height, face)

    # 5. cut it out, pad what lies outside with a blurred edge, resize uniformly
    image, pad_frac, (ix0, iy0, iw, ih) = _render_window(rgb, x0, y0, win_w, win_h, width, height)
    if pad_frac > 0.01:
        warnings.append(
            f"portrait {path.name} does not reach every edge of the frame around the face; "
            f"{pad_frac:.0%} of the frame is a blurred extension of its edges (a photo with more space around the head avoids this)"
        )

    face_box = None
    if face is not None:
        sx, sy = width / iw, height / ih
        fx, fy, fw, fh = face
        bx0 = max(0, int(round((fx - ix0) * sx)))
        by0 = max(0, int(round((fy - iy0) * sy)))
        bx1 = min(width, int(round((fx + fw - ix0) * sx)))
        by1 = min(height, int(round((fy + fh - iy0) * sy)))
        if bx1 > bx0 and by1 > by0:
            face_box = (bx0, by0, bx1 - bx0, by1 - by0)
    return PreparedPortrait(image=image, face_box=face_box, source_size=(src_w, src_h), warnings=tuple(warnings))


# ------------------------------------------------------------------------------------
# reading
# ------------------------------------------------------------------------------------

def _read_image(path: Path, warnings: list[str]) -> tuple[np.ndarray, int | None, bool]:
    """(RGB uint8 pixels upright, estimated JPEG quality or None, whether it had transparency).

    PIL's DecompressionBombWarning (a very large image) becomes one of ``warnings``.
    """
    fix = "check `portrait:` in the project file"
    problem = not_a_file(path)
    if problem == "does not exist":
        raise MediaError(f"portrait file is missing: {path} ({fix})")
    if problem:
        raise MediaError(f"portrait {path} {problem} ({fix})")
    if not os.access(path, os.R_OK):
        raise MediaError(f"portrait file is not readable: {path} (check its permissions)")
    try:
        with _py_warnings.catch_warnings(record=True) as caught:
            _py_warnings.simplefilter("always", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                im.load()
                jpeg_quality = estimate_jpeg_quality(im)
                im = ImageOps.exif_transpose(im)
                rgb, had_alpha = _to_rgb(im)
        for w in caught:
            if issubclass(w.category, Image.DecompressionBombWarning):
                warnings.append(
                    f"portrait {path.name} is very large ({rgb.shape[1]}×{rgb.shape[0]}, {rgb.shape[0] * rgb.shape[1] / 1e6:.0f} MP): "
                    f"reading it takes a lot of memory and time, and the video is {MAX_USEFUL_SIDE_PX} px tall at most; "
                    f"downscale it to about {MAX_USEFUL_SIDE_PX} px on the long side"
                )
            else:  # anything else PIL says about the file goes on as it came
                _py_warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    except Image.DecompressionBombError:
        raise MediaError(too_many_pixels(path)) from None
    except UnidentifiedImageError as exc:
        raise MediaError(
            f"cannot read portrait {path}: not an image this build can decode ({exc}); save it as PNG, JPEG or WebP"
        ) from None
    except (OSError, ValueError, SyntaxError) as exc:
        # PIL reports truncated and corrupt files as OSError / SyntaxError.
        raise MediaError(f"cannot read portrait {path}: the file is damaged or truncated ({exc}); export it again") from None
    if rgb.shape[0] < 2 or rgb.shape[1] < 2:
        raise MediaError(f"portrait {path} is only {rgb.shape[1]}×{rgb.shape[0]} px; use a real photo")
    return rgb, jpeg_quality, had_alpha


def too_many_pixels(path: Path) -> str:
    """The sentence for an image over PIL's decompression-bomb limit: its size, the limit, and to downscale."""
    limit = 2 * (Image.MAX_IMAGE_PIXELS or 0)
    size = ""
    saved = Image.MAX_IMAGE_PIXELS
    try:
        Image.MAX_IMAGE_PIXELS = None  # only to read the header's size; nothing is decoded
        with Image.open(path) as im:
            size = f"{im.width}×{im.height} = {im.width * im.height / 1e6:.0f} MP, "
    except Exception:  # noqa: BLE001 - the size is only a nicety in the message
        pass
    finally:
        Image.MAX_IMAGE_PIXELS = saved
    return (
        f"portrait {path} has too many pixels ({size}over the limit of {limit / 1e6:.0f} MP that longtake decodes, "
        f"a guard against images that would fill the memory); downscale it to about {MAX_USEFUL_SIDE_PX} px "
        f"on the long side and save it again"
    )


def _to_rgb(im: Image.Image) -> tuple[np.ndarray, bool]:
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        grey = np.asarray(im, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") else max(float(grey.max()), 1.0)
        grey = np.clip(grey / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(grey[..., None], 3, axis=2)), False
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode in ("P", "L", "RGB") and "transparency" in im.info)
    if has_alpha:
        rgba = np.asarray(im.convert("RGBA"), dtype=np.float32)
        alpha = rgba[..., 3:4] / 255.0
        if float(alpha.min()) < 1.0:
            background = np.array(TRANSPARENT_BACKGROUND, dtype=np.float32)
            rgb = rgba[..., :3] * alpha + background * (1.0 - alpha)
            return np.clip(rgb + 0.5, 0, 255).astype(np.uint8), True
        return np.ascontiguousarray(rgba[..., :3].astype(np.uint8)), False
    return np.ascontiguousarray(np.asarray(im.convert("RGB"), dtype=np.uint8)), False


def estimate_jpeg_quality(im: Image.Image) -> int | None:
    """The libjpeg quality (1…100) whose standard tables best match ``im``'s, or None if it is not a JPEG.

    Tables are compared sorted, so the estimate does not depend on whether a
    decoder reports them in zig-zag or natural order; an encoder with its own
    tables (cameras, Photoshop) still lands near the equivalent quality.
    """
    tables = getattr(im, "quantization", None)
    if not tables:
        return None
    ordered = [np.sort(np.asarray(tables[k], dtype=np.float64)) for k in sorted(tables)][:2]
    if any(table.size != 64 or table.min() < 1 for table in ordered):
        return None
    refs = [np.sort(_IJG_LUMA), np.sort(_IJG_CHROMA)][: len(ordered)]
    best_q, best_err = None, np.inf
    for q in range(1, 101):
        scale = 5000.0 / q if q < 50 else 200.0 - 2.0 * q
        err = 0.0
        for table, ref in zip(ordered, refs, strict=True):
            expected = np.clip(np.floor((ref * scale + 50.0) / 100.0), 1, 255)
            err += float(np.abs(np.log(table) - np.log(expected)).sum())
        if err < best_err:
            best_q, best_err = q, err
    return best_q


# ------------------------------------------------------------------------------------
# face detection
# ------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _cascade() -> "cv2.CascadeClassifier | None":
    if not hasattr(cv2, "CascadeClassifier"):
        return None
    data = getattr(cv2, "data", None)
    folder = getattr(data, "haarcascades", None) if data is not None else None
    if not folder:
        return None
    path = os.path.join(folder, _HAAR_CASCADE)
    if not os.path.isfile(path):
        return None
    cascade = cv2.CascadeClassifier(path)
    return None if cascade.empty() else cascade


def face_detector_unavailable_reason() -> str | None:
    """None when the Haar face detector works here, else why not (with the fix)."""
    if _cascade() is not None:
        return None
    return (
        f"OpenCV {cv2.__version__} ships no Haar face cascade (OpenCV 5 dropped them); "
        f"install opencv-python-headless<5 to frame on the face"
    )


def detect_faces(rgb: np.ndarray) -> list[Box]:
    """Every frontal face in ``rgb`` (uint8 [H, W, 3]) as (x, y, w, h), largest first; [] if none or no detector."""
    cascade = _cascade()
    if cascade is None:
        return []
    h, w = rgb.shape[:2]
    scale = min(1.0, _DETECT_MAX_SIDE_PX / max(h, w))
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    if scale < 1.0:
        grey = cv2.resize(grey, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    grey = cv2.equalizeHist(grey)
    min_side = max(20, int(0.08 * min(grey.shape)))
    found = cascade.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5, minSize=(min_side, min_side))
    boxes = [tuple(int(round(v / scale)) for v in box) for box in np.asarray(found).reshape(-1, 4)]
    boxes.sort(key=lambda b: b[2] * b[3], reverse=True)
    return boxes  # type: ignore[return-value]


def detect_face(rgb: np.ndarray) -> Box | None:
    """The largest frontal face in ``rgb``, or None."""
    faces = detect_faces(rgb)
    return faces[0] if faces else None


# ------------------------------------------------------------------------------------
# framing
# ------------------------------------------------------------------------------------

def _crop_window(src_w: int, src_h: int, out_w: int, out_h: int, face: Box | None) -> tuple[float, float, float, float]:
    """(x0, y0, w, h) in source pixels, with w/h exactly out_w/out_h; may extend past the image by padding."""
    aspect = out_w / out_h
    # The largest window of the output aspect that fits inside the image.
    if src_w / src_h > aspect:
        fit_h = float(src_h)
    else:
        fit_h = src_w / aspect
    if face is None:
        win_h = fit_h
        win_w = win_h * aspect
        return (src_w - win_w) / 2.0, (src_h - win_h) / 2.0, win_w, win_h

    fx, fy, fw, fh = face
    win_h = fit_h
    if fh / win_h < MIN_FACE_HEIGHT_FRAC:
        # Zoom in towards a talking-head size, but never below the output's own resolution.
        win_h = min(fit_h, max(fh / FACE_HEIGHT_FRAC, float(out_h)))
    elif fh / win_h > MAX_FACE_HEIGHT_FRAC:
        # An extreme close-up: zoom out so the chin and some headroom fit, padding at most MAX_PAD_FRAC a side.
        win_h = min(fh / MAX_FACE_HEIGHT_FRAC, fit_h / (1.0 - 2.0 * MAX_PAD_FRAC))
    win_w = win_h * aspect

    cx, cy = fx + fw / 2.0, fy + fh / 2.0
    x0 = _place(cx, 0.5, FACE_CENTER_X_TOLERANCE, win_w, src_w)
    y0 = _place(cy, FACE_CENTER_Y_FRAC, FACE_CENTER_Y_TOLERANCE, win_h, src_h)
    return x0, y0, win_w, win_h


def _place(center: float, target_frac: float, tolerance_frac: float, size: float, limit: int) -> float:
    """Start of a window of ``size`` along an axis of the image ``[0, limit)``, with ``center`` at ``target_frac`` of it.

    Inside the image when that keeps ``center`` within ``tolerance_frac`` of the
    target; otherwise only as far past the edge as needed to get it there, and
    never more than ``MAX_PAD_FRAC`` of the window.
    """
    lo, hi = 0.0, limit - size
    if lo > hi:  # the window is larger than the image on this axis (a zoomed-out close-up): pad both sides evenly
        return (limit - size) / 2.0
    start = min(max(center - target_frac * size, lo), hi)
    # Still too far from the target: overhang the edge just enough to reach the tolerance band.
    near = min(max(start, center - (target_frac + tolerance_frac) * size), center - (target_frac - tolerance_frac) * size)
    pad = MAX_PAD_FRAC * size
    return min(max(near, lo - pad), hi + pad)


def _render_window(
    rgb: np.ndarray, x0: float, y0: float, win_w: float, win_h: float, out_w: int, out_h: int
) -> tuple[np.ndarray, float, tuple[int, int, int, int]]:
    """Cut the window out of ``rgb``, pad outside parts with a blurred edge, resize to out_w×out_h.

    Returns the image, the fraction of its area that is padding, and the whole-pixel window used (x, y, w, h).
    """
    src_h, src_w = rgb.shape[:2]
    ix0, iy0 = int(np.floor(x0)), int(np.floor(y0))
    iw = max(1, int(round(win_w)))
    ih = max(1, int(round(win_h)))
    ix1, iy1 = ix0 + iw, iy0 + ih
    left, top = max(0, -ix0), max(0, -iy0)
    right, bottom = max(0, ix1 - src_w), max(0, iy1 - src_h)
    crop = rgb[max(0, iy0):min(src_h, iy1), max(0, ix0):min(src_w, ix1)]
    pad_frac = 0.0
    if left or top or right or bottom:
        crop = _pad_blurred(crop, top, bottom, left, right)
        pad_frac = 1.0 - (crop.shape[0] - top - bottom) * (crop.shape[1] - left - right) / float(crop.shape[0] * crop.shape[1])
    down = iw >= out_w
    image = cv2.resize(crop, (out_w, out_h), interpolation=cv2.INTER_AREA if down else cv2.INTER_CUBIC)
    return np.ascontiguousarray(image), pad_frac, (ix0, iy0, iw, ih)


def _pad_blurred(crop: np.ndarray, top: int, bottom: int, left: int, right: int) -> np.ndarray:
    """Extend ``crop`` by the given margins with its own edge, blurred more the further from the image."""
    padded = cv2.copyMakeBorder(crop, top, bottom, left, right, cv2.BORDER_REPLICATE)
    h, w = padded.shape[:2]
    # Blur a small copy (cheap at any size), then blend it in with a feathered mask.
    small_scale = min(1.0, 256.0 / max(h, w))
    small = cv2.resize(padded, (max(1, round(w * small_scale)), max(1, round(h * small_scale))), interpolation=cv2.INTER_AREA)
    sigma = max(1.0, 0.03 * max(small.shape[:2]))
    small = cv2.GaussianBlur(small, (0, 0), sigma)
    blurred = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    inside = np.zeros((h, w), np.float32)
    inside[top:h - bottom, left:w - right] = 1.0
    feather = max(1.0, 0.02 * max(h, w))
    dist = cv2.distanceTransform((inside > 0).astype(np.uint8), cv2.DIST_L2, 3)
    weight = np.clip(dist / feather, 0.0, 1.0)[..., None]  # 1 deep inside the image, 0 in the padding
    out = padded.astype(np.float32) * weight + blurred.astype(np.float32) * (1.0 - weight)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


__all__ = [
    "MIN_JPEG_QUALITY",
    "MIN_SHORT_SIDE_PX",
    "PreparedPortrait",
    "detect_face",
    "detect_faces",
    "estimate_jpeg_quality",
    "face_detector_unavailable_reason",
    "prepare_portrait",
]
