"""The ``options`` section of ``ltx2_gpu_bench.py``: each speed option against today's bf16 path, in the same run.

At one segment shape (``--options-size``, ``--options-frames``; stage 1 = one
unguided pass at half size, stage 2 = its 3 passes) every option set in
``OPTION_SETS`` gets a fresh generator, one warm-up segment (compilation,
kernel autotuning; discarded) and one measured segment with the same seed and
request as its baseline. Printed per option: stage-1 and stage-2 pass times
and the segment's wall against the baseline's (ratio), the relative error of
the final latents and the PSNR of the decoded frames against the baseline's,
and whether the option is exact or approximate (``ltx2_speed.SPEED_OPTIONS``).
The fused-LoRA set compares against the unfused LoRA (a random rank-384 LoRA
of the real layer shapes, written once), not against the LoRA-free path.
"""

from __future__ import annotations

import gc
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

# name: (options, baseline name); the baselines come first and are measured like any other set.
OPTION_SETS: dict[str, tuple[dict, str | None]] = {
    "bf16": ({}, None),
    "attention-native": ({"attention": "native"}, "bf16"),
    "compile": ({"compile": "blocks"}, "bf16"),
    "fp8": ({"fp8_linears": "on"}, "bf16"),
    "fp8+compile": ({"fp8_linears": "on", "compile": "blocks"}, "bf16"),
    "sage": ({"attention": "sage"}, "bf16"),
    # stage 2 in spatial tiles of --tile-px ("<tile>"): attention falls from T² to Σ tile²; approximate
    "tiles": ({"stage2_tile_px": "<tile>"}, "bf16"),
    "fp8+compile+tiles": ({"fp8_linears": "on", "compile": "blocks", "stage2_tile_px": "<tile>"}, "bf16"),
    "lora-unfused": ({"stage2_lora": "<lora>"}, None),
    "lora-fused": ({"stage2_lora": "<lora>", "stage2_lora_mode": "fused"}, "lora-unfused"),
}
LORA_RANK = 384
LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "ff.net.0.proj", "ff.net.2"]


def write_random_lora(model_dir: Path, out: Path, *, rank: int, device: str) -> Path:
    """A random LoRA of ``rank`` on the transformer's attention and feed-forward linears, saved as diffusers saves LoRAs."""
    import torch
    from diffusers import LTX2VideoTransformer3DModel
    from diffusers.pipelines.ltx2.pipeline_ltx2_condition import LTX2ConditionPipeline
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    if out.is_dir() and any(out.glob("*.safetensors")):
        return next(out.glob("*.safetensors"))
    torch.manual_seed(0)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    model = LTX2VideoTransformer3DModel.from_pretrained(model_dir / "transformer", torch_dtype=dtype).to(device)
    # small B (not PEFT's zeros): the LoRA must change the output to be measured, and not blow it up
    model.add_adapter(LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian", target_modules=LORA_TARGETS))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0.0, 1e-3)
    LTX2ConditionPipeline.save_lora_weights(out, transformer_lora_layers={k: v.cpu() for k, v in get_peft_model_state_dict(model).items()})
    del model
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
    return next(out.glob("*.safetensors"))


def _decode_host(pipe, latents) -> np.ndarray:
    """The final latents decoded as the generator decodes them (streamed tiles), as uint8 frames on the host."""
    import torch

    with torch.no_grad():
        return np.concatenate([chunk.cpu().numpy() for chunk in pipe.iter_decode(latents)])


def measure_option(make_generator, make_request, *, width: int, height: int, frames: int, context_frames: int, work: Path, label: str) -> dict:
    """Load, warm up, measure one segment; returns timings, latents and frames (host copies)."""
    import torch

    t = time.perf_counter()
    gen = make_generator()
    rng = np.random.RandomState(0)
    context = rng.randint(0, 256, (context_frames, height, width, 3)).astype(np.uint8)
    try:
        gen.load()  # inside the try: an option refused at load still gives its memory back before the next one
        load_s = time.perf_counter() - t
        rows = []
        from torch._dynamo.utils import counters

        for index in range(2):  # 0: warm-up (compilation, autotuning), 1: measured; same seed and request
            graphs_before = int(counters["stats"]["unique_graphs"])
            req = make_request(1, width=width, height=height, num_frames=frames, fps=Fraction(24), context=context,
                               out_dir=work / f"options-{label}-{index}", context_frames=context_frames)  # fmt: skip
            gen.encode_prompts([req.prompt])
            t = time.perf_counter()
            res = gen.generate(req)
            rows.append({"wall_s": time.perf_counter() - t, **{k: res.timings_s.get(k, 0.0) for k in ("stage1", "stage2", "decode")},
                         "compiled_graphs": int(counters["stats"]["unique_graphs"]) - graphs_before})  # fmt: skip
            print(f"  [{label}] segment {index} ({'warm-up' if index == 0 else 'measured'}): {rows[-1]['wall_s']:.1f} s, "
                  f"{rows[-1]['compiled_graphs']} graphs compiled", flush=True)  # fmt: skip
        latents = gen.last_output.latents.detach().float().cpu()
        decoded = _decode_host(gen.pipeline, gen.last_output.latents)
        notes = list(gen.speed.notes) if gen.speed is not None else []
        fp8_layers = len(gen.speed.fp8_layers) if gen.speed is not None else 0
        peak = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None
    finally:
        gen.close()
        del gen
        torch._dynamo.reset()  # compiled graphs of this option's blocks must not hold its weights or guard the next option
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
    return {"load_s": load_s, "warmup": rows[0], "measured": rows[1], "latents": latents, "frames": decoded, "notes": notes,
            "fp8_layers": fp8_layers, "peak_allocated_gib": peak}  # fmt: skip


def with_tile(options: dict, tile: tuple[int, int]) -> dict:
    """``options`` with its ``"<tile>"`` placeholder replaced by ``stage2_tile_px``/``stage2_tile_overlap_px`` = ``tile``."""
    out = dict(options)
    if out.get("stage2_tile_px") == "<tile>":
        out["stage2_tile_px"], out["stage2_tile_overlap_px"] = tile
    return out


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else ""


def compare(result: dict, baseline: dict) -> dict:
    from generators.ltx2_speed import latent_rel_error, psnr_db

    m, b = result["measured"], baseline["measured"]
    return {
        "stage1_ratio": m["stage1"] / b["stage1"] if b["stage1"] else None,
        "stage2_ratio": m["stage2"] / b["stage2"] if b["stage2"] else None,
        "wall_ratio": m["wall_s"] / b["wall_s"],
        "latent_rel_err": latent_rel_error(baseline["latents"], result["latents"]),
        "psnr_db": psnr_db(baseline["frames"], result["frames"]),
    }


def exactness(options: dict) -> str:
    from generators.ltx2_speed import SPEED_OPTIONS, is_exact

    approximate = [f"{k}: {v}" for k, v in options.items() if k in SPEED_OPTIONS and not is_exact(k, v)]
    if options.get("stage2_tile_px"):  # tiles do not attend to each other (exact only when one tile covers the latent)
        approximate.append(f"stage2_tile_px: {options['stage2_tile_px']}")
    return "approximate (" + ", ".join(approximate) + ")" if approximate else "exact"


def summarize_options(section: dict) -> list[str]:
    out = [
        "",
        f"Speed options at {section['size']}, {section['frames']} frames (stage 1 = 1 unguided pass, stage 2 = 3 passes), each against "
        "its baseline measured in the same run (warm segment; ratio < 1 is faster); quality = relative error of the final "
        "latents and PSNR of the decoded frames against the baseline at identical noise:",
    ]
    for name, row in section["rows"].items():
        if row.get("error"):
            out.append(f"  {name}: not run: {row['error']}")
            continue
        m = row["measured"]
        line = f"  {name}: stage 1 {m['stage1']:.2f} s, stage 2 {m['stage2']:.2f} s, wall {m['wall_s']:.1f} s (warm-up {row['warmup']['wall_s']:.1f} s, load {row['load_s']:.1f} s)"
        if row.get("vs"):
            c = row["vs"]
            line += (f" | vs {row['baseline']}: stage 2 x{c['stage2_ratio']:.2f}, wall x{c['wall_ratio']:.2f}; latent rel. error "
                     f"{c['latent_rel_err']:.2e}, PSNR {c['psnr_db']:.1f} dB; {row['exactness']}")  # fmt: skip
        out.append(line)
    return out
