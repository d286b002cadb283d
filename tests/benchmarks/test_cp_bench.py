"""benchmarks/cp_bench.py runs end to end on 2 CPU processes (gloo) with the tiny model and reports a split pass
that matches the unsplit one (float32: within 5e-6 of the output's largest value)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("diffusers")

from tests.generators.tiny_ltx2 import build_tiny_ltx2  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def test_cp_bench_on_two_cpu_processes(tmp_path):
    folder = build_tiny_ltx2(tmp_path / "model", with_upsampler=False)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(ROOT / "benchmarks/cp_bench.py"), "--model", str(folder), "--gpus", "2", "--cpu",
           "--grid", "3,5,7", "--audio-tokens", "9", "--repeat", "1"]  # fmt: skip
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    line = re.search(r"devices=2 \(cpu.*", done.stdout)
    assert line, done.stdout
    assert "tokens=105 " in line.group(0)
    figures = dict(re.findall(r"(\w+)=([0-9.e+-]+)x?(?:\s|$)", line.group(0)))
    assert float(figures["single_s"]) > 0 and float(figures["split_s"]) > 0
    assert float(figures["max_rel_diff"]) < 5e-6


def test_cp_bench_segment_mode_on_two_cpu_processes(tmp_path, monkeypatch, capsys):
    """--segment: one tail segment through the real generator with context_parallel 1, then 2 (gloo), same noise.

    The timings and the latent error are printed and saved before the (long, at full size) decode for the PSNR
    starts: checked from inside the decode, as a run cut short there would leave them."""
    import json

    from benchmarks import cp_bench

    folder = build_tiny_ltx2(tmp_path / "model")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    out = tmp_path / "figures.json"
    real_psnr = cp_bench._decoded_psnr
    before_decode = {}

    def decoded_psnr(*args, **kwargs):
        before_decode["json"] = json.loads(out.read_text())
        before_decode["stdout"] = capsys.readouterr().out
        return real_psnr(*args, **kwargs)

    monkeypatch.setattr(cp_bench, "_decoded_psnr", decoded_psnr)
    cp_bench.main(["--segment", "--cpu", "--model", str(folder), "--gpus", "2", "--size", "48x32", "--num-frames", "9",
                   "--context-frames", "5", "--stage1-steps", "2", "--work", str(tmp_path / "work"), "--out", str(out)])  # fmt: skip
    early = before_decode["json"]
    assert early["latent_rel_error"] < 1e-6 and early["psnr_db"] is None and early["speedup_stage2"] > 0
    assert re.search(r"devices=2 \(cpu\) single_s=\S+ split_s=\S+ speedup=\S+x .*stage2_speedup=\S+x latent_rel_error=\S+", before_decode["stdout"])
    assert re.search(r"psnr_db=\S+", capsys.readouterr().out)
    figures = json.loads(out.read_text())
    assert figures["single"]["gpus"] == 1 and figures["split"]["gpus"] == 2
    assert figures["single"]["wall_s"] > 0 and figures["split"]["wall_s"] > 0 and figures["speedup_wall"] > 0
    assert set(figures["split"]["stages_s"]) >= {"stage1", "stage2", "decode"}
    assert figures["speedup_stage2"] == pytest.approx(figures["single"]["stages_s"]["stage2"] / figures["split"]["stages_s"]["stage2"])
    # Same noise, same inputs: float32 on the CPU agrees to float rounding (measured 8e-8; frames ≥ 90 dB).
    assert figures["latent_rel_error"] < 1e-6
    assert figures["psnr_db"] > 60
