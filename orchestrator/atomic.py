"""Crash-safe file writes: write beside the target under a temporary name, fsync, os.replace.

A reader either sees the old file or the complete new one, never a torn write,
whatever byte the process dies at. A disk problem (full, read-only, the target
is a folder) comes out as a ``WriteError`` sentence (``orchestrator.errors``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from orchestrator.errors import refuse_folder, writing_to


@contextlib.contextmanager
def atomic_path(target: Path, suffix: str = "", *, doing: str | None = None, elsewhere: str = "write it to another folder") -> Iterator[Path]:
    """Yield a temporary path in ``target``'s folder; on success it replaces ``target``.

    On any exception the temporary file is removed and ``target`` is untouched.
    ``suffix`` keeps an extension for writers that choose a format by name (".mp4").
    ``doing`` and ``elsewhere`` word the ``WriteError`` a disk problem becomes
    ("write the video to X", "set `output:` to another folder").
    """
    target = Path(target)
    refuse_folder(target, doing, elsewhere=elsewhere)  # before the caller spends any work on it
    with writing_to(target, doing, elsewhere=elsewhere):
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp" + (suffix or target.suffix), dir=target.parent)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            yield tmp
            os.chmod(tmp, 0o666 & ~_umask())
            _fsync_file(tmp)
            os.replace(tmp, target)
            fsync_dir(target.parent)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise


def atomic_write_bytes(target: Path, data: bytes, **wording) -> None:
    with atomic_path(target, **wording) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(target: Path, text: str, **wording) -> None:
    atomic_write_bytes(target, text.encode("utf-8"), **wording)


def atomic_copy(source: Path, target: Path, **wording) -> None:
    """Copy ``source`` to ``target`` atomically (never a half-written copy)."""
    with atomic_path(target, **wording) as tmp:
        shutil.copyfile(source, tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


def fsync_dir(path: Path) -> None:
    """Make a rename inside ``path`` durable (best effort: some filesystems refuse directory fsync)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
