"""``LTX2AudioToVideoPipeline``: LTX-2.3 audio-to-video in two stages, from diffusers' LTX-2 parts.

diffusers 0.42 has no audio-to-video pipeline; ``LTX2ConditionPipeline`` has
every piece but steps the audio with the video. This subclass keeps its
condition handling (``prepare_latents``: image/video conditions, frame-0
replacement, keyframe tokens, CRF re-compression), packing and normalisation,
prompt encoding and offload machinery, and replaces the call with the
A2VidPipelineTwoStage recipe:

1. check inputs;
2. stage 1 at half size: conditions encoded at that size, video denoised with
   guidance while the audio latents stay clean (``ltx2_guidance``);
3. ×2 latent upsample (``LTX2LatentUpsamplerModel``, on de-normalised latents);
4. stage 2 at full size: the upsampled latents re-noised to the first distilled
   sigma, conditions re-applied at full size, the distilled sigmas
   ``[0.909375, 0.725, 0.421875]`` without guidance (optionally with the
   distilled LoRA switched on for this stage only);
5. the final latents are returned; ``iter_decode`` streams them out as uint8 frames, tile by tile.

One-stage mode is step 2 at full size. Prompts arrive as cached
``PromptEmbeddings`` (``ltx2_text``), the audio as packed latents (``ltx2_audio``).
"""

from __future__ import annotations

import contextlib
import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np
import torch
from diffusers.pipelines.ltx2.pipeline_ltx2_condition import LTX2ConditionPipeline, LTX2VideoCondition
from diffusers.pipelines.ltx2.utils import DISTILLED_SIGMA_VALUES, STAGE_2_DISTILLED_SIGMA_VALUES

from generators.ltx2_audio import audio_latent_frames, encode_audio_latents
from generators.ltx2_guidance import DEFAULT_REFERENCE_RELEASE, DenoiseInputs, VideoGuidance, denoise_video_frozen_audio
from generators.ltx2_text import PromptEmbeddings
from generators.ltx2_tiles import Stage2Tiling, token_tiles

__all__ = [
    "A2VResult",
    "DISTILLED_SIGMA_VALUES",
    "LTX2AudioToVideoPipeline",
    "LTX2VideoCondition",
    "STAGE_2_DISTILLED_SIGMA_VALUES",
    "StageClock",
    "StageResult",
]


# LTX-2's stage-1 schedule (ltx-core ``LTX2Scheduler``): the time shift of a 4096-token latent whatever the real size,
# then stretched so that the last non-zero sigma is 0.1.
STAGE1_SHIFT_TOKENS = 4096
STAGE1_TERMINAL_SIGMA = 0.1


def ltx2_stage1_sigmas(num_steps: int, *, shift_tokens: int = STAGE1_SHIFT_TOKENS, terminal: float = STAGE1_TERMINAL_SIGMA) -> torch.Tensor:
    """``num_steps + 1`` float32 sigmas from 1 down to ``terminal``, then 0.

    The shift mu is linear in the token count between (1024, 0.95) and (4096, 2.05), as in Flux/LTX; a sigma s
    on the uniform grid becomes e^mu / (e^mu + 1/s - 1), and the non-zero ones are stretched so 1 - sigma ends
    at 1 - terminal.
    """
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    if num_steps == 1:
        return torch.tensor([1.0, 0.0])  # the stretch would divide by 1 - sigma = 0 (the reference gives NaN here)
    mu = 0.95 + (2.05 - 0.95) * (shift_tokens - 1024) / (4096 - 1024)
    grid = torch.linspace(1.0, 0.0, num_steps + 1)
    nonzero = grid != 0
    shifted = torch.zeros_like(grid)
    shifted[nonzero] = math.exp(mu) / (math.exp(mu) + (1.0 / grid[nonzero] - 1.0))
    one_minus = 1.0 - shifted[nonzero]
    shifted[nonzero] = 1.0 - one_minus * (1.0 - terminal) / one_minus[-1]
    return shifted.to(torch.float32)


class StageClock:
    """Wall time per named stage; synchronises CUDA at each boundary so a stage's time is its own."""

    def __init__(self, device: torch.device | str | None = None):
        self.device = torch.device(device) if device is not None else None
        self.seconds: dict[str, float] = {}

    def _sync(self) -> None:
        if self.device is not None and self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        self._sync()
        start = time.perf_counter()
        try:
            yield
        finally:
            self._sync()
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start


@dataclass
class StageResult:
    """One denoising stage, kept for inspection (tests, benchmarks)."""

    height: int
    width: int
    latent_shape: tuple[int, int, int]  # (frames, height, width) in latents
    sigmas: torch.Tensor  # the schedule walked, terminal 0 included
    latents: torch.Tensor  # packed final latents, keyframe tokens included
    conditioning_mask: torch.Tensor  # packed [1, tokens, 1]
    clean_latents: torch.Tensor  # packed conditioning targets (zeros where free)
    num_base_tokens: int


@dataclass
class A2VResult:
    latents: torch.Tensor  # final video latents, normalised, [1, C, F, H, W]
    stages: list[StageResult] = field(default_factory=list)


class LTX2AudioToVideoPipeline(LTX2ConditionPipeline):
    r"""
    Audio-to-video with LTX-2.x: the video is generated while a given audio track conditions it, clean, at every step.

    Components are those of [`LTX2ConditionPipeline`] plus `latent_upsampler` ([`LTX2LatentUpsamplerModel`]) for
    the two-stage mode. The text encoder, tokenizer and connectors are only needed to encode prompts and may be
    `None` (or released) while generating; the vocoder is never used (the original audio is kept).
    """

    # The order one segment calls them in, so model offload keeps one large model resident at a time.
    model_cpu_offload_seq = "text_encoder->connectors->audio_vae->vae->latent_upsampler->transformer"
    _optional_components = [
        "text_encoder",
        "tokenizer",
        "connectors",
        "vocoder",
        "latent_upsampler",
        "audio_scheduler",
        "processor",
        "prompt_enhancer",
        "duration_head",
    ]

    def __init__(
        self,
        scheduler,
        vae,
        audio_vae,
        transformer,
        text_encoder=None,
        tokenizer=None,
        connectors=None,
        vocoder=None,
        latent_upsampler=None,
        audio_scheduler=None,
        processor=None,
        prompt_enhancer=None,
        duration_head=None,
    ):
        super().__init__(
            scheduler=scheduler,
            vae=vae,
            audio_vae=audio_vae,
            text_encoder=text_encoder,
            tokenizer=tokenizer,
            connectors=connectors,
            transformer=transformer,
            vocoder=vocoder,
            audio_scheduler=audio_scheduler,
            processor=processor,
            prompt_enhancer=prompt_enhancer,
            duration_head=duration_head,
        )
        self.register_modules(latent_upsampler=latent_upsampler)
        self.compute_dtype: torch.dtype = getattr(transformer, "dtype", torch.float32)
        self.device_override: torch.device | None = None
        self.reference_release: str = DEFAULT_REFERENCE_RELEASE
        self.stage2_tiling: Stage2Tiling | None = None  # ltx2_tiles: stage 2 per overlapping spatial tile
        # ltx2_parallel.ContextParallelTransformer around `transformer` when a segment is split over GPUs (ltx2_cp_launch).
        self.context_parallel = None

    # ----------------------------------------------------------------------------------------- helpers
    @property
    def execution_device(self) -> torch.device:
        """Where inputs go: the configured device (group offloading leaves weights on the CPU between uses)."""
        return self.device_override if self.device_override is not None else self._execution_device

    @property
    def use_cross_timestep(self) -> bool:
        # LTX-2.3 modulates audio↔video cross-attention with the other modality's sigma; 2.0 did not.
        return bool(getattr(self.transformer.config, "cross_attn_mod", False))

    def audio_latent_frames(self, num_frames: int, frame_rate: float) -> int:
        cfg = self.audio_vae.config
        return audio_latent_frames(num_frames, frame_rate, cfg.sample_rate, cfg.mel_hop_length, self.audio_vae.temporal_compression_ratio)

    @torch.no_grad()
    def encode_audio(self, audio: np.ndarray, sample_rate_hz: int, num_frames: int, frame_rate: float) -> torch.Tensor:
        """Waveform ``[samples, channels]`` → packed normalised audio latents covering ``num_frames`` video frames."""
        return encode_audio_latents(
            self.audio_vae,
            audio,
            sample_rate_hz,
            self.audio_latent_frames(num_frames, frame_rate),
            device=self.execution_device,
            dtype=self.audio_vae.dtype,
        )

    def stage1_sigmas(self, num_inference_steps: int, num_tokens: int, distilled: bool) -> torch.Tensor:
        """Stage-1 schedule with its terminal 0: the distilled 8 sigmas, or LTX-2's shifted schedule (``ltx2_stage1_sigmas``).

        ``num_tokens`` is deliberately unused: the reference shifts as if there were 4096 tokens at every size.
        """
        if distilled:
            return torch.tensor([*DISTILLED_SIGMA_VALUES, 0.0], dtype=torch.float32)
        return ltx2_stage1_sigmas(num_inference_steps)

    @staticmethod
    def stage2_sigmas() -> torch.Tensor:
        return torch.tensor([*STAGE_2_DISTILLED_SIGMA_VALUES, 0.0], dtype=torch.float32)

    def check_a2v_inputs(self, height: int, width: int, num_frames: int, two_stage: bool, audio_latents: torch.Tensor, frame_rate: float) -> None:
        multiple = self.vae_spatial_compression_ratio * (2 if two_stage else 1)
        if height % multiple or width % multiple:
            mode = "two-stage" if two_stage else "one-stage"
            raise ValueError(f"`height` and `width` have to be divisible by {multiple} for {mode} generation but are {height} and {width}.")
        grid = self.vae_temporal_compression_ratio
        if num_frames < 1 or (num_frames - 1) % grid:
            raise ValueError(f"`num_frames` has to be {grid}k+1 but is {num_frames}.")
        if two_stage and self.latent_upsampler is None:
            raise ValueError("two-stage generation needs a `latent_upsampler`.")
        expected = self.audio_latent_frames(num_frames, frame_rate)
        if audio_latents.ndim != 3 or audio_latents.shape[1] != expected:
            raise ValueError(f"`audio_latents` must be packed [1, {expected}, C·M] for {num_frames} frames, got {list(audio_latents.shape)}.")

    # ------------------------------------------------------------------------------------ the stages
    def prepare_latents(self, *args, **kwargs):
        """diffusers' condition handling, with keyframe guides as ltx-core's ``VideoConditionByKeyframeIndex`` of the
        chosen release: 1.2.0 starts their tokens from noise alone (the image is only the clean target) and gives a
        one-image keyframe one pixel frame of time, as diffusers does; 1.0.0 starts them from the image, noised like
        any token, and spans the VAE's whole temporal stride."""
        latents, mask, clean, keyframe_coords = super().prepare_latents(*args, **kwargs)
        if keyframe_coords is None:
            return latents, mask, clean, keyframe_coords
        first = latents.shape[1] - keyframe_coords.shape[2]
        if self.reference_release == "ltx-2-1.0.0":
            keyframe_coords = keyframe_coords.clone()
            fps = float(kwargs.get("frame_rate", 24.0))
            start, end = keyframe_coords[:, 0, :, 0], keyframe_coords[:, 0, :, 1]
            one_frame = (end - start - 1.0 / fps).abs() < 1e-6
            keyframe_coords[:, 0, :, 1] = torch.where(one_frame, start + self.vae_temporal_compression_ratio / fps, end)
        else:
            # Both start from the same noise draw: take the image's share back out of the keyframe tokens.
            noise_scale = float(kwargs.get("noise_scale", 1.0))
            kept = 1.0 - (1.0 - mask[:, first:]) * noise_scale
            latents = torch.cat([latents[:, :first], latents[:, first:] - clean[:, first:] * kept], dim=1)
        return latents, mask, clean, keyframe_coords

    def run_stage(
        self,
        *,
        conditions: list[LTX2VideoCondition],
        height: int,
        width: int,
        num_frames: int,
        frame_rate: float,
        audio_latents: torch.Tensor,
        prompt_embeds: PromptEmbeddings,
        negative_prompt_embeds: PromptEmbeddings | None,
        sigmas: torch.Tensor | None,
        num_inference_steps: int,
        distilled_stage1: bool,
        guidance: VideoGuidance,
        generator: torch.Generator,
        latents: torch.Tensor | None = None,
        on_step: Callable[[int], None] | None = None,
        clock: StageClock | None = None,
        stage_name: str = "stage1",
    ) -> StageResult:
        """Prepare latents (conditions encoded and placed at this size) and denoise them with audio frozen."""
        clock = clock or StageClock()
        device = self.execution_device
        latent_f = (num_frames - 1) // self.vae_temporal_compression_ratio + 1
        latent_h = height // self.vae_spatial_compression_ratio
        latent_w = width // self.vae_spatial_compression_ratio
        num_base_tokens = latent_f * latent_h * latent_w
        if sigmas is None:
            sigmas = self.stage1_sigmas(num_inference_steps, num_base_tokens, distilled_stage1)

        with clock("condition_encode"):
            packed, cond_mask, clean, keyframe_coords = self.prepare_latents(
                conditions=conditions,
                batch_size=1,
                num_channels_latents=self.transformer.config.in_channels,
                height=height,
                width=width,
                num_frames=num_frames,
                frame_rate=frame_rate,
                noise_scale=float(sigmas[0]),
                dtype=torch.float32,
                device=device,
                generator=generator,
                latents=None if latents is None else latents.to(device=device, dtype=torch.float32),
            )
            video_coords = self.transformer.rope.prepare_video_coords(1, latent_f, latent_h, latent_w, device, fps=frame_rate)
            if keyframe_coords is not None:
                video_coords = torch.cat([video_coords, keyframe_coords.to(video_coords)], dim=2)
            audio = audio_latents.to(device)
            audio_coords = self.transformer.audio_rope.prepare_audio_coords(1, audio.shape[1], device)

        inputs = DenoiseInputs(
            latents=packed,
            conditioning_mask=cond_mask,
            clean_latents=clean,
            video_coords=video_coords,
            audio_latents=audio,
            audio_coords=audio_coords,
            positive=prompt_embeds.to(device, self.compute_dtype),
            negative=None if negative_prompt_embeds is None else negative_prompt_embeds.to(device, self.compute_dtype),
            sigmas=sigmas,
            fps=frame_rate,
            num_train_timesteps=int(self.scheduler.config.get("num_train_timesteps", 1000)),
            use_cross_timestep=self.use_cross_timestep,
            reference_release=self.reference_release,
            tiles=None if stage_name != "stage2" or self.stage2_tiling is None
            else token_tiles(video_coords, self.stage2_tiling, self.vae_spatial_compression_ratio),
        )
        with clock(stage_name):
            model = self.context_parallel if self.context_parallel is not None else self.transformer
            final = denoise_video_frozen_audio(model, inputs, guidance, compute_dtype=self.compute_dtype, on_step=on_step)
        return StageResult(
            height=height,
            width=width,
            latent_shape=(latent_f, latent_h, latent_w),
            sigmas=sigmas,
            latents=final,
            conditioning_mask=cond_mask,
            clean_latents=clean,
            num_base_tokens=num_base_tokens,
        )

    def unpack_stage(self, stage: StageResult) -> torch.Tensor:
        """A stage's packed latents → ``[1, C, F, H, W]``, appended keyframe tokens dropped."""
        f, h, w = stage.latent_shape
        return self._unpack_latents(
            stage.latents[:, : stage.num_base_tokens], f, h, w, self.transformer_spatial_patch_size, self.transformer_temporal_patch_size
        )

    @torch.no_grad()
    def upsample_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Normalised ``[1, C, F, H, W]`` → ×2 spatially, de-normalised (what ``prepare_latents`` expects as input)."""
        raw = self._denormalize_latents(latents, self.vae.latents_mean, self.vae.latents_std, self.vae.config.scaling_factor)
        up = self.latent_upsampler(raw.to(device=self.execution_device, dtype=self.latent_upsampler.dtype))
        return up.float()

    @torch.no_grad()
    def __call__(
        self,
        *,
        prompt_embeds: PromptEmbeddings,
        negative_prompt_embeds: PromptEmbeddings | None,
        audio_latents: torch.Tensor,
        conditions: list[LTX2VideoCondition],
        height: int,
        width: int,
        num_frames: int,
        frame_rate: float,
        num_inference_steps: int = 30,
        guidance: VideoGuidance | None = None,
        two_stage: bool = True,
        distilled_stage1: bool = False,
        generator: torch.Generator | None = None,
        stage2_adapter: tuple[str, float] | None = None,
        on_step: Callable[[str, int], None] | None = None,
        clock: StageClock | None = None,
        stage2_weights: Callable[[], Any] | None = None,
    ) -> A2VResult:
        """Generate video latents for ``num_frames`` frames at ``height``×``width`` driven by ``audio_latents``.

        ``stage2_adapter`` names a loaded LoRA adapter (and its scale) that is active in stage 2 only.
        ``stage2_weights`` makes a context manager entered around stage 2 only (``ltx2_speed.FusedLoRA.active``).
        """
        guidance = guidance or VideoGuidance.off()
        clock = clock or StageClock(self.execution_device)
        generator = generator if generator is not None else torch.Generator("cpu").manual_seed(0)

        # 1. Check inputs
        self.check_a2v_inputs(height, width, num_frames, two_stage, audio_latents, frame_rate)
        if distilled_stage1:
            guidance = VideoGuidance.off()  # the distilled model is trained to run without guidance
        stage1_h, stage1_w = (height // 2, width // 2) if two_stage else (height, width)
        common = dict(
            conditions=conditions,
            num_frames=num_frames,
            frame_rate=frame_rate,
            audio_latents=audio_latents,
            prompt_embeds=prompt_embeds,
            generator=generator,
            clock=clock,
        )

        # 2. Stage 1 (half size when two-stage), with guidance; the stage-2 LoRA, if any, is off here.
        adapters_on = stage2_adapter is not None
        if adapters_on:
            self.transformer.disable_lora()
        stage1 = self.run_stage(
            **common,
            height=stage1_h,
            width=stage1_w,
            negative_prompt_embeds=negative_prompt_embeds,
            sigmas=None,
            num_inference_steps=num_inference_steps,
            distilled_stage1=distilled_stage1,
            guidance=guidance,
            on_step=None if on_step is None else (lambda i: on_step("stage 1", i)),
            stage_name="stage1",
        )
        stages = [stage1]
        latents = self.unpack_stage(stage1)
        if not two_stage:
            return A2VResult(latents=latents, stages=stages)

        # 3. ×2 latent upsample
        with clock("upsample"):
            upsampled = self.upsample_latents(latents)

        # 4. Stage 2 at full size: distilled sigmas, no guidance, conditions re-applied.
        if adapters_on:
            self.transformer.enable_lora()
            self.transformer.set_adapters([stage2_adapter[0]], [stage2_adapter[1]])
        stage2_context = contextlib.ExitStack()
        if stage2_weights is not None:
            stage2_context.enter_context(stage2_weights())
        try:
            stage2 = self.run_stage(
                **common,
                height=height,
                width=width,
                negative_prompt_embeds=None,
                sigmas=self.stage2_sigmas(),
                num_inference_steps=len(STAGE_2_DISTILLED_SIGMA_VALUES),
                distilled_stage1=False,
                guidance=VideoGuidance.off(),
                latents=upsampled,
                on_step=None if on_step is None else (lambda i: on_step("stage 2", i)),
                stage_name="stage2",
            )
        finally:
            stage2_context.close()
            if adapters_on:
                self.transformer.disable_lora()
        stages.append(stage2)
        return A2VResult(latents=self.unpack_stage(stage2), stages=stages)

    # ----------------------------------------------------------------------------------------- decode
    def _prepare_decode(self, latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        device = self.execution_device
        latents = self._denormalize_latents(latents.to(device), self.vae.latents_mean, self.vae.latents_std, self.vae.config.scaling_factor)
        timestep = None
        if self.vae.config.timestep_conditioning:
            timestep = torch.zeros(latents.shape[0], device=device, dtype=self.vae.dtype)  # decode_timestep 0, no noise
        return latents.to(self.vae.dtype), timestep

    @torch.no_grad()
    def iter_decode(self, latents: torch.Tensor, *, tile_latent_frames: int = 8, stride_latent_frames: int = 7) -> Iterator[torch.Tensor]:
        """Normalised ``[1, C, F, H, W]`` latents → uint8 ``[f, H, W, 3]`` chunks on the device, in frame order.

        The clip is decoded in temporal tiles of ``tile_latent_frames + 1`` latent
        frames every ``stride_latent_frames``, each tile's first frames blended
        linearly into the previous tile's last ones: the same tiles and blend as
        the VAE's own temporal tiling, but each finished chunk is handed over as
        soon as it is decoded, so the caller can encode it while the GPU decodes
        the next, and the decoded clip is never whole in memory. Spatial tiling,
        if enabled on the VAE, applies inside each tile.
        """
        z, timestep = self._prepare_decode(latents)
        num_latent = z.shape[2]
        temporal = self.vae_temporal_compression_ratio
        total = (num_latent - 1) * temporal + 1
        blend = (tile_latent_frames - stride_latent_frames) * temporal
        stride = stride_latent_frames * temporal
        framewise = self.vae.use_framewise_decoding
        self.vae.use_framewise_decoding = False  # the temporal tiling is done here
        try:
            emitted, carry = 0, None
            for index, start in enumerate(range(0, num_latent, stride_latent_frames)):
                tile = self.vae.decode(z[:, :, start : start + tile_latent_frames + 1], timestep, return_dict=False)[0][0]  # [3, f, H, W]
                if index == 0:
                    keep = tile[:, : stride + 1]
                else:
                    tile = tile[:, :-1]
                    n = min(blend, tile.shape[1], carry.shape[1])
                    weight = (torch.arange(n, device=tile.device, dtype=torch.float32) / max(1, n)).view(1, -1, 1, 1)
                    tile[:, :n] = (carry[:, carry.shape[1] - n :].float() * (1 - weight) + tile[:, :n].float() * weight).to(tile.dtype)
                    keep = tile[:, :stride]
                carry = tile[:, -blend:] if blend > 0 else tile[:, :0]
                keep = keep[:, : total - emitted]
                if keep.shape[1]:
                    emitted += keep.shape[1]
                    yield _to_uint8_frames(keep)
                if emitted >= total:
                    break
        finally:
            self.vae.use_framewise_decoding = framewise

    @torch.no_grad()
    def decode_to_uint8(self, latents: torch.Tensor) -> torch.Tensor:
        """Normalised latents → the whole clip as uint8 ``[F, H, W, 3]`` on the device (the VAE's own decode)."""
        z, timestep = self._prepare_decode(latents)
        video = self.vae.decode(z, timestep, return_dict=False)[0][0]  # [3, F, H, W] in [-1, 1]
        return torch.cat([_to_uint8_frames(video[:, i : i + 16]) for i in range(0, video.shape[1], 16)])


def rgb_to_ycbcr_planes(frames: torch.Tensor) -> torch.Tensor:
    """uint8 RGB ``[f, H, W, 3]`` → uint8 BT.709 limited-range Y'CbCr planes ``[f, 3, H, W]``, on the frames' device.

    The clip writer's input (``ClipWriter.write_ycbcr``): converting where the frames
    already are (the GPU) takes the conversion off the encoder thread. Agrees with
    libswscale's fixed-point conversion to within one code value.
    """
    from stitchers.color import BT709_LIMITED

    m = torch.as_tensor(BT709_LIMITED.rgb_to_code(), dtype=torch.float32, device=frames.device)
    out = torch.einsum("fhwc,kc->fkhw", frames.float(), m[:3, :3]) + m[:3, 3].view(1, 3, 1, 1)
    return out.round_().clamp_(0, 255).to(torch.uint8)


def _to_uint8_frames(video: torch.Tensor) -> torch.Tensor:
    """``[3, f, H, W]`` in [-1, 1] → uint8 ``[f, H, W, 3]``, truncated as ltx-core's ``decode_video`` does (not rounded)."""
    return (((video.float() + 1.0) / 2.0).clamp(0.0, 1.0) * 255.0).to(torch.uint8).permute(1, 2, 3, 0).contiguous()
