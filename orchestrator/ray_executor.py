"""Run the segments of one or many projects on a Ray pool: one actor per GPU, the generator resident in it.

``longtake run --gpus N`` starts a local Ray for the run; ``--ray ADDRESS``
joins an existing cluster. The driver (this process) holds every project's
work-folder lock, does the cheap CPU steps (ingest, VAD, plan, portrait), asks
each project's graph which segments can run now (``RunGraph.ready_segments``:
all of them in ``anchor``, whatever the graph says for modes whose segments
read no other segment, one at a time per project in chained modes) and hands
them to the actors, each idle actor taking the largest waiting segment. Stitching and the
report run on the driver as soon as a project's own segments are done: a ``Finisher``
thread works through the finished projects while the loop keeps the actors busy
with the others' segments (with dozens of projects, the GPUs no longer wait for
every stitch, nor every stitch for the last GPU segment).

Threads: the pool loop never touches a project once it is handed to the
finisher (its graph, summary and Events are the finisher's from then on); the
two share only the process's stdout/stderr (``orchestrator.events`` serialises
the writes) and the ``longtake`` logger (thread-safe). Ctrl-C reaches only the
main thread: the finisher then stops the project it is finishing at its next
progress report, drops the queued ones, and waits for that before the work
folders' locks are released.

The cache is the only channel for results: an actor writes a segment's entry
into the project's work folder with the same temp-folder-then-rename as a
local run, so that folder must be on storage every node sees at the same path
(NFS, Lustre, CephFS, ...; see the README). What travels through Ray is small:
the project (pydantic), a segment number, and a status dict back.

Faults: actors are created with ``max_restarts`` and ``max_task_retries``, so
Ray restarts an actor whose process or node died (on any node with a free GPU)
and reruns the segment it held; if Ray gives up, the driver retires that actor
(kills it for good, which frees its GPU, and starts a fresh one in its place:
the pool keeps its size, a dead actor is never handed work) and resubmits the
segment to the pool up to ``RESUBMITS`` times before it fails that project.
A dead writer leaves only a temp folder, never a half entry; an entry is written once because a segment is in flight on one actor at a time,
and a retry that finds the entry done returns at once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import traceback
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.config import Project
from orchestrator.errors import ConfigError, LongtakeError
from orchestrator.events import Events
from orchestrator.graph import RunGraph, RunSummary, segment_node

log = logging.getLogger("longtake")

RESUBMITS = 2
ACTOR_MAX_RESTARTS = 4
ACTOR_TASK_RETRIES = 2
NAMESPACE = "longtake"


def require_ray():
    try:
        import ray
    except ImportError:
        raise ConfigError("--gpus/--ray need Ray: install the extra with `pip install 'longtake[ray]'`") from None
    return ray


class SegmentWorker:
    """Body of the Ray actor (see ``_actor_class``): holds one generator and runs segments with it."""

    def __init__(self) -> None:
        self._generator = None
        self._generator_key: str | None = None

    def where(self) -> dict:
        import ray

        from orchestrator.hosts import host_name

        gpus = [str(g) for g in ray.get_gpu_ids()]
        return {"host": host_name(), "node_ip": ray.util.get_node_ip_address(), "gpu": ",".join(gpus) or None, "pid": os.getpid(),
                "actor_id": ray.get_runtime_context().get_actor_id()}

    def _generator_for(self, project: Project):
        """The resident generator, loaded once; replaced only when a project asks for another model or options."""
        from generators import get_generator_class
        from orchestrator.cache import canonical_json

        options = project.generator
        if str(getattr(options, "device", "")).startswith("cuda:"):
            # Ray gives each actor its GPU through CUDA_VISIBLE_DEVICES: it is always cuda:0 in here.
            options = options.model_copy(update={"device": "cuda"})
        key = canonical_json(options.model_dump(mode="json"))
        if key != self._generator_key:
            if self._generator is not None:
                self._generator.close()
            self._generator = get_generator_class(options.backend)(options, cache_dir=Path(project.workdir) / "models")
            self._generator_key = key
        self._generator.cache_dir = Path(project.workdir) / "models"  # prompt embeddings go with their project
        return self._generator, options

    def _graph_for(self, project: Project, vad: str | None) -> RunGraph:
        """The project's graph in this actor, around the resident generator; it records nothing (the driver does)."""
        generator, options = self._generator_for(project)
        return RunGraph(project.model_copy(update={"generator": options}), Events(progress=False), vad=vad, generator=generator,
                        record=False)

    def load(self, project: Project, vad: str | None) -> dict:
        """Load the generator for ``project`` and encode its prompts before any segment is sent here.

        Without it each actor's first segment carried the model load and prompt encoding (~35 s of an LTX-2.3
        actor's first 704×1280 segment on an H200), serially inside the segment phase and billed to a segment.
        """
        t0 = time.monotonic()
        try:
            graph = self._graph_for(project, vad)
            if graph.run_plan(execute=False) is None:
                raise RuntimeError("the actors were loaded before the plan was done")
            graph.load_generator()
            outcome = {"ok": True}
        except LongtakeError as exc:
            outcome = {"ok": False, "error": str(exc)}
        except Exception as exc:  # the project's segments report it in full; loading is only a head start
            outcome = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        return {**outcome, "seconds": round(time.monotonic() - t0, 3), **self.where()}

    def run_segment(self, project: Project, index: int, force: bool, vad: str | None, job_id: int) -> dict:
        where = {**self.where(), "job_id": job_id}
        t0 = time.monotonic()
        try:
            graph = self._graph_for(project, vad)
            graph.prepare_segment(index)
            st = graph.resolve(segment_node(index), execute=True, force=force)
            return {"ok": st.done, "reason": st.reason, "seconds": round(time.monotonic() - t0, 3), **where}
        except LongtakeError as exc:
            return {"ok": False, "error": str(exc), "exit_code": exc.exit_code, **where}
        except Exception as exc:  # the driver reports it against its project; the actor stays up for others
            return {"ok": False, "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(), "exit_code": 1, **where}


def _actor_class(ray):
    return ray.remote(max_restarts=ACTOR_MAX_RESTARTS, max_task_retries=ACTOR_TASK_RETRIES)(SegmentWorker)


@dataclass
class ProjectRun:
    """One project of a batch: its graph, lock, and how it ended."""

    name: str
    project: Project
    graph: RunGraph
    redo: set[int] = field(default_factory=set)
    max_cost_usd: float | None = None  # generator.max_cost_usd unless --yes; checked before the first segment
    summary: RunSummary = field(default_factory=RunSummary)
    error: str | None = None
    exit_code: int = 0
    in_flight: set[int] = field(default_factory=set)
    finished: set[int] = field(default_factory=set)

    @property
    def failed(self) -> bool:
        return self.error is not None

    def fail(self, message: str, exit_code: int = 1) -> None:
        if self.error is None:
            self.error, self.exit_code = message, exit_code or 1


@dataclass
class _Job:
    run: ProjectRun
    index: int
    force: bool
    id: int
    attempts: int = 0
    size: float = 0.0  # segment_size: the order actors take waiting jobs in


def segment_size(run: ProjectRun, index: int) -> float:
    """A segment's generated pixel-frames: the pool sends the largest first. Within a project it orders segments as
    the cost model does (cost grows with frames); across projects of other sizes it is a unit-free stand-in."""
    plan = run.graph.plan
    seg = next(s for s in plan.segments if s.index == index)
    return float(plan.width * plan.height * seg.gen_frames)


class RayPool:
    """The actors of one ``longtake run``; ``with RayPool(...) as pool: pool.run(projects)``."""

    def __init__(self, *, gpus: int | None = None, address: str | None = None, events: Events, vad: str | None = None,
                 actors: int | None = None, gpus_per_actor: float = 1.0):
        self.ray = require_ray()
        self.events = events
        self.vad = vad
        self._started_here = address is None
        # The driver uses no GPU: keep Ray from rewriting its CUDA_VISIBLE_DEVICES (and from warning that it will stop).
        os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
        if address is None:
            if not gpus or gpus < 1:
                raise ConfigError(f"--gpus takes a number of GPUs of at least 1, got {gpus}")
            # A fresh local Ray, whatever RAY_ADDRESS says: --gpus means "this machine's GPUs".
            self.ray.init(address="local", num_gpus=gpus, include_dashboard=False, namespace=NAMESPACE, log_to_driver=False)
        else:
            self.ray.init(address=address, namespace=NAMESPACE, log_to_driver=False)
        total = int(self.ray.cluster_resources().get("GPU", 0))
        count = actors or gpus or total
        if count < 1:
            self.close()
            raise ConfigError(f"the Ray cluster at {address} has no GPUs; start its nodes with GPUs or use --gpus N locally")
        self._gpus_per_actor = gpus_per_actor
        self.actors = [self._new_actor() for _ in range(count)]
        self.where = {a._actor_id.hex(): w for a, w in zip(self.actors, self.ray.get([a.where.remote() for a in self.actors]))}
        events.emit("pool_started", actors=len(self.actors), workers=list(self.where.values()))

    def _new_actor(self):
        return _actor_class(self.ray).options(num_gpus=self._gpus_per_actor, num_cpus=0).remote()

    def _replace(self, old):
        """Kill the actor Ray gave up on for good (freeing its GPU) and start a fresh one (a new restart budget) instead."""
        with contextlib.suppress(Exception):
            self.ray.kill(old, no_restart=True)
        fresh = self._new_actor()
        self.actors[self.actors.index(old)] = fresh
        log.warning("replaced actor %s (Ray gave up on it) with %s", old._actor_id.hex(), fresh._actor_id.hex())
        return fresh  # its host and GPU are known from its first result (placing it may wait for a free GPU)

    def __enter__(self) -> "RayPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def release(self) -> None:
        """Kill the actors (their models leave the GPUs; on a shared cluster other jobs get them) once no segment is
        left to run; the pool is not used after this."""
        if not self.actors:
            return
        for actor in self.actors:
            with contextlib.suppress(Exception):
                self.ray.kill(actor, no_restart=True)
        self.events.emit("pool_released", actors=len(self.actors))
        self.actors = []

    def close(self) -> None:
        self.release()
        if self.ray.is_initialized():
            self.ray.shutdown()

    # ------------------------------------------------------------------------------------------
    def run(self, runs: list[ProjectRun], *, finisher: "Finisher | None" = None) -> None:
        """Feed every project's ready segments to the actors until each project is done or failed.

        A project whose segments are all done (run here or found cached) goes to ``finisher`` at once, and the loop
        leaves it alone from then on; without one, finishing is the caller's.

        Each idle actor takes the largest waiting segment (``segment_size``; the first waiting of equals): longest
        first keeps the GPUs' shares even. On the explainer's 22 segments, by the cost model, sending them in plan
        order would leave 2 GPUs at 1.91× and 8 at 6.2×, longest first at 1.99× and 7.4×; the first 8 at 384×704,
        which 2 H200s took in plan order at 1.88×, the model puts at 1.92× in order and 1.99× longest first.
        Ray places the actors and restarts them. Not
        ``ray.util.ActorPool``: it hands an actor back to its idle list, and the next waiting segment to it, before
        it raises that the actor died, so an actor Ray gave up on would take every segment in turn and lose it.
        """
        idle = list(self.actors)
        waiting: list[_Job] = []  # sorted largest first by dispatch()
        in_flight: dict[Any, tuple[Any, _Job]] = {}  # a run_segment call's ObjectRef -> its actor and job
        ids = iter(range(1 << 62))

        def dispatch() -> None:
            waiting.sort(key=lambda j: -j.size)  # once per dispatch; stable: equals keep the order they came in
            while idle and waiting:
                actor, job = idle.pop(0), waiting.pop(0)
                job.attempts += 1
                w = self.where.get(actor._actor_id.hex(), {})
                self.events.status(f"{job.run.name}: segment {job.index} on gpu {w.get('gpu')} of {w.get('host')}")
                self.events.emit("step_started", project=job.run.name, step=segment_node(job.index), host=w.get("host"),
                                 gpu=w.get("gpu"), attempt=job.attempts)
                in_flight[actor.run_segment.remote(job.run.project, job.index, job.force, self.vad, job.id)] = (actor, job)

        def submit(job: _Job) -> None:
            job.run.in_flight.add(job.index)
            job.size = segment_size(job.run, job.index)
            waiting.append(job)

        def feed() -> None:
            for run in runs:
                if (finisher is not None and run in finisher) or run.failed:  # in that order: a finisher thread may fail it
                    continue
                ready, done = run.graph.ready_segments(run.in_flight | run.finished, run.redo)
                for index in done:
                    run.finished.add(index)
                    run.summary.cached.append(segment_node(index))
                    run.graph.events.segment_done(0.0, cached=True)
                for index in ready:
                    submit(_Job(run, index, index in run.redo, next(ids)))
                if finisher is not None and not run.in_flight and not _missing_segments(run):
                    finisher.submit(run)
            dispatch()

        self._load_actors(runs)
        feed()
        while in_flight:
            [ref], _ = self.ray.wait(list(in_flight), num_returns=1)
            actor, job = in_flight.pop(ref)
            try:
                result = self.ray.get(ref)
            except self.ray.exceptions.RayActorError as exc:
                job.run.in_flight.discard(job.index)
                idle.append(self._replace(actor))
                if job.attempts <= RESUBMITS:
                    log.warning("%s: Ray gave up on the actor running segment %d (%s); resubmitting it", job.run.name, job.index, exc)
                    submit(job)
                else:
                    job.run.fail(f"segment {job.index} lost its actor {job.attempts} times: {exc}")
                feed()
                continue
            idle.append(actor)
            self._remember_place(result)  # each time: a replacement is placed late, and Ray may restart an actor elsewhere
            self._finished(job, result)
            feed()

    def _remember_place(self, result: dict) -> None:
        if result.get("actor_id"):
            self.where[result["actor_id"]] = {k: result.get(k) for k in ("host", "node_ip", "gpu", "pid", "actor_id")}

    def _load_actors(self, runs: list[ProjectRun]) -> None:
        """Every actor loads the generator of the first project with segments to run, all at once, before the first
        segment goes out: segment times are then segment work, and the pool's GPUs start together."""
        first = next((r for r in runs if not r.failed and r.graph.ready_segments(set(), r.redo)[0]), None)
        if first is None:  # everything cached or failed: no model to load
            return
        refs = {actor.load.remote(first.project, self.vad): actor for actor in self.actors}
        self.events.status(f"loading the generator on {len(refs)} actor(s)", final=True)
        for ref, actor in refs.items():
            try:
                result = self.ray.get(ref)
            except self.ray.exceptions.RayActorError as exc:  # its segments find out and are resubmitted as usual
                log.warning("actor %s died while loading the generator: %s", actor._actor_id.hex(), exc)
                continue
            self._remember_place(result)
            self.events.emit("generator_loaded", project=first.name, host=result.get("host"), gpu=result.get("gpu"),
                             seconds=result.get("seconds"), ok=result["ok"], **({"error": result["error"]} if not result["ok"] else {}))
            if not result["ok"]:
                log.warning("loading the generator on gpu %s of %s failed: %s", result.get("gpu"), result.get("host"), result["error"])

    def _finished(self, job: _Job, result: dict) -> None:
        run = job.run
        run.in_flight.discard(job.index)
        node = segment_node(job.index)
        if not result.get("ok"):
            if result.get("traceback"):
                log.info("%s", result["traceback"])
            run.fail(f"segment {job.index} failed on {result.get('host')}: {result.get('error') or result.get('reason')}",
                     result.get("exit_code", 1))
            self.events.emit("step_failed", project=run.name, step=node, host=result.get("host"), gpu=result.get("gpu"),
                             error=run.error)
            return
        run.finished.add(job.index)
        run.redo.discard(job.index)
        st = run.graph.record_finished(node)
        if not st.done:  # pragma: no cover - the actor said it committed the entry
            run.fail(f"segment {job.index} finished on {result.get('host')} but its cache entry is not visible here; "
                     "is the work folder on storage every node sees?")
            return
        cached = result.get("reason") == "done"
        (run.summary.cached if cached else run.summary.ran).append(node)
        run.graph.events.segment_done(float(result.get("seconds", 0.0)), cached=cached)
        self.events.emit("step_cached" if cached else "step_finished", project=run.name, step=node, key=(st.key or "")[:12],
                         seconds=result.get("seconds"), host=result.get("host"), gpu=result.get("gpu"))


def _missing_segments(run: ProjectRun) -> list[int]:
    return [s.index for s in run.graph.plan.segments if s.index not in run.finished]


def finish_project(run: ProjectRun) -> None:
    """Stitch, export and report one project whose segments are done; its failure is only its own."""
    if run.failed:
        return
    missing = _missing_segments(run)
    if missing:  # pragma: no cover - the pool stops only when nothing is ready or in flight
        run.fail(f"segments {missing} never became ready")
        return
    try:
        run.graph.finish(run.summary)
    except LongtakeError as exc:
        run.fail(str(exc), exc.exit_code)
    except Exception as exc:  # noqa: BLE001 - one project's bug must not hide the others' results
        run.fail(f"{type(exc).__name__}: {exc}")


class Finisher:
    """Finishes projects (``finish_project``) on ``workers`` driver threads, in the order they are handed over.

    One worker by default: a stitch keeps the driver's few CPUs busy with x264's own threads. Used as a context
    manager: a clean exit waits for every project handed over; an exception (Ctrl-C) stops the one being finished at
    its next progress report, drops the rest, and still waits for that thread, so that no thread writes into a work
    folder once its lock is released, and none keeps the interpreter from exiting.
    """

    def __init__(self, workers: int = 1):
        if workers < 1:
            raise ValueError(f"a Finisher needs at least one worker, got {workers}")
        self._threads = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="longtake-finish")
        self._jobs: dict[int, tuple[ProjectRun, Future]] = {}  # by id(run): ProjectRun is an unhashable dataclass

    def __contains__(self, run: ProjectRun) -> bool:
        return id(run) in self._jobs

    def submit(self, run: ProjectRun) -> None:
        if run not in self:
            self._jobs[id(run)] = (run, self._threads.submit(finish_project, run))

    def __enter__(self) -> "Finisher":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is not None:
                self._stop()
                return
            try:
                for _run, job in self._jobs.values():
                    job.result()  # finish_project keeps each project's errors in its run; nothing else is raised
            except BaseException:  # Ctrl-C while waiting for the finishing
                self._stop()
                raise
        finally:
            self._threads.shutdown(wait=True, cancel_futures=True)

    def _stop(self) -> None:
        for run, _job in self._jobs.values():
            run.graph.events.stop_at_next_progress()


def run_batch(runs: list[ProjectRun], *, pool: RayPool, finishers: int = 1) -> None:
    """Segments of every project through ``pool``; each project's stitch and report here, on ``finishers`` threads,
    as soon as its own segments are done. Returns once every project is finished or failed."""
    with Finisher(finishers) as finisher:
        pool.run(runs, finisher=finisher)
        pool.release()  # every segment is done: the GPUs go back to the cluster while the last stitches run here
        for run in runs:  # those the pool left incomplete: finish_project says which segments never became ready
            if not run.failed and run not in finisher:
                finisher.submit(run)
