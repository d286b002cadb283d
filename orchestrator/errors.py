"""Typed errors that carry their exit code.

Library code raises these; only the CLI entry point prints them and exits.
A message names the thing, the rule, the value and the fix.
"""

from __future__ import annotations

import contextlib
import errno as _errno
import os
import re
import shutil
from pathlib import Path
from typing import Iterator


class LongtakeError(Exception):
    """Base class: the run failed; finished work is kept (exit 1)."""

    exit_code = 1


class ConfigError(LongtakeError):
    """The project file or a command-line option is wrong (exit 2).

    ``problems`` holds every problem found, so the user fixes them all in one go.
    """

    exit_code = 2

    def __init__(self, message: str, problems: list[str] | None = None):
        self.problems = list(problems or [])
        if self.problems:
            message = message + "\n" + "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(message)


class UsageError(ConfigError):
    """A command-line usage error (exit 2)."""


class MediaError(LongtakeError):
    """An input media file is missing, unreadable or unusable (exit 3)."""

    exit_code = 3


class GeneratorError(LongtakeError):
    """The generator cannot run with these settings (exit 1)."""


class ModelFileError(GeneratorError, ConfigError):
    """A model file the config names is missing, cut short, or not the model it should be (exit 2: fix the config or the file)."""

    exit_code = 2


class LockedError(LongtakeError):
    """Another run holds the work folder (exit 1)."""


class RunInterrupted(LongtakeError):
    """Ctrl-C or SIGTERM: finished steps are kept; run again to resume (exit 130)."""

    exit_code = 130


class WriteError(LongtakeError):
    """A file could not be written: disk full, quota, read-only, no permission, or the path is a folder (exit 1).

    ``path`` is what could not be written, ``errno`` the OS error number and
    ``free_bytes`` the free space there when it was measured (None when unknown).
    """

    def __init__(self, message: str, *, path=None, errno: int | None = None, free_bytes: int | None = None):
        super().__init__(message)
        self.path = path
        self.errno = errno
        self.free_bytes = free_bytes


class WorkdirError(WriteError):
    """The work folder cannot be written: disk full, quota, read-only or no permission (exit 1).

    Finished steps are kept; fix the folder (or point ``workdir:`` elsewhere) and run again.
    """


def not_a_file(path: Path | str) -> str | None:
    """Why ``path`` is no regular file to read ("does not exist", "is a folder", "is a named pipe (FIFO)", …), or None.

    Never opens it: opening a FIFO would block until someone writes to it.
    """
    import stat

    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return "is a broken symbolic link" if path.is_symlink() else "does not exist"
    except NotADirectoryError:
        return "does not exist (a part of the path is a file, not a folder)"
    except OSError as exc:
        return f"cannot be looked at ({exc.strerror or exc})"
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "is a folder, not a file"
    if stat.S_ISFIFO(mode):
        return "is a named pipe (FIFO), not a file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "is a device, not a file"
    if stat.S_ISSOCK(mode):
        return "is a socket, not a file"
    return "is not a regular file"


# ---------------------------------------------------------------------------------------------
# The one place that turns an OS error met while writing into a sentence. Every writer in
# longtake (atomic_path, the step cache, the lock, the report folder) goes through here, and
# the CLI uses it as the last net, so a traceback only ever means a bug in longtake.
# ---------------------------------------------------------------------------------------------

DISK_FULL_ERRNOS = frozenset({_errno.ENOSPC, _errno.EDQUOT})
READ_ONLY_ERRNOS = frozenset({_errno.EROFS, _errno.EACCES, _errno.EPERM})
_PATH_ERRNOS = frozenset({_errno.EISDIR, _errno.ENOTDIR, _errno.EFBIG, _errno.ENAMETOOLONG})
WRITE_ERRNOS = DISK_FULL_ERRNOS | READ_ONLY_ERRNOS | _PATH_ERRNOS

# numpy's tofile() reports a short write as OSError("N requested and M written"), with no errno.
_SHORT_WRITE_RE = re.compile(r"\b\d+ requested and \d+ written\b")


def write_errno(exc: BaseException) -> int | None:
    """The errno of an OS error that is the disk's or the path's fault, else None (numpy short writes: ENOSPC)."""
    if not isinstance(exc, OSError):
        return None
    if exc.errno in WRITE_ERRNOS:
        return exc.errno
    if exc.errno is None and _SHORT_WRITE_RE.search(str(exc)):
        return _errno.ENOSPC
    return None


def find_write_os_error(exc: BaseException | None) -> OSError | None:
    """The first OS error in ``exc`` or its cause/context chain that ``write_errno`` recognises."""
    seen = 0
    while exc is not None and seen < 16:
        if write_errno(exc) is not None:
            return exc  # type: ignore[return-value]
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


def write_failure(
    exc: BaseException,
    target: Path | str,
    doing: str | None = None,
    *,
    elsewhere: str = "write it to another folder",
    then: str = "",
    cls: type[WriteError] = WriteError,
) -> WriteError | None:
    """A sentence for a write to ``target`` that failed with ``exc`` (or its cause), or None when that is no disk problem.

    ``doing`` names the act ("write the video to X"); ``elsewhere`` is the other way out the
    user has ("set `output:` to another folder"); ``then`` ends the fix ("finished steps are kept").
    """
    os_exc = find_write_os_error(exc)
    if os_exc is None:
        return None
    code = write_errno(os_exc)
    target = Path(target)
    doing = doing or f"write {target}"
    tail = f" {then}" if then else ""
    if code in DISK_FULL_ERRNOS:
        free, total = _disk_usage(target)
        what = "the disk quota is exceeded" if code == _errno.EDQUOT else "the disk is full"
        room = f"{_human_bytes(free)} free of {_human_bytes(total)}" if free is not None else "free space unknown"
        return cls(f"could not {doing}: {what} ({room}). Free space or {elsewhere}, then run again.{tail}",
                   path=target, errno=code, free_bytes=free)
    if code in READ_ONLY_ERRNOS:
        what = "the folder is on a read-only file system" if code == _errno.EROFS else "permission denied"
        return cls(f"could not {doing}: {what} ({os_exc.strerror or os.strerror(code)}). "
                   f"Make the folder writable or {elsewhere}, then run again.{tail}", path=target, errno=code)
    where = Path(os.fsdecode(os_exc.filename)) if os_exc.filename else target
    if code == _errno.EISDIR:
        what = f"{where} is a folder, not a file"
    elif code == _errno.ENOTDIR:
        what = f"a part of {where} is a file, not a folder"
    elif code == _errno.EFBIG:
        what = "the file is larger than this file system allows (FAT32 stops at 4 GB)"
    else:
        what = "the path is too long for this file system"
    return cls(f"could not {doing}: {what}. Fix the path or {elsewhere}, then run again.{tail}", path=target, errno=code)


def refuse_folder(target: Path | str, doing: str | None = None, *, elsewhere: str = "write it to another folder") -> None:
    """Raise ``WriteError`` when ``target``, a file to be written, is an existing folder (before any work is done)."""
    target = Path(target)
    if target.is_dir():
        raise WriteError(
            f"could not {doing or f'write {target}'}: {target} is a folder, not a file. "
            f"Name a file (such as {target / ('out' + (target.suffix or '.mp4'))}) or {elsewhere}.",
            path=target, errno=_errno.EISDIR,
        )


def check_writable_folder(folder: Path | str, doing: str, *, elsewhere: str) -> None:
    """Make ``folder`` and prove a file can be created in it, so a slow job fails before it starts, not after."""
    import tempfile

    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise WriteError(f"could not {doing}: {folder} is a file, not a folder. Name a folder or {elsewhere}.",
                         path=folder, errno=_errno.ENOTDIR)
    with writing_to(folder, doing, elsewhere=elsewhere):
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass


@contextlib.contextmanager
def writing_to(target: Path | str, doing: str | None = None, *, elsewhere: str = "write it to another folder",
               then: str = "", cls: type[WriteError] = WriteError) -> Iterator[None]:
    """Turn a disk problem raised by the block (ENOSPC, read-only, …) into a ``WriteError`` sentence about ``target``.

    Errors about some other file (an input that could not be read) and longtake's own
    errors pass through unchanged.
    """
    try:
        yield
    except WriteError as exc:
        # An inner writer's plain sentence (atomic_path's): reword it for the whole act, keeping the
        # cause. A more specific one (WorkdirError) already says the right thing.
        translated = write_failure(exc, target, doing, elsewhere=elsewhere, then=then, cls=cls) if type(exc) is WriteError else None
        if translated is None:
            raise
        raise translated from exc.__cause__ or exc
    except LongtakeError:
        raise
    except Exception as exc:
        os_exc = find_write_os_error(exc)
        if os_exc is not None and not concerns(os_exc, Path(target)):
            raise
        translated = write_failure(exc, target, doing, elsewhere=elsewhere, then=then, cls=cls)
        if translated is None:
            raise
        raise translated from exc


def concerns(os_exc: OSError, target: Path, *, folder_only: bool = False) -> bool:
    """Whether ``os_exc`` is about writing ``target``: it names no file, or names the target, a file in its
    folder (``target`` itself with ``folder_only``) or a parent folder that could not be made.

    A copy's error names both ends (``filename2`` is the destination); either counts.
    """
    names = [n for n in (os_exc.filename, getattr(os_exc, "filename2", None)) if n]
    if not names:
        return True
    target = Path(target).absolute()
    bases = (target,) if folder_only else (target, target.parent)
    for name in names:
        path = Path(os.fsdecode(name)).absolute()
        if any(path.is_relative_to(base) for base in bases) or target.is_relative_to(path):
            return True
    return False


def _disk_usage(folder: Path) -> tuple[int | None, int | None]:
    probe = Path(folder)
    while True:
        try:
            usage = shutil.disk_usage(probe)
            return usage.free, usage.total
        except OSError:
            if probe.parent == probe:
                return None, None
            probe = probe.parent


def _human_bytes(n: int | None) -> str:
    if n is None:
        return "unknown"
    value = float(n)
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{int(value)} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} bytes"
