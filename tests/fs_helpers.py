"""Small real file systems for the disk-full and read-only tests: a tmpfs of a given size, optionally read-only.

Mounting needs root and a `mount` that may; where the machine refuses, the
helper yields False and the test skips (a patched test covers the same logic).
"""

from __future__ import annotations

import contextlib
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
