"""`longtake run` with several projects and no Ray: one after another, each with its own outcome."""

from __future__ import annotations

import shutil

import pytest

from orchestrator.batch import expand_project_paths
from orchestrator.errors import ConfigError
from tests.orchestrator.conftest import events, longtake, write_project


def test_a_folder_stands_for_its_project_files_and_duplicates_count_once(tmp_path):
    for name in ("b.yaml", "a.yml", "notes.txt"):
        (tmp_path / name).write_text("x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.yaml").write_text("x")
    assert expand_project_paths([tmp_path, tmp_path / "a.yml"]) == [tmp_path / "a.yml", tmp_path / "b.yaml"]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match="no project files"):
        expand_project_paths([empty])


def test_a_sequential_batch_reports_each_project_and_exits_1_when_one_failed(tmp_path, speech_flac, portrait_png):
    if shutil.which("ffprobe") is None:
        pytest.skip("ffprobe is not installed")
    good = write_project(tmp_path / "good", speech_flac, portrait_png, generator={"backend": "animatic", "chaining": "anchor"})
    bad_dir = tmp_path / "bad"
    bad_dir.mkdir()
    bad = bad_dir / "project.yaml"
    bad.write_text(good.read_text().replace(str(portrait_png), str(tmp_path / "no-such.png")))
    proc = longtake("run", str(bad), str(good), "--json")
    assert proc.returncode == 1, proc.stderr
    finished = {e["project"]: e for e in events(proc) if e["event"] == "project_finished"}
    assert finished[str(good)]["ok"] and (tmp_path / "good" / "out" / "video.mp4").is_file()
    assert not finished[str(bad)]["ok"] and "no-such.png" in finished[str(bad)]["error"]
    # Per-project events say whose they are.
    steps = [e for e in events(proc) if e["event"] == "step_finished"]
    assert str(good) in {e.get("project") for e in steps} <= {str(good), str(bad)}
    assert {e["project"] for e in steps if e["step"].startswith("segment_")} == {str(good)}
    human = longtake("run", str(bad), str(good))
    assert human.returncode == 1
    assert f"FAILED  {bad}" in human.stderr and f"ok      {good}" in human.stderr and "1 of 2 project(s) finished, 1 failed" in human.stderr


def test_gpus_and_ray_together_is_a_usage_error(tmp_path):
    proc = longtake("run", str(tmp_path / "x.yaml"), "--gpus", "2", "--ray", "auto")
    assert proc.returncode == 2 and "not both" in proc.stderr


def test_a_sequential_batch_closes_each_projects_generator_before_the_next_loads(tmp_path, speech_flac, portrait_png, monkeypatch):
    # Two resident models (or two context-parallel worker groups, one per process at most) must never overlap.
    from orchestrator import batch
    from orchestrator.events import Events
    from orchestrator.graph import RunGraph, RunSummary

    calls = []
    monkeypatch.setattr(RunGraph, "run", lambda self, **_kw: calls.append(("run", self.project.project_file)) or RunSummary())
    real_close = RunGraph.close
    monkeypatch.setattr(RunGraph, "close", lambda self: calls.append(("close", self.project.project_file)) or real_close(self))
    paths = [write_project(tmp_path / name, speech_flac, portrait_png) for name in ("a", "b")]
    runs = batch.run_projects(paths, events=Events(progress=False), json_out=False)
    assert not any(r.failed for r in runs)
    a, b = (str(p.resolve()) for p in paths)
    assert [(kind, str(path)) for kind, path in calls][:4] == [("run", a), ("close", a), ("run", b), ("close", b)]
