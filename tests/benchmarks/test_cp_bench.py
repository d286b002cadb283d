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
