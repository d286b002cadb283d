"""LTX-2.3 audio-to-video through diffusers components: the real generator.

``LTX2Generator`` is the ``Generator`` a run uses for ``backend: ltx2``. Per run
it checks and loads the model once (``ltx2_loading``), keeps it resident across
segments, encodes each distinct prompt once into an on-disk cache
(``ltx2_text``), and per segment:

1. turns the segment's audio span into clean audio latents (``ltx2_audio``);
2. picks the video conditions from the chaining mode: the portrait at frame 0
   (segment 0 and ``anchor``), the previous segment's context frames as a clean
   prefix (``tail``) or its last frame (``last-frame``), plus the portrait as a
   low-strength keyframe guide when ``identity_anchor_strength`` > 0;
3. runs ``LTX2AudioToVideoPipeline`` (``ltx2_pipeline``): stage 1 at half size
   with guidance, ×2 latent upsample, stage 2 with the distilled sigmas, audio
   held clean throughout (``ltx2_guidance``);
4. decodes the latents and streams the frames into the segment's clip, keeping
   the tail frames losslessly as ``.npy`` for the next segment.

The model is Lightricks' single-file checkpoint (``ltx2_official``) or a
diffusers-format folder. The frame grid is read from the checkpoint's config
metadata or the folder's VAE config without loading weights, so ``longtake
plan`` never needs a GPU.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from generators import register
from generators.base import GenerateRequest, GenerateResult, Generator, ProgressFn
from generators.ltx2_tiles import Stage2Tiling
from orchestrator.errors import GeneratorError
from segmenters.plan import FrameGrid

log = logging.getLogger("longtake." + __name__)  # under "longtake": the CLI shows it as a warning and a --json event

# LTX-2.3's video VAE: 8 frames per latent frame, 32 px per latent pixel.
LTX2_TEMPORAL_COMPRESSION = 8
LTX2_SPATIAL_COMPRESSION = 32
# Bump when a change here alters the frames a given model and request produce (part of the model identity).
# 2: the reference's maths (LTX2Scheduler sigmas, CFG/STG passes, frozen-audio modulation, torchaudio's resampler).
PIPELINE_VERSION = 2
CLIP_NAME = "clip.mp4"
TAIL_NAME = "tail.npy"
PROMPT_CACHE_DIR = "ltx2-prompts"
# Keep Gemma + connectors resident after encoding only when they take at most this share of the device's memory.
KEEP_TEXT_STAGE_MAX_SHARE = 0.15


def vae_compression_from_config(model: str | Path | None) -> tuple[int, int]:
    """(temporal, spatial) compression of the video VAE, from ``<model>/vae/config.json`` if it is a local folder,
    or from the config inside a Lightricks single-file checkpoint.

    Falls back to LTX-2.3's known ratios for a hub id. A local path (the config makes local paths
    absolute) that is not there is an error now, not a surprise after the plan was made with guessed ratios.
    """
    from generators import ltx2_official as O

    if model and O.is_single_file(model):
        # Only LTX-2.3 files are accepted, so a file not downloaded yet plans with LTX-2.3's own ratios (`plan` needs no weights).
        return O.vae_ratios_of_file(Path(model)) if Path(model).exists() else O.shipped_vae_ratios()
    if model:
        if Path(model).is_absolute() and not Path(model).exists():
            raise GeneratorError(
                f"generator.model folder not found: {model}; put the diffusers-format LTX-2.3 folder there "
                "(transformer/, vae/, audio_vae/, text_encoder/, …) or set generator.model to a hub id"
            )
        cfg_path = Path(model) / "vae" / "config.json"
        if cfg_path.is_file():
            cfg = json.loads(cfg_path.read_text())
            scaling = cfg.get("spatio_temporal_scaling", (True, True, True, True))
            if isinstance(scaling, bool):
                scaling = (scaling,) * (len(cfg.get("layers_per_block", (4, 6, 6, 2, 2))) - 1)
            n_scaling = sum(bool(s) for s in scaling)
            spatial = cfg.get("spatial_compression_ratio") or cfg.get("patch_size", 4) * 2**n_scaling
            temporal = cfg.get("temporal_compression_ratio") or cfg.get("patch_size_t", 1) * 2**n_scaling
            return int(temporal), int(spatial)
    return LTX2_TEMPORAL_COMPRESSION, LTX2_SPATIAL_COMPRESSION


@dataclass
class LTX2Stats:
    """What the generator did this run; tests and the benchmark read it."""

    model_loads: int = 0
    text_stage_loads: int = 0
    prompts_encoded: int = 0
    segments: int = 0


@dataclass
class PipelineJob:
    """One segment's denoising inputs as plain data: rank 0 builds it, context-parallel workers get a host copy."""

    positive: Any  # ltx2_text.PromptEmbeddings
    negative: Any  # PromptEmbeddings | None
    audio_latents: Any  # torch.Tensor, packed
    conditions: list  # LTX2VideoCondition (uint8 frames)
    height: int
    width: int
    num_frames: int
    fps: float
    steps1: int
    seed: int
    segment_index: int = 0

    def to_host(self) -> "PipelineJob":
        from dataclasses import replace

        import torch

        host = lambda e: None if e is None else e.to(torch.device("cpu"), e.video.dtype)  # noqa: E731
        return replace(self, positive=host(self.positive), negative=host(self.negative), audio_latents=self.audio_latents.cpu())


def build_conditions(request: GenerateRequest, *, image_crf: int, temporal: int) -> list:
    """The video conditions a segment starts from, by chaining mode (see DESIGN.md, "Chaining modes")."""
    from generators.ltx2_pipeline import LTX2VideoCondition

    conditions = []
    if request.chaining == "bookend":
        # The portrait at frame 0 and, as appended keyframe tokens at full strength, at the clip's last frame
        # (the reference's keyframe-by-index semantics): the segment starts and ends on the portrait.
        conditions.append(LTX2VideoCondition(frames=request.portrait, index=0, strength=1.0, crf=image_crf))
        conditions.append(LTX2VideoCondition(frames=request.portrait, index=-1, strength=1.0, crf=image_crf))
        return conditions  # the end keyframe already is the portrait at full strength: no identity anchor on top
    if request.context is None or request.chaining == "anchor":
        conditions.append(LTX2VideoCondition(frames=request.portrait, index=0, strength=1.0, crf=image_crf))
    elif request.chaining == "last-frame":
        # A single frame is an image condition: re-compressed like the portrait, as the model was trained.
        conditions.append(LTX2VideoCondition(frames=request.context[-1], index=0, strength=1.0, crf=image_crf))
    elif request.chaining == "tail":
        count = request.context.shape[0]
        if (count - 1) % temporal:
            raise GeneratorError(
                f"segment {request.segment_index}: tail chaining needs {temporal}j+1 context frames (whole latent frames), got {count}; "
                f"set segmenter.context_frames to {(count - 1) // temporal * temporal + 1} or {-(-(count - 1) // temporal) * temporal + 1}"
            )
        conditions.append(LTX2VideoCondition(frames=request.context, index=0, strength=1.0, crf=image_crf))
    else:
        raise GeneratorError(f"unknown chaining mode {request.chaining!r}; use tail, last-frame, anchor or bookend")
    if request.identity_anchor_strength > 0:
        # Appended keyframe tokens at the clip's last latent frame: a soft pull back to the reference look.
        conditions.append(LTX2VideoCondition(frames=request.portrait, index=-1, strength=float(request.identity_anchor_strength), crf=image_crf))
    return conditions


class _HostCopier:
    """Starts a device tensor's copy to the host and hands back a function that waits for it.

    On CUDA the copy is a DMA into page-locked memory on a side stream, queued after the work that
    made the tensor: the producing thread (which keeps the GPU busy) only queues it, the thread that
    calls the function waits for it, and the kernels launched next never queue behind it. A copy into
    ordinary (pageable) memory would instead be staged through the driver, hold up the producer's
    kernel launches and slow the VAE decode it overlaps (measured: 3.9 → 4.9 s per 20-s segment at
    704x1280). The page-locked blocks come from PyTorch's caching host allocator, so after the first
    segment they are reused, not allocated.
    """

    def __init__(self, device):
        import torch

        self._cuda = torch.device(device).type == "cuda"
        self._stream = torch.cuda.Stream(device=device) if self._cuda else None

    def __call__(self, tensor):
        import torch

        if not self._cuda:
            return lambda: tensor.cpu().numpy()
        host = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True)
        stream = self._stream
        stream.wait_stream(torch.cuda.current_stream(tensor.device))
        with torch.cuda.stream(stream):
            host.copy_(tensor, non_blocking=True)
            done = torch.cuda.Event()
            done.record(stream)
        tensor.record_stream(stream)  # its memory is not reused before the copy has read it

        def fetch() -> np.ndarray:
            done.synchronize()
            return host.numpy()

        return fetch


def _save_npy(path: Path, parts: list) -> None:
    """Save the frames that ``parts`` (host-copy functions, in order) return as one array."""
    from orchestrator.atomic import atomic_path

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, np.concatenate([fetch() for fetch in parts]))


@register
class LTX2Generator(Generator):
    NAME = "ltx2"

    def __init__(self, options: Any, *, cache_dir: Path | None = None):
        super().__init__(options, cache_dir=cache_dir)
        self.pipeline = None  # LTX2AudioToVideoPipeline once loaded
        self.stats = LTX2Stats()
        self.last_output = None  # A2VResult of the last segment (inspection only)
        self._info = None
        self._identity: str | None = None
        self._text_identity: str | None = None
        self._prompt_cache = None
        self._stage2_adapter: tuple[str, float] | None = None
        self._preflighted: set[tuple[int, int, int, bool]] = set()
        self.speed = None  # ltx2_speed.SpeedState once loaded
        self._cp = None  # ltx2_cp_launch.ContextParallelGroup while context_parallel > 1

    # ------------------------------------------------------------------------------ shape rules
    @classmethod
    def grid_for(cls, options: Any) -> FrameGrid:
        temporal, spatial = vae_compression_from_config(getattr(options, "model", None))
        # Two-stage runs stage 1 at half size, so the output must divide by twice the VAE's ratio.
        two_stage = getattr(options, "stage2", "distilled") != "none"
        return FrameGrid(frame_grid=temporal, spatial_multiple=spatial * (2 if two_stage else 1))

    @classmethod
    def cost_model(cls, options: Any):
        """GPU-seconds per segment from the stage shapes, steps and guidance passes (``generators.ltx2_cost``)."""
        from dataclasses import replace

        from generators.ltx2_cost import LTX2CostModel, LTX2Recipe

        temporal, spatial = vae_compression_from_config(getattr(options, "model", None))
        return LTX2CostModel(replace(LTX2Recipe.from_options(options), temporal=temporal, spatial=spatial))

    @property
    def two_stage(self) -> bool:
        return self.options.stage2 != "none"

    @property
    def distilled_stage1(self) -> bool:
        from generators.ltx2_official import resolved_variant

        return resolved_variant(self.options) == "distilled"

    # ------------------------------------------------------------------------------ the model folder
    def model_info(self):
        """The checked model folder (configs only; no weights are read)."""
        if self._info is None:
            from generators import ltx2_loading as L
            from generators import ltx2_official as O

            if O.is_single_file(self.options.model):
                self._info = L.inspect_official(
                    Path(self.options.model), text_encoder=self.options.text_encoder, upsampler=self.options.upsampler, need_upsampler=self.two_stage
                )
                return self._check_stg_blocks(self._info)
            root = L.resolve_model_dir(self.options.model)
            upsampler = None
            if self.options.upsampler:
                upsampler = L.resolve_model_dir(self.options.upsampler, what="generator.upsampler")
            elif self.two_stage:
                upsampler = L.default_upsampler_dir(root)
            self._info = self._check_stg_blocks(L.inspect_model(root, upsampler=upsampler if self.two_stage else None, need_upsampler=self.two_stage))
        return self._info

    def _check_stg_blocks(self, info):
        layers = info.transformer_layers
        bad = [b for b in self.options.stg_blocks if not 0 <= b < layers]
        if bad and self.options.stg_scale > 0 and not self.distilled_stage1:
            raise GeneratorError(f"generator.stg_blocks {bad} are out of range for this {layers}-block transformer; use blocks 0…{layers - 1} (LTX-2.3: [28])")
        return info

    def _option_fingerprint(self) -> dict:
        o = self.options
        keys = (
            "dtype", "stage2", "stage1_steps", "guidance_scale", "stg_scale", "stg_blocks", "guidance_rescale",
            "modality_scale", "image_crf", "vae_tiling", "chaining", "identity_anchor_strength",
            "model_variant", "stage2_lora_scale", "fp8_storage", "reference_release",
        )  # fmt: skip
        fp = {k: getattr(o, k, None) for k in keys}
        from generators.ltx2_official import resolved_variant

        # "auto" counts as what it resolves to, so it shares cache entries with the explicit setting (and older runs' "dev").
        fp["model_variant"] = resolved_variant(o)
        # Speed options join the identity only when set, so the caches of runs without them stay valid.
        from generators.ltx2_speed import SPEED_DEFAULTS

        for key, default in SPEED_DEFAULTS.items():
            if getattr(o, key, default) != default:
                fp[key] = getattr(o, key)
        lora = getattr(o, "stage2_lora", None)
        if lora and self.two_stage:
            from generators.ltx2_loading import file_fingerprint

            path = Path(lora).expanduser()
            fp["stage2_lora"] = file_fingerprint(path) if path.is_file() else str(lora)
        return fp

    def model_identity(self) -> str:
        """``ltx2:<sha256>`` of the model folder's content identity and every option that changes the frames."""
        if self._identity is None:
            from generators.ltx2_loading import component_fingerprint, fingerprint_digest

            info = self.model_info()
            parts = [component_fingerprint(c) for _, c in sorted(info.components.items())]
            if info.upsampler is not None:
                parts.append(component_fingerprint(info.upsampler))
            self._identity = "ltx2:" + fingerprint_digest({"pipeline": PIPELINE_VERSION, "components": parts, "options": self._option_fingerprint()})
        return self._identity

    def text_identity(self) -> str:
        """Identity of what turns a prompt into embeddings (tokenizer, Gemma, connectors, dtype): the prompt cache key."""
        if self._text_identity is None:
            from generators.ltx2_loading import component_fingerprint, fingerprint_digest
            from generators.ltx2_text import MAX_SEQUENCE_LENGTH

            info = self.model_info()
            parts = [component_fingerprint(info[name]) for name in ("tokenizer", "text_encoder", "connectors")]
            self._text_identity = "ltx2-text:" + fingerprint_digest({"components": parts, "dtype": self.options.dtype, "max_len": MAX_SEQUENCE_LENGTH})
        return self._text_identity

    # ------------------------------------------------------------------------------ lifecycle
    def load(self) -> None:
        """Check the device and the folder, then load the generation components once (idempotent).

        With ``context_parallel`` N > 1 the N-1 worker processes start first and load the same model beside this one.
        """
        cp_world = int(getattr(self.options, "context_parallel", 1) or 1)
        if self.pipeline is not None and (cp_world == 1 or self._cp is not None):
            return
        from generators.ltx2_speed import check_speed_options

        check_speed_options(self.options)  # before anything loads or any worker starts
        if cp_world > 1:
            from generators.ltx2_cp_launch import ContextParallelGroup

            self._cp = ContextParallelGroup(self.options, cp_world)
            try:
                self._cp.start()
                self._load_pipeline()
                self._cp.attach(self.pipeline)
            except BaseException:
                self._cp.close()
                self._cp = None
                raise
            return
        self._load_pipeline()

    def _load_pipeline(self) -> None:
        if self.pipeline is not None:
            return
        from generators import ltx2_loading as L

        from generators.ltx2_speed import apply_speed_options

        o = self.options
        L.check_device(o.device)
        info = self.model_info()
        if str(o.device).startswith("cuda"):
            free, _total = L.cuda_memory(o.device)
            pbytes = L.DTYPE_BYTES[o.dtype]
            weights = L.estimate_memory(
                info, width=0, height=0, num_frames=1, dtype=o.dtype, offload=o.offload, fp8_storage=getattr(o, "fp8_storage", False),
                two_stage=self.two_stage, spatial=32, temporal=8,
            ).weights_bytes  # fmt: skip
            if weights + L.RUNTIME_OVERHEAD_BYTES > free:
                hint = "set generator.offload: sequential" if o.offload != "sequential" else "set generator.fp8_storage: true"
                raise GeneratorError(
                    f"not enough GPU memory to hold the model with offload: {o.offload}: its weights need {weights / L.GiB:.1f} GiB "
                    f"({info['transformer'].num_parameters / 1e9:.1f} B transformer parameters at {pbytes} bytes), "
                    f"{o.device} has {free / L.GiB:.1f} GiB free; {hint}"
                )
        direct = str(o.device).startswith("cuda") and o.offload == "none" and not getattr(o, "fp8_storage", False)
        pipe = L.build_pipeline(info, dtype=o.dtype, two_stage=self.two_stage, load_device=o.device if direct else None)
        lora = getattr(o, "stage2_lora", None)
        if lora and self.two_stage:
            self._stage2_adapter = L.load_stage2_lora(pipe, lora, getattr(o, "stage2_lora_scale", 1.0))
        elif self.two_stage and not self.distilled_stage1:
            log.warning(
                "stage 2 runs the dev model with distilled sigmas but no distilled LoRA; set generator.stage2_lora to "
                "ltx-2.3-22b-distilled-lora-384.safetensors for LTX's intended quality"
            )
        pipe.reference_release = getattr(o, "reference_release", pipe.reference_release)
        L.place_pipeline(pipe, device=o.device, offload=o.offload, fp8_storage=getattr(o, "fp8_storage", False), dtype=o.dtype)
        self.speed = apply_speed_options(pipe, o, stage2_adapter=self._stage2_adapter)
        pipe.stage2_tiling = Stage2Tiling.from_options(o)
        if self.speed.fused_lora is not None:
            self._stage2_adapter = None  # stage 2 swaps in the fused weights instead of switching PEFT's adapter on
        self.pipeline = pipe
        self.stats.model_loads += 1

    def close(self) -> None:
        import gc

        if self._cp is not None:
            self._cp.close()
            self._cp = None
        self.pipeline = None
        self.last_output = None
        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except Exception:  # pragma: no cover
            pass

    def preflight(self, width: int, height: int, num_frames: int) -> None:
        """Fail now, with the fix, if a segment of this shape cannot run (grid, GPU memory). Cheap; safe to repeat."""
        key = (width, height, num_frames, self.options.identity_anchor_strength > 0)
        if key in self._preflighted:
            return
        grid = self.grid_for(self.options)
        if not grid.is_valid_num_frames(num_frames):
            raise GeneratorError(f"num_frames must be {grid.frame_grid}k+1 (k ≥ 1) for this model, got {num_frames}")
        if width % grid.spatial_multiple or height % grid.spatial_multiple:
            mode = "two-stage (stage2: distilled)" if self.two_stage else "one-stage"
            raise GeneratorError(
                f"{mode} generation needs width and height divisible by {grid.spatial_multiple}, got {width}×{height}; "
                f"the plan should round the generation size up (e.g. {-(-width // grid.spatial_multiple) * grid.spatial_multiple}×"
                f"{-(-height // grid.spatial_multiple) * grid.spatial_multiple})"
            )
        o = self.options
        if str(o.device).startswith("cuda"):
            from generators import ltx2_loading as L

            L.check_device(o.device)
            free, _total = L.cuda_memory(o.device)
            if self.pipeline is not None:
                # Weights are already resident: what matters is the room left for activations and the decode.
                import torch

                free += torch.cuda.memory_allocated(torch.device(o.device)) if o.offload == "none" else 0
            L.check_fits(
                self.model_info(), free_bytes=free, width=width, height=height, num_frames=num_frames, dtype=o.dtype,
                offload=o.offload, fp8_storage=getattr(o, "fp8_storage", False), two_stage=self.two_stage,
                spatial=grid.spatial_multiple // (2 if self.two_stage else 1), temporal=grid.frame_grid,
                identity_anchor=o.identity_anchor_strength > 0, device_name=str(o.device),
            )  # fmt: skip
        self._preflighted.add(key)

    # ------------------------------------------------------------------------------ prompts
    def _cache(self):
        if self._prompt_cache is None:
            from generators.ltx2_text import PromptEmbeddingCache

            folder = Path(self.cache_dir) / PROMPT_CACHE_DIR if self.cache_dir is not None else None
            self._prompt_cache = PromptEmbeddingCache(folder, self.text_identity())
        return self._prompt_cache

    def encode_prompts(self, prompts: list[str]) -> None:
        """Encode each distinct prompt not yet cached (memory or disk); Gemma is loaded only if one is missing."""
        cache = self._cache()
        missing = [p for p in dict.fromkeys(prompts) if cache.get(p) is None]
        if not missing:
            return
        from generators import ltx2_loading as L
        from generators.ltx2_text import encode_prompt

        self.load()
        pipe, o = self.pipeline, self.options
        if pipe.text_encoder is None:
            L.load_text_stage(pipe, self.model_info(), dtype=o.dtype, device=o.device, offload=o.offload)
            self.stats.text_stage_loads += 1
        for prompt in missing:
            cache.put(prompt, encode_prompt(pipe, prompt, device=pipe.execution_device, dtype=L.torch_dtype(o.dtype)))
            self.stats.prompts_encoded += 1
        if not self._keep_text_stage():
            L.release_text_stage(pipe)

    def _keep_text_stage(self) -> bool:
        from generators import ltx2_loading as L

        o = self.options
        if o.offload != "none":
            return False
        info = self.model_info()
        text_bytes = (info["text_encoder"].num_parameters + info["connectors"].num_parameters) * L.DTYPE_BYTES[o.dtype]
        if str(o.device).startswith("cuda"):
            _free, total = L.cuda_memory(o.device)
        else:
            total = L.host_memory_available() + text_bytes
        return text_bytes <= KEEP_TEXT_STAGE_MAX_SHARE * total

    def _embeddings(self, prompt: str):
        emb = self._cache().get(prompt)
        if emb is None:
            self.encode_prompts([prompt])
            emb = self._cache().get(prompt)
        return emb

    @property
    def needs_negative_prompt(self) -> bool:
        return self.options.guidance_scale != 1.0 and not self.distilled_stage1

    def guidance(self):
        from generators.ltx2_guidance import VideoGuidance

        o = self.options
        return VideoGuidance(
            guidance_scale=o.guidance_scale,
            stg_scale=o.stg_scale,
            modality_scale=o.modality_scale,
            guidance_rescale=o.guidance_rescale,
            stg_blocks=tuple(o.stg_blocks),
        )

    # ------------------------------------------------------------------------------ one segment
    def denoise(self, job: "PipelineJob", *, on_step=None, clock=None):
        """Run the two stages for ``job`` (``A2VResult``); what a context-parallel worker runs for each segment too."""
        import torch

        from generators import ltx2_loading as L

        pipe = self.pipeline
        L.configure_vae_tiling(pipe, self.options.vae_tiling, width=job.width, height=job.height, num_frames=job.num_frames)
        return pipe(
            prompt_embeds=job.positive,
            negative_prompt_embeds=job.negative,
            audio_latents=job.audio_latents,
            conditions=job.conditions,
            height=job.height,
            width=job.width,
            num_frames=job.num_frames,
            frame_rate=job.fps,
            num_inference_steps=job.steps1,
            guidance=self.guidance(),
            two_stage=self.two_stage,
            distilled_stage1=self.distilled_stage1,
            generator=torch.Generator("cpu").manual_seed(job.seed),
            stage2_adapter=self._stage2_adapter,
            stage2_weights=self.speed.stage2_weights() if self.speed is not None else None,
            on_step=on_step,
            clock=clock,
        )

    def _check_request(self, request: GenerateRequest) -> None:
        where = f"segment {request.segment_index}"
        if request.portrait.dtype != np.uint8 or request.portrait.ndim != 3 or request.portrait.shape[2] != 3:
            raise GeneratorError(f"{where}: portrait must be uint8 [H, W, 3], got {request.portrait.dtype} {list(request.portrait.shape)}")
        if request.context is not None:
            ctx = request.context
            if ctx.dtype != np.uint8 or ctx.ndim != 4 or ctx.shape[0] < 1 or ctx.shape[3] != 3:
                raise GeneratorError(f"{where}: context must be uint8 [C, H, W, 3], got {ctx.dtype} {list(ctx.shape)}")
        if request.audio.ndim not in (1, 2) or request.audio.shape[0] == 0:
            raise GeneratorError(f"{where}: audio must be float [samples, channels] with samples > 0, got {list(request.audio.shape)}")
        if request.tail_frames < 0 or request.tail_start < 0 or request.tail_start + request.tail_frames > request.num_frames:
            raise GeneratorError(
                f"{where}: tail frames [{request.tail_start}, {request.tail_start + request.tail_frames}) fall outside the clip's {request.num_frames} frames"
            )

    def generate(self, request: GenerateRequest, progress: ProgressFn | None = None) -> GenerateResult:
        import time

        from generators import ltx2_loading as L
        from concurrent.futures import ThreadPoolExecutor

        from generators.ltx2_pipeline import StageClock, rgb_to_ycbcr_planes
        from generators.ltx2_speed import drop_all_ones_mask, needs_mask_free
        from stitchers.clip_io import BackgroundClipWriter

        started = time.perf_counter()
        self._check_request(request)
        self.load()
        self.preflight(request.width, request.height, request.num_frames)
        pipe, o = self.pipeline, self.options
        clock = StageClock(pipe.execution_device)
        fps = float(Fraction(request.fps))

        with clock("text_encode"):
            positive = self._embeddings(request.prompt)
            negative = self._embeddings(request.negative_prompt) if self.needs_negative_prompt else None
        if needs_mask_free(getattr(o, "attention", "auto")):
            why = f"generator.attention: {o.attention}"
            positive = drop_all_ones_mask(positive, why)
            negative = None if negative is None else drop_all_ones_mask(negative, why)
        conditions = build_conditions(request, image_crf=o.image_crf, temporal=pipe.vae_temporal_compression_ratio)
        with clock("condition_encode"):
            audio_latents = pipe.encode_audio(request.audio, request.sample_rate_hz, request.num_frames, fps)
        job = PipelineJob(
            positive=positive, negative=negative, audio_latents=audio_latents, conditions=conditions, height=request.height,
            width=request.width, num_frames=request.num_frames, fps=fps, steps1=8 if self.distilled_stage1 else o.stage1_steps,
            seed=int(request.seed), segment_index=request.segment_index,
        )  # fmt: skip

        total = job.steps1 + (3 if self.two_stage else 0) + 2
        done = 0

        def on_step(stage: str, _index: int) -> None:
            nonlocal done
            done += 1
            if progress is not None:
                progress(done, total, stage)

        if self._cp is not None:
            # Every worker runs the same job on its GPU; only this process goes on to decode and write.
            try:
                result = self._cp.run(job, lambda: self.denoise(job, on_step=on_step, clock=clock))
            except BaseException:
                # The group shut itself down; the next segment (or run) starts a fresh one.
                self._cp = None
                self.pipeline.context_parallel = None
                raise
        else:
            result = self.denoise(job, on_step=on_step, clock=clock)
        self.last_output = result
        if o.offload == "model":
            pipe.maybe_free_model_hooks()  # the transformer leaves the GPU before the decode

        out_dir = Path(request.out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        clip_path = out_dir / CLIP_NAME
        tail_path = out_dir / TAIL_NAME if request.tail_frames > 0 else None
        # The GPU decodes chunk k+1 while a worker thread copies chunk k to the host and encodes it; the colour
        # conversion runs on the GPU, the tail is copied and saved on a third thread as soon as it is decoded.
        tail_lo, tail_hi = request.tail_start, request.tail_start + request.tail_frames
        tail: list = []  # host-copy functions (see _HostCopier), called on the saver thread
        decoded = 0
        to_host = _HostCopier(pipe.execution_device)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ltx2-tail") as saver:
            tail_saved = None
            with BackgroundClipWriter(clip_path, request.width, request.height, Fraction(request.fps), max_items=3) as sink:
                with clock("decode"):
                    for chunk in pipe.iter_decode(
                        result.latents, tile_latent_frames=L.DECODE_TILE_LATENT_FRAMES, stride_latent_frames=L.DECODE_STRIDE_LATENT_FRAMES
                    ):
                        if chunk.shape[1:] != (request.height, request.width, 3):
                            raise GeneratorError(f"segment {request.segment_index}: decoded frames are {list(chunk.shape[1:])}, expected [{request.height}, {request.width}, 3]")
                        lo, hi = max(tail_lo - decoded, 0), min(tail_hi - decoded, chunk.shape[0])
                        if lo < hi:
                            tail.append(to_host(chunk[lo:hi]))
                        decoded += chunk.shape[0]
                        if tail_path is not None and tail_saved is None and decoded >= tail_hi:
                            tail_saved = saver.submit(_save_npy, tail_path, tail)
                        sink.put_ycbcr(to_host(rgb_to_ycbcr_planes(chunk)))
                on_step("decode", 0)
                write_started = time.perf_counter()  # "write": what encoding adds after the last chunk is decoded, + the tail
            if tail_saved is not None:
                tail_saved.result()
        clock.seconds["write"] = time.perf_counter() - write_started
        if sink.frames_written != request.num_frames:
            raise GeneratorError(f"segment {request.segment_index}: decoded {sink.frames_written} frames, expected {request.num_frames}")
        on_step("write", 0)

        timings = dict(clock.seconds)
        timings["total"] = time.perf_counter() - started
        self.stats.segments += 1
        return GenerateResult(clip_path=clip_path, tail_path=tail_path, num_frames=request.num_frames, timings_s=timings)
