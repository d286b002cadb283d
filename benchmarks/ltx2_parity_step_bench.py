"""GPU cost of one denoising step before and after the reference-parity changes (full-size LTX-2.3 transformer, random bf16).

The parity work changed what a step computes, not how much: the stage-1 sigmas
(values only), the CFG pass's audio context, STG's audio self-attention (left
unperturbed by a pre-hook), and, with ``reference_release: ltx-2-1.2.0``, the
A/V cross-attention scale/shift embedded per token from the video's own
timesteps instead of once from a sigma. This times, on the same GPU and weights:

- ``before``: the pass as the loop called it before (audio sigma 0, diffusers' STG);
- ``ltx-2-1.0.0`` and ``ltx-2-1.2.0``: ``ltx2_guidance.transformer_pass`` now;

for the four guided passes at stage 1's 352x640 and 544x960 shapes and one pass at
stage 2's 704x1280 (481 frames each), with peak memory. Prints a table; ``--json``
writes the figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PASSES = ("pred_cond", "pred_uncond", "pred_cond_stg", "pred_cond_modality")


def build_transformer(device: str):
    import torch
    from diffusers import LTX2VideoTransformer3DModel

    config = json.loads((Path(__file__).resolve().parents[1] / "generators/ltx2_configs/ltx-2.3/transformer/config.json").read_text())
    config = {k: v for k, v in config.items() if not k.startswith("_")}
    torch.manual_seed(0)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device(device):
            model = LTX2VideoTransformer3DModel(**config)
    finally:
        torch.set_default_dtype(previous)
    return model.to(torch.bfloat16).eval()


def old_pass(transformer, name, *, latents, audio, video_timestep, t, pos, neg, video_coords, audio_coords, fps, stg_blocks):
    """The call the loop made before the parity changes (kept here only to time it)."""
    import torch

    emb = neg if name == "pred_uncond" else pos
    zero = torch.zeros(1, device=latents.device)
    return transformer(
        hidden_states=latents, audio_hidden_states=audio, encoder_hidden_states=emb.video, audio_encoder_hidden_states=emb.audio,
        timestep=video_timestep, audio_timestep=zero, sigma=t, audio_sigma=zero, encoder_attention_mask=emb.mask,
        audio_encoder_attention_mask=emb.mask, fps=fps, audio_num_frames=audio.shape[1], video_coords=video_coords,
        audio_coords=audio_coords, isolate_modalities=name == "pred_cond_modality",
        spatio_temporal_guidance_blocks=list(stg_blocks) if name == "pred_cond_stg" else None, use_cross_timestep=True, return_dict=False,
    )[0]  # fmt: skip


def time_shape(transformer, *, height: int, width: int, num_frames: int, passes, repeats: int, device: str) -> dict:
    import torch

    from generators.ltx2_guidance import transformer_pass
    from generators.ltx2_text import PromptEmbeddings

    fps = 24.0
    f, h, w = (num_frames - 1) // 8 + 1, height // 32, width // 32
    tokens = f * h * w
    audio_frames = round(num_frames / fps * 25)
    g = torch.Generator(device).manual_seed(1)
    bf = torch.bfloat16
    latents = torch.randn(1, tokens, 128, generator=g, device=device).to(bf)
    audio = torch.randn(1, audio_frames, 128, generator=g, device=device).to(bf)
    mask = torch.ones(1, tokens, device=device)
    mask[:, : h * w] = 0.0  # frame 0 held clean
    t = torch.full((1,), 700.0, device=device)
    video_timestep = t[:, None] * mask
    emb = lambda: PromptEmbeddings(torch.randn(1, 256, 4096, generator=g, device=device).to(bf), torch.randn(1, 256, 2048, generator=g, device=device).to(bf), torch.ones(1, 256, device=device))  # noqa: E731
    pos, neg = emb(), emb()
    video_coords = transformer.rope.prepare_video_coords(1, f, h, w, device, fps=fps)
    audio_coords = transformer.audio_rope.prepare_audio_coords(1, audio_frames, device)
    common = dict(latents=latents, video_timestep=video_timestep, video_coords=video_coords, audio_coords=audio_coords, fps=fps)
    variants = {
        "before": lambda name: old_pass(transformer, name, audio=audio, t=t, pos=pos, neg=neg, stg_blocks=(28,), **common),
        **{
            release: (lambda name, release=release: transformer_pass(
                transformer, name=name, audio_latents=audio, step_timestep=t, positive=pos, negative=neg, stg_blocks=(28,),
                reference_release=release, **common))  # fmt: skip
            for release in ("ltx-2-1.0.0", "ltx-2-1.2.0")
        },
    }
    out = {"shape": f"{height}x{width}x{num_frames}", "video_tokens": tokens}
    with torch.no_grad():
        for label, run in variants.items():
            for name in passes:  # warm-up
                run(name)
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            walls = []
            for _ in range(repeats):
                torch.cuda.synchronize()
                start = time.perf_counter()
                for name in passes:
                    run(name)
                torch.cuda.synchronize()
                walls.append(time.perf_counter() - start)
            out[label] = {"step_s": statistics.median(walls), "all_s": walls, "peak_gib": torch.cuda.max_memory_allocated() / 2**30}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    import torch

    transformer = build_transformer("cuda")
    rows = [
        time_shape(transformer, height=352, width=640, num_frames=481, passes=PASSES, repeats=args.repeats, device="cuda"),
        time_shape(transformer, height=544, width=960, num_frames=481, passes=PASSES, repeats=args.repeats, device="cuda"),
        time_shape(transformer, height=704, width=1280, num_frames=481, passes=("pred_cond",), repeats=args.repeats, device="cuda"),
    ]
    print(f"one denoising step, LTX-2.3 transformer (random bf16), {torch.cuda.get_device_name()}, torch {torch.__version__}")
    print("shape (passes)              tokens   before        ltx-2-1.0.0   ltx-2-1.2.0   (median of repeats; peak GiB)")
    for row in rows:
        passes = 4 if not row["shape"].startswith("704") else 1
        cells = "  ".join(f"{row[k]['step_s']:6.3f} s {row[k]['peak_gib']:5.1f}" for k in ("before", "ltx-2-1.0.0", "ltx-2-1.2.0"))
        print(f"{row['shape']:>14} ({passes})  {row['video_tokens']:>10}   {cells}")
    if args.json:
        args.json.write_text(json.dumps({"device": torch.cuda.get_device_name(), "torch": torch.__version__, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
