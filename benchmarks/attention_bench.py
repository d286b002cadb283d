"""One attention call at LTX-2.3's video self-attention shapes: PyTorch's SDPA kernels against 8-bit SageAttention.

Issue 14's second lever is 8-bit attention, measured against cuDNN SDPA, from packages that install from a
registry without compiling. The only such package today is ``sageattention`` 1.x (Triton kernels: INT8 Q·Kᵀ per
block, fp16 P·V; 2.x has no wheel on PyPI and compiles CUDA). Before an ``attention`` option is built on it, this
measures the kernel alone at the stage-2 token counts, so the option is only built if the kernel pays:

    python benchmarks/attention_bench.py                 # CUDA: 32 heads × 128, bf16, the stage-2 token counts
    python benchmarks/attention_bench.py --tiny          # CPU smoke test of this script (math SDPA only)

Printed per token count and kernel: milliseconds per call (median of --repeat after a warm-up), TFLOP/s
(4·heads·N²·head_dim per call), the ratio to cuDNN, and the output's relative error against cuDNN's.
Random q/k/v (unit normal; keys with a per-channel offset, as real keys have, which SageAttention's smoothing
removes) stand in for real activations: the speed is the same, the error only indicative.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

# (label, video tokens) for a 1088×1920 frame (34×60 latents per latent frame at stage 2, 17×30 at stage 1)
SHAPES = {
    "stage-1 241 frames": 17 * 30 * 31,
    "stage-2 121 frames": 34 * 60 * 16,
    "stage-2 241 frames": 34 * 60 * 31,
    "stage-2 481 frames": 34 * 60 * 61,
}
HEADS, HEAD_DIM = 32, 128


def _kernels(cuda: bool) -> dict:
    """name -> callable(q, k, v) in (batch, heads, tokens, dim) layout; unavailable ones map to the reason."""
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    def sdpa(backend):
        def call(q, k, v):
            with sdpa_kernel([backend]):
                return F.scaled_dot_product_attention(q, k, v)

        return call

    if not cuda:
        return {"math SDPA": sdpa(SDPBackend.MATH)}
    found: dict = {"cuDNN SDPA": sdpa(SDPBackend.CUDNN_ATTENTION), "flash SDPA": sdpa(SDPBackend.FLASH_ATTENTION)}
    try:
        from importlib.metadata import version

        from sageattention import sageattn

        found[f"sageattention {version('sageattention')} (int8 QK, fp16 PV)"] = lambda q, k, v: sageattn(q, k, v, tensor_layout="HND", is_causal=False)
    except Exception as exc:  # not installed, or no Triton: a finding, printed
        found["sageattention"] = f"unavailable: {type(exc).__name__}: {exc}"
    return found


def measure(tokens: int, kernels: dict, *, device: str, dtype, repeat: int) -> dict:
    import torch

    g = torch.Generator(device="cpu").manual_seed(0)
    shape = (1, HEADS, tokens, HEAD_DIM)
    q = torch.randn(shape, generator=g).to(device, dtype)
    k = (torch.randn(shape, generator=g) + 2.0 * torch.randn(1, 1, 1, HEAD_DIM, generator=g)).to(device, dtype)
    v = torch.randn(shape, generator=g).to(device, dtype)
    flops = 4.0 * HEADS * tokens * tokens * HEAD_DIM
    rows: dict = {}
    reference = None
    for name, call in kernels.items():
        if isinstance(call, str):
            rows[name] = {"error": call}
            continue
        try:
            out = call(q, k, v)  # warm-up: Triton compiles, cuDNN builds its plan
            times = []
            for _ in range(repeat):
                if device == "cuda":
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                out = call(q, k, v)
                if device == "cuda":
                    torch.cuda.synchronize()
                times.append(time.perf_counter() - t0)
        except Exception as exc:  # a kernel refusing this shape is a finding; the others still run
            rows[name] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"}
            continue
        ms = 1000 * statistics.median(times)
        row = {"ms": round(ms, 3), "tflops": round(flops / (ms / 1000) / 1e12, 1)}
        if reference is None:
            reference = out.float()
        else:
            row["rel_err_vs_first"] = float((out.float() - reference).norm() / reference.norm())
        rows[name] = row
        del out
    first = next((r["ms"] for r in rows.values() if "ms" in r), None)
    for r in rows.values():
        if "ms" in r and first:
            r["speed_vs_first"] = round(first / r["ms"], 3)
    return {"tokens": tokens, "rows": rows}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="small shapes on the CPU: a smoke test of this script")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--out", type=Path, default=None, help="also write the figures here as JSON")
    args = ap.parse_args(argv)

    import torch

    cuda = torch.cuda.is_available() and not args.tiny
    device, dtype = ("cuda", torch.bfloat16) if cuda else ("cpu", torch.float32)
    shapes = SHAPES if cuda else {"tiny 256 tokens": 256, "tiny 512 tokens": 512}
    kernels = _kernels(cuda)
    figures = {"device": torch.cuda.get_device_name() if cuda else "cpu", "torch": torch.__version__, "heads": HEADS, "head_dim": HEAD_DIM, "shapes": {}}
    for label, tokens in shapes.items():
        figures["shapes"][label] = result = measure(tokens, kernels, device=device, dtype=dtype, repeat=args.repeat)
        for name, row in result["rows"].items():
            if "error" in row:
                print(f"{label:>20} ({tokens:>7} tokens)  {name}: {row['error']}", flush=True)
            else:
                err = f", rel. err vs first {row['rel_err_vs_first']:.2e}" if "rel_err_vs_first" in row else ""
                print(f"{label:>20} ({tokens:>7} tokens)  {name}: {row['ms']:.2f} ms, {row['tflops']} TFLOP/s, x{row['speed_vs_first']:.2f}{err}", flush=True)
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
