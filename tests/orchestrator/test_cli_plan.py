"""`longtake plan` through the real CLI: table, plan.json/plan.png, --json, --vad, and exit codes."""

from __future__ import annotations

import json
import re
import struct

import pytest

from orchestrator import __version__
from segmenters.plan import Plan
from tests.orchestrator.conftest import longtake, write_project


def test_plan_prints_a_table_and_writes_plan_files(tmp_path, speech_flac, portrait_png):
    project = write_project(tmp_path, speech_flac, portrait_png)
    proc = longtake("plan", str(project), check=True)
    workdir = tmp_path / "project.longtake-work"
    plan = Plan.load(workdir / "plan.json")
    assert (workdir / "plan.png").stat().st_size > 5000
    header = proc.stdout.splitlines()[0]
    assert header.split() == ["seg", "start", "end", "length", "gen", "ctx", "cut", "pause"]
    rows = [l for l in proc.stdout.splitlines()[1:] if re.match(r"^\s+\d+\s", l)]
    assert len(rows) == len(plan.segments) >= 4
    assert plan.frame_grid == 8 and plan.vad == "webrtc"
    # cuts must be in pauses: espeak sentences leave clear gaps, so nothing is forced here
    assert all(s.cut == "pause" for s in plan.segments[:-1])
    assert plan.trim_start_sample > 0  # the 0.6 s of leading silence was trimmed (keeping a lead-in)
    assert all(s.gen_frames / 24 <= 6 for s in plan.segments)


def test_plan_json_on_stdout_and_vad_override(tmp_path, speech_flac, portrait_png):
    project = write_project(tmp_path, speech_flac, portrait_png)
    proc = longtake("plan", str(project), "--json", "--vad", "energy", check=True)
    data = json.loads(proc.stdout)
    assert data["version"] == 1 and data["fps"] == "24/1" and data["vad"] == "energy"
    Plan.from_dict(data)  # validates tiling and grid


def test_plan_is_cached_on_the_second_run(tmp_path, speech_flac, portrait_png):
    project = write_project(tmp_path, speech_flac, portrait_png)
    first = longtake("plan", str(project), "--json", check=True)
    second = longtake("plan", str(project), "--json", check=True)
    assert first.stdout == second.stdout


def test_version_and_help():
    assert longtake("--version", check=True).stdout.strip().endswith(__version__)
    help_text = longtake("plan", "--help", check=True).stdout
    assert "--vad" in help_text and "--json" in help_text


def test_yaml_typo_exits_2_naming_key_line_and_fix(tmp_path, speech_flac, portrait_png):
    project = write_project(tmp_path, speech_flac, portrait_png)
    project.write_text(project.read_text().replace("target_segment_s", "target_segmnt_s"))
    proc = longtake("plan", str(project))
    assert proc.returncode == 2
    assert re.search(r"project\.yaml:\d+: `segmenter\.target_segmnt_s`: unknown key; did you mean `target_segment_s`", proc.stderr)
    assert not (tmp_path / "project.longtake-work" / "cache").exists()


def test_missing_voiceover_exits_3(tmp_path, portrait_png):
    project = write_project(tmp_path, tmp_path / "nope.wav", portrait_png)
    proc = longtake("plan", str(project))
    assert proc.returncode == 3 and "nope.wav" in proc.stderr


def test_corrupt_wav_exits_3_and_writes_nothing(tmp_path, portrait_png):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF" + struct.pack("<I", 1000) + b"WAVEfmt " + b"\x00" * 7)
    project = write_project(tmp_path, bad, portrait_png)
    proc = longtake("plan", str(project))
    assert proc.returncode == 3, proc.stderr
    assert "bad.wav" in proc.stderr
    cache = tmp_path / "project.longtake-work" / "cache"
    assert not any(p.name == "manifest.json" for p in cache.rglob("*")) if cache.exists() else True


def test_silence_only_exits_3(tmp_path, portrait_png):
    import numpy as np
    import soundfile as sf

    path = tmp_path / "silence.wav"
    sf.write(path, np.zeros(16000 * 5, dtype=np.float32), 16000)
    proc = longtake("plan", str(write_project(tmp_path, path, portrait_png)))
    assert proc.returncode == 3
    assert "silen" in proc.stderr.lower()


@pytest.mark.parametrize("vad", ["silero", "webrtc", "energy"])
def test_every_vad_plans_real_speech_with_cuts_in_pauses(tmp_path, speech_flac, portrait_png, vad):
    project = write_project(tmp_path, speech_flac, portrait_png, segmenter={"vad": vad})
    data = json.loads(longtake("plan", str(project), "--json", check=True).stdout)
    plan = Plan.from_dict(data)
    assert plan.vad == vad and len(plan.segments) >= 4
    assert sum(s.cut == "forced" for s in plan.segments) == 0


def test_plan_prints_the_ltx2_cost_and_picks_the_cheapest_target(tmp_path, speech_flac, portrait_png):
    from fractions import Fraction

    from generators.ltx2 import LTX2Generator
    from orchestrator.config import LTX2Options

    generator = {"backend": "ltx2", "model_variant": "distilled", "chaining": "tail"}
    project = write_project(tmp_path, speech_flac, portrait_png, generator=generator,
                            segmenter={"target_segment_s": None, "max_seams_per_minute": 20})  # fmt: skip
    proc = longtake("plan", str(project), check=True)
    plan = Plan.load(tmp_path / "project.longtake-work" / "plan.json")
    model = LTX2Generator.cost_model(LTX2Options(**{k: v for k, v in generator.items() if k != "backend"}))
    total = sum(model.segment_cost(width=plan.width, height=plan.height, num_frames=s.gen_frames, fps=Fraction(24)).total for s in plan.segments)
    match = re.search(r"estimated cost: ([\d,.]+) GPU-s for ([\d.]+) s of video = ([\d.]+) GPU-s per output second", proc.stdout)
    assert match, proc.stdout
    assert float(match.group(1).replace(",", "")) == pytest.approx(total, abs=0.6)
    assert float(match.group(3)) == pytest.approx(total / (plan.total_frames / 24), abs=0.006)
    assert re.search(r"target segment length [\d.]+ s \(not set: the cheapest per output second", proc.stdout)
    assert "basis: " in proc.stdout and "EXTRAPOLATED" in proc.stdout

    assert "one-time" not in proc.stdout

    explicit = write_project(tmp_path / "explicit", speech_flac, portrait_png, generator=generator)
    out = longtake("plan", str(explicit), check=True).stdout
    assert "target segment length 4 s (segmenter.target_segment_s)" in out
    assert "one-time" not in out

    # fp8_linears + compile: a lower estimate for the same plan, and the compile warm-up on its own line.
    speed = {"fp8_linears": "on", "compile": "blocks"}
    fast = write_project(tmp_path / "fast", speech_flac, portrait_png, generator=generator | speed)
    fast_out = longtake("plan", str(fast), check=True).stdout
    per_s = {name: float(re.search(r"= ([\d.]+) GPU-s per output second", text).group(1)) for name, text in (("bf16", out), ("fp8", fast_out))}
    fast_plan = Plan.load(tmp_path / "fast" / "project.longtake-work" / "plan.json")
    fast_model = LTX2Generator.cost_model(LTX2Options(**{k: v for k, v in (generator | speed).items() if k != "backend"}))
    fast_total = sum(fast_model.segment_cost(width=fast_plan.width, height=fast_plan.height, num_frames=s.gen_frames, fps=Fraction(24)).total
                     for s in fast_plan.segments)  # fmt: skip
    assert per_s["fp8"] == pytest.approx(fast_total / (fast_plan.total_frames / 24), abs=0.006) and per_s["fp8"] < per_s["bf16"]
    assert re.search(r"^one-time: compile warm-up 143 GPU-s on a machine's first run", fast_out, re.M), fast_out
