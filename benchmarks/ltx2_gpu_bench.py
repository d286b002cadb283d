"""GPU benchmark of the ltx2 generator with full-size LTX-2.3 components and random bf16 weights.

Random weights of the real shapes cost what the real ones cost (same matrix
products, same attention, same bytes moved), so this measures the production
code path — ``LTX2Generator`` loading a diffusers folder — without the
checkpoints, which cannot be downloaded here.

Sections (``--sections``; all by default):

- ``build``     write the random LTX-2.3 folder (transformer on disk; Gemma-3 +
                connectors on tmpfs when it has room).
- ``run``       a 3-segment tail-chained run at 704×1280, 481 frames each (20 s at
                24 fps), per-segment wall time split into stages, peak VRAM, model
                time (transformer forwards + VAE/upsampler passes, CUDA-synchronised)
                and the orchestration overhead = wall − model time.
- ``naive``     the same 3 segments through a naive loop that builds the pipeline
                per segment (fresh generator, no prompt cache), in the same process.
- ``big``       one 1088×1920, 481-frame segment.
- ``lowmem``    one 704×1280 segment with ``offload: sequential`` + ``fp8_storage``.
- ``plan``      the bundled 3-minute explainer's plan at 704×1280 and 1088×1920, distilled and dev,
                priced from per-pass times measured at each of its segment lengths
                (``benchmarks/ltx2_bench_plan.py``; not in the default sections).
- ``options``   each speed option (fp8 linears, compiled blocks, attention kernels, fused LoRA) against
                today's bf16 path in the same run: pass-time ratios, latent error, PSNR
                (``benchmarks/ltx2_bench_options.py``; not in the default sections).

Denoising steps are reduced (``--stage1-steps``, default 1 guided step = 4
transformer passes; stage 2 always runs its 3 distilled steps), and the full
30-step dev and 8-step distilled costs are extrapolated from the measured
per-forward times; every extrapolated figure is labelled as such.

``--tiny`` runs every section on the tiny CPU model (a smoke test of this script).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import sys
import time
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

GiB = 1024**3

# Full-size LTX-2.3 component configs (diffusers scripts/convert_ltx2_to_diffusers.py, version "2.3").
TRANSFORMER = dict(
    in_channels=128, out_channels=128, patch_size=1, patch_size_t=1, num_attention_heads=32, attention_head_dim=128,
    cross_attention_dim=4096, vae_scale_factors=(8, 32, 32), pos_embed_max_pos=20, base_height=2048, base_width=2048,
    gated_attn=True, cross_attn_mod=True, audio_in_channels=128, audio_out_channels=128, audio_patch_size=1,
    audio_patch_size_t=1, audio_num_attention_heads=32, audio_attention_head_dim=64, audio_cross_attention_dim=2048,
    audio_scale_factor=4, audio_pos_embed_max_pos=20, audio_sampling_rate=16000, audio_hop_length=160,
    audio_gated_attn=True, audio_cross_attn_mod=True, num_layers=48, activation_fn="gelu-approximate",
    qk_norm="rms_norm_across_heads", norm_elementwise_affine=False, norm_eps=1e-6, caption_channels=3840,
    attention_bias=True, attention_out_bias=True, rope_theta=10000.0, rope_double_precision=True, causal_offset=1,
    timestep_scale_multiplier=1000, cross_attn_timestep_scale_multiplier=1000, rope_type="split",
    use_prompt_embeddings=False, perturbed_attn=True,
)  # fmt: skip
CONNECTORS = dict(
    caption_channels=3840, text_proj_in_factor=49, video_connector_num_attention_heads=32,
    video_connector_attention_head_dim=128, video_connector_num_layers=8, video_connector_num_learnable_registers=128,
    video_gated_attn=True, audio_connector_num_attention_heads=32, audio_connector_attention_head_dim=64,
    audio_connector_num_layers=8, audio_connector_num_learnable_registers=128, audio_gated_attn=True,
    connector_rope_base_seq_len=4096, rope_theta=10000.0, rope_double_precision=True, causal_temporal_positioning=False,
    rope_type="split", per_modality_projections=True, video_hidden_dim=4096, audio_hidden_dim=2048, proj_bias=True,
)  # fmt: skip
VIDEO_VAE = dict(
    in_channels=3, out_channels=3, latent_channels=128, block_out_channels=(256, 512, 1024, 1024),
    down_block_types=("LTX2VideoDownBlock3D",) * 4, decoder_block_out_channels=(256, 512, 512, 1024),
    layers_per_block=(4, 6, 4, 2, 2), decoder_layers_per_block=(4, 6, 4, 2, 2),
    spatio_temporal_scaling=(True, True, True, True), decoder_spatio_temporal_scaling=(True, True, True, True),
    decoder_inject_noise=(False,) * 5, downsample_type=("spatial", "temporal", "spatiotemporal", "spatiotemporal"),
    upsample_type=("spatiotemporal", "spatiotemporal", "temporal", "spatial"), upsample_residual=(False,) * 4,
    upsample_factor=(2, 2, 1, 2), timestep_conditioning=False, patch_size=4, patch_size_t=1, resnet_norm_eps=1e-6,
    encoder_causal=True, decoder_causal=False, encoder_spatial_padding_mode="zeros", decoder_spatial_padding_mode="zeros",
    spatial_compression_ratio=32, temporal_compression_ratio=8,
)  # fmt: skip
AUDIO_VAE = dict(
    base_channels=128, output_channels=2, ch_mult=(1, 2, 4), num_res_blocks=2, attn_resolutions=None, in_channels=2,
    resolution=256, latent_channels=8, norm_type="pixel", causality_axis="height", dropout=0.0,
    mid_block_add_attention=False, sample_rate=16000, mel_hop_length=160, is_causal=True, mel_bins=64, double_z=True,
)  # fmt: skip
UPSAMPLER = dict(
    in_channels=128, mid_channels=1024, num_blocks_per_stage=4, dims=3, spatial_upsample=True, temporal_upsample=False,
    rational_spatial_scale=2.0, use_rational_resampler=False,
)  # fmt: skip
# Gemma-3 12B (text) with its SigLIP-so400m vision tower, as in gemma-3-12b-it.
GEMMA3 = dict(
    text_config=dict(
        vocab_size=262208, hidden_size=3840, intermediate_size=15360, num_hidden_layers=48, num_attention_heads=16,
        num_key_value_heads=8, head_dim=256, sliding_window=1024, max_position_embeddings=131072, rope_theta=1000000.0,
        query_pre_attn_scalar=256,
    ),
    vision_config=dict(hidden_size=1152, intermediate_size=4304, num_hidden_layers=27, num_attention_heads=16, image_size=896, patch_size=14),
    mm_tokens_per_image=256,
)  # fmt: skip
SCHEDULER = dict(
    num_train_timesteps=1000, shift=1.0, use_dynamic_shifting=True, base_shift=0.95, max_shift=2.05,
    base_image_seq_len=1024, max_image_seq_len=4096, shift_terminal=0.1,
)  # fmt: skip

PROMPTS = [
    "A woman talking to the camera in a warm office, natural head movement, soft window light.",
    "A woman talking to the camera, she smiles and nods while she speaks calmly.",
    "A woman talking to the camera in a warm office, natural head movement, soft window light.",
]
NEGATIVE = "blurry, distorted face, extra limbs, text, watermark, low quality"


def log(*parts) -> None:
    print(*parts, flush=True)


# ----------------------------------------------------------------------------------------------
# the random model folder
# ----------------------------------------------------------------------------------------------

def _save_random(factory, folder: Path, *, device: str, dtype) -> int:
    import torch

    torch.manual_seed(0)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            module = factory()
    finally:
        torch.set_default_dtype(previous)
    module = module.to(dtype)
    params = sum(p.numel() for p in module.parameters())
    module.save_pretrained(folder, max_shard_size="20GB")
    del module
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
    return params


def build_full_model(model_dir: Path, text_dir: Path | None, *, device: str) -> dict:
    """Write LTX-2.3-shaped random bf16 weights in diffusers layout; Gemma/connectors/tokenizer may live elsewhere (symlinked)."""
    import torch
    from diffusers import AutoencoderKLLTX2Audio, AutoencoderKLLTX2Video, FlowMatchEulerDiscreteScheduler, LTX2VideoTransformer3DModel
    from diffusers.pipelines.ltx2 import LTX2LatentUpsamplerModel, LTX2TextConnectors
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration

    from tests.generators.tiny_ltx2 import _tokenizer

    bf16 = torch.bfloat16
    model_dir.mkdir(parents=True, exist_ok=True)
    text_root = text_dir or model_dir
    text_root.mkdir(parents=True, exist_ok=True)
    counts = {}
    started = time.perf_counter()
    counts["transformer"] = _save_random(lambda: LTX2VideoTransformer3DModel(**TRANSFORMER), model_dir / "transformer", device=device, dtype=bf16)
    counts["vae"] = _save_random(lambda: AutoencoderKLLTX2Video(**VIDEO_VAE), model_dir / "vae", device=device, dtype=bf16)
    counts["audio_vae"] = _save_random(lambda: AutoencoderKLLTX2Audio(**AUDIO_VAE), model_dir / "audio_vae", device=device, dtype=bf16)
    counts["latent_upsampler"] = _save_random(lambda: LTX2LatentUpsamplerModel(**UPSAMPLER), model_dir / "latent_upsampler", device=device, dtype=bf16)
    counts["connectors"] = _save_random(lambda: LTX2TextConnectors(**CONNECTORS), text_root / "connectors", device=device, dtype=bf16)
    counts["text_encoder"] = _save_random(
        lambda: Gemma3ForConditionalGeneration(Gemma3Config(**GEMMA3)), text_root / "text_encoder", device=device, dtype=bf16
    )
    _tokenizer(text_root / "tokenizer")
    FlowMatchEulerDiscreteScheduler(**SCHEDULER).save_pretrained(model_dir / "scheduler")
    if text_dir is not None:
        for name in ("connectors", "text_encoder", "tokenizer"):
            link = model_dir / name
            if link.is_symlink() or link.exists():
                link.unlink() if link.is_symlink() else shutil.rmtree(link)
            link.symlink_to(text_root / name, target_is_directory=True)
    (model_dir / "model_index.json").write_text(json.dumps({"_class_name": "LTX2Pipeline", "_diffusers_version": "0.42.1"}))
    counts["seconds"] = time.perf_counter() - started
    return counts


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


# ----------------------------------------------------------------------------------------------
# timing of model work
# ----------------------------------------------------------------------------------------------

class ModelTimer:
    """CUDA-synchronised time inside transformer forwards and VAE / upsampler passes.

    It synchronises the calling thread's current stream (where the model runs), not the whole device:
    a device-wide sync would also wait for the clip writer's host copies on their side stream and count
    them as model time (and stall the decode on them, which the product never does).
    """

    def __init__(self, cuda: bool):
        self.cuda = cuda
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.durations: dict[str, list[float]] = {}  # each call's seconds, in call order
        self._patched: list[tuple[object, str, object]] = []

    def _sync(self):
        if self.cuda:
            import torch

            torch.cuda.current_stream().synchronize()

    def wrap(self, obj, attr: str, label: str) -> None:
        original = getattr(obj, attr)

        def timed(*args, **kwargs):
            self._sync()
            t = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self._sync()
                seconds = time.perf_counter() - t
                self.seconds[label] = self.seconds.get(label, 0.0) + seconds
                self.calls[label] = self.calls.get(label, 0) + 1
                self.durations.setdefault(label, []).append(seconds)

        setattr(obj, attr, timed)
        self._patched.append((obj, attr, original))

    def attach(self, pipe) -> None:
        self.wrap(pipe.transformer, "forward", "transformer")
        self.wrap(pipe.vae, "encode", "vae_encode")
        self.wrap(pipe.vae, "decode", "vae_decode")
        self.wrap(pipe.audio_vae, "encode", "audio_vae_encode")
        if pipe.latent_upsampler is not None:
            self.wrap(pipe.latent_upsampler, "forward", "upsampler")

    def detach(self) -> None:
        for obj, attr, original in reversed(self._patched):
            setattr(obj, attr, original)
        self._patched.clear()

    def reset(self) -> None:
        self.seconds.clear()
        self.calls.clear()
        self.durations.clear()

    @property
    def total(self) -> float:
        return sum(self.seconds.values())


# ----------------------------------------------------------------------------------------------
# requests
# ----------------------------------------------------------------------------------------------

def make_audio(num_frames: int, fps: Fraction, sr: int, seed: int) -> np.ndarray:
    n = int(round(num_frames / fps * sr))
    t = np.arange(n) / sr
    rng = np.random.RandomState(seed)
    envelope = (np.sin(2 * np.pi * 3.1 * t + seed) > -0.2).astype(np.float32)
    voice = np.sin(2 * np.pi * (140 + 30 * rng.rand()) * t) + 0.3 * rng.randn(n)
    return (0.2 * envelope * voice).astype(np.float32)[:, None]


def make_portrait(width: int, height: int) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width]
    img = np.zeros((height, width, 3), dtype=np.uint8)
    img[..., 0] = (60 + 80 * yy / height).astype(np.uint8)
    img[..., 1] = 70
    img[..., 2] = (90 + 60 * xx / width).astype(np.uint8)
    cy, cx, r = height * 0.4, width * 0.5, min(width, height) * 0.22
    face = (yy - cy) ** 2 / 1.4 + (xx - cx) ** 2 < r * r
    img[face] = (205, 165, 135)
    return img


def make_request(index: int, *, width: int, height: int, num_frames: int, fps: Fraction, context, out_dir: Path, context_frames: int):
    from generators.base import GenerateRequest

    sr = 48000
    return GenerateRequest(
        segment_index=index, num_frames=num_frames, width=width, height=height, fps=fps,
        audio=make_audio(num_frames, fps, sr, index), sample_rate_hz=sr, prompt=PROMPTS[index % len(PROMPTS)],
        negative_prompt=NEGATIVE, seed=1000 + index, portrait=make_portrait(width, height), chaining="tail",
        context=context, tail_start=num_frames - context_frames, tail_frames=context_frames, out_dir=out_dir,
    )  # fmt: skip


# ----------------------------------------------------------------------------------------------
# measurements
# ----------------------------------------------------------------------------------------------

@contextmanager
def peak_memory(cuda: bool, into: dict):
    import torch

    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    try:
        yield
    finally:
        if cuda:
            torch.cuda.synchronize()
            into["peak_allocated_gib"] = torch.cuda.max_memory_allocated() / GiB
            into["peak_reserved_gib"] = torch.cuda.max_memory_reserved() / GiB


def run_segments(gen, *, count: int, width: int, height: int, num_frames: int, fps: Fraction, context_frames: int, work: Path, cuda: bool, label: str) -> list[dict]:
    """Generate ``count`` tail-chained segments with one generator; per-segment figures."""
    timer = ModelTimer(cuda)
    rows = []
    context = None
    gen.load()
    timer.attach(gen.pipeline)
    try:
        for index in range(count):
            req = make_request(index, width=width, height=height, num_frames=num_frames, fps=fps, context=context,
                               out_dir=work / f"{label}-seg{index}", context_frames=context_frames)  # fmt: skip
            timer.reset()
            row: dict = {"segment": index}
            with peak_memory(cuda, row):
                t = time.perf_counter()
                res = gen.generate(req)
                row["wall_s"] = time.perf_counter() - t
            row["stages_s"] = {k: round(v, 3) for k, v in res.timings_s.items()}
            row["model_s"] = dict(timer.seconds)
            row["model_calls"] = dict(timer.calls)
            row["model_total_s"] = timer.total
            row["overhead_s"] = row["wall_s"] - timer.total
            row["overhead_pct"] = 100.0 * row["overhead_s"] / row["wall_s"]
            rows.append(row)
            context = np.load(res.tail_path)
            log(f"  [{label}] segment {index}: wall {row['wall_s']:.2f} s, model {timer.total:.2f} s, "
                f"overhead {row['overhead_pct']:.2f} %, peak {row.get('peak_allocated_gib', 0):.1f} GiB, stages {row['stages_s']}")  # fmt: skip
    finally:
        timer.detach()
    return rows


def naive_loop(make_options, *, count: int, width: int, height: int, num_frames: int, fps: Fraction, context_frames: int, work: Path, cuda: bool) -> list[dict]:
    """What a script that builds the pipeline per segment costs: load everything, encode prompts, generate, free."""
    import torch

    from generators.ltx2 import LTX2Generator

    rows = []
    context = None
    for index in range(count):
        row: dict = {"segment": index}
        t = time.perf_counter()
        gen = LTX2Generator(make_options(), cache_dir=None)
        gen.load()
        row["load_s"] = time.perf_counter() - t
        req = make_request(index, width=width, height=height, num_frames=num_frames, fps=fps, context=context,
                           out_dir=work / f"naive-seg{index}", context_frames=context_frames)  # fmt: skip
        res = gen.generate(req)
        row["stages_s"] = {k: round(v, 3) for k, v in res.timings_s.items()}
        context = np.load(res.tail_path)
        gen.close()
        del gen
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()
        row["wall_s"] = time.perf_counter() - t
        rows.append(row)
        log(f"  [naive] segment {index}: wall {row['wall_s']:.2f} s (load {row['load_s']:.2f} s), stages {row['stages_s']}")
    return rows


def writer_fps(width: int, height: int, frames: int, work: Path) -> dict:
    """ClipWriter throughput (frames/s) on two kinds of content, frames made before the clock starts.

    ``smooth``: a face that moves, no grain (a real talking head is close to this); ``noise``: uniform random
    pixels, what the random-weight model decodes to, the worst case for H.264's entropy coder. Both are fed as
    the generator feeds them (Y'CbCr planes converted beforehand, ``write_ycbcr``); ``noise_rgb`` adds the
    RGB path's libswscale conversion on the writer's thread, ``noise_veryfast`` is the previous intermediate
    (x264 ``veryfast``, PyAV's default slice threads), for comparison.
    """
    from stitchers.clip_io import ClipWriter

    base = make_portrait(width, height)
    yy, xx = np.mgrid[0:height, 0:width]
    smooth = []
    for i in range(frames):
        frame = base.copy()
        cy, cx = height * (0.62 + 0.01 * np.sin(i / 5)), width * (0.5 + 0.02 * np.sin(i / 7))
        frame[(yy - cy) ** 2 / (0.3 + 0.7 * abs(np.sin(i / 2))) + (xx - cx) ** 2 / 4 < (width * 0.03) ** 2] = (90, 30, 40)
        smooth.append(frame)
    rng = np.random.RandomState(0)
    noise = [rng.randint(0, 256, base.shape).astype(np.uint8) for _ in range(frames)]
    to_planes = lambda clip: [_ycbcr_planes(f) for f in clip]  # noqa: E731
    rates = {}
    for name, clip, kind, options in (
        ("smooth", to_planes(smooth), "ycbcr", {}),
        ("noise", to_planes(noise), "ycbcr", {}),
        ("noise_rgb", noise, "rgb", {}),
        ("noise_veryfast", noise, "rgb", {"preset": "veryfast", "thread_type": "SLICE"}),
    ):
        thread_type = options.pop("thread_type", None)
        start = time.perf_counter()
        with ClipWriter(work / f"writer-{name}.mp4", width, height, Fraction(24), **options) as writer:
            if thread_type:
                writer._stream.codec_context.thread_type = thread_type  # the old setting, for comparison only
            for frame in clip:
                writer.write_ycbcr(frame) if kind == "ycbcr" else writer.write(frame)
        rates[name] = frames / (time.perf_counter() - start)
    return rates


def _ycbcr_planes(rgb: np.ndarray) -> np.ndarray:
    import torch

    from generators.ltx2_pipeline import rgb_to_ycbcr_planes

    return rgb_to_ycbcr_planes(torch.from_numpy(rgb)[None])[0].numpy()


def extrapolate(row: dict, *, passes_per_step: int, measured_stage1_steps: int, stage1_forwards: int) -> dict:
    """Scale stage 1 from the measured per-forward time to 30 guided dev steps and to 8 unguided distilled steps."""
    s1 = row["stages_s"]["stage1"]
    per_forward = s1 / max(1, stage1_forwards)
    rest = row["wall_s"] - s1
    return {
        "stage1_per_forward_s": per_forward,
        "dev30_wall_s": rest + per_forward * 30 * passes_per_step,
        "distilled8_wall_s": rest + per_forward * 8,
    }


# ----------------------------------------------------------------------------------------------
# the report
# ----------------------------------------------------------------------------------------------

def summarize(figures: dict, fps: float = 24.0) -> str:
    """The human-readable results from the merged JSON of one or more runs (see benchmarks/results/)."""
    out: list[str] = []
    say = out.append
    say(f"ltx2 generator on {figures.get('device')} (torch {figures.get('torch')}, diffusers {figures.get('diffusers')}), "
        f"random bf16 weights of LTX-2.3's shapes (transformer 19.0 B, Gemma-3 12.2 B, connectors 3.2 B parameters)")  # fmt: skip
    steps = figures.get("stage1_steps_measured", 1)
    say(f"Measured with stage 1 = {steps} guided step (4 transformer passes: cond, uncond, STG, modality) and stage 2 = the 3 "
        "distilled steps; 'dev30' (30 guided steps) and 'distilled8' (8 unguided steps) walls are EXTRAPOLATED from the "
        "measured per-forward time of stage 1; everything else is measured.")  # fmt: skip
    writer = figures.get("writer_fps", {})

    def segment_block(title: str, row: dict, size: str, frames: int) -> None:
        seconds = frames / fps
        st = row["stages_s"]
        model = row["model_s"]
        decode_gpu = model.get("vae_decode", 0.0)
        say("")
        say(f"{title}: {size}, {frames} frames ({seconds:.2f} s of video)")
        say(f"  wall {row['wall_s']:.1f} s | text encode {st.get('text_encode', 0):.2f} (cached) | conditioning encode "
            f"{st.get('condition_encode', 0):.2f} | stage 1 {st.get('stage1', 0):.2f} | upsample {st.get('upsample', 0):.2f} | "
            f"stage 2 {st.get('stage2', 0):.2f} | VAE decode {st.get('decode', 0):.2f} (GPU {decode_gpu:.2f}, the rest waits on the "
            f"encoder) | write {st.get('write', 0):.2f} (encoder tail after the last chunk)")  # fmt: skip
        say(f"  peak VRAM {row.get('peak_allocated_gib', float('nan')):.1f} GiB allocated "
            f"({row.get('peak_reserved_gib', float('nan')):.1f} GiB reserved by the caching allocator)")  # fmt: skip
        say(f"  GPU-seconds per output second: {row['wall_s'] / seconds:.2f} measured")
        ex = row.get("extrapolated")
        if ex:
            say(f"  stage-1 forward {ex['stage1_per_forward_s']:.2f} s → EXTRAPOLATED wall: dev30 {ex['dev30_wall_s']:.0f} s "
                f"({ex['dev30_wall_s'] / seconds:.1f} GPU-s/s), distilled8 {ex['distilled8_wall_s']:.0f} s "
                f"({ex['distilled8_wall_s'] / seconds:.1f} GPU-s/s)")  # fmt: skip
        if "transformer" in row.get("model_calls", {}) and row["model_calls"]["transformer"] >= 7:
            exposed_write = max(0.0, st.get("decode", 0) - decode_gpu) + st.get("write", 0)
            other = row["wall_s"] - row["model_total_s"] - exposed_write
            say(f"  orchestration overhead = wall − (transformer forwards + VAE/upsampler passes) = {row['overhead_s']:.1f} s "
                f"= {row['overhead_pct']:.1f} %: clip encoding not hidden by the decode {exposed_write:.1f} s, everything else "
                f"{other:.2f} s ({100 * other / row['wall_s']:.1f} %)")  # fmt: skip
            rate = writer.get(size, {})
            if rate:
                smooth_write = frames / rate["smooth"]
                exposed_smooth = max(0.0, smooth_write - decode_gpu)
                for label, wall in (("as measured", row["wall_s"]), ("dev30", (ex or {}).get("dev30_wall_s")), ("distilled8", (ex or {}).get("distilled8_wall_s"))):
                    if wall is None:
                        continue
                    projected = wall - exposed_write + exposed_smooth
                    say(f"    with a real (smooth) picture, which the clip writer encodes at {rate['smooth']:.0f} fps instead of "
                        f"{rate['noise']:.0f} fps for the random model's noise: {label} wall {projected:.0f} s, overhead "
                        f"{100 * (exposed_smooth + other) / projected:.1f} %")  # fmt: skip

    run = figures.get("run")
    if run:
        rows = run["rows"]
        say("")
        say(f"3-segment tail-chained run at {run['size']}: load {run['load_s']:.1f} s once, {len(set(PROMPTS))} distinct prompts + negative "
            f"encoded once {run['encode_prompts_s']:.1f} s (Gemma-3 loaded, used, released), segments "
            + ", ".join(f"{r['wall_s']:.1f}" for r in rows) + " s")  # fmt: skip
        if all("overhead_s" in r for r in rows):
            over = [r["overhead_s"] for r in rows]
            walls = [r["wall_s"] for r in rows]
            say("  orchestration overhead per segment: " + ", ".join(f"{o:.2f} s ({100 * o / w:.1f} %)" for o, w in zip(over, walls))
                + f"; over the whole run {sum(over):.2f} s = {100 * sum(over) / sum(walls):.1f} % (segment 0 carries the one-time "
                "warm-ups: first audio/VAE encodes, first page-locked host buffers)")  # fmt: skip
        segment_block("Per segment (segment 1, warm)", rows[min(1, len(rows) - 1)], run["size"], run["num_frames"])
    big = figures.get("big")
    if big:
        segment_block("Per segment", big["rows"][0], big["size"], big["num_frames"])
    if run and figures.get("naive"):
        naive = figures["naive"]
        ours = run["load_s"] + run["encode_prompts_s"] + run["segments_wall_s"]
        per_rebuild = sum(r["load_s"] + r["stages_s"].get("text_encode", 0) for r in naive["rows"]) / len(naive["rows"])
        say("")
        say(f"3 segments, one run vs a naive loop that builds the pipeline per segment (same process, weights in the page "
            f"cache / tmpfs: the naive loop's best case): ours {ours:.1f} s, naive {naive['total_s']:.1f} s → "
            f"{naive['total_s'] / ours:.2f}× measured (reduced steps)")  # fmt: skip
        ex = [r["extrapolated"]["dev30_wall_s"] for r in rows]
        exd = [r["extrapolated"]["distilled8_wall_s"] for r in rows]
        fixed = run["load_s"] + run["encode_prompts_s"]
        for label, walls in (("dev30", ex), ("distilled8", exd)):
            o = fixed + sum(walls)
            n = sum(walls) + len(walls) * per_rebuild
            say(f"  EXTRAPOLATED {label}: ours {o:.0f} s, naive {n:.0f} s → {n / o:.2f}× "
                f"(the naive loop re-pays {per_rebuild:.1f} s per segment: model load + Gemma load + prompt encoding)")  # fmt: skip
    if figures.get("options", {}).get("rows"):
        from benchmarks.ltx2_bench_options import summarize_options

        out.extend(summarize_options(figures["options"]))
    if figures.get("plan", {}).get("priced"):
        from benchmarks.ltx2_bench_plan import summarize_plan

        out.extend(summarize_plan(figures["plan"]))
    low = figures.get("lowmem")
    if low:
        row = low["rows"][0]
        say("")
        say(f"Memory-saving config (offload: sequential = diffusers group offloading, one transformer block streamed "
            f"ahead on a CUDA stream, + fp8_storage = float8_e4m3fn weights upcast per layer), {low['size']}, {low['num_frames']} frames:")  # fmt: skip
        st = row["stages_s"]
        say(f"  peak {row.get('peak_allocated_gib', float('nan')):.1f} GiB allocated ({row.get('peak_reserved_gib', float('nan')):.1f} GiB "
            f"reserved), load {figures.get('lowmem_load_s', float('nan')):.1f} s, wall {row['wall_s']:.1f} s; stage 1 {st['stage1']:.2f} s, "
            f"stage 2 {st['stage2']:.2f} s")  # fmt: skip
        base = run["rows"][min(1, len(run["rows"]) - 1)]["stages_s"] if run else None
        if base:
            say(f"  cost vs resident bf16: stage-1 forward ×{st['stage1'] / base['stage1']:.2f}, stage-2 forward "
                f"×{st['stage2'] / base['stage2']:.2f} (the 53k-token stage-2 forward hides the weight stream; the 13k-token "
                "stage-1 forward does not)")  # fmt: skip
            ex = row.get("extrapolated")
            if ex:
                say(f"  EXTRAPOLATED: dev30 {ex['dev30_wall_s']:.0f} s, distilled8 {ex['distilled8_wall_s']:.0f} s per 20-s segment")
    if writer:
        say("")
        say("Clip writer (stitchers.clip_io.ClipWriter: libx264 yuv444 CRF 12, ultrafast, frame threads; Y'CbCr converted "
            "beforehand, as the generator does on the GPU), frames/s: " + ", ".join(
            f"{size} smooth {r['smooth']:.0f} / noise {r['noise']:.0f}" for size, r in writer.items()))  # fmt: skip
        for size, r in writer.items():
            if "noise_veryfast" in r:
                say(f"  {size} noise: RGB input (libswscale on the writer thread) {r['noise_rgb']:.0f} fps; the previous "
                    f"intermediate (veryfast, slice threads) {r['noise_veryfast']:.0f} fps")  # fmt: skip
    return "\n".join(out) + "\n"


# ----------------------------------------------------------------------------------------------
# main
# ----------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiny", action="store_true", help="tiny CPU model, small sizes: a smoke test of this script")
    ap.add_argument("--sections", default="build,writer,run,naive,big,lowmem")
    ap.add_argument("--model-dir", type=Path, default=Path(os.environ.get("LTX_BENCH_MODEL", "/tmp/ltx23-random")))
    ap.add_argument("--text-dir", type=Path, default=None, help="where Gemma + connectors go (default: /dev/shm when it has room)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/ltx2-bench-work"))
    ap.add_argument("--out", type=Path, default=None, help="write the JSON figures here")
    ap.add_argument("--stage1-steps", type=int, default=1)
    ap.add_argument("--segments", type=int, default=3)
    ap.add_argument("--num-frames", type=int, default=481)
    ap.add_argument("--plan-max-lengths", type=int, default=6, help="plan section: measure at most this many distinct segment lengths per size (0: all); the rest are interpolated")
    ap.add_argument("--plan-json", type=Path, default=None, help="plan section: take the explainer's plans from this JSON "
                    "(as demo_plans writes them; sizes measured in its order) instead of planning here")
    ap.add_argument("--plan-sizes", default=None, help="plan section: only these sizes, e.g. 704x1280 (default: every size in the plans)")
    ap.add_argument("--plan-options", default=None, help="plan section: measure with this speed option set (a name from --options' list, e.g. fp8+compile)")
    ap.add_argument("--options", default=None, help="options section: which option sets (default all; see benchmarks/ltx2_bench_options.py)")
    ap.add_argument("--options-size", default=None, help="options section: WxH (default 1088x1920)")
    ap.add_argument("--tile-px", type=int, default=None, help="options/plan sections: stage2_tile_px of the *tiles sets (default 1088; tiny: 64)")
    ap.add_argument("--tile-overlap-px", type=int, default=None, help="their stage2_tile_overlap_px (default 64; tiny: 32)")
    ap.add_argument("--options-frames", type=int, default=None, help="options section: frames per segment (default 241)")
    ap.add_argument("--summarize", type=Path, nargs="+", default=None, help="merge these JSON results and print the report")
    args = ap.parse_args(argv)
    if args.summarize:
        merged: dict = {}
        for path in args.summarize:
            merged.update(json.loads(Path(path).read_text()))
        print(summarize(merged), end="")
        return 0
    sections = set(args.sections.split(","))

    import torch

    from generators.ltx2 import LTX2Generator
    from orchestrator.config import LTX2Options

    cuda = torch.cuda.is_available() and not args.tiny
    fps = Fraction(24)
    figures: dict = {"device": torch.cuda.get_device_name() if cuda else "cpu", "torch": torch.__version__, "stage1_steps_measured": args.stage1_steps}
    for package in ("diffusers", "torchao"):
        try:
            figures[package] = __import__(package).__version__
        except Exception:
            pass
    def save() -> None:
        """Write what is measured so far: a run stopped at its time limit keeps its finished sections."""
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(figures, indent=2, default=str))

    work = args.work
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)

    tile_px = (args.tile_px or (64 if args.tiny else 1088), args.tile_overlap_px or (32 if args.tiny else 64))
    if args.tiny:
        from tests.generators.tiny_ltx2 import build_tiny_ltx2

        model_dir = build_tiny_ltx2(work / "tiny-model")
        small = {"width": 32, "height": 48}  # 9:16-ish portrait, as the real sizes
        big = {"width": 40, "height": 64}
        num_frames = 9
        context_frames = 5
        base = dict(model=str(model_dir), device="cpu", dtype="float32", stg_blocks=[1])
    else:
        model_dir = args.model_dir
        # 9:16 portrait generation sizes of the two-stage grid (64 px): 704×1280 and 1088×1920.
        small = {"width": 704, "height": 1280}
        big = {"width": 1088, "height": 1920}
        num_frames = args.num_frames
        context_frames = 25
        base = dict(model=str(model_dir), device="cuda", dtype="bfloat16", stg_blocks=[28])
        if "build" in sections and not (model_dir / "transformer" / "config.json").is_file():
            text_dir = args.text_dir
            if text_dir is None:
                shm = Path("/dev/shm")
                if shm.is_dir() and shutil.disk_usage(shm).free > 36 * GiB:
                    text_dir = shm / "ltx23-random-text"
            figures["disk_free_gib"] = shutil.disk_usage(model_dir.parent if model_dir.parent.exists() else Path("/")).free / GiB
            log(f"building random LTX-2.3 at {model_dir} (text stage in {text_dir or model_dir})")
            figures["build"] = build_full_model(model_dir, text_dir, device="cuda")
            log(f"  built in {figures['build']['seconds']:.1f} s: {figures['build']}")
        figures["model_bytes_gib"] = folder_bytes(model_dir) / GiB + sum(
            folder_bytes(model_dir / n) / GiB for n in ("connectors", "text_encoder", "tokenizer") if (model_dir / n).is_symlink()
        )

    def opts(**kw):
        return LTX2Options(**{**base, "stage1_steps": args.stage1_steps, **kw})

    w, h = small["width"], small["height"]
    passes = 4

    if "run" in sections:
        log(f"run: {args.segments} tail-chained segments at {w}×{h}, {num_frames} frames, stage-1 steps {args.stage1_steps} (guided, {passes} passes)")
        gen = LTX2Generator(opts(), cache_dir=work / "cache")
        t = time.perf_counter()
        gen.load()
        load_s = time.perf_counter() - t
        t = time.perf_counter()
        gen.encode_prompts([*PROMPTS, NEGATIVE])
        encode_s = time.perf_counter() - t
        if cuda:
            figures["resident_after_load_gib"] = torch.cuda.memory_allocated() / GiB
        rows = run_segments(gen, count=args.segments, width=w, height=h, num_frames=num_frames, fps=fps,
                            context_frames=context_frames, work=work, cuda=cuda, label="run")  # fmt: skip
        gen.close()
        del gen
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()
        stage1_forwards = args.stage1_steps * passes
        for row in rows:
            row["extrapolated"] = extrapolate(row, passes_per_step=passes, measured_stage1_steps=args.stage1_steps, stage1_forwards=stage1_forwards)
        figures["run"] = {
            "size": f"{w}x{h}", "num_frames": num_frames, "load_s": load_s, "encode_prompts_s": encode_s,
            "segments_wall_s": sum(r["wall_s"] for r in rows), "rows": rows,
        }  # fmt: skip
        log(f"  load {load_s:.1f} s, prompts {encode_s:.1f} s, {args.segments} segments {figures['run']['segments_wall_s']:.1f} s")
        save()

    if "naive" in sections:
        log("naive: a fresh pipeline per segment")
        t = time.perf_counter()
        rows = naive_loop(opts, count=args.segments, width=w, height=h, num_frames=num_frames, fps=fps, context_frames=context_frames, work=work, cuda=cuda)
        figures["naive"] = {"total_s": time.perf_counter() - t, "rows": rows}
        if "run" in figures:
            ours = figures["run"]["load_s"] + figures["run"]["encode_prompts_s"] + figures["run"]["segments_wall_s"]
            figures["speedup_measured"] = figures["naive"]["total_s"] / ours
            log(f"  naive {figures['naive']['total_s']:.1f} s vs ours {ours:.1f} s: {figures['speedup_measured']:.2f}×")
        save()

    if "big" in sections:
        bw, bh = big["width"], big["height"]
        log(f"big: one segment at {bw}×{bh}, {num_frames} frames")
        gen = LTX2Generator(opts(), cache_dir=work / "cache")
        gen.load()
        gen.encode_prompts([PROMPTS[0], NEGATIVE])
        rows = run_segments(gen, count=1, width=bw, height=bh, num_frames=num_frames, fps=fps, context_frames=context_frames, work=work, cuda=cuda, label="big")
        for row in rows:
            row["extrapolated"] = extrapolate(row, passes_per_step=passes, measured_stage1_steps=args.stage1_steps, stage1_forwards=args.stage1_steps * passes)
        figures["big"] = {"size": f"{bw}x{bh}", "num_frames": num_frames, "rows": rows}
        save()
        gen.close()
        del gen
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()

    if "lowmem" in sections:
        log(f"lowmem: offload sequential + fp8 storage at {w}×{h}, {num_frames} frames")
        gen = LTX2Generator(opts(offload="sequential", fp8_storage=True), cache_dir=work / "cache")
        t = time.perf_counter()
        gen.load()
        figures["lowmem_load_s"] = time.perf_counter() - t
        gen.encode_prompts([PROMPTS[0], NEGATIVE])
        if cuda:
            torch.cuda.empty_cache()
        rows = run_segments(gen, count=1, width=w, height=h, num_frames=num_frames, fps=fps, context_frames=context_frames, work=work, cuda=cuda, label="lowmem")
        for row in rows:
            row["extrapolated"] = extrapolate(row, passes_per_step=passes, measured_stage1_steps=args.stage1_steps, stage1_forwards=args.stage1_steps * passes)
        figures["lowmem"] = {"size": f"{w}x{h}", "num_frames": num_frames, "rows": rows}
        save()
        gen.close()

    if "plan" in sections:
        from benchmarks import ltx2_bench_plan as PB
        from generators.ltx2 import vae_compression_from_config

        sizes = [(w, h), (1080, 1920) if not args.tiny else (big["width"], big["height"])]
        log(f"plan: the bundled explainer planned at {sizes}, recipes {list(PB.RECIPES)}")
        if args.plan_json and args.plan_json.is_file():
            # Planned elsewhere (the captions step needs espeak-ng, which a bare GPU machine lacks); measured here.
            plans = json.loads(args.plan_json.read_text())
        else:
            plans = PB.demo_plans(model_dir, sizes, work, tiny=args.tiny)
        # One pass per stage-1 step (no guidance), 2 steps: each stage's per-pass time, measured.
        if args.plan_sizes:
            wanted = {tuple(int(v) for v in s.split("x")) for s in args.plan_sizes.split(",")}
            plans = {k: p for k, p in plans.items() if tuple(p["size"]) in wanted}
        speed: dict = {}
        if args.plan_options:
            from benchmarks import ltx2_bench_options as OB

            speed = OB.with_tile(OB.OPTION_SETS[args.plan_options][0], tile_px)
            log(f"plan: priced with the speed options {args.plan_options} = {speed}")
        # Two stage-1 steps: the second pass, timed alone, is the per-step price (the first carries a new shape's costs).
        gen = LTX2Generator(opts(stage1_steps=2, guidance_scale=1.0, stg_scale=0.0, modality_scale=1.0, **speed), cache_dir=work / "plan-cache")
        t = time.perf_counter()
        gen.load()
        load_s = time.perf_counter() - t
        t = time.perf_counter()
        gen.encode_prompts([PROMPTS[0], NEGATIVE])
        fixed_s = load_s + time.perf_counter() - t
        measured: dict[str, dict] = {}
        timer = ModelTimer(cuda)  # each transformer forward timed alone: stage 1's second is the per-step price
        timer.attach(gen.pipeline)
        try:
            for size in dict.fromkeys(tuple(p["size"]) for p in plans.values()):
                lengths = [f for p in plans.values() if tuple(p["size"]) == size for f in p["gen_frames"]]
                chosen = PB.pick_lengths(lengths, args.plan_max_lengths)
                context_frames = next(p["context_frames"] for p in plans.values() if tuple(p["size"]) == size)
                figures["plan"] = {"plans": plans, "measured": measured, "fixed_s": fixed_s, "priced": {}}
                PB.measure_lengths(
                    gen, make_request, width=size[0], height=size[1], lengths=chosen, context_frames=context_frames, work=work, log=log,
                    out=measured.setdefault("%dx%d" % size, {}), on_row=save, timer=timer,
                )  # fmt: skip
        finally:
            timer.detach()
            gen.close()
        temporal, spatial = vae_compression_from_config(model_dir)
        priced = {}
        for key, plan in plans.items():
            at = measured.get("%dx%d" % tuple(plan["size"]))
            if at:
                priced[key] = PB.price_plan(plan, at, temporal=temporal, spatial=spatial, fixed_s=fixed_s)
        figures["plan"] = {"plans": plans, "measured": measured, "fixed_s": fixed_s, "priced": priced, "speed_options": args.plan_options or "bf16"}
        save()
        log("\n".join(PB.summarize_plan(figures["plan"])))

    if "options" in sections:
        from benchmarks import ltx2_bench_options as OB
        from orchestrator.errors import GeneratorError

        ow, oh = (int(v) for v in (args.options_size or (f"{big['width']}x{big['height']}" if args.tiny else "1088x1920")).split("x"))
        oframes = args.options_frames or (9 if args.tiny else 241)
        names = [n for n in (args.options or ",".join(OB.OPTION_SETS)).split(",") if n]
        unknown = [n for n in names if n not in OB.OPTION_SETS]
        if unknown:
            raise SystemExit(f"--options: unknown {unknown}; known: {list(OB.OPTION_SETS)}")
        for name in list(names):  # a baseline runs before what is compared with it
            baseline = OB.OPTION_SETS[name][1]
            if baseline and baseline not in names[: names.index(name)]:
                names.insert(names.index(name), baseline)
        log(f"options: {names} at {ow}x{oh}, {oframes} frames")
        one_pass = dict(stage1_steps=1, guidance_scale=1.0, stg_scale=0.0, modality_scale=1.0)
        kept: dict[str, dict] = {}
        rows: dict[str, dict] = {}
        lora = None
        for name in names:
            kw, baseline = OB.OPTION_SETS[name]
            kw = OB.with_tile(kw, tile_px)
            if args.tiny and kw.get("fp8_linears") == "on":
                kw.update(fp8_linears="emulated", fp8_edge_blocks_bf16=0)  # no fp8 matmuls on a CPU: the same rounding, emulated
            if kw.get("stage2_lora") == "<lora>":
                lora = lora or OB.write_random_lora(model_dir, work / "random-lora", rank=4 if args.tiny else OB.LORA_RANK, device="cpu" if args.tiny else "cuda")
                kw["stage2_lora"] = str(lora)
            make = lambda kw=kw: LTX2Generator(opts(**one_pass, **kw), cache_dir=work / "options-cache")  # noqa: E731
            try:
                result = OB.measure_option(make, make_request, width=ow, height=oh, frames=oframes, context_frames=context_frames, work=work, label=name)
            except GeneratorError as exc:
                rows[name] = {"error": str(exc)}
                log(f"  [options] {name}: not run: {exc}")
                continue
            except Exception as exc:  # a kernel or compiler failing on this GPU is a finding; the other options still run
                import traceback

                rows[name] = {"error": f"failed: {type(exc).__name__}: {OB.first_line(exc)}"}
                log(f"  [options] {name}: FAILED\n" + "".join(traceback.format_exception(exc)[-12:]))
                figures["options"] = {"size": f"{ow}x{oh}", "frames": oframes, "rows": rows}
                save()
                continue
            row = {k: v for k, v in result.items() if k not in ("latents", "frames")}
            if baseline and baseline in kept:
                row.update(baseline=baseline, vs=OB.compare(result, kept[baseline]), exactness=OB.exactness(kw))
            if name in {b for _, b in OB.OPTION_SETS.values()}:
                kept[name] = result  # a baseline's latents and frames stay for the comparisons after it
            rows[name] = row
            log(OB.summarize_options({"size": f"{ow}x{oh}", "frames": oframes, "rows": {name: row}})[-1])
            figures["options"] = {"size": f"{ow}x{oh}", "frames": oframes, "rows": rows}
            save()
        log("\n".join(OB.summarize_options(figures["options"])))

    if "writer" in sections:
        figures["writer_fps"] = {f"{sz['width']}x{sz['height']}": writer_fps(sz["width"], sz["height"], 96 if cuda else 8, work) for sz in (small, big)}
        log(f"writer on smooth content: {figures['writer_fps']} frames/s")

    save()
    log(json.dumps(figures, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
