"""Checks that run before the first GPU second, and the guard that keeps longtake off the user's own files.

`longtake plan` is how a user checks a project, and `longtake run` must fail
before generation for anything that would otherwise fail after it: an output
path that cannot be written, a work folder that collides with the output, a
captions file or portrait that cannot be read, a size cap no encoder can meet.
Each problem is one sentence naming the key, the path and the fix.

The guard: nothing longtake writes (the video, the report beside it, the plan
files, a project file from `init`) may be one of the inputs (voiceover,
portrait, captions, project file). Paths are compared resolved (symlinks and
``..`` followed) *and* by inode, so a hard link or a second mount point of the
same file is caught too.
"""

from __future__ import annotations

import errno as _errno
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from orchestrator.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from orchestrator.config import Project

# What the work folder itself holds besides the cache (see graph, lock and the `plan` command).
WORKDIR_FILES = ("plan.json", "plan.png", "state.json", "longtake.lock", "projects.json")
WORKDIR_TREES = ("cache", "models")


@dataclass(frozen=True)
class Write:
    """A file longtake will write: what it is, where, and what the user changes to move it."""

    what: str
    path: Path
    fix: str


def same_file(a: Path, b: Path) -> bool:
    """True when ``a`` and ``b`` name one file: equal after resolving symlinks and ``..``, or one inode."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        sa, sb = os.stat(a), os.stat(b)
    except OSError:
        return False  # one of them does not exist yet: it cannot be the other by inode
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def is_within(path: Path, folder: Path) -> bool:
    """``path`` is ``folder`` or inside it, after resolving both."""
    real, base = Path(os.path.realpath(path)), Path(os.path.realpath(folder))
    return real == base or base in real.parents


def project_inputs(project: "Project") -> dict[str, Path]:
    """The user's own files a project reads, by name; longtake must never write over any of them."""
    inputs = {"voiceover": Path(project.voiceover), "portrait": Path(project.portrait)}
    if project.export.captions is not None:
        inputs["captions file"] = Path(project.export.captions)
    if project.project_file is not None:
        inputs["project file"] = Path(project.project_file)
    return inputs


def report_paths(output: Path) -> list[Path]:
    """The report files `run` puts beside the video."""
    output = Path(output)
    return [output.with_name(output.stem + ".report.json"), output.with_name(output.stem + ".report.png")]


def project_writes(project: "Project") -> list[Write]:
    """Every file a `run` of this project writes outside its cache."""
    output = Path(project.output)
    workdir = Path(project.workdir)
    writes = [Write("output", output, "set `output:` in the project file to a new file name")]
    writes += [Write("report", p, "set `output:` in the project file to a new file name") for p in report_paths(output)]
    writes += [Write(f"work file {name}", workdir / name, "set `workdir:` in the project file to a folder of its own") for name in WORKDIR_FILES]
    return writes


def refuse_overwriting_inputs(writes: Iterable[Write], inputs: dict[str, Path]) -> None:
    """ConfigError listing every write that would land on an input (exit 2)."""
    problems = []
    for write in writes:
        for name, source in inputs.items():
            if same_file(write.path, source):
                shown = "" if os.path.realpath(write.path) == os.path.realpath(source) and str(write.path) == str(source) else f" ({source})"
                problems.append(f"the {write.what} {write.path} is the {name}{shown}: longtake would overwrite it; {write.fix}")
                break
    if problems:
        raise ConfigError("longtake refuses to write over its own inputs", problems)


def check_output_and_workdir(project: "Project") -> None:
    """The output and the work folder must not collide: same path, one inside the other's territory."""
    output, workdir = Path(project.output), Path(project.workdir)
    fix = "set `output:` and `workdir:` in the project file to different places"
    if is_within(workdir, output):
        raise ConfigError(f"`output:` {output} is the work folder or a folder above it ({workdir}); the video must be a file of its own: {fix}")
    for tree in WORKDIR_TREES:
        if is_within(output, workdir / tree):
            raise ConfigError(f"`output:` {output} is inside the work folder's {tree}/ ({workdir / tree}), which longtake manages and `clean` empties; {fix}")
    for name in WORKDIR_FILES:
        if same_file(output, workdir / name):
            raise ConfigError(f"`output:` {output} is the work folder's own {name}; {fix}")
    for name, source in project_inputs(project).items():
        for tree in WORKDIR_TREES:
            if is_within(source, workdir / tree):
                raise ConfigError(f"the {name} {source} lies inside the work folder's {tree}/, which `longtake clean` empties; move it out, or set `workdir:` elsewhere")


def check_writable_file(path: Path, what: str, fix: str) -> None:
    """``path`` can be created or replaced as a regular file: not a folder, and its folder accepts a new file.

    Probes with a real (empty, removed at once) file in the nearest existing folder: permission bits
    do not tell a read-only mount, and root ignores them.
    """
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{what} {path} is a folder; {fix} (a file name like {path / 'video.mp4'})")
    if path.exists() and not path.is_file():
        raise ConfigError(f"{what} {path} exists but is not a regular file (a FIFO or device?); {fix}")
    folder = path.parent
    while not folder.exists() and folder.parent != folder:
        folder = folder.parent
    if not folder.is_dir():
        raise ConfigError(f"{what} {path} cannot be created: {folder} is a file, not a folder; {fix}")
    try:
        fd, probe = tempfile.mkstemp(prefix=".longtake-probe-", dir=folder)
    except OSError as exc:
        raise ConfigError(f"{what} {path} cannot be written: {_why_unwritable(exc, folder)}; {fix}") from None
    os.close(fd)
    try:
        os.unlink(probe)
    except OSError:  # pragma: no cover - we just made it
        pass


def _why_unwritable(exc: OSError, folder: Path) -> str:
    if exc.errno == _errno.EROFS:
        return f"{folder} is on a read-only file system"
    if exc.errno in (_errno.EACCES, _errno.EPERM):
        return f"no permission to create files in {folder}"
    if exc.errno in (_errno.ENOSPC, _errno.EDQUOT):
        return f"the disk holding {folder} is full"
    return f"creating a file in {folder} failed ({exc.strerror or exc})"


def check_project(project: "Project") -> None:
    """Everything about a project's files that can be checked before ingest: paths, inputs, captions, portrait."""
    refuse_overwriting_inputs(project_writes(project), project_inputs(project))
    check_output_and_workdir(project)
    check_writable_file(Path(project.output), "`output:`", "set `output:` in the project file to a file in a writable folder")
    for report in report_paths(Path(project.output)):
        if report.is_dir():
            raise ConfigError(f"the report {report} that `run` writes beside the video is a folder; move it away or set `output:` to another name")
    check_inputs_readable(project)


def check_inputs_readable(project: "Project") -> None:
    """The portrait decodes and the captions file parses (MediaError, exit 3), before any audio is ingested."""
    from generators.portrait import check_portrait
    from stitchers.captions import load_captions

    check_portrait(Path(project.portrait))
    if project.export.captions is not None:
        load_captions(Path(project.export.captions))


def check_plan_exports(project: "Project", plan, export, audio_channels: int) -> None:
    """The export settings can encode this plan's video (a size cap it can meet); ConfigError otherwise."""
    from stitchers.export import resolve_export

    resolve_export(export, gen_width=plan.width, gen_height=plan.height, fps=plan.fps, total_frames=plan.total_frames, audio_channels=audio_channels)
