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


# ------------------------------------------------------------------------------------------ the transformer passes
@pytest.fixture(scope="module")
def official(tmp_path_factory):
    from tests.generators.tiny_ltx_official import build_tiny_ltx_official

    return build_tiny_ltx_official(tmp_path_factory.mktemp("official"))


def _ratios(official) -> tuple[int, int]:
    return 8, 8  # tiny_ltx_official's video VAE: 8x in time and space


@pytest.fixture(scope="module")
def diffusers_transformer(official):
    """longtake's transformer class (diffusers') holding the ltx-core model's weights, mapped by diffusers' converter."""
    from diffusers import LTX2VideoTransformer3DModel
    from diffusers.loaders.single_file_utils import convert_ltx2_transformer_to_diffusers

    t = official.config["transformer"]
    temporal, spatial = _ratios(official)
    model = LTX2VideoTransformer3DModel(
        in_channels=t["in_channels"], out_channels=t["out_channels"], num_attention_heads=t["num_attention_heads"],
        attention_head_dim=t["attention_head_dim"], cross_attention_dim=t["cross_attention_dim"],
        vae_scale_factors=(temporal, spatial, spatial), gated_attn=True, cross_attn_mod=True,
        audio_in_channels=t["audio_in_channels"], audio_out_channels=t["audio_out_channels"],
        audio_num_attention_heads=t["audio_num_attention_heads"], audio_attention_head_dim=t["audio_attention_head_dim"],
        audio_cross_attention_dim=t["audio_cross_attention_dim"], audio_gated_attn=True, audio_cross_attn_mod=True,
        num_layers=t["num_layers"], caption_channels=t["caption_channels"], rope_type="split", rope_double_precision=True,
        use_prompt_embeddings=False, perturbed_attn=True,
    ).eval()  # fmt: skip
    state = convert_ltx2_transformer_to_diffusers({"model.diffusion_model." + k: v for k, v in official.transformer.state_dict().items()})
    # 2.3's prompt modulation tables, which diffusers 0.42.1's converter leaves under their original names.
    state = {k.replace("prompt_adaln_single.", "prompt_adaln."): v for k, v in state.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and not missing, (missing, unexpected)
    return model


def _latent_states(official, *, frames=3, height=2, width=3, audio_frames=5, fps=24.0, seed=1):
    """ltx-core video/audio LatentStates (video frame 0 held clean, audio frozen) on reproducible random latents."""
    from dataclasses import replace

    from ltx_core.components.patchifiers import AudioPatchifier, VideoLatentPatchifier
    from ltx_core.tools import AudioLatentTools, VideoLatentTools
    from ltx_core.types import AudioLatentShape, SpatioTemporalScaleFactors, VideoLatentShape

    g = torch.Generator().manual_seed(seed)
    t = official.config["transformer"]
    temporal, spatial = _ratios(official)
    video_tools = VideoLatentTools(
        VideoLatentPatchifier(patch_size=1), VideoLatentShape(1, t["in_channels"], frames, height, width), fps,
        scale_factors=SpatioTemporalScaleFactors(time=temporal, width=spatial, height=spatial),
    )  # fmt: skip
    video = video_tools.create_initial_state("cpu", torch.float32, torch.randn(1, t["in_channels"], frames, height, width, generator=g))
    mask = video.denoise_mask.clone()
    mask[:, : height * width] = 0.0  # frame 0 is the clean image condition
    video = replace(video, denoise_mask=mask)
    audio_tools = AudioLatentTools(AudioPatchifier(patch_size=1), AudioLatentShape(1, 2, audio_frames, 2))
    audio = audio_tools.create_initial_state("cpu", torch.float32, torch.randn(1, 2, audio_frames, 2, generator=g))
    audio = replace(audio, denoise_mask=torch.zeros_like(audio.denoise_mask))
    contexts = {
        name: torch.randn(1, 7, dim, generator=g)
        for name, dim in (("v_pos", t["cross_attention_dim"]), ("v_neg", t["cross_attention_dim"]), ("a_pos", t["audio_cross_attention_dim"]), ("a_neg", t["audio_cross_attention_dim"]))
    }
    return video, audio, contexts, fps


class _Recorder:
    """Collects a module's first output per call (forward hook): the velocity of each guidance pass, in call order."""

    def __init__(self, module):
        self.outputs: list[torch.Tensor] = []
        self._handle = module.register_forward_hook(lambda _m, _a, out: self.outputs.append(out[0].detach().clone()))

    def close(self):
        self._handle.remove()


def _patch_ltx_core_to_1_2_0(monkeypatch):
    """ltx-core 1.0.0 made to modulate frozen audio as Lightricks' 1.2.0 does (read from the LTX-2 repository at v1.2.0):
    a frozen modality's Modality.sigma is 0, and the A/V cross-attention scale/shift take the modality's own per-token
    timesteps while the gate takes the other modality's sigma."""
    from dataclasses import replace

    from ltx_core.model.transformer import transformer_args as TA
    from ltx_pipelines.utils import helpers

    original_modality = helpers.modality_from_latent_state

    def modality_frozen_aware(state, context, sigma, enabled=True):
        if not bool(state.denoise_mask.any()):  # frozen: nothing to denoise
            sigma = torch.zeros_like(sigma)
        return original_modality(state, context, sigma, enabled)

    def prepare(self, modality, cross_modality=None):
        args = self.simple_preprocessor.prepare(modality)
        if cross_modality is None:
            return args
        mult = self.simple_preprocessor.timestep_scale_multiplier
        cross_pe = self.simple_preprocessor._prepare_positional_embeddings(
            positions=modality.positions[:, 0:1, :], inner_dim=self.audio_cross_attention_dim, max_pos=[self.cross_pe_max_pos],
            use_middle_indices_grid=True, num_attention_heads=self.simple_preprocessor.num_attention_heads, x_dtype=modality.latent.dtype,
        )  # fmt: skip
        batch = args.x.shape[0]
        scale_shift, _ = self.cross_scale_shift_adaln((modality.timesteps * mult).flatten(), hidden_dtype=modality.latent.dtype)
        factor = self.av_ca_timestep_scale_multiplier / mult
        gate, _ = self.cross_gate_adaln((cross_modality.sigma * mult * factor).flatten(), hidden_dtype=modality.latent.dtype)
        return replace(
            args, cross_positional_embeddings=cross_pe,
            cross_scale_shift_timestep=scale_shift.view(batch, -1, scale_shift.shape[-1]), cross_gate_timestep=gate.view(batch, -1, gate.shape[-1]),
        )  # fmt: skip

    monkeypatch.setattr(helpers, "modality_from_latent_state", modality_frozen_aware)
    monkeypatch.setattr(TA.MultiModalTransformerArgsPreprocessor, "prepare", prepare)


GUIDED = dict(cfg_scale=3.0, stg_scale=1.0, rescale_scale=0.7, modality_scale=3.0, stg_blocks=[1])
PASSES = ("pred_cond", "pred_uncond", "pred_cond_stg", "pred_cond_modality")  # the order both sides call them in


@pytest.mark.parametrize("release", ["ltx-2-1.2.0", "ltx-2-1.0.0"])
def test_guided_step_matches_the_reference_pass_by_pass(official, diffusers_transformer, release, monkeypatch):
    """One guided stage-1 step: each of the four passes' video velocity, then the guided and stepped latents."""
    from ltx_core.components.diffusion_steps import EulerDiffusionStep
    from ltx_core.components.guiders import MultiModalGuider, MultiModalGuiderParams
    from ltx_core.model.transformer import X0Model
    from ltx_pipelines.utils.helpers import post_process_latent

    from generators.ltx2_guidance import DenoiseInputs, VideoGuidance, denoise_video_frozen_audio
    from generators.ltx2_text import PromptEmbeddings

    if release == "ltx-2-1.2.0":
        _patch_ltx_core_to_1_2_0(monkeypatch)
    from ltx_pipelines.utils import helpers

    video, audio, ctx, fps = _latent_states(official)
    sigmas = torch.tensor([0.7, 0.55, 0.0])

    # Reference: ltx-pipelines' own guided denoising function around ltx-core's model, then its Euler step.
    ref_rec = _Recorder(official.transformer)
    denoise = helpers.multi_modal_guider_denoising_func(
        video_guider=MultiModalGuider(params=MultiModalGuiderParams(**GUIDED), negative_context=ctx["v_neg"]),
        audio_guider=MultiModalGuider(params=MultiModalGuiderParams()),
        v_context=ctx["v_pos"], a_context=ctx["a_pos"], transformer=X0Model(official.transformer),
    )  # fmt: skip
    with torch.no_grad():
        ref_x0, _ = denoise(video, audio, sigmas, 0)
        ref_next = EulerDiffusionStep().step(video.latent, post_process_latent(ref_x0, video.denoise_mask, video.clean_latent), sigmas, 0)
    ref_rec.close()

    # longtake: its loop for the same single step, with the same latents and contexts.
    tr = diffusers_transformer
    t_, h_, w_ = 3, 2, 3
    video_coords = tr.rope.prepare_video_coords(1, t_, h_, w_, "cpu", fps=fps)
    assert rel_err(video_coords, video.positions) < 1e-6  # the RoPE grid is the reference's
    ones = torch.ones(1, 7)
    ours_rec = _Recorder(tr)
    inputs = DenoiseInputs(
        latents=video.latent, conditioning_mask=1.0 - video.denoise_mask, clean_latents=video.clean_latent * (1.0 - video.denoise_mask),
        video_coords=video_coords, audio_latents=audio.latent, audio_coords=tr.audio_rope.prepare_audio_coords(1, audio.latent.shape[1], "cpu"),
        positive=PromptEmbeddings(ctx["v_pos"], ctx["a_pos"], ones), negative=PromptEmbeddings(ctx["v_neg"], ctx["a_neg"], ones),
        sigmas=sigmas[:2], fps=fps, **({"frozen_audio_modulation": release} if "frozen_audio_modulation" in DenoiseInputs.__dataclass_fields__ else {}),
    )  # fmt: skip
    guidance = VideoGuidance(guidance_scale=3.0, stg_scale=1.0, modality_scale=3.0, guidance_rescale=0.7, stg_blocks=(1,))
    with torch.no_grad():
        ours_next = denoise_video_frozen_audio(tr, inputs, guidance, compute_dtype=torch.float32)
    ours_rec.close()

    assert len(ref_rec.outputs) == len(ours_rec.outputs) == 4
    errors = {name: rel_err(o, r) for name, o, r in zip(PASSES, ours_rec.outputs, ref_rec.outputs)}
    assert max(errors.values()) < 1e-5, errors
    assert rel_err(ours_next, ref_next) < 1e-5


def test_default_negative_prompt_is_the_references():
    from orchestrator.config import Project

    assert Project.model_fields["negative_prompt"].default == ref_constants.DEFAULT_NEGATIVE_PROMPT


def test_generator_passes_the_frozen_audio_modulation_option_to_the_loop():
    """The option reaches the pipeline (default: the latest release) and is part of the model identity."""
    from orchestrator.config import LTX2Options

    from generators.ltx2_guidance import DEFAULT_FROZEN_AUDIO_MODULATION, FROZEN_AUDIO_MODULATIONS

    assert LTX2Options().frozen_audio_modulation == DEFAULT_FROZEN_AUDIO_MODULATION == "ltx-2-1.2.0"
    assert set(FROZEN_AUDIO_MODULATIONS) == {"ltx-2-1.2.0", "ltx-2-1.0.0"}
    with pytest.raises(Exception):
        LTX2Options(frozen_audio_modulation="ltx-2-0.9")


@pytest.mark.parametrize("release", ["ltx-2-1.2.0", "ltx-2-1.0.0"])
def test_whole_guided_stage1_loop_matches_the_references(official, diffusers_transformer, release, monkeypatch):
    """The reference's Euler loop over LTX2Scheduler's 4-step schedule against longtake's, from the same noised state."""
    from ltx_core.components.diffusion_steps import EulerDiffusionStep
    from ltx_core.components.guiders import MultiModalGuider, MultiModalGuiderParams
    from ltx_core.model.transformer import X0Model
    from ltx_pipelines.utils.samplers import euler_denoising_loop

    from generators.ltx2_guidance import DenoiseInputs, VideoGuidance, denoise_video_frozen_audio
    from generators.ltx2_pipeline import ltx2_stage1_sigmas
    from generators.ltx2_text import PromptEmbeddings

    if release == "ltx-2-1.2.0":
        _patch_ltx_core_to_1_2_0(monkeypatch)
    from ltx_pipelines.utils import helpers

    video, audio, ctx, fps = _latent_states(official, seed=3)
    sigmas = LTX2Scheduler().execute(steps=4)
    denoise = helpers.multi_modal_guider_denoising_func(
        video_guider=MultiModalGuider(params=MultiModalGuiderParams(**GUIDED), negative_context=ctx["v_neg"]),
        audio_guider=MultiModalGuider(params=MultiModalGuiderParams()),
        v_context=ctx["v_pos"], a_context=ctx["a_pos"], transformer=X0Model(official.transformer),
    )  # fmt: skip
    with torch.no_grad():
        ref_video, ref_audio = euler_denoising_loop(sigmas, video, audio, EulerDiffusionStep(), denoise)

    tr = diffusers_transformer
    ones = torch.ones(1, 7)
    inputs = DenoiseInputs(
        latents=video.latent, conditioning_mask=1.0 - video.denoise_mask, clean_latents=video.clean_latent * (1.0 - video.denoise_mask),
        video_coords=tr.rope.prepare_video_coords(1, 3, 2, 3, "cpu", fps=fps),
        audio_latents=audio.latent, audio_coords=tr.audio_rope.prepare_audio_coords(1, audio.latent.shape[1], "cpu"),
        positive=PromptEmbeddings(ctx["v_pos"], ctx["a_pos"], ones), negative=PromptEmbeddings(ctx["v_neg"], ctx["a_neg"], ones),
        sigmas=ltx2_stage1_sigmas(4), fps=fps, frozen_audio_modulation=release,
    )  # fmt: skip
    guidance = VideoGuidance(guidance_scale=3.0, stg_scale=1.0, modality_scale=3.0, guidance_rescale=0.7, stg_blocks=(1,))
    with torch.no_grad():
        ours = denoise_video_frozen_audio(tr, inputs, guidance, compute_dtype=torch.float32)
    assert torch.equal(ref_audio.latent, audio.latent)  # the reference never moves frozen audio either
    assert rel_err(ours, ref_video.latent) < 1e-5
