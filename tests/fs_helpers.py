"""Small real file systems for the disk-full and read-only tests: a tmpfs of a given size, optionally read-only.

Mounting needs root and a `mount` that may; where the machine refuses, the
helper yields False and the test skips (a patched test covers the same logic).
``read_only_folder`` never skips: where it cannot mount, it patches ``os.open``
and ``os.mkdir`` to refuse writes under the folder with EROFS.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
from pathlib import Path
from typing import Callable, Iterator


@contextlib.contextmanager
def tmpfs(path: Path, size: str = "1m", *, prepare: Callable[[Path], None] | None = None, read_only: bool = False) -> Iterator[bool]:
    """Mount a tmpfs of ``size`` at ``path``; ``prepare(path)`` fills it before a ``read_only`` remount.

    Yields whether the mount happened.
    """
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        yield False
        return
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True).returncode:
        yield False
        return
    try:
        if prepare is not None:
            prepare(path)
        if read_only:
            subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True)
        yield True
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


@contextlib.contextmanager
def read_only_folder(path: Path, monkeypatch, prepare: Callable[[Path], None] | None = None) -> Iterator[str]:
    """A folder at ``path`` on which creating files and folders fails with EROFS; yields "mount" or "patched".

    ``prepare(path)`` fills it first, while it is still writable.
    """
    path = Path(path)
    with tmpfs(path, "4m", prepare=prepare, read_only=True) as mounted:
        if mounted:
            yield "mount"
            return
        if prepare:
            prepare(path)
        root = os.path.realpath(path)

        def under(p) -> bool:
            real = os.path.realpath(os.fsdecode(p))
            return real == root or real.startswith(root + os.sep)

        real_open, real_mkdir = os.open, os.mkdir

        def ro_open(p, flags, *a, **k):
            if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and under(p):
                raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fsdecode(p))
            return real_open(p, flags, *a, **k)

        def ro_mkdir(p, *a, **k):
            if under(p):
                raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fsdecode(p))
            return real_mkdir(p, *a, **k)

        monkeypatch.setattr(os, "open", ro_open)
        monkeypatch.setattr(os, "mkdir", ro_mkdir)
        try:
            yield "patched"
        finally:
            monkeypatch.setattr(os, "open", real_open)
            monkeypatch.setattr(os, "mkdir", real_mkdir)
