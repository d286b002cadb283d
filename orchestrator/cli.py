"""The `longtake` command line. Click parses; RunGraph and the step modules do the work.

Only this module prints errors and exits. Exit codes: 0 ok; 1 failed (finished
work kept); 2 usage or config; 3 bad input media; 130 interrupted (resumable).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
import traceback
import warnings
from pathlib import Path

import click

from orchestrator import __version__
from orchestrator.errors import (
    ConfigError,
    LongtakeError,
    RunInterrupted,
    UsageError,
    check_writable_folder,
    find_write_os_error,
    write_failure,
)
from orchestrator.events import Events, EventsLogHandler
from orchestrator.timebase import format_timestamp

log = logging.getLogger("longtake")


def _setup(ctx: click.Context, json_out: bool = False) -> Events:
    events = Events(json_out=json_out, progress=None if not json_out else False)
    log.handlers[:] = [EventsLogHandler(events)]
    log.setLevel(logging.INFO if ctx.find_root().obj.get("verbose") else logging.WARNING)
    log.propagate = False
    return events


def _parse_indices(value: str | None, option: str) -> set[int] | None:
    if value is None:
        return None
    try:
        indices = {int(v) for v in value.split(",") if v.strip()}
    except ValueError:
        raise ConfigError(f"{option} takes segment numbers separated by commas, like 3,7; got {value!r}") from None
    if not indices:
        raise ConfigError(f"{option} names no segment (got {value!r}); give segment numbers separated by commas, like 3,7")
    return indices


def _set_global_flag(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        root = ctx.find_root()
        root.ensure_object(dict)
        root.obj[param.name] = True


class _Group(click.Group):
    """Accepts the global flags after the subcommand too (`longtake run p.yaml -v`), as users type them."""

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        cmd.params += [
            click.Option(["--debug"], is_flag=True, expose_value=False, callback=_set_global_flag, help="Show the full traceback of an error."),
            click.Option(["-v", "--verbose"], is_flag=True, expose_value=False, callback=_set_global_flag, help="Also print informational messages."),
        ]
        super().add_command(cmd, name)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="longtake")
@click.option("--debug", is_flag=True, help="Show the full traceback of an error.")
@click.option("-v", "--verbose", is_flag=True, help="Also print informational messages.")
@click.pass_context
def cli(ctx: click.Context, debug: bool, verbose: bool) -> None:
    """Turn one long voiceover and one portrait into one talking-portrait video."""
    ctx.ensure_object(dict)
    ctx.obj.update(debug=debug, verbose=verbose)


def _load(project_file: Path):
    from orchestrator.config import load_project

    return load_project(project_file)


# -- plan ----------------------------------------------------------------------------------

@cli.command()
@click.argument("project_file", type=click.Path(path_type=Path))
@click.option("--json", "json_out", is_flag=True, help="Print the plan JSON on stdout instead of the table.")
@click.option("--vad", type=click.Choice(["silero", "webrtc", "energy"]), help="Override segmenter.vad for this plan.")
@click.pass_context
def plan(ctx: click.Context, project_file: Path, json_out: bool, vad: str | None) -> None:
    """Split the voiceover into generation segments; write plan.json and plan.png to the workdir."""
    from orchestrator.clean import register_project
    from orchestrator.graph import RunGraph
    from orchestrator.lock import WorkdirLock
    from orchestrator.preflight import check_project

    events = _setup(ctx)
    project = _load(project_file)
    check_project(project)  # everything `run` would trip over later, before any work
    graph = RunGraph(project, events, vad=vad)
    with WorkdirLock(project.workdir, command="plan"):
        register_project(project.workdir, project.project_file)
        the_plan = graph.run_plan()
        graph.export_plan_files()
        graph.check_plan(the_plan)
    events.clear()
    if json_out:
        click.echo(the_plan.to_json(), nl=False)
        return
    click.echo(format_plan_table(the_plan))
    click.echo(graph.target_choice().reason)
    cost = graph.cost_model()
    if cost is not None:
        click.echo(cost.plan_cost(the_plan).describe())
    dollars = graph.gen_cls.estimate_cost(project.generator, the_plan)
    if dollars is not None:
        limit = getattr(project.generator, "max_cost_usd", None)
        click.echo(dollars.describe() + (f" (generator.max_cost_usd: ${limit:.2f})" if limit is not None else ""))
    click.echo(f"\nplan: {Path(project.workdir) / 'plan.json'}\nplot: {Path(project.workdir) / 'plan.png'}")


def format_plan_table(the_plan) -> str:
    fps = float(the_plan.fps)
    rows = [f"{'seg':>3}  {'start':>8}  {'end':>8}  {'length':>7}  {'gen':>4}  {'ctx':>3}  {'cut':<6}  {'pause':>7}"]
    for s in the_plan.segments:
        rows.append(
            f"{s.index:>3}  {format_timestamp(s.start_frame / fps):>8}  {format_timestamp(s.end_frame / fps):>8}  "
            f"{s.owned_frames / fps:>6.2f}s  {s.gen_frames:>4}  {s.context_frames:>3}  {s.cut:<6}  "
            f"{(str(s.pause_ms) + ' ms') if s.cut == 'pause' else '':>7}"
        )
    total_s = the_plan.total_frames / fps
    forced = sum(1 for s in the_plan.segments if s.cut == "forced")
    rows.append(
        f"\n{len(the_plan.segments)} segments, {the_plan.total_frames} frames ({format_timestamp(total_s)}) at {fps:g} fps, "
        f"generated at {the_plan.width}×{the_plan.height}, {the_plan.chaining} chaining, {the_plan.vad} VAD"
        + (f", {forced} forced cut(s)" if forced else "")
    )
    return "\n".join(rows)


# -- captions ------------------------------------------------------------------------------

@cli.command()
@click.argument("project_file", type=click.Path(path_type=Path))
@click.option("--json", "json_out", is_flag=True, help="Print words.json on stdout instead of the table.")
@click.pass_context
def captions(ctx: click.Context, project_file: Path, json_out: bool) -> None:
    """Align captions.script to the voiceover; write captions.srt, captions.vtt and words.json to the workdir."""
    from captions.cues import format_table
    from orchestrator.atomic import atomic_copy
    from orchestrator.graph import RunGraph
    from orchestrator.lock import WorkdirLock

    events = _setup(ctx)
    project = _load(project_file)
    graph = RunGraph(project, events)
    with WorkdirLock(project.workdir, command="captions"):
        alignment = graph.run_captions()
        entry = graph.entries["captions"]
        for name in ("captions.srt", "captions.vtt", "words.json"):
            atomic_copy(entry.output(name), Path(project.workdir) / name, elsewhere="set `workdir:` in the project file to another disk")
    events.clear()
    if json_out:
        click.echo(entry.output("words.json").read_text(encoding="utf-8"), nl=False)
        return
    click.echo(format_table(alignment))
    workdir = Path(project.workdir)
    click.echo(f"\nsubtitles: {workdir / 'captions.srt'} and {workdir / 'captions.vtt'} (timed to the voiceover file; edit and set captions.file to use them)"
               f"\nword times: {workdir / 'words.json'}")


# -- run -------------------------------------------------------------------------------------

@cli.command()
@click.argument("project_files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "json_out", is_flag=True, help="Newline-delimited JSON events on stdout.")
@click.option("--only-segments", help="Generate only these segments (e.g. 3,7), then stop.")
@click.option("--redo", help="Regenerate these segments even if cached (e.g. 7).")
@click.option("--dry-run", is_flag=True, help="Print what would run and why; run nothing.")
@click.option("--vad", type=click.Choice(["silero", "webrtc", "energy"]), help="Override segmenter.vad.")
@click.option("--gpus", type=click.IntRange(min=1), help="Start a local Ray for this run with N GPUs, one generator per GPU (needs longtake[ray]).")
@click.option("--ray", "ray_address", metavar="ADDRESS", help="Run segments on an existing Ray cluster (e.g. ray://head:10001 or auto).")
@click.option("--cp", "cp", type=click.IntRange(min=1), help="Split each segment over N GPUs of this host (overrides generator.context_parallel; ltx2).")
@click.option("--yes", is_flag=True, help="Accept a hosted backend's estimated cost above generator.max_cost_usd.")
@click.pass_context
def run(ctx: click.Context, project_files: tuple[Path, ...], json_out: bool, only_segments: str | None, redo: str | None, dry_run: bool,
        vad: str | None, gpus: int | None, ray_address: str | None, cp: int | None, yes: bool) -> None:
    """Render projects end to end; resumes where a previous run stopped.

    Give several project files, or a folder of them, to render a batch: each
    keeps its own lock, work folder and output, and one failing does not stop
    the others. With --gpus/--ray every project's segments share one pool.
    One chained (tail, last-frame) ltx2 project with --gpus N instead splits
    each segment over N GPUs (as --cp N): its segments cannot run side by side.
    """
    from orchestrator.batch import expand_project_paths

    if gpus and ray_address:
        raise ConfigError("give --gpus (a local Ray started for this run) or --ray ADDRESS (an existing cluster), not both")
    if cp and (gpus or ray_address):
        raise ConfigError("give --cp N (split each segment over this host's GPUs) or --gpus/--ray (spread segments over a pool), not both")
    paths = expand_project_paths(list(project_files))
    why = "--cp"
    if len(paths) == 1 and gpus and gpus > 1 and not ray_address and _is_chained_ltx2(paths[0]):
        cp, gpus = gpus, None
        why = (f"--gpus {cp}: this project's segments are chained (each continues from the last), so each one is split "
               f"over {cp} GPUs with context parallelism (as --cp {cp}) instead of a Ray pool")
    if cp and len(paths) > 1:
        raise ConfigError("--cp takes one project file (a batch runs one project at a time on this host's GPUs)")
    if len(paths) == 1 and not (gpus or ray_address):
        _run_one(ctx, paths[0], json_out, only_segments, redo, dry_run, vad, yes, cp=cp, cp_why=why)
        return
    if only_segments is not None or dry_run:
        raise ConfigError("--only-segments and --dry-run take one project and no --gpus/--ray")
    _run_many(ctx, paths, json_out, _parse_indices(redo, "--redo") or set(), vad, gpus, ray_address, yes)


def _run_many(ctx, paths, json_out, redo_set, vad, gpus, ray_address, yes=False) -> None:
    from orchestrator.batch import exit_code, format_summary, run_projects

    if redo_set and len(paths) > 1:
        raise ConfigError("--redo names segments of one project; give it one project file")
    events = _setup(ctx, json_out)
    try:
        runs = run_projects(paths, events=events, json_out=json_out, vad=vad, redo=redo_set, gpus=gpus, address=ray_address, accept_cost=yes)
    finally:
        events.clear()
    if not json_out:
        click.echo(format_summary(runs), err=True)
    ctx.exit(exit_code(runs))


def _is_chained_ltx2(project_file: Path) -> bool:
    generator = _load(project_file).generator
    return generator.backend == "ltx2" and generator.chaining in ("tail", "last-frame")


def _with_context_parallel(project, cp: int):
    """``project`` with generator.context_parallel set to ``cp`` (``--cp``)."""
    if project.generator.backend != "ltx2":
        raise ConfigError(f"--cp {cp} splits an ltx2 segment over GPUs; this project's generator.backend is {project.generator.backend}")
    project.generator = project.generator.model_copy(update={"context_parallel": cp})
    return project


def _run_one(ctx, project_file, json_out, only_segments, redo, dry_run, vad, yes=False, cp=None, cp_why="--cp") -> None:
    from orchestrator.graph import RunGraph
    from orchestrator.lock import WorkdirLock

    events = _setup(ctx, json_out)
    project = _load(project_file)
    if cp:
        project = _with_context_parallel(project, cp)
        if cp_why != "--cp":
            events.say(cp_why)
        events.emit("context_parallel", gpus=cp, why=cp_why)
    only = _parse_indices(only_segments, "--only-segments")
    redo_set = _parse_indices(redo, "--redo") or set()
    graph = RunGraph(project, events, vad=vad)
    if dry_run:
        statuses = graph.status()
        pending = [s for s in statuses if not s.done]
        if json_out:
            for s in statuses:
                events.emit("status", **s.to_dict())
        else:
            click.echo(format_status(statuses, only_pending=True) if pending else "nothing to run: everything is done")
        return
    from orchestrator.clean import register_project
    from orchestrator.preflight import check_project

    check_project(project)  # before the lock: a work folder that collides with the output must not be created
    try:
        with WorkdirLock(project.workdir, command="run"):
            register_project(project.workdir, project.project_file)
            summary = graph.run(redo=redo_set, only_segments=only, max_cost_usd=None if yes else getattr(project.generator, "max_cost_usd", None))
    finally:
        graph.close()
        events.clear()
    events.emit("run_finished", ran=summary.ran, cached=summary.cached, output=str(summary.output) if summary.output else None)
    if not json_out:
        click.echo(f"{len(summary.ran)} step(s) ran, {len(summary.cached)} cached.", err=True)
        if summary.report:
            verdicts = summary.report.get("verdicts") or {}
            click.echo("report: " + ", ".join(f"{name} {verdict}" for name, verdict in verdicts.items()), err=True)
        if summary.output:
            click.echo(f"video: {summary.output}", err=True)


# -- status ------------------------------------------------------------------------------------

def format_status(statuses, only_pending: bool = False, warnings: bool = False) -> str:
    lines = []
    for s in statuses:
        if only_pending and s.done:
            continue
        lines.append(f"{s.node:<16} {'done' if s.done else 'to run':<7} {'' if s.done else s.reason}".rstrip())
        if warnings:
            lines += [f"{'':<16} warning: {w}" for w in getattr(s, "warnings", ())]
    return "\n".join(lines)


@cli.command()
@click.argument("project_file", type=click.Path(path_type=Path))
@click.option("--json", "json_out", is_flag=True, help="One JSON array of steps on stdout.")
@click.pass_context
def status(ctx: click.Context, project_file: Path, json_out: bool) -> None:
    """List every step as done or to run, with the reason. Exit 0 when nothing is pending, 1 otherwise."""
    from orchestrator.graph import RunGraph

    _setup(ctx)
    project = _load(project_file)
    statuses = RunGraph(project).status()
    if json_out:
        click.echo(json.dumps([s.to_dict() for s in statuses], indent=1))
    else:
        click.echo(format_status(statuses, warnings=True))
    ctx.exit(0 if all(s.done for s in statuses) else 1)


# -- clean ---------------------------------------------------------------------------------------

def _stdin_is_tty() -> bool:
    return sys.stdin is not None and sys.stdin.isatty()


@cli.command()
@click.argument("project_file", type=click.Path(path_type=Path))
@click.option("--dry-run", is_flag=True, help="List what would be removed; remove nothing.")
@click.option("-y", "--yes", is_flag=True, help="Remove generated segments without asking.")
@click.pass_context
def clean(ctx: click.Context, project_file: Path, dry_run: bool, yes: bool) -> None:
    """Remove cache entries no rerun of this project (or another using the same workdir) would reuse."""
    from orchestrator.cache import StepCache
    from orchestrator.clean import plan_clean, register_project
    from orchestrator.lock import WorkdirLock

    _setup(ctx)
    project = _load(project_file)
    if dry_run:
        todo = plan_clean(project)
        click.echo(f"would remove {todo.summary()}" if todo.removals else "nothing to remove: every cache entry is still used")
        for r in todo.removals:
            click.echo(f"  {r.step}/{r.key[:12]}  {r.bytes / 1e6:.1f} MB")
        return
    with WorkdirLock(project.workdir, command="clean"):
        register_project(project.workdir, project.project_file)
        todo = plan_clean(project)
        segments = todo.segments
        if segments and not yes:
            what = (f"{len(segments)} generated segment(s) ({sum(r.bytes for r in segments) / 1e6:.1f} MB of GPU work "
                    "no rerun of this project would reuse)")
            if not _stdin_is_tty():
                raise UsageError(f"clean would delete {what}; see them with `longtake clean {project_file} --dry-run`, "
                                 "then pass --yes to delete them. Nothing was removed.")
            if not click.confirm(f"delete {what} along with the rest ({todo.summary()})?", default=False, err=True):
                click.echo("nothing removed", err=True)
                return
        removed, freed = StepCache(project.workdir).remove(todo.removals)
    click.echo(f"removed {removed} unused cache entr{'y' if removed == 1 else 'ies'}, freed {freed / 1e6:.1f} MB")
    if todo.removals:
        click.echo(f"  ({todo.summary()})")


# -- init -------------------------------------------------------------------------------------------

@cli.command()
@click.argument("voiceover", type=click.Path(path_type=Path))
@click.argument("portrait", type=click.Path(path_type=Path))
@click.option("-o", "--output", "project_file", type=click.Path(path_type=Path), help="Project file to write (default: project.yaml beside the voiceover).")
@click.option("--backend", type=click.Choice(["ltx2", "animatic", "fal"]), default="ltx2", show_default=True)
@click.option("--force", is_flag=True, help="Overwrite an existing project file.")
def init(voiceover: Path, portrait: Path, project_file: Path | None, backend: str, force: bool) -> None:
    """Write a starter project file for a voiceover and a portrait."""
    from orchestrator.init_project import write_starter_project

    path = write_starter_project(voiceover, portrait, project_file, backend=backend, force=force)
    click.echo(f"wrote {path}\nnext: longtake plan {path}   then: longtake run {path}")


# -- report ------------------------------------------------------------------------------------------

@cli.command()
@click.argument("video", type=click.Path(path_type=Path))
@click.option("--plan", "plan_file", type=click.Path(path_type=Path), help="plan.json, to measure the planned joins.")
@click.option("--portrait", type=click.Path(path_type=Path), help="The portrait, for colour and identity drift.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), help="Folder for report.json/report.png (default: beside the video).")
@click.option("--json", "json_out", is_flag=True, help="Print the report JSON on stdout.")
@click.pass_context
def report(ctx: click.Context, video: Path, plan_file: Path | None, portrait: Path | None, out_dir: Path | None, json_out: bool) -> None:
    """Measure seams, colour and identity drift, lip/audio sync and integrity of a finished video."""
    from orchestrator.preflight import Write, refuse_overwriting_inputs
    from segmenters.plan import Plan
    from quality.report import REPORT_FILES, build_report, format_summary

    events = _setup(ctx)
    out_dir = out_dir or video.parent / (video.stem + ".report")
    inputs = {name: path for name, path in (("video", video), ("plan file", plan_file), ("portrait", portrait)) if path is not None}
    refuse_overwriting_inputs([Write("report file", out_dir / name, "pass --out with another folder") for name in REPORT_FILES], inputs)
    the_plan = Plan.load(plan_file) if plan_file else None
    check_writable_folder(out_dir, f"write the report into {out_dir}", elsewhere="pass --out with another folder")
    try:
        result = build_report(video, plan=the_plan, portrait=portrait, out_dir=out_dir,
                              progress=lambda done, total: events.progress("report: frame", done, total))
    finally:
        events.clear()
    if json_out:
        click.echo(json.dumps(result.to_dict(), indent=1, default=str))
    else:
        click.echo(format_summary(result))
        click.echo(f"\nreport: {out_dir}")


# -- entry point -----------------------------------------------------------------------------------

def _raise_interrupt(signum, frame):  # noqa: ARG001 - signal handler signature
    raise KeyboardInterrupt


def _failed_path(exc: BaseException) -> Path:
    os_exc = find_write_os_error(exc)
    return Path(os.fsdecode(os_exc.filename)) if os_exc is not None and os_exc.filename else Path.cwd()


def _show_python_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ARG001 - showwarning's signature
    """A library's Python warning, said the longtake way: `warning: …` on stderr and a --json event, no source line."""
    log.warning("%s (%s from %s:%d)", message, category.__name__, Path(filename).name, lineno)


def main(argv: list[str] | None = None) -> int:
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    with contextlib.suppress(ValueError):  # not in the main thread (tests calling main())
        signal.signal(signal.SIGTERM, _raise_interrupt)
    saved_showwarning = warnings.showwarning
    warnings.showwarning = _show_python_warning
    try:
        code = cli.main(args=argv, prog_name="longtake", standalone_mode=False)
        return int(code or 0)
    except click.exceptions.ClickException as exc:
        exc.show()
        return exc.exit_code
    except (click.exceptions.Abort, KeyboardInterrupt):
        # click turns Ctrl-C (and our SIGTERM handler's KeyboardInterrupt) into Abort.
        click.echo("\ninterrupted: every finished step is kept; run the same command again to resume.", err=True)
        return RunInterrupted.exit_code
    except LongtakeError as exc:
        if debug:
            traceback.print_exc()
        click.echo(f"error: {exc}", err=True)
        return exc.exit_code
    except Exception as exc:
        # The last net for a disk problem some writer met outside the translated paths: still a sentence.
        path = _failed_path(exc)
        translated = write_failure(exc, path, f"use {path}")
        if translated is not None:
            if debug:
                traceback.print_exc()
            click.echo(f"error: {translated}", err=True)
            return translated.exit_code
        traceback.print_exc()
        click.echo("error: longtake hit an unexpected error (above). Finished steps are kept; please report this with --debug output.", err=True)
        return 1
    finally:
        warnings.showwarning = saved_showwarning
        # A command's progress handler must not outlive it (main() may be called again in one process).
        log.handlers[:] = [h for h in log.handlers if not isinstance(h, EventsLogHandler)]
        log.propagate = True
        log.setLevel(logging.NOTSET)


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
