"""Which clip frames make each output frame, and how they are combined.

Two halves, kept apart so the first can be tested exhaustively without video:

* ``clip_uses(plan, i)``: the schedule. For every frame of segment ``i``'s clip
  it says which output frame it lands on, its crossfade weight, how far the
  colour correction has ramped from the previous segment's, and whether the
  output frame is complete once this clip's frame is added. Pure integers and
  floats from the plan.
* ``Compositor``: renders one output frame from its layers (decoded YCbCr
  4:4:4 planes + a per-layer affine colour matrix + a weight) straight into the
  planes of a 4:2:0 output frame: crop/scale, colour, blend, chroma subsampling,
  all with OpenCV primitives that cost about a millisecond a 1080×1920 frame.

Blends are computed in float and rounded once (``cv2.addWeighted`` rounds its
float result; longer sums accumulate in float32). The crossfade ramp is a
raised cosine sampled at frame centres, so the overlap's frames are all
partial mixes and the frames on either side are pure.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Sequence, TypeVar

import cv2
import numpy as np

from orchestrator.errors import LongtakeError
from segmenters.plan import Plan

SeamKind = str  # "blend" | "drop" | "cut"
T = TypeVar("T")


def raised_cosine(k: int, n: int) -> float:
    """Weight of the incoming clip at step ``k`` of an ``n``-step ramp: rises from ~0 to ~1, symmetric."""
    if n <= 0:
        return 1.0
    return 0.5 - 0.5 * math.cos(math.pi * (k + 0.5) / n)


def seam_kind(plan: Plan, i: int) -> SeamKind:
    """How segment ``i`` (≥ 1) joins segment ``i-1``.

    ``blend``: its first ``context_frames`` are crossfaded with the previous clip
    (tail and anchor chaining). ``drop``: they duplicate frames already shown and
    are skipped (last-frame chaining). ``cut``: no shared frames.
    """
    seg = plan.segments[i]
    if plan.chaining == "last-frame":
        return "drop" if seg.context_frames > 0 else "cut"
    return "blend" if seg.context_frames > 0 else "cut"


@dataclass(frozen=True)
class FrameUse:
    """What one clip frame does."""

    output_frame: int
    weight: float  # in a blend: the weight of this clip against everything before it; else 1
    blend: bool
    color_mix: float  # 1: this segment's correction; t < 1: lerp(previous segment's, this one's, t)
    final: bool  # no later clip contributes to this output frame: emit it after adding this one


def clip_frames_needed(plan: Plan, i: int) -> int:
    """How many leading frames of segment ``i``'s clip the output uses (the rest are grid padding)."""
    seg = plan.segments[i]
    return seg.end_frame - seg.gen_start_frame


def clip_uses(plan: Plan, i: int, color_ramp_frames: int = 0) -> list[FrameUse | None]:
    """The schedule for segment ``i``'s clip: one entry per needed frame, ``None`` for a dropped duplicate."""
    seg = plan.segments[i]
    n = len(plan.segments)
    kind = seam_kind(plan, i) if i > 0 else "cut"
    ramp = min(color_ramp_frames, seg.owned_frames) if i > 0 and kind != "blend" else 0
    hold_from = seg.end_frame
    if i + 1 < n and seam_kind(plan, i + 1) == "blend":
        hold_from = plan.segments[i + 1].gen_start_frame
    uses: list[FrameUse | None] = []
    for j in range(clip_frames_needed(plan, i)):
        f = seg.gen_start_frame + j
        if f < seg.start_frame:
            if kind == "drop" or kind == "cut":
                uses.append(None)
                continue
            uses.append(FrameUse(f, raised_cosine(j, seg.context_frames), True, 1.0, f < hold_from))
            continue
        k = f - seg.start_frame
        mix = raised_cosine(k, ramp) if k < ramp else 1.0
        uses.append(FrameUse(f, 1.0, False, mix, f < hold_from))
    return uses


def assemble(
    plan: Plan,
    open_clip: Callable[[int], Iterable[T]],
    make_layer: Callable[[int, FrameUse, T], "Layer"],
    color_ramp_frames: int = 0,
) -> Iterator[tuple[int, list["Layer"]]]:
    """Yield ``(output_frame, layers)`` for frames 0 … total_frames-1, in order, each as soon as it is complete.

    Clips are opened (``open_clip(i)``) and read one after another; only the
    frames of the overlap currently being crossfaded are held. A blend scales
    what the frame held so far by ``1 - w`` and adds the incoming clip's layer
    at ``w``, so nested overlaps compose correctly.
    """
    pending: deque[tuple[int, list[Layer]]] = deque()
    expected = 0
    for i in range(len(plan.segments)):
        uses = clip_uses(plan, i, color_ramp_frames)
        held: deque[tuple[int, list[Layer]]] = deque()
        read = 0
        frames = iter(open_clip(i))
        for use, item in zip(uses, frames):
            read += 1
            if use is None:
                continue  # a duplicate of a frame already shown (last-frame chaining)
            layer = make_layer(i, use, item)
            if use.blend:
                f, layers = pending.popleft()
                if f != use.output_frame:
                    raise LongtakeError(f"internal error: segment {i} blends into frame {use.output_frame} but frame {f} is waiting")
                layers = [old.scaled(1.0 - use.weight) for old in layers] + [layer]
            else:
                layers = [layer]
            if use.final:
                if use.output_frame != expected:
                    raise LongtakeError(f"internal error: output frame {use.output_frame} is complete before frame {expected}")
                expected += 1
                yield use.output_frame, layers
            else:
                held.append((use.output_frame, layers))
        close = getattr(frames, "close", None)
        if close is not None:
            close()  # release the decoder now, not when the garbage collector gets to it
        if read < len(uses):
            raise LongtakeError(f"segment {i}: its clip gave {read} frames, the stitch needs {len(uses)}")
        if pending:
            raise LongtakeError(f"internal error: {len(pending)} frames before segment {i} were never completed")
        pending = held
    if pending or expected != plan.total_frames:
        raise LongtakeError(f"internal error: assembled {expected} frames, the plan has {plan.total_frames}")


# -- geometry ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Geometry:
    """How a source frame maps onto the output: a centred crop to the output's aspect, then a scale if needed."""

    src_width: int
    src_height: int
    out_width: int
    out_height: int
    crop_x: int
    crop_y: int
    crop_width: int
    crop_height: int

    @property
    def scales(self) -> bool:
        return (self.crop_width, self.crop_height) != (self.out_width, self.out_height)

    def window(self, plane: np.ndarray) -> np.ndarray:
        return plane[self.crop_y : self.crop_y + self.crop_height, self.crop_x : self.crop_x + self.crop_width]

    def full(self, plane: np.ndarray) -> np.ndarray:
        """The plane at output size (a view when only cropping)."""
        win = self.window(plane)
        if not self.scales:
            return win
        down = self.crop_width >= self.out_width
        return cv2.resize(win, (self.out_width, self.out_height), interpolation=cv2.INTER_AREA if down else cv2.INTER_CUBIC)

    def half(self, plane: np.ndarray, dst: np.ndarray | None = None) -> np.ndarray:
        """The plane at half output size (4:2:0 chroma): box-filtered."""
        win = self.window(plane)
        size = (self.out_width // 2, self.out_height // 2)
        interp = cv2.INTER_AREA if self.crop_width >= size[0] else cv2.INTER_CUBIC
        if dst is None:
            return cv2.resize(win, size, interpolation=interp)
        out = cv2.resize(win, size, dst=dst, interpolation=interp)
        if out is not dst:
            np.copyto(dst, out)
        return dst


def fit_geometry(src_width: int, src_height: int, out_width: int, out_height: int) -> Geometry:
    """Largest centred window of the output's aspect ratio; scaled only when its size differs (never stretched)."""
    if src_width <= 0 or src_height <= 0 or out_width <= 0 or out_height <= 0:
        raise ValueError(f"sizes must be positive, got {src_width}×{src_height} → {out_width}×{out_height}")
    # Compare aspect ratios exactly in integers: src_w/src_h vs out_w/out_h.
    if src_width * out_height > out_width * src_height:
        crop_h = src_height
        crop_w = min(src_width, round(src_height * out_width / out_height))
    else:
        crop_w = src_width
        crop_h = min(src_height, round(src_width * out_height / out_width))
    return Geometry(src_width, src_height, out_width, out_height, (src_width - crop_w) // 2, (src_height - crop_h) // 2, crop_w, crop_h)


# -- rendering -------------------------------------------------------------------------------------------------


@dataclass
class Layer:
    """One source frame's contribution: YCbCr 4:4:4 planes, a 3×4 matrix to output codes, a weight."""

    planes: tuple[np.ndarray, np.ndarray, np.ndarray]
    matrix: np.ndarray  # float64 [3, 4]: source [Y, Cb, Cr, 1] → output [Y, Cb, Cr]
    weight: float
    keep: object = None  # the decoded frame owning the planes' memory

    def scaled(self, factor: float) -> "Layer":
        return Layer(self.planes, self.matrix, self.weight * factor, self.keep)


_EPS = 1e-7
IDENTITY = np.eye(3, 4)
IDENTITY.setflags(write=False)
_IDENTITY_ROWS = [row.tolist() for row in IDENTITY]


def canonical_matrix(matrix: np.ndarray, atol: float = 1e-9) -> np.ndarray:
    """``IDENTITY`` itself when ``matrix`` is the identity to within ``atol``, so renders can take the copy path."""
    return IDENTITY if np.allclose(matrix, IDENTITY, atol=atol) else matrix


def _round_into(acc: np.ndarray, dst: np.ndarray) -> None:
    np.clip(acc, 0.0, 255.0, out=acc)
    np.rint(acc, out=acc)
    np.copyto(dst, acc, casting="unsafe")


def _written(out: np.ndarray, dst: np.ndarray) -> None:
    if out is not dst:  # OpenCV reallocates when it cannot write into a view; never silently
        np.copyto(dst, out)


def _combine(terms: list[tuple[np.ndarray, float]], const: float, dst: np.ndarray) -> None:
    """dst = round(Σ coeff·plane + const), saturated to uint8, computed in float and rounded once."""
    terms = [(p, c) for p, c in terms if abs(c) > _EPS]
    if not terms:
        dst[...] = int(np.clip(np.rint(const), 0, 255))
        return
    if len(terms) == 1:
        plane, c = terms[0]
        if abs(c - 1.0) < _EPS and abs(const) < _EPS:
            np.copyto(dst, plane)
        elif c > 0 and const >= -0.5:
            # c·x + const ≥ 0 for every uint8 x, so |c·x + const| is the value itself: one SIMD pass,
            # about half the cost of a 256-entry LUT.
            _written(cv2.convertScaleAbs(plane, dst=dst, alpha=c, beta=const), dst)
        else:
            _written(cv2.addWeighted(plane, c, plane, 0.0, const, dst=dst), dst)
        return
    if len(terms) == 2:
        (p0, c0), (p1, c1) = terms
        _written(cv2.addWeighted(p0, c0, p1, c1, const, dst=dst), dst)
        return
    acc = cv2.addWeighted(terms[0][0], terms[0][1], terms[1][0], terms[1][1], const, dtype=cv2.CV_32F)
    rest = terms[2:]
    for k in range(0, len(rest), 2):
        if k + 1 < len(rest):
            part = cv2.addWeighted(rest[k][0], rest[k][1], rest[k + 1][0], rest[k + 1][1], 0.0, dtype=cv2.CV_32F)
        else:
            part = rest[k][0].astype(np.float32) * np.float32(rest[k][1])
        cv2.add(acc, part, dst=acc)
    _round_into(acc, dst)


class Compositor:
    """Render layers into the Y, U, V planes of a 4:2:0 output frame at the geometry's output size."""

    def __init__(self, geometry: Geometry):
        if geometry.out_width % 2 or geometry.out_height % 2:
            raise ValueError(f"4:2:0 output needs an even size, got {geometry.out_width}×{geometry.out_height}")
        self.geometry = geometry

    def render(self, layers: Sequence[Layer], dst: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
        geo = self.geometry
        full_cache: dict[tuple[int, int], np.ndarray] = {}
        half_cache: dict[tuple[int, int], np.ndarray] = {}

        def full(li: int, c: int) -> np.ndarray:
            key = (li, c)
            if key not in full_cache:
                full_cache[key] = geo.full(layers[li].planes[c])
            return full_cache[key]

        def half(li: int, c: int) -> np.ndarray:
            key = (li, c)
            if key not in half_cache:
                half_cache[key] = geo.half(layers[li].planes[c])
            return half_cache[key]

        # Luma at full output resolution.
        terms, const = [], 0.0
        for li, layer in enumerate(layers):
            row = layer.matrix[0] * layer.weight
            const += row[3]
            terms += [(full(li, c), row[c]) for c in range(3) if abs(row[c]) > _EPS]
        _combine(terms, const, dst[0])

        # Chroma at half resolution: subsample each source, then combine (all linear).
        for out_c in (1, 2):
            if len(layers) == 1 and layers[0].weight == 1.0 and (layers[0].matrix is IDENTITY or layers[0].matrix[out_c].tolist() == _IDENTITY_ROWS[out_c]):
                geo.half(layers[0].planes[out_c], dst=dst[out_c])  # straight into the output plane
                continue
            terms, const = [], 0.0
            for li, layer in enumerate(layers):
                row = layer.matrix[out_c] * layer.weight
                const += row[3]
                terms += [(half(li, c), row[c]) for c in range(3) if abs(row[c]) > _EPS]
            _combine(terms, const, dst[out_c])
