"""benchmarks/attention_bench.py on the CPU: it measures, compares against its first kernel, and reports failures."""

from __future__ import annotations

import json

from benchmarks import attention_bench


def test_tiny_run_writes_one_row_per_kernel_and_shape(tmp_path, capsys):
    out = tmp_path / "attention.json"
    assert attention_bench.main(["--tiny", "--repeat", "2", "--out", str(out)]) == 0
    figures = json.loads(out.read_text())
    assert set(figures["shapes"]) == {"tiny 256 tokens", "tiny 512 tokens"}
    for shape in figures["shapes"].values():
        row = shape["rows"]["math SDPA"]
        assert row["ms"] > 0 and row["tflops"] >= 0 and row["speed_vs_first"] == 1.0
    assert "math SDPA" in capsys.readouterr().out


def test_a_failing_kernel_is_a_row_not_a_crash():
    def refuses(q, k, v):
        raise RuntimeError("no kernel for this shape\nmore detail")

    kernels = {"first": lambda q, k, v: q + k + v, "refuses": refuses, "absent": "unavailable: ImportError: nope"}
    result = attention_bench.measure(64, kernels, device="cpu", dtype=__import__("torch").float32, repeat=1)
    assert result["rows"]["refuses"] == {"error": "RuntimeError: no kernel for this shape"}
    assert result["rows"]["absent"] == {"error": "unavailable: ImportError: nope"}
    assert result["rows"]["first"]["speed_vs_first"] == 1.0
