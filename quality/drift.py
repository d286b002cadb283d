"""Slow changes over minutes: the face's colour (CIEDE2000) and its likeness to the portrait (HOG).

Both work on the few-per-second face samples from the pass, reduced to one
robust value per second. Colour: per-second median Lab of the forehead and
cheeks, ΔE2000 against the first second and against the portrait, and a
least-squares line through L, a and b whose ΔE2000 over one minute is the drift
rate. Identity: cosine similarity of the upper face's HOG (brows, eyes, nose,
outline; the talking mouth is left out) to the portrait, or to the first
second when there is no portrait; the drop is how far the 3-s running median
falls below its level at the start.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from quality.face import cosine, delta_e2000

BASELINE_S = 3  # seconds that set "how it started"
SMOOTH_S = 3  # running median for the identity drop


@dataclass(frozen=True)
class PerSecond:
    seconds: np.ndarray  # int second index
    values: np.ndarray  # [S] or [S, k]


def per_second(frames: np.ndarray, values: np.ndarray, fps: Fraction) -> PerSecond:
    """Median of the samples in each whole second (seconds without samples are left out)."""
    if frames.size == 0:
        return PerSecond(np.zeros(0, int), values[:0])
    sec = (frames * fps.denominator) // fps.numerator
    keys = np.unique(sec)
    out = np.stack([np.median(values[sec == k], axis=0) for k in keys])
    return PerSecond(keys.astype(int), out)


@dataclass(frozen=True)
class ColorAnalysis:
    seconds: np.ndarray
    lab: np.ndarray  # [S, 3]
    de_vs_first: np.ndarray  # [S]
    de_vs_portrait: np.ndarray | None  # [S]
    delta_e_per_min: float | None
    delta_e_total: float | None  # fitted start vs fitted end
    slope_lab_per_min: tuple[float, float, float] | None
    worst_second: int | None  # largest ΔE vs the first second
    worst_delta_e: float | None


def analyse_color(frames: np.ndarray, lab: np.ndarray, fps: Fraction, portrait_lab: np.ndarray | None) -> ColorAnalysis:
    ok = np.isfinite(lab).all(axis=1)
    ps = per_second(frames[ok], lab[ok], fps)
    if ps.seconds.size == 0:
        return ColorAnalysis(ps.seconds, np.zeros((0, 3)), np.zeros(0), None, None, None, None, None, None)
    de_first = delta_e2000(ps.values, ps.values[0])
    de_portrait = delta_e2000(ps.values, portrait_lab) if portrait_lab is not None else None
    rate = total = slope = None
    if ps.seconds.size >= 3:
        t_min = (ps.seconds + 0.5) / 60.0
        coef = np.polyfit(t_min, ps.values, 1)  # [2, 3]: slope per minute, intercept
        slope = tuple(float(v) for v in coef[0])
        start = coef[1]
        end = coef[1] + coef[0] * t_min[-1]
        rate = float(delta_e2000(start, start + coef[0]))
        total = float(delta_e2000(start + coef[0] * t_min[0], end))
    k = int(np.argmax(de_first))
    return ColorAnalysis(ps.seconds, ps.values, de_first, de_portrait, rate, total, slope, int(ps.seconds[k]), float(de_first[k]))


@dataclass(frozen=True)
class IdentityAnalysis:
    seconds: np.ndarray
    similarity: np.ndarray  # [S] against the reference
    reference: str  # "portrait" | "first second"
    start: float | None  # median over the first seconds
    end: float | None  # median over the last seconds
    drop: float | None  # start minus the lowest running median
    worst_second: int | None
    slope_per_min: float | None


def analyse_identity(frames: np.ndarray, hogs: np.ndarray, fps: Fraction, portrait_hog: np.ndarray | None) -> IdentityAnalysis:
    empty = IdentityAnalysis(np.zeros(0, int), np.zeros(0), "portrait" if portrait_hog is not None else "first second", None, None, None, None, None)
    if frames.size == 0 or hogs.size == 0:
        return empty
    if portrait_hog is not None and portrait_hog.shape == hogs.shape[1:]:
        ref, reference = portrait_hog, "portrait"
    else:
        first = frames < int(np.ceil(float(fps)))
        ref, reference = hogs[first].mean(axis=0) if first.any() else hogs[0], "first second"
    sims = np.array([cosine(h, ref) for h in hogs])
    ps = per_second(frames, sims, fps)
    s = ps.values
    k = min(BASELINE_S, s.size)
    start = float(np.median(s[:k]))
    end = float(np.median(s[-k:]))
    half = SMOOTH_S // 2
    running = np.array([np.median(s[max(0, i - half) : i + half + 1]) for i in range(s.size)])
    worst = int(np.argmin(running))
    slope = float(np.polyfit((ps.seconds + 0.5) / 60.0, s, 1)[0]) if s.size >= 3 else None
    return IdentityAnalysis(ps.seconds, s, reference, start, end, float(max(0.0, start - running[worst])), int(ps.seconds[worst]), slope)
