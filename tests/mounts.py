"""Real small and read-only file systems for tests (root only), with a patched fallback elsewhere.

``tmpfs(path, size)`` mounts a tmpfs of ``size`` at ``path`` and yields True, or
yields False where mounting is not possible (not root, no ``mount``, a
container without the capability). ``read_only_folder`` always yields a folder
writes into which fail with EROFS: a real read-only tmpfs where the machine
allows it, otherwise ``os.open``/``os.mkdir`` patched to refuse under it, so a
test never has to skip.
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
def tmpfs(path: Path, size: str = "1m") -> Iterator[bool]:
    """Mount a small tmpfs at ``path`` (root only); yields False when that is not possible here."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        yield False
        return
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True).returncode:
        yield False
        return
    try:
        yield True
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


def remount_read_only(path: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True)


@contextlib.contextmanager
def read_only_folder(path: Path, monkeypatch, prepare: Callable[[Path], None] | None = None) -> Iterator[str]:
    """A folder at ``path`` on which creating files and folders fails with EROFS; yields "mount" or "patched".

    ``prepare(path)`` fills it first, while it is still writable.
    """
    path = Path(path)
    with tmpfs(path, "4m") as mounted:
        if mounted:
            if prepare:
                prepare(path)
            remount_read_only(path)
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
