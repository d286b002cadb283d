"""Context parallelism in the real generator: rank 0 plus a spawned gloo worker on the CPU, the tiny LTX-2.3.

Two tail-chained segments (the second continues from the first's lossless tail, as steps.py chains them) are
generated with context_parallel 1 and 2 at the same seeds. Measured (float32): segment 0's latents differ by
8e-8 relative and its decoded uint8 frames by at most 1 code value (4e-5 of them: a value on a truncation edge);
segment 1 continues from that tail, so its latents differ by 1.4e-4 and its frames again by at most 1 code value
(1 % of them). Asserted: frames ≤ 1 code value apart in the chain, latents < 1e-6 relative from the same inputs
(segment 0, and segment 1 run on the one-process tail), < 1e-3 in the chain.
A worker that raises, or dies, must fail the segment on rank 0 with a GeneratorError naming it, write nothing,
and leave no process; one that fails before the group forms (no GPU context) or while loading its model must fail
``load()`` with its error within seconds, not after the collective timeout.
"""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from generators.ltx2 import LTX2Generator  # noqa: E402
from generators import ltx2_cp_launch  # noqa: E402
from generators.ltx2_cp_launch import ContextParallelGroup, worker_devices, worker_main  # noqa: E402
from generators.ltx2_speed import latent_rel_error  # noqa: E402
from orchestrator.errors import ConfigError, GeneratorError  # noqa: E402
from tests.generators.test_ltx2 import options, request  # noqa: E402
from tests.generators.test_ltx2_run import short_speech  # noqa: E402,F401 - a fixture
from tests.generators.tiny_ltx2 import build_tiny_ltx2  # noqa: E402

SEEDS = (11, 12)


def segment(gen: LTX2Generator, folder, index: int, context) -> dict:
    res = gen.generate(request(folder, index=index, context=context, seed=SEEDS[index]))
    return {"latents": gen.last_output.latents.clone(), "tail": np.load(res.tail_path), "clip": res.clip_path}


def chain(gen: LTX2Generator, folder) -> list[dict]:
    """Two tail-chained segments; each one's latents, tail frames and clip path."""
    first = segment(gen, folder / "seg0", 0, None)
    return [first, segment(gen, folder / "seg1", 1, first["tail"])]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return build_tiny_ltx2(tmp_path_factory.mktemp("ltx2") / "model")


@pytest.fixture(scope="module")
def runs(tiny_model, tmp_path_factory):
    """The chain with one process, then with two (the two-process generator stays loaded for the failure test)."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    single = LTX2Generator(options(tiny_model), cache_dir=tmp_path_factory.mktemp("cache1"))
    try:
        one = chain(single, tmp_path_factory.mktemp("cp1"))
    finally:
        single.close()
    split = LTX2Generator(options(tiny_model, context_parallel=2), cache_dir=tmp_path_factory.mktemp("cache2"))
    folder = tmp_path_factory.mktemp("cp2")
    two = chain(split, folder)
    same_context = segment(split, folder / "seg1-same-context", 1, one[0]["tail"])
    yield {"one": one, "two": two, "same_context": same_context, "gen": split}
    split.close()


def failing_worker(rank, world, options, device, port, jobs, reports):
    """The real worker, whose transformer raises on its third split pass (importable: spawn pickles it by name)."""
    from generators.ltx2_parallel import ContextParallelTransformer

    real = ContextParallelTransformer.__call__
    calls = {"n": 0}

    def flaky(self, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("injected failure in the worker's transformer")
        return real(self, **kwargs)

    ContextParallelTransformer.__call__ = flaky
    worker_main(rank, world, options, device, port, jobs, reports)


def worker_failing_early(rank, world, options, device, port, jobs, reports):
    """The real worker, failing where ``LONGTAKE_TEST_FAIL_AT`` says: ``join`` (its GPU context cannot be made, so it
    never reaches the rendezvous) or ``load`` (no room for the model). It writes when it failed to ``..._STAMP``."""
    from generators import ltx2_cp_launch as launch
    from generators.ltx2 import LTX2Generator

    def fail(message, after_s=0.0):
        def raiser(*_args, **_kwargs):
            time.sleep(after_s)
            with open(os.environ["LONGTAKE_TEST_FAIL_STAMP"], "w") as stamp:
                stamp.write(repr(time.time()))
            raise RuntimeError(message)

        return raiser

    if os.environ["LONGTAKE_TEST_FAIL_AT"] == "join":
        # Making a CUDA context takes a moment: rank 0 has long seen the process up when it fails.
        launch._init_group = fail("CUDA error: out of memory (injected: no context on this GPU)", after_s=1.0)
    else:
        LTX2Generator._load_pipeline = fail("not enough GPU memory to hold the model (injected)")
    worker_main(rank, world, options, device, port, jobs, reports)


@pytest.mark.parametrize(
    "where, error",
    [
        ("join", r"rank 1 \(cpu\) failed: RuntimeError: CUDA error: out of memory \(injected.* before it could join the group"),
        ("load", r"rank 1 \(cpu\) failed: RuntimeError: not enough GPU memory to hold the model \(injected\) before it could load the model"),
    ],
)
def test_a_worker_failing_before_the_group_is_up_fails_load_within_seconds(where, error, tiny_model, tmp_path, monkeypatch):
    import multiprocessing

    # Before the fix rank 0 sat in the rendezvous until this timeout (900 s in production) and then raised a bare
    # store error; lowered so that failure shows in half a minute.
    monkeypatch.setattr(ltx2_cp_launch, "COLLECTIVE_TIMEOUT_S", 30.0)
    monkeypatch.setattr(ContextParallelGroup, "worker_entry", staticmethod(worker_failing_early))
    monkeypatch.setenv("LONGTAKE_TEST_FAIL_AT", where)
    monkeypatch.setenv("LONGTAKE_TEST_FAIL_STAMP", str(tmp_path / "failed_at"))
    gen = LTX2Generator(options(tiny_model, context_parallel=2), cache_dir=tmp_path / "cache")
    try:
        with pytest.raises(GeneratorError, match=error):
            gen.load()
        delay_s = time.time() - float((tmp_path / "failed_at").read_text())
        assert delay_s < 10.0, f"rank 0 saw the worker's failure only {delay_s:.1f} s later"
        assert gen._cp is None
        assert not [p for p in multiprocessing.active_children() if p.name.startswith("longtake-cp-rank")]
    finally:
        gen.close()


# First: one process joins one group at a time, and the module-scoped two-process generator below stays loaded.
def test_a_worker_that_raises_fails_the_segment_with_its_error(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setattr(ContextParallelGroup, "worker_entry", staticmethod(failing_worker))
    gen = LTX2Generator(options(tiny_model, context_parallel=2), cache_dir=tmp_path / "cache")
    try:
        gen.load()
        group = gen._cp
        with pytest.raises(GeneratorError, match=r"segment 0: context-parallel worker rank 1 \(cpu\) failed: RuntimeError: injected failure"):
            gen.generate(request(tmp_path / "seg"))
        assert not (tmp_path / "seg" / "clip.mp4").exists()
        assert group.closed and not any(p.is_alive() for p in group.processes)
    finally:
        gen.close()


@pytest.mark.parametrize("index", range(len(SEEDS)))
def test_two_processes_give_the_frames_of_one(runs, index):
    one, two = runs["one"][index], runs["two"][index]
    assert two["latents"].shape == one["latents"].shape
    assert latent_rel_error(one["latents"], two["latents"]) < (1e-6 if index == 0 else 1e-3)
    assert np.abs(two["tail"].astype(int) - one["tail"].astype(int)).max() <= 1
    assert two["clip"].is_file()


def test_from_the_same_context_the_chained_segment_matches_tightly(runs):
    assert latent_rel_error(runs["one"][1]["latents"], runs["same_context"]["latents"]) < 1e-6


def test_the_comparison_is_not_vacuous(runs):
    # Different seeds and the chained context make different latents; the workers ran (a group was up).
    assert latent_rel_error(runs["one"][1]["latents"], runs["one"][0]["latents"]) > 1e-2
    assert runs["gen"]._cp is not None and all(p.is_alive() for p in runs["gen"]._cp.processes)


def test_workers_write_nothing(runs, tmp_path):
    # Only rank 0 writes: each segment folder holds exactly the clip and the tail.
    for seg in runs["two"]:
        assert sorted(p.name for p in seg["clip"].parent.iterdir()) == ["clip.mp4", "tail.npy"]


def test_a_worker_that_dies_fails_the_segment_then_a_fresh_group_runs_the_next(runs, tmp_path):
    gen = runs["gen"]
    group = gen._cp
    victim = group.processes[0]

    def kill_at_second_step(done, _total, _stage):
        if done == 2:
            os.kill(victim.pid, signal.SIGKILL)

    with pytest.raises(GeneratorError, match=r"worker rank 1 \(cpu\) died \(exit code -9\).*not written"):
        gen.generate(request(tmp_path / "dead", seed=SEEDS[0]), progress=kill_at_second_step)
    assert not (tmp_path / "dead" / "clip.mp4").exists()
    assert group.closed and not any(p.is_alive() for p in group.processes)
    # The next segment starts a new group and gives the same frames as before.
    gen.generate(request(tmp_path / "again", seed=SEEDS[0]))
    assert gen._cp is not None and gen._cp is not group
    assert latent_rel_error(runs["one"][0]["latents"], gen.last_output.latents) < 1e-6
    # Closing lets the workers leave by themselves (exit code 0, not killed).
    fresh = gen._cp
    gen.close()
    assert gen._cp is None and [p.exitcode for p in fresh.processes] == [0]


def test_ctrl_c_during_a_segment_ends_the_workers(runs, tmp_path):
    gen = runs["gen"]  # closed by the test above: this segment starts a new group

    groups = []

    def interrupt_at_second_step(done, _total, _stage):
        if done == 2:
            groups.append(gen._cp)
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        gen.generate(request(tmp_path / "interrupted", seed=SEEDS[0]), progress=interrupt_at_second_step)
    assert gen._cp is None and not (tmp_path / "interrupted" / "clip.mp4").exists()
    assert groups[0].closed and not any(p.is_alive() for p in groups[0].processes)


def test_more_gpus_than_the_host_has_is_a_config_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)  # what a 2-GPU host reports
    assert worker_devices("cuda:1", 2) == ["cuda:1", "cuda:0"]
    assert worker_devices("cpu", 3) == ["cpu"] * 3
    with pytest.raises(ConfigError, match="context_parallel is 3 but this host has 2 CUDA device"):
        worker_devices("cuda", 3)


# -- configuration and the command line ---------------------------------------------------------------------------

def _project_error(tmp_path, portrait_png, generator: dict) -> str:
    from orchestrator.config import load_project
    from tests.orchestrator.conftest import write_project

    voiceover = tmp_path / "vo.wav"
    voiceover.write_bytes(b"")  # never read: validation fails first
    path = write_project(tmp_path, voiceover, portrait_png, generator=generator)
    with pytest.raises(ConfigError) as info:
        load_project(path)
    return str(info.value)


def test_context_parallel_must_be_a_positive_count(tmp_path, portrait_png):
    text = _project_error(tmp_path, portrait_png, {"backend": "ltx2", "context_parallel": 0})
    assert "context_parallel" in text and "greater than or equal to 1" in text


def test_context_parallel_on_another_backend_says_it_is_ltx2s(tmp_path, portrait_png):
    text = _project_error(tmp_path, portrait_png, {"backend": "animatic", "context_parallel": 2})
    assert "context_parallel splits an ltx2 segment" in text and "animatic backend runs no local transformer" in text


def test_cp_is_refused_with_a_pool_or_another_backend(tmp_path, portrait_png):
    from tests.orchestrator.conftest import longtake, write_project

    voiceover = tmp_path / "vo.wav"
    voiceover.write_bytes(b"")
    animatic = write_project(tmp_path, voiceover, portrait_png)
    proc = longtake("run", str(animatic), "--cp", "2")
    assert proc.returncode == 2 and "--cp 2 splits an ltx2 segment over GPUs; this project's generator.backend is animatic" in proc.stderr
    proc = longtake("run", str(animatic), "--cp", "2", "--gpus", "2")
    assert proc.returncode == 2 and "give --cp N" in proc.stderr
    # A pool gives each segment one GPU: a project asking for more is refused, and no pool is started for nothing.
    pooled = write_project(tmp_path / "pooled", voiceover, portrait_png, generator={"backend": "ltx2", "chaining": "anchor", "context_parallel": 2})
    proc = longtake("run", str(pooled), "--gpus", "2")
    assert proc.returncode == 2 and "generator.context_parallel is 2, but --gpus/--ray give each segment one GPU" in proc.stderr


def test_gpus_on_a_tail_chained_project_splits_each_segment(tmp_path, tiny_model, short_speech, portrait_png):
    from segmenters.plan import Plan
    from tests.generators.test_ltx2_run import ltx2_project
    from tests.orchestrator.conftest import events, longtake, steps_with

    project = ltx2_project(tmp_path, short_speech, portrait_png, tiny_model)
    proc = longtake("run", str(project), "--gpus", "2", "--json", check=True, timeout=600)
    evts = events(proc)
    assert [e["gpus"] for e in evts if e["event"] == "context_parallel"] == [2]
    assert "each one is split over 2 GPUs with context parallelism (as --cp 2) instead of a Ray pool" in proc.stderr
    plan = Plan.load(next((tmp_path / "project.longtake-work" / "cache" / "plan").glob("*/plan.json")))
    assert len(plan.segments) >= 2
    assert len([s for s in steps_with(evts, "step_finished") if s.startswith("segment")]) == len(plan.segments)
    assert (tmp_path / "out" / "video.mp4").is_file()

