"""Seams: how much a join (planned, or found) stands out from the second of video around it.

Two per-frame series feed this: the frame difference ``diff[t]`` (between
frames t−1 and t) and the optical-flow magnitude ``flow[t]``. A hard cut is a
one-frame spike; a crossfade spreads the same change over its frames (for a
linear dissolve the per-pixel differences sum to exactly the cut's jump), so
a join is scored twice: the largest single-frame value in its window, and the
sum over the window; each as a robust z-score (median / MAD) against the same
statistic at the positions within ±1 s (at least two window lengths) that do
not touch any join. A dissolve is also scored directly: the difference between
the last frame before it and the first after (``span_diff``), which natural
motion inflates far less than the sum of its steps. A seam's ``z`` is the
largest of these.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

MAD_TO_SIGMA = 1.4826
# Smallest believable spread of each series (encoder noise is about this big), so that a
# perfectly still shot does not turn a tiny wobble into a huge z.
FLOOR = {"diff": 0.2, "flow": 0.02}
REL_FLOOR = 0.1  # ... and at least this fraction of the typical value


@dataclass(frozen=True)
class Seam:
    frame: int  # the planned join (first frame of the next segment), or the detected jump
    z: float
    z_diff: float
    z_flow: float
    flagged: bool
    peak_frame: int  # frame with the largest single-frame difference in the window
    window: tuple[int, int]  # first and last frame whose change from its predecessor was scored
    planned: bool


def _scale(baseline: np.ndarray, floor: float) -> tuple[float, float]:
    med = float(np.median(baseline))
    mad = float(np.median(np.abs(baseline - med)))
    return med, max(MAD_TO_SIGMA * mad, REL_FLOOR * abs(med), floor)


def _z_join(x: np.ndarray, a: int, b: int, excluded: np.ndarray, radius: int, floor: float) -> float:
    """max(per-frame z, window-sum z) of x[a..b] against unexcluded neighbours within ``radius``."""
    n = x.size
    length = b - a + 1
    lo, hi = max(1, a - radius), min(n - 1, b + radius)
    idx = np.arange(lo, hi + 1)
    frame_base = x[idx[~excluded[idx]]]
    frame_base = frame_base[np.isfinite(frame_base)]
    if frame_base.size < 5:
        return float("nan")
    med, sc = _scale(frame_base, floor)
    z_frame = (float(np.nanmax(x[a : b + 1])) - med) / sc
    # sums of the same length that avoid every excluded frame
    clean = np.where(excluded | ~np.isfinite(x), np.nan, x)
    starts = np.arange(lo, hi - length + 2)
    if starts.size:
        windows = sliding_window_view(clean, length)[starts]
        sums = windows.sum(axis=1)
        sums = sums[np.isfinite(sums)]
    else:
        sums = np.zeros(0)
    if sums.size < 5:
        return z_frame
    med_s, sc_s = _scale(sums, floor * np.sqrt(length))
    z_sum = (float(np.nansum(x[a : b + 1])) - med_s) / sc_s
    return max(z_frame, z_sum)


def dissolve_frames(fps: Fraction) -> int:
    """The crossfade length assumed when there is no plan (a third of a second)."""
    return max(3, int(round(float(fps) / 3)))


def _z_span(span_diff: np.ndarray, span: int, frame: int, blocked: np.ndarray, radius: int, floor: float) -> float:
    """z of the before/after difference across a crossfade ending at ``frame`` (±1 frame of slack)."""
    n = span_diff.size
    # position u compares frames u-span and u; usable as baseline if that range touches no join
    cover = np.convolve(blocked.astype(np.int32), np.ones(span + 1, np.int32), mode="full")[:n] > 0
    lo, hi = max(span, frame - radius - span), min(n - 1, frame + radius + span)
    idx = np.arange(lo, hi + 1)
    base = span_diff[idx[~cover[idx] & (np.abs(idx - frame) > span + 1)]]
    base = base[np.isfinite(base)]
    if base.size < 5:
        return float("nan")
    med, sc = _scale(base, floor)
    at = span_diff[max(frame - 1, 0) : min(frame + 2, n)]
    return (float(np.nanmax(at)) - med) / sc if np.isfinite(at).any() else float("nan")


def score_joins(
    diff: np.ndarray,
    flow: np.ndarray,
    joins: list[tuple[int, int]],
    fps: Fraction,
    threshold: float,
    span_diff: dict[int, np.ndarray] | None = None,
) -> list[Seam]:
    """Score each planned join ``(frame, crossfade_frames)``; the window is the crossfade plus one frame each side."""
    n = diff.size
    windows = []
    for frame, context in joins:
        a = max(1, frame - context - 1)
        b = min(n - 1, frame + 1)
        windows.append((frame, context, a, b))
    excluded = np.zeros(n, bool)
    excluded[0] = True
    for _, _, a, b in windows:
        excluded[max(0, a - 1) : b + 2] = True
    seams = []
    for frame, context, a, b in windows:
        if frame <= 0 or frame >= n or b < a:
            continue
        radius = max(int(round(float(fps))), 2 * (b - a + 1))
        z_d = _z_join(diff, a, b, excluded, radius, FLOOR["diff"])
        if context >= 1 and span_diff and (context + 1) in span_diff:
            z_s = _z_span(span_diff[context + 1], context + 1, frame, excluded, radius, FLOOR["diff"])
            z_d = float(np.nanmax([z_d, z_s])) if np.isfinite([z_d, z_s]).any() else z_d
        z_f = _z_join(flow, a, b, excluded, radius, FLOOR["flow"])
        z = float(np.nanmax([z_d, z_f])) if np.isfinite([z_d, z_f]).any() else float("nan")
        peak = a + int(np.nanargmax(diff[a : b + 1]))
        seams.append(Seam(frame, z, z_d, z_f, bool(np.isfinite(z) and z >= threshold), peak, (a, b), True))
    return seams


def _rolling_z(x: np.ndarray, radius: int, exclude_half: int, floor: float) -> np.ndarray:
    """z of each x[t] against x[t-radius .. t+radius] minus the centre ±exclude_half (NaN-aware)."""
    n = x.size
    padded = np.concatenate([np.full(radius, np.nan), x, np.full(radius, np.nan)])
    win = sliding_window_view(padded, 2 * radius + 1)[:n].copy()
    win[:, radius - exclude_half : radius + exclude_half + 1] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows at the ends of short series
        med = np.nanmedian(win, axis=1)
        mad = np.nanmedian(np.abs(win - med[:, None]), axis=1)
    scale = np.maximum(np.maximum(MAD_TO_SIGMA * mad, REL_FLOOR * np.abs(med)), floor)
    return (x - med) / scale


def _window_sums(x: np.ndarray, length: int) -> np.ndarray:
    """s[t] = x[t-length+1] + … + x[t] (NaN where the window leaves the series or holds a NaN)."""
    out = np.full(x.size, np.nan)
    if x.size >= length:
        out[length - 1 :] = sliding_window_view(x, length).sum(axis=1)
    return out


def seam_curves(diff: np.ndarray, flow: np.ndarray, fps: Fraction, span_diff: dict[int, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Per-frame robust z of single-frame jumps and of dissolve-length changes (window sums, and the span difference)."""
    radius = max(3, int(round(float(fps))))
    dissolve = dissolve_frames(fps)
    curves = {}
    for name, x in (("diff", diff), ("flow", flow)):
        curves[f"z_{name}"] = _rolling_z(x, radius, 1, FLOOR[name])
        sums = _window_sums(x, dissolve)
        curves[f"z_{name}_sum"] = _rolling_z(sums, radius + dissolve, dissolve - 1, FLOOR[name] * np.sqrt(dissolve))
    if span_diff and dissolve in span_diff:
        span_z = _rolling_z(span_diff[dissolve], radius + dissolve, dissolve, FLOOR["diff"])
        curves["z_diff_sum"] = np.fmax(curves["z_diff_sum"], span_z)
    curves["dissolve_frames"] = np.array([dissolve])
    return curves


def detect_seams(
    diff: np.ndarray,
    flow: np.ndarray,
    fps: Fraction,
    threshold: float,
    span_diff: dict[int, np.ndarray] | None = None,
    max_seams: int = 50,
) -> tuple[list[Seam], np.ndarray]:
    """Without a plan: every frame is a candidate; return peaks above half the threshold, and the per-frame score."""
    curves = seam_curves(diff, flow, fps, span_diff)
    dissolve = int(curves["dissolve_frames"][0])
    single = np.fmax(curves["z_diff"], curves["z_flow"])
    summed = np.fmax(curves["z_diff_sum"], curves["z_flow_sum"])
    score = np.fmax(single, summed)
    score = np.where(np.isfinite(score), score, -np.inf)
    radius = max(3, int(round(float(fps))))
    taken: list[int] = []
    seams: list[Seam] = []
    for t in np.argsort(-score, kind="stable"):
        if score[t] < threshold / 2 or len(seams) >= max_seams:
            break
        if any(abs(t - u) <= radius for u in taken):
            continue
        taken.append(int(t))
        if np.nan_to_num(single[t], nan=-np.inf) >= np.nan_to_num(summed[t], nan=-np.inf):
            a = b = int(t)
        else:
            a, b = max(1, int(t) - dissolve + 1), int(t)
        peak = a + int(np.nanargmax(diff[a : b + 1]))
        z_d = float(np.nanmax([curves["z_diff"][t], curves["z_diff_sum"][t]]))
        z_f = float(np.nanmax([curves["z_flow"][t], curves["z_flow_sum"][t]]))
        seams.append(Seam(peak, float(score[t]), z_d, z_f, bool(score[t] >= threshold), peak, (a, b), False))
    seams.sort(key=lambda s: s.frame)
    return seams, np.where(np.isfinite(score), score, np.nan)
