"""The segment's voiceover → the clean audio latents LTX-2.3 is conditioned on.

LTX-2.3's audio VAE reads a 16 kHz stereo log-mel spectrogram (64 bins, hop
160, n_fft 1024, Slaney mel scale and norm, log of the magnitude clamped at
1e-5) and gives 25 latent frames per second. diffusers ships the VAE but no
waveform→mel front end, so it lives here. The latents come out packed
(``[1, frames, channels·mel]``) and normalised with the VAE's per-channel
statistics, exactly as the transformer consumes them, and exactly as long as
the video: ``round(num_frames / fps · 25)`` frames.

Only ``audio_vae`` (an ``AutoencoderKLLTX2Audio``) is needed; torch and scipy
are imported lazily so that importing the generator package stays cheap.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import torch

# The STFT size is not in the audio VAE's config; LTX-2.x always uses 1024 (ltx-core AudioProcessor).
MEL_N_FFT = 1024
LOG_MEL_FLOOR = 1e-5


def to_stereo(audio: np.ndarray) -> np.ndarray:
    """float32 ``[samples, channels]`` (or ``[samples]``) → ``[samples, 2]``: mono is duplicated, >2 keeps the front pair."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[:, None]
    if audio.ndim != 2 or audio.shape[1] < 1:
        raise ValueError(f"audio must be [samples, channels], got shape {list(audio.shape)}")
    if audio.shape[1] == 1:
        return np.repeat(audio, 2, axis=1)
    return np.ascontiguousarray(audio[:, :2])


# The reference resamples with torchaudio's default: a Hann-windowed sinc, 6 zero crossings, cut-off at 99 % of the
# lower Nyquist frequency. The same filter here (torchaudio is not a runtime dependency: its PyPI wheels are CUDA
# builds that do not load beside every torch).
SINC_ZERO_CROSSINGS = 6
SINC_ROLLOFF = 0.99


def resample(audio: np.ndarray, from_hz: int, to_hz: int) -> np.ndarray:
    """Band-limited resampling along axis 0 of ``[samples, channels]`` (or ``[samples]``) float32, as LTX's reference does it.

    Output length ``ceil(samples · to_hz / from_hz)``. For each of the ``to/g`` output phases (g the gcd of the
    rates) a windowed-sinc kernel is sampled at that phase's offsets and applied as a strided convolution.
    """
    if from_hz == to_hz:
        return audio
    import torch

    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        return resample(audio[:, None], from_hz, to_hz)[:, 0]
    g = math.gcd(int(from_hz), int(to_hz))
    up, down = int(to_hz) // g, int(from_hz) // g
    cutoff = min(up, down) * SINC_ROLLOFF  # in units of the reduced rates
    half_width = math.ceil(SINC_ZERO_CROSSINGS * down / cutoff)
    # float32 throughout, in this order: the reference builds its kernel in the waveform's dtype.
    offsets = torch.arange(-half_width, half_width + down, dtype=torch.float32) / down
    phases = torch.arange(0, -up, -1, dtype=torch.float32)[:, None] / up
    x = ((phases + offsets[None, :]) * cutoff).clamp(-SINC_ZERO_CROSSINGS, SINC_ZERO_CROSSINGS)
    window = torch.cos(x * math.pi / SINC_ZERO_CROSSINGS / 2) ** 2
    x = x * math.pi
    sinc = torch.where(x == 0, torch.tensor(1.0), torch.sin(x) / x)
    kernels = (sinc * (window * (cutoff / down)))[:, None, :]  # [up, 1, taps]

    signal = torch.from_numpy(np.ascontiguousarray(audio.T))  # [channels, samples]
    length = signal.shape[-1]
    padded = torch.nn.functional.pad(signal[:, None, :], (half_width, half_width + down))
    out = torch.nn.functional.conv1d(padded, kernels, stride=down)  # [channels, up, frames]
    out = out.transpose(1, 2).reshape(signal.shape[0], -1)[:, : math.ceil(up * length / down)]
    return np.ascontiguousarray(out.numpy().T)


def audio_latent_frames(num_frames: int, fps: Fraction | float, sample_rate_hz: int, hop_length: int, temporal_compression: int) -> int:
    """Audio latent frames covering ``num_frames`` video frames (diffusers' LTX-2 rule: round(seconds · latents/s))."""
    latents_per_second = sample_rate_hz / hop_length / temporal_compression
    return round(float(Fraction(num_frames) / Fraction(fps)) * latents_per_second)


def _hz_to_mel_slaney(freq: np.ndarray) -> np.ndarray:
    # Slaney's Auditory Toolbox scale: linear below 1 kHz, logarithmic above.
    freq = np.asarray(freq, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = math.log(6.4) / 27.0
    mels = freq / f_sp
    above = freq >= min_log_hz
    mels[above] = min_log_mel + np.log(freq[above] / min_log_hz) / logstep
    return mels


def _mel_to_hz_slaney(mels: np.ndarray) -> np.ndarray:
    mels = np.asarray(mels, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = math.log(6.4) / 27.0
    freqs = mels * f_sp
    above = mels >= min_log_mel
    freqs[above] = min_log_hz * np.exp(logstep * (mels[above] - min_log_mel))
    return freqs


def slaney_mel_filterbank(sample_rate_hz: int, n_fft: int, n_mels: int, f_min: float = 0.0, f_max: float | None = None) -> np.ndarray:
    """Triangular mel filters ``[n_mels, n_fft//2 + 1]``, Slaney scale and area normalisation (librosa/torchaudio 'slaney')."""
    f_max = sample_rate_hz / 2.0 if f_max is None else f_max
    fft_freqs = np.linspace(0.0, sample_rate_hz / 2.0, n_fft // 2 + 1)
    mel_edges = np.linspace(_hz_to_mel_slaney(np.array([f_min]))[0], _hz_to_mel_slaney(np.array([f_max]))[0], n_mels + 2)
    hz_edges = _mel_to_hz_slaney(mel_edges)
    widths = np.diff(hz_edges)
    slopes = hz_edges[None, :] - fft_freqs[:, None]  # [freqs, n_mels + 2]
    lower = -slopes[:, :-2] / widths[:-1]
    upper = slopes[:, 2:] / widths[1:]
    bank = np.maximum(0.0, np.minimum(lower, upper))  # [freqs, n_mels]
    bank *= 2.0 / (hz_edges[2 : n_mels + 2] - hz_edges[:n_mels])
    return bank.T.astype(np.float32)


def log_mel_spectrogram(waveform: "torch.Tensor", sample_rate_hz: int, hop_length: int, n_mels: int, n_fft: int = MEL_N_FFT) -> "torch.Tensor":
    """``[B, C, samples]`` → ``[B, C, frames, n_mels]`` log-magnitude mel, centred reflect-padded STFT (ltx-core's recipe)."""
    import torch

    batch, channels, samples = waveform.shape
    flat = waveform.reshape(batch * channels, samples).float()
    window = torch.hann_window(n_fft, device=flat.device, dtype=flat.dtype)
    spec = torch.stft(flat, n_fft=n_fft, hop_length=hop_length, win_length=n_fft, window=window, center=True, pad_mode="reflect", return_complex=True)
    magnitude = spec.abs()  # power 1
    bank = torch.from_numpy(slaney_mel_filterbank(sample_rate_hz, n_fft, n_mels)).to(magnitude.device)
    mel = torch.matmul(bank, magnitude)  # [B·C, n_mels, frames]
    log_mel = torch.log(torch.clamp(mel, min=LOG_MEL_FLOOR))
    return log_mel.reshape(batch, channels, n_mels, -1).transpose(2, 3).contiguous()


def encode_audio_latents(
    audio_vae,
    audio: np.ndarray,
    sample_rate_hz: int,
    num_latent_frames: int,
    *,
    device: "torch.device | str",
    dtype: "torch.dtype",
) -> "torch.Tensor":
    """Master audio slice → packed, normalised audio latents ``[1, num_latent_frames, C·M]`` in float32.

    The waveform is padded with silence so the VAE always sees enough mel frames
    (the causal encoder makes trailing silence harmless to earlier latents), then
    the latents are cut to exactly ``num_latent_frames``.
    """
    import torch

    cfg = audio_vae.config
    model_hz, hop, n_mels = int(cfg.sample_rate), int(cfg.mel_hop_length), int(cfg.mel_bins)
    t_ratio = int(audio_vae.temporal_compression_ratio)
    wave = resample(to_stereo(audio), int(sample_rate_hz), model_hz)
    # Enough samples for (num_latent_frames + 1) latent frames of mel, whatever the caller passed.
    needed = hop * t_ratio * (num_latent_frames + 1)
    if wave.shape[0] < needed:
        wave = np.concatenate([wave, np.zeros((needed - wave.shape[0], 2), dtype=np.float32)], axis=0)

    waveform = torch.from_numpy(np.ascontiguousarray(wave.T))[None].to(device)  # [1, 2, samples]
    mel = log_mel_spectrogram(waveform, model_hz, hop, n_mels).to(dtype=dtype)
    posterior = audio_vae.encode(mel).latent_dist
    latents = posterior.mode().float()  # [1, C, L, M]
    if latents.shape[2] < num_latent_frames:  # pragma: no cover - guarded by the padding above
        raise RuntimeError(f"audio VAE gave {latents.shape[2]} latent frames, need {num_latent_frames}")
    latents = latents[:, :, :num_latent_frames]
    packed = latents.transpose(1, 2).flatten(2, 3)  # [1, L, C·M], LTX-2's audio token layout
    mean = audio_vae.latents_mean.to(packed.device, torch.float32)
    std = audio_vae.latents_std.to(packed.device, torch.float32)
    return (packed - mean) / std
