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
def pipe(official):
    """longtake's pipeline loaded from the official single files through its production loader, in float32."""
    from generators import ltx2_loading as L

    info = L.inspect_official(official.checkpoint, text_encoder=str(official.gemma), upsampler=str(official.upsampler), need_upsampler=True)
    return L.build_pipeline(info, dtype="float32", two_stage=True)


@pytest.fixture(scope="module")
def diffusers_transformer(pipe):
    return pipe.transformer


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


def _reference_guided_denoiser(official, ctx):
    """ltx-pipelines' own guided denoising function (video guided as GUIDED, audio unguided) around ltx-core's model."""
    from ltx_core.components.guiders import MultiModalGuider, MultiModalGuiderParams
    from ltx_core.model.transformer import X0Model
    from ltx_pipelines.utils import helpers

    return helpers.multi_modal_guider_denoising_func(
        video_guider=MultiModalGuider(params=MultiModalGuiderParams(**GUIDED), negative_context=ctx["v_neg"]),
        audio_guider=MultiModalGuider(params=MultiModalGuiderParams()),
        v_context=ctx["v_pos"], a_context=ctx["a_pos"], transformer=X0Model(official.transformer),
    )  # fmt: skip


@pytest.mark.parametrize("release", ["ltx-2-1.2.0", "ltx-2-1.0.0"])
def test_guided_step_matches_the_reference_pass_by_pass(official, diffusers_transformer, release, monkeypatch):
    """One guided stage-1 step: each of the four passes' video velocity, then the guided and stepped latents."""
    from ltx_core.components.diffusion_steps import EulerDiffusionStep
    from ltx_pipelines.utils.helpers import post_process_latent

    from generators.ltx2_guidance import DenoiseInputs, VideoGuidance, denoise_video_frozen_audio
    from generators.ltx2_text import PromptEmbeddings

    if release == "ltx-2-1.2.0":
        _patch_ltx_core_to_1_2_0(monkeypatch)

    video, audio, ctx, fps = _latent_states(official)
    sigmas = torch.tensor([0.7, 0.55, 0.0])

    # Reference: ltx-pipelines' own guided denoising function around ltx-core's model, then its Euler step.
    ref_rec = _Recorder(official.transformer)
    denoise = _reference_guided_denoiser(official, ctx)
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
        sigmas=sigmas[:2], fps=fps, **({"reference_release": release} if "reference_release" in DenoiseInputs.__dataclass_fields__ else {}),
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


def test_generator_passes_the_reference_release_option_to_the_loop():
    """The option reaches the pipeline (default: the latest release) and is part of the model identity."""
    from orchestrator.config import LTX2Options

    from generators.ltx2_guidance import DEFAULT_REFERENCE_RELEASE, REFERENCE_RELEASES

    assert LTX2Options().reference_release == DEFAULT_REFERENCE_RELEASE == "ltx-2-1.2.0"
    assert set(REFERENCE_RELEASES) == {"ltx-2-1.2.0", "ltx-2-1.0.0"}
    with pytest.raises(Exception):
        LTX2Options(reference_release="ltx-2-0.9")


@pytest.mark.parametrize("release", ["ltx-2-1.2.0", "ltx-2-1.0.0"])
def test_whole_guided_stage1_loop_matches_the_references(official, diffusers_transformer, release, monkeypatch):
    """The reference's Euler loop over LTX2Scheduler's 4-step schedule against longtake's, from the same noised state."""
    from ltx_core.components.diffusion_steps import EulerDiffusionStep
    from ltx_pipelines.utils.samplers import euler_denoising_loop

    from generators.ltx2_guidance import DenoiseInputs, VideoGuidance, denoise_video_frozen_audio
    from generators.ltx2_pipeline import ltx2_stage1_sigmas
    from generators.ltx2_text import PromptEmbeddings

    if release == "ltx-2-1.2.0":
        _patch_ltx_core_to_1_2_0(monkeypatch)

    video, audio, ctx, fps = _latent_states(official, seed=3)
    sigmas = LTX2Scheduler().execute(steps=4)
    denoise = _reference_guided_denoiser(official, ctx)
    with torch.no_grad():
        ref_video, ref_audio = euler_denoising_loop(sigmas, video, audio, EulerDiffusionStep(), denoise)

    tr = diffusers_transformer
    ones = torch.ones(1, 7)
    inputs = DenoiseInputs(
        latents=video.latent, conditioning_mask=1.0 - video.denoise_mask, clean_latents=video.clean_latent * (1.0 - video.denoise_mask),
        video_coords=tr.rope.prepare_video_coords(1, 3, 2, 3, "cpu", fps=fps),
        audio_latents=audio.latent, audio_coords=tr.audio_rope.prepare_audio_coords(1, audio.latent.shape[1], "cpu"),
        positive=PromptEmbeddings(ctx["v_pos"], ctx["a_pos"], ones), negative=PromptEmbeddings(ctx["v_neg"], ctx["a_neg"], ones),
        sigmas=ltx2_stage1_sigmas(4), fps=fps, reference_release=release,
    )  # fmt: skip
    guidance = VideoGuidance(guidance_scale=3.0, stg_scale=1.0, modality_scale=3.0, guidance_rescale=0.7, stg_blocks=(1,))
    with torch.no_grad():
        ours = denoise_video_frozen_audio(tr, inputs, guidance, compute_dtype=torch.float32)
    assert torch.equal(ref_audio.latent, audio.latent)  # the reference never moves frozen audio either
    assert rel_err(ours, ref_video.latent) < 1e-5


@pytest.mark.parametrize("rate_hz", [16_000, 44_100, 48_000])
def test_audio_front_end_gives_the_references_latents(official, pipe, rate_hz):
    """Waveform -> 16-kHz log-mel -> audio VAE -> normalised, packed latents, cut to the clip (ltx-pipelines' A2V recipe)."""
    from ltx_core.components.patchifiers import AudioPatchifier
    from ltx_core.model.audio_vae import encode_audio
    from ltx_core.types import AudioLatentShape

    num_frames, fps = 41, 24.0
    duration_s = num_frames / fps
    # The reference reads exactly the clip's duration from the file (decode_audio_from_file with max_duration).
    wave = _speechlike(rate_hz, duration_s, seed=5)[: round(duration_s * rate_hz)]
    with torch.no_grad():
        ref = encode_audio(Audio(waveform=torch.from_numpy(wave.T.copy())[None], sampling_rate=rate_hz), official.audio_encoder)
        t = official.config["audio_vae"]["model"]["params"]["ddconfig"]
        frames = AudioLatentShape.from_duration(batch=1, duration=duration_s, channels=t["z_channels"], mel_bins=2).frames
        ref = AudioPatchifier(patch_size=1).patchify(ref[:, :, :frames])
        ours = pipe.encode_audio(wave, rate_hz, num_frames, fps)
    assert ours.shape == ref.shape
    assert rel_err(ours, ref) < 1e-5


# ------------------------------------------------------------------------------------------ conditioning
def _prepared(pipe, conditions, *, height, width, num_frames, fps, noise_scale, noise_seed, monkeypatch, latents=None):
    """longtake's ``prepare_latents`` with the noise injected: returns (packed noisy latents, conditioning mask, clean, kf coords, noise)."""
    from diffusers.pipelines.ltx2 import pipeline_ltx2_condition as C

    drawn = {}

    def injected(shape, generator=None, device=None, dtype=None):
        drawn["noise"] = torch.randn(shape, generator=torch.Generator().manual_seed(noise_seed), dtype=torch.float32)
        return drawn["noise"].to(device=device, dtype=dtype)

    monkeypatch.setattr(C, "randn_tensor", injected)
    with torch.no_grad():
        out = pipe.prepare_latents(
            conditions=conditions, batch_size=1, num_channels_latents=pipe.transformer.config.in_channels, height=height, width=width,
            num_frames=num_frames, frame_rate=fps, noise_scale=noise_scale, dtype=torch.float32, device="cpu",
            generator=torch.Generator().manual_seed(0), latents=latents,
        )  # fmt: skip
    return (*out, drawn["noise"])


def _reference_state(official, conditions, *, height, width, num_frames, fps, noise, noise_scale, initial_latent=None):
    """ltx-pipelines' noise_video_state with its GaussianNoiser drawing ``noise`` (the same tensor longtake got)."""
    import ltx_core.components.noisers as N
    from ltx_core.components.noisers import GaussianNoiser
    from ltx_core.types import SpatioTemporalScaleFactors, VideoPixelShape
    from ltx_pipelines.utils.helpers import noise_video_state
    from ltx_pipelines.utils.types import PipelineComponents

    components = PipelineComponents(dtype=torch.float32, device=torch.device("cpu"))
    # What A2VidPipelineTwoStage hard-codes for the 22B model: 128 latent channels and 8x32x32; the tiny model's own.
    temporal, spatial = _ratios(official)
    components.video_scale_factors = SpatioTemporalScaleFactors(time=temporal, width=spatial, height=spatial)
    components.video_latent_channels = official.config["transformer"]["in_channels"]
    import ltx_pipelines.utils.helpers as H
    from ltx_core.tools import VideoLatentTools

    # noise_video_state builds VideoLatentTools with ltx-core's default 8x32x32 factors: the tiny VAE's instead.
    tools_class = H.VideoLatentTools
    H.VideoLatentTools = lambda patchifier, shape, fps: VideoLatentTools(patchifier, shape, fps, scale_factors=components.video_scale_factors)
    real_randn = torch.randn
    N.torch = type("T", (), {"randn": staticmethod(lambda *shape, **kw: noise.clone()), "__getattr__": lambda self, k: getattr(torch, k)})()
    try:
        state, _tools = noise_video_state(
            output_shape=VideoPixelShape(batch=1, frames=num_frames, width=width, height=height, fps=fps), noiser=GaussianNoiser(torch.Generator()),
            conditionings=conditions, components=components, dtype=torch.float32, device=torch.device("cpu"),
            noise_scale=noise_scale, initial_latent=initial_latent,
        )  # fmt: skip
    finally:
        N.torch = torch
        H.VideoLatentTools = tools_class
    assert torch.randn is real_randn
    return state


def _portrait(tmp_path):
    from PIL import Image

    from tests.orchestrator.conftest import draw_portrait

    image = draw_portrait(96, 128)
    path = tmp_path / "portrait.png"
    Image.fromarray(image).save(path)
    return image, path


@pytest.mark.parametrize("crf", [33, 0])
def test_frame0_image_condition_and_noise_are_the_references(official, pipe, tmp_path, crf, monkeypatch):
    """Portrait at frame 0 (CRF re-compression, resize and crop, VAE encode) placed and noised as ltx-core's latent-index condition."""
    from ltx_core.conditioning import VideoConditionByLatentIndex
    from ltx_pipelines.utils.media_io import load_image_conditioning

    from generators.ltx2_pipeline import LTX2VideoCondition

    image, path = _portrait(tmp_path)
    height, width, num_frames, fps = 32, 48, 17, 24.0
    latents, cond_mask, clean, kf_coords, noise = _prepared(
        pipe, [LTX2VideoCondition(frames=image, index=0, strength=1.0, crf=crf)], height=height, width=width, num_frames=num_frames,
        fps=fps, noise_scale=1.0, noise_seed=11, monkeypatch=monkeypatch,
    )  # fmt: skip
    with torch.no_grad():
        encoded = official.video_encoder(load_image_conditioning(str(path), height, width, torch.float32, torch.device("cpu"), crf=crf))
    ref = _reference_state(
        official, [VideoConditionByLatentIndex(latent=encoded, strength=1.0, latent_idx=0)], height=height, width=width,
        num_frames=num_frames, fps=fps, noise=noise, noise_scale=1.0,
    )  # fmt: skip
    assert kf_coords is None
    assert torch.equal(1.0 - cond_mask, ref.denoise_mask)
    assert rel_err(clean * cond_mask, ref.clean_latent * (1 - ref.denoise_mask)) < 1e-5
    assert rel_err(latents, ref.latent) < 1e-5


def test_tail_prefix_is_ltx_cores_latent_index_condition(official, pipe, tmp_path, monkeypatch):
    """Beyond the reference A2V: the previous segment's last 9 frames held clean at latent index 0 (VideoConditionByLatentIndex)."""
    from ltx_core.conditioning import VideoConditionByLatentIndex
    from ltx_pipelines.utils.media_io import normalize_latent, resize_and_center_crop

    from generators.ltx2_pipeline import LTX2VideoCondition

    g = np.random.default_rng(4)
    context = np.clip(np.stack([_portrait(tmp_path)[0]] * 9).astype(np.int16) + g.integers(-20, 20, (9, 128, 96, 3)), 0, 255).astype(np.uint8)
    height, width, num_frames, fps = 32, 48, 25, 24.0
    latents, cond_mask, clean, kf_coords, noise = _prepared(
        pipe, [LTX2VideoCondition(frames=context, index=0, strength=1.0, crf=33)], height=height, width=width, num_frames=num_frames,
        fps=fps, noise_scale=1.0, noise_seed=12, monkeypatch=monkeypatch,
    )  # fmt: skip
    with torch.no_grad():
        pixels = normalize_latent(resize_and_center_crop(torch.from_numpy(context).float(), height, width), torch.device("cpu"), torch.float32)
        encoded = official.video_encoder(pixels)  # multi-frame: no CRF re-compression, as in the reference's video conditions
    ref = _reference_state(
        official, [VideoConditionByLatentIndex(latent=encoded, strength=1.0, latent_idx=0)], height=height, width=width,
        num_frames=num_frames, fps=fps, noise=noise, noise_scale=1.0,
    )  # fmt: skip
    assert encoded.shape[2] == 2 and int((1 - ref.denoise_mask).sum()) == 2 * (height // 8) * (width // 8)
    assert torch.equal(1.0 - cond_mask, ref.denoise_mask)
    assert rel_err(latents, ref.latent) < 1e-5


def _patch_keyframe_condition_to_1_2_0(monkeypatch):
    """ltx-core's VideoConditionByKeyframeIndex as release 1.2.0 has it (LTX-2 repository at v1.2.0): a single-pixel-frame
    keyframe spans [idx, idx + 1) in time, and its tokens start from zeros (noise only) while the clean target is the keyframe."""
    import ltx_core.conditioning.types.keyframe_cond as K

    original = K.VideoConditionByKeyframeIndex.apply_to

    def apply_to(self, latent_state, latent_tools):
        before = latent_state.latent.shape[1]
        state = original(self, latent_state, latent_tools)
        positions = state.positions.clone()
        start = positions[:, 0, before:, :1]
        positions[:, 0, before:, 1:] = start + 1.0 / latent_tools.fps
        latent = state.latent.clone()
        latent[:, before:] = 0.0
        from dataclasses import replace

        return replace(state, positions=positions, latent=latent)

    monkeypatch.setattr(K.VideoConditionByKeyframeIndex, "apply_to", apply_to)


@pytest.mark.parametrize("release", ["ltx-2-1.2.0", "ltx-2-1.0.0"])
def test_identity_keyframe_is_ltx_cores_keyframe_condition(official, pipe, tmp_path, release, monkeypatch):
    """Beyond the reference A2V: the portrait appended as keyframe tokens at the last latent frame, strength 0.3."""
    from ltx_core.conditioning import VideoConditionByKeyframeIndex
    from ltx_pipelines.utils.media_io import load_image_conditioning

    from generators.ltx2_pipeline import LTX2VideoCondition

    if release == "ltx-2-1.2.0":
        _patch_keyframe_condition_to_1_2_0(monkeypatch)
    monkeypatch.setattr(pipe, "reference_release", release)
    image, path = _portrait(tmp_path)
    height, width, num_frames, fps, sigma0 = 32, 48, 25, 24.0, 0.8
    latents, cond_mask, clean, kf_coords, noise = _prepared(
        pipe, [LTX2VideoCondition(frames=image, index=-1, strength=0.3, crf=33)], height=height, width=width, num_frames=num_frames,
        fps=fps, noise_scale=sigma0, noise_seed=13, monkeypatch=monkeypatch,
    )  # fmt: skip
    with torch.no_grad():
        encoded = official.video_encoder(load_image_conditioning(str(path), height, width, torch.float32, torch.device("cpu"), crf=33))
    last_latent = (num_frames - 1) // 8
    ref = _reference_state(
        official, [VideoConditionByKeyframeIndex(keyframes=encoded, frame_idx=(last_latent - 1) * 8 + 1, strength=0.3)],
        height=height, width=width, num_frames=num_frames, fps=fps, noise=noise, noise_scale=sigma0,
    )  # fmt: skip
    base = last_latent + 1
    n_base = base * (height // 8) * (width // 8)
    assert torch.allclose(1.0 - cond_mask, ref.denoise_mask)
    video_coords = pipe.transformer.rope.prepare_video_coords(1, base, height // 8, width // 8, "cpu", fps=fps)
    ours_pos = torch.cat([video_coords, kf_coords], dim=2)
    assert rel_err(ours_pos, ref.positions) < 1e-6
    assert rel_err(clean[:, n_base:], ref.clean_latent[:, n_base:]) < 1e-5
    assert rel_err(latents, ref.latent) < 1e-5


# ------------------------------------------------------------------------------------------ decode
def test_decoded_uint8_frames_are_ltx_cores(official, pipe):
    """The video VAE decode and the float -> uint8 conversion (ltx-core truncates; rounding differs by one code value)."""
    from ltx_core.model.video_vae import decode_video

    latents = torch.randn(1, official.config["transformer"]["in_channels"], 3, 4, 3, generator=torch.Generator().manual_seed(21))
    with torch.no_grad():
        ref = torch.cat(list(decode_video(latents, official.video_decoder)))
        ours = pipe.decode_to_uint8(latents)
    assert ours.shape == ref.shape and ours.dtype == ref.dtype == torch.uint8
    assert int((ours.int() - ref.int()).abs().max()) == 0


# ------------------------------------------------------------------------------------------ a whole segment
class _Float32Torch:
    """``torch`` as A2VidPipelineTwoStage sees it: bfloat16 (its hard-coded dtype) is float32 and CUDA synchronise a no-op."""

    bfloat16 = torch.float32

    class cuda:  # noqa: N801
        @staticmethod
        def synchronize(*_a, **_k):
            return None

    def __getattr__(self, name):
        return getattr(torch, name)


@pytest.mark.parametrize("release", ["ltx-2-1.0.0", "ltx-2-1.2.0"])
def test_two_stage_segment_decodes_to_the_references_frames(official, tmp_path, monkeypatch, release):
    """The whole A2V recipe: frames decoded from longtake's two-stage segment against ``A2VidPipelineTwoStage.__call__``.

    Same weights (the single files; longtake through its production loader, the distilled LoRA through PEFT), same
    text embeddings (Gemma-12B stubbed on the reference side, as allowed), same voiceover file, same portrait, same
    noise for every draw; the reference's bfloat16 and CUDA synchronise stubbed to float32 and a no-op; the tiny VAE's
    latent channels and scale factors given to the reference where it hard-codes the 22B model's. 1.0.0 is the
    installed reference; 1.2.0 is it with the frozen-audio modulation patched as that release computes it.
    """
    import soundfile as sf
    from types import SimpleNamespace

    import ltx_core.components.noisers as N
    import ltx_pipelines.a2vid_two_stage as A2V
    import ltx_pipelines.utils.helpers as H
    import ltx_pipelines.utils.types as PT
    from diffusers.pipelines.ltx2 import pipeline_ltx2_condition as C
    from ltx_core.components.guiders import MultiModalGuiderParams
    from ltx_core.loader import LTXV_LORA_COMFY_RENAMING_MAP, LoraPathStrengthAndSDOps
    from ltx_core.tools import VideoLatentTools
    from ltx_core.types import AudioLatentShape, SpatioTemporalScaleFactors
    from ltx_pipelines.utils.args import ImageConditioningInput

    from generators import ltx2_loading as L
    from generators.ltx2_guidance import VideoGuidance
    from generators.ltx2_pipeline import LTX2VideoCondition
    from generators.ltx2_text import PromptEmbeddings

    height, width, num_frames, fps, steps = 64, 128, 17, 24.0, 3
    t = official.config["transformer"]
    g = torch.Generator().manual_seed(7)
    ctx = {k: torch.randn(1, 6, d, generator=g) for k, d in (("v_pos", 16), ("v_neg", 16), ("a_pos", 8), ("a_neg", 8))}
    image, image_path = _portrait(tmp_path)
    wav = tmp_path / "voice.wav"
    sf.write(wav, _speechlike(48_000, 1.0, seed=9), 48_000, subtype="FLOAT")

    # One noise tensor per shape, the same for both sides (video draws differ in shape between the stages).
    noises: dict = {}

    def noise_for(shape):
        shape = tuple(int(s) for s in shape)
        if shape not in noises:
            noises[shape] = torch.randn(shape, generator=torch.Generator().manual_seed(len(noises) + 100))
        return noises[shape].clone()

    # --- the reference
    if release == "ltx-2-1.2.0":
        _patch_ltx_core_to_1_2_0(monkeypatch)
    temporal, spatial = _ratios(official)
    scale = SpatioTemporalScaleFactors(time=temporal, width=spatial, height=spatial)
    monkeypatch.setattr(PT, "VIDEO_SCALE_FACTORS", scale)
    monkeypatch.setattr(PT, "VIDEO_LATENT_CHANNELS", t["in_channels"])
    monkeypatch.setattr(H, "VideoLatentTools", lambda p, s, f: VideoLatentTools(p, s, f, scale_factors=scale))
    monkeypatch.setattr(AudioLatentShape, "from_video_pixel_shape", staticmethod(lambda shape, **kw: AudioLatentShape.from_duration(
        batch=shape.batch, duration=float(shape.frames) / float(shape.fps), channels=2, mel_bins=2)))  # fmt: skip
    monkeypatch.setattr(N, "torch", type("T", (), {"randn": staticmethod(lambda *shape, **kw: noise_for(shape)), "__getattr__": lambda s, k: getattr(torch, k)})())
    monkeypatch.setattr(A2V, "torch", _Float32Torch())
    monkeypatch.setattr(A2V, "cleanup_memory", lambda: None)
    monkeypatch.setattr(A2V, "encode_prompts", lambda prompts, ledger, **kw: [
        SimpleNamespace(video_encoding=ctx["v_pos"], audio_encoding=ctx["a_pos"]), SimpleNamespace(video_encoding=ctx["v_neg"], audio_encoding=ctx["a_neg"])])  # fmt: skip
    reference = A2V.A2VidPipelineTwoStage(
        checkpoint_path=str(official.checkpoint), distilled_lora=[LoraPathStrengthAndSDOps(str(official.lora), 1.0, LTXV_LORA_COMFY_RENAMING_MAP)],
        spatial_upsampler_path=str(official.upsampler), gemma_root=None, loras=[], device=torch.device("cpu"),  # Gemma is stubbed
    )  # fmt: skip
    # ltx-core fuses the LoRA in the LoRA file's dtype (bfloat16): the fused model goes back to float32 like the rest.
    fused = reference.stage_2_model_ledger.transformer
    reference.stage_2_model_ledger.transformer = lambda: fused().float()
    decoded_latents = []
    decode = A2V.vae_decode_video
    monkeypatch.setattr(A2V, "vae_decode_video", lambda latent, *a, **k: decoded_latents.append(latent.clone()) or decode(latent, *a, **k))
    with torch.no_grad():
        ref_video, _ref_audio = reference(
            prompt="p", negative_prompt="n", seed=10, height=height, width=width, num_frames=num_frames, frame_rate=fps,
            num_inference_steps=steps, video_guider_params=MultiModalGuiderParams(**GUIDED),
            images=[ImageConditioningInput(str(image_path), 0, 1.0, 33)], audio_path=str(wav), audio_max_duration=num_frames / fps,
        )  # fmt: skip
        ref_frames = torch.cat(list(ref_video))

    # --- longtake, through its production loader and its own calls
    monkeypatch.setattr(C, "randn_tensor", lambda shape, generator=None, device=None, dtype=None: noise_for(shape).to(device=device, dtype=dtype))
    info = L.inspect_official(official.checkpoint, text_encoder=str(official.gemma), upsampler=str(official.upsampler), need_upsampler=True)
    ours = L.build_pipeline(info, dtype="float32", two_stage=True)
    ours.reference_release = release
    adapter = L.load_stage2_lora(ours, str(official.lora), 1.0)
    wave, rate = sf.read(wav, dtype="float32")
    wave = wave[: round(num_frames / fps * rate)]
    ones = torch.ones(1, 6)
    with torch.no_grad():
        result = ours(
            prompt_embeds=PromptEmbeddings(ctx["v_pos"], ctx["a_pos"], ones), negative_prompt_embeds=PromptEmbeddings(ctx["v_neg"], ctx["a_neg"], ones),
            audio_latents=ours.encode_audio(wave, rate, num_frames, fps), conditions=[LTX2VideoCondition(frames=image, index=0, strength=1.0, crf=33)],
            height=height, width=width, num_frames=num_frames, frame_rate=fps, num_inference_steps=steps,
            guidance=VideoGuidance(guidance_scale=3.0, stg_scale=1.0, modality_scale=3.0, guidance_rescale=0.7, stg_blocks=(1,)),
            two_stage=True, stage2_adapter=adapter,
        )  # fmt: skip
        frames = torch.cat(list(ours.iter_decode(result.latents, tile_latent_frames=L.DECODE_TILE_LATENT_FRAMES, stride_latent_frames=L.DECODE_STRIDE_LATENT_FRAMES)))
    latent_err = rel_err(result.latents, decoded_latents[0])
    assert frames.shape == ref_frames.shape == (num_frames, height, width, 3)
    diff = (frames.int() - ref_frames.int()).abs()
    print(f"final latents rel {latent_err:.3g}; frames: max {int(diff.max())} code values, {float((diff > 0).float().mean()):.4%} differ")
    assert latent_err < 1e-5
    # uint8 truncation of float32 values equal to ~1e-6 may fall either side of a code value, nowhere more.
    assert int(diff.max()) <= 1 and float((diff > 0).float().mean()) < 0.001, (int(diff.max()), float((diff > 0).float().mean()))
