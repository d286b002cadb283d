"""Context parallelism scaling: one LTX-2.3 transformer pass on 1 device against the same pass split over N.

    python benchmarks/cp_bench.py --model MODEL_DIR --gpus 2 --grid 61,34,60      # 1088x1920, 481 frames, stage 2

``--gpus N`` starts N processes (one per GPU; NCCL), or N CPU processes with gloo when CUDA is absent (``--cpu``
forces it: how the test runs it on the tiny model). Every rank builds the same seeded inputs: a latent grid
``F,H,W`` whose first latent frame is held clean (tail mode's per-token timestep), frozen audio tokens and random
prompt embeddings. Rank 0 first times the unsplit pass alone, then all ranks time the split pass
(``generators.ltx2_parallel.ContextParallelTransformer`` through ``ltx2_guidance.transformer_pass``, the guidance
loop's own call). Printed: tokens, seconds per pass for each, the speed-up, and the largest difference of the split
output from the unsplit one relative to the output's largest value.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _inputs(model, grid, audio_tokens, device, dtype):
    import torch

    from generators.ltx2_text import PromptEmbeddings

    gen = torch.Generator().manual_seed(0)
    frames, height, width = grid
    tokens = frames * height * width
    cfg = model.config
    held = torch.zeros(1, tokens)
    held[:, : height * width] = 1.0
    t = torch.full((1,), 700.0)
    prompt = PromptEmbeddings(
        torch.randn(1, 64, cfg.cross_attention_dim, generator=gen).to(device, dtype),
        torch.randn(1, 64, cfg.audio_cross_attention_dim, generator=gen).to(device, dtype),
        None,
    )
    return dict(
        latents=torch.randn(1, tokens, cfg.in_channels, generator=gen).to(device, dtype),
        audio_latents=torch.randn(1, audio_tokens, cfg.audio_in_channels, generator=gen).to(device, dtype),
        video_timestep=(t[:, None] * (1 - held)).to(device),
        step_timestep=t.to(device),
        positive=prompt,
        negative=None,
        video_coords=model.rope.prepare_video_coords(1, frames, height, width, device, fps=24.0),
        audio_coords=model.audio_rope.prepare_audio_coords(1, audio_tokens, device),
        fps=24.0,
    )


def _timed(call, repeat, sync):
    call()  # warm-up: kernel selection, allocator growth
    sync()
    start = time.perf_counter()
    for _ in range(repeat):
        out = call()
    sync()
    return out, (time.perf_counter() - start) / repeat


def _worker(rank, args, rendezvous):
    import torch
    import torch.distributed as dist
    from diffusers import LTX2VideoTransformer3DModel

    from generators.ltx2_guidance import transformer_pass
    from generators.ltx2_parallel import ContextParallelTransformer

    cuda = torch.cuda.is_available() and not args.cpu
    device = torch.device(f"cuda:{rank}" if cuda else "cpu")
    if cuda:
        torch.cuda.set_device(device)
    else:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // args.gpus))
    dtype = torch.bfloat16 if cuda else torch.float32
    dist.init_process_group("nccl" if cuda else "gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=args.gpus)
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    try:
        model = LTX2VideoTransformer3DModel.from_pretrained(Path(args.model) / "transformer", torch_dtype=dtype).to(device).eval()
        inputs = _inputs(model, args.grid, args.audio_tokens, device, dtype)
        with torch.no_grad():
            if rank == 0:
                single, single_s = _timed(lambda: transformer_pass(model, name="pred_cond", **inputs), args.repeat, sync)
            dist.barrier()
            cp = ContextParallelTransformer(model)
            split, split_s = _timed(lambda: transformer_pass(cp, name="pred_cond", **inputs), args.repeat, sync)
        if rank == 0:
            diff = float((split.float() - single.float()).abs().max() / single.float().abs().max())
            print(
                f"devices={args.gpus} ({'cuda' if cuda else 'cpu'}, {dtype}) tokens={inputs['latents'].shape[1]} "
                f"audio_tokens={args.audio_tokens} single_s={single_s:.4f} split_s={split_s:.4f} "
                f"speedup={single_s / split_s:.2f}x max_rel_diff={diff:.2e}",
                flush=True,
            )
    finally:
        dist.destroy_process_group()


def main(argv=None) -> None:
    import torch.multiprocessing as mp

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a diffusers LTX-2.3 folder (with transformer/)")
    parser.add_argument("--gpus", type=int, default=2, help="processes to split the pass over (one per GPU)")
    parser.add_argument("--grid", default="61,34,60", help="latent frames,height,width (default: 1088x1920, 481 frames)")
    parser.add_argument("--audio-tokens", type=int, default=501, help="audio latent frames (LTX-2.3: 25 per second; 501 = 20 s)")
    parser.add_argument("--repeat", type=int, default=3, help="timed passes after one warm-up")
    parser.add_argument("--cpu", action="store_true", help="gloo on CPU even where CUDA is present")
    args = parser.parse_args(argv)
    args.grid = tuple(int(v) for v in args.grid.split(","))
    if len(args.grid) != 3 or args.gpus < 1:
        parser.error("--grid takes three integers F,H,W and --gpus a positive count")
    with tempfile.TemporaryDirectory() as folder:
        mp.spawn(_worker, args=(args, f"{folder}/rendezvous"), nprocs=args.gpus, join=True)


if __name__ == "__main__":
    main()
