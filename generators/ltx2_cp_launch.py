"""Context parallelism across the GPUs of one host for the ltx2 generator: one worker process per further GPU.

With ``generator.context_parallel`` N > 1, ``LTX2Generator`` (rank 0, in the run's own process, on
``generator.device``) starts N-1 workers with ``torch.multiprocessing``'s spawn context. Worker r runs on the r-th
GPU after rank 0's (or on the CPU with gloo, which is how the tests run it). Each loads the same model through the
same ``LTX2Generator`` code and wraps its transformer in ``ltx2_parallel.ContextParallelTransformer``; the group
talks over NCCL on CUDA, gloo on the CPU, rendezvousing through a TCP store that rank 0 opens on a free local port.

Forming the group: rank 0 does not enter ``init_process_group`` (which waits for every rank, up to the collective
timeout) until each worker has written its ``joining/<rank>`` key to the store, the last thing a worker does
before entering it; until then rank 0 polls the keys, the workers' liveness and their error reports, so a worker
that dies or raises on the way (no GPU context: its GPU is out of memory, a bad device, a failed import) fails
``load()`` within a poll with a ``GeneratorError`` naming the rank and its error or exit code. A worker that fails
while loading its model (after the group formed) is reported the same way once rank 0's own load returns.
Left: a worker killed inside ``init_process_group`` itself (gloo's connect) holds rank 0 there until the timeout.

Per segment rank 0 encodes the prompts and the audio and builds the conditions (``PipelineJob``), puts a host copy
on every worker's queue, and all ranks run the same two stages from the same seeded noise, their transformer passes
split over the group. Only rank 0 decodes and writes: a worker never sees the work folder (it gets no cache folder
and no request, only the job).

Failure: a watcher thread checks the workers' liveness and their error reports while rank 0 denoises; a worker
that raises reports it and exits, one that dies is seen dead, and either way rank 0's collective is broken
(its connection to the worker closes; on NCCL the communicator is aborted) so the segment fails with a
``GeneratorError`` naming the rank, instead of hanging. After any failure the group is shut down; the generator
starts a fresh one for its next segment. Workers ignore Ctrl-C (rank 0 shuts them down) and leave when rank 0's
process is gone. The environment (NCCL_NVLS_ENABLE, TORCH_SYMM_MEM_DISABLE_MULTICAST, …) is inherited as it is.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import threading
import time
from datetime import timedelta
from typing import Any, Callable

from orchestrator.errors import ConfigError, GeneratorError

log = logging.getLogger("longtake." + __name__)

# A collective that waits longer than this for a peer fails (a worker alive but stuck). Covers the slowest pass.
COLLECTIVE_TIMEOUT_S = 900.0
# How long rank 0 waits for a worker process to reach the rendezvous (interpreter + torch import + its device).
START_TIMEOUT_S = 300.0
# How long a worker reporting an error has to get its message to rank 0 after rank 0's collective broke.
ERROR_REPORT_WAIT_S = 10.0
POLL_S = 0.2


def worker_devices(device: str, world: int) -> list[str]:
    """The device of every rank: rank 0 on ``device``, rank r on the r-th CUDA device after it (wrapping), or all on the CPU.

    Raises ``ConfigError`` when CUDA has fewer devices than ``world``.
    """
    import torch

    kind = str(device).split(":")[0]
    if kind == "cpu":
        return ["cpu"] * world
    if kind != "cuda":
        raise ConfigError(f"generator.context_parallel needs generator.device cuda or cpu, got {device!r}")
    count = torch.cuda.device_count()
    if world > count:
        raise ConfigError(
            f"generator.context_parallel is {world} but this host has {count} CUDA device(s); set it (or --cp/--gpus) to at most {count}"
        )
    first = int(str(device).split(":")[1]) if ":" in str(device) else 0
    return [f"cuda:{(first + r) % count}" for r in range(world)]


def _open_store(world: int, port: int | None = None):
    """Rank 0 (no ``port``) serves the rendezvous store on a free port (its ``.port``); a worker connects to ``port``."""
    import torch.distributed as dist

    return dist.TCPStore(
        "127.0.0.1", port or 0, world, is_master=port is None, wait_for_workers=False, timeout=timedelta(seconds=COLLECTIVE_TIMEOUT_S)
    )  # fmt: skip


def _joining_key(rank: int) -> str:
    return f"joining/{rank}"


def _init_group(rank: int, world: int, device: str, store) -> None:
    import torch
    import torch.distributed as dist

    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.set_device(torch.device(device))
    store.set(_joining_key(rank), "1")  # rank 0 enters the (blocking) rendezvous only once every worker got here
    dist.init_process_group(
        "nccl" if cuda else "gloo", store=store, rank=rank, world_size=world, timeout=timedelta(seconds=COLLECTIVE_TIMEOUT_S),
    )  # fmt: skip


def _segment_lost(segment_index: int, failure: str) -> GeneratorError:
    return GeneratorError(f"segment {segment_index}: {failure}; the segment was not written (finished segments are kept)")


def _wrap(pipeline) -> None:
    from generators.ltx2_parallel import ContextParallelTransformer

    pipeline.context_parallel = ContextParallelTransformer(pipeline.transformer, latents_from=0)


def _options_for(options: Any, device: str) -> Any:
    """``options`` on another device, without context parallelism of its own."""
    update = {"device": device, "context_parallel": 1}
    if hasattr(options, "model_copy"):
        return options.model_copy(update=update)
    import copy

    copied = copy.copy(options)
    for key, value in update.items():
        setattr(copied, key, value)
    return copied


def _quiet() -> None:
    """A worker's warnings and loading bars repeat rank 0's on the same terminal: drop them (errors go to rank 0)."""
    longtake = logging.getLogger("longtake")
    longtake.handlers[:] = [logging.NullHandler()]
    longtake.propagate = False
    try:
        from diffusers.utils import logging as diffusers_logging
        from transformers.utils import logging as transformers_logging

        for library in (diffusers_logging, transformers_logging):
            library.set_verbosity_error()
            library.disable_progress_bar()
    except ImportError:  # pragma: no cover - both come with the ltx2 backend
        pass


def worker_main(rank: int, world: int, options: Any, device: str, port: int, jobs, reports) -> None:
    """A worker's whole life: join the group, load the model, then run each job rank 0 sends until told to stop."""
    import multiprocessing

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group; rank 0 decides
    try:
        import torch

        from generators.ltx2 import LTX2Generator

        if device == "cpu":
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
        _quiet()
        _init_group(rank, world, device, _open_store(world, port))
        generator = LTX2Generator(_options_for(options, device), cache_dir=None)  # no cache folder: nothing to write
        generator.load()
        _wrap(generator.pipeline)
        reports.put(("ready", rank, None))
        parent = multiprocessing.parent_process()
        while True:
            try:
                message = jobs.get(timeout=1.0)
            except queue.Empty:
                if parent is not None and not parent.is_alive():
                    break
                continue
            if message is None:
                break
            seq, job = message
            generator.denoise(job)
            reports.put(("done", rank, seq))
    except BaseException as exc:  # noqa: BLE001 - reported to rank 0, then this process ends
        reports.put(("error", rank, f"{type(exc).__name__}: {exc}"))
        reports.close()
        reports.join_thread()
        os._exit(1)  # closes this rank's connections at once, so rank 0's pending collective fails instead of waiting
    try:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
    finally:
        reports.close()
        reports.join_thread()


class ContextParallelGroup:
    """Rank 0's handle on the worker processes: start, run a job on every rank, shut down."""

    # The function each worker process runs (a test swaps in one that fails on purpose; it must be importable).
    worker_entry: Callable = staticmethod(worker_main)

    def __init__(self, options: Any, world: int):
        if world < 2:
            raise ValueError(f"a context-parallel group needs at least 2 ranks, got {world}")
        self.options = options
        self.world = world
        self.devices = worker_devices(str(options.device), world)
        self.processes: list = []
        self._jobs: list = []
        self._reports = None
        self._seq = 0
        self._done: dict[int, int] = {}
        self._errors: dict[int, str] = {}
        self._ready: set[int] = set()
        self._store = None
        self._group_up = False
        self.closed = False

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Spawn the workers and join the group with them (they load their models in the background)."""
        import torch.distributed as dist
        import torch.multiprocessing as mp

        if dist.is_initialized():
            raise GeneratorError(
                "generator.context_parallel: this process already belongs to a torch.distributed group; "
                "run longtake in its own process (one context-parallel generator per process)"
            )
        ctx = mp.get_context("spawn")
        self._store = _open_store(self.world)
        port = self._store.port
        self._reports = ctx.Queue()
        for rank in range(1, self.world):
            jobs = ctx.Queue()
            proc = ctx.Process(
                target=type(self).worker_entry, name=f"longtake-cp-rank{rank}",
                args=(rank, self.world, self.options, self.devices[rank], port, jobs, self._reports), daemon=True,
            )  # fmt: skip
            proc.start()
            self.processes.append(proc)
            self._jobs.append(jobs)
        log.info("context parallelism: %d worker process(es) started on %s", self.world - 1, ", ".join(self.devices[1:]))
        self._wait_for(self._joining, "join the group", START_TIMEOUT_S)
        _init_group(0, self.world, self.devices[0], self._store)
        self._group_up = True

    def attach(self, pipeline) -> None:
        """Wait for every worker's model, then split this rank's transformer passes over the group."""
        self._wait_for(lambda: self._ready, "load the model", None)
        _wrap(pipeline)

    def close(self, grace_s: float = 5.0) -> None:
        """Tell the workers to leave, give them ``grace_s``, then end the stragglers; leave the group. Safe to repeat.

        After a failed segment the workers may sit in a collective that will never complete: no grace then.
        """
        if self.closed:
            return
        self.closed = True
        for jobs in self._jobs:
            try:
                jobs.put(None)
            except Exception:  # noqa: BLE001 - a broken queue: the process is ended below anyway
                pass
        deadline = time.monotonic() + grace_s
        for proc in self.processes:
            proc.join(timeout=max(0.0, deadline - time.monotonic()))
        for proc in self.processes:
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=5.0)
        if self._group_up:
            import torch.distributed as dist

            self._group_up = False
            try:
                dist.destroy_process_group()
            except Exception as exc:  # noqa: BLE001 - a group broken by a failed worker may not tear down cleanly
                log.debug("context parallelism: leaving the broken group: %s", exc)
        self._store = None
        for q in [*self._jobs, self._reports]:
            if q is not None:
                q.cancel_join_thread()
                q.close()

    # -- one segment -------------------------------------------------------------------------
    def run(self, job, denoise: Callable[[], Any]) -> Any:
        """Send ``job`` to every worker, run rank 0's share (``denoise``), wait for the workers to finish it.

        Any failure shuts the group down and raises; a worker's failure raises ``GeneratorError`` naming it.
        """
        if self.closed:
            raise GeneratorError("context parallelism: the worker group was shut down; load the generator again")
        self._seq += 1
        seq = self._seq
        try:
            host_job = job.to_host()
            for jobs in self._jobs:
                jobs.put((seq, host_job))
            stop = threading.Event()
            watcher = threading.Thread(target=self._watch, args=(stop,), name="longtake-cp-watch", daemon=True)
            watcher.start()
            try:
                result = denoise()
            except BaseException as exc:
                stop.set()
                watcher.join()
                failure = self._failure(wait_s=ERROR_REPORT_WAIT_S if isinstance(exc, Exception) else 0.0)
                if failure is not None:
                    raise _segment_lost(job.segment_index, failure) from exc
                raise
            stop.set()
            watcher.join()
            self._wait_done(seq, job.segment_index)
            return result
        except BaseException:
            self.close(grace_s=0.0)
            raise

    def _watch(self, stop: threading.Event) -> None:
        """While rank 0 denoises: on a worker's death or error, break the group so rank 0's collective returns."""
        while not stop.wait(POLL_S):
            self._drain()
            if self._failure(wait_s=0.0) is not None:
                self._abort()
                return

    def _abort(self) -> None:
        import torch.distributed.distributed_c10d as c10d

        abort = getattr(c10d, "_abort_process_group", None)
        if abort is None or not self.devices[0].startswith("cuda"):
            return  # gloo: the dead worker's closed connection already fails rank 0's collective
        try:
            abort()
        except Exception as exc:  # noqa: BLE001 - the dead peer still ends the collective at the group's timeout
            log.debug("context parallelism: abort failed: %s", exc)

    def _wait_done(self, seq: int, segment_index: int) -> None:
        deadline = time.monotonic() + COLLECTIVE_TIMEOUT_S
        while any(self._done.get(rank) != seq for rank in range(1, self.world)):
            self._drain(timeout=POLL_S)
            failure = self._failure(wait_s=0.0)
            if failure is not None:
                raise _segment_lost(segment_index, failure)
            if time.monotonic() > deadline:
                late = [r for r in range(1, self.world) if self._done.get(r) != seq]
                raise GeneratorError(f"segment {segment_index}: context-parallel worker rank(s) {late} did not finish within {COLLECTIVE_TIMEOUT_S:.0f} s")

    # -- reports -----------------------------------------------------------------------------
    def _drain(self, timeout: float = 0.0) -> None:
        """Read the workers' reports into the state (blocks up to ``timeout`` for the first one)."""
        block = timeout > 0
        while True:
            try:
                kind, rank, value = self._reports.get(timeout=timeout) if block else self._reports.get_nowait()
            except queue.Empty:
                return
            block = False
            if kind == "error":
                self._errors[rank] = value
            elif kind == "done":
                self._done[rank] = value
            elif kind == "ready":
                self._ready.add(rank)

    def _failure(self, wait_s: float) -> str | None:
        """A sentence about the first failed worker (the error it reported, else its death), or None if all are well.

        ``wait_s``: how long to wait for a failure to show (rank 0's collective broke: a report is on its way).
        """
        deadline = time.monotonic() + wait_s
        while True:
            # Dead before draining: a worker flushes its report before it exits, so the drain below gets it.
            dead = [(r, p) for r, p in enumerate(self.processes, start=1) if not p.is_alive()]
            self._drain(timeout=POLL_S if wait_s else 0.0)
            if self._errors:
                rank = min(self._errors)
                return f"context-parallel worker rank {rank} ({self.devices[rank]}) failed: {self._errors[rank]}"
            if dead:
                rank, proc = dead[0]
                return f"context-parallel worker rank {rank} ({self.devices[rank]}) died (exit code {proc.exitcode})"
            if time.monotonic() >= deadline:
                return None

    def _joining(self) -> set[int]:
        """The workers that reached the rendezvous (wrote their key to rank 0's store)."""
        return {rank for rank in range(1, self.world) if self._store.check([_joining_key(rank)])}

    def _wait_for(self, seen: Callable[[], set[int]], what: str, timeout_s: float | None) -> None:
        """Until ``seen()`` holds every worker: raise at a worker's failure (within a poll) or after ``timeout_s``."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while len(seen()) < self.world - 1:
            self._drain(timeout=POLL_S)
            failure = self._failure(wait_s=0.0)
            if failure is not None:
                raise GeneratorError(f"generator.context_parallel: {failure} before it could {what}")
            if deadline is not None and time.monotonic() > deadline:
                raise GeneratorError(f"generator.context_parallel: worker process(es) did not {what} within {timeout_s:.0f} s")
