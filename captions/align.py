"""Forced alignment of a script to the voiceover: espeak-ng reads the script, MFCC + DTW maps its time onto the voice.

1. synthesise: espeak-ng reads the script and reports where each word starts
   in its reading (``captions.espeak``); silence is trimmed off each word;
2. features: 13 MFCCs + deltas every 10 ms of both signals at 16 kHz, each
   normalised by its own speech frames (so voice and channel differences fall out);
3. coarse DTW at 40 ms inside a wide diagonal band, then fine DTW at 10 ms in a
   narrow band around the coarse path. Every voice frame takes exactly one step,
   moving the reading 0–3 frames on, or *skipping* any stretch of the reading at a
   fixed price: script the voice never says is jumped over, not smeared over its
   neighbours;
4. words: a word runs over the voice frames mapped into its stretch of the
   reading, trimmed to speech; its confidence compares its match cost to the
   voiceover's typical one. Voice frames that match nothing (speech the script
   does not have) are reported and kept out of the words around them.

Times come out in samples of the master track (the trimmed, normalised voiceover).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy.fft import dct
from scipy.signal import resample_poly

from captions.espeak import synthesize
from captions.script import Script

RATE_HZ = 16_000
HOP = 160  # 10 ms
WIN = 400  # 25 ms
NFFT = 512
N_MELS = 40
N_CEPS = 13
COARSE = 4  # coarse frames are 4 fine frames (40 ms)
COARSE_BAND_S = 30.0  # the coarse path may stray this far from the diagonal (at least; 25 % of the length when longer)
FINE_RADIUS = 30  # fine frames either side of the coarse path
PAD_S = 0.3  # silence around the reading, so both ends can meet the voiceover's lead-in and tail
# DTW step prices, in units of the voiceover's median frame distance: stay on a reading frame, move 2, move 3,
# and jump any further. A jump costs what ~40 frames of poor match would: only unsaid script takes it.
STEP_PRICE = (0.3, 0.0, 0.15, 0.4)
SKIP_PRICE = 40.0
GARBAGE_PRICE = 1.8  # the most a voice frame costs while the path rests on one reading frame
UNSCRIPTED_MIN_S = 0.6
READING_WORD_GAP_MS = 50  # a short silence between the reading's words: where the voice's pauses can park
PAUSE_KEEP_FRAMES = 6  # frames of each pause that take part in the alignment


@dataclass(frozen=True)
class AlignedWord:
    text: str
    sentence: int
    start_sample: int
    end_sample: int
    confidence: float  # 0…1
    found: bool  # False: the voiceover does not seem to say it (zero length at the place it would be)


@dataclass(frozen=True)
class AlignedLine:
    index: int
    text: str
    first_word: int
    end_word: int
    start_sample: int
    end_sample: int
    confidence: float
    found: bool


@dataclass(frozen=True)
class Alignment:
    sample_rate_hz: int
    words: tuple[AlignedWord, ...]
    lines: tuple[AlignedLine, ...]
    unscripted: tuple[tuple[int, int], ...] = ()  # [start, end) samples of speech the script does not have
    timings_s: dict = field(default_factory=dict, compare=False)

    @property
    def missing_lines(self) -> tuple[AlignedLine, ...]:
        return tuple(line for line in self.lines if not line.found)

    def to_json(self, *, trim_start_sample: int = 0) -> str:
        """words.json: times in master-track samples and seconds (the video's time line); ``trim_start_sample``
        says where the master starts in the voiceover file."""
        sr = self.sample_rate_hz
        doc = {
            "version": 1,
            "sample_rate_hz": sr,
            "trim_start_sample": trim_start_sample,
            "words": [
                {**asdict(w), "start_s": round(w.start_sample / sr, 4), "end_s": round(w.end_sample / sr, 4)} for w in self.words
            ],
            "lines": [
                {**asdict(line), "start_s": round(line.start_sample / sr, 4), "end_s": round(line.end_sample / sr, 4)} for line in self.lines
            ],
            "unscripted": [{"start_sample": a, "end_sample": b, "start_s": round(a / sr, 4), "end_s": round(b / sr, 4)} for a, b in self.unscripted],
        }
        return json.dumps(doc, indent=1, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "Alignment":
        doc = json.loads(text)
        keep_w = AlignedWord.__dataclass_fields__
        keep_l = AlignedLine.__dataclass_fields__
        return cls(
            sample_rate_hz=int(doc["sample_rate_hz"]),
            words=tuple(AlignedWord(**{k: v for k, v in w.items() if k in keep_w}) for w in doc["words"]),
            lines=tuple(AlignedLine(**{k: v for k, v in x.items() if k in keep_l}) for x in doc["lines"]),
            unscripted=tuple((int(u["start_sample"]), int(u["end_sample"])) for u in doc.get("unscripted", [])),
        )


# -- features --------------------------------------------------------------------------------------

def _mel_filterbank() -> np.ndarray:
    def mel(f):
        return 2595.0 * np.log10(1.0 + f / 700.0)

    def hz(m):
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)

    points = hz(np.linspace(mel(60.0), mel(7600.0), N_MELS + 2))
    bins = np.fft.rfftfreq(NFFT, 1.0 / RATE_HZ)
    fb = np.zeros((N_MELS, len(bins)), np.float32)
    for m in range(N_MELS):
        lo, mid, hi = points[m : m + 3]
        fb[m] = np.clip(np.minimum((bins - lo) / (mid - lo), (hi - bins) / (hi - mid)), 0.0, None)
    return fb


_FB = _mel_filterbank()
_WINDOW = np.hamming(WIN).astype(np.float32)


def frame_count(n_samples: int) -> int:
    return max(1, n_samples // HOP)


def mfcc(audio_16k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(cepstra float32 [frames, 13], log energy dB [frames]); frame f is centred on sample f·160 + 80."""
    x = np.asarray(audio_16k, np.float32)
    n = frame_count(len(x))
    padded = np.zeros(n * HOP + WIN, np.float32)
    start = (WIN - HOP) // 2
    padded[start : start + len(x)] = x
    # A little dither: digital silence would make log-mel a constant that no normalisation can scale.
    padded += np.random.default_rng(0).standard_normal(len(padded)).astype(np.float32) * 1e-5
    frames = np.lib.stride_tricks.sliding_window_view(padded, WIN)[::HOP][:n]
    ceps = np.empty((n, N_CEPS), np.float32)
    energy = np.empty(n, np.float32)
    for a in range(0, n, 4096):  # bounded memory for long voiceovers
        chunk = frames[a : a + 4096] * _WINDOW
        power = np.abs(np.fft.rfft(chunk, NFFT, axis=1)).astype(np.float32) ** 2
        logmel = np.log(power @ _FB.T + 1e-10)
        ceps[a : a + 4096] = dct(logmel, type=2, norm="ortho", axis=1)[:, :N_CEPS]
        energy[a : a + 4096] = 10.0 * np.log10((chunk**2).mean(axis=1) + 1e-12)
    return ceps, energy


def _speech_mask(energy_db: np.ndarray) -> tuple[np.ndarray, float]:
    floor, level = np.percentile(energy_db, [10, 95])
    threshold = floor + 0.3 * (level - floor)
    return energy_db > threshold, float(threshold)


def _features(ceps: np.ndarray, speech: np.ndarray) -> np.ndarray:
    ref = ceps[speech] if speech.sum() > 50 else ceps
    norm = (ceps - ref.mean(axis=0)) / (ref.std(axis=0) + 1e-6)
    norm[:, 0] *= 0.7  # loudness matters less than spectral shape across voices
    padded = np.pad(norm, ((2, 2), (0, 0)), mode="edge")
    delta = (2 * (padded[4:] - padded[:-4]) + (padded[3:-1] - padded[1:-3])) / 10.0
    return np.concatenate([norm, delta], axis=1).astype(np.float32)


# -- DTW -------------------------------------------------------------------------------------------

def _band_distances(a: np.ndarray, b: np.ndarray, lo: np.ndarray, width: int) -> np.ndarray:
    """Euclidean distances of each row of ``a`` to reading columns [lo_i, lo_i + width) (clipped at the end).

    Blocks of rows against the columns their windows span, as one matrix product each (BLAS, bounded memory).
    """
    n, m = len(a), len(b)
    out = np.empty((n, width), np.float32)
    a2 = (a**2).sum(axis=1)
    b2 = (b**2).sum(axis=1)
    offsets = np.arange(width)
    block = max(16, min(512, 4_000_000 // max(1, width)))
    for r in range(0, n, block):
        rows = np.arange(r, min(n, r + block))
        c0 = int(lo[rows[0]])
        c1 = min(m, int(lo[rows[-1]]) + width)
        sq = a2[rows, None] + b2[None, c0:c1] - 2.0 * (a[rows] @ b[c0:c1].T)
        cols = np.minimum(lo[rows, None] + offsets, m - 1) - c0
        out[rows - r + r] = np.sqrt(np.maximum(np.take_along_axis(sq, np.minimum(cols, c1 - c0 - 1), axis=1), 0.0))
    return out


def _dtw(a: np.ndarray, b: np.ndarray, lo: np.ndarray, hi: np.ndarray, unit: float,
         jumps: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Path j(i) through rows of ``a`` (voice) and columns of ``b`` (reading) inside windows [lo_i, hi_i).

    Every row takes one step; the path starts at (0, 0) and ends at (N-1, M-1). Windows must not move
    backwards (``lo`` and ``hi`` non-decreasing). ``jumps``: rows where a jump may end (all when None).
    Returns the path and the local distance on it.
    """
    n, m = len(a), len(b)
    # Steps k = 3, 2, 1, 0 columns, in the order a sliding window over the previous row yields them.
    prices = (np.asarray(STEP_PRICE[::-1], np.float32) * unit)[None, :]
    skip = np.float32(SKIP_PRICE * unit)
    garbage = np.float32(GARBAGE_PRICE * unit)
    width = int((hi - lo).max())
    dist = _band_distances(a, b, lo, width)
    prev = np.full(m + 4, np.inf, np.float32)  # the previous row's totals; column c at index c + 4
    # windows[c + 1] = totals of columns c-3 … c: every step that can reach column c, as one view made once.
    windows = np.lib.stride_tricks.as_strided(prev, shape=(m + 1, 4), strides=(prev.strides[0], prev.strides[0]), writeable=False)
    steps_back: list[np.ndarray] = []  # per row: 3 - k of the step that reached each column
    jump_src: dict[int, np.ndarray] = {}  # per row that took any jump: source column, -1 where it stepped
    prev_lo, prev_hi = 0, 0
    for i in range(n):
        l, h = int(lo[i]), int(hi[i])
        d = dist[i, : h - l]
        if i == 0:
            acc = np.full(h - l, np.inf, np.float32)
            if l == 0:
                acc[0] = d[0]
            steps_back.append(np.zeros(h - l, np.int8))
        else:
            steps = windows[l + 1 : h + 1] + prices
            steps[:, :3] += d[:, None]
            steps[:, 3] += np.minimum(d, garbage)  # resting: a voice frame the reading does not explain costs at most this
            k = np.argmin(steps, axis=1)
            best = steps.min(axis=1)
            if (jumps is None or jumps[i]) and h - 4 > prev_lo:
                # Jumps: from the cheapest column at least 4 behind.
                span = prev[prev_lo + 4 : h]  # columns prev_lo … h-5
                cm = np.minimum.accumulate(span)
                first = max(l, prev_lo + 4)
                jump = cm[first - 4 - prev_lo : h - 4 - prev_lo] + skip + d[first - l :]
                better = jump < best[first - l :]
                if better.any():
                    cm_idx = np.maximum.accumulate(np.where(span <= cm, np.arange(len(span)), 0)) + prev_lo
                    src = np.full(h - l, -1, np.int64)
                    src[first - l :][better] = cm_idx[first - 4 - prev_lo : h - 4 - prev_lo][better]
                    best[first - l :][better] = jump[better]
                    jump_src[i] = src
            acc = best
            steps_back.append(k.astype(np.int8))
        prev[prev_lo + 4 : prev_hi + 4] = np.inf
        prev[l + 4 : h + 4] = acc
        prev_lo, prev_hi = l, h
    if hi[-1] != m or not np.isfinite(prev[m + 3]):
        raise RuntimeError("alignment band does not reach the end of the reading")  # a bug in the band, never the user's doing
    path = np.empty(n, np.int64)
    path[-1] = m - 1
    for i in range(n - 1, 0, -1):
        c = path[i] - lo[i]
        src = jump_src.get(i)
        if src is not None and src[c] >= 0:
            path[i - 1] = src[c]
        else:
            path[i - 1] = path[i] - 3 + steps_back[i][c]
    local = np.sqrt(((b[path] - a) ** 2).sum(axis=1))
    return path, local


def _diagonal_band(n: int, m: int, radius: int) -> tuple[np.ndarray, np.ndarray]:
    centre = np.arange(n) * (m - 1) / max(1, n - 1)
    lo = np.clip(np.floor(centre - radius), 0, m - 1).astype(np.int64)
    hi = np.clip(np.ceil(centre + radius) + 1, 1, m).astype(np.int64)
    lo[0], hi[-1] = 0, m
    return lo, hi


def _band_around(path_coarse: np.ndarray, n: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    nc = len(path_coarse)
    ci = np.minimum(np.arange(n) // COARSE, nc - 1)
    jmin = path_coarse[np.maximum(ci - 1, 0)] * COARSE
    jmax = (path_coarse[np.minimum(ci + 1, nc - 1)] + 1) * COARSE
    lo = np.clip(jmin - FINE_RADIUS, 0, m - 1)
    hi = np.clip(jmax + FINE_RADIUS, 1, m)
    lo, hi = np.maximum.accumulate(lo), np.maximum.accumulate(hi)
    lo[0], hi[-1] = 0, m
    return lo.astype(np.int64), hi.astype(np.int64)


def _coarse(x: np.ndarray) -> np.ndarray:
    n = len(x) // COARSE * COARSE
    out = x[:n].reshape(-1, COARSE, x.shape[1]).mean(axis=1)
    if len(x) > n:
        out = np.concatenate([out, x[n:].mean(axis=0, keepdims=True)])
    return out


# -- alignment -------------------------------------------------------------------------------------

def _reading(script: Script, voice: str, rate_wpm: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The reading at 16 kHz (padded with silence) and each word's [start, end) in its frames."""
    synth = synthesize(script.synthesis_text, voice=voice, rate_wpm=rate_wpm, word_gap_ms=READING_WORD_GAP_MS)
    audio = resample_poly(synth.samples.astype(np.float32) / 32768.0, RATE_HZ, synth.sample_rate_hz).astype(np.float32)
    pad = int(PAD_S * RATE_HZ)
    audio = np.concatenate([np.zeros(pad, np.float32), audio, np.zeros(pad, np.float32)])
    offsets = np.array([w.char_offset for w in script.words])
    starts_ms = np.full(len(script.words), np.nan)
    for ev in synth.words:
        k = int(np.searchsorted(offsets, ev.char_offset, side="right")) - 1
        if k >= 0 and (math.isnan(starts_ms[k]) or ev.start_ms < starts_ms[k]):
            starts_ms[k] = ev.start_ms
    total_ms = len(synth.samples) * 1000.0 / synth.sample_rate_hz
    known = ~np.isnan(starts_ms)
    if not known.any():
        starts_ms[:] = np.linspace(0, total_ms, len(starts_ms), endpoint=False)
    elif not known.all():  # words espeak-ng folded into a neighbour: spread them between the known ones
        idx = np.arange(len(starts_ms))
        starts_ms = np.interp(idx, idx[known], starts_ms[known])
    starts = np.round((starts_ms / 1000.0 * RATE_HZ + pad) / HOP).astype(np.int64)
    ends = np.append(starts[1:], int(round((total_ms / 1000.0 * RATE_HZ + pad) / HOP)))
    return audio, starts, np.maximum(ends, starts)


def _squeeze_pauses(speech: np.ndarray, keep: int = PAUSE_KEEP_FRAMES) -> np.ndarray:
    """Mask of frames to align: all speech, and at most ``keep`` frames (half at each end) of every pause."""
    mask = speech.copy()
    for s, e in _runs(~speech):
        if e - s <= keep:
            mask[s:e] = True
        else:
            mask[s : s + (keep + 1) // 2] = True
            mask[e - keep // 2 : e] = True
    return mask


def _align_frames(a: np.ndarray, b: np.ndarray, unit: float) -> tuple[np.ndarray, np.ndarray]:
    """Coarse DTW in a diagonal band, then fine DTW around the coarse path."""
    n, m = len(a), len(b)
    ac, bc = _coarse(a), _coarse(b)
    radius = int(max(COARSE_BAND_S, 0.25 * n * HOP / RATE_HZ) * RATE_HZ / HOP / COARSE)
    lo, hi = _diagonal_band(len(ac), len(bc), radius)
    path_c, _ = _dtw(ac, bc, lo, hi, unit)
    lo, hi = _band_around(path_c, n, m)
    # In the fine pass, jumps only where the coarse path jumped.
    coarse_jump = np.flatnonzero(np.diff(path_c) >= 4) + 1
    jumps = np.zeros(n, bool)
    for c in coarse_jump:
        jumps[max(0, (c - 2) * COARSE) : (c + 2) * COARSE] = True
    return _dtw(a, b, lo, hi, unit, jumps)


def _trim_to_speech(start: int, end: int, speech: np.ndarray) -> tuple[int, int]:
    s, e = start, end
    while s < e and not speech[s]:
        s += 1
    while e > s and not speech[e - 1]:
        e -= 1
    return (s, e) if e > s else (start, start)


def align_script(script: Script, audio_16k: np.ndarray, *, master_rate_hz: int, master_samples: int,
                 voice: str = "en-us", rate_wpm: int = 175) -> Alignment:
    """Align ``script`` to the voiceover (``audio_16k``: the master track's 16 kHz mono copy)."""
    import time

    t0 = time.perf_counter()
    reading, w_start, w_end = _reading(script, voice, rate_wpm)
    t1 = time.perf_counter()
    voice_ceps, voice_energy = mfcc(audio_16k)
    read_ceps, read_energy = mfcc(reading)
    voice_speech, _ = _speech_mask(voice_energy)
    read_speech, _ = _speech_mask(read_energy)
    a = _features(voice_ceps, voice_speech)
    b = _features(read_ceps, read_speech)
    n, m = len(a), len(b)
    # Trim each word of the reading to its sounding part (espeak-ng's word start may sit in a pause before it).
    # The next word's onset can leak a frame or two in (event times are rounded): a sound starting in a word's
    # last 3 frames after a silence is not the word's.
    for k in range(len(w_start)):
        s, e = int(w_start[k]), int(min(w_end[k], m))
        runs = [r for r in _runs(read_speech[s:e]) if r[0] == 0 or r[0] < e - s - 3]
        w_start[k], w_end[k] = (s + runs[0][0], s + runs[-1][1]) if runs else (s, s)
    t2 = time.perf_counter()

    # The typical distance between matching frames sets the price scale (median of each voice frame's best match
    # among a sample of reading frames is close enough, and cheap).
    sample = a[np.linspace(0, n - 1, min(n, 400)).astype(int)]
    cols = b[np.linspace(0, m - 1, min(m, 2000)).astype(int)]
    nearest = np.sqrt(((sample[:, None, :] - cols[None, :, :]) ** 2).sum(axis=2)).min(axis=1)
    unit = float(np.median(nearest)) or 1.0

    # Pauses differ most between a reading and a voice: keep only a few frames of each, align the rest.
    keep_a, keep_b = _squeeze_pauses(voice_speech), _squeeze_pauses(read_speech)
    rows_a, rows_b = np.flatnonzero(keep_a), np.flatnonzero(keep_b)
    path_s, local_s = _align_frames(a[rows_a], b[rows_b], unit)
    path = np.empty(n, np.int64)  # reading frame for every voice frame (dropped pause frames take their predecessor's)
    local = np.zeros(n, np.float32)
    mapped = rows_b[path_s]
    fill = np.maximum.accumulate(np.where(keep_a, np.cumsum(keep_a) - 1, -1))
    path[:] = mapped[np.maximum(fill, 0)]
    local[rows_a] = local_s
    t3 = time.perf_counter()

    speech_local = local[voice_speech] if voice_speech.any() else local
    med = float(np.median(speech_local))
    mad = float(np.median(np.abs(speech_local - med))) * 1.4826 or 1.0
    # Speech the script lacks: speech frames the path rested through, unexplained, for a while (pauses inside allowed).
    rest = np.zeros(n, bool)
    rest[1:] = path[1:] == path[:-1]
    garbage = voice_speech & rest & (local > GARBAGE_PRICE * unit)
    region = np.convolve(garbage.astype(np.float32), np.ones(31), mode="same") >= 8
    unscripted_frames = np.zeros(n, bool)
    spans = []
    runs: list[tuple[int, int]] = []
    for s, e in _runs(region):
        if runs and s - runs[-1][1] < 30:  # one stretch with a breath in it, not two
            runs[-1] = (runs[-1][0], e)
        else:
            runs.append((s, e))
    for s, e in runs:
        if garbage[s:e].sum() * HOP >= UNSCRIPTED_MIN_S * RATE_HZ:
            s2, e2 = _trim_to_speech(s, e, voice_speech)
            if e2 > s2:
                unscripted_frames[s2:e2] = True
                spans.append((s2, e2))

    ratio = master_rate_hz / RATE_HZ

    def to_master(frame: int) -> int:
        return int(min(master_samples, max(0, round(frame * HOP * ratio))))

    words: list[AlignedWord] = []
    # Rows mapped into each word's stretch of the reading. Where the path rests on the word's first or last
    # frame for a while (the voice pausing or saying something the reading lacks), only the run's inner end counts.
    first_row = np.searchsorted(path, w_start, side="left")  # path is non-decreasing
    last_row = np.searchsorted(path, w_end, side="left")
    first_inner = np.searchsorted(path, w_start + 1, side="left") - 1
    last_inner = np.searchsorted(path, w_end - 1, side="left") + 1
    first_row = np.where((w_end - w_start > 2) & (first_inner > first_row), first_inner, first_row)
    last_row = np.where((w_end - w_start > 2) & (last_inner < last_row) & (last_inner > first_row), last_inner, last_row)
    for k, sw in enumerate(script.words):
        s, e = int(first_row[k]), int(last_row[k])
        found = e > s and w_end[k] > w_start[k]
        if found:
            # Keep a word out of the unscripted speech around it.
            span = unscripted_frames[s:e]
            if span.any() and not span.all():
                rs, re_ = max(_runs(~span), key=lambda r: r[1] - r[0])
                s, e = s + rs, s + re_
            s, e = _trim_to_speech(s, e, voice_speech)
            found = e > s
        if found:
            cost = float(local[s:e].mean())
            confidence = 1.0 / (1.0 + math.exp(min(50.0, (cost - (med + 2.0 * mad)) / mad)))
            words.append(AlignedWord(sw.text, sw.sentence, to_master(s), to_master(e), round(confidence, 3), True))
        else:
            # Zero length where it would have been: right after the word before.
            at = words[-1].end_sample if words else to_master(s)
            words.append(AlignedWord(sw.text, sw.sentence, at, at, 0.0, False))

    lines = []
    for sent in script.sentences:
        ws = words[sent.first_word : sent.end_word]
        said = [w for w in ws if w.found]
        found = len(said) >= max(1, math.ceil(0.5 * len(ws)))
        if said:
            start, end = min(w.start_sample for w in said), max(w.end_sample for w in said)
        else:
            start = end = ws[0].start_sample
        confidence = float(np.mean([w.confidence for w in ws])) if found else 0.0
        lines.append(AlignedLine(sent.index, sent.text, sent.first_word, sent.end_word, start, end, round(confidence, 3), found))
    if any(not line.found for line in lines):
        # A line the voice does not say keeps no words on screen.
        words = [w if lines[w.sentence].found else AlignedWord(w.text, w.sentence, w.start_sample, w.start_sample, 0.0, False) for w in words]
    t4 = time.perf_counter()
    timings = {"synthesis": t1 - t0, "features": t2 - t1, "dtw": t3 - t2, "words": t4 - t3}
    return Alignment(master_rate_hz, tuple(words), tuple(lines), tuple((to_master(s), to_master(e)) for s, e in spans),
                     {k: round(v, 3) for k, v in timings.items()})


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))
