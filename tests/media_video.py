"""Synthetic video media for tests: plans, segment clips whose frames say who they are, master audio.

Every clip frame carries, in flat blocks big enough to survive H.264 twice:

* the OUTPUT frame index it stands for, as 12 black/white 16×16 bits in the
  central 128 columns (``read_index``; centred, so a centred crop to 128 wide
  keeps them all), identical in both clips of an overlap, so a blend keeps it
  readable and a dropped, repeated or misplaced frame shows up as a wrong index;
* a 32×32 grey "probe" block whose level says which segment drew it
  (``PROBE_LEVELS`` alternate between segments), so the level read back from a
  crossfaded frame gives the blend weight (``probe_weight``);
* below them, a coloured scene (gradient + a skin-toned ellipse) that a test
  can tint per segment to plant colour drift.

Every bit is drawn next to its complement and the probe next to its mirror,
so all frames have the same histogram: colour statistics of any two frames
differ only by the tint a test planted, never by which frame they are.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Callable, Sequence

import av
import numpy as np
import soundfile as sf

from orchestrator.timebase import frame_to_sample
from segmenters.plan import FrameGrid, Plan, make_segment
from stitchers.clip_io import ClipWriter

BLOCK = 16
BITS = 12  # frame indices up to 4095
MARKS_WIDTH = 128  # the marks fill the central 128 columns: 8 blocks a row
PROBE = (slice(48, 80), slice(0, 32))  # relative to the marks' left edge; its mirror sits right of it
PROBE_LEVELS = (30, 220)
SCENE_TOP = 80  # rows from here down are the scene


def make_plan(
    owned: Sequence[int],
    context: int,
    chaining: str = "tail",
    *,
    fps: Fraction | int = 24,
    width: int = 128,
    height: int = 224,
    frame_grid: int = 8,
    sample_rate_hz: int = 48000,
    trim_start_sample: int = 0,
) -> Plan:
    """A valid plan with the given owned lengths; every segment after the first has ``context`` context frames."""
    fps = Fraction(fps)
    grid = FrameGrid(frame_grid, 32)
    segments, start = [], 0
    for i, n in enumerate(owned):
        cut = "end" if i == len(owned) - 1 else "pause"
        segments.append(make_segment(i, start, start + n, 0 if i == 0 else context, grid, fps, sample_rate_hz, cut))
        start += n
    plan = Plan(
        fps=fps,
        frame_grid=frame_grid,
        spatial_multiple=32,
        sample_rate_hz=sample_rate_hz,
        trim_start_sample=trim_start_sample,
        duration_samples=frame_to_sample(start, fps, sample_rate_hz),
        total_frames=start,
        width=width,
        height=height,
        chaining=chaining,  # type: ignore[arg-type]
        segments=tuple(segments),
    )
    plan.validate()
    return plan


def scene(width: int, height: int) -> np.ndarray:
    """The coloured part of every frame: a warm/cool gradient with a skin-toned ellipse."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.empty((height, width, 3), np.float32)
    img[..., 0] = 70 + 90 * xx / width
    img[..., 1] = 80 + 60 * yy / height
    img[..., 2] = 150 - 60 * xx / width
    face = ((yy - height * 0.6) / (height * 0.22)) ** 2 + ((xx - width * 0.5) / (width * 0.3)) ** 2 < 1
    img[face] = (205, 160, 135)
    return img


def draw_frame(width: int, height: int, index: int, segment: int, *, base: np.ndarray | None = None, gain: Sequence[float] = (1, 1, 1), offset: float = 0.0) -> np.ndarray:
    """One clip frame standing for output frame ``index``, drawn by ``segment``, tinted by gain/offset."""
    img = (scene(width, height) if base is None else base).copy()
    img[:SCENE_TOP] = 128
    x0 = _marks_left(width)
    if not 0 <= index < 1 << BITS:
        raise ValueError(f"frame index {index} does not fit {BITS} bits")
    for bit in range(2 * BITS):  # bits, then their complements
        on = bool((index >> (bit % BITS)) & 1) != (bit >= BITS)
        row, col = divmod(bit, MARKS_WIDTH // BLOCK)
        img[row * BLOCK : (row + 1) * BLOCK, x0 + col * BLOCK : x0 + (col + 1) * BLOCK] = 255 if on else 0
    level = PROBE_LEVELS[segment % 2]
    width_p = PROBE[1].stop - PROBE[1].start
    img[PROBE[0], x0 + PROBE[1].start : x0 + PROBE[1].stop] = level
    img[PROBE[0], x0 + PROBE[1].stop : x0 + PROBE[1].stop + width_p] = sum(PROBE_LEVELS) - level
    img = img * np.asarray(gain, np.float32) + offset
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _marks_left(width: int) -> int:
    if width < MARKS_WIDTH:
        raise ValueError(f"test frames must be at least {MARKS_WIDTH} wide, got {width}")
    return (width - MARKS_WIDTH) // 2


def read_index(rgb: np.ndarray) -> int:
    """The output frame index written by ``draw_frame`` (marks expected centred, as a centred crop leaves them)."""
    grey = rgb.astype(np.float32).mean(axis=-1)
    x0 = _marks_left(rgb.shape[1])
    value = 0
    for bit in range(BITS):
        row, col = divmod(bit, MARKS_WIDTH // BLOCK)
        y, x = row * BLOCK + BLOCK // 2, x0 + col * BLOCK + BLOCK // 2
        if grey[y - 3 : y + 3, x - 3 : x + 3].mean() > 128:
            value |= 1 << bit
    return value


def read_probe(rgb: np.ndarray) -> float:
    grey = rgb.astype(np.float32).mean(axis=-1)
    x0 = _marks_left(rgb.shape[1])
    return float(grey[PROBE[0].start + 8 : PROBE[0].stop - 8, x0 + PROBE[1].start + 8 : x0 + PROBE[1].stop - 8].mean())


def probe_weight(level: float, incoming_segment: int) -> float:
    """Weight of ``incoming_segment`` in a probe level read from a blend with the segment before it."""
    old, new = PROBE_LEVELS[(incoming_segment - 1) % 2], PROBE_LEVELS[incoming_segment % 2]
    return (level - old) / (new - old)


def write_clips(
    plan: Plan,
    folder: Path,
    *,
    gains: Sequence[Sequence[float]] | None = None,
    tint: Callable[[int, int], Sequence[float]] | None = None,
) -> list[Path]:
    """One clip per segment, ``gen_frames`` long, frame j standing for output frame ``gen_start_frame + j``.

    ``gains[i]`` tints all of segment i; ``tint(segment, output_frame)`` tints frame by frame (a drift in time).
    """
    folder.mkdir(parents=True, exist_ok=True)
    base = scene(plan.width, plan.height)
    paths = []
    for seg in plan.segments:
        path = folder / f"seg{seg.index:03d}.mp4"
        with ClipWriter(path, plan.width, plan.height, plan.fps, preset="ultrafast") as writer:
            for j in range(seg.gen_frames):
                f = seg.gen_start_frame + j
                gain = tint(seg.index, f) if tint is not None else gains[seg.index] if gains is not None else (1, 1, 1)
                writer.write(draw_frame(plan.width, plan.height, f, seg.index, base=base, gain=gain))
        paths.append(path)
    return paths


def write_master(path: Path, plan: Plan, *, sample_rate_hz: int | None = None, channels: int = 1, clicks_s: Sequence[float] = (), seconds: float | None = None) -> Path:
    """A float32 WAV as long as the plan's video (or ``seconds``): a quiet tone with unit clicks at ``clicks_s``."""
    rate = sample_rate_hz or plan.sample_rate_hz
    n = round(float(plan.total_frames / plan.fps) * rate) if seconds is None else round(seconds * rate)
    t = np.arange(n) / rate
    mono = (0.05 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    for c in clicks_s:
        k = round(c * rate)
        if 0 <= k < n:
            mono[k] = 1.0
    sf.write(str(path), np.repeat(mono[:, None], channels, axis=1), rate, subtype="FLOAT")
    return path


def decode_rgb(path: Path) -> list[np.ndarray]:
    """All frames of a (small) video as RGB uint8, converted with the file's own colour tags."""
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(container.streams.video[0])]


def decode_audio(path: Path) -> tuple[np.ndarray, int]:
    """The first audio stream as float32 [channels, samples] and its rate (edit lists applied, as players do)."""
    chunks, rate = [], 0
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        for frame in container.decode(stream):
            rate = frame.sample_rate
            chunks.append(frame.to_ndarray().reshape(len(frame.layout.channels), -1))
    return np.concatenate(chunks, axis=1), rate
