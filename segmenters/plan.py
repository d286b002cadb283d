"""The segment plan: the frame-exact contract between planner, generator and stitcher.

Segment ``i`` owns output frames ``[start_frame, end_frame)``; the owned ranges
tile ``[0, total_frames)`` exactly. It is *generated* over output frames
``[gen_start_frame, gen_start_frame + gen_frames)`` where
``gen_start_frame = start_frame - context_frames``: the context frames in front
are shared with segment ``i-1`` (the overlap the stitcher crossfades, or the
frames ``tail`` chaining conditions on), and ``gen_frames`` is rounded up to the
generator's grid (``frame_grid * k + 1``), so a clip may run past its owned end;
those extra frames are never shown. The audio span ``[audio_start_sample,
audio_end_sample)`` covers exactly the generated frames in master-track samples
(it may run past the end of the audio; the generator pads with silence).

The JSON form is versioned and stable; see README.md "Plan JSON".
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Literal

from orchestrator.errors import ConfigError
from orchestrator.timebase import fps_str, frame_to_sample, parse_fps

PLAN_VERSION = 1
CutKind = Literal["pause", "forced", "end"]
ChainMode = Literal["tail", "last-frame", "anchor", "bookend"]
CHAIN_MODES: tuple[str, ...] = ("tail", "last-frame", "anchor", "bookend")
# Modes whose segments do not depend on the previous one: they can run in any order, at the same time.
INDEPENDENT_MODES: tuple[str, ...] = ("anchor", "bookend")


@dataclass(frozen=True)
class FrameGrid:
    """A generator's shape rules: ``num_frames = frame_grid*k + 1`` (k ≥ 1), sizes multiples of ``spatial_multiple``."""

    frame_grid: int
    spatial_multiple: int
    max_frames: int | None = None  # the most frames one pass may generate (a hosted endpoint's limit); None: no limit

    def __post_init__(self) -> None:
        if self.frame_grid < 1 or self.spatial_multiple < 1:
            raise ValueError(f"grid must be positive, got {self}")

    def is_valid_num_frames(self, n: int) -> bool:
        return n >= self.frame_grid + 1 and (n - 1) % self.frame_grid == 0

    def round_up_frames(self, n: int) -> int:
        """Smallest valid ``num_frames`` ≥ n."""
        k = max(1, -(-(n - 1) // self.frame_grid))
        return self.frame_grid * k + 1

    def round_down_frames(self, n: int) -> int:
        """Largest valid ``num_frames`` ≤ n (raises if none)."""
        k = (n - 1) // self.frame_grid
        if k < 1:
            raise ValueError(f"no valid num_frames ≤ {n} on a grid of {self.frame_grid}")
        return self.frame_grid * k + 1


@dataclass(frozen=True)
class Segment:
    index: int
    start_frame: int
    end_frame: int
    context_frames: int
    gen_frames: int
    audio_start_sample: int
    audio_end_sample: int
    cut: CutKind
    pause_ms: int = 0

    @property
    def owned_frames(self) -> int:
        return self.end_frame - self.start_frame

    @property
    def gen_start_frame(self) -> int:
        """Output frame where this segment's clip starts (its first context frame)."""
        return self.start_frame - self.context_frames

    @property
    def gen_end_frame(self) -> int:
        return self.gen_start_frame + self.gen_frames


@dataclass(frozen=True)
class Plan:
    fps: Fraction
    frame_grid: int
    spatial_multiple: int
    sample_rate_hz: int
    trim_start_sample: int
    duration_samples: int
    total_frames: int
    width: int
    height: int
    chaining: ChainMode
    segments: tuple[Segment, ...]
    vad: str = "silero"
    version: int = PLAN_VERSION
    warnings: tuple[str, ...] = field(default=(), compare=False)

    @property
    def grid(self) -> FrameGrid:
        return FrameGrid(self.frame_grid, self.spatial_multiple)

    def frame_to_sample(self, frame: int) -> int:
        return frame_to_sample(frame, self.fps, self.sample_rate_hz)

    def owner_of(self, frame: int) -> Segment:
        """The segment that owns output frame ``frame``."""
        lo, hi = 0, len(self.segments) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.segments[mid].start_frame <= frame:
                lo = mid
            else:
                hi = mid - 1
        return self.segments[lo]

    # -- checks --------------------------------------------------------------------
    def validate(self, max_segment_s: float | None = None) -> None:
        """Raise ValueError naming the first broken invariant (tiling, grid, audio span, length)."""
        if self.version != PLAN_VERSION:
            raise ValueError(f"plan version {self.version} is not supported (this longtake reads {PLAN_VERSION})")
        if not self.segments:
            raise ValueError("plan has no segments")
        if self.total_frames <= 0:
            raise ValueError(f"total_frames must be positive, got {self.total_frames}")
        grid = self.grid
        expected_start = 0
        for i, seg in enumerate(self.segments):
            where = f"segment {i}"
            if seg.index != i:
                raise ValueError(f"{where}: index is {seg.index}")
            if seg.start_frame != expected_start:
                raise ValueError(f"{where}: starts at frame {seg.start_frame}, expected {expected_start} (owned ranges must tile)")
            if seg.end_frame <= seg.start_frame:
                raise ValueError(f"{where}: empty owned range [{seg.start_frame}, {seg.end_frame})")
            if seg.context_frames < 0 or (i == 0 and seg.context_frames != 0):
                raise ValueError(f"{where}: context_frames {seg.context_frames} not allowed here")
            if seg.gen_start_frame < 0:
                raise ValueError(f"{where}: context reaches before frame 0")
            if i > 0 and seg.context_frames > self.segments[i - 1].owned_frames + self.segments[i - 1].context_frames:
                raise ValueError(f"{where}: context_frames {seg.context_frames} longer than the previous clip")
            if not grid.is_valid_num_frames(seg.gen_frames):
                raise ValueError(f"{where}: gen_frames {seg.gen_frames} is not {self.frame_grid}k+1")
            if seg.gen_frames < seg.owned_frames + seg.context_frames:
                raise ValueError(f"{where}: gen_frames {seg.gen_frames} < owned {seg.owned_frames} + context {seg.context_frames}")
            if seg.gen_frames != grid.round_up_frames(seg.owned_frames + seg.context_frames):
                raise ValueError(f"{where}: gen_frames {seg.gen_frames} is not the smallest grid size that fits")
            if seg.audio_start_sample != self.frame_to_sample(seg.gen_start_frame) or seg.audio_end_sample != self.frame_to_sample(seg.gen_end_frame):
                raise ValueError(f"{where}: audio span [{seg.audio_start_sample}, {seg.audio_end_sample}) does not cover its generated frames")
            if max_segment_s is not None and Fraction(seg.gen_frames) / self.fps > Fraction(max_segment_s).limit_denominator(10**6):
                raise ValueError(f"{where}: generates {float(seg.gen_frames / self.fps):.2f} s > max_segment_s {max_segment_s}")
            expected_start = seg.end_frame
        if expected_start != self.total_frames:
            raise ValueError(f"segments end at frame {expected_start}, total_frames is {self.total_frames}")
        if self.segments[-1].cut != "end":
            raise ValueError("the last segment's cut must be 'end'")

    # -- JSON -------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "version": self.version,
            "fps": fps_str(self.fps),
            "frame_grid": self.frame_grid,
            "spatial_multiple": self.spatial_multiple,
            "width": self.width,
            "height": self.height,
            "chaining": self.chaining,
            "vad": self.vad,
            "sample_rate_hz": self.sample_rate_hz,
            "trim_start_sample": self.trim_start_sample,
            "duration_samples": self.duration_samples,
            "total_frames": self.total_frames,
            "segments": [asdict(s) for s in self.segments],
            "warnings": list(self.warnings),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_dict(cls, data: dict) -> "Plan":
        try:
            segments = tuple(Segment(**s) for s in data["segments"])
            plan = cls(
                version=int(data["version"]),
                fps=parse_fps(data["fps"]),
                frame_grid=int(data["frame_grid"]),
                spatial_multiple=int(data["spatial_multiple"]),
                width=int(data["width"]),
                height=int(data["height"]),
                chaining=data.get("chaining", "tail"),
                vad=data.get("vad", "silero"),
                sample_rate_hz=int(data["sample_rate_hz"]),
                trim_start_sample=int(data["trim_start_sample"]),
                duration_samples=int(data["duration_samples"]),
                total_frames=int(data["total_frames"]),
                segments=segments,
                warnings=tuple(data.get("warnings", ())),
            )
            plan.validate()
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"not a valid longtake plan: {exc}") from exc
        return plan

    @classmethod
    def load(cls, path: str | Path) -> "Plan":
        from orchestrator.errors import not_a_file

        path = Path(path)
        problem = not_a_file(path)
        if problem and problem != "does not exist":
            raise ConfigError(f"plan file {path} {problem}; name the plan.json that `longtake plan` wrote")
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError as exc:
            raise ConfigError(f"plan file not found: {path} (run `longtake plan PROJECT.yaml` first)") from exc
        except json.JSONDecodeError as exc:
            raise ConfigError(f"plan file {path} is not JSON: {exc}") from exc
        return cls.from_dict(data)

    def save(self, path: str | Path) -> None:
        from orchestrator.atomic import atomic_write_text

        atomic_write_text(Path(path), self.to_json())


def make_segment(
    index: int,
    start_frame: int,
    end_frame: int,
    context_frames: int,
    grid: FrameGrid,
    fps: Fraction,
    sample_rate_hz: int,
    cut: CutKind,
    pause_ms: int = 0,
) -> Segment:
    """Build a segment with its grid-rounded generation length and exact audio span."""
    gen_frames = grid.round_up_frames(end_frame - start_frame + context_frames)
    gen_start = start_frame - context_frames
    return Segment(
        index=index,
        start_frame=start_frame,
        end_frame=end_frame,
        context_frames=context_frames,
        gen_frames=gen_frames,
        audio_start_sample=frame_to_sample(gen_start, fps, sample_rate_hz),
        audio_end_sample=frame_to_sample(gen_start + gen_frames, fps, sample_rate_hz),
        cut=cut,
        pause_ms=pause_ms,
    )
