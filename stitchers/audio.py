"""The master voiceover as exact-length 48 kHz frames for the AAC encoder.

The output carries the loudness-normalised master track, never generated
audio. It is streamed from the WAV in blocks, resampled once (libswresample)
when it is not already 48 kHz, and cut or padded with silence to exactly the
video's length, ``round(total_frames / fps · 48000)`` samples, so the two
durations agree to a sample and the first sample plays at t = 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av
import numpy as np
import soundfile as sf

from orchestrator.errors import MediaError
from orchestrator.timebase import frame_to_sample

OUTPUT_RATE_HZ = 48000
AAC_FRAME_SAMPLES = 1024
_READ_BLOCK = 1 << 16


@dataclass(frozen=True)
class AudioInfo:
    path: Path
    sample_rate_hz: int
    channels: int
    samples: int

    @property
    def duration_s(self) -> float:
        return self.samples / self.sample_rate_hz


def probe_audio(path: Path) -> AudioInfo:
    path = Path(path)
    if not path.is_file():
        raise MediaError(f"master audio is missing: {path} (run `longtake run` again to re-ingest the voiceover)")
    try:
        info = sf.info(str(path))
    except (RuntimeError, sf.LibsndfileError) as exc:
        raise MediaError(f"master audio {path} cannot be read: {exc}") from None
    if info.frames <= 0 or info.channels <= 0:
        raise MediaError(f"master audio {path} is empty")
    return AudioInfo(path, int(info.samplerate), int(info.channels), int(info.frames))


def output_samples(total_frames: int, fps: Fraction) -> int:
    """Samples at 48 kHz that last exactly as long as ``total_frames`` video frames."""
    return frame_to_sample(total_frames, fps, OUTPUT_RATE_HZ)


class AudioFeed:
    """Yields fltp AudioFrames of 1024 samples (the last may be shorter), pts in samples, until ``total_samples``."""

    def __init__(self, info: AudioInfo, total_samples: int):
        self.info = info
        self.total_samples = total_samples
        # A voiceover with more than two channels (no standard layout in a WAV) is averaged to mono.
        self.layout = "stereo" if info.channels == 2 else "mono"
        self.channels = 2 if info.channels == 2 else 1
        self.position = 0  # samples handed out so far
        self._fifo: list[np.ndarray] = []  # [channels, n] float32 chunks
        self._fifo_len = 0
        self._source = self._read()

    def _read(self) -> Iterator[np.ndarray]:
        """Master samples as [channels, n] float32 at 48 kHz, then nothing."""
        info = self.info
        needs_resample = info.sample_rate_hz != OUTPUT_RATE_HZ
        resampler = av.AudioResampler(format="fltp", layout=self.layout, rate=OUTPUT_RATE_HZ) if needs_resample else None
        pts = 0
        try:
            with sf.SoundFile(str(info.path)) as fh:
                while True:
                    block = fh.read(_READ_BLOCK, dtype="float32", always_2d=True)
                    if block.shape[0] == 0:
                        break
                    if info.channels > 2:
                        block = block.mean(axis=1, keepdims=True)
                    if resampler is None:
                        yield np.ascontiguousarray(block.T)
                        continue
                    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(block.T), format="fltp", layout=self.layout)
                    frame.sample_rate = info.sample_rate_hz
                    frame.pts = pts
                    frame.time_base = Fraction(1, info.sample_rate_hz)
                    pts += block.shape[0]
                    for out in resampler.resample(frame):
                        yield out.to_ndarray().reshape(self.channels, -1)
            if resampler is not None:
                for out in resampler.resample(None):
                    yield out.to_ndarray().reshape(self.channels, -1)
        except (RuntimeError, sf.LibsndfileError, av.FFmpegError) as exc:
            raise MediaError(f"master audio {info.path} cannot be read: {exc}") from None

    def _take(self, n: int) -> np.ndarray:
        while self._fifo_len < n:
            chunk = next(self._source, None)
            if chunk is None:
                pad = np.zeros((self.channels, n - self._fifo_len), dtype=np.float32)
                self._fifo.append(pad)
                self._fifo_len += pad.shape[1]
                break
            self._fifo.append(chunk.astype(np.float32, copy=False))
            self._fifo_len += chunk.shape[1]
        data = np.concatenate(self._fifo, axis=1) if len(self._fifo) > 1 else self._fifo[0]
        out, rest = data[:, :n], data[:, n:]
        self._fifo = [rest] if rest.shape[1] else []
        self._fifo_len = rest.shape[1]
        return out

    def frames_until(self, sample: int) -> Iterator[av.AudioFrame]:
        """Frames covering output samples up to ``sample`` (capped at the total), in whole AAC frames where possible."""
        sample = min(sample, self.total_samples)
        while self.position < sample:
            n = min(AAC_FRAME_SAMPLES, self.total_samples - self.position)
            data = np.ascontiguousarray(self._take(n))
            frame = av.AudioFrame.from_ndarray(data, format="fltp", layout=self.layout)
            frame.sample_rate = OUTPUT_RATE_HZ
            frame.pts = self.position
            frame.time_base = Fraction(1, OUTPUT_RATE_HZ)
            self.position += n
            yield frame
