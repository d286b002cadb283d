"""Run one speed option against its baseline in a child process, so a crash is one failed test, not a dead session.

On the H200 a compile test aborted the whole pytest process from C++ (``terminate called``), and the options after
it in that process were never checked. Here each comparison gets a fresh interpreter (also a fresh torch.compile
state): the child runs ``module.run(model, work, name, **kw)`` for the baseline and for the option, and prints
one JSON line; the parent gets that line, or a failure that quotes the child's exit code and its last output.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.orchestrator.conftest import REPO

GPU_BF16 = dict(device="cuda", dtype="bfloat16")  # the options every GPU comparison runs with
# One stage-1 pass per step, as the distilled recipe: a compiled model then traces one pass's graphs instead of four
# (cond, CFG, STG, modality). The guided compile comparison took 383 s on the H200; the compiled combinations
# (fp8+compile, fp8+compile+tiles) run unguided so that `pytest -m gpu` fits one device call.
UNGUIDED = dict(guidance_scale=1.0, stg_scale=0.0, modality_scale=1.0)
RECIPE_KEYS = tuple(UNGUIDED)


def baseline_for(kw: dict) -> dict:
    """The bf16 GPU baseline for the options ``kw``: same recipe (guided or not), no speed option."""
    return {**GPU_BF16, **{k: kw[k] for k in RECIPE_KEYS if k in kw}}


_CHILD = r"""
import importlib, json, sys
from pathlib import Path
from generators.ltx2_speed import latent_rel_error, psnr_db
module, model, work, ref_kw, opt_kw = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), json.loads(sys.argv[4]), json.loads(sys.argv[5])
run = importlib.import_module(module).run
ref, ref_lat, ref_frames = run(model, work, "ref", **ref_kw)
opt, lat, frames = run(model, work, "opt", **opt_kw)
fused = opt.speed.fused_lora
print("RESULT " + json.dumps({
    "latent_rel_error": latent_rel_error(ref_lat.float(), lat.float()), "psnr_db": psnr_db(ref_frames, frames),
    "ref_notes": list(ref.speed.notes), "fp8_layers": len(opt.speed.fp8_layers),
    "fused_lora_bytes": fused.bytes if fused is not None else 0,
    "stage2_tiling": [opt.pipeline.stage2_tiling.tile_px, opt.pipeline.stage2_tiling.overlap_px] if opt.pipeline.stage2_tiling else None,
}), flush=True)
"""


class ChildFailed(AssertionError):
    pass


def compare_isolated(module: str, model: Path, work: Path, ref_kw: dict, opt_kw: dict, *, timeout_s: float = 1200) -> dict:
    """The option's latent error and PSNR against the baseline, computed in a child process (see the module docstring)."""
    work.mkdir(parents=True, exist_ok=True)
    args = [sys.executable, "-c", _CHILD, module, str(model), str(work), json.dumps(ref_kw), json.dumps(opt_kw)]
    proc = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=timeout_s)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
        raise ChildFailed(f"the comparison's child process ended with exit code {proc.returncode}:\n{tail}")
    return json.loads(lines[-1][len("RESULT ") :])


def skip_unless_fp8_runs_here(kw: dict) -> None:
    """Skip a GPU comparison whose options turn fp8 linears on where they cannot run (no torchao, or an older GPU)."""
    import pytest
    import torch

    if kw.get("fp8_linears") == "on":
        pytest.importorskip("torchao")
        if torch.cuda.get_device_capability() < (8, 9):
            pytest.skip("fp8 matmuls need compute capability ≥ 8.9")
