"""longtake's LTX-2.3 maths against Lightricks' own: ``ltx-core``/``ltx-pipelines`` 1.0.0 (the ``parity`` extra).

Each test feeds both implementations identical weights and identical noise (the noise
is drawn once and injected on both sides; equal seeds would not do, the RNG streams
differ) and compares in float32. Where the maths is the same the tolerance is 1e-5
relative or tighter. The reference packages are imported at module level on purpose:
without the extra this file fails to collect, it never skips (CI installs the extra).

Weights come from ``tiny_ltx_official`` (ltx-core's own classes, random values, saved
in Lightricks' single-file layout) and reach longtake through its production loader.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

# The reference: a missing extra is a collection error, never a skip.
import ltx_core  # noqa: F401
import ltx_pipelines  # noqa: F401
from ltx_core.components.schedulers import LTX2Scheduler
from ltx_core.model.audio_vae.ops import AudioProcessor
from ltx_core.types import Audio
from ltx_pipelines.utils import constants as ref_constants

pytestmark = pytest.mark.parity


def rel_err(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """max |a - e| / max |e|: one number per comparison, robust to near-zero entries."""
    actual, expected = actual.detach().double().cpu(), expected.detach().double().cpu()
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    return float((actual - expected).abs().max() / expected.abs().max().clamp_min(1e-30))


# ------------------------------------------------------------------------------------------ schedules
@pytest.mark.parametrize("steps", [8, 30, 40])
@pytest.mark.parametrize("tokens", [13_420, 31_110, 4_096])  # 352x640 and 544x960 stage-1 shapes at 481 frames
def test_stage1_sigmas_are_ltx2_schedulers(steps, tokens):
    from generators.ltx2_pipeline import LTX2AudioToVideoPipeline

    from diffusers import FlowMatchEulerDiscreteScheduler

    # The scheduler config diffusers' LTX-2.3 folders ship (what longtake loaded before the fix).
    scheduler = FlowMatchEulerDiscreteScheduler(
        num_train_timesteps=1000, shift=1.0, use_dynamic_shifting=True, base_shift=0.95, max_shift=2.05,
        base_image_seq_len=1024, max_image_seq_len=4096, shift_terminal=0.1,
    )  # fmt: skip
    holder = type("Holder", (), {"scheduler": scheduler})()
    ours = LTX2AudioToVideoPipeline.stage1_sigmas(holder, steps, tokens, False)
    reference = LTX2Scheduler().execute(steps=steps)
    assert ours.dtype == torch.float32 and ours.shape == reference.shape
    assert rel_err(ours, reference) < 1e-6


def test_distilled_and_stage2_sigmas_are_the_references():
    from generators.ltx2_pipeline import DISTILLED_SIGMA_VALUES, LTX2AudioToVideoPipeline

    assert [*DISTILLED_SIGMA_VALUES, 0.0] == ref_constants.DISTILLED_SIGMA_VALUES
    assert torch.equal(LTX2AudioToVideoPipeline.stage2_sigmas(), torch.tensor(ref_constants.STAGE_2_DISTILLED_SIGMA_VALUES, dtype=torch.float32))


# ------------------------------------------------------------------------------------------ audio front end
def _speechlike(sample_rate_hz: int, seconds: float, channels: int = 2, seed: int = 0) -> np.ndarray:
    """Band-limited noise with a syllable-rate envelope: energy in every mel band, like a voice, reproducible."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sample_rate_hz))
    t = np.arange(n) / sample_rate_hz
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4.0 * t)[:, None]
    tones = sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 6)) for f in (180.0, 950.0, 2400.0, 6100.0))[:, None]
    return (0.2 * envelope * (rng.standard_normal((n, channels)) * 0.3 + tones / 4)).astype(np.float32)


@pytest.mark.parametrize("rate_hz", [22_050, 44_100, 48_000, 8_000])
def test_resampling_to_16_khz_is_torchaudios(rate_hz):
    import torchaudio

    from generators.ltx2_audio import resample

    wave = _speechlike(rate_hz, 0.7)
    reference = torchaudio.functional.resample(torch.from_numpy(wave.T.copy()), rate_hz, 16_000).T
    assert rel_err(torch.from_numpy(resample(wave, rate_hz, 16_000)), reference) < 1e-6
    assert rel_err(torch.from_numpy(resample(wave[:, 0], rate_hz, 16_000)), reference[:, 0]) < 1e-6


@pytest.mark.parametrize("rate_hz", [16_000, 44_100, 48_000])
def test_waveform_to_log_mel_is_ltx_cores(rate_hz):
    from generators import ltx2_audio as A

    wave = _speechlike(rate_hz, 1.3)
    processor = AudioProcessor(target_sample_rate=16_000, mel_bins=64, mel_hop_length=160, n_fft=1024)
    reference = processor.waveform_to_mel(Audio(waveform=torch.from_numpy(wave.T.copy())[None], sampling_rate=rate_hz))

    resampled = A.resample(A.to_stereo(wave), rate_hz, 16_000)
    ours = A.log_mel_spectrogram(torch.from_numpy(np.ascontiguousarray(np.asarray(resampled).T))[None], 16_000, 160, 64)
    # log-mel: compare the mel magnitudes (exp) so that near-silent bins' log noise does not dominate.
    assert ours.shape == reference.shape
    assert rel_err(ours.exp(), reference.exp()) < 1e-5
