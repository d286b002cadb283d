"""The voice-activity-detection interface every VAD backend implements.

A backend reads the 16 kHz mono copy of the master track and returns one
speech probability per fixed frame of ``hop_samples`` samples. Frame ``j``
covers samples ``[j*hop_samples, (j+1)*hop_samples)``; a last, partial frame is
scored as if padded with silence, so ``len(probs) == ceil(n_samples / hop_samples)``
for every backend. Positions stay integer samples; seconds are for display.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

VAD_SAMPLE_RATE_HZ = 16000


@dataclass(frozen=True, eq=False)  # eq=False: numpy arrays have no boolean equality
class VadResult:
    """Speech probability per frame of the 16 kHz copy."""

    backend: str
    hop_samples: int
    probs: np.ndarray
    sample_rate_hz: int = VAD_SAMPLE_RATE_HZ

    def __post_init__(self) -> None:
        if not isinstance(self.hop_samples, (int, np.integer)) or self.hop_samples < 1:
            raise ValueError(f"{self.backend}: hop_samples must be a positive integer, got {self.hop_samples!r}")
        probs = np.asarray(self.probs)
        if probs.ndim != 1 or probs.dtype != np.float32:
            raise ValueError(f"{self.backend}: probs must be 1-D float32, got {probs.dtype} with shape {probs.shape}")
        if probs.size and not (np.all(probs >= 0.0) and np.all(probs <= 1.0)):
            raise ValueError(f"{self.backend}: probs must lie in [0, 1], got range [{probs.min()}, {probs.max()}]")

    @property
    def n_frames(self) -> int:
        return int(self.probs.shape[0])

    @property
    def hop_s(self) -> float:
        return self.hop_samples / self.sample_rate_hz

    def speech_mask(self, threshold: float) -> np.ndarray:
        """Boolean speech decision per frame: ``probs >= threshold``."""
        return self.probs >= threshold

    def frame_start_samples(self) -> np.ndarray:
        """First 16 kHz sample of each frame (int64)."""
        return np.arange(self.n_frames, dtype=np.int64) * self.hop_samples


class VadBackend(ABC):
    """One voice-activity detector. Heavy imports happen in ``__init__``, never at module import."""

    NAME: ClassVar[str]
    #: True when the backend models speech itself (a pure tone or noise burst may score low);
    #: False when it reacts to any energy above the noise floor.
    SPEECH_SPECIFIC: ClassVar[bool] = True

    def __init__(self, threshold: float = 0.5):
        if not (0.0 < threshold < 1.0):
            raise ValueError(f"VAD threshold must be between 0 and 1 (exclusive), got {threshold}")
        self.threshold = float(threshold)

    @classmethod
    def is_available(cls) -> bool:
        """Whether this backend's dependencies are installed (checked without importing them)."""
        return True

    @abstractmethod
    def detect(self, audio_16k: np.ndarray) -> VadResult:
        """Score ``audio_16k`` (float32 mono at 16 kHz, roughly in [-1, 1])."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(threshold={self.threshold})"


def check_audio_16k(audio_16k: np.ndarray, backend: str) -> np.ndarray:
    """Validate the VAD input and return it as contiguous float32 (raises ValueError with the rule and the value)."""
    audio = np.asarray(audio_16k)
    if audio.ndim != 1:
        raise ValueError(f"{backend} VAD needs mono 1-D audio at 16 kHz, got an array of shape {audio.shape}; mix down first")
    if not np.issubdtype(audio.dtype, np.floating):
        raise ValueError(f"{backend} VAD needs float audio in [-1, 1], got dtype {audio.dtype}")
    audio = np.ascontiguousarray(audio, dtype=np.float32)
    if audio.size and not np.isfinite(audio).all():
        raise ValueError(f"{backend} VAD input holds NaN or infinite samples")
    return audio


def n_frames_for(n_samples: int, hop_samples: int) -> int:
    """Frames needed to cover ``n_samples`` (the last one may be partial)."""
    return math.ceil(n_samples / hop_samples)


def pad_to_frames(audio: np.ndarray, hop_samples: int) -> np.ndarray:
    """Zero-pad ``audio`` to a whole number of frames."""
    n_frames = n_frames_for(audio.shape[0], hop_samples)
    missing = n_frames * hop_samples - audio.shape[0]
    if missing == 0:
        return audio
    return np.concatenate([audio, np.zeros(missing, dtype=audio.dtype)])
