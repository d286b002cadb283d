"""The video-only denoising loop of audio-to-video: audio held clean, video guided.

What LTX's ``A2VidPipelineTwoStage`` does, built from diffusers' parts (each
point is checked against ltx-core/ltx-pipelines by ``tests/generators/test_ltx2_parity.py``):

- The audio latents enter every transformer call with per-token timestep 0 and
  are never stepped, so the video's audio cross-attention always sees the clean
  voiceover. The transformer still runs its audio stream (the video branch
  attends to its hidden states); its audio prediction is discarded.
- How the frozen audio is *modulated* changed between Lightricks' releases
  (``REFERENCE_RELEASES``): 1.0.0 feeds the step sigma to the audio prompt
  modulation and to both cross-modal modulations; 1.2.0 treats frozen audio as
  clean (sigma 0) and scales/shifts each modality's cross-attention by its own
  per-token timesteps, gating it by the other modality's sigma. Default: 1.2.0.
- The video prediction is turned into x0 with each token's own noise level
  (a token conditioned with strength ``s`` sits at ``(1 - s)·sigma``), combined
  across guidance passes by diffusers' ``LTX2Guidance``, blended with the clean
  conditioning latents, and advanced by one Euler step of the flow. The passes
  are the reference's: CFG changes the *video* text context only (the audio
  stream keeps the positive prompt's context), STG skips the chosen blocks'
  *video* self-attention only (diffusers' own STG also perturbs the audio
  self-attention, which then reaches the video through the a2v cross-attention),
  and modality guidance cuts audio↔video cross-attention in every block.

The passes run one after another with batch 1: at 13k–124k video tokens the
GPU is already saturated, and the peak memory stays that of a single pass.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterator

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from generators.ltx2_text import PromptEmbeddings


# The Lightricks releases whose maths can be followed where it changed (here: how the frozen audio is modulated).
REFERENCE_RELEASES = ("ltx-2-1.2.0", "ltx-2-1.0.0")
DEFAULT_REFERENCE_RELEASE = "ltx-2-1.2.0"


@dataclass(frozen=True)
class VideoGuidance:
    """Scales of the video guidance terms (LTX-2.3 defaults in ``LTX2Options``); all off means one pass per step."""

    guidance_scale: float = 1.0
    stg_scale: float = 0.0
    modality_scale: float = 1.0
    guidance_rescale: float = 0.0
    stg_blocks: tuple[int, ...] = ()

    @classmethod
    def off(cls) -> "VideoGuidance":
        return cls()

    def make_guider(self):
        import logging as _logging

        from diffusers.guiders import LTX2Guidance

        # diffusers warns "guiders are experimental" on every construction; one stage per segment would spam the log.
        base_logger = _logging.getLogger("diffusers.guiders.guider_utils")
        level = base_logger.level
        base_logger.setLevel(_logging.ERROR)
        try:
            return LTX2Guidance(
                guidance_scale=self.guidance_scale,
                stg_scale=self.stg_scale,
                modality_scale=self.modality_scale,
                guidance_rescale=self.guidance_rescale,
                spatio_temporal_guidance_blocks=list(self.stg_blocks),
            )
        finally:
            base_logger.setLevel(level)

    @property
    def passes_per_step(self) -> int:
        return 1 + (self.guidance_scale != 1.0) + (self.stg_scale != 0.0) + (self.modality_scale != 1.0)


@dataclass
class DenoiseInputs:
    """Everything one stage's loop needs; latents are packed ``[1, tokens, channels]`` (keyframe tokens included)."""

    latents: "torch.Tensor"
    conditioning_mask: "torch.Tensor"  # [1, tokens, 1]: 1 = held clean, 0 = denoised freely
    clean_latents: "torch.Tensor"
    video_coords: "torch.Tensor"
    audio_latents: "torch.Tensor"  # packed, normalised, clean
    audio_coords: "torch.Tensor"
    positive: "PromptEmbeddings"
    negative: "PromptEmbeddings | None"
    sigmas: "torch.Tensor"  # the schedule with its terminal 0, float32
    fps: float
    num_train_timesteps: int = 1000
    use_cross_timestep: bool = True
    reference_release: str = DEFAULT_REFERENCE_RELEASE
    tiles: "list | None" = None  # ltx2_tiles.TokenTile: run each pass per spatial tile and blend (stage2_tile_px)


@contextmanager
def _input_replaced(module, value) -> Iterator[None]:
    """Call ``module`` with ``value`` as its first positional input while the block runs (a forward pre-hook)."""
    handle = module.register_forward_pre_hook(lambda _m, args: (value, *args[1:]))
    try:
        yield
    finally:
        handle.remove()


@contextmanager
def _audio_self_attention_unperturbed(transformer, blocks) -> Iterator[None]:
    """Keep diffusers' STG off the audio self-attention of ``blocks``: the reference skips video self-attention only."""

    def drop_perturbation(_module, args, kwargs):
        kwargs = dict(kwargs)
        kwargs["perturbation_mask"] = None
        kwargs["all_perturbed"] = False
        return args, kwargs

    handles = [
        transformer.transformer_blocks[b].audio_attn1.register_forward_pre_hook(drop_perturbation, with_kwargs=True) for b in blocks
    ]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def transformer_pass(
    transformer,
    *,
    name: str,
    latents: "torch.Tensor",
    audio_latents: "torch.Tensor",
    video_timestep: "torch.Tensor",
    step_timestep: "torch.Tensor",
    positive: "PromptEmbeddings",
    negative: "PromptEmbeddings | None",
    video_coords: "torch.Tensor",
    audio_coords: "torch.Tensor",
    fps: float,
    stg_blocks: tuple[int, ...] = (),
    use_cross_timestep: bool = True,
    reference_release: str = DEFAULT_REFERENCE_RELEASE,
) -> "torch.Tensor":
    """One guidance pass (``pred_cond``, ``pred_uncond``, ``pred_cond_stg`` or ``pred_cond_modality``) → video velocity.

    ``video_timestep`` is per token ``[1, tokens]`` and ``step_timestep`` the step's ``[1]``, both in the
    transformer's timestep units (sigma × num_train_timesteps); the audio is frozen (per-token timestep 0).
    """
    import contextlib

    import torch

    if reference_release not in REFERENCE_RELEASES:
        raise ValueError(f"reference_release must be one of {REFERENCE_RELEASES}, got {reference_release!r}")
    batch = latents.shape[0]
    audio_zero = torch.zeros(batch, device=latents.device, dtype=torch.float32)
    if name == "pred_uncond":
        if negative is None:
            raise ValueError("classifier-free guidance needs negative prompt embeddings")
        # The reference's unconditional pass swaps the video context only; the audio stream keeps the positive one.
        video_context, video_mask = negative.video, negative.mask
    else:
        video_context, video_mask = positive.video, positive.mask
    step_1_0 = reference_release == "ltx-2-1.0.0"
    with contextlib.ExitStack() as stack:
        if name == "pred_cond_stg":
            stack.enter_context(_audio_self_attention_unperturbed(transformer, stg_blocks))
        if use_cross_timestep and not step_1_0:
            # 1.2.0: cross-attention scale/shift follow each modality's own per-token timesteps (the gates keep the
            # other modality's sigma, which is what diffusers' use_cross_timestep feeds both).
            stack.enter_context(_input_replaced(transformer.av_cross_attn_video_scale_shift, video_timestep.flatten()))
            stack.enter_context(_input_replaced(transformer.av_cross_attn_audio_scale_shift, audio_zero.expand(audio_latents.shape[1] * batch)))
        velocity, _audio_velocity_discarded = transformer(
            hidden_states=latents,
            audio_hidden_states=audio_latents,
            encoder_hidden_states=video_context,
            audio_encoder_hidden_states=positive.audio,
            timestep=video_timestep,
            audio_timestep=audio_zero,
            sigma=step_timestep,
            # 1.0.0 hands the step sigma to the frozen audio's prompt and cross-modal modulation; 1.2.0 sigma 0.
            audio_sigma=step_timestep if step_1_0 else audio_zero,
            encoder_attention_mask=video_mask,
            audio_encoder_attention_mask=positive.mask,
            fps=fps,
            audio_num_frames=audio_latents.shape[1],
            video_coords=video_coords,
            audio_coords=audio_coords,
            isolate_modalities=name == "pred_cond_modality",
            spatio_temporal_guidance_blocks=list(stg_blocks) if name == "pred_cond_stg" else None,
            use_cross_timestep=use_cross_timestep,
            return_dict=False,
        )
    return velocity


def denoise_video_frozen_audio(
    transformer,
    inputs: DenoiseInputs,
    guidance: VideoGuidance,
    *,
    compute_dtype: "torch.dtype",
    on_step: Callable[[int], None] | None = None,
) -> "torch.Tensor":
    """Run the stage's schedule; returns the final packed video latents (float32). Audio latents are never changed."""
    import torch

    guider = guidance.make_guider() if guidance.passes_per_step > 1 else None
    predictions = guider.active_predictions() if guider is not None else ["pred_cond"]
    if "pred_uncond" in predictions and inputs.negative is None:
        raise ValueError("classifier-free guidance needs negative prompt embeddings")

    latents = inputs.latents.float()
    mask = inputs.conditioning_mask.float()
    clean = inputs.clean_latents.float()
    keep_free = 1.0 - mask
    audio_in = inputs.audio_latents.to(compute_dtype)
    batch = latents.shape[0]
    sigmas = inputs.sigmas.to(device=latents.device, dtype=torch.float32)
    run_pass = transformer_pass
    if inputs.tiles is not None:
        from generators.ltx2_tiles import tiled_pass

        run_pass = tiled_pass(transformer_pass, inputs.tiles)

    for step in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[step], sigmas[step + 1]
        t = (sigma * inputs.num_train_timesteps).expand(batch)
        video_timestep = t[:, None] * keep_free.squeeze(-1)
        token_sigma = sigma * keep_free  # [1, tokens, 1]
        model_in = latents.to(compute_dtype)

        x0 = {}
        for name in predictions:
            velocity = run_pass(
                transformer,
                name=name,
                latents=model_in,
                audio_latents=audio_in,
                video_timestep=video_timestep,
                step_timestep=t,
                positive=inputs.positive,
                negative=inputs.negative,
                video_coords=inputs.video_coords,
                audio_coords=inputs.audio_coords,
                fps=inputs.fps,
                stg_blocks=tuple(guidance.stg_blocks),
                use_cross_timestep=inputs.use_cross_timestep,
                reference_release=inputs.reference_release,
            )
            x0[name] = latents - velocity.float() * token_sigma

        denoised = guider.forward(**x0).pred if guider is not None else x0["pred_cond"]
        denoised = denoised * keep_free + clean * mask
        # Euler step of the flow x_t = (1 - sigma)·x0 + sigma·noise; held tokens have x == x0 and stay put exactly.
        latents = latents + (sigma_next - sigma) * (latents - denoised) / sigma
        if on_step is not None:
            on_step(step)
    return latents
