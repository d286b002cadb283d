"""Colour hold: keep a long video's colour from creeping, segment by segment.

Statistics are measured in CIE Lab (D65), where "the same colour" means the
same to a viewer: per channel mean and standard deviation over the pixels
(``color_stats``). A segment is pulled toward a reference (the portrait, or
segment 0) by the Reinhard transfer in Lab, ``L' = μ_ref + (L − μ_src)·σ_ref/σ_src``
per channel, mixed in by ``strength``.

Converting every pixel of every frame to Lab and back would cost more than the
encoder, so the transfer is *fitted* once per segment, by weighted least
squares over the segment's own colour distribution, as a cheap transform in
BT.709 YCbCr (``ColorTransform``):

    Y'        = a·Y + b                      (a tone line on luma)
    [Cb', Cr'] = M·[Cb, Cr] + c              (a 2×2 chroma matrix and offset)

Each output plane then depends on at most two input planes, which the stitcher
applies with a 256-entry LUT (luma) and ``cv2.addWeighted`` (chroma), about a
millisecond a 1080×1920 frame. The same transform, composed with the RGB↔YCbCr
matrices, is an exact 3×4 affine in RGB: ``apply_color_hold`` uses that, so a
generator that colour-holds a tail before conditioning the next segment gets
the same colours the stitcher will output.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import cv2
import numpy as np

# -- CIE Lab (sRGB, D65) ------------------------------------------------------------------

_WHITE_D65 = np.array([0.95047, 1.0, 1.08883])
_RGB_TO_XYZ = np.array(
    [
        [0.4124564, 0.3575761, 0.1804375],
        [0.2126729, 0.7151522, 0.0721750],
        [0.0193339, 0.1191920, 0.9503041],
    ]
)
_XYZ_TO_RGB = np.linalg.inv(_RGB_TO_XYZ)
_DELTA = 6.0 / 29.0
# sRGB decoding of every uint8 code value, so stats never run the power law per pixel.
_SRGB_TO_LINEAR_U8 = np.where(
    np.arange(256) / 255.0 <= 0.04045,
    np.arange(256) / 255.0 / 12.92,
    ((np.arange(256) / 255.0 + 0.055) / 1.055) ** 2.4,
)


def _srgb_to_linear(rgb01: np.ndarray) -> np.ndarray:
    c = np.asarray(rgb01, dtype=np.float64)
    return np.where(c <= 0.04045, c / 12.92, ((np.maximum(c, 0.0) + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb(lin: np.ndarray) -> np.ndarray:
    c = np.asarray(lin, dtype=np.float64)
    return np.where(c <= 0.0031308, c * 12.92, 1.055 * np.power(np.maximum(c, 0.0), 1.0 / 2.4) - 0.055)


def _linear_to_lab(lin: np.ndarray) -> np.ndarray:
    xyz = (lin @ _RGB_TO_XYZ.T) / _WHITE_D65
    f = np.where(xyz > _DELTA**3, np.cbrt(xyz), xyz / (3 * _DELTA**2) + 4.0 / 29.0)
    return np.stack([116.0 * f[..., 1] - 16.0, 500.0 * (f[..., 0] - f[..., 1]), 200.0 * (f[..., 1] - f[..., 2])], axis=-1)


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB code values (uint8, or float on the 0…255 scale) → Lab float64, same leading shape."""
    rgb = np.asarray(rgb)
    lin = _SRGB_TO_LINEAR_U8[rgb] if rgb.dtype == np.uint8 else _srgb_to_linear(rgb / 255.0)
    return _linear_to_lab(lin)


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """Lab → sRGB on the 0…255 scale, float64, not clipped (out-of-gamut colours fall outside 0…255)."""
    lab = np.asarray(lab, dtype=np.float64)
    fy = (lab[..., 0] + 16.0) / 116.0
    f = np.stack([fy + lab[..., 1] / 500.0, fy, fy - lab[..., 2] / 200.0], axis=-1)
    xyz = np.where(f > _DELTA, f**3, 3 * _DELTA**2 * (f - 4.0 / 29.0)) * _WHITE_D65
    return _linear_to_srgb(xyz @ _XYZ_TO_RGB.T) * 255.0


# -- statistics ----------------------------------------------------------------------------

_STATS_MAX_PIXELS = 65536  # per frame: a strided sample this size gives means to ~0.1 ΔE


@dataclass(frozen=True, eq=False)
class ColorStats:
    """Per channel mean and standard deviation of a set of pixels in Lab (L, a, b), float64 [3]."""

    mean: np.ndarray
    std: np.ndarray

    def __post_init__(self) -> None:
        for name in ("mean", "std"):
            value = np.array(getattr(self, name), dtype=np.float64).reshape(3)
            value.setflags(write=False)
            object.__setattr__(self, name, value)

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": [float(v) for v in self.mean], "std": [float(v) for v in self.std]}

    @classmethod
    def from_dict(cls, data: dict) -> "ColorStats":
        return cls(mean=np.asarray(data["mean"], dtype=np.float64), std=np.asarray(data["std"], dtype=np.float64))

    def delta_e(self, other: "ColorStats") -> float:
        """Euclidean distance between the two means in Lab (CIE76 ΔE)."""
        return float(np.linalg.norm(self.mean - other.mean))


class _StatsAccumulator:
    """Running sums in float64, so stats over thousands of frames need one frame in memory."""

    def __init__(self) -> None:
        self.n = 0
        self.shift: np.ndarray | None = None  # sums are of (x - shift): no cancellation when the spread is small
        self.s1 = np.zeros(3)
        self.s2 = np.zeros(3)

    def add_lab(self, lab: np.ndarray) -> None:
        lab = lab.reshape(-1, 3)
        if self.shift is None:
            self.shift = lab.mean(axis=0)
        centred = lab - self.shift
        self.n += lab.shape[0]
        self.s1 += centred.sum(axis=0)
        self.s2 += np.square(centred).sum(axis=0)

    def add_rgb(self, frame: np.ndarray, region: tuple[slice, slice] | None = None) -> None:
        if frame.ndim != 3 or frame.shape[-1] != 3:
            raise ValueError(f"a frame must be [H, W, 3], got {list(frame.shape)}")
        if region is not None:
            frame = frame[region[0], region[1]]
        h, w = frame.shape[:2]
        step = max(1, int(np.ceil(np.sqrt(h * w / _STATS_MAX_PIXELS))))
        sample = frame[step // 2 :: step, step // 2 :: step]
        if sample.size == 0:
            raise ValueError(f"the region {region} selects no pixels of a {w}×{h} frame")
        self.add_lab(rgb_to_lab(sample))

    def result(self) -> ColorStats:
        if self.n == 0:
            raise ValueError("no pixels to measure colour statistics on")
        centred_mean = self.s1 / self.n
        var = np.maximum(self.s2 / self.n - np.square(centred_mean), 0.0)
        return ColorStats(mean=centred_mean + self.shift, std=np.sqrt(var))


def color_stats(frames: np.ndarray | Iterable[np.ndarray], region: tuple[slice, slice] | None = None) -> ColorStats:
    """Lab mean/std over all pixels of one RGB uint8 frame [H,W,3], a stack [N,H,W,3], or an iterable of frames.

    ``region`` (rows, columns) restricts the measurement, e.g. to the face.
    Frames are sampled on a regular grid of at most 65 536 pixels each.
    """
    acc = _StatsAccumulator()
    if isinstance(frames, np.ndarray):
        if frames.ndim == 3:
            frames = frames[None]
        if frames.ndim != 4:
            raise ValueError(f"frames must be [H, W, 3] or [N, H, W, 3], got {list(frames.shape)}")
    for frame in frames:
        acc.add_rgb(np.asarray(frame), region)
    return acc.result()


# -- YCbCr ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class YCbCrSpace:
    """A Y'CbCr encoding: luma coefficients (Kr, Kb) and code range (limited 16–235/240 or full 0–255)."""

    name: str
    kr: float
    kb: float
    full_range: bool

    def rgb_to_code(self) -> np.ndarray:
        """4×4 homogeneous matrix: [R, G, B, 1] (0…255) → [Y, Cb, Cr, 1] code values."""
        kr, kb = self.kr, self.kb
        kg = 1.0 - kr - kb
        m = np.array(
            [
                [kr, kg, kb],
                [-kr / (2 * (1 - kb)), -kg / (2 * (1 - kb)), 0.5],
                [0.5, -kg / (2 * (1 - kr)), -kb / (2 * (1 - kr))],
            ]
        )
        if self.full_range:
            scale, offset = np.array([1.0, 1.0, 1.0]), np.array([0.0, 128.0, 128.0])
        else:
            scale, offset = np.array([219.0, 224.0, 224.0]) / 255.0, np.array([16.0, 128.0, 128.0])
        out = np.eye(4)
        out[:3, :3] = m * scale[:, None]
        out[:3, 3] = offset
        return out

    def code_to_rgb(self) -> np.ndarray:
        return np.linalg.inv(self.rgb_to_code())


BT709_LIMITED = YCbCrSpace("bt709", 0.2126, 0.0722, full_range=False)
# The colour model's own space: BT.709 at full range, so fitted coefficients read as plain gains.
_MODEL_SPACE = YCbCrSpace("bt709", 0.2126, 0.0722, full_range=True)
_KRKB_BY_AVCOL_SPC = {1: ("bt709", 0.2126, 0.0722), 4: ("fcc", 0.30, 0.11), 5: ("bt601", 0.299, 0.114), 6: ("bt601", 0.299, 0.114), 7: ("smpte240m", 0.212, 0.087), 9: ("bt2020", 0.2627, 0.0593), 10: ("bt2020", 0.2627, 0.0593)}


def ycbcr_space_for(colorspace: int, color_range: int, pix_fmt: str = "") -> YCbCrSpace:
    """The space a decoded frame's codes are in, from its AVColorSpace/AVColorRange tags.

    Untagged video is read as BT.601, as libswscale (and so PyAV's to_ndarray) does.
    """
    name, kr, kb = _KRKB_BY_AVCOL_SPC.get(int(colorspace), ("bt601", 0.299, 0.114))
    full = int(color_range) == 2 or pix_fmt.startswith("yuvj")
    return YCbCrSpace(name, kr, kb, full_range=full)


# -- the transfer and its fitted transform ----------------------------------------------------------

MAX_STD_RATIO = 2.0  # never stretch or squash contrast by more than this (a flat segment would explode)
_MIN_SPREAD = np.array([8.0, 4.0, 4.0])  # Lab; below this a channel's distribution is too narrow to fit on
_GRID_SIGMAS = (-2.0, -1.0, 0.0, 1.0, 2.0)
_IDENTITY_TOLERANCE = 0.2  # code values: a correction smaller than this anywhere is no correction


def lab_transfer(lab: np.ndarray, source: ColorStats, reference: ColorStats, strength: float) -> np.ndarray:
    """The exact Reinhard transfer in Lab, mixed in by ``strength`` (0: unchanged, 1: full match)."""
    ratio = np.clip(reference.std / np.maximum(source.std, 1e-6), 1.0 / MAX_STD_RATIO, MAX_STD_RATIO)
    ratio = np.where(source.std < 1e-6, 1.0, ratio)
    target = reference.mean + (np.asarray(lab, dtype=np.float64) - source.mean) * ratio
    return lab + float(strength) * (target - lab)


@dataclass(frozen=True, eq=False)
class ColorTransform:
    """A colour correction: ``y = a·Y + b``, ``[cb, cr] = M·[Cb, Cr] + c`` in full-range BT.709 YCbCr.

    ``matrix`` is the 3×4 form acting on [Y, Cb, Cr, 1] with Cb/Cr centred on 128.
    """

    matrix: np.ndarray

    def __post_init__(self) -> None:
        m = np.array(self.matrix, dtype=np.float64).reshape(3, 4)
        if abs(m[0, 1]) > 0 or abs(m[0, 2]) > 0 or abs(m[1, 0]) > 0 or abs(m[2, 0]) > 0:
            raise ValueError("luma must depend on luma only and chroma on chroma only")
        m.setflags(write=False)
        object.__setattr__(self, "matrix", m)

    @classmethod
    def identity(cls) -> "ColorTransform":
        return cls(np.eye(3, 4))

    @property
    def is_identity(self) -> bool:
        """True when it moves no code value by more than 0.2 anywhere in the RGB cube."""
        corners = np.array([[r, g, b, 1.0] for r in (0, 255) for g in (0, 255) for b in (0, 255)])
        rgb = self.rgb_matrix()
        moved = corners @ rgb.T - corners[:, :3]
        return bool(np.abs(moved).max() < _IDENTITY_TOLERANCE)

    def homogeneous(self) -> np.ndarray:
        out = np.eye(4)
        out[:3] = self.matrix
        return out

    def rgb_matrix(self) -> np.ndarray:
        """The same correction as a 3×4 affine on [R, G, B, 1] (0…255)."""
        fwd = _MODEL_SPACE.rgb_to_code()
        return (np.linalg.inv(fwd) @ self.homogeneous() @ fwd)[:3]

    def in_space(self, source: YCbCrSpace, output: YCbCrSpace = BT709_LIMITED) -> np.ndarray:
        """3×4 affine taking ``source`` codes to corrected ``output`` codes (also converts matrix and range)."""
        m = output.rgb_to_code() @ _MODEL_SPACE.code_to_rgb() @ self.homogeneous() @ _MODEL_SPACE.rgb_to_code() @ source.code_to_rgb()
        return m[:3]

    @staticmethod
    def lerp(a: "ColorTransform", b: "ColorTransform", t: float) -> "ColorTransform":
        return ColorTransform((1.0 - t) * a.matrix + t * b.matrix)


def color_transform(source: ColorStats, reference: ColorStats, strength: float) -> ColorTransform:
    """Fit the Lab transfer ``source → reference`` (mixed by ``strength``) as a ``ColorTransform``.

    The fit points are a 5×5×5 grid over the source distribution (mean ± 2σ per
    Lab channel) weighted like a Gaussian, so the colours that occur most are
    matched best; points outside the sRGB gamut are dropped.
    """
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be within [0, 1], got {strength}")
    if strength == 0.0:
        return ColorTransform.identity()
    spread = np.maximum(source.std, _MIN_SPREAD)
    k = np.array(np.meshgrid(_GRID_SIGMAS, _GRID_SIGMAS, _GRID_SIGMAS, indexing="ij")).reshape(3, -1).T
    weight = np.exp(-0.5 * np.square(k).sum(axis=1))
    lab = source.mean + k * spread
    lab[:, 0] = np.clip(lab[:, 0], 0.0, 100.0)
    rgb = lab_to_rgb(lab)
    inside = np.all((rgb > -0.5) & (rgb < 255.5), axis=1)
    if inside.sum() >= 16:
        rgb, weight = rgb[inside], weight[inside]
    else:
        rgb = np.clip(rgb, 0.0, 255.0)
    target_rgb = lab_to_rgb(lab_transfer(rgb_to_lab(rgb), source, reference, strength))
    fwd = _MODEL_SPACE.rgb_to_code()
    src = np.c_[rgb, np.ones(len(rgb))] @ fwd.T
    dst = np.c_[target_rgb, np.ones(len(rgb))] @ fwd.T
    sw = np.sqrt(weight)[:, None]
    m = np.zeros((3, 4))
    luma_in = np.c_[src[:, 0], np.ones(len(src))]
    a, b = np.linalg.lstsq(luma_in * sw, dst[:, 0] * sw[:, 0], rcond=None)[0]
    m[0, 0], m[0, 3] = a, b
    chroma_in = np.c_[src[:, 1] - 128.0, src[:, 2] - 128.0, np.ones(len(src))]
    for row in (1, 2):
        c1, c2, c0 = np.linalg.lstsq(chroma_in * sw, (dst[:, row] - 128.0) * sw[:, 0], rcond=None)[0]
        m[row, 1], m[row, 2], m[row, 3] = c1, c2, c0 + 128.0 - 128.0 * (c1 + c2)
    return ColorTransform(m)


def apply_color_hold(frames: np.ndarray, source: ColorStats, reference: ColorStats, strength: float) -> np.ndarray:
    """Pull RGB uint8 frames ([H,W,3] or [N,H,W,3]) with colour ``source`` toward ``reference``.

    Returns a new array of the same shape. Exactly the correction the stitcher
    applies to a segment whose stats are ``source``.
    """
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim not in (3, 4) or frames.shape[-1] != 3:
        raise ValueError(f"frames must be uint8 [H, W, 3] or [N, H, W, 3], got {frames.dtype} {list(frames.shape)}")
    transform = color_transform(source, reference, strength)
    return apply_transform_rgb(frames, transform)


def apply_transform_rgb(frames: np.ndarray, transform: ColorTransform) -> np.ndarray:
    """Apply a ``ColorTransform`` to RGB uint8 frames, rounding once."""
    if transform.is_identity:
        return frames.copy()
    flat = np.ascontiguousarray(frames).reshape(-1, frames.shape[-2], 3)
    out = cv2.transform(flat, transform.rgb_matrix().astype(np.float32))
    return out.reshape(frames.shape)
