"""The animatic generator: a CPU preview of the talking portrait, for checking timing, cuts and captions.

It renders ``request.portrait`` with a gentle camera (slow seeded drift, zoom,
tilt and breathing) and a mouth that opens with the loudness of the segment's
audio, labelled ``ANIMATIC PREVIEW`` in a corner over a bar showing that
loudness. With no face detector (OpenCV 5) the mouth is assumed where
``prepare_portrait`` puts a face, and left alone if that spot is not skin. It honours the same
request/result interface as the LTX generator, on the same frame grid, so a
preview's cuts, chain, cache and stitch are those of a real run.

Chaining: ``tail`` copies the context frames as the clip's first frames and
continues the camera from where they left it. The generator cannot know the
absolute time of a segment, so it measures the camera instead: the affine
transform of each of the last context frames relative to the portrait is
estimated with ECC (OpenCV's enhanced correlation, robust to the colour hold),
a low-order fit gives position and velocity at the join, and the new motion is
this segment's own seeded path plus a correction that starts at exactly that
state and fades out over ``BLEND_S`` (continuous in position and velocity).
``last-frame`` does the same from one frame (at rest), ``anchor`` starts at rest
from the portrait itself. ``bookend`` starts there too and eases back onto the
portrait over the clip's last ``BLEND_S`` (camera at rest, mouth closed), so
its last frame is the portrait again, as a keyframe at the last frame makes LTX do.

Speed: each frame is one ``cv2.warpAffine`` of the portrait, after pasting one
of a few precomputed mouth patches into it; encoding runs in a second thread.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from generators import register
from generators.base import GenerateRequest, GenerateResult, Generator, ProgressFn
from generators.portrait import FACE_CENTER_Y_FRAC, FACE_HEIGHT_FRAC, detect_face
from orchestrator.atomic import atomic_path
from orchestrator.errors import GeneratorError
from orchestrator.timebase import frame_to_sample
from segmenters.plan import CHAIN_MODES, FrameGrid
from stitchers.clip_io import BackgroundClipWriter

log = logging.getLogger("longtake." + __name__)  # under "longtake": the CLI shows it as a warning and a --json event

ANIMATIC_VERSION = "animatic-v2"
PREVIEW_LABEL = "ANIMATIC PREVIEW"
CLIP_NAME = "clip.mp4"
TAIL_NAME = "tail.npy"
# A preview is watched once: x264's fastest preset at a slightly higher CRF than the LTX intermediate
# (still visually clean) encodes 540×960 at 200+ frames/s on two cores; at CRF 12 film grain halves that.
ENCODER_PRESET = "ultrafast"
ENCODER_CRF = 16

# LTX-2.3's temporal grid (8 frames per latent frame), so a preview cuts where a real run does.
FRAME_GRID = 8
SPATIAL_MULTIPLE = 2  # H.264 4:2:0 output needs even sizes; nothing coarser is required here

# Camera motion at motion_strength 1, as fractions of the frame (rotation in radians).
DRIFT_X_FRAC = 0.010
DRIFT_Y_FRAC = 0.006
ZOOM_LOG = 0.018
TILT_RAD = 0.007
BREATH_FRAC = 0.0025
DRIFT_PERIOD_S = (5.0, 14.0)
BREATH_PERIOD_S = 4.0
BLEND_S = 2.0  # the correction that joins a segment to its context fades out over this long

# Mouth: where it is in a Haar face box, how far it opens, and how loudness maps to opening.
MOUTH_Y_IN_BOX = 0.78
MOUTH_HALF_WIDTH_IN_BOX = 0.16
MOUTH_MAX_DROP_IN_BOX = 0.085
MOUTH_LEVELS = 24  # opening is quantised to this many precomputed patches
ENVELOPE_FLOOR_DBFS = -45.0  # at or below: closed
ENVELOPE_TOP_DBFS = -15.0  # at or above: fully open

_ECC_WORK_WIDTH_PX = 270  # context frames are registered at about this width (a photo: ~0.02 px error)
_ECC_FIT_FRAMES = 9  # position and velocity at the join come from (at most) this many context frames


# ------------------------------------------------------------------------------------
# audio → mouth
# ------------------------------------------------------------------------------------

def frame_envelope(audio: np.ndarray, sample_rate_hz: int, fps: Fraction, num_frames: int) -> np.ndarray:
    """RMS of each frame's samples (float64 [num_frames]); frames past the end of ``audio`` are silent."""
    samples = np.asarray(audio, dtype=np.float64)
    if samples.ndim == 2:
        samples = samples.mean(axis=1)
    samples = samples.reshape(-1)
    bounds = np.array([frame_to_sample(i, Fraction(fps), sample_rate_hz) for i in range(num_frames + 1)], dtype=np.int64)
    bounds = np.clip(bounds, 0, samples.size)
    energy = np.concatenate([[0.0], np.cumsum(samples * samples)])
    counts = np.diff(bounds)
    sums = energy[bounds[1:]] - energy[bounds[:-1]]
    return np.sqrt(np.maximum(sums, 0.0) / np.maximum(counts, 1))


def mouth_opening(envelope: np.ndarray, gain: float = 1.0) -> np.ndarray:
    """Loudness → mouth opening in [0, 1] per frame: a dBFS ramp, lightly smoothed, times ``gain``.

    The ramp is absolute (not normalised per segment), and the smoothing only
    looks one frame either side, so a frame opens the same in every segment
    that renders it.
    """
    db = 20.0 * np.log10(np.maximum(envelope, 1e-9))
    opening = np.clip((db - ENVELOPE_FLOOR_DBFS) / (ENVELOPE_TOP_DBFS - ENVELOPE_FLOOR_DBFS), 0.0, 1.0)
    if opening.size >= 3:
        padded = np.concatenate([opening[:1], opening, opening[-1:]])
        opening = 0.25 * padded[:-2] + 0.5 * padded[1:-1] + 0.25 * padded[2:]
    return np.clip(opening * gain, 0.0, 1.0)


@dataclass(frozen=True)
class MouthGeometry:
    """Where the mouth is in portrait pixels, and the patch of the face that moves with it."""

    center: tuple[float, float]  # the line between the lips
    half_width: float
    max_drop: float  # how far the lower lip moves when fully open
    roi: tuple[int, int, int, int]  # x0, y0, x1, y1: the region every mouth patch covers
    face_box: tuple[int, int, int, int]
    detected: bool  # found by the face detector (else assumed where prepare_portrait puts a face)
    animate: bool  # False: a guessed place that does not look like skin, so no mouth is drawn there


def locate_mouth(portrait: np.ndarray) -> MouthGeometry:
    """Find the face on the portrait (Haar cascade), or assume where ``prepare_portrait`` puts one."""
    h, w = portrait.shape[:2]
    box = detect_face(portrait)
    detected = box is not None
    if box is None:
        side = min(FACE_HEIGHT_FRAC * h, 0.6 * w)
        box = (int(round(w / 2 - side / 2)), int(round(FACE_CENTER_Y_FRAC * h - side / 2)), int(round(side)), int(round(side)))
    fx, fy, fw, fh = box
    cx, cy = fx + fw / 2.0, fy + MOUTH_Y_IN_BOX * fh
    x0 = int(np.floor(cx - 0.45 * fw))
    x1 = int(np.ceil(cx + 0.45 * fw))
    y0 = int(np.floor(cy - 0.12 * fh))
    y1 = int(np.ceil(cy + 0.45 * fh))
    roi = (max(0, x0), max(0, y0), min(w, x1), min(h, y1))
    animate = detected or _looks_like_skin(portrait[int(fy + 0.55 * fh):int(fy + fh), int(fx + 0.2 * fw):int(fx + 0.8 * fw)])
    return MouthGeometry(
        center=(cx, cy),
        half_width=MOUTH_HALF_WIDTH_IN_BOX * fw,
        max_drop=max(1.0, MOUTH_MAX_DROP_IN_BOX * fh),
        roi=roi,
        face_box=tuple(int(v) for v in box),  # type: ignore[arg-type]
        detected=detected,
        animate=animate,
    )


def _looks_like_skin(rgb: np.ndarray, min_fraction: float = 0.4) -> bool:
    """Whether most of ``rgb`` has skin chroma (Chai & Ngan's YCrCb box; lightness is ignored, so any skin tone)."""
    if rgb.size == 0:
        return False
    ycc = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2YCrCb).reshape(-1, 3).astype(np.int16)
    y, cr, cb = ycc[:, 0], ycc[:, 1], ycc[:, 2]
    skin = (cr >= 133) & (cr <= 173) & (cb >= 77) & (cb <= 127) & (y >= 25) & (y <= 245)
    return float(skin.mean()) >= min_fraction


def render_mouth_patches(portrait: np.ndarray, geom: MouthGeometry, levels: int = MOUTH_LEVELS) -> list[np.ndarray]:
    """The mouth region at each opening level (0: the portrait untouched … levels-1: fully open).

    The lower lip and jaw drop by warping the lower face: between the mouth
    corners the lips part at the line between them (the gap is painted as a
    dark mouth with a hint of upper teeth, flat on top and curved below like a
    real open mouth); around that the jaw moves with a smooth displacement that
    is zero at the patch border, so the patch joins the face seamlessly.
    """
    x0, y0, x1, y1 = geom.roi
    base = portrait[y0:y1, x0:x1]
    patches = [base.copy()]
    if x1 - x0 < 2 or y1 - y0 < 2:
        return patches * levels
    fw = geom.face_box[2]
    cx, cy = geom.center[0] - x0, geom.center[1] - y0
    md, hw = geom.max_drop, max(1.0, geom.half_width)
    hh, ww = base.shape[:2]
    yy, xx = np.mgrid[0:hh, 0:ww].astype(np.float32)
    # Between the corners the lips part (a step at the lip line); elsewhere the skin stretches
    # (a ramp less steep than 1 px per px, so it never folds over itself).
    lips = np.sqrt(np.clip(1.0 - ((xx - cx) / hw) ** 2, 0.0, 1.0))
    part = np.clip((yy - cy) / 2.0 + 0.5, 0.0, 1.0)
    stretch = _smoothstep((yy - (cy - 0.3 * md)) / (1.6 * md))
    chin = cy + 0.28 * fw
    bottom = max(chin + 1.0, hh - 1.0)
    below_chin = 1.0 - _smoothstep((yy - chin) / (bottom - chin))
    jaw_in, jaw_out = 0.22 * fw, max(0.22 * fw + 1.0, min(cx, ww - 1 - cx, 0.45 * fw))
    across = 1.0 - _smoothstep((np.abs(xx - cx) - jaw_in) / (jaw_out - jaw_in))
    field = ((lips * part + (1.0 - lips) * stretch) * below_chin * across).astype(np.float32)
    teeth_profile = np.sqrt(np.clip(1.0 - ((xx - cx) / (0.7 * hw)) ** 2, 0.0, 1.0))
    dark = np.array([50.0, 20.0, 26.0], np.float32)
    tooth = np.array([205.0, 198.0, 190.0], np.float32)
    for level in range(1, levels):
        drop = level / (levels - 1) * md
        warped = cv2.remap(base, xx, yy - drop * field, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
        # The gap the lips opened: from the lip line down to where the lower lip went (anti-aliased).
        inside = _band(yy, cy, lips * drop)
        teeth = 0.85 * _band(yy, cy, 0.22 * teeth_profile * drop)
        out = warped * (1.0 - inside[..., None]) + dark * inside[..., None]
        out = out * (1.0 - teeth[..., None]) + tooth * teeth[..., None]
        patches.append(np.clip(out + 0.5, 0, 255).astype(np.uint8))
    return patches


def _band(yy: np.ndarray, top: float, height: np.ndarray) -> np.ndarray:
    """Anti-aliased coverage of the rows [top, top + height) (height per column), never more than the height itself."""
    return np.clip(np.minimum(np.minimum(yy - top + 0.5, top + height - yy + 0.5), height), 0.0, 1.0)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


# ------------------------------------------------------------------------------------
# camera motion
# ------------------------------------------------------------------------------------

def _to3(m: np.ndarray) -> np.ndarray:
    return np.vstack([np.asarray(m, np.float64).reshape(2, 3), [0.0, 0.0, 1.0]])


class MotionPath:
    """The camera of one clip: a 2×3 affine (portrait → frame pixels) for each local frame.

    ``free(t)`` is this segment's own seeded path: slow sums of sines for drift,
    zoom and tilt about the face, and a breathing stretch anchored at the bottom
    edge. ``matrix(t)`` adds a correction so that at ``start_frame`` the camera
    is exactly ``start_matrix`` moving at ``start_velocity`` (per frame), fading
    out smoothly over ``BLEND_S``.
    """

    def __init__(
        self,
        width: int,
        height: int,
        fps: Fraction,
        seed: int,
        strength: float,
        pivot: tuple[float, float],
        start_frame: int = 0,
        start_matrix: np.ndarray | None = None,
        start_velocity: np.ndarray | None = None,
    ):
        self.width, self.height, self.fps = width, height, float(fps)
        self.pivot = pivot
        self.strength = float(strength)
        rng = np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFFFFFFFFFF, 0xA417]))
        self._waves = {name: self._draw_waves(rng) for name in ("x", "y", "zoom", "tilt")}
        self._breath = (BREATH_PERIOD_S * rng.uniform(0.9, 1.1), rng.uniform(0, 2 * np.pi))
        self.start_frame = start_frame
        start_m = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]) if start_matrix is None else np.asarray(start_matrix, np.float64)
        start_v = np.zeros((2, 3)) if start_velocity is None else np.asarray(start_velocity, np.float64)
        self._delta_m = start_m - self.free(start_frame)
        self._delta_v = start_v - self.free_velocity(start_frame)
        self._blend_frames = max(1.0, BLEND_S * self.fps)

    @staticmethod
    def _draw_waves(rng: np.random.Generator) -> list[tuple[float, float, float]]:
        weights = rng.dirichlet([2.0, 2.0])
        periods = rng.uniform(*DRIFT_PERIOD_S, size=2)
        phases = rng.uniform(0, 2 * np.pi, size=2)
        return [(float(wt), 1.0 / float(p), float(ph)) for wt, p, ph in zip(weights, periods, phases, strict=True)]

    def _wave(self, name: str, t: float) -> float:
        seconds = t / self.fps
        return sum(a * np.sin(2 * np.pi * f * seconds + ph) for a, f, ph in self._waves[name])

    def free(self, t: float) -> np.ndarray:
        s = self.strength
        tx = s * DRIFT_X_FRAC * self.width * self._wave("x", t)
        ty = s * DRIFT_Y_FRAC * self.height * self._wave("y", t)
        zoom = np.exp(s * ZOOM_LOG * self._wave("zoom", t))
        tilt = s * TILT_RAD * self._wave("tilt", t)
        period, phase = self._breath
        breath = s * BREATH_FRAC * np.sin(2 * np.pi * t / self.fps / period + phase)
        px, py = self.pivot
        c, si = np.cos(tilt) * zoom, np.sin(tilt) * zoom
        about_face = np.array([[c, -si, px - c * px + si * py + tx], [si, c, py - si * px - c * py + ty], [0, 0, 1.0]])
        # Breathing: a vertical stretch anchored at the bottom edge (the shoulders rise, the head with them).
        rise = np.array([[1.0, 0, 0], [0, 1.0 + breath, -breath * self.height], [0, 0, 1.0]])
        return (about_face @ rise)[:2]

    def free_velocity(self, t: float) -> np.ndarray:
        return self.free(t + 0.5) - self.free(t - 0.5)  # per frame, central difference

    def matrix(self, t: float) -> np.ndarray:
        tau = t - self.start_frame
        if tau <= 0:
            return self.free(t) + self._delta_m
        weight = 1.0 - float(_smoothstep(np.array(tau / self._blend_frames)))
        return self.free(t) + (self._delta_m + self._delta_v * tau) * weight

    def correction_weight(self, t: float) -> float:
        tau = max(0.0, t - self.start_frame)
        return 1.0 - float(_smoothstep(np.array(tau / self._blend_frames)))


# ------------------------------------------------------------------------------------
# reading the camera back from context frames
# ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CameraState:
    matrix: np.ndarray  # 2×3, portrait → frame, at the last context frame
    velocity: np.ndarray  # 2×3 per frame
    correlation: float  # ECC's correlation of the last frame (1 = perfect)


def estimate_camera(frames: np.ndarray, portrait: np.ndarray, mask: np.ndarray | None = None) -> CameraState:
    """Where the camera was in each of ``frames`` (portrait renders), as of the last frame, with its velocity.

    ``mask`` (uint8 [H, W], nonzero = use) leaves out what the camera does not
    explain (the label, the mouth, the borders).
    """
    frames = np.asarray(frames)
    n = frames.shape[0]
    h, w = portrait.shape[:2]
    scale = min(1.0, _ECC_WORK_WIDTH_PX / w)
    size = (max(8, int(round(w * scale))), max(8, int(round(h * scale))))
    to_small = np.array([[size[0] / w, 0, 0.5 * (size[0] / w - 1)], [0, size[1] / h, 0.5 * (size[1] / h - 1)], [0, 0, 1.0]])
    from_small = np.linalg.inv(to_small)

    def small_grey(img: np.ndarray) -> np.ndarray:
        grey = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2GRAY)
        if size != (w, h):
            grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
        return grey.astype(np.float32)

    portrait_s = small_grey(portrait)
    mask_s = None
    if mask is not None:
        mask_s = cv2.resize((mask > 0).astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)
    criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 50, 1e-5)

    used = list(range(max(0, n - _ECC_FIT_FRAMES), n))
    forward: dict[int, np.ndarray] = {}
    correlation = 0.0
    guess = np.eye(3)  # frame → portrait, full-resolution pixels
    for idx in reversed(used):
        warp_small = (to_small @ guess @ from_small)[:2].astype(np.float32)
        try:
            cc, warp_small = cv2.findTransformECC(small_grey(frames[idx]), portrait_s, warp_small, cv2.MOTION_AFFINE, criteria, mask_s, 1)
        except cv2.error as exc:
            log.warning("animatic: could not register context frame %d to the portrait (%s); continuing from the previous estimate", idx, exc)
            cc = 0.0
        else:
            guess = from_small @ _to3(warp_small) @ to_small
        if idx == n - 1:
            correlation = float(cc)
        forward[idx] = np.linalg.inv(guess)[:2]

    t = np.array(used, dtype=np.float64)
    values = np.stack([forward[i].reshape(-1) for i in used])  # [k, 6]
    last = float(n - 1)
    if len(used) == 1:
        return CameraState(forward[used[0]].copy(), np.zeros((2, 3)), correlation)
    # A parabola: a straight line would read the velocity of the window's middle, which lags an
    # accelerating camera; over nine frames the parabola's extra noise is the smaller error.
    degree = 2 if len(used) >= 5 else 1
    coeffs = np.polynomial.polynomial.polyfit(t - last, values, degree)  # in powers of (t - last)
    return CameraState(coeffs[0].reshape(2, 3), coeffs[1].reshape(2, 3), correlation)


# ------------------------------------------------------------------------------------
# the label
# ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Label:
    box: tuple[int, int, int, int]  # x0, y0, x1, y1
    shade: np.ndarray  # uint8 patch: the darkened background
    text: np.ndarray  # bool [h, w, 1]: where the letters are
    meter: tuple[int, int, int, int]  # x0, y0, x1, y1 of the audio level bar (full scale), under the text


def _short(text: str, max_chars: int = 28) -> str:
    """A prompt cut to fit the tag (Hershey fonts are ASCII only)."""
    text = " ".join(text.encode("ascii", "replace").decode().split())
    return text if len(text) <= max_chars else text[: max_chars - 3].rstrip() + "..."


def _make_label(width: int, height: int, text: str) -> _Label:
    """The corner tag: the words, and under them a bar that shows the audio level driving the mouth."""
    font = cv2.FONT_HERSHEY_SIMPLEX
    target_h = max(5.0, 0.016 * height)
    (tw, th), base = cv2.getTextSize(text, font, 1.0, 1)
    scale = min(target_h / th, 0.8 * width / tw)
    thickness = max(1, int(round(scale * 1.6)))
    (tw, th), base = cv2.getTextSize(text, font, scale, thickness)
    pad = max(2, int(round(0.35 * th)))
    bar_h = max(1, int(round(0.25 * th)))
    margin = max(2, int(round(0.02 * width)))
    x0, y0 = margin, margin
    x1, y1 = min(width, x0 + tw + 2 * pad), min(height, y0 + th + base + 2 * pad + bar_h)
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.putText(mask, text, (pad, pad + th), font, scale, 255, thickness, cv2.LINE_AA)
    meter = (x0 + pad, max(y0, y1 - pad - bar_h), max(x0 + pad + 1, x1 - pad), max(y0 + 1, y1 - pad))
    return _Label((x0, y0, x1, y1), np.zeros((y1 - y0, x1 - x0, 3), np.uint8), (mask > 110)[..., None], meter)


def _stamp_label(frame: np.ndarray, label: _Label, level: float = 0.0) -> None:
    x0, y0, x1, y1 = label.box
    region = frame[y0:y1, x0:x1]
    region[...] = cv2.addWeighted(region, 0.45, label.shade, 0.55, 0.0)
    np.copyto(region, np.uint8(255), where=label.text)
    mx0, my0, mx1, my1 = label.meter
    filled = int(round(level * (mx1 - mx0)))
    if filled > 0:
        frame[my0:my1, mx0:mx0 + filled] = (90, 220, 120)


# ------------------------------------------------------------------------------------
# the generator
# ------------------------------------------------------------------------------------

@register
class AnimaticGenerator(Generator):
    """A CPU preview: the portrait with a gentle camera and an audio-driven mouth (no model, no GPU)."""

    NAME = "animatic"

    def __init__(self, options: Any = None, *, cache_dir: Path | None = None):
        super().__init__(options, cache_dir=cache_dir)
        self._portrait_cache: dict[str, tuple[MouthGeometry, list[np.ndarray]]] = {}

    @classmethod
    def grid_for(cls, options: Any) -> FrameGrid:
        return FrameGrid(frame_grid=FRAME_GRID, spatial_multiple=SPATIAL_MULTIPLE)

    @property
    def motion_strength(self) -> float:
        return float(getattr(self.options, "motion_strength", 1.0))

    @property
    def mouth_gain(self) -> float:
        return float(getattr(self.options, "mouth_gain", 1.0))

    def model_identity(self) -> str:
        params = {"motion_strength": self.motion_strength, "mouth_gain": self.mouth_gain}
        return f"{ANIMATIC_VERSION}:" + json.dumps(params, sort_keys=True, separators=(",", ":"))

    def generate(self, request: GenerateRequest, progress: ProgressFn | None = None) -> GenerateResult:
        t_start = time.perf_counter()
        # 1. check inputs
        self.check_inputs(request)
        n, w, h = request.num_frames, request.width, request.height
        portrait = np.ascontiguousarray(request.portrait)
        context = None if request.context is None or len(request.context) == 0 else np.asarray(request.context)
        if request.chaining in ("anchor", "bookend"):
            context = None
        elif request.chaining == "last-frame" and context is not None:
            context = context[-1:]
        n_context = 0 if context is None else context.shape[0]

        # 2. the portrait's mouth (found once per portrait) and the mouth opening per frame
        geom, patches = self._mouth_for(portrait)
        opening = mouth_opening(frame_envelope(request.audio, request.sample_rate_hz, request.fps, n), self.mouth_gain)
        end_weight = _bookend_weights(n, request.fps) if request.chaining == "bookend" else np.zeros(n)
        # The mouth closes only over the last few frames: the cut sits in a pause, where it is closed anyway.
        opening = opening * (1.0 - np.clip(end_weight * 4.0 - 3.0, 0.0, 1.0))
        levels = np.rint(opening * (len(patches) - 1)).astype(np.int64)

        # 3. where the camera starts: read back from the context, or at rest on the portrait
        # The prompt is part of the tag: a creator checks per-segment prompts in the preview, and like a real
        # generator's output the clip then changes when its prompt does (so the cache invalidates as it will on GPU).
        label = _make_label(w, h, f"{PREVIEW_LABEL} | seg {request.segment_index} | {_short(request.prompt)}")
        pivot = (geom.face_box[0] + geom.face_box[2] / 2.0, geom.face_box[1] + geom.face_box[3] / 2.0)
        start_frame, start_m, start_v = 0, None, None
        colour = None
        if context is not None:
            mask = self._registration_mask(w, h, geom, label, self.motion_strength)
            state = estimate_camera(context, portrait, mask)
            if state.correlation < 0.9:
                log.warning(
                    "animatic segment %d: the context frames match the portrait poorly (correlation %.2f); the join may show",
                    request.segment_index, state.correlation,
                )
            start_frame = n_context - 1
            start_m = state.matrix
            start_v = state.velocity if request.chaining == "tail" else np.zeros((2, 3))
            colour = _colour_offset(context[-1], portrait, start_m, mask)
        path = MotionPath(w, h, request.fps, request.seed, self.motion_strength, pivot, start_frame, start_m, start_v)
        t_setup = time.perf_counter() - t_start

        # 4. render and encode, one frame at a time
        out_dir = Path(request.out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        clip_path = out_dir / CLIP_NAME
        tail_lo, tail_hi = request.tail_start, request.tail_start + request.tail_frames
        tail: list[np.ndarray] = []
        canvas = portrait.copy()
        x0, y0, x1, y1 = geom.roi
        if progress:
            progress(0, n, "render")
        with BackgroundClipWriter(clip_path, w, h, request.fps, crf=ENCODER_CRF, preset=ENCODER_PRESET) as sink:
            for i in range(n):
                if i < n_context:
                    frame = np.ascontiguousarray(context[i])  # type: ignore[index]
                else:
                    canvas[y0:y1, x0:x1] = patches[levels[i]]
                    matrix = path.matrix(i)
                    if end_weight[i] > 0.0:
                        matrix = matrix * (1.0 - end_weight[i]) + _IDENTITY * end_weight[i]
                    frame = cv2.warpAffine(canvas, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
                    if colour is not None:
                        weight = path.correction_weight(i)
                        if weight > 0.0:
                            _apply_colour(frame, colour, weight)
                    _stamp_label(frame, label, float(opening[i]))
                if tail_lo <= i < tail_hi:
                    tail.append(frame)
                sink.put(frame)
                if progress and ((i + 1) % 8 == 0 or i + 1 == n):
                    progress(i + 1, n, "render")
        t_render = time.perf_counter() - t_start - t_setup

        # 5. the lossless tail for the next segment
        tail_path = None
        if request.tail_frames > 0:
            tail_path = out_dir / TAIL_NAME
            with atomic_path(tail_path) as tmp, open(tmp, "wb") as fh:
                np.save(fh, np.stack(tail))
        timings = {"setup": t_setup, "render": t_render, "total": time.perf_counter() - t_start}
        return GenerateResult(clip_path=clip_path, tail_path=tail_path, num_frames=n, timings_s=timings)

    # -- helpers -----------------------------------------------------------------------
    def check_inputs(self, request: GenerateRequest) -> None:
        """Fail fast with the rule and the value."""
        n, w, h = request.num_frames, request.width, request.height
        grid = self.grid_for(self.options)
        if not grid.is_valid_num_frames(n):
            raise GeneratorError(f"`num_frames` must be {grid.frame_grid}k+1 (k ≥ 1) but is {n}; round it with FrameGrid.round_up_frames")
        if w % grid.spatial_multiple or h % grid.spatial_multiple or w < 2 or h < 2:
            raise GeneratorError(f"`width` and `height` have to be divisible by {grid.spatial_multiple} but are {w} and {h}")
        portrait = request.portrait
        if not isinstance(portrait, np.ndarray) or portrait.dtype != np.uint8 or portrait.shape != (h, w, 3):
            got = f"{getattr(portrait, 'dtype', type(portrait).__name__)} {list(getattr(portrait, 'shape', []))}"
            raise GeneratorError(
                f"`portrait` must be uint8 [{h}, {w}, 3] (the request size) but is {got}; "
                f"frame it with generators.portrait.prepare_portrait(path, {w}, {h})"
            )
        if request.chaining not in CHAIN_MODES:
            raise GeneratorError(f"`chaining` must be one of {list(CHAIN_MODES)} but is {request.chaining!r}")
        ctx = request.context
        if ctx is not None and len(ctx) > 0:
            if ctx.dtype != np.uint8 or ctx.ndim != 4 or ctx.shape[1:] != (h, w, 3):
                raise GeneratorError(f"`context` must be uint8 [C, {h}, {w}, 3] but is {ctx.dtype} {list(ctx.shape)}")
            if request.chaining == "tail" and ctx.shape[0] >= n:
                raise GeneratorError(f"`context` has {ctx.shape[0]} frames but the clip only {n}; context must be shorter than the clip")
        if request.tail_frames < 0 or request.tail_start < 0 or request.tail_start + request.tail_frames > n:
            raise GeneratorError(
                f"the tail [{request.tail_start}, {request.tail_start + request.tail_frames}) must lie inside the clip's {n} frames"
            )
        audio = np.asarray(request.audio)
        if audio.ndim not in (1, 2) or request.sample_rate_hz <= 0:
            raise GeneratorError(f"`audio` must be [samples, channels] at a positive sample rate, got {list(audio.shape)} at {request.sample_rate_hz} Hz")

    def _mouth_for(self, portrait: np.ndarray) -> tuple[MouthGeometry, list[np.ndarray]]:
        key = hashlib.sha256(portrait.tobytes()).hexdigest() + f":{portrait.shape}"
        if key not in self._portrait_cache:
            geom = locate_mouth(portrait)
            if not geom.animate:
                log.warning(
                    "animatic: no face found on the portrait and no skin where a framed portrait has its mouth; "
                    "the preview shows the audio level in its corner tag but moves no mouth"
                )
                patches = render_mouth_patches(portrait, geom, levels=1)
            else:
                if not geom.detected:
                    log.info("animatic: no face found on the portrait; the mouth is placed where a framed portrait has it")
                patches = render_mouth_patches(portrait, geom)
            self._portrait_cache = {key: (geom, patches)}
        return self._portrait_cache[key]

    @staticmethod
    def _registration_mask(w: int, h: int, geom: MouthGeometry, label: _Label, motion_strength: float = 1.0) -> np.ndarray:
        """Where context frames show only the camera: not the label, the mouth, or the mirrored borders."""
        mask = np.zeros((h, w), np.uint8)
        border = min(0.25, 0.02 + 0.035 * motion_strength)
        bx, by = int(border * w), int(border * h)
        mask[by:h - by, bx:w - bx] = 1
        x0, y0, x1, y1 = geom.roi
        gx, gy = int(0.1 * (x1 - x0)) + 2, int(0.1 * (y1 - y0)) + 2
        mask[max(0, y0 - gy):y1 + gy, max(0, x0 - gx):x1 + gx] = 0
        lx0, ly0, lx1, ly1 = label.box
        mask[:ly1 + 2, :lx1 + 2] = 0
        return mask


_IDENTITY = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


def _bookend_weights(num_frames: int, fps: Fraction) -> np.ndarray:
    """Per frame, how far the camera has eased back onto the portrait: 0 … 1 at the last frame (bookend chaining)."""
    span = max(1.0, min(BLEND_S * float(fps), (num_frames - 1) / 2.0))
    t = np.arange(num_frames, dtype=np.float64) - (num_frames - 1 - span)
    return _smoothstep(t / span)


def _colour_offset(frame: np.ndarray, portrait: np.ndarray, matrix: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Per-channel gain and offset taking a fresh render to ``frame``'s colours (the stitcher's colour hold), or None."""
    h, w = portrait.shape[:2]
    render = cv2.warpAffine(portrait, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    sel = mask > 0
    if sel.sum() < 16:
        return None
    src = render[sel].astype(np.float64)
    dst = frame[sel].astype(np.float64)
    gains, offsets = np.ones(3), np.zeros(3)
    for c in range(3):
        var = src[:, c].var()
        gain = np.cov(src[:, c], dst[:, c], bias=True)[0, 1] / var if var > 1.0 else 1.0
        gains[c] = np.clip(gain, 0.7, 1.3)
        offsets[c] = dst[:, c].mean() - gains[c] * src[:, c].mean()
    if np.all(np.abs(gains - 1.0) < 0.01) and np.all(np.abs(offsets) < 1.0):
        return None
    return gains, offsets


def _apply_colour(frame: np.ndarray, colour: tuple[np.ndarray, np.ndarray], weight: float) -> None:
    gains, offsets = colour
    g = 1.0 + (gains - 1.0) * weight
    o = offsets * weight
    ramp = np.arange(256, dtype=np.float64)[:, None]
    lut = np.clip(ramp * g[None, :] + o[None, :] + 0.5, 0, 255).astype(np.uint8).reshape(256, 1, 3)
    frame[...] = cv2.LUT(frame, lut)


__all__ = [
    "AnimaticGenerator",
    "CameraState",
    "MotionPath",
    "MouthGeometry",
    "estimate_camera",
    "frame_envelope",
    "locate_mouth",
    "mouth_opening",
    "render_mouth_patches",
]
