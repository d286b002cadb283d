"""Who is this process, across hosts: a host name, a process-namespace token, and a pid's start time.

A work folder may sit on storage that several machines mount (a Ray cluster's
shared cache). A pid means something only on the machine, boot and pid
namespace it came from, so anything that judges "is the process that wrote
this still alive?" must first know the writer ran *here*. The identity of a
process is therefore ``(host, namespace token, pid, start ticks)``:

- ``host``: ``$LONGTAKE_HOST`` when set (two containers that share a host name,
  or tests that play two hosts), else ``socket.gethostname()``; reduced to
  letters, digits, ``.``, ``-`` and ``_`` so it can sit in a file name.
- namespace token: 8 hex of the kernel's boot id and this process's pid
  namespace, so a reboot or a container with its own pids reads as elsewhere.
- start ticks: the process's start time since boot (``/proc/<pid>/stat`` field
  22), so a pid reused by a new process reads as a different process.

Where ``/proc`` is missing (macOS) the token and start are ``"0"``/``0`` and
judgement falls back to "is that pid alive".
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path

HOST_ENV = "LONGTAKE_HOST"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def host_name() -> str:
    """This machine's name as written into temp folder names and leases."""
    raw = os.environ.get(HOST_ENV) or socket.gethostname() or "localhost"
    return _UNSAFE.sub("_", raw)[:64] or "localhost"


@functools.lru_cache(maxsize=1)
def namespace_token() -> str:
    """8 hex identifying this boot and pid namespace ("0" where /proc has neither)."""
    parts = []
    try:
        parts.append(Path("/proc/sys/kernel/random/boot_id").read_text().strip())
    except OSError:
        pass
    try:
        parts.append(os.readlink("/proc/self/ns/pid"))
    except OSError:
        pass
    if not parts:
        return "0"
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:8]


def start_ticks(pid: int) -> int | None:
    """When ``pid`` started, in clock ticks since boot; None when it does not exist (or is a zombie); 0 when unknowable."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None if Path("/proc/self/stat").exists() else (0 if pid_alive(pid) else None)
    except OSError:
        return 0 if pid_alive(pid) else None
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    fields = raw[raw.rfind(")") + 2:].split()
    if fields[:1] in (["Z"], ["X"]):
        return None  # exited, its parent has not reaped it yet (a SIGKILLed Ray worker): it will write nothing more
    try:
        return int(fields[19])  # field 22 of the whole line
    except (IndexError, ValueError):
        return 0


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    except OSError:
        return False
    return True


@dataclass(frozen=True)
class ProcessId:
    """A process as other hosts can name it."""

    host: str
    namespace: str
    pid: int
    start: int

    @classmethod
    def me(cls) -> "ProcessId":
        pid = os.getpid()
        return cls(host_name(), namespace_token(), pid, start_ticks(pid) or 0)

    def is_local(self) -> bool:
        """True when this process could see the pid: same host name, boot and pid namespace."""
        return self.host == host_name() and self.namespace == namespace_token()

    def alive(self) -> bool:
        """Whether the process still runs; only meaningful when ``is_local()``."""
        now = start_ticks(self.pid)
        if now is None:
            return False
        return self.start == 0 or now == 0 or now == self.start

    def to_dict(self) -> dict:
        return {"host": self.host, "namespace": self.namespace, "pid": self.pid, "start": self.start}

    @classmethod
    def from_dict(cls, data: dict) -> "ProcessId | None":
        try:
            return cls(str(data["host"]), str(data.get("namespace", "0")), int(data["pid"]), int(data.get("start", 0)))
        except (KeyError, TypeError, ValueError):
            return None
