"""Context parallelism scaling: one LTX-2.3 transformer pass, or one whole tail segment, on 1 device against N.

    python benchmarks/cp_bench.py --model MODEL_DIR --gpus 2 --grid 61,34,60      # 1088x1920, 481 frames, stage 2

``--segment`` runs one whole tail-chained segment through the real generator (``LTX2Generator``, the launcher
of ``generators/ltx2_cp_launch.py``) with ``context_parallel`` 1, then N, at identical noise and inputs: a warm-up
segment of a few frames, then the timed one. Printed (and written to ``--out`` as JSON) as soon as the split run
ends: wall seconds of each (and of stage 1 + stage 2, the split part), the speed-ups (wall, stage 1 + 2, stage 2)
and the latent relative error (``generators.ltx2_speed.latent_rel_error``); then the PSNR of the decoded frames
of the N-GPU run against the 1-GPU one (``psnr_db``; long at full size), and the JSON is rewritten with it. The recipe
on a host with 2 GPUs (random full-size LTX-2.3 weights; the build takes ~1.5 min and ~90 GB of disk):

    python benchmarks/ltx2_gpu_bench.py --sections build --model-dir /tmp/m && \
    python benchmarks/cp_bench.py --segment --model /tmp/m --gpus 2 --size 1088x1920 --num-frames 481 \
        --stage1-steps 1 --out benchmarks/results/cp_segment_h200x2.json

(``--num-frames 241`` halves it.) ``--cpu`` runs it on the CPU with gloo: the tests' smoke run on the tiny model.

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
from fractions import Fraction
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


def _tail_request(index: int, *, width: int, height: int, num_frames: int, context_frames: int, out_dir: Path):
    """A tail segment continuing from ``context_frames`` frames (the portrait, a little noise per frame)."""
    import numpy as np

    from benchmarks.ltx2_gpu_bench import make_portrait, make_request

    portrait = make_portrait(width, height).astype(np.int16)
    rng = np.random.RandomState(5)
    context = np.stack([np.clip(portrait + rng.randint(-6, 7, portrait.shape), 0, 255) for _ in range(context_frames)]).astype(np.uint8)
    return make_request(index, width=width, height=height, num_frames=num_frames, fps=Fraction(24), context=context,
                        out_dir=out_dir, context_frames=context_frames)  # fmt: skip


def _segment_run(options, *, world: int, args, work: Path, cuda: bool) -> dict:
    """Load a generator with ``context_parallel`` = ``world``, warm it up, time one tail segment; its figures and latents."""
    import torch

    from benchmarks.ltx2_gpu_bench import NEGATIVE, PROMPTS
    from generators.ltx2 import LTX2Generator

    sync = torch.cuda.synchronize if cuda else (lambda: None)
    gen = LTX2Generator(options.model_copy(update={"context_parallel": world}), cache_dir=work / "cache")
    try:
        started = time.perf_counter()
        gen.load()
        load_s = time.perf_counter() - started
        gen.encode_prompts([*PROMPTS[:2], NEGATIVE])
        warm_frames = max(gen.grid_for(options).frame_grid + 1, args.context_frames)  # the tail must fit in it
        gen.generate(_tail_request(1, width=args.width, height=args.height, num_frames=warm_frames, context_frames=args.context_frames,
                                   out_dir=work / f"cp{world}-warmup"))  # fmt: skip
        sync()
        started = time.perf_counter()
        res = gen.generate(_tail_request(1, width=args.width, height=args.height, num_frames=args.num_frames,
                                         context_frames=args.context_frames, out_dir=work / f"cp{world}"))  # fmt: skip
        sync()
        wall_s = time.perf_counter() - started
        stages = {k: round(v, 3) for k, v in res.timings_s.items()}
        row = {"gpus": world, "load_s": round(load_s, 2), "wall_s": round(wall_s, 3), "stages_s": stages,
               "denoise_s": round(stages.get("stage1", 0) + stages.get("stage2", 0), 3)}  # fmt: skip
        print(f"  context_parallel={world}: load {load_s:.1f} s, segment {wall_s:.2f} s, stage 1 + 2 {row['denoise_s']:.2f} s, stages {stages}", flush=True)
        return {"row": row, "latents": gen.last_output.latents.detach().cpu(), "gen": gen}
    except BaseException:
        gen.close()
        raise


def _decoded_psnr(pipe, reference, other) -> float:
    """PSNR of ``other``'s decoded uint8 frames against ``reference``'s, streamed tile by tile (never the whole clip)."""
    from generators import ltx2_loading as L
    from generators.ltx2_speed import psnr_db

    squared, count = 0.0, 0
    chunks = zip(*(pipe.iter_decode(z, tile_latent_frames=L.DECODE_TILE_LATENT_FRAMES, stride_latent_frames=L.DECODE_STRIDE_LATENT_FRAMES)
                   for z in (reference, other)))  # fmt: skip
    for ref, oth in chunks:
        psnr = psnr_db(ref.cpu(), oth.cpu())
        mse = 0.0 if psnr == float("inf") else 255.0**2 / 10 ** (psnr / 10)
        squared += mse * ref.numel()
        count += ref.numel()
    import math

    return math.inf if squared == 0 else 10 * math.log10(255.0**2 / (squared / count))


def segment_main(args) -> dict:
    import shutil

    import torch

    from generators.ltx2_loading import inspect_model, resolve_model_dir
    from generators.ltx2_speed import latent_rel_error
    from orchestrator.config import LTX2Options

    cuda = torch.cuda.is_available() and not args.cpu
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    layers = inspect_model(resolve_model_dir(args.model), upsampler=None, need_upsampler=False).transformer_layers
    options = LTX2Options(
        model=str(Path(args.model).resolve()), device="cuda" if cuda else "cpu", dtype="bfloat16" if cuda else "float32",
        stage1_steps=args.stage1_steps, stg_blocks=[min(28, layers - 1)],
    )  # fmt: skip
    print(f"segment: {args.width}x{args.height}, {args.num_frames} frames, tail of {args.context_frames} context frames, "
          f"stage-1 steps {args.stage1_steps}, on {'cuda' if cuda else 'cpu'}: 1 device, then {args.gpus}", flush=True)  # fmt: skip
    one = _segment_run(options, world=1, args=args, work=work, cuda=cuda)
    one["gen"].close()
    split = _segment_run(options, world=args.gpus, args=args, work=work, cuda=cuda)
    try:
        a, b = one["row"], split["row"]
        figures = {
            "device": torch.cuda.get_device_name() if cuda else "cpu", "torch": torch.__version__,
            "size": f"{args.width}x{args.height}", "num_frames": args.num_frames, "context_frames": args.context_frames,
            "stage1_steps": args.stage1_steps, "gpus": args.gpus, "single": a, "split": b,
            "speedup_wall": a["wall_s"] / b["wall_s"], "speedup_denoise": _ratio(a["denoise_s"], b["denoise_s"]),
            "speedup_stage2": _ratio(a["stages_s"].get("stage2"), b["stages_s"].get("stage2")),
            "latent_rel_error": latent_rel_error(one["latents"], split["latents"]), "psnr_db": None,
        }  # fmt: skip
        # Timings and the latent error first: the decode below is long at full size, and a run cut short by its time
        # limit must still have printed and saved them.
        print(
            f"devices={args.gpus} ({figures['device']}) single_s={a['wall_s']:.3f} split_s={b['wall_s']:.3f} "
            f"speedup={figures['speedup_wall']:.2f}x denoise_speedup={figures['speedup_denoise'] or 0:.2f}x "
            f"stage2_speedup={figures['speedup_stage2'] or 0:.2f}x latent_rel_error={figures['latent_rel_error']:.2e}",
            flush=True,
        )
        _write(args.out, figures)
        figures["psnr_db"] = _decoded_psnr(split["gen"].pipeline, one["latents"], split["latents"])
    finally:
        split["gen"].close()
    print(f"psnr_db={figures['psnr_db']:.2f} (decoded frames of {args.gpus} devices against 1)", flush=True)
    _write(args.out, figures)
    return figures


def _ratio(single_s, split_s):
    return single_s / split_s if single_s and split_s else None


def _write(out, figures: dict) -> None:
    import json

    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(figures, indent=2, default=str))


def main(argv=None) -> None:
    import torch.multiprocessing as mp

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a diffusers LTX-2.3 folder (with transformer/)")
    parser.add_argument("--gpus", type=int, default=2, help="processes to split the pass over (one per GPU)")
    parser.add_argument("--grid", default="61,34,60", help="latent frames,height,width (default: 1088x1920, 481 frames)")
    parser.add_argument("--audio-tokens", type=int, default=501, help="audio latent frames (LTX-2.3: 25 per second; 501 = 20 s)")
    parser.add_argument("--repeat", type=int, default=3, help="timed passes after one warm-up")
    parser.add_argument("--cpu", action="store_true", help="gloo on CPU even where CUDA is present")
    parser.add_argument("--segment", action="store_true", help="time one whole tail segment through the generator, 1 device vs --gpus")
    parser.add_argument("--size", default="1088x1920", help="--segment: WIDTHxHEIGHT of the segment")
    parser.add_argument("--num-frames", type=int, default=481, help="--segment: frames of the segment (8k+1 for LTX-2.3)")
    parser.add_argument("--context-frames", type=int, default=25, help="--segment: tail context frames it continues from")
    parser.add_argument("--stage1-steps", type=int, default=1, help="--segment: guided stage-1 steps (stage 2 runs its 3)")
    parser.add_argument("--work", default="/tmp/cp-bench-work", help="--segment: scratch folder (emptied first)")
    parser.add_argument("--out", default=None, help="--segment: write the figures here as JSON")
    args = parser.parse_args(argv)
    if args.segment:
        try:
            args.width, args.height = (int(v) for v in args.size.lower().split("x"))
        except ValueError:
            parser.error(f"--size takes WIDTHxHEIGHT, like 1088x1920; got {args.size!r}")
        if args.gpus < 2:
            parser.error("--segment compares 1 device with --gpus N: give N ≥ 2")
        segment_main(args)
        return
    args.grid = tuple(int(v) for v in args.grid.split(","))
    if len(args.grid) != 3 or args.gpus < 1:
        parser.error("--grid takes three integers F,H,W and --gpus a positive count")
    with tempfile.TemporaryDirectory() as folder:
        mp.spawn(_worker, args=(args, f"{folder}/rendezvous"), nprocs=args.gpus, join=True)


if __name__ == "__main__":
    main()
