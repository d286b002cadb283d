"""Where the face is, and what it looks like, for the report: detection, crop geometry, tracking, HOG.

Classical only. The face is found once (in the portrait and in the video's
first frame) by OpenCV's Haar cascade where this OpenCV still ships it (4.x),
else by a skin-colour blob (Chai & Ngan's YCrCb box) whose neck is cut off,
else a centre box is assumed and said so. Everything downstream works on a
*canonical* crop in which the face box is ``CANON_FACE_W_PX`` wide, so the
same numbers mean the same thing at 540×960 and at 1080×1920; the crop is
re-centred (with hysteresis) when template matching says the head has moved.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from scipy import ndimage

CANON_FACE_W_PX = 64
# Face-box-relative regions, (row0, row1), (col0, col1) as fractions of the box.
MOUTH_ROWS, MOUTH_COLS = (0.58, 1.0), (0.2, 0.8)  # lower part of the face: lips and jaw
UPPER_ROWS, UPPER_COLS = (0.05, 0.5), (0.0, 1.0)  # eyes and nose: moves rigidly with the head
IDENTITY_ROWS, IDENTITY_COLS = (0.0, 0.66), (0.0, 1.0)  # brows, eyes, nose, outline; not the talking mouth
COLOUR_ROWS, COLOUR_COLS = (0.1, 0.55), (0.15, 0.85)  # skin of forehead and cheeks


@dataclass(frozen=True)
class FaceBox:
    """A face rectangle in pixels of the image it was found in, and how it was found."""

    x: float
    y: float
    w: float
    h: float
    method: str  # "haar" | "skin" | "centre"

    def scaled(self, s: float) -> "FaceBox":
        return FaceBox(self.x * s, self.y * s, self.w * s, self.h * s, self.method)

    def moved(self, dx: float, dy: float) -> "FaceBox":
        return FaceBox(self.x + dx, self.y + dy, self.w, self.h, self.method)

    def sub(self, rows: tuple[float, float], cols: tuple[float, float]) -> tuple[int, int, int, int]:
        """Integer (y0, y1, x0, x1) of a box-relative region."""
        y0 = int(round(self.y + rows[0] * self.h))
        y1 = int(round(self.y + rows[1] * self.h))
        x0 = int(round(self.x + cols[0] * self.w))
        x1 = int(round(self.x + cols[1] * self.w))
        return y0, max(y1, y0 + 1), x0, max(x1, x0 + 1)

    def as_list(self) -> list[int]:
        return [int(round(v)) for v in (self.x, self.y, self.w, self.h)]


# -- detection -------------------------------------------------------------------------


def locate_face(rgb: np.ndarray) -> FaceBox:
    """The most prominent face in an RGB uint8 image (never fails: the centre box is the last resort)."""
    return _haar(rgb) or _skin(rgb) or centre_box(rgb.shape[1], rgb.shape[0])


def centre_box(width: int, height: int) -> FaceBox:
    """Where a talking head usually is when nothing better is known: upper middle, a third of the width."""
    w = width * (0.34 if height > width else 0.22)
    h = w * 1.25
    return FaceBox(width / 2 - w / 2, height * (0.36 if height > width else 0.42) - h / 2, w, h, "centre")


def _haar(rgb: np.ndarray) -> FaceBox | None:
    # OpenCV 5 moved the cascades out of the main wheel; 4.x still has them.
    if not hasattr(cv2, "CascadeClassifier"):
        return None
    data = getattr(getattr(cv2, "data", None), "haarcascades", "")
    path = Path(data) / "haarcascade_frontalface_default.xml"
    if not path.is_file():
        return None
    cascade = cv2.CascadeClassifier(str(path))
    if cascade.empty():
        return None
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    s = min(1.0, 480.0 / max(gray.shape))
    small = cv2.resize(gray, None, fx=s, fy=s, interpolation=cv2.INTER_AREA) if s < 1 else gray
    min_side = max(12, int(min(small.shape) * 0.08))
    found = cascade.detectMultiScale(cv2.equalizeHist(small), scaleFactor=1.1, minNeighbors=5, minSize=(min_side, min_side))
    if len(found) == 0:
        return None
    # Among detections, prefer big, central ones that are skin inside (a cascade also fires on
    # shirt folds and backgrounds); skip the skin test for pictures with almost no colour.
    skin = _skin_box_mask(rgb)
    colourful = float(np.std(cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb)[..., 1:].astype(np.float32))) > 3.0
    H, W = gray.shape
    best, best_score = None, 0.0
    for x, y, w, h in found:
        bx, by, bw, bh = x / s, y / s, w / s, h / s
        inner = skin[int(by + 0.2 * bh) : int(by + 0.8 * bh), int(bx + 0.2 * bw) : int(bx + 0.8 * bw)]
        skin_frac = float(inner.mean()) if inner.size else 0.0
        if colourful and skin_frac < 0.2:
            continue
        centrality = 1.0 - abs(bx + bw / 2 - W / 2) / (W / 2)
        score = bw * bh * (0.3 + centrality) * (0.5 + skin_frac)
        if score > best_score:
            best, best_score = (bx, by, bw, bh), score
    if best is None:
        return None
    x, y, w, h = best
    # The cascade's box runs brow to chin; extend it down a little so the mouth region holds the jaw.
    return FaceBox(x, y, w, h * 1.1, "haar")


def _skin_box_mask(img: np.ndarray) -> np.ndarray:
    """Chai & Ngan's YCrCb skin box (with a floor on brightness)."""
    ycc = cv2.cvtColor(img, cv2.COLOR_RGB2YCrCb)
    y, cr, cb = ycc[..., 0], ycc[..., 1], ycc[..., 2]
    return (cr >= 133) & (cr <= 173) & (cb >= 77) & (cb <= 127) & (y >= 60)


def _skin_mask(img: np.ndarray) -> np.ndarray:
    """Skin pixels: Chai & Ngan's YCrCb box, then narrowed to this person's own chroma.

    The box admits beige walls and wood; the skin inside the central prior region
    gives this face's chroma mean and spread, and only pixels near it (Mahalanobis
    distance) are kept.
    """
    h, w = img.shape[:2]
    ycc = cv2.cvtColor(img, cv2.COLOR_RGB2YCrCb).astype(np.float32)
    y, cr, cb = ycc[..., 0], ycc[..., 1], ycc[..., 2]
    box = _skin_box_mask(img)
    c = centre_box(w, h)
    seed = np.zeros_like(box)
    seed[int(c.y) : int(c.y + c.h), int(c.x) : int(c.x + c.w)] = True
    seed &= box
    if seed.sum() < 50:
        return box
    v = np.stack([cr[seed], cb[seed]], axis=1)
    mu = v.mean(axis=0)
    inv = np.linalg.inv(np.cov(v.T) + np.eye(2) * 4.0)
    d = np.stack([cr - mu[0], cb - mu[1]], axis=-1)
    return (np.einsum("...i,ij,...j->...", d, inv, d) < 6.0) & (y >= 40)


def _skin(rgb: np.ndarray) -> FaceBox | None:
    """The most face-like skin region, cut at the neck (where it narrows below its widest rows).

    Regions that are huge, touch two borders or fill little of their box are
    backgrounds (a beige wall), not faces; then there is no answer.
    """
    H, W = rgb.shape[:2]
    s = min(1.0, 256.0 / max(H, W))
    img = cv2.resize(rgb, None, fx=s, fy=s, interpolation=cv2.INTER_AREA) if s < 1 else rgb
    h, w = img.shape[:2]
    mask = _skin_mask(img).astype(np.uint8)
    k = max(3, int(round(min(h, w) * 0.03)) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    mask = cv2.morphologyEx(cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel), cv2.MORPH_OPEN, kernel)
    n, labels, stats, centroids = cv2.connectedComponentsWithStats(mask, connectivity=4)
    best, best_score = None, 0.0
    for i in range(1, n):
        x0, y0, bw, bh, area = stats[i]
        borders = (x0 == 0) + (y0 == 0) + (x0 + bw >= w) + (y0 + bh >= h)
        if area < 0.005 * h * w or area > 0.35 * h * w or borders >= 2 or not 0.5 <= bh / bw <= 3.0:
            continue
        cx, cy = centroids[i]
        centrality = 1.0 - abs(cx - w / 2) / (w / 2)
        height_prior = 1.0 - 0.5 * max(0.0, cy / h - 0.6)  # faces sit in the upper part of the frame
        fill = area / float(bw * bh)  # a face fills its box; a frame of wall does not
        score = area * max(centrality, 0.05) * height_prior * fill
        if score > best_score:
            best, best_score = i, score
    if best is None:
        return None
    blob = ndimage.binary_fill_holes(ndimage.binary_closing(labels == best, iterations=2))
    cols_any = np.flatnonzero(blob.any(axis=0))
    rows = np.flatnonzero(blob.any(axis=1))
    if rows.size < 6 or cols_any.size < 6:
        return None
    # horizontal extent of each row (holes such as an open mouth do not narrow it)
    first = np.where(blob.any(axis=1), blob.argmax(axis=1), 0)
    last = np.where(blob.any(axis=1), w - 1 - blob[:, ::-1].argmax(axis=1), -1)
    widths = (last - first + 1).astype(np.float64)
    top_row, bottom_row = rows[0], rows[-1]
    upper_end = top_row + max(1, int(0.6 * (bottom_row - top_row + 1)))
    widest = top_row + int(np.argmax(widths[top_row:upper_end]))
    max_w = widths[widest]
    top = top_row
    while top < widest and widths[top] < 0.35 * max_w:
        top += 1
    bottom = widest
    while bottom < bottom_row and widths[bottom + 1] >= 0.6 * max_w:
        bottom += 1
    cols = np.flatnonzero(blob[top : bottom + 1].mean(axis=0) > 0.25)
    if cols.size == 0:
        return None
    bx0, bx1 = cols[0], cols[-1] + 1
    bw, bh = bx1 - bx0, bottom + 1 - top
    if bw < 6 or bh < 6:
        return None
    bh = min(bh, 1.4 * bw)  # a region that runs on (neck, hands) is not all face
    if bh < 0.7 * bw:
        bh = 1.1 * bw
    return FaceBox(bx0 / s, top / s, bw / s, bh / s, "skin")


# -- canonical crops ----------------------------------------------------------------------


def crop(image: np.ndarray, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    """``image[y0:y1, x0:x1]`` with edge replication where the window leaves the image."""
    H, W = image.shape[:2]
    if y0 >= 0 and x0 >= 0 and y1 <= H and x1 <= W:
        return image[y0:y1, x0:x1]
    pad = [(max(0, -y0), max(0, y1 - H)), (max(0, -x0), max(0, x1 - W))] + [(0, 0)] * (image.ndim - 2)
    yc0, yc1 = min(max(y0, 0), H - 1), max(min(y1, H), 1)
    xc0, xc1 = min(max(x0, 0), W - 1), max(min(x1, W), 1)
    inner = image[yc0:yc1, xc0:xc1]
    out = np.pad(inner, pad, mode="edge")
    return out[: y1 - y0, : x1 - x0]


@dataclass(frozen=True)
class CropGeometry:
    """Maps a face box in full-resolution pixels to a canonical work image around it.

    The work image covers the box plus ``margin`` of its size on every side and is
    resized so the box is ``CANON_FACE_W_PX`` wide; ``face`` is the box in work-image
    pixels at the rest position.
    """

    origin_x: float
    origin_y: float
    scale: float  # canonical px per full-res px
    width: int
    height: int
    face: FaceBox

    @classmethod
    def around(cls, box: FaceBox, margin: float = 0.35) -> "CropGeometry":
        scale = CANON_FACE_W_PX / box.w
        mx, my = margin * box.w, margin * box.h
        width = int(round((box.w + 2 * mx) * scale))
        height = int(round((box.h + 2 * my) * scale))
        face = FaceBox(mx * scale, my * scale, CANON_FACE_W_PX, box.h * scale, box.method)
        return cls(box.x - mx, box.y - my, scale, width, height, face)

    def moved(self, dx_canon: float, dy_canon: float) -> "CropGeometry":
        """The same window shifted by a displacement measured in canonical pixels."""
        return CropGeometry(self.origin_x + dx_canon / self.scale, self.origin_y + dy_canon / self.scale, self.scale, self.width, self.height, self.face)

    def full_res_box(self, face_in_work: FaceBox | None = None) -> FaceBox:
        f = face_in_work or self.face
        return FaceBox(self.origin_x + f.x / self.scale, self.origin_y + f.y / self.scale, f.w / self.scale, f.h / self.scale, f.method)

    def extract(self, image: np.ndarray) -> np.ndarray:
        """The work image cut from a full-resolution plane (gray or RGB)."""
        x0, y0 = int(np.floor(self.origin_x)), int(np.floor(self.origin_y))
        x1 = int(np.ceil(self.origin_x + self.width / self.scale))
        y1 = int(np.ceil(self.origin_y + self.height / self.scale))
        patch = crop(image, y0, y1, x0, x1)
        return cv2.resize(patch, (self.width, self.height), interpolation=cv2.INTER_AREA if self.scale < 1 else cv2.INTER_LINEAR)


def track(work: np.ndarray, template: np.ndarray, expect_xy: tuple[float, float]) -> tuple[float, float, float]:
    """Sub-pixel top-left of ``template`` in ``work`` (normalised cross-correlation) and its score.

    Returns ``expect_xy`` with score 0 when the template does not fit.
    """
    th, tw = template.shape[:2]
    if work.shape[0] < th or work.shape[1] < tw:
        return expect_xy[0], expect_xy[1], 0.0
    res = cv2.matchTemplate(work, template, cv2.TM_CCOEFF_NORMED)
    _, score, _, (px, py) = cv2.minMaxLoc(res)
    dx = dy = 0.0
    if 0 < px < res.shape[1] - 1:
        a, b, c = res[py, px - 1], res[py, px], res[py, px + 1]
        den = a - 2 * b + c
        dx = 0.5 * (a - c) / den if den < 0 else 0.0
    if 0 < py < res.shape[0] - 1:
        a, b, c = res[py - 1, px], res[py, px], res[py + 1, px]
        den = a - 2 * b + c
        dy = 0.5 * (a - c) / den if den < 0 else 0.0
    return px + float(np.clip(dx, -0.5, 0.5)), py + float(np.clip(dy, -0.5, 0.5)), float(score)


# -- appearance descriptors ----------------------------------------------------------------


def hog(gray: np.ndarray, cell_px: int = 8, bins: int = 9) -> np.ndarray:
    """Dalal–Triggs HOG (unsigned gradients, bilinear orientation votes, 2×2-cell L2-Hys blocks)."""
    g = gray.astype(np.float32)
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=1)
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=1)
    mag, ang = cv2.cartToPolar(gx, gy, angleInDegrees=True)
    pos = (ang % 180.0) / (180.0 / bins)
    lo = np.floor(pos).astype(np.int32) % bins
    frac = pos - np.floor(pos)
    hi = (lo + 1) % bins
    ch, cw = g.shape[0] // cell_px, g.shape[1] // cell_px
    if ch < 2 or cw < 2:
        raise ValueError(f"HOG needs at least 2×2 cells of {cell_px} px, got an image of {g.shape[1]}×{g.shape[0]}")
    sl = (slice(0, ch * cell_px), slice(0, cw * cell_px))
    lo, hi, frac, mag = lo[sl], hi[sl], frac[sl], mag[sl]
    hist = np.zeros((ch, cw, bins), np.float32)
    for k in range(bins):
        vote = mag * ((lo == k) * (1 - frac) + (hi == k) * frac)
        hist[..., k] = vote.reshape(ch, cell_px, cw, cell_px).sum(axis=(1, 3))
    blocks = np.concatenate(
        [hist[:-1, :-1], hist[1:, :-1], hist[:-1, 1:], hist[1:, 1:]], axis=-1
    ).reshape(-1, 4 * bins)
    blocks /= np.sqrt((blocks**2).sum(axis=1, keepdims=True) + 1e-6)
    blocks = np.minimum(blocks, 0.2)
    blocks /= np.sqrt((blocks**2).sum(axis=1, keepdims=True) + 1e-6)
    return blocks.ravel()


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na == 0 or nb == 0:
        return 0.0
    return float(np.dot(a, b) / (na * nb))


def lab_mean(rgb: np.ndarray) -> np.ndarray:
    """Mean CIELAB (D65, L in 0..100) of an sRGB uint8 patch."""
    lab = cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)
    return lab.reshape(-1, 3).mean(axis=0).astype(np.float64)


def delta_e2000(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """CIEDE2000 colour difference (Sharma, Wu & Dalal 2005), broadcast over leading axes."""
    lab1, lab2 = np.asarray(lab1, np.float64), np.asarray(lab2, np.float64)
    L1, a1, b1 = lab1[..., 0], lab1[..., 1], lab1[..., 2]
    L2, a2, b2 = lab2[..., 0], lab2[..., 1], lab2[..., 2]
    c_bar = (np.hypot(a1, b1) + np.hypot(a2, b2)) / 2
    g = 0.5 * (1 - np.sqrt(c_bar**7 / (c_bar**7 + 25.0**7)))
    a1p, a2p = (1 + g) * a1, (1 + g) * a2
    c1p, c2p = np.hypot(a1p, b1), np.hypot(a2p, b2)
    h1p = np.degrees(np.arctan2(b1, a1p)) % 360
    h2p = np.degrees(np.arctan2(b2, a2p)) % 360
    zero = (c1p * c2p) == 0
    dlp, dcp = L2 - L1, c2p - c1p
    dh = h2p - h1p
    dh = np.where(dh > 180, dh - 360, np.where(dh < -180, dh + 360, dh))
    dh = np.where(zero, 0.0, dh)
    dhp = 2 * np.sqrt(c1p * c2p) * np.sin(np.radians(dh / 2))
    lbp, cbp = (L1 + L2) / 2, (c1p + c2p) / 2
    hsum = h1p + h2p
    hbp = np.where(np.abs(h1p - h2p) <= 180, hsum / 2, np.where(hsum < 360, (hsum + 360) / 2, (hsum - 360) / 2))
    hbp = np.where(zero, hsum, hbp)
    t = (
        1
        - 0.17 * np.cos(np.radians(hbp - 30))
        + 0.24 * np.cos(np.radians(2 * hbp))
        + 0.32 * np.cos(np.radians(3 * hbp + 6))
        - 0.20 * np.cos(np.radians(4 * hbp - 63))
    )
    d_theta = 30 * np.exp(-(((hbp - 275) / 25) ** 2))
    rc = 2 * np.sqrt(cbp**7 / (cbp**7 + 25.0**7))
    sl = 1 + 0.015 * (lbp - 50) ** 2 / np.sqrt(20 + (lbp - 50) ** 2)
    sc = 1 + 0.045 * cbp
    sh = 1 + 0.015 * cbp * t
    rt = -np.sin(np.radians(2 * d_theta)) * rc
    return np.sqrt((dlp / sl) ** 2 + (dcp / sc) ** 2 + (dhp / sh) ** 2 + rt * (dcp / sc) * (dhp / sh))
