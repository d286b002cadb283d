"""Lip sync and mouth behaviour, from the video's own audio track and its mouth motion.

The visual signal is the mouth region's non-rigid motion per frame (the head's
own motion removed); the audio signal is a loudness-like envelope of the voice
band (RMS amplitude above a speech gate, to the power 0.6). Motion energy is a *rate of change* (a mouth moves most while it
opens and closes, not while it is held open), so it is compared with the
rate of change of the audio level: an opening or closing of the mouth lines
up with an onset or offset of sound, and neither side is biased by the
asymmetry of syllables. Per 4-s window the normalised cross-correlation over
±0.5 s gives the best lag (refined to a fraction of a frame) and its peak
correlation. The overall offset is the correlation-weighted median of the
windows that correlate clearly; drift is the Theil–Sen slope of their lags.

Sign: ``offset_frames > 0`` means the audio comes late (the mouth moves first).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from scipy import ndimage, stats

WINDOW_S = 4.0
HOP_S = 2.0
MAX_LAG_S = 0.5
MIN_SPEECH_FRACTION = 0.25  # windows with less speech than this are not used for sync
MIN_WINDOW_R = 0.3  # a window's peak correlation must reach this to count
AGREE_FRAMES = 1.5  # windows within this of the fit agree with it
SPEECH_GATE_BELOW_PEAK_DB = 35.0
SPEECH_GATE_ABOVE_FLOOR_DB = 8.0
MIN_DYNAMIC_DB = 12.0  # quieter than this above the floor: no speech to measure
SPEECH_GAP_FILL_S = 0.3  # gaps between syllables shorter than this are still speech
SPEECH_MIN_S = 0.1
PAUSE_MIN_S = 0.5
LOUDNESS_EXPONENT = 0.6
PAUSE_EDGE_S = 0.15  # a mouth may still be closing / already opening this close to speech


@dataclass(frozen=True)
class SyncWindow:
    start_frame: int
    end_frame: int  # exclusive
    lag_frames: float | None
    r: float
    speech_fraction: float
    used: bool


@dataclass(frozen=True)
class SpeechActivity:
    energy: np.ndarray  # voice-band mean square per frame
    level_db: np.ndarray  # the same in dB
    speech: np.ndarray  # bool per frame
    gate_db: float
    peak_db: float
    floor_db: float
    has_speech: bool


@dataclass(frozen=True)
class SyncAnalysis:
    offset_frames: float | None
    confidence: float
    drift_frames_per_min: float | None
    offset_start_frames: float | None  # the drift fit at the first and last used window
    offset_end_frames: float | None
    global_lag_frames: float | None
    global_r: float
    windows: tuple[SyncWindow, ...]
    source: str = "face crop"  # where the mouth signal came from: "face crop" | "motion grid"


@dataclass(frozen=True)
class Pause:
    start_frame: int
    end_frame: int  # exclusive
    score: float  # mean mouth motion in the pause / median mouth motion in speech
    flagged: bool


@dataclass(frozen=True)
class MouthAnalysis:
    speech_motion: float | None
    silence_motion: float | None
    ratio: float | None
    pauses: tuple[Pause, ...]


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of each run of True."""
    if mask.size == 0:
        return []
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(d == 1).tolist(), np.flatnonzero(d == -1).tolist()))


def speech_activity(energy: np.ndarray, fps: Fraction) -> SpeechActivity:
    """Energy-gated speech per frame: above both (peak − 35 dB) and (floor + 8 dB), gaps bridged."""
    level = 10.0 * np.log10(np.maximum(energy, 1e-12))
    audible = energy > 0
    if not audible.any():
        return SpeechActivity(energy, level, np.zeros(energy.size, bool), 0.0, -120.0, -120.0, False)
    peak = float(np.percentile(level[audible], 95))
    floor = float(np.percentile(level[audible], 10))
    gate = max(peak - SPEECH_GATE_BELOW_PEAK_DB, floor + SPEECH_GATE_ABOVE_FLOOR_DB)
    has_speech = peak - floor >= MIN_DYNAMIC_DB
    speech = level > gate
    fill = int(round(SPEECH_GAP_FILL_S * float(fps)))
    if fill > 0:
        speech = ndimage.binary_closing(speech, structure=np.ones(fill + 1, bool))
    min_len = max(1, int(round(SPEECH_MIN_S * float(fps))))
    for a, b in _runs(speech):
        if b - a < min_len:
            speech[a:b] = False
    return SpeechActivity(energy, level, speech & has_speech, gate, peak, floor, bool(has_speech))


def _fill_nan(x: np.ndarray) -> np.ndarray:
    ok = np.isfinite(x)
    if ok.all() or not ok.any():
        return np.where(ok, x, 0.0)
    idx = np.arange(x.size)
    return np.interp(idx, idx[ok], x[ok])


_SMOOTH = np.array([0.25, 0.5, 0.25])


def visual_signal(mouth: np.ndarray, exclude: np.ndarray | None = None) -> np.ndarray:
    """Mouth motion ready to correlate: frames in ``exclude`` (seams: the whole picture jumps
    there) bridged, rare spikes clipped so one glitch cannot dominate a window, lightly smoothed."""
    m = mouth.astype(np.float64).copy()
    if exclude is not None:
        m[exclude] = np.nan
    finite = m[np.isfinite(m)]
    if finite.size:
        m = np.minimum(m, np.percentile(finite, 99.5))
    return np.convolve(_fill_nan(m), _SMOOTH, mode="same")


def audio_signal(activity: SpeechActivity) -> np.ndarray:
    """Rate of change of a loudness-like envelope (RMS amplitude above the speech gate, to the power 0.6,
    after Stevens), smoothed like the visual signal."""
    amp = np.sqrt(np.maximum(activity.energy, 0.0))
    gate = 10.0 ** (activity.gate_db / 20.0)
    above = np.maximum(amp - gate, 0.0)
    ref = np.percentile(above[above > 0], 95) if (above > 0).any() else 1.0
    env = (above / ref) ** LOUDNESS_EXPONENT
    change = np.abs(np.diff(env, prepend=env[:1]))
    return np.convolve(change, _SMOOTH, mode="same")


def sync_signals(mouth: np.ndarray, activity: SpeechActivity, exclude: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(visual, audio) change signals (see the module docstring)."""
    return visual_signal(mouth, exclude), audio_signal(activity)


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    x = x - x.mean()
    y = y - y.mean()
    den = np.sqrt((x * x).sum() * (y * y).sum())
    return float((x * y).sum() / den) if den > 0 else float("nan")


def _xcorr(visual: np.ndarray, audio: np.ndarray, start: int, length: int, max_lag: int) -> np.ndarray:
    """r[L + max_lag] = corr(visual[t], audio[t + L]) over t in [start, start + length)."""
    n = visual.size
    idx = np.arange(start, min(start + length, n))
    out = np.full(2 * max_lag + 1, np.nan)
    for k, lag in enumerate(range(-max_lag, max_lag + 1)):
        j = idx + lag
        ok = (j >= 0) & (j < n)
        if ok.sum() >= max(8, idx.size // 2):
            out[k] = _pearson(visual[idx[ok]], audio[j[ok]])
    return out


def _peak(r: np.ndarray, max_lag: int) -> tuple[float | None, float]:
    if not np.isfinite(r).any():
        return None, float("nan")
    k = int(np.nanargmax(r))
    best = float(r[k])
    frac = 0.0
    if 0 < k < r.size - 1 and np.isfinite(r[k - 1]) and np.isfinite(r[k + 1]):
        den = r[k - 1] - 2 * r[k] + r[k + 1]
        if den < 0:
            frac = float(np.clip(0.5 * (r[k - 1] - r[k + 1]) / den, -0.5, 0.5))
    return k - max_lag + frac, best


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    order = np.argsort(values)
    v, w = values[order], weights[order]
    cum = np.cumsum(w)
    return float(v[np.searchsorted(cum, 0.5 * cum[-1])])


def analyse_sync(mouth: np.ndarray, activity: SpeechActivity, fps: Fraction, exclude: np.ndarray | None = None) -> SyncAnalysis:
    """Per-window lag and confidence, the overall offset, and its drift (see the module docstring)."""
    n = mouth.size
    f = float(fps)
    visual, audio = sync_signals(mouth, activity, exclude)
    win = max(8, int(round(WINDOW_S * f)))
    hop = max(1, int(round(HOP_S * f)))
    max_lag = max(2, int(round(MAX_LAG_S * f)))
    starts = list(range(0, max(1, n - win + 1), hop))
    if starts and starts[-1] + win < n and n >= win:
        starts.append(n - win)  # cover the tail
    windows: list[SyncWindow] = []
    for s in starts:
        e = min(n, s + win)
        speech_frac = float(activity.speech[s:e].mean()) if e > s else 0.0
        lag, r = _peak(_xcorr(visual, audio, s, e - s, max_lag), max_lag)
        used = bool(
            activity.has_speech
            and speech_frac >= MIN_SPEECH_FRACTION
            and lag is not None
            and np.isfinite(r)
            and r >= MIN_WINDOW_R
        )
        windows.append(SyncWindow(s, e, lag, float(r) if np.isfinite(r) else 0.0, speech_frac, used))

    g_lag, g_r = _peak(_xcorr(visual, audio, 0, n, max_lag), max_lag) if activity.has_speech else (None, float("nan"))
    used = [w for w in windows if w.used]
    speechy = [w for w in windows if w.speech_fraction >= MIN_SPEECH_FRACTION]
    offset = drift = start_off = end_off = None
    confidence = 0.0
    if used:
        lags = np.array([w.lag_frames for w in used])
        rs = np.array([w.r for w in used])
        centres_min = np.array([(w.start_frame + w.end_frame) / 2 / f / 60.0 for w in used])
        offset = _weighted_median(lags, rs)
        expected = np.full(lags.size, offset)
        span_s = (centres_min.max() - centres_min.min()) * 60.0
        if len(used) >= 4 and span_s >= 12.0:
            slope, intercept, _, _ = stats.theilslopes(lags, centres_min)
            drift = float(slope)
            start_off = float(intercept + slope * centres_min.min())
            end_off = float(intercept + slope * centres_min.max())
            expected = intercept + slope * centres_min
        agree = np.abs(lags - expected) <= AGREE_FRAMES
        confidence = float(np.clip(rs[agree].sum() / max(1, len(speechy)), 0.0, 1.0))
    return SyncAnalysis(
        offset_frames=offset,
        confidence=confidence,
        drift_frames_per_min=drift,
        offset_start_frames=start_off,
        offset_end_frames=end_off,
        global_lag_frames=g_lag,
        global_r=float(g_r) if np.isfinite(g_r) else 0.0,
        windows=tuple(windows),
    )


@dataclass(frozen=True)
class GridMouth:
    row: int
    col: int
    r: float  # its global peak correlation with the audio
    motion: np.ndarray  # per frame


def grid_residual_motion(grid_flow: np.ndarray) -> np.ndarray:
    """|flow − median flow of the 3×3 cells around it| per cell: motion that is not the head's (or camera's) own."""
    local = np.stack([ndimage.median_filter(grid_flow[..., k], size=(1, 3, 3), mode="nearest") for k in range(2)], axis=-1)
    return np.sqrt(((grid_flow - local) ** 2).sum(axis=-1))


def locate_mouth(grid_flow: np.ndarray, activity: SpeechActivity, fps: Fraction, exclude: np.ndarray | None = None) -> GridMouth | None:
    """The coarse cell whose own motion follows the speech best (Hershey & Movellan's audio-visual synchrony).

    Used when no face was found, or the face crop's mouth does not follow the
    speech: the mouth is wherever motion and sound move together.
    """
    if not activity.has_speech or grid_flow.ndim != 4 or grid_flow.shape[0] < 8:
        return None
    n, rows, cols, _ = grid_flow.shape
    motion = grid_residual_motion(grid_flow).reshape(n, rows * cols)
    max_lag = max(2, int(round(MAX_LAG_S * float(fps))))
    audio = audio_signal(activity)
    visual = np.stack([visual_signal(motion[:, c], exclude) for c in range(motion.shape[1])], axis=1)
    best = np.full(motion.shape[1], -np.inf)
    for lag in range(-max_lag, max_lag + 1):
        lo, hi = max(0, -lag), min(n, n - lag)
        x = visual[lo:hi] - visual[lo:hi].mean(axis=0)
        y = audio[lo + lag : hi + lag] - audio[lo + lag : hi + lag].mean()
        den = np.sqrt((x * x).sum(axis=0) * (y * y).sum())
        with np.errstate(invalid="ignore", divide="ignore"):
            r = np.where(den > 0, (x * y[:, None]).sum(axis=0) / den, -np.inf)
        best = np.maximum(best, r)
    k = int(np.argmax(best))
    if not np.isfinite(best[k]):
        return None
    return GridMouth(k // cols, k % cols, float(best[k]), motion[:, k].astype(np.float64))


def analyse_mouth(mouth: np.ndarray, activity: SpeechActivity, fps: Fraction, flag_score: float) -> MouthAnalysis:
    """Mouth motion in pauses (≥ 0.5 s without speech, edges trimmed) relative to its motion in speech."""
    f = float(fps)
    speech = activity.speech
    m = mouth
    speech_vals = m[speech & np.isfinite(m)]
    if not activity.has_speech or speech_vals.size < max(4, int(f / 2)):
        return MouthAnalysis(None, None, None, ())
    ref = float(np.median(speech_vals))
    edge = int(round(PAUSE_EDGE_S * f))
    min_len = int(round(PAUSE_MIN_S * f))
    pauses: list[Pause] = []
    core_vals = []
    for a, b in _runs(~speech):
        if b - a < min_len:
            continue
        ca, cb = a + (edge if a > 0 else 0), b - (edge if b < m.size else 0)
        core = m[ca:cb]
        core = core[np.isfinite(core)]
        if core.size < 2:
            continue
        core_vals.append(core)
        score = float(core.mean() / ref) if ref > 0 else float("inf")
        pauses.append(Pause(a, b, score, bool(score >= flag_score)))
    if not core_vals:
        return MouthAnalysis(ref, None, None, ())
    silent = float(np.median(np.concatenate(core_vals)))
    return MouthAnalysis(ref, silent, silent / ref if ref > 0 else None, tuple(pauses))
