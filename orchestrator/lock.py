"""One run per work folder: an exclusive ``flock`` on ``<workdir>/longtake.lock``.

The kernel drops a flock when its holder dies, SIGKILL and power cuts
included, so "is a run using this folder?" is answered exactly by the lock and
never by guessing from a PID. The file's JSON body (pid, host, start time,
command) is only there so the refusal can say who holds it, and so a run that
takes over after a crash can say which run died.

The file is never replaced or unlinked: a flock belongs to an inode, and a new
inode under the same name would let two runs each "hold" a lock.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno as _errno
import fcntl
import json
import logging
import os
import socket
import time
from pathlib import Path

from orchestrator.cache import workdir_error
from orchestrator.errors import LockedError, LongtakeError

log = logging.getLogger("longtake." + __name__)  # under "longtake": the CLI shows it as a warning and a --json event

LOCK_FILENAME = "longtake.lock"


class WorkdirLock:
    """``with WorkdirLock(workdir, command="run"):`` holds the work folder for the block.

    Raises ``LockedError`` naming the holder when another process holds it, and
    ``WorkdirError`` when the folder is read-only. ``previous`` is the body left
    by a run that died holding the lock (taken over), else None.
    """

    def __init__(self, workdir: Path, *, command: str = "run"):
        self.workdir = Path(workdir)
        self.path = self.workdir / LOCK_FILENAME
        self.command = command
        self.previous: dict | None = None
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> "WorkdirLock":
        self.acquire()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.release()

    def acquire(self) -> "WorkdirLock":
        if self._fd is not None:
            raise RuntimeError(f"{self.path} is already held by this WorkdirLock")
        try:
            self.workdir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise self._os_error(exc) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd, retry_empty_s=0.2)
            os.close(fd)
            err = LockedError(_locked_message(holder, self.workdir, self.path))
            err.holder = holder  # type: ignore[attr-defined]
            raise err from None
        except OSError as exc:
            os.close(fd)
            raise LongtakeError(
                f"could not lock {self.path}: {exc.strerror or exc} (the file system may not support locks). "
                "Set `workdir:` in the project file to a local disk."
            ) from exc
        try:
            left = _read_holder(fd)
            if left:
                self.previous = left
                log.warning(
                    "the previous longtake run (%s) ended without releasing %s; taking it over",
                    _describe(left),
                    self.path,
                )
            body = {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "started_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "command": self.command,
            }
            _write_body(fd, json.dumps(body, sort_keys=True) + "\n")
        except OSError as exc:
            # The body only feeds messages; a full disk must not stop `longtake clean`
            # (which is how space gets freed), so keep the lock and say so.
            if exc.errno in (_errno.ENOSPC, _errno.EDQUOT):
                log.warning("could not record this run in %s (%s); the lock is held anyway", self.path, exc.strerror)
            else:
                _unlock_close(fd)
                raise self._os_error(exc) from exc
        except BaseException:
            _unlock_close(fd)
            raise
        self._fd = fd
        return self

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        # Empty the body first: a body found by the next run means its writer died holding the lock.
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        _unlock_close(fd)

    def _os_error(self, exc: OSError) -> LongtakeError:
        translated = workdir_error(exc, self.workdir, "create the lock file")
        if translated is not None:
            return translated
        return LongtakeError(f"could not use {self.workdir} as the work folder: {exc.strerror or exc} ({exc.filename or self.path}).")


def _write_body(fd: int, text: str) -> None:
    data = text.encode("utf-8")
    os.ftruncate(fd, 0)
    written = 0
    while written < len(data):
        written += os.pwrite(fd, data[written:], written)
    os.fsync(fd)


def _read_holder(fd: int, retry_empty_s: float = 0.0) -> dict:
    """The lock file's JSON body, {} when empty or unreadable.

    The holder writes its body just after taking the lock; ``retry_empty_s``
    waits that long for it, so a refusal right at that moment still names the PID.
    """
    deadline = time.monotonic() + retry_empty_s
    while True:
        try:
            raw = os.pread(fd, 4096, 0)
            body = json.loads(raw.decode("utf-8")) if raw.strip() else {}
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            body = {}
        if not isinstance(body, dict):
            body = {}
        if body or time.monotonic() >= deadline:
            return body
        time.sleep(0.02)


def _unlock_close(fd: int) -> None:
    with contextlib.suppress(OSError):
        fcntl.flock(fd, fcntl.LOCK_UN)
    with contextlib.suppress(OSError):
        os.close(fd)


def _started(body: dict) -> str | None:
    raw = body.get("started_utc")
    if not isinstance(raw, str):
        return None
    try:
        when = _dt.datetime.strptime(raw, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=_dt.timezone.utc)
    except ValueError:
        return raw
    if when.date() == _dt.datetime.now(_dt.timezone.utc).date():
        return when.strftime("%H:%M UTC")
    return when.strftime("%Y-%m-%d %H:%M UTC")


def _describe(body: dict) -> str:
    """"pid 1234 on host h, started 22:41 UTC, `longtake run`" from whatever the body has."""
    parts = []
    pid = body.get("pid")
    host = body.get("host")
    if pid is not None:
        other_host = isinstance(host, str) and host and host != socket.gethostname()
        parts.append(f"pid {pid} on host {host}" if other_host else f"pid {pid}")
    started = _started(body)
    if started:
        parts.append(f"started {started}")
    command = body.get("command")
    if isinstance(command, str) and command:
        parts.append(f"`longtake {command}`")
    return ", ".join(parts) or "holder unknown"


def _locked_message(body: dict, workdir: Path, path: Path) -> str:
    pid = body.get("pid")
    if pid is None:
        return (
            f"another longtake run is using {workdir} (it holds {path}); "
            f"wait for it or stop it (`fuser {path}` shows its pid)"
        )
    host = body.get("host")
    where = f" on host {host}" if isinstance(host, str) and host and host != socket.gethostname() else ""
    return f"another longtake run ({_describe(body)}) is using {workdir}; wait for it or stop it (kill {pid}{where})"
