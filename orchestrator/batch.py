"""Many projects in one `longtake run`: each with its own lock, work folder and output; one failure stops only its project.

Without Ray the projects run one after another in this process; with ``--gpus``
or ``--ray`` every project's segments go to one pool of actors
(``orchestrator.ray_executor``). Either way the result is one ``ProjectRun`` per
project saying how it ended, for the summary and the exit code.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from orchestrator.errors import ConfigError, LongtakeError
from orchestrator.events import Events
from orchestrator.ray_executor import ProjectRun

PROJECT_SUFFIXES = (".yaml", ".yml")


def expand_project_paths(paths: list[Path]) -> list[Path]:
    """Project files as given, a folder standing for every project file directly in it (sorted)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            inside = sorted(p for p in path.iterdir() if p.suffix in PROJECT_SUFFIXES and p.is_file())
            if not inside:
                raise ConfigError(f"{path} is a folder with no project files (*.yaml, *.yml) in it")
            found.extend(inside)
        else:
            found.append(path)
    seen: set[Path] = set()
    unique = []
    for path in found:
        if path.resolve() not in seen:
            seen.add(path.resolve())
            unique.append(path)
    return unique


def run_projects(paths: list[Path], *, events: Events, json_out: bool, vad: str | None = None, redo: set[int] = frozenset(),
                 gpus: int | None = None, address: str | None = None, accept_cost: bool = False) -> list[ProjectRun]:
    """Run every project; never raises for one project's failure (Ctrl-C still stops everything, work kept).

    Each project's ``generator.max_cost_usd`` is enforced as in a single run, unless ``accept_cost`` (``--yes``).
    """
    from orchestrator.clean import register_project
    from orchestrator.config import load_project
    from orchestrator.preflight import check_project
    from orchestrator.graph import RunGraph
    from orchestrator.lock import WorkdirLock

    runs: list[ProjectRun] = []
    with contextlib.ExitStack() as stack:
        for path in paths:
            name = str(path)
            run = None
            try:
                project = load_project(path)
                if (gpus or address) and getattr(project.generator, "context_parallel", 1) > 1:
                    raise ConfigError(
                        f"generator.context_parallel is {project.generator.context_parallel}, but --gpus/--ray give each segment "
                        "one GPU of a pool; set context_parallel: 1 for a pooled run, or run this project without --gpus/--ray"
                    )
                graph = RunGraph(project, Events(json_out=json_out, progress=events.progress_on, fields={"project": name}), vad=vad)
                stack.callback(graph.close)
                run = ProjectRun(name, project, graph, redo=set(redo))
                check_project(project)  # before the lock: a work folder that collides with the output must not be created
                lock = WorkdirLock(project.workdir, command="run")
                lock.acquire()
                stack.callback(lock.release)
                register_project(project.workdir, project.project_file)
                run.max_cost_usd = None if accept_cost else getattr(project.generator, "max_cost_usd", None)
                if gpus or address:
                    graph.begin(redo=redo, max_cost_usd=run.max_cost_usd)
                    graph.run_step("portrait", run.summary)
            except LongtakeError as exc:
                run = run or ProjectRun(name, None, None)  # type: ignore[arg-type]
                run.fail(str(exc), exc.exit_code)
            except Exception as exc:  # noqa: BLE001 - one project's bug must not stop the others
                run = run or ProjectRun(name, None, None)  # type: ignore[arg-type]
                run.fail(f"{type(exc).__name__}: {exc}")
            runs.append(run)
        live = [r for r in runs if not r.failed]
        if (gpus or address) and live:
            from orchestrator.ray_executor import RayPool, run_batch

            with RayPool(gpus=gpus, address=address, events=events, vad=vad) as pool:
                run_batch(live, pool=pool)
        else:
            for run in live:
                try:
                    run.summary = run.graph.run(redo=run.redo, max_cost_usd=run.max_cost_usd)
                except LongtakeError as exc:
                    run.fail(str(exc), exc.exit_code)
                except Exception as exc:  # noqa: BLE001 - one project's bug must not stop the others
                    run.fail(f"{type(exc).__name__}: {exc}")
                finally:
                    run.graph.events.clear()
                    # The next project loads its own model: this one's (and its context-parallel workers) must go first.
                    run.graph.close()
    for run in runs:
        events.emit("project_finished", project=run.name, ok=not run.failed, error=run.error,
                    output=str(run.summary.output) if run.summary.output else None)
    return runs


def exit_code(runs: list[ProjectRun]) -> int:
    """0 when every project finished; a lone project's own code; else 1."""
    failed = [r for r in runs if r.failed]
    if not failed:
        return 0
    if len(runs) == 1:
        return failed[0].exit_code
    return 1


def format_summary(runs: list[ProjectRun]) -> str:
    lines = []
    for run in runs:
        if run.failed:
            lines.append(f"FAILED  {run.name}: {run.error}")
        else:
            lines.append(f"ok      {run.name}: {len(run.summary.ran)} step(s) ran, {len(run.summary.cached)} cached"
                         + (f", video {run.summary.output}" if run.summary.output else ""))
    bad = sum(r.failed for r in runs)
    lines.append(f"{len(runs) - bad} of {len(runs)} project(s) finished" + (f", {bad} failed (finished work is kept)" if bad else ""))
    return "\n".join(lines)
