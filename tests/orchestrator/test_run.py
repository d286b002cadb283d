"""`longtake run` end to end with the animatic generator: output, cache, resume after SIGKILL,
invalidation (chained vs anchor), status reasons, lock, disk full, clean, init."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from orchestrator.cli import main
from orchestrator.lock import WorkdirLock
from segmenters.plan import Plan
from tests.orchestrator.conftest import REPO, events, longtake, steps_with, write_project


def ffprobe(path: Path) -> dict:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-count_frames", "-show_streams", "-show_format", "-of", "json", str(path)],
        capture_output=True, text=True, check=True,
    )
    return json.loads(out.stdout)


def frame_digest(path: Path) -> str:
    """md5 of every decoded frame: equal digests = frame-for-frame identical videos."""
    out = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:v", "-f", "md5", "-"], capture_output=True, text=True, check=True)
    return out.stdout.strip()


@pytest.fixture(scope="module")
def baseline(tmp_path_factory, speech_flac, portrait_png):
    """One complete uninterrupted run; other tests copy its project or compare against its output."""
    if shutil.which("ffprobe") is None:
        pytest.skip("ffprobe is not installed")
    folder = tmp_path_factory.mktemp("baseline")
    project = write_project(folder, speech_flac, portrait_png)
    proc = longtake("run", str(project), "--json", check=True)
    return {"folder": folder, "project": project, "events": events(proc), "output": folder / "out" / "video.mp4",
            "plan": Plan.load(next((folder / "project.longtake-work" / "cache" / "plan").glob("*/plan.json")))}


def test_run_end_to_end_output_is_valid(baseline):
    info = ffprobe(baseline["output"])
    plan: Plan = baseline["plan"]
    video = next(s for s in info["streams"] if s["codec_type"] == "video")
    audio = next(s for s in info["streams"] if s["codec_type"] == "audio")
    assert video["codec_name"] == "h264" and video["pix_fmt"] == "yuv420p" and audio["codec_name"] == "aac"
    assert int(video["nb_read_frames"]) == plan.total_frames
    assert (int(video["width"]), int(video["height"])) == (128, 224)
    v_dur, a_dur = float(video["duration"]), float(audio["duration"])
    assert abs(v_dur - a_dur) <= 1 / 24 + 0.025  # AAC frames are 21 ms at 48 kHz
    assert abs(v_dur - plan.total_frames / 24) < 1e-3
    evts = baseline["events"]
    assert set(steps_with(evts, "step_finished")) >= {"ingest", "vad", "plan", "portrait", "stitch", "report"} | {f"segment_{i:03d}" for i in range(len(plan.segments))}
    assert (baseline["output"].with_name("video.report.json")).is_file()


def test_manifest_warnings_are_shown_once_when_the_step_runs_and_again_on_status(baseline):
    """The drawn portrait is 256×320, under the 512-px short side: a warning that used to live only in the manifest."""
    logs = [e["message"] for e in baseline["events"] if e["event"] == "log" and e["level"] == "warning"]
    assert sum("portrait.png is small" in m for m in logs) == 1
    proc = longtake("status", str(baseline["project"]))
    lines = [line.strip() for line in proc.stdout.splitlines()]
    portrait_at = next(i for i, line in enumerate(lines) if line.startswith("portrait "))
    assert lines[portrait_at + 1].startswith("warning: portrait portrait.png is small")
    statuses = {s["step"]: s for s in json.loads(longtake("status", str(baseline["project"]), "--json").stdout)}
    assert any("is small" in w for w in statuses["portrait"]["warnings"])


def test_second_run_is_entirely_cached(baseline):
    proc = longtake("run", str(baseline["project"]), "--json", check=True)
    evts = events(proc)
    assert steps_with(evts, "step_started") == []
    assert len(steps_with(evts, "step_cached")) >= len(baseline["plan"].segments) + 6
    status = longtake("status", str(baseline["project"]))
    assert status.returncode == 0 and "to run" not in status.stdout


def _copy_project(baseline, dest: Path, **overrides) -> Path:
    """A project over the same media in a fresh folder (nothing cached)."""
    data = yaml.safe_load(baseline["project"].read_text())
    for key, value in overrides.items():
        data[key] = {**data[key], **value} if isinstance(value, dict) and isinstance(data.get(key), dict) else value
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / "project.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _run_and_kill(project: Path, when) -> list[dict]:
    """Start `longtake run --json`, SIGKILL it when ``when(event, elapsed_s)`` says so; return the events seen."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator.cli", "run", str(project), "--json"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env=env, cwd=REPO)
    seen, t0 = [], time.monotonic()
    try:
        for line in proc.stdout:
            if not line.startswith("{"):
                continue
            event = json.loads(line)
            seen.append(event)
            delay = when(event, time.monotonic() - t0)
            if delay is not None:
                time.sleep(delay)
                proc.send_signal(signal.SIGKILL)
                break
    finally:
        proc.wait(timeout=120)
    return seen


KILL_POINTS = {
    # after the second segment finished, a few ms into the third (mid cache write / mid render)
    "mid-segment": lambda e, t: 0.05 if e["event"] == "step_finished" and e["step"] == "segment_001" else None,
    # during the stitch
    "mid-stitch": lambda e, t: 0.15 if e["event"] == "step_started" and e["step"] == "stitch" else None,
    # right as a segment's cache entry is being committed: kill immediately on the next step start
    "at-commit": lambda e, t: 0.0 if e["event"] == "step_started" and e["step"] == "segment_003" else None,
    # during the report, after the video was exported
    "mid-report": lambda e, t: 0.1 if e["event"] == "step_started" and e["step"] == "report" else None,
}


@pytest.mark.parametrize("point", sorted(KILL_POINTS))
def test_sigkill_anywhere_then_rerun_gives_the_same_video(baseline, tmp_path, point):
    project = _copy_project(baseline, tmp_path / point)
    seen = _run_and_kill(project, KILL_POINTS[point])
    finished = [s for s in steps_with(seen, "step_finished") if s.startswith("segment_")]
    assert seen, "the run printed no events before it was killed"
    rerun = longtake("run", str(project), "--json", check=True)
    evts = events(rerun)
    cached = set(steps_with(evts, "step_cached"))
    assert set(finished) <= cached, f"finished before the kill but redone: {set(finished) - cached}"
    assert not set(finished) & set(steps_with(evts, "step_started"))
    assert frame_digest(tmp_path / point / "out" / "video.mp4") == frame_digest(baseline["output"])
    # nothing half-written is left behind
    work = tmp_path / point / "project.longtake-work" / "cache"
    assert not [p for p in work.rglob(".tmp-*")]


def test_prompt_change_reruns_that_segment_and_the_ones_after_in_tail_mode(baseline, tmp_path):
    project = _copy_project(baseline, tmp_path / "chain")
    shutil.copytree(baseline["folder"] / "project.longtake-work", tmp_path / "chain" / "project.longtake-work")
    n = len(baseline["plan"].segments)
    k = 2
    data = yaml.safe_load(project.read_text())
    data["segments"] = [{"index": k, "prompt": "the person laughs"}]
    project.write_text(yaml.safe_dump(data, sort_keys=False))
    status = longtake("status", str(project), "--json")
    assert status.returncode == 1
    reasons = {s["step"]: s["reason"] for s in json.loads(status.stdout)}
    assert reasons[f"segment_{k:03d}"] == "prompt changed"
    assert reasons[f"segment_{k + 1:03d}"] == f"waits on segment_{k:03d}"
    assert reasons["segment_000"] == "done" and reasons["plan"] == "done"
    evts = events(longtake("run", str(project), "--json", check=True))
    ran = [s for s in steps_with(evts, "step_started") if s != "encode_prompts"]
    # k reruns, and k+1 because its context (k's tail) changed. Keys are content-addressed, so the
    # chain stops as soon as a segment's tail comes out byte-identical (the animatic only eases from its
    # context); every later rerun must be explained by a changed input segment, and nothing before k runs.
    reruns = [s for s in ran if s.startswith("segment_")]
    assert reruns[:2] == [f"segment_{k:03d}", f"segment_{k + 1:03d}"]
    assert reruns == [f"segment_{i:03d}" for i in range(k, k + len(reruns))]
    assert ran[len(reruns):] == ["stitch", "report"]
    reasons = {e["step"]: e.get("reason") for e in evts if e["event"] == "step_started"}
    for i in range(k + 1, k + len(reruns)):
        assert reasons[f"segment_{i:03d}"] == f"input segment {i - 1} changed"
    assert set(steps_with(evts, "step_cached")) >= {f"segment_{i:03d}" for i in range(0, k)} | {f"segment_{i:03d}" for i in range(k + len(reruns), n)}


@pytest.mark.parametrize("mode", ["anchor", "bookend"])
def test_prompt_change_reruns_only_that_segment_in_independent_modes(baseline, tmp_path, mode):
    project = _copy_project(baseline, tmp_path / mode, generator={"backend": "animatic", "chaining": mode})
    longtake("run", str(project), check=True)
    if mode == "bookend":
        plan = Plan.load(next((tmp_path / mode / "project.longtake-work" / "cache" / "plan").glob("*/plan.json")))
        assert all(s.context_frames == 0 for s in plan.segments)
        video = next(s for s in ffprobe(tmp_path / mode / "out" / "video.mp4")["streams"] if s["codec_type"] == "video")
        assert int(video["nb_read_frames"]) == plan.total_frames
        assert json.loads((tmp_path / mode / "out" / "video.report.json").read_text())["seams_summary"]["chaining"] == "bookend"
    data = yaml.safe_load(project.read_text())
    data["segments"] = [{"index": 1, "prompt": "the person nods"}]
    project.write_text(yaml.safe_dump(data, sort_keys=False))
    ran = steps_with(events(longtake("run", str(project), "--json", check=True)), "step_started")
    assert ran == ["segment_001", "encode_prompts", "stitch", "report"]


def test_export_change_reruns_only_stitch_and_report(baseline, tmp_path):
    project = _copy_project(baseline, tmp_path / "export", export={"preset": "master", "x264_preset": "superfast"})
    shutil.copytree(baseline["folder"] / "project.longtake-work", tmp_path / "export" / "project.longtake-work")
    reasons = {s["step"]: s["reason"] for s in json.loads(longtake("status", str(project), "--json").stdout)}
    assert reasons["stitch"] == "export changed" and reasons["report"] == "waits on stitch"
    ran = steps_with(events(longtake("run", str(project), "--json", check=True)), "step_started")
    assert ran == ["stitch", "report"]


def test_dry_run_only_segments_and_redo(baseline, tmp_path):
    project = _copy_project(baseline, tmp_path / "select")
    dry = longtake("run", str(project), "--dry-run")
    assert dry.returncode == 0 and "ingest" in dry.stdout and "missing" in dry.stdout
    assert not (tmp_path / "select" / "project.longtake-work" / "cache").exists() or not list((tmp_path / "select" / "project.longtake-work" / "cache").rglob("manifest.json"))
    bad = longtake("run", str(project), "--only-segments", "1")
    assert bad.returncode == 2 and "segment 1" in bad.stderr and "segment_000" in bad.stderr
    ran = steps_with(events(longtake("run", str(project), "--only-segments", "0,1", "--json", check=True)), "step_started")
    assert [s for s in ran if s.startswith("segment_")] == ["segment_000", "segment_001"] and "stitch" not in ran
    redo = steps_with(events(longtake("run", str(project), "--redo", "1", "--json", check=True)), "step_started")
    assert "segment_001" in redo and "segment_000" not in redo


def test_second_run_on_a_locked_workdir_names_the_holder(baseline):
    workdir = baseline["folder"] / "project.longtake-work"
    with WorkdirLock(workdir, command="run"):
        proc = longtake("run", str(baseline["project"]))
    assert proc.returncode == 1
    assert str(os.getpid()) in proc.stderr


def test_disk_full_during_a_segment_keeps_finished_segments(baseline, tmp_path, monkeypatch, capsys):
    project = _copy_project(baseline, tmp_path / "full")
    from generators.animatic import AnimaticGenerator

    real = AnimaticGenerator.generate

    def full_on_segment_2(self, request, progress=None):
        if request.segment_index == 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(request.out_dir / "clip.mp4"))
        return real(self, request, progress)

    monkeypatch.setattr(AnimaticGenerator, "generate", full_on_segment_2)
    code = main(["run", str(project), "--json"])
    err = capsys.readouterr()
    assert code == 1
    assert "space" in err.err.lower() and "free" in err.err.lower()
    done = set(steps_with([json.loads(l) for l in err.out.splitlines() if l.startswith("{")], "step_finished"))
    assert {"segment_000", "segment_001"} <= done
    monkeypatch.setattr(AnimaticGenerator, "generate", real)
    rerun = events(longtake("run", str(project), "--json", check=True))
    assert {"segment_000", "segment_001"} <= set(steps_with(rerun, "step_cached"))
    assert "segment_002" in steps_with(rerun, "step_started")


def test_clean_removes_only_unused_entries(baseline, tmp_path):
    project = _copy_project(baseline, tmp_path / "clean")
    shutil.copytree(baseline["folder"] / "project.longtake-work", tmp_path / "clean" / "project.longtake-work")
    data = yaml.safe_load(project.read_text())
    data["segments"] = [{"index": len(baseline["plan"].segments) - 1, "prompt": "a last smile"}]
    project.write_text(yaml.safe_dump(data, sort_keys=False))
    longtake("run", str(project), check=True)
    out = longtake("clean", str(project), "--yes", check=True).stdout
    assert out.startswith("removed 3 ")  # the old last segment, stitch and report
    assert longtake("status", str(project)).returncode == 0


def test_init_writes_a_project_that_plans(tmp_path, speech_flac, portrait_png):
    vo = tmp_path / "vo.flac"
    shutil.copy(speech_flac, vo)
    proc = longtake("init", str(vo), str(portrait_png), "--backend", "animatic", check=True)
    project = tmp_path / "project.yaml"
    assert str(project) in proc.stdout
    again = longtake("init", str(vo), str(portrait_png))
    assert again.returncode == 2 and "--force" in again.stderr
    plan = longtake("plan", str(project), "--json", check=True)
    assert json.loads(plan.stdout)["version"] == 1


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_or_ctrl_c_exits_130_and_the_rerun_resumes(baseline, tmp_path, sig):
    project = _copy_project(baseline, tmp_path / sig.name)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    # A suite started as a background job of a non-interactive shell (`cmd &`) passes SIGINT down ignored, and a
    # Python that starts with SIGINT ignored never raises KeyboardInterrupt: give the run the default disposition.
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator.cli", "run", str(project), "--json"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=REPO,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
    finished = []
    for line in proc.stdout:
        event = json.loads(line)
        if event["event"] == "step_finished" and event["step"].startswith("segment_"):
            finished.append(event["step"])
            if len(finished) == 2:
                proc.send_signal(sig)
                break
    proc.stdout.read()
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 130
    assert "run the same command again to resume" in err
    rerun = events(longtake("run", str(project), "--json", check=True))
    assert set(finished) <= set(steps_with(rerun, "step_cached"))
    assert frame_digest(tmp_path / sig.name / "out" / "video.mp4") == frame_digest(baseline["output"])
