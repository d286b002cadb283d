"""The Ray executor on a real local cluster (2 CPUs, 2 pretend GPUs), the animatic generator standing in for LTX:
a batch of projects renders frame-identical to sequential runs, and an actor SIGKILLed mid-segment loses nothing."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from orchestrator.cache import StepCache, _owner_of
from tests.orchestrator.conftest import REPO, events, longtake, write_project

ray = pytest.importorskip("ray", reason="the Ray executor is the optional extra longtake[ray]")

PROJECTS = {  # three projects unlike each other: chained, independent, and another seed
    "tail": {"generator": {"backend": "animatic", "chaining": "tail"}},
    "anchor": {"generator": {"backend": "animatic", "chaining": "anchor"}, "seed": 11},
    "lastframe": {"generator": {"backend": "animatic", "chaining": "last-frame"}, "seed": 5},
}


def frame_digest(path: Path) -> str:
    out = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:v", "-f", "md5", "-"], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """`ray start --head` with 2 CPUs and 2 GPU slots, stopped by killing the process group it made (never `ray stop`)."""
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed")
    port = _free_port()
    ray_cli = Path(sys.executable).with_name("ray")
    proc = subprocess.Popen(
        [str(ray_cli), "start", "--head", "--block", f"--port={port}", "--num-cpus=2", "--num-gpus=2",
         "--include-dashboard=false", "--disable-usage-stats"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    lines = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "Ray runtime started" in line:
            break
    else:
        pass
    if proc.poll() is not None or not any("Ray runtime started" in ln for ln in lines):
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail("ray start failed:\n" + "".join(lines))
    threading.Thread(target=proc.stdout.read, daemon=True).start()  # keep its pipe drained
    try:
        yield f"127.0.0.1:{port}"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="module")
def sequential(tmp_path_factory, speech_flac, portrait_png):
    """Each project rendered alone by a plain `longtake run`: the reference frames."""
    digests = {}
    for name, overrides in PROJECTS.items():
        folder = tmp_path_factory.mktemp(f"seq-{name}")
        project = write_project(folder, speech_flac, portrait_png, **overrides)
        longtake("run", str(project), check=True)
        digests[name] = frame_digest(folder / "out" / "video.mp4")
    return digests


def _batch(root: Path, speech_flac: Path, portrait_png: Path, names) -> dict[str, Path]:
    projects = {}
    for name in names:
        folder = root / name
        path = write_project(folder, speech_flac, portrait_png, **PROJECTS[name])
        projects[name] = path.rename(root / f"{name}.yaml")
        # The project's relative paths (workdir, output) resolve against the file's folder: keep them per project.
        text = projects[name].read_text().replace("output: out/video.mp4", f"output: {name}/out/video.mp4")
        projects[name].write_text(text + f"workdir: {name}/work\n")
    return projects


def test_a_batch_on_the_pool_matches_sequential_runs_frame_for_frame(tmp_path, cluster, sequential, speech_flac, portrait_png):
    projects = _batch(tmp_path, speech_flac, portrait_png, PROJECTS)
    proc = longtake("run", str(tmp_path), "--ray", cluster, "--json", timeout=600)
    assert proc.returncode == 0, proc.stderr
    evts = events(proc)
    finished = [e for e in evts if e["event"] == "step_finished" and e.get("step", "").startswith("segment_")]
    assert len(finished) == len({(e["project"], e["step"]) for e in finished})  # each segment reported once
    assert finished and all(e["host"] and e["gpu"] in ("0", "1") and e["project"] for e in finished)
    assert {e["gpu"] for e in finished} == {"0", "1"}  # both actors worked
    # Both actors loaded the generator before the first segment went out, so segment times are segment work.
    loaded = [i for i, e in enumerate(evts) if e["event"] == "generator_loaded" and e.get("gpu") is not None]
    first_segment = next(i for i, e in enumerate(evts) if e["event"] == "step_started" and e.get("step", "").startswith("segment_"))
    assert {evts[i]["gpu"] for i in loaded} == {"0", "1"} and max(loaded) < first_segment
    assert all(evts[i]["ok"] and evts[i]["seconds"] >= 0 and evts[i]["host"] for i in loaded)
    assert {e["project"] for e in evts if e["event"] == "project_finished" and e["ok"]} == {str(p) for p in projects.values()}
    for name in PROJECTS:
        assert frame_digest(tmp_path / name / "out" / "video.mp4") == sequential[name], name
        assert (tmp_path / name / "work" / "state.json").is_file()  # the driver remembered what the actors made
    # The same batch again is all cached: nothing is sent to an actor.
    again = longtake("run", *(str(p) for p in projects.values()), "--ray", cluster, "--json", timeout=600)
    assert again.returncode == 0, again.stderr
    assert not [e for e in events(again) if e["event"] in ("step_started", "generator_loaded")]  # nor is a model loaded


def test_the_pool_sends_the_largest_waiting_segment_first(tmp_path, cluster, sequential, speech_flac, portrait_png):
    """anchor's segments are all ready at once: they go out longest first (even shares of the GPUs), not in plan order."""
    import json

    projects = _batch(tmp_path, speech_flac, portrait_png, ["anchor"])
    proc = longtake("run", str(projects["anchor"]), "--ray", cluster, "--json", timeout=600)
    assert proc.returncode == 0, proc.stderr
    frames = {f"segment_{s['index']:03d}": s["gen_frames"] for s in json.loads((tmp_path / "anchor" / "work" / "plan.json").read_text())["segments"]}
    started = [e["step"] for e in events(proc) if e["event"] == "step_started" and e.get("step", "").startswith("segment_")]
    assert sorted(started) == sorted(frames) and started != sorted(started)  # all of them, and not in plan order
    sizes = [frames[step] for step in started]
    assert sizes == sorted(sizes, reverse=True), sizes
    assert frame_digest(tmp_path / "anchor" / "out" / "video.mp4") == sequential["anchor"]


def test_one_failing_project_does_not_stop_the_others(tmp_path, cluster, sequential, speech_flac, portrait_png):
    projects = _batch(tmp_path, speech_flac, portrait_png, ["anchor"])
    broken = tmp_path / "broken.yaml"
    broken.write_text(projects["anchor"].read_text().replace("anchor/work", "broken/work") + "voiceover_typo: 1\n")
    missing = tmp_path / "missing.yaml"
    missing.write_text(projects["anchor"].read_text().replace("anchor/work", "missing/work").replace(str(speech_flac), str(tmp_path / "nope.flac")))
    proc = longtake("run", str(projects["anchor"]), str(broken), str(missing), "--ray", cluster, timeout=600)
    assert proc.returncode == 1
    assert f"FAILED  {broken}" in proc.stderr and f"FAILED  {missing}" in proc.stderr and f"ok      {projects['anchor']}" in proc.stderr
    assert "1 of 3 project(s) finished, 2 failed" in proc.stderr
    assert frame_digest(tmp_path / "anchor" / "out" / "video.mp4") == sequential["anchor"]


def test_an_actor_killed_mid_segment_loses_nothing_and_writes_each_entry_once(tmp_path, cluster, sequential, speech_flac, portrait_png):
    projects = _batch(tmp_path, speech_flac, portrait_png, ["anchor"])
    segment_dir = tmp_path / "anchor" / "work" / "cache" / "segment"
    killed: list[int] = []
    stop = threading.Event()

    def kill_first_writer() -> None:
        while not stop.is_set() and not killed:
            for child in segment_dir.glob(".tmp-*") if segment_dir.is_dir() else []:
                owner = _owner_of(child.name)
                if owner is not None and owner.pid != os.getpid():
                    os.kill(owner.pid, signal.SIGKILL)  # the actor's worker process, mid-segment
                    killed.append(owner.pid)
                    return
            time.sleep(0.005)

    watcher = threading.Thread(target=kill_first_writer, daemon=True)
    watcher.start()
    try:
        proc = longtake("run", str(projects["anchor"]), "--ray", cluster, "--json", timeout=600)
    finally:
        stop.set()
        watcher.join()
    assert killed, "no segment was caught in progress"
    assert proc.returncode == 0, proc.stderr
    assert frame_digest(tmp_path / "anchor" / "out" / "video.mp4") == sequential["anchor"]
    cache = StepCache(tmp_path / "anchor" / "work")
    segments = [e for e in cache.entries() if e.step == "segment"]
    evts = events(proc)
    plan_segments = {e["step"] for e in evts if e["event"] == "step_finished" and e.get("step", "").startswith("segment_")}
    assert len(segments) == len(plan_segments) > 1
    assert all(cache.lookup("segment", e.key, verify=True) is not None for e in segments)
    assert sorted(p.name for p in segment_dir.iterdir() if not p.name.startswith(".")) == sorted(e.key for e in segments)
    cache.sweep_temp()  # the killed writer's temp folder: its pid is dead on this host
    assert not list(segment_dir.glob(".*"))


def dying_actor_class(deaths_file: Path, victim: int, deaths: int | None):
    """A ``SegmentWorker`` whose generator, on segment ``victim``, writes half an output into the cache's temp folder
    and SIGKILLs its own process: ``deaths`` times in all (counted in ``deaths_file``), or every time (None).

    Built in a function so that Ray pickles the class by value: the actors see these arguments."""
    from orchestrator.ray_executor import SegmentWorker

    class DyingSegmentWorker(SegmentWorker):
        def _generator_for(self, project):
            generator, options = SegmentWorker._generator_for(self, project)
            generate = type(generator).generate

            def dying_generate(request, *args, **kwargs):
                died = int(deaths_file.read_text() or 0) if deaths_file.exists() else 0
                if request.segment_index == victim and (deaths is None or died < deaths):
                    deaths_file.write_text(str(died + 1))
                    (Path(request.out_dir) / "partial.mp4").write_bytes(b"torn")
                    os.kill(os.getpid(), signal.SIGKILL)
                return generate(generator, request, *args, **kwargs)

            generator.generate = dying_generate
            return generator, options

    return DyingSegmentWorker


@pytest.mark.parametrize("deaths", [2, None], ids=["dies-twice", "always-dies"])
def test_a_segment_ray_gives_up_on_is_resubmitted_to_another_actor(deaths, tmp_path, cluster, speech_flac, portrait_png, monkeypatch):
    """Ray restarts an actor once and reruns its task once here, so a segment that kills its actor twice makes Ray
    give up on that actor: the driver retires it, starts a fresh one, and resubmits the segment (up to RESUBMITS
    times, then that project fails saying so); one cache entry per segment, and the sweep leaves no torn folder."""
    from orchestrator import ray_executor
    from orchestrator.batch import run_projects
    from orchestrator.events import Events

    victim = 1
    monkeypatch.setattr(ray_executor, "ACTOR_MAX_RESTARTS", 1)
    monkeypatch.setattr(ray_executor, "ACTOR_TASK_RETRIES", 1)
    worker = dying_actor_class(tmp_path / "deaths", victim, deaths)
    monkeypatch.setattr(ray_executor, "_actor_class", lambda ray: ray.remote(max_restarts=1, max_task_retries=1)(worker))
    projects = _batch(tmp_path, speech_flac, portrait_png, ["anchor"])
    [run] = run_projects([projects["anchor"]], events=Events(progress=False), json_out=False, address=cluster)
    segment_dir = tmp_path / "anchor" / "work" / "cache" / "segment"
    died = int((tmp_path / "deaths").read_text())
    if deaths is None:
        # Three attempts (the first and RESUBMITS more), each on an actor Ray gave up on after two deaths.
        assert died == 2 * (ray_executor.RESUBMITS + 1)
        assert run.failed and run.error.startswith(f"segment {victim} lost its actor {ray_executor.RESUBMITS + 1} times")
    else:
        assert died == 2 and not run.failed, run.error
        assert (tmp_path / "anchor" / "out" / "video.mp4").is_file()
    cache = StepCache(tmp_path / "anchor" / "work")
    segments = [e for e in cache.entries() if e.step == "segment"]
    keys = sorted(p.name for p in segment_dir.iterdir() if not p.name.startswith("."))
    assert keys == sorted(e.key for e in segments) and len(set(keys)) == len(keys)
    assert len(segments) == len(run.graph.plan.segments) - (deaths is None)  # all but the victim when it always dies
    assert all(cache.lookup("segment", e.key, verify=True) is not None for e in segments)
    assert list(segment_dir.glob(".tmp-*")), "the killed actors left no temp folder: the test killed nothing mid-write"
    cache.sweep_temp()  # the dead actors' temp folders: their pids are dead on this host
    assert not list(segment_dir.glob(".*"))


def test_a_project_is_stitched_while_the_pool_still_generates_another(tmp_path, cluster, sequential, speech_flac, portrait_png):
    """anchor's segments all go out at once, tail's one after another behind them: anchor's stitch starts on the
    driver's finishing thread before tail's last segment is done (not after the whole pool), and both videos are
    still frame-identical to sequential runs."""
    projects = _batch(tmp_path, speech_flac, portrait_png, ["anchor", "tail"])
    anchor, tail = str(projects["anchor"]), str(projects["tail"])
    proc = longtake("run", anchor, tail, "--ray", cluster, "--json", timeout=600)
    assert proc.returncode == 0, proc.stderr
    evts = events(proc)
    assert len(evts) == len(proc.stdout.splitlines())  # every stdout line a whole JSON event, though two threads write
    stitch_started = [i for i, e in enumerate(evts) if e["event"] == "step_started" and e.get("step") == "stitch"]
    assert [evts[i]["project"] for i in stitch_started] == [anchor, tail]
    tail_segments = [i for i, e in enumerate(evts)
                     if e["event"] == "step_finished" and e.get("step", "").startswith("segment_") and e["project"] == tail]
    assert len(tail_segments) > 1
    assert stitch_started[0] < max(tail_segments), "anchor was stitched only after tail's last segment"
    assert stitch_started[1] > max(tail_segments)
    # Once no segment is left the actors go (their GPUs back to the cluster) while the last project is stitched.
    released = [i for i, e in enumerate(evts) if e["event"] == "pool_released"]
    tail_stitched = next(i for i, e in enumerate(evts) if e["event"] == "step_finished" and e.get("step") == "stitch" and e["project"] == tail)
    assert len(released) == 1 and max(tail_segments) < released[0] < tail_stitched
    assert {e["project"] for e in evts if e["event"] == "project_finished" and e["ok"]} == {anchor, tail}
    for name in ("anchor", "tail"):
        assert frame_digest(tmp_path / name / "out" / "video.mp4") == sequential[name], name


def test_a_finishing_step_that_fails_fails_only_its_project_while_the_pool_goes_on(tmp_path, cluster, sequential, speech_flac,
                                                                                   portrait_png, monkeypatch):
    """The disk fills while anchor is stitched (early: tail's chained segments are still generating): anchor fails
    with the disk's sentence and keeps its segments, tail goes on and finishes, the batch exits 1."""
    import errno

    import stitchers.stitch
    from orchestrator.batch import exit_code, format_summary, run_projects
    from orchestrator.events import Events

    projects = _batch(tmp_path, speech_flac, portrait_png, ["anchor", "tail"])
    tail_entries = tmp_path / "tail" / "work" / "cache" / "segment"
    tail_done_then: list[int] = []
    real_stitch = stitchers.stitch.stitch

    def stitch(plan, clips, audio, out, **kwargs):
        if Path(out).is_relative_to(tmp_path / "anchor"):
            tail_done_then.append(len([p for p in tail_entries.iterdir() if not p.name.startswith(".")]) if tail_entries.is_dir() else 0)
            raise OSError(errno.ENOSPC, "No space left on device", str(out))
        return real_stitch(plan, clips, audio, out, **kwargs)

    monkeypatch.setattr(stitchers.stitch, "stitch", stitch)
    runs = run_projects([projects["anchor"], projects["tail"]], events=Events(progress=False), json_out=False, address=cluster)
    by_name = {Path(r.name).stem: r for r in runs}
    assert by_name["anchor"].failed and "write the cache entry for step `stitch`" in by_name["anchor"].error
    assert "Finished steps are kept" in by_name["anchor"].error
    assert not by_name["tail"].failed, by_name["tail"].error
    assert tail_done_then and tail_done_then[0] < len(by_name["tail"].graph.plan.segments), "anchor was stitched after tail's segments"
    assert exit_code(runs) == 1
    summary = format_summary(runs)
    assert f"FAILED  {projects['anchor']}: " in summary and f"ok      {projects['tail']}: " in summary
    assert "1 of 2 project(s) finished, 1 failed (finished work is kept)" in summary
    assert frame_digest(tmp_path / "tail" / "out" / "video.mp4") == sequential["tail"]
    assert not (tmp_path / "anchor" / "out" / "video.mp4").exists()
    anchor_cache = StepCache(tmp_path / "anchor" / "work")
    assert len([e for e in anchor_cache.entries() if e.step == "segment"]) == len(by_name["anchor"].graph.plan.segments)
    assert not list((tmp_path / "anchor" / "work" / "cache" / "stitch").glob(".tmp-*"))  # the failed stitch left nothing


def test_ctrl_c_stops_the_finishing_thread_at_its_next_progress_report():
    """Ctrl-C reaches the main thread only: the project being finished stops at its next progress report (not after
    its whole stitch), the queued one never starts, and no finishing thread is left to hold up the exit."""
    from types import SimpleNamespace

    from orchestrator.events import Events
    from orchestrator.ray_executor import Finisher, ProjectRun

    started, finished = threading.Event(), []

    class EndlessStitch:
        def __init__(self, name):
            self.name, self.events, self.plan = name, Events(progress=False), SimpleNamespace(segments=[])

        def finish(self, summary):
            started.set()
            for frame in range(1, 1_000_000):
                self.events.progress("stitching frame", frame, 1_000_000)
                time.sleep(0.001)
            finished.append(self.name)

    runs = [ProjectRun(name, None, EndlessStitch(name)) for name in ("first", "queued")]  # type: ignore[arg-type]
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        with Finisher() as finisher:
            for run in runs:
                finisher.submit(run)
            assert started.wait(30)
            raise KeyboardInterrupt
    assert time.monotonic() - t0 < 30
    assert not [t for t in threading.enumerate() if t.name.startswith("longtake-finish")]
    assert not finished and not any(r.failed for r in runs)  # interrupted, not failed: the same command resumes
