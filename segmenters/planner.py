"""The planner: where to cut a long voiceover into ≤20-s generation segments.

Cuts go in pauses. Candidate cut frames are taken inside every pause of at
least ``min_pause_ms`` (a few around its middle, so one of them makes the
segment land exactly on the generator's ``8k+1`` grid and no frame is
generated in vain); where speech runs longer than a segment may be with no such
pause, the quietest frames become "forced" candidates with a large penalty.
Dynamic programming then picks the cut sequence of least total cost:

    cost = Σ_segments  w_length · ((owned_s − target_s) / target_s)²      (close to target length)
         + Σ_cuts      −w_pause · pause_score + w_forced · [forced]       (long, deep pauses)
         + Σ_segments  w_waste · wasted_frames / frame_grid              (grid-aligned)

subject to ``owned_s ≥ min_segment_s`` and ``gen_frames / fps ≤ max_segment_s``
where ``gen_frames`` = owned + context rounded up to the grid. The DP is exact
over the candidates, so forced cuts appear only where no pause path exists.
With a captions script, a pause holding a sentence end (from the alignment)
earns ``W_SENTENCE`` more, so of two equal pauses the one between sentences wins.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Sequence

import numpy as np

from orchestrator.errors import ConfigError, MediaError
from orchestrator.timebase import format_timestamp, frame_to_sample, sample_to_frame
from segmenters.plan import ChainMode, FrameGrid, Plan, Segment, make_segment

log = logging.getLogger("longtake")

VAD_RATE_HZ = 16_000

# Cost weights (dimensionless). A cut in a 1-s pause is worth about as much as
# a segment 70 % off its target length; a forced cut is worse than anything a
# pause path can cost.
W_LENGTH = 1.0
W_PAUSE = 0.5
W_FORCED = 25.0
W_WASTE = 0.05
W_SENTENCE = 0.1  # a pause at a sentence end (from the script) is worth this much more: ~200 ms of pause length
PAUSE_SATURATION_MS = 1000  # pauses longer than this are all equally good cut points
PAUSE_MARGIN_MS = 60  # keep cuts this far from the speech on either side of a pause


@dataclass(frozen=True)
class PlannerSettings:
    max_segment_s: float
    min_segment_s: float
    target_segment_s: float
    min_pause_ms: int
    vad_threshold: float = 0.5


@dataclass(frozen=True)
class FrameFeatures:
    """Per-video-frame features of the voiceover (index = output frame)."""

    speech_prob: np.ndarray  # float32 [total_frames], max VAD probability inside the frame
    energy_db: np.ndarray  # float32 [total_frames], RMS level of the 16 kHz copy


@dataclass(frozen=True)
class _Candidate:
    frame: int
    kind: str  # "pause" | "forced"
    reward: float  # higher is better
    pause_ms: int


def context_frames_for(chaining: ChainMode, context_frames: int, anchor_overlap_frames: int, grid: FrameGrid) -> int:
    """Frames segment i shares with segment i-1 for a chaining mode; validates tail context against the grid."""
    if chaining == "tail":
        if not grid.is_valid_num_frames(context_frames) and context_frames != 1:
            lo = grid.round_down_frames(max(context_frames, grid.frame_grid + 1))
            hi = grid.round_up_frames(context_frames)
            raise ConfigError(
                f"segmenter.context_frames is {context_frames}, but tail chaining re-encodes the context through the "
                f"video VAE, so it must be {grid.frame_grid}k+1 frames; use {lo} or {hi}"
            )
        return context_frames
    if chaining == "last-frame":
        return 1
    if chaining == "bookend":
        return 0  # every segment starts and ends on the portrait: nothing to share with its neighbours
    return anchor_overlap_frames


def frame_features(vad_probs: np.ndarray, hop_samples: int, audio_16k: np.ndarray, total_frames: int, fps: Fraction) -> FrameFeatures:
    """Resample VAD probabilities and audio energy onto the video frame grid."""
    bounds = np.array([frame_to_sample(f, fps, VAD_RATE_HZ) for f in range(total_frames + 1)], dtype=np.int64)
    # VAD frame j covers [j*hop, (j+1)*hop): it touches every video frame its span overlaps.
    speech = np.zeros(total_frames, dtype=np.float32)
    if len(vad_probs):
        starts = np.arange(len(vad_probs), dtype=np.int64) * hop_samples
        first = np.clip(np.searchsorted(bounds, starts, side="right") - 1, 0, total_frames - 1)
        last = np.clip(np.searchsorted(bounds, starts + hop_samples - 1, side="right") - 1, 0, total_frames - 1)
        np.maximum.at(speech, first, vad_probs.astype(np.float32))
        np.maximum.at(speech, last, vad_probs.astype(np.float32))
    padded = np.zeros(bounds[-1], dtype=np.float32)
    n = min(len(audio_16k), len(padded))
    padded[:n] = audio_16k[:n]
    sq = np.concatenate([[0.0], np.cumsum(padded.astype(np.float64) ** 2)])
    lengths = np.maximum(np.diff(bounds), 1)
    rms = np.sqrt((sq[bounds[1:]] - sq[bounds[:-1]]) / lengths)
    energy_db = (20 * np.log10(np.maximum(rms, 1e-6))).astype(np.float32)
    return FrameFeatures(speech_prob=speech, energy_db=energy_db)


def find_pauses(speech_prob: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """Maximal runs [a, b) of frames whose speech probability is below ``threshold``."""
    quiet = speech_prob < threshold
    edges = np.diff(np.concatenate([[0], quiet.astype(np.int8), [0]]))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    return list(zip(starts.tolist(), ends.tolist()))


def _candidates(features: FrameFeatures, settings: PlannerSettings, grid: FrameGrid, fps: Fraction,
                sentence_end_frames: Sequence[int] = ()) -> list[_Candidate]:
    total = len(features.speech_prob)
    ends = np.sort(np.asarray(sentence_end_frames, dtype=np.int64))
    frame_ms = 1000 / float(fps)
    cands: dict[int, _Candidate] = {}
    for a, b in find_pauses(features.speech_prob, settings.vad_threshold):
        if a == 0 or b == total:
            continue  # leading/trailing silence is not a join between two stretches of speech
        pause_ms = int(round((b - a) * frame_ms))
        if pause_ms < settings.min_pause_ms:
            continue
        margin = min(int(math.ceil(PAUSE_MARGIN_MS / frame_ms)), (b - a) // 4)
        lo, hi = a + margin, b - margin  # cut frame c: frame c-1 ends a segment, frame c starts the next
        if hi < lo:
            lo = hi = (a + b) // 2
        depth = 1.0 - float(features.speech_prob[a:b].mean())
        reward = W_PAUSE * (min(pause_ms, PAUSE_SATURATION_MS) / PAUSE_SATURATION_MS + 0.25 * depth)
        if len(ends) and np.searchsorted(ends, a) < np.searchsorted(ends, b):
            reward += W_SENTENCE  # a join between sentences reads as a new thought; within one it reads as a glitch
        mid = (a + b) // 2
        # One full grid period of positions around the middle lets the DP align the segment to 8k+1.
        half = grid.frame_grid // 2 + 1
        for c in range(max(lo, mid - half), min(hi, mid + half) + 1):
            off_centre = abs(c - mid) / max(1, (b - a) / 2)
            cands[c] = _Candidate(c, "pause", reward - 0.1 * W_PAUSE * off_centre, pause_ms)
    # Forced candidates: the quietest frame in each quarter second of speech.
    window = max(1, int(round(float(fps) / 4)))
    energy = features.energy_db
    for start in range(1, total - 1, window):
        stop = min(total - 1, start + window)
        c = start + int(np.argmin(energy[start:stop]))
        if c not in cands:
            cands[c] = _Candidate(c, "forced", -W_FORCED + 0.01 * float(-energy[c]), 0)
    return sorted(cands.values(), key=lambda c: c.frame)


def choose_cuts(
    total_frames: int,
    candidates: list[_Candidate],
    settings: PlannerSettings,
    grid: FrameGrid,
    fps: Fraction,
    context_frames: int,
) -> list[_Candidate]:
    """Exact DP over candidate cuts; returns the chosen interior cuts in order."""
    fps_f = float(fps)
    max_gen = int(math.floor(settings.max_segment_s * fps_f + 1e-9))
    if max_gen < grid.frame_grid + 1:
        raise ConfigError(f"segmenter.max_segment_s {settings.max_segment_s:g} s is shorter than one generator pass ({grid.frame_grid + 1} frames at {fps_f:g} fps)")
    if grid.max_frames is not None:
        max_gen = min(max_gen, grid.max_frames)
    max_gen = grid.round_down_frames(max_gen)
    min_owned = int(math.ceil(settings.min_segment_s * fps_f - 1e-9))
    target_s = settings.target_segment_s

    frames = np.array([0] + [c.frame for c in candidates] + [total_frames], dtype=np.int64)
    rewards = np.array([0.0] + [c.reward for c in candidates] + [0.0])
    n = len(frames)
    best = np.full(n, np.inf)
    back = np.full(n, -1, dtype=np.int64)
    best[0] = 0.0
    for j in range(1, n):
        # predecessors i with a feasible segment [frames[i], frames[j])
        owned = frames[j] - frames[:j]
        ctx = np.where(np.arange(j) == 0, 0, context_frames)
        need = owned + ctx
        k = np.maximum(1, -(-(need - 1) // grid.frame_grid))
        gen = grid.frame_grid * k + 1
        ok = (owned >= min_owned) & (gen <= max_gen) & np.isfinite(best[:j]) & (owned > ctx)
        if j == n - 1 and not ok.any():
            # The tail end may be shorter than min_segment_s when nothing else fits.
            ok = (gen <= max_gen) & np.isfinite(best[:j]) & (owned > ctx)
        if not ok.any():
            continue
        owned_s = owned / fps_f
        cost = best[:j] + W_LENGTH * ((owned_s - target_s) / target_s) ** 2 + W_WASTE * (gen - need) / grid.frame_grid - rewards[j]
        cost = np.where(ok, cost, np.inf)
        i = int(np.argmin(cost))
        best[j], back[j] = cost[i], i
    if not np.isfinite(best[-1]):
        raise ConfigError(
            f"cannot split {total_frames / fps_f:.1f} s into segments of {settings.min_segment_s:g}–{settings.max_segment_s:g} s "
            f"with {context_frames} context frames; lower segmenter.min_segment_s or segmenter.context_frames"
        )
    chosen = []
    j = back[n - 1]
    while j > 0:
        chosen.append(candidates[j - 1])
        j = back[j]
    return chosen[::-1]


def plan_voiceover(
    *,
    duration_samples: int,
    sample_rate_hz: int,
    trim_start_sample: int,
    audio_16k: np.ndarray,
    vad_probs: np.ndarray,
    vad_hop_samples: int,
    vad_name: str,
    settings: PlannerSettings,
    grid: FrameGrid,
    fps: Fraction,
    width: int,
    height: int,
    chaining: ChainMode,
    context_frames: int,
    sentence_end_frames: Sequence[int] = (),
) -> Plan:
    """Turn a (trimmed, normalised) voiceover and its VAD into a frame-exact segment plan.

    ``sentence_end_frames``: where the script's sentences end (from the captions' alignment); a pause holding
    one is preferred over an otherwise equal pause inside a sentence.
    """
    total_frames = sample_to_frame(duration_samples, fps, sample_rate_hz)
    if total_frames < grid.frame_grid + 1:
        raise MediaError(f"the voiceover is {duration_samples / sample_rate_hz:.2f} s long; longtake needs at least {(grid.frame_grid + 1) / float(fps):.2f} s")
    features = frame_features(vad_probs, vad_hop_samples, audio_16k, total_frames, fps)
    if not (features.speech_prob >= settings.vad_threshold).any():
        raise MediaError(
            f"no speech found in the voiceover by the {vad_name} VAD (threshold {settings.vad_threshold:g}); "
            "check that it is the right file, or try `--vad energy` / a lower segmenter.vad_threshold"
        )
    candidates = _candidates(features, settings, grid, fps, sentence_end_frames)
    cuts = choose_cuts(total_frames, candidates, settings, grid, fps, context_frames)

    warnings: list[str] = []
    bounds = [0] + [c.frame for c in cuts] + [total_frames]
    segments: list[Segment] = []
    for idx in range(len(bounds) - 1):
        cut = cuts[idx] if idx < len(cuts) else None
        kind = "end" if cut is None else cut.kind
        if cut is not None and cut.kind == "forced":
            at = format_timestamp(cut.frame / float(fps) + trim_start_sample / sample_rate_hz)
            warnings.append(
                f"forced cut at {at} (voiceover time): no pause of ≥ {settings.min_pause_ms} ms within {settings.max_segment_s:g} s; "
                "cut at the quietest point. A short pause in the recording there would hide this join better."
            )
        segments.append(
            make_segment(
                index=idx,
                start_frame=bounds[idx],
                end_frame=bounds[idx + 1],
                context_frames=0 if idx == 0 else context_frames,
                grid=grid,
                fps=fps,
                sample_rate_hz=sample_rate_hz,
                cut=kind,
                pause_ms=cut.pause_ms if cut is not None else 0,
            )
        )
    for w in warnings:
        log.warning(w)
    plan = Plan(
        fps=fps,
        frame_grid=grid.frame_grid,
        spatial_multiple=grid.spatial_multiple,
        sample_rate_hz=sample_rate_hz,
        trim_start_sample=trim_start_sample,
        duration_samples=duration_samples,
        total_frames=total_frames,
        width=width,
        height=height,
        chaining=chaining,
        segments=tuple(segments),
        vad=vad_name,
        warnings=tuple(warnings),
    )
    plan.validate(max_segment_s=settings.max_segment_s)
    return plan


def generation_size(width: int, height: int, spatial_multiple: int) -> tuple[int, int]:
    """Round the output size up to the generator's multiple; the stitcher crops back (1080×1920 → 1088×1920)."""
    def up(v: int) -> int:
        return -(-v // spatial_multiple) * spatial_multiple

    return up(width), up(height)
