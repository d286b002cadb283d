"""Energy VAD: no model, no extra dependency; the fallback when the others cannot load.

It is not a speech detector: it reports how far each 10-ms frame's smoothed
log-energy rises above the recording's noise floor, as a probability-like
score. That is enough to find the pauses of a clean voiceover, and it never
misses a sound the other backends would not call speech (a hum, a tone).

Per frame:
1. log-energy over a 30-ms window (three hops), floored at -100 dBFS;
2. the noise floor: a rolling low percentile over ~5 s, so it follows slow
   changes in room noise, held within 10 dB of the whole file's floor so a
   long stretch of speech without pauses cannot pass for noise;
3. the speech level: a high percentile over the whole file; the file's floor
   is kept 15-50 dB below it (a file without pauses has no floor of its own,
   and digital silence would put it at -100 dBFS);
4. score = logistic((energy - midpoint) / 2.5 dB), the midpoint a fraction of
   the way from the floor up to the speech level;
5. dips shorter than ~90 ms are filled (gaps between syllables) and blips
   shorter than ~50 ms removed (clicks).
"""

from __future__ import annotations

import numpy as np

from segmenters.vad.base import VadBackend, VadResult, check_audio_16k, pad_to_frames

HOP_SAMPLES = 160  # 10 ms at 16 kHz
_SMOOTH_HOPS = 3  # 30-ms energy window
_FLOOR_DBFS = -100.0
_NOISE_WINDOW_HOPS = 501  # ~5 s rolling noise-floor estimate
_NOISE_PERCENTILE = 10.0
_SPEECH_PERCENTILE = 95.0
_MAX_FLOOR_RISE_DB = 10.0  # local floor may rise this far above the file's floor, no further
_MAX_RANGE_DB = 50.0  # digital silence must not drag the floor to -100 dBFS
_MIN_RANGE_DB = 15.0  # a file without pauses has its "floor" at its own level; keep the floor below it
_MIN_MARGIN_DB = 6.0
_MARGIN_FRACTION = 0.35
_SLOPE_DB = 2.5
_FILL_GAP_HOPS = 9  # ~90 ms
_DROP_BLIP_HOPS = 5  # ~50 ms


class EnergyVad(VadBackend):
    """Energy above the noise floor; ``threshold`` only matters to ``VadResult.speech_mask``."""

    NAME = "energy"
    SPEECH_SPECIFIC = False

    def detect(self, audio_16k: np.ndarray) -> VadResult:
        from scipy.ndimage import grey_closing, grey_opening, percentile_filter, uniform_filter1d

        audio = check_audio_16k(audio_16k, self.NAME)
        if audio.size == 0:
            return VadResult(self.NAME, HOP_SAMPLES, np.zeros(0, dtype=np.float32))
        frames = pad_to_frames(audio, HOP_SAMPLES).reshape(-1, HOP_SAMPLES).astype(np.float64)
        power = uniform_filter1d(np.mean(frames * frames, axis=1), _SMOOTH_HOPS, mode="nearest")
        energy_db = 10.0 * np.log10(np.maximum(power, 10.0 ** (_FLOOR_DBFS / 10.0)))

        speech_db = float(np.percentile(energy_db, _SPEECH_PERCENTILE))
        file_floor_db = float(np.clip(np.percentile(energy_db, _NOISE_PERCENTILE), speech_db - _MAX_RANGE_DB, speech_db - _MIN_RANGE_DB))
        local_floor_db = percentile_filter(energy_db, _NOISE_PERCENTILE, size=min(_NOISE_WINDOW_HOPS, energy_db.size), mode="nearest")
        floor_db = np.clip(local_floor_db, file_floor_db, file_floor_db + _MAX_FLOOR_RISE_DB)
        margin_db = np.maximum(_MIN_MARGIN_DB, _MARGIN_FRACTION * (speech_db - floor_db))
        score = 1.0 / (1.0 + np.exp(-(energy_db - (floor_db + margin_db)) / _SLOPE_DB))

        score = grey_opening(score, size=_DROP_BLIP_HOPS, mode="nearest")
        score = grey_closing(score, size=_FILL_GAP_HOPS, mode="nearest")
        return VadResult(self.NAME, HOP_SAMPLES, np.clip(score, 0.0, 1.0).astype(np.float32))
