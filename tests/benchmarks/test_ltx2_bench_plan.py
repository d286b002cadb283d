"""The plan section of the GPU benchmark: length picking, interpolation, pricing, and a tiny CPU smoke run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.ltx2_bench_plan import pick_lengths, per_length, price_plan

REPO = Path(__file__).resolve().parents[2]


def _tok(w, h, f):
    return ((f - 1) // 8 + 1) * (h // 32) * (w // 32)


def _measured(lengths, w=704, h=1280):
    # Synthetic passes exactly quadratic in tokens and rest exactly linear in frames: interpolation must be exact.
    q = lambda t: 0.1 + 1e-4 * t + 2e-9 * t * t  # noqa: E731
    return {f: {"stage1_pass_s": q(_tok(w // 2, h // 2, f)), "stage2_pass_s": q(_tok(w, h, f)), "rest_s": 0.5 + 0.01 * f} for f in lengths}


def test_pick_lengths_spreads_over_the_range_and_keeps_the_ends():
    lengths = [137, 153, 161, 169, 177, 185, 193, 201, 209, 217, 225, 233, 241, 249, 257, 265, 297, 161, 161]
    picked = pick_lengths(lengths, 4)
    assert picked[0] == 137 and picked[-1] == 297 and len(picked) == 4
    assert pick_lengths(lengths, 0) == sorted(set(lengths))


def test_unmeasured_lengths_are_interpolated_and_flagged():
    measured = _measured([137, 201, 297])
    exact = _measured([241])[241]
    row, interpolated = per_length(measured, 241, width=704, height=1280, temporal=8, spatial=32)
    assert interpolated
    for key in exact:
        assert row[key] == pytest.approx(exact[key], rel=1e-6)
    same, flagged = per_length(measured, 201, width=704, height=1280, temporal=8, spatial=32)
    assert same is measured[201] and not flagged


def test_price_plan_uses_each_recipes_passes():
    measured = _measured([137, 241])
    plan = {"size": [704, 1280], "recipe": "distilled", "fps": "24", "total_frames": 360, "gen_frames": [241, 137, 137]}
    priced = price_plan(plan, measured, temporal=8, spatial=32, fixed_s=20.0)
    expected = sum(8 * measured[f]["stage1_pass_s"] + 3 * measured[f]["stage2_pass_s"] + measured[f]["rest_s"] for f in (241, 137, 137))
    assert priced["segments_gpu_s"] == pytest.approx(expected)
    assert priced["per_output_s"] == pytest.approx(expected / 15.0) and priced["wall_s"] == pytest.approx(expected + 20.0)
    dev = price_plan({**plan, "recipe": "dev"}, measured, temporal=8, spatial=32, fixed_s=20.0)
    assert dev["stage1_passes"] == 120 and dev["segments_gpu_s"] > priced["segments_gpu_s"]
    assert priced["interpolated_segments"] == 0


def test_tiny_plan_and_options_sections_run_on_cpu(tmp_path):
    out = tmp_path / "figures.json"
    proc = subprocess.run(
        [sys.executable, "benchmarks/ltx2_gpu_bench.py", "--tiny", "--sections", "plan,options", "--plan-max-lengths", "2",
         "--options", "fp8,lora-fused,sage", "--work", str(tmp_path / "work"), "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=600, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    figures = json.loads(out.read_text())
    section = figures["plan"]
    assert set(section["priced"]) == {"32x48/distilled", "32x48/dev", "40x64/distilled", "40x64/dev"}
    for key, row in section["priced"].items():
        assert row["segments"] == len(section["plans"][key]["gen_frames"]) and row["per_output_s"] > 0
    assert all(len(m) == 2 for m in section["measured"].values())
    assert all(r["stage1_pass_timed_alone"] for m in section["measured"].values() for r in m.values())  # the plan runs 2 stage-1 steps
    assert "EXTRAPOLATED" in proc.stdout and "GPU-s per output second" in proc.stdout
    rows = figures["options"]["rows"]
    assert list(rows) == ["bf16", "fp8", "lora-unfused", "lora-fused", "sage"]  # each baseline measured before its option
    fp8, fused = rows["fp8"]["vs"], rows["lora-fused"]["vs"]
    assert 0 < fp8["latent_rel_err"] < 0.25 and rows["fp8"]["exactness"].startswith("approximate")  # emulated fp8 rounding on CPU
    assert fused["latent_rel_err"] < 1e-5 and rows["lora-fused"]["exactness"] == "exact"
    assert "sageattention" in rows["sage"]["error"]  # not installable here: reported, not fatal
    assert "vs lora-unfused: stage 2 x" in proc.stdout


def test_measured_lengths_are_kept_as_they_finish(tmp_path):
    """A run stopped at its time limit keeps the lengths it measured: rows land in ``out`` and ``on_row`` fires per length."""
    from types import SimpleNamespace

    from benchmarks.ltx2_bench_plan import measure_lengths

    class StoppedAtSecond:
        calls = 0

        def encode_prompts(self, prompts):
            pass

        def generate(self, req):
            self.calls += 1
            if self.calls == 3:  # warm-up, first length, then the time limit
                raise KeyboardInterrupt
            return SimpleNamespace(timings_s={"stage1": 1.0, "stage2": 3.0})

    out, saved = {}, []
    with pytest.raises(KeyboardInterrupt):
        measure_lengths(StoppedAtSecond(), lambda index, **kw: SimpleNamespace(prompt="p"), width=64, height=64, lengths=[9, 17],
                        context_frames=1, work=tmp_path, log=lambda *a: None, out=out, on_row=lambda: saved.append(dict(out)))  # fmt: skip
    assert list(out) == [9] and out[9]["stage2_pass_s"] == pytest.approx(1.0) and saved == [out]


def test_the_stage1_pass_is_the_last_stage1_forward_and_one_time_costs_are_billed_once(tmp_path):
    """With a forward timer and 2 stage-1 steps, the pass is the second forward; the first's extra moves to the rest."""
    from types import SimpleNamespace

    from benchmarks.ltx2_bench_plan import measure_lengths

    timer = SimpleNamespace(durations={}, reset=lambda: timer.durations.clear())

    class TwoStage1Steps:
        def encode_prompts(self, prompts):
            pass

        def generate(self, req):
            # stage 1: a first forward at a new shape (0.9 s), then 0.5 s; stage 2: three forwards
            timer.durations["transformer"] = [0.9, 0.5, 2.0, 2.0, 2.0]
            return SimpleNamespace(timings_s={"stage1": 1.45, "stage2": 6.3})

    measure = lambda **kw: measure_lengths(TwoStage1Steps(), lambda index, **k: SimpleNamespace(prompt="p"), width=64, height=64,  # noqa: E731
                                           lengths=[9], context_frames=1, work=tmp_path, log=lambda *a: None, **kw)[9]  # fmt: skip
    timed = measure(timer=timer)
    assert timed["stage1_pass_s"] == 0.5 and timed["stage1_once_s"] == pytest.approx(0.45) and timed["stage1_pass_timed_alone"]
    assert 2 * timed["stage1_pass_s"] + 3 * timed["stage2_pass_s"] + timed["rest_s"] == pytest.approx(timed["wall_s"])
    whole = measure()  # no timer: the whole stage is one pass, as before
    assert whole["stage1_pass_s"] == 1.45 and not whole["stage1_pass_timed_alone"]
    plan = {"size": [64, 64], "recipe": "dev", "fps": "24", "total_frames": 24, "gen_frames": [9]}
    # priced at 120 passes (dev): the measured 2-pass segment plus 118 more passes of 0.5 s; untimed, 119 more of 1.45 s
    dev_timed = price_plan(plan, {9: timed}, temporal=8, spatial=32, fixed_s=0.0)["segments_gpu_s"]
    dev_whole = price_plan(plan, {9: whole}, temporal=8, spatial=32, fixed_s=0.0)["segments_gpu_s"]
    assert dev_timed == pytest.approx(timed["wall_s"] + 118 * 0.5) and dev_whole == pytest.approx(whole["wall_s"] + 119 * 1.45)
