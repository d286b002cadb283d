"""Audio ingest: turn whatever voiceover file the user has into the master track.

The file is probed once (``probe_audio`` → ``SourceInfo``) and decoded once.
What comes out (``MasterAudio``) is what every later step uses:

* ``samples``: float32 ``[n, channels]`` at the source's own sample rate,
  leading silence trimmed (keeping ``lead_in_ms`` of natural lead-in) and
  loudness-normalised to ``target_lufs`` under a true-peak ceiling. This is
  the audio the stitcher muxes, so it is never resampled or limited.
* ``vad_16k``: the same span mixed to mono and resampled to 16 kHz, with the
  same gain applied, so the VAD sees speech at a consistent level however
  loud or quiet the recording was.

Problems that make the file unusable raise ``MediaError`` (exit 3) naming the
file, what is wrong and the fix; nothing is written. Problems worth knowing
about (clipping, a low sample rate or bitrate, long silences, a long file) are
returned as ``MasterAudio.warnings`` and logged; they never stop the run.

Decoding goes through PyAV (FFmpeg), which reads WAV, FLAC, MP3, M4A/AAC,
OGG and most else; a file FFmpeg cannot open is retried with libsndfile.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from orchestrator.atomic import atomic_path
from orchestrator.errors import MediaError, not_a_file
from orchestrator.timebase import format_timestamp

if TYPE_CHECKING:
    from orchestrator.config import AudioConfig

log = logging.getLogger("longtake")

VAD_SAMPLE_RATE_HZ = 16000
MIN_DURATION_S = 0.4  # one EBU R128 gating block: shorter audio has no measurable loudness
SILENCE_PEAK_DBFS = -60.0  # a file whose loudest sample is below this holds no usable voice
CLIP_LEVEL = 0.999  # |sample| at or above this counts as full scale (int16 full scale is 32767/32768)
CLIP_MIN_RUN_SAMPLES = 3  # this many equal samples at full scale do not happen in unclipped audio
LONG_SILENCE_S = 3.0
LOW_SAMPLE_RATE_HZ = 16000
LARGE_GAIN_DB = 20.0  # above this the recording's noise floor comes up with the voice
# Below these stereo bitrates a lossy codec audibly smears consonants; mono needs half.
LOW_BITRATE_BPS: dict[str, int] = {"mp3": 128_000, "mp2": 160_000, "aac": 96_000, "vorbis": 96_000, "opus": 48_000}
LOW_BITRATE_DEFAULT_BPS = 96_000

_ANALYSIS_FRAME_S = 0.010
_MIN_ACTIVE_FRAMES = 5  # sound must last 50 ms to count as the start of speech (a click does not)
_SPEECH_PERCENTILE = 95.0
_NOISE_PERCENTILE = 10.0
_ACTIVITY_BELOW_SPEECH_DB = 30.0
_ACTIVITY_RANGE_FRACTION = 0.25
_ACTIVITY_MIN_BELOW_SPEECH_DB = 6.0  # a file with no quiet stretch at all: everything is sound
_LOUDNESS_STEP_S = 0.1  # BS.1770 gating blocks: 400 ms, hopped by 100 ms
_LOUDNESS_CHUNK_SAMPLES = 1 << 18
_LOUDNESS_ABSOLUTE_GATE_LUFS = -70.0
_LOUDNESS_RELATIVE_GATE_LU = -10.0
_TRUE_PEAK_OVERSAMPLING = 4
_TRUE_PEAK_TAPS_PER_PHASE = 12
_TRUE_PEAK_BLOCK_SAMPLES = 512
_TRUNCATION_TOLERANCE_S = 0.25
_DROPPED_AUDIO_WARN_S = 0.01  # below: codec padding and rounding
_PHASE_CANCEL_RATIO = 0.1  # mono mix holding < 10 % of the channels' energy: they cancel


@dataclass(frozen=True)
class SourceInfo:
    """What the source file is, probed once at the boundary.

    ``duration_s`` is the container's claim in ``probe_audio``; in
    ``MasterAudio.source`` it is the decoded length. ``decoder`` says which
    library reads the file ("pyav", or "libsndfile" for files FFmpeg cannot open).
    """

    path: Path
    container: str
    codec: str
    channels: int
    sample_rate_hz: int
    bit_rate_bps: int | None
    duration_s: float
    lossy: bool
    decoder: Literal["pyav", "libsndfile"] = "pyav"


@dataclass(frozen=True, eq=False)  # eq=False: numpy arrays have no boolean equality
class MasterAudio:
    """The master track (see the module docstring for what each array holds)."""

    samples: np.ndarray
    sample_rate_hz: int
    vad_16k: np.ndarray
    trim_start_sample: int
    source: SourceInfo
    lufs_before: float
    lufs_after: float
    gain_db: float
    true_peak_dbtp: float
    warnings: tuple[str, ...] = ()

    @property
    def duration_samples(self) -> int:
        return int(self.samples.shape[0])

    @property
    def channels(self) -> int:
        return int(self.samples.shape[1])

    @property
    def duration_s(self) -> float:
        return self.duration_samples / self.sample_rate_hz


# =====================================================================================
# probe
# =====================================================================================


def probe_audio(path: Path) -> SourceInfo:
    """Describe ``path``'s audio stream; raise MediaError if it is missing, empty, unreadable or has no audio."""
    path = Path(path)
    _check_file(path)
    import av

    try:
        info = _probe_pyav(path)
    except _NoAudioStream as exc:
        if exc.is_image:
            raise MediaError(f"{path}: has no audio stream: it is an image ({exc.found}). Point `voiceover:` at the audio file.") from None
        raise MediaError(
            f"{path}: has no audio stream (it holds {exc.found}). Point `voiceover:` at the audio file, "
            f"or extract the audio first (e.g. `ffmpeg -i {path.name} -vn voice.wav`)."
        ) from None
    except av.error.FFmpegError as exc:
        info = _probe_soundfile(path)
        if info is None:
            raise MediaError(
                f"{path}: cannot be read as audio ({_ffmpeg_reason(exc)}). It may be cut short (an interrupted "
                f"download or copy) or not an audio file at all; re-export it as WAV or FLAC."
            ) from None
    if info.container == "wav":
        _check_riff_complete(path, info)
    return info


class _NoAudioStream(Exception):
    def __init__(self, found: str, is_image: bool):
        self.found = found
        self.is_image = is_image


_IMAGE_CODECS = frozenset({"png", "mjpeg", "bmp", "gif", "webp", "tiff", "jpeg2000", "jpegls", "qoi"})


def _check_file(path: Path) -> None:
    problem = not_a_file(path)
    if problem == "does not exist":
        raise MediaError(f"{path}: audio file not found; check the path (`voiceover:` is relative to the project file).")
    if problem:
        raise MediaError(f"{path}: {problem}; point `voiceover:` at an audio file.")
    try:
        size_bytes = path.stat().st_size
        with path.open("rb"):
            pass
    except OSError as exc:
        raise MediaError(f"{path}: cannot be opened ({exc.strerror}); check its permissions.") from None
    if size_bytes == 0:
        raise MediaError(f"{path}: is empty (0 bytes); re-export or re-copy the voiceover.")


def _probe_pyav(path: Path) -> SourceInfo:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.best("audio")
        if stream is None:
            found = ", ".join(f"{s.type} ({s.codec_context.name})" for s in container.streams) or "no streams at all"
            is_image = bool(container.streams) and all(s.type == "video" and s.codec_context.name in _IMAGE_CODECS for s in container.streams)
            raise _NoAudioStream(found, is_image)
        ctx = stream.codec_context
        if stream.duration is not None and stream.time_base is not None:
            duration_s = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration_s = container.duration / av.time_base
        else:
            duration_s = math.nan  # unknown until decoded
        only_audio = all(s.type == "audio" for s in container.streams)
        bit_rate_bps = stream.bit_rate or ctx.bit_rate or (container.bit_rate if only_audio else None) or None
        return SourceInfo(
            path=path,
            container=_container_name(container.format.name, path.suffix),
            codec=ctx.codec.canonical_name,
            channels=int(ctx.channels),
            sample_rate_hz=int(ctx.sample_rate),
            bit_rate_bps=int(bit_rate_bps) if bit_rate_bps else None,
            duration_s=duration_s,
            lossy=bool(ctx.codec.lossy and not ctx.codec.lossless),
            decoder="pyav",
        )


def _container_name(format_name: str, suffix: str) -> str:
    """FFmpeg names some demuxers by family ("mov,mp4,m4a,…"); prefer the member the file's extension names."""
    names = format_name.split(",")
    wanted = suffix.lower().lstrip(".")
    return wanted if wanted in names else names[0]


def _probe_soundfile(path: Path) -> SourceInfo | None:
    import soundfile

    try:
        info = soundfile.info(str(path))
    except (RuntimeError, soundfile.LibsndfileError):
        return None
    if info.frames <= 0 or info.samplerate <= 0:
        return None
    subtype = info.subtype.upper()
    lossless = subtype.startswith(("PCM_", "FLOAT", "DOUBLE", "ALAC_"))
    return SourceInfo(
        path=path,
        container=info.format.lower(),
        codec=subtype.lower(),
        channels=int(info.channels),
        sample_rate_hz=int(info.samplerate),
        bit_rate_bps=None,
        duration_s=info.frames / info.samplerate,
        lossy=not lossless,
        decoder="libsndfile",
    )


def _check_riff_complete(path: Path, info: SourceInfo) -> None:
    """A WAV whose data chunk is cut short (FFmpeg silently shortens its duration to what is there)."""
    file_bytes = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return  # RF64, W64 …: FFmpeg's own checks apply
        offset = 12
        while offset + 8 <= file_bytes:
            fh.seek(offset)
            chunk_id, declared_bytes = struct.unpack("<4sI", fh.read(8))
            if chunk_id == b"data":
                available_bytes = file_bytes - offset - 8
                # 0 and ~4 GiB are the placeholders streaming writers leave when they cannot seek back.
                if 0 < declared_bytes < 0x7FFF0000 and available_bytes < declared_bytes:
                    seconds = ""
                    if info.bit_rate_bps:  # exact for PCM
                        bytes_per_s = info.bit_rate_bps / 8
                        seconds = f" ({format_timestamp(available_bytes / bytes_per_s)} of {format_timestamp(declared_bytes / bytes_per_s)})"
                    raise MediaError(
                        f"{path}: is truncated: its header promises {declared_bytes:,} bytes of audio but the file "
                        f"holds only {available_bytes:,}{seconds}. Re-copy or re-export the voiceover."
                    )
                return
            offset += 8 + declared_bytes + (declared_bytes & 1)


# =====================================================================================
# decode
# =====================================================================================


@dataclass
class _Decoded:
    samples: np.ndarray  # float32 [n, channels]
    bad_packets: int = 0
    first_bad_s: float | None = None


def _decode(info: SourceInfo) -> _Decoded:
    if info.decoder == "libsndfile":
        return _decode_soundfile(info)
    return _decode_pyav(info)


def _decode_soundfile(info: SourceInfo) -> _Decoded:
    import soundfile

    try:
        samples, _ = soundfile.read(str(info.path), dtype="float32", always_2d=True)
    except (RuntimeError, soundfile.LibsndfileError) as exc:
        raise MediaError(f"{info.path}: cannot be decoded ({exc}); re-export it as WAV or FLAC.") from None
    return _Decoded(samples)


def _decode_pyav(info: SourceInfo) -> _Decoded:
    import av

    chunks: list[np.ndarray] = []
    bad_packets, first_bad_s = 0, None
    try:
        container = av.open(str(info.path))
    except av.error.FFmpegError as exc:
        raise MediaError(f"{info.path}: cannot be read as audio ({_ffmpeg_reason(exc)}); re-export it as WAV or FLAC.") from None
    with container:
        stream = container.streams.best("audio")
        try:
            for packet in container.demux(stream):
                try:
                    frames = packet.decode()
                except av.error.FFmpegError:
                    # One damaged packet is a click, not a reason to refuse the file; the
                    # length check after decoding catches files that stop early.
                    bad_packets += 1
                    if first_bad_s is None and packet.pts is not None and packet.time_base is not None:
                        first_bad_s = float(packet.pts * packet.time_base)
                    continue
                for frame in frames:
                    chunks.append(_frame_to_float(frame, info))
        except av.error.FFmpegError:
            bad_packets += 1  # the container itself breaks off here: treated as the end of the data
    if not chunks:
        return _Decoded(np.zeros((0, info.channels), dtype=np.float32), bad_packets, first_bad_s)
    # planar frames arrive transposed; the master is [n, channels] in C order for the muxer
    return _Decoded(np.ascontiguousarray(np.concatenate(chunks)), bad_packets, first_bad_s)


_INT_SCALE = {"u8": 128.0, "s16": 32768.0, "s32": 2147483648.0, "s64": 9223372036854775808.0}


def _frame_to_float(frame, info: SourceInfo) -> np.ndarray:
    """One decoded frame as float32 [n, channels], integer formats scaled so full scale is ±1."""
    data = frame.to_ndarray()
    channels = frame.layout.nb_channels
    if channels != info.channels:
        raise MediaError(
            f"{info.path}: the channel count changes mid-stream ({info.channels} → {channels}); "
            f"re-export the voiceover as a plain WAV or FLAC."
        )
    data = data.T if frame.format.is_planar else data.reshape(-1, channels)
    kind = frame.format.name.rstrip("p")
    if kind in ("flt", "dbl"):
        return data.astype(np.float32, copy=False)
    if kind == "u8":
        return ((data.astype(np.float32) - 128.0) / 128.0).astype(np.float32)
    return (data.astype(np.float32) / np.float32(_INT_SCALE[kind])).astype(np.float32, copy=False)


def _ffmpeg_reason(exc: Exception) -> str:
    strerror = getattr(exc, "strerror", None)
    return f"FFmpeg: {strerror}" if strerror else f"FFmpeg: {exc}"


def _declared_length_is_exact(info: SourceInfo) -> bool:
    """Whether the container's duration is written in its header (and a shorter decode means damage)."""
    if info.decoder != "pyav" or not math.isfinite(info.duration_s):
        return False
    # FLAC's STREAMINFO, MP4's sample tables and Ogg's last granule position count samples exactly.
    if info.container in ("flac", "ogg", "mov", "mp4", "m4a", "3gp", "3g2", "mj2"):
        return True
    if info.container == "mp3":
        return _mp3_has_length_header(info.path)
    return False  # WAV is checked against its RIFF header instead; other containers only estimate


def _mp3_has_length_header(path: Path) -> bool:
    """Xing/Info/VBRI frame present: without one FFmpeg only estimates an MP3's duration from its bitrate."""
    with path.open("rb") as fh:
        head = fh.read(10)
        start = 0
        if head[:3] == b"ID3" and len(head) == 10:
            size = (head[6] & 0x7F) << 21 | (head[7] & 0x7F) << 14 | (head[8] & 0x7F) << 7 | (head[9] & 0x7F)
            start = 10 + size
        fh.seek(start)
        first_frame = fh.read(4096)
    return any(tag in first_frame for tag in (b"Xing", b"Info", b"VBRI"))


# =====================================================================================
# analysis
# =====================================================================================


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) indices of each run of True in a 1-D boolean array."""
    edges = np.diff(mask.astype(np.int8), prepend=0, append=0)
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


def _mono_mix(samples: np.ndarray, info: SourceInfo, warnings: list[str]) -> np.ndarray:
    """Mono for analysis and VAD: the channel mean, unless the channels cancel (one is phase-inverted)."""
    if samples.shape[1] == 1:
        return samples[:, 0]
    mono = samples[:, 0].copy()  # column sums: numpy's mean over a short last axis is ~10× slower
    for c in range(1, samples.shape[1]):
        mono += samples[:, c]
    mono *= np.float32(1.0 / samples.shape[1])
    # Every 8th sample estimates the energies well enough for a 10 % test, 8× cheaper.
    sparse = samples[::8]
    channel_energy = np.einsum("ij,ij->j", sparse, sparse)
    mono_energy = float(np.dot(mono[::8], mono[::8]))
    if mono_energy < _PHASE_CANCEL_RATIO * channel_energy.mean():
        loudest = int(np.argmax(channel_energy))
        _warn(
            warnings,
            f"{info.path.name}: the channels cancel when mixed to mono (one is phase-inverted); speech detection "
            f"uses channel {loudest + 1} alone. The master keeps all channels, but mono playback will be near "
            f"silent: invert one channel in the recording to fix it.",
        )
        return samples[:, loudest].copy()
    return mono


@dataclass(frozen=True)
class _Activity:
    """Where the recording has sound, on a 10-ms grid of the source."""

    frame_samples: int
    active: np.ndarray  # bool per frame

    def onset_sample(self) -> int | None:
        hits = np.flatnonzero(self.active)
        return int(hits[0]) * self.frame_samples if hits.size else None


def _activity(mono: np.ndarray, sample_rate_hz: int) -> _Activity:
    """Frames with sustained sound, by an energy threshold set relative to this file's own speech level.

    The threshold sits 30 dB under the speech level (95th percentile of frame
    energy) or a quarter of the way up from the noise floor (10th percentile),
    whichever is higher, so it works the same on a quiet and a loud recording
    and stays clear of room noise; and at least 6 dB under the speech level, so
    a file with no quiet stretch counts as sound throughout. Sound must last
    50 ms to count (clicks don't).
    """
    from scipy.ndimage import binary_opening

    frame_samples = max(1, round(sample_rate_hz * _ANALYSIS_FRAME_S))
    n_frames = mono.shape[0] // frame_samples
    if n_frames == 0:
        return _Activity(frame_samples, np.zeros(0, dtype=bool))
    frames = mono[: n_frames * frame_samples].reshape(n_frames, frame_samples)
    power = np.einsum("ij,ij->i", frames, frames, dtype=np.float64) / frame_samples
    energy_db = 10.0 * np.log10(np.maximum(power, 1e-12))
    speech_db, noise_db = np.percentile(energy_db, [_SPEECH_PERCENTILE, _NOISE_PERCENTILE])
    threshold_db = min(
        max(speech_db - _ACTIVITY_BELOW_SPEECH_DB, noise_db + _ACTIVITY_RANGE_FRACTION * (speech_db - noise_db)),
        speech_db - _ACTIVITY_MIN_BELOW_SPEECH_DB,
    )
    loud = energy_db > threshold_db
    active = binary_opening(loud, structure=np.ones(_MIN_ACTIVE_FRAMES, dtype=bool)) if n_frames >= _MIN_ACTIVE_FRAMES else loud
    return _Activity(frame_samples, active)


def _long_silences(activity: _Activity, sample_rate_hz: int, include_leading: bool) -> list[tuple[int, int]]:
    """[start, end) source samples of silences longer than LONG_SILENCE_S (leading ones only if asked)."""
    quiet_starts, quiet_ends = _runs(~activity.active)
    min_frames = math.ceil(LONG_SILENCE_S / _ANALYSIS_FRAME_S)
    spans = []
    for start, end in zip(quiet_starts, quiet_ends):
        if end - start < min_frames or (start == 0 and not include_leading):
            continue
        spans.append((int(start) * activity.frame_samples, int(end) * activity.frame_samples))
    return spans


def count_clipped_runs(samples: np.ndarray) -> tuple[int, int | None]:
    """Runs of ≥ CLIP_MIN_RUN_SAMPLES equal samples at full scale (per channel), and the first one's start sample.

    A clipped waveform sits flat on the rail for several samples; an unclipped
    one touches full scale at most for a sample or two, even when normalised to
    0 dBFS, so flat runs rather than loud samples are what gets counted.
    """
    samples = samples.reshape(samples.shape[0], -1)
    count, first = 0, None
    for c in range(samples.shape[1]):
        column = samples[:, c]
        hot = np.flatnonzero(np.abs(column) >= CLIP_LEVEL)
        if hot.size < CLIP_MIN_RUN_SAMPLES:
            continue
        values = column[hot]
        breaks = np.flatnonzero((np.diff(hot) != 1) | (np.diff(values) != 0)) + 1
        starts = np.concatenate([[0], breaks])
        lengths = np.diff(np.concatenate([starts, [hot.size]]))
        flat = starts[lengths >= CLIP_MIN_RUN_SAMPLES]
        if flat.size:
            count += int(flat.size)
            first = int(hot[flat[0]]) if first is None else min(first, int(hot[flat[0]]))
    return count, first


# -- loudness (ITU-R BS.1770-4 / EBU R128) ---------------------------------------------


def _k_weighted_block_powers(samples: np.ndarray, sample_rate_hz: int) -> np.ndarray:
    """Channel-weighted mean square of the K-weighted signal per 400-ms gating block (100-ms hop)."""
    import pyloudnorm
    from scipy.signal import sosfilt, tf2sos

    # pyloudnorm's own K-weighting biquads, so our numbers are pyloudnorm's. Its
    # integrated_loudness() loops over blocks in Python (≈1 s for 3 minutes of
    # stereo); the same gating done with arrays takes a few milliseconds and lets
    # the loudness after a gain change be computed from the same blocks.
    meter = pyloudnorm.Meter(sample_rate_hz)
    sos = np.concatenate([tf2sos(stage.b, stage.a) for stage in meter._filters.values()])
    step_samples = round(sample_rate_hz * _LOUDNESS_STEP_S)
    n_steps = samples.shape[0] // step_samples
    if n_steps < 4:
        return np.zeros(0)
    channels = samples.shape[1]
    if channels == 6:  # 5.1 (L R C LFE Ls Rs): the LFE is left out, surrounds weigh 1.41
        weights = [1.0, 1.0, 1.0, 0.0, 1.41, 1.41]
    else:
        weights = [1.0 if c < 3 else 1.41 for c in range(channels)]
    step_energy = np.zeros(n_steps)
    # Filter in chunks (carrying the filter state) so the float64 copies stay small and cache-warm.
    steps_per_chunk = max(1, _LOUDNESS_CHUNK_SAMPLES // step_samples)
    for c, weight in enumerate(weights):
        if weight == 0.0:
            continue
        state = np.zeros((sos.shape[0], 2))
        for first_step in range(0, n_steps, steps_per_chunk):
            last_step = min(n_steps, first_step + steps_per_chunk)
            chunk = samples[first_step * step_samples : last_step * step_samples, c].astype(np.float64)
            filtered, state = sosfilt(sos, chunk, zi=state)
            steps = filtered.reshape(last_step - first_step, step_samples)
            step_energy[first_step:last_step] += weight * np.einsum("ij,ij->i", steps, steps)
    block_energy = step_energy[:-3] + step_energy[1:-2] + step_energy[2:-1] + step_energy[3:]
    return block_energy / (4 * step_samples)


def _gated_loudness(block_powers: np.ndarray) -> float:
    """Integrated loudness in LUFS from block powers; -inf when every block is below the absolute gate."""
    if block_powers.size == 0:
        return -math.inf
    with np.errstate(divide="ignore"):
        block_lufs = -0.691 + 10.0 * np.log10(block_powers)
    above_absolute = block_lufs >= _LOUDNESS_ABSOLUTE_GATE_LUFS
    if not above_absolute.any():
        return -math.inf
    relative_gate = -0.691 + 10.0 * np.log10(block_powers[above_absolute].mean()) + _LOUDNESS_RELATIVE_GATE_LU
    gated = above_absolute & (block_lufs > relative_gate)
    if not gated.any():
        return -math.inf
    return float(-0.691 + 10.0 * np.log10(block_powers[gated].mean()))


def integrated_loudness(samples: np.ndarray, sample_rate_hz: int) -> float:
    """Integrated loudness (LUFS) of float samples ``[n, channels]`` or ``[n]``; -inf for silence or < 0.4 s."""
    samples = samples.reshape(samples.shape[0], -1)
    return _gated_loudness(_k_weighted_block_powers(samples, sample_rate_hz))


@functools.lru_cache(maxsize=1)
def _true_peak_phases() -> tuple[np.ndarray, float]:
    """The 4× interpolator's three in-between phases, ``[3, taps_per_phase]``, and their worst-case gain.

    The interpolator is a Kaiser-windowed sinc cut off at the original Nyquist
    frequency (48 taps, the length BS.1770-4's reference filter has), so it
    passes the original samples through unchanged and only the values at
    ``n + 1/4``, ``n + 2/4`` and ``n + 3/4`` need computing. Row ``p-1``,
    correlated with ``x[n - taps/2 + 1 … n + taps/2]``, gives the value at ``n + p/4``.
    """
    from scipy.signal import firwin

    up, per_phase = _TRUE_PEAK_OVERSAMPLING, _TRUE_PEAK_TAPS_PER_PHASE
    taps = firwin(up * per_phase + 1, 1.0 / up, window=("kaiser", 8.0)) * up
    phases = np.array([[taps[p + up * (per_phase - 1 - i)] for i in range(per_phase)] for p in range(1, up)], dtype=np.float32)
    worst_gain = max(1.0, float(np.abs(phases).sum(axis=1).max()))
    return phases, worst_gain


def true_peak(samples: np.ndarray, sample_rate_hz: int) -> float:
    """Largest absolute value of the signal 4× oversampled (linear; the inter-sample peak of BS.1770-4 Annex 2).

    Only the stretches that could hold the peak are oversampled: an
    interpolated value can exceed the largest input sample under the filter by
    at most the filter's worst-case gain, so a block whose neighbourhood stays
    under ``sample peak / worst gain`` cannot hold the true peak. The result is
    the same as oversampling everything, and on speech several times faster.
    """
    from scipy.ndimage import correlate1d

    samples = samples.reshape(samples.shape[0], -1)
    n = samples.shape[0]
    if n == 0:
        return 0.0
    sample_peak = max(float(samples.max()), -float(samples.min()))
    if sample_peak == 0.0:
        return 0.0
    phases, worst_gain = _true_peak_phases()
    per_phase = phases.shape[1]
    # correlate1d centres a filter of even length L on tap L//2; ours must read x[n - L/2 + 1 … n + L/2]
    origin = -1
    block = _TRUE_PEAK_BLOCK_SAMPLES
    n_blocks = -(-n // block)
    block_peak = np.zeros(n_blocks, dtype=np.float32)
    for c in range(samples.shape[1]):
        column = np.zeros(n_blocks * block, dtype=np.float32)
        column[:n] = samples[:, c]
        blocks = column.reshape(n_blocks, block)
        block_peak = np.maximum(block_peak, np.maximum(blocks.max(axis=1), -blocks.min(axis=1)))
    near_peak = block_peak.copy()  # a block's interpolation reads a few samples of its neighbours
    near_peak[1:] = np.maximum(near_peak[1:], block_peak[:-1])
    near_peak[:-1] = np.maximum(near_peak[:-1], block_peak[1:])
    peak = sample_peak
    margin = per_phase // 2
    for first, last in zip(*_runs(near_peak * worst_gain >= sample_peak)):
        start, end = int(first) * block, min(n, int(last) * block)
        lo, hi = max(0, start - margin), min(n, end + margin)
        for c in range(samples.shape[1]):
            span = np.ascontiguousarray(samples[lo:hi, c], dtype=np.float32)
            keep = slice(start - lo, end - lo)  # outputs whose inputs all lie inside [lo, hi) or outside the file
            for taps in phases:
                between = correlate1d(span, taps, mode="constant", cval=0.0, origin=origin)[keep]
                peak = max(peak, float(between.max()), -float(between.min()))
    return peak


def _db(linear: float) -> float:
    return 20.0 * math.log10(linear) if linear > 0 else -math.inf


def true_peak_dbtp(samples: np.ndarray, sample_rate_hz: int) -> float:
    return _db(true_peak(samples, sample_rate_hz))


def resample_to_16k(mono: np.ndarray, sample_rate_hz: int) -> np.ndarray:
    """Polyphase resampling (anti-aliased) of a mono signal to 16 kHz, float32."""
    from scipy.signal import resample_poly

    if sample_rate_hz == VAD_SAMPLE_RATE_HZ:
        return np.array(mono, dtype=np.float32)
    g = math.gcd(sample_rate_hz, VAD_SAMPLE_RATE_HZ)
    return resample_poly(mono, VAD_SAMPLE_RATE_HZ // g, sample_rate_hz // g).astype(np.float32)


def _warn(warnings: list[str], message: str) -> None:
    warnings.append(message)
    log.warning("%s", message)


# =====================================================================================
# ingest
# =====================================================================================


def ingest_audio(path: Path, cfg: AudioConfig) -> MasterAudio:
    """Probe, decode, check, trim and loudness-normalise ``path`` into the master track."""
    # 1. probe and decode
    info = probe_audio(Path(path))
    decoded = _decode(info)
    samples = decoded.samples
    sr = info.sample_rate_hz
    name = info.path.name
    warnings: list[str] = []

    # 2. refuse what cannot be used
    shortfall_s = _check_decoded(info, decoded)
    info = dataclasses.replace(info, duration_s=samples.shape[0] / sr)
    sample_peak = max(float(samples.max()), -float(samples.min()))
    if _db(sample_peak) < SILENCE_PEAK_DBFS:
        raise MediaError(
            f"{info.path}: is silent: its loudest sample is {_db(sample_peak):.1f} dBFS, and a voiceover needs "
            f"peaks above {SILENCE_PEAK_DBFS:.0f} dBFS. Check that the right file or track was exported and not muted."
        )

    # 3. warnings about the source
    if decoded.bad_packets:
        where = f" (first at {format_timestamp(decoded.first_bad_s)})" if decoded.first_bad_s is not None else ""
        _warn(warnings, f"{name}: {decoded.bad_packets} damaged packet(s) were skipped{where}; expect a click there. Re-export the file to fix it.")
    elif shortfall_s > _DROPPED_AUDIO_WARN_S:
        _warn(
            warnings,
            f"{name}: {shortfall_s * 1000:.0f} ms fewer samples decoded than the file declares: the decoder dropped "
            f"damaged frames, so some audio is missing. Re-export the file to fix it.",
        )
    clip_count, first_clip = count_clipped_runs(samples) if sample_peak >= CLIP_LEVEL else (0, None)
    if clip_count:
        _warn(
            warnings,
            f"{name}: clipping: {clip_count} flat run(s) of samples at full scale, the first at "
            f"{format_timestamp(first_clip / sr)}; the voice was recorded too loud and those peaks stay distorted. "
            f"Re-record with more headroom if you can.",
        )
    if sr < LOW_SAMPLE_RATE_HZ:
        _warn(
            warnings,
            f"{name}: sample rate {sr} Hz is below {LOW_SAMPLE_RATE_HZ} Hz: everything above {sr / 2000:.1f} kHz "
            f"(sibilants, crispness) is missing. Use a 16 kHz or better recording if you have one.",
        )
    low_bitrate_bps = _low_bitrate_bps(info)
    if info.lossy and info.bit_rate_bps is not None and info.bit_rate_bps < low_bitrate_bps:
        _warn(
            warnings,
            f"{name}: {info.codec} at {info.bit_rate_bps / 1000:.0f} kbps is a low bitrate for "
            f"{'stereo' if info.channels > 1 else 'mono'} speech (below {low_bitrate_bps / 1000:.0f} kbps): "
            f"compression artefacts will be heard in the video. Use a WAV/FLAC or a higher-bitrate export.",
        )

    if info.channels > 2:
        # stitchers.audio averages them: there is no standard layout for more than two channels in a WAV.
        _warn(
            warnings,
            f"{name}: has {info.channels} audio channels; the video's soundtrack will be mono, every channel "
            f"averaged with equal weight (speech detection hears the same mix). Export a mono or stereo "
            f"voiceover to choose the mix yourself.",
        )

    # 4. trim leading silence, keeping a natural lead-in
    mono = _mono_mix(samples, info, warnings)
    activity = _activity(mono, sr)
    onset_sample = activity.onset_sample()
    trim_start_sample = 0
    if cfg.trim_leading_silence and onset_sample is not None:
        trim_start_sample = max(0, onset_sample - round(cfg.lead_in_ms * sr / 1000))
        if trim_start_sample:
            log.info("%s: trimmed %.2f s of leading silence", name, trim_start_sample / sr)
    silences = _long_silences(activity, sr, include_leading=not cfg.trim_leading_silence)
    if silences:
        spans = ", ".join(f"{format_timestamp(a / sr)}–{format_timestamp(b / sr)}" for a, b in silences[:8])
        more = f" and {len(silences) - 8} more" if len(silences) > 8 else ""
        _warn(
            warnings,
            f"{name}: {len(silences)} silence(s) longer than {LONG_SILENCE_S:g} s at {spans}{more} (source time); "
            f"the person will sit silent there. Cut them from the voiceover if that is not intended.",
        )
    trimmed = samples[trim_start_sample:]
    duration_s = trimmed.shape[0] / sr
    if duration_s < MIN_DURATION_S:
        after_trim = f" after {trim_start_sample / sr:.2f} s of leading silence" if trim_start_sample else ""
        raise MediaError(f"{info.path}: holds only {duration_s:.2f} s of audio{after_trim}; a voiceover must be at least {MIN_DURATION_S} s long.")
    if duration_s > cfg.max_duration_s:
        _warn(
            warnings,
            f"{name}: the audio is {format_timestamp(duration_s)} long, above audio.max_duration_s = {cfg.max_duration_s:g} s; "
            f"generation time and cost grow with length. Raise audio.max_duration_s if this is intended.",
        )

    # 5. loudness: normalise to the target, never past the true-peak ceiling
    block_powers = _k_weighted_block_powers(trimmed, sr)
    lufs_before = _gated_loudness(block_powers)
    if not math.isfinite(lufs_before):
        raise MediaError(
            f"{info.path}: is silent: its loudness is below {_LOUDNESS_ABSOLUTE_GATE_LUFS:.0f} LUFS everywhere "
            f"(only isolated clicks or hiss). Check that the right file or track was exported."
        )
    peak_dbtp_before = true_peak_dbtp(trimmed, sr)
    gain_db = cfg.target_lufs - lufs_before
    if peak_dbtp_before + gain_db > cfg.true_peak_dbtp:
        wanted_db = gain_db
        gain_db = cfg.true_peak_dbtp - peak_dbtp_before
        _warn(
            warnings,
            f"{name}: reaching {cfg.target_lufs:g} LUFS would put the true peak at {peak_dbtp_before + wanted_db:+.1f} dBTP, "
            f"above the {cfg.true_peak_dbtp:g} dBTP ceiling; gain reduced by {wanted_db - gain_db:.1f} dB, so the master is "
            f"{lufs_before + gain_db:.1f} LUFS. Compress or limit the voiceover first if it must be louder.",
        )
    if gain_db > LARGE_GAIN_DB:
        _warn(
            warnings,
            f"{name}: a very quiet recording ({lufs_before:.1f} LUFS): raised by {gain_db:.1f} dB, and its background noise with it. "
            f"Record closer to the microphone or with more gain if you can.",
        )
    gain = 10.0 ** (gain_db / 20.0)
    lufs_after = _gated_loudness(block_powers * gain * gain)
    master_samples = (trimmed * np.float32(gain)).astype(np.float32)

    # 6. the VAD's copy: the same span and gain, mono, 16 kHz
    vad_16k = resample_to_16k(mono[trim_start_sample:] * np.float32(gain), sr)

    return MasterAudio(
        samples=master_samples,
        sample_rate_hz=sr,
        vad_16k=vad_16k,
        trim_start_sample=int(trim_start_sample),
        source=info,
        lufs_before=float(lufs_before),
        lufs_after=float(lufs_after),
        gain_db=float(gain_db),
        true_peak_dbtp=float(peak_dbtp_before + gain_db),
        warnings=tuple(warnings),
    )


def _check_decoded(info: SourceInfo, decoded: _Decoded) -> float:
    """Refuse empty, cut-short or non-finite audio; return how many seconds fewer than declared were decoded."""
    n = decoded.samples.shape[0]
    if n == 0:
        raise MediaError(f"{info.path}: contains no audio samples (a header without data); re-export the voiceover.")
    decoded_s = n / info.sample_rate_hz
    shortfall_s = info.duration_s - decoded_s if _declared_length_is_exact(info) else 0.0
    if shortfall_s > max(_TRUNCATION_TOLERANCE_S, 0.02 * info.duration_s):
        raise MediaError(
            f"{info.path}: is truncated or damaged: the file says it is {format_timestamp(info.duration_s)} long but only "
            f"{format_timestamp(decoded_s)} could be decoded. Re-copy or re-export the voiceover."
        )
    # The float64 sum is finite exactly when every sample is (decoded audio is far from overflowing it).
    if not math.isfinite(float(decoded.samples.sum(dtype=np.float64))):
        raise MediaError(f"{info.path}: holds NaN or infinite samples (a broken float export); re-export it.")
    return max(0.0, shortfall_s)


def _low_bitrate_bps(info: SourceInfo) -> int:
    stereo_bps = LOW_BITRATE_BPS.get(info.codec, LOW_BITRATE_DEFAULT_BPS)
    return stereo_bps if info.channels > 1 else stereo_bps // 2


# =====================================================================================
# output
# =====================================================================================


def write_master_wav(master: MasterAudio, path: Path) -> None:
    """Write the master track as a 32-bit float WAV, atomically (a reader never sees half a file)."""
    import soundfile

    data_bytes = master.samples.size * 4
    container = "WAV" if data_bytes < 0xFFFF0000 else "RF64"  # plain RIFF sizes are 32-bit
    with atomic_path(Path(path), suffix=".wav") as tmp:
        soundfile.write(str(tmp), master.samples, master.sample_rate_hz, subtype="FLOAT", format=container)
