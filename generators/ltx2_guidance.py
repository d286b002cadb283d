"""The video-only denoising loop of audio-to-video: audio held clean, video guided.

What LTX's ``A2VidPipelineTwoStage`` does, built from diffusers' parts:

- The audio latents enter every transformer call at timestep and sigma 0 and are
  never stepped, so the video's audio cross-attention always sees the clean
  voiceover. The transformer still runs its audio stream (the video branch
  attends to its hidden states); its audio prediction is discarded.
- The video prediction is turned into x0 with each token's own noise level
  (a token conditioned with strength ``s`` sits at ``(1 - s)·sigma``), combined
  across guidance passes by diffusers' ``LTX2Guidance`` (CFG on the negative
  prompt, STG with the chosen blocks' self-attention skipped, modality guidance
  with audio↔video cross-attention cut), blended with the clean conditioning
  latents, and advanced by one Euler step of the flow.

The passes run one after another with batch 1: at 13k–124k video tokens the
GPU is already saturated, and the peak memory stays that of a single pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from generators.ltx2_text import PromptEmbeddings


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
    audio_zero = torch.zeros(batch, device=latents.device, dtype=torch.float32)
    sigmas = inputs.sigmas.to(device=latents.device, dtype=torch.float32)

    for step in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[step], sigmas[step + 1]
        t = (sigma * inputs.num_train_timesteps).expand(batch)
        video_timestep = t[:, None] * keep_free.squeeze(-1)
        token_sigma = sigma * keep_free  # [1, tokens, 1]
        model_in = latents.to(compute_dtype)

        x0 = {}
        for name in predictions:
            emb = inputs.negative if name == "pred_uncond" else inputs.positive
            velocity, _audio_velocity_discarded = transformer(
                hidden_states=model_in,
                audio_hidden_states=audio_in,
                encoder_hidden_states=emb.video,
                audio_encoder_hidden_states=emb.audio,
                timestep=video_timestep,
                audio_timestep=audio_zero,
                sigma=t,
                audio_sigma=audio_zero,
                encoder_attention_mask=emb.mask,
                audio_encoder_attention_mask=emb.mask,
                fps=inputs.fps,
                audio_num_frames=audio_in.shape[1],
                video_coords=inputs.video_coords,
                audio_coords=inputs.audio_coords,
                isolate_modalities=name == "pred_cond_modality",
                spatio_temporal_guidance_blocks=list(guidance.stg_blocks) if name == "pred_cond_stg" else None,
                use_cross_timestep=inputs.use_cross_timestep,
                return_dict=False,
            )
            x0[name] = latents - velocity.float() * token_sigma

        denoised = guider.forward(**x0).pred if guider is not None else x0["pred_cond"]
        denoised = denoised * keep_free + clean * mask
        # Euler step of the flow x_t = (1 - sigma)·x0 + sigma·noise; held tokens have x == x0 and stay put exactly.
        latents = latents + (sigma_next - sigma) * (latents - denoised) / sigma
        if on_step is not None:
            on_step(step)
    return latents
