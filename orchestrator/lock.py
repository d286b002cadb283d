"""One run per work folder: an exclusive ``flock`` on ``<workdir>/longtake.lock``.

The kernel drops a flock when its holder dies, SIGKILL and power cuts
included, so "is a run using this folder?" is answered exactly by the lock and
never by guessing from a PID. The file's JSON body (pid, host, start time,
command) is only there so the refusal can say who holds it, and so a run that
takes over after a crash can say which run died.

The file is never replaced or unlinked: a flock belongs to an inode, and a new
inode under the same name would let two runs each "hold" a lock.

Across hosts (a work folder on shared storage) flock holds only where the file
system carries it to the server:

- NFS (Linux client >= 2.6.12): flock is sent as a whole-file byte-range lock
  (NLM for v3, the protocol's own locks for v4), so it holds across clients,
  unless the mount says ``nolock`` or ``local_lock=flock|all`` (node-local).
- SMB/CIFS (Linux): flock reaches the server only from kernel 5.5 on; before,
  it is node-local.
- Lustre: across clients only when mounted ``-o flock``; ``localflock`` is
  node-local, ``noflock`` makes flock an error (refused here with a sentence).
- OCFS2: cluster-wide unless mounted ``localflocks``; AFS: per its ``flock=`` option.
- Others (FUSE file systems, object-store mounts, BeeGFS without global file
  locks, ...): assume node-local.

So a **lease** guards the rest: ``longtake.lease`` beside the lock names the
holder (host, namespace, pid, start) and a heartbeat renewed every
``LEASE_RENEW_S``. A run refuses a folder whose lease names a live process on
this host, or another host's process that renewed within ``LEASE_STALE_S``;
it takes over a lease that is older (its holder died or lost the storage).
The lease is written by atomic rename and read back after ``LEASE_SETTLE_S``, so
of two hosts starting at once the later writer wins and the other refuses.
It assumes close-to-open consistency (NFS gives it) and clocks that agree
within a few seconds (NTP); flock stays the exact guard wherever it holds.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno as _errno
import fcntl
import json
import logging
import os
import threading
import time
from pathlib import Path

from orchestrator.atomic import atomic_write_text
from orchestrator.cache import workdir_error
from orchestrator.errors import LockedError, LongtakeError
from orchestrator.hosts import ProcessId, host_name

log = logging.getLogger("longtake." + __name__)  # under "longtake": the CLI shows it as a warning and a --json event

LOCK_FILENAME = "longtake.lock"
LEASE_FILENAME = "longtake.lease"
LEASE_RENEW_S = 10.0
LEASE_STALE_S = 60.0  # six missed renewals: the holder is dead or cut off from the storage
LEASE_SETTLE_S = 0.25


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
        self.lease_path = self.workdir / LEASE_FILENAME
        self.previous: dict | None = None
        self._fd: int | None = None
        self._lease: _Lease | None = None

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
            self._lease = _Lease.take(self.lease_path, self.command, self.workdir)
        except BaseException:
            _unlock_close(fd)
            raise
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
                "host": host_name(),
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
                self._lease.drop()
                _unlock_close(fd)
                raise self._os_error(exc) from exc
        except BaseException:
            self._lease.drop()
            _unlock_close(fd)
            raise
        self._fd = fd
        return self

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        lease, self._lease = self._lease, None
        if lease is not None:
            lease.drop()
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
        other_host = isinstance(host, str) and host and host != host_name()
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
    where = f" on host {host}" if isinstance(host, str) and host and host != host_name() else ""
    return f"another longtake run ({_describe(body)}) is using {workdir}; wait for it or stop it (kill {pid}{where})"


class _Lease:
    """The heartbeat file that guards a work folder where flock is node-local (see the module docstring)."""

    def __init__(self, path: Path, body: dict):
        self.path = path
        self.body = body
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def take(cls, path: Path, command: str, workdir: Path) -> "_Lease":
        me = ProcessId.me()
        found = _read_lease(path)
        if found is not None:
            refusal = _lease_refusal(found, me, workdir)
            if refusal:
                raise LockedError(refusal)
        lease = cls(path, {"owner": me.to_dict(), "command": command, "token": os.urandom(8).hex()})
        try:
            lease._write()
        except OSError as exc:
            if exc.errno in (_errno.ENOSPC, _errno.EDQUOT):
                log.warning("could not write %s (%s); only flock guards this folder", path, exc.strerror)
                return lease
            raise
        time.sleep(LEASE_SETTLE_S)
        now = _read_lease(path)
        if now is not None and now.get("token") != lease.body["token"]:
            # Another host wrote its lease at the same moment and its write landed last.
            raise LockedError(_lease_refusal(now, me, workdir) or f"another longtake run took {workdir} at the same moment")
        lease._thread = threading.Thread(target=lease._renew, name="longtake-lease", daemon=True)
        lease._thread.start()
        return lease

    def _write(self) -> None:
        self.body["heartbeat_unix"] = time.time()
        atomic_write_text(self.path, json.dumps(self.body, sort_keys=True) + "\n")

    def _renew(self) -> None:
        warned = False
        while not self._stop.wait(LEASE_RENEW_S):
            now = _read_lease(self.path)
            if now is not None and now.get("token") != self.body["token"] and not warned:
                log.error("%s was taken over by %s while this run held it; two runs may now share the folder",
                          self.path, _describe_owner(now))
                warned = True
                continue
            try:
                self._write()
            except OSError as exc:
                log.warning("could not renew %s: %s", self.path, exc)

    def drop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        now = _read_lease(self.path)
        if now is not None and now.get("token") == self.body.get("token"):
            with contextlib.suppress(OSError):
                self.path.unlink()


def _read_lease(path: Path) -> dict | None:
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, ValueError):
        return {}  # torn or foreign: nobody can be shown to hold it
    return body if isinstance(body, dict) else {}


def _describe_owner(lease: dict) -> str:
    owner = ProcessId.from_dict(lease.get("owner") or {})
    if owner is None:
        return "an unknown run"
    return f"pid {owner.pid} on host {owner.host}"


def _lease_refusal(lease: dict, me: ProcessId, workdir: Path) -> str | None:
    """Why ``lease`` forbids taking the folder, or None when it may be taken over."""
    owner = ProcessId.from_dict(lease.get("owner") or {})
    if owner is None:
        return None
    command = lease.get("command")
    what = f"`longtake {command}`" if isinstance(command, str) and command else "a longtake run"
    if owner.is_local():
        if owner.pid != me.pid and owner.alive():
            return f"another longtake run ({what}, pid {owner.pid}) is using {workdir}; wait for it or stop it (kill {owner.pid})"
        return None
    beat = lease.get("heartbeat_unix")
    if not isinstance(beat, (int, float)):
        return None
    age_s = time.time() - beat
    if age_s >= LEASE_STALE_S:
        log.warning("taking over %s from pid %s on host %s, silent for %.0f s (it died or lost the storage)",
                    workdir, owner.pid, owner.host, age_s)
        return None
    return (f"another longtake run ({what}, pid {owner.pid} on host {owner.host}, alive {max(age_s, 0):.0f} s ago) is using "
            f"{workdir}; wait for it or stop it on {owner.host} (kill {owner.pid}). Two hosts must not run one project at once.")
