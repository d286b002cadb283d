"""Test audio made by the tests themselves: sounds at known sample positions, in every format ingest reads.

Build a track from parts, each landing at an exact sample position::

    track = make_track([Silence(1.0), Tone(1.5), Silence(0.5), Speech("Hello there.")], sample_rate_hz=44100)
    track.events            # (Event(kind, start_sample, end_sample), ...) in track samples
    path = write_audio(tmp / "voice.mp3", track.samples, track.sample_rate_hz, "mp3")

``Speech`` is spoken by espeak-ng (``/usr/bin/espeak-ng``) and trimmed to its
voiced extent, so its event span is where the voice really is. Lossy formats
are encoded with ffmpeg (``/usr/bin/ffmpeg``), lossless ones with libsndfile.
"""

from __future__ import annotations

import functools
import math
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence, Union

import numpy as np
import soundfile

ESPEAK = shutil.which("espeak-ng") or "/usr/bin/espeak-ng"
FFMPEG = shutil.which("ffmpeg") or "/usr/bin/ffmpeg"
ESPEAK_RATE_HZ = 22050  # espeak-ng's native output rate


# ------------------------------------------------------------------------------------
# parts of a track
# ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Silence:
    duration_s: float


@dataclass(frozen=True)
class Tone:
    """A sine with short raised-cosine ramps (no clicks at the edges)."""

    duration_s: float
    freq_hz: float = 440.0
    amplitude: float = 0.5  # peak, linear full scale
    ramp_ms: float = 5.0


@dataclass(frozen=True)
class Noise:
    """Gaussian noise, low-passed so lossy codecs keep its waveform, with short ramps."""

    duration_s: float
    rms: float = 0.1
    seed: int = 0
    lowpass_hz: float | None = 4000.0
    ramp_ms: float = 5.0


@dataclass(frozen=True)
class Speech:
    """An utterance by espeak-ng, trimmed to its voiced extent and scaled to ``peak``."""

    text: str
    peak: float = 0.5
    voice: str = "en-us"
    words_per_minute: int = 160


Part = Union[Silence, Tone, Noise, Speech]


@dataclass(frozen=True)
class Event:
    kind: str  # "silence" | "tone" | "noise" | "speech"
    start_sample: int
    end_sample: int  # exclusive

    @property
    def n_samples(self) -> int:
        return self.end_sample - self.start_sample


@dataclass(frozen=True, eq=False)
class Track:
    samples: np.ndarray  # float32 [n, channels]
    sample_rate_hz: int
    events: tuple[Event, ...]

    @property
    def n_samples(self) -> int:
        return int(self.samples.shape[0])

    @property
    def channels(self) -> int:
        return int(self.samples.shape[1])

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.sample_rate_hz

    @property
    def mono(self) -> np.ndarray:
        return self.samples.mean(axis=1).astype(np.float32)

    def spans(self, *kinds: str) -> list[tuple[int, int]]:
        """[start, end) of the events of these kinds (all sounding events when none are given)."""
        wanted = set(kinds) if kinds else {"tone", "noise", "speech"}
        return [(e.start_sample, e.end_sample) for e in self.events if e.kind in wanted]

    @property
    def first_sound_sample(self) -> int:
        return min(start for start, _ in self.spans())


# ------------------------------------------------------------------------------------
# signal makers (mono float32)
# ------------------------------------------------------------------------------------


def _ramp(signal: np.ndarray, ramp_samples: int) -> np.ndarray:
    ramp_samples = min(ramp_samples, signal.shape[0] // 2)
    if ramp_samples > 0:
        window = 0.5 - 0.5 * np.cos(np.pi * np.arange(ramp_samples) / ramp_samples)
        signal[:ramp_samples] *= window
        signal[-ramp_samples:] *= window[::-1]
    return signal


def silence(duration_s: float, sample_rate_hz: int) -> np.ndarray:
    return np.zeros(round(duration_s * sample_rate_hz), dtype=np.float32)


def tone(duration_s: float, sample_rate_hz: int, freq_hz: float = 440.0, amplitude: float = 0.5, ramp_ms: float = 5.0) -> np.ndarray:
    n = round(duration_s * sample_rate_hz)
    signal = amplitude * np.sin(2 * np.pi * freq_hz * np.arange(n) / sample_rate_hz)
    return _ramp(signal, round(ramp_ms * sample_rate_hz / 1000)).astype(np.float32)


def noise(duration_s: float, sample_rate_hz: int, rms: float = 0.1, seed: int = 0, lowpass_hz: float | None = 4000.0, ramp_ms: float = 5.0) -> np.ndarray:
    from scipy.signal import butter, sosfiltfilt

    n = round(duration_s * sample_rate_hz)
    signal = np.random.default_rng(seed).standard_normal(n)
    if lowpass_hz is not None and lowpass_hz < sample_rate_hz / 2 and n > 30:
        signal = sosfiltfilt(butter(6, lowpass_hz, fs=sample_rate_hz, output="sos"), signal)
    signal *= rms / max(float(np.sqrt(np.mean(signal**2))), 1e-12)
    return _ramp(signal, round(ramp_ms * sample_rate_hz / 1000)).astype(np.float32)


@functools.lru_cache(maxsize=64)
def _espeak_raw(text: str, voice: str, words_per_minute: int) -> np.ndarray:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "speech.wav"
        subprocess.run([ESPEAK, "-v", voice, "-s", str(words_per_minute), "-w", str(out), text], check=True, capture_output=True)
        samples, rate_hz = soundfile.read(str(out), dtype="float32")
    assert rate_hz == ESPEAK_RATE_HZ, rate_hz
    return samples


def resample(signal: np.ndarray, from_hz: int, to_hz: int) -> np.ndarray:
    """Polyphase resampling along axis 0 (float32)."""
    from scipy.signal import resample_poly

    if from_hz == to_hz:
        return signal.astype(np.float32)
    g = math.gcd(from_hz, to_hz)
    return resample_poly(signal, to_hz // g, from_hz // g, axis=0).astype(np.float32)


def espeak(text: str, sample_rate_hz: int = 16000, voice: str = "en-us", words_per_minute: int = 160, peak: float = 0.5) -> np.ndarray:
    """espeak-ng speech at ``sample_rate_hz``, trimmed to where the voice is (above 1 % of its peak), peak-scaled."""
    raw = _espeak_raw(text, voice, words_per_minute)
    voiced = np.flatnonzero(np.abs(raw) > 0.01 * np.abs(raw).max())
    signal = resample(raw[voiced[0] : voiced[-1] + 1], ESPEAK_RATE_HZ, sample_rate_hz)
    return (signal * (peak / np.abs(signal).max())).astype(np.float32)


def _render(part: Part, sample_rate_hz: int) -> tuple[str, np.ndarray]:
    if isinstance(part, Silence):
        return "silence", silence(part.duration_s, sample_rate_hz)
    if isinstance(part, Tone):
        return "tone", tone(part.duration_s, sample_rate_hz, part.freq_hz, part.amplitude, part.ramp_ms)
    if isinstance(part, Noise):
        return "noise", noise(part.duration_s, sample_rate_hz, part.rms, part.seed, part.lowpass_hz, part.ramp_ms)
    if isinstance(part, Speech):
        return "speech", espeak(part.text, sample_rate_hz, part.voice, part.words_per_minute, part.peak)
    raise TypeError(f"not a track part: {part!r}")


def make_track(
    parts: Sequence[Part],
    sample_rate_hz: int = 16000,
    channels: int = 1,
    noise_floor_dbfs: float | None = None,
    seed: int = 0,
) -> Track:
    """Concatenate ``parts``; ``noise_floor_dbfs`` adds white room noise (RMS) under everything.

    Stereo channels differ a little (the right is 0.8× the left) so a channel
    mix-up shows, and never cancel.
    """
    pieces, events, position = [], [], 0
    for part in parts:
        kind, signal = _render(part, sample_rate_hz)
        pieces.append(signal)
        events.append(Event(kind, position, position + signal.shape[0]))
        position += signal.shape[0]
    mono = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)
    if noise_floor_dbfs is not None:
        mono = mono + (10 ** (noise_floor_dbfs / 20) * np.random.default_rng(seed + 1000).standard_normal(mono.shape[0])).astype(np.float32)
    gains = np.array([1.0, 0.8, 0.9, 0.7, 0.6, 0.5, 0.4, 0.3][:channels], dtype=np.float32)
    if channels > 8:
        raise ValueError("at most 8 channels")
    return Track(np.ascontiguousarray(mono[:, None] * gains[None, :], dtype=np.float32), sample_rate_hz, tuple(events))


# ------------------------------------------------------------------------------------
# writers
# ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AudioFormat:
    name: str
    suffix: str
    codec: str  # what probe_audio reports
    lossy: bool
    soundfile_subtype: str | None = None  # lossless: written by libsndfile
    ffmpeg_args: tuple[str, ...] = ()  # lossy: written by ffmpeg
    max_rate_bitrate: str | None = None  # bitrate for rates where MPEG-2/2.5 caps it


FORMATS: dict[str, AudioFormat] = {
    f.name: f
    for f in (
        AudioFormat("wav16", ".wav", "pcm_s16le", False, soundfile_subtype="PCM_16"),
        AudioFormat("wav24", ".wav", "pcm_s24le", False, soundfile_subtype="PCM_24"),
        AudioFormat("wav32", ".wav", "pcm_s32le", False, soundfile_subtype="PCM_32"),
        AudioFormat("wav_float", ".wav", "pcm_f32le", False, soundfile_subtype="FLOAT"),
        AudioFormat("flac", ".flac", "flac", False, soundfile_subtype="PCM_24"),
        AudioFormat("mp3", ".mp3", "mp3", True, ffmpeg_args=("-c:a", "libmp3lame", "-b:a", "192k"), max_rate_bitrate="64k"),
        AudioFormat("mp3_low", ".mp3", "mp3", True, ffmpeg_args=("-c:a", "libmp3lame", "-b:a", "32k")),
        AudioFormat("m4a", ".m4a", "aac", True, ffmpeg_args=("-c:a", "aac", "-b:a", "160k")),
        AudioFormat("ogg", ".ogg", "vorbis", True, ffmpeg_args=("-c:a", "libvorbis", "-q:a", "6")),
    )
}
LOSSLESS_FORMATS = tuple(name for name, f in FORMATS.items() if not f.lossy)
LOSSY_FORMATS = tuple(name for name, f in FORMATS.items() if f.lossy)


def write_audio(path: Path, samples: np.ndarray, sample_rate_hz: int, fmt: str, bitrate: str | None = None) -> Path:
    """Write float samples ``[n]`` or ``[n, channels]`` as ``fmt`` (a key of FORMATS); the suffix is fixed to match."""
    spec = FORMATS[fmt]
    path = Path(path).with_suffix(spec.suffix)
    path.parent.mkdir(parents=True, exist_ok=True)
    samples = np.asarray(samples, dtype=np.float32)
    samples = samples[:, None] if samples.ndim == 1 else samples
    if spec.soundfile_subtype is not None:
        soundfile.write(str(path), samples, sample_rate_hz, subtype=spec.soundfile_subtype)
        return path
    args = list(spec.ffmpeg_args)
    if bitrate is not None:
        args[args.index("-b:a") + 1] = bitrate
    elif spec.max_rate_bitrate and sample_rate_hz < 32000:
        args[args.index("-b:a") + 1] = spec.max_rate_bitrate  # MP3 below 32 kHz (MPEG-2/2.5) allows at most 160 kbps
    command = [FFMPEG, "-nostdin", "-y", "-v", "error", "-f", "f32le", "-ar", str(sample_rate_hz), "-ac", str(samples.shape[1]), "-i", "pipe:0", *args, str(path)]
    subprocess.run(command, input=samples.tobytes(), check=True, capture_output=True)
    return path


def write_track(track: Track, path: Path, fmt: str, bitrate: str | None = None) -> Path:
    return write_audio(path, track.samples, track.sample_rate_hz, fmt, bitrate)


def write_video_only_mp4(path: Path, duration_s: float = 1.0) -> Path:
    """An MP4 with one video stream and no audio."""
    command = [FFMPEG, "-nostdin", "-y", "-v", "error", "-f", "lavfi", "-i", f"color=c=gray:s=64x64:d={duration_s}", "-c:v", "mpeg4", "-an", str(path)]
    subprocess.run(command, check=True, capture_output=True)
    return Path(path)


def write_png(path: Path) -> Path:
    """A small PNG image, whatever ``path``'s extension says."""
    from PIL import Image

    Image.fromarray(np.full((16, 16, 3), 128, dtype=np.uint8)).save(str(path), format="PNG")
    return Path(path)


def truncate_copy(source: Path, target: Path, keep_fraction: float = 0.5) -> Path:
    """A copy of ``source`` cut after ``keep_fraction`` of its bytes (an interrupted download)."""
    data = Path(source).read_bytes()
    Path(target).write_bytes(data[: int(len(data) * keep_fraction)])
    return Path(target)


def lufs(samples: np.ndarray, sample_rate_hz: int) -> float:
    """Integrated loudness by pyloudnorm itself (the reference the tests check against)."""
    import pyloudnorm

    return float(pyloudnorm.Meter(sample_rate_hz).integrated_loudness(np.asarray(samples, dtype=np.float64)))


def true_peak_dbtp_reference(samples: np.ndarray, oversampling: int = 8) -> float:
    """True peak by plain polyphase oversampling (8× by default), independent of ingest's implementation."""
    from scipy.signal import resample_poly

    samples = np.asarray(samples, dtype=np.float64).reshape(samples.shape[0], -1)
    peak = max(float(np.abs(resample_poly(samples[:, c], oversampling, 1)).max()) for c in range(samples.shape[1]))
    return 20 * math.log10(peak) if peak > 0 else -math.inf
