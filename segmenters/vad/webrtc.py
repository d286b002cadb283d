"""WebRTC VAD backend (``webrtcvad-wheels``): Google's GMM detector from the WebRTC project.

It decides speech / non-speech per 10, 20 or 30 ms frame of 16-bit PCM; we
use 30-ms frames (480 samples at 16 kHz), the length it is most reliable at,
and report its decisions as probabilities 0 or 1. The VAD threshold picks its
aggressiveness (how readily it calls a frame non-speech): [0, 0.25) → mode 0,
[0.25, 0.5) → 1, [0.5, 0.75) → 2, [0.75, 1) → 3.
"""

from __future__ import annotations

import importlib.util

import numpy as np

from segmenters.vad.base import VAD_SAMPLE_RATE_HZ, VadBackend, VadResult, check_audio_16k, pad_to_frames

FRAME_SAMPLES = 480  # 30 ms at 16 kHz
_BYTES_PER_FRAME = FRAME_SAMPLES * 2  # int16 PCM


def aggressiveness_for(threshold: float) -> int:
    """Map a VAD threshold in (0, 1) to WebRTC's aggressiveness mode 0..3."""
    return min(3, int(threshold * 4))


class WebrtcVad(VadBackend):
    NAME = "webrtc"
    SPEECH_SPECIFIC = True

    def __init__(self, threshold: float = 0.5):
        super().__init__(threshold)
        import webrtcvad

        self._webrtcvad = webrtcvad
        self.mode = aggressiveness_for(self.threshold)

    @classmethod
    def is_available(cls) -> bool:
        return importlib.util.find_spec("webrtcvad") is not None

    def detect(self, audio_16k: np.ndarray) -> VadResult:
        audio = check_audio_16k(audio_16k, self.NAME)
        pcm = np.clip(np.round(pad_to_frames(audio, FRAME_SAMPLES) * 32767.0), -32768, 32767).astype("<i2").tobytes()
        n_frames = len(pcm) // _BYTES_PER_FRAME
        # A fresh detector per call: WebRTC adapts its noise model as it goes, so
        # reusing one would make the result depend on what it heard before.
        vad = self._webrtcvad.Vad(self.mode)
        is_speech = vad.is_speech
        decisions = np.fromiter(
            (is_speech(pcm[i * _BYTES_PER_FRAME : (i + 1) * _BYTES_PER_FRAME], VAD_SAMPLE_RATE_HZ) for i in range(n_frames)),
            dtype=np.float32,
            count=n_frames,
        )
        return VadResult(self.NAME, FRAME_SAMPLES, decisions)
