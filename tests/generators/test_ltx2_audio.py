"""The audio front end: waveform → stereo 16 kHz → log-mel → audio-VAE latents of the video's exact length."""

from __future__ import annotations

import numpy as np
import pytest

from generators.ltx2_audio import (
    audio_latent_frames,
    encode_audio_latents,
    log_mel_spectrogram,
    resample,
    slaney_mel_filterbank,
    to_stereo,
)


def test_audio_latent_frames_follow_ltx_rate():
    # 25 latents per second: 481 frames at 24 fps are 20.04 s → 501 latents (diffusers' rounding).
    assert audio_latent_frames(481, 24, 16000, 160, 4) == 501
    assert audio_latent_frames(121, 24, 16000, 160, 4) == 126
    assert audio_latent_frames(9, 24, 16000, 160, 4) == 9


def test_to_stereo_duplicates_mono_and_keeps_the_front_pair():
    mono = np.arange(5, dtype=np.float32)
    assert to_stereo(mono).shape == (5, 2)
    assert np.array_equal(to_stereo(mono[:, None])[:, 1], mono)
    surround = np.stack([mono, -mono, mono * 2, mono * 3], axis=1)
    assert np.array_equal(to_stereo(surround), surround[:, :2])
    with pytest.raises(ValueError, match="samples, channels"):
        to_stereo(np.zeros((2, 2, 2), dtype=np.float32))


def test_resample_is_exact_in_length():
    x = np.random.RandomState(0).randn(48000, 2).astype(np.float32)
    assert resample(x, 48000, 16000).shape == (16000, 2)
    assert resample(x, 16000, 16000) is x


def test_slaney_filterbank_matches_the_slaney_definition():
    bank = slaney_mel_filterbank(16000, 1024, 64)
    assert bank.shape == (64, 513)
    assert (bank >= 0).all()
    # Slaney area normalisation: each triangle integrates to about 1 over frequency (area = peak · width / 2).
    freqs = np.linspace(0, 8000, 513)
    areas = bank[8:].sum(axis=1) * (freqs[1] - freqs[0])
    assert np.allclose(areas, 1.0, atol=0.05)
    peak_hz = freqs[bank.argmax(axis=1)]
    assert np.all(np.diff(peak_hz) >= 0), "filters are ordered by frequency"
    # Below 1 kHz the Slaney scale is linear: the low filters are evenly spaced.
    low = np.diff(peak_hz[1:10])
    assert low.max() - low.min() <= 2 * (freqs[1] - freqs[0])


def test_log_mel_puts_a_tone_in_the_right_band():
    import torch

    sr, hop = 16000, 160
    t = np.arange(sr) / sr
    tone = np.sin(2 * np.pi * 1000 * t).astype(np.float32)
    wave = torch.from_numpy(np.stack([tone, tone]))[None]
    mel = log_mel_spectrogram(wave, sr, hop, 64)
    assert mel.shape == (1, 2, sr // hop + 1, 64)  # centred STFT: one frame per hop, plus one
    band = int(mel[0, 0, 50].argmax())
    bank = slaney_mel_filterbank(sr, 1024, 64)
    assert bank[band, round(1000 / (sr / 1024))] > 0, "the loudest band contains 1 kHz"
    silence = log_mel_spectrogram(torch.zeros(1, 2, sr), sr, hop, 64)
    assert torch.allclose(silence, torch.full_like(silence, np.log(1e-5)))


@pytest.fixture(scope="module")
def tiny_audio_vae():
    import torch
    from diffusers import AutoencoderKLLTX2Audio

    torch.manual_seed(0)
    return AutoencoderKLLTX2Audio(
        base_channels=4, output_channels=2, ch_mult=(1, 2, 4), num_res_blocks=1, in_channels=2, resolution=32,
        latent_channels=2, norm_type="pixel", causality_axis="height", sample_rate=16000, mel_hop_length=160, mel_bins=8,
    ).eval()  # fmt: skip


@pytest.mark.parametrize("seconds", [0.05, 0.375, 2.0])
def test_audio_latents_have_exactly_the_requested_length(tiny_audio_vae, seconds):
    import torch

    sr = 22050
    audio = np.random.RandomState(1).randn(int(seconds * sr), 1).astype(np.float32) * 0.1
    lat = encode_audio_latents(tiny_audio_vae, audio, sr, 9, device="cpu", dtype=torch.float32)
    assert lat.shape == (1, 9, 4)  # [1, frames, channels·mel] packed
    assert lat.dtype == torch.float32 and torch.isfinite(lat).all()


def test_audio_latents_are_normalised_with_the_vae_statistics(tiny_audio_vae):
    import torch

    audio = np.random.RandomState(2).randn(8000, 2).astype(np.float32) * 0.1
    base = encode_audio_latents(tiny_audio_vae, audio, 16000, 5, device="cpu", dtype=torch.float32)
    with torch.no_grad():
        tiny_audio_vae.latents_mean.fill_(1.0)
        tiny_audio_vae.latents_std.fill_(2.0)
    try:
        scaled = encode_audio_latents(tiny_audio_vae, audio, 16000, 5, device="cpu", dtype=torch.float32)
    finally:
        with torch.no_grad():
            tiny_audio_vae.latents_mean.fill_(0.0)
            tiny_audio_vae.latents_std.fill_(1.0)
    assert torch.allclose(scaled, (base - 1.0) / 2.0, atol=1e-6)


def test_later_audio_never_changes_earlier_latents(tiny_audio_vae):
    # The causal encoder is why padding the slice with silence is harmless.
    import torch

    audio = np.random.RandomState(3).randn(16000, 1).astype(np.float32) * 0.1
    longer = np.concatenate([audio, np.random.RandomState(4).randn(8000, 1).astype(np.float32)])
    a = encode_audio_latents(tiny_audio_vae, audio, 16000, 20, device="cpu", dtype=torch.float32)
    b = encode_audio_latents(tiny_audio_vae, longer, 16000, 20, device="cpu", dtype=torch.float32)
    assert torch.allclose(a[:, :18], b[:, :18], atol=1e-5)
