"""Every failed write is a sentence, never a traceback: full and read-only disks, folders where files go.

Each case writes through the path longtake really uses (the export to `output`,
`init -o`, `report --out`, numpy into a cache entry). Disk-full and read-only
cases use a small real tmpfs where the machine allows it (tests/fs_helpers.py)
and a patched write otherwise.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pytest

from orchestrator.cache import StepCache
from orchestrator.errors import WorkdirError, WriteError, write_failure
from orchestrator.steps import export_to_output
from tests.fs_helpers import tmpfs
from tests.orchestrator.conftest import longtake

KEY = "ab" * 32


def _no_traceback(proc) -> None:
    assert "Traceback" not in proc.stderr and "unexpected error" not in proc.stderr, proc.stderr


# -- the output ----------------------------------------------------------------------------------


def test_output_on_a_read_only_disk(tmp_path):
    video = tmp_path / "video.mp4"
    video.write_bytes(b"v" * 1000)
    mnt = tmp_path / "ro"
    with tmpfs(mnt, "1m", read_only=True) as mounted:
        if not mounted:
            pytest.skip("cannot mount a tmpfs here; test_output_patched covers the logic")
        with pytest.raises(WriteError) as info:
            export_to_output(video, mnt / "out.mp4")
    text = str(info.value)
    assert str(mnt / "out.mp4") in text and "read-only file system" in text and "set `output:`" in text
    assert info.value.exit_code == 1


def test_output_on_a_full_disk_leaves_nothing_behind(tmp_path):
    video = tmp_path / "video.mp4"
    video.write_bytes(os.urandom(3 << 20))
    mnt = tmp_path / "small"
    with tmpfs(mnt, "1m") as mounted:
        if not mounted:
            pytest.skip("cannot mount a tmpfs here; test_output_patched covers the logic")
        with pytest.raises(WriteError) as info:
            export_to_output(video, mnt / "out.mp4")
        assert list(mnt.iterdir()) == []  # no half-written video, no temporary file
    text = str(info.value)
    assert "the disk is full" in text and "free of" in text and "set `output:`" in text
    assert info.value.errno == errno.ENOSPC


def test_output_patched(tmp_path, monkeypatch):
    import shutil

    video = tmp_path / "video.mp4"
    video.write_bytes(b"v")

    def full(src, dst, *a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))

    monkeypatch.setattr(shutil, "copyfile", full)
    with pytest.raises(WriteError, match="the disk is full"):
        export_to_output(video, tmp_path / "out" / "video.mp4")


def test_output_that_is_a_folder(tmp_path):
    video = tmp_path / "video.mp4"
    video.write_bytes(b"v")
    folder = tmp_path / "final.mp4"
    folder.mkdir()
    with pytest.raises(WriteError) as info:
        export_to_output(video, folder)
    assert f"{folder} is a folder, not a file" in str(info.value) and "set `output:`" in str(info.value)
    assert list(folder.iterdir()) == [] and list(tmp_path.glob(".final*")) == []


# -- numpy into a cache entry ----------------------------------------------------------------------


def test_numpy_short_write_on_a_full_disk_is_a_workdir_error(tmp_path):
    """numpy reports a short write as OSError('N requested and M written') with no errno."""
    mnt = tmp_path / "small"
    with tmpfs(mnt, "1m") as mounted:
        if not mounted:
            pytest.skip("cannot mount a tmpfs here; the patched test covers the logic")
        cache = StepCache(mnt)
        with pytest.raises(WorkdirError) as info:
            with cache.writing("vad", KEY) as w:
                with open(w.add_output("vad.npy"), "wb") as fh:
                    np.save(fh, np.zeros(1_000_000, np.float32))
        assert "the disk is full" in str(info.value) and "set `workdir:`" in str(info.value)
        assert isinstance(info.value.__cause__, OSError) and info.value.__cause__.errno is None
        assert cache.lookup("vad", KEY) is None


def test_numpy_short_write_patched(tmp_path):
    cache = StepCache(tmp_path)
    with pytest.raises(WorkdirError, match="the disk is full"):
        with cache.writing("vad", KEY):
            raise OSError("4000000 requested and 131056 written")
    # an errno-less OSError that is not a short write stays a bug
    assert write_failure(OSError("something else"), tmp_path) is None


# -- init -o and report --out ------------------------------------------------------------------------


def _inputs(tmp_path: Path) -> tuple[Path, Path]:
    voice, face = tmp_path / "talk.wav", tmp_path / "face.png"
    voice.write_bytes(b"RIFF")
    face.write_bytes(b"PNG")
    return voice, face


def test_init_onto_a_folder(tmp_path):
    voice, face = _inputs(tmp_path)
    folder = tmp_path / "proj.yaml"
    folder.mkdir()
    for extra in ((), ("--force",)):
        proc = longtake("init", str(voice), str(face), "-o", str(folder), *extra)
        _no_traceback(proc)
        assert proc.returncode == 1 and f"{folder} is a folder, not a file" in proc.stderr
    assert list(folder.iterdir()) == []


def test_init_onto_a_read_only_folder(tmp_path):
    voice, face = _inputs(tmp_path)
    mnt = tmp_path / "ro"
    with tmpfs(mnt, "1m", read_only=True) as mounted:
        if not mounted:
            pytest.skip("cannot mount a tmpfs here")
        proc = longtake("init", str(voice), str(face), "-o", str(mnt / "project.yaml"))
    _no_traceback(proc)
    assert proc.returncode == 1
    assert "could not write the project file" in proc.stderr and "read-only" in proc.stderr and "pass -o" in proc.stderr


def test_report_into_a_file_or_a_folder_it_cannot_make(tmp_path):
    from orchestrator.errors import check_writable_folder

    (tmp_path / "taken").write_text("x")
    with pytest.raises(WriteError, match="is a file, not a folder"):
        check_writable_folder(tmp_path / "taken", "write the report", elsewhere="pass --out with another folder")
    with pytest.raises(WriteError, match="a part of .* is a file, not a folder"):
        check_writable_folder(tmp_path / "taken" / "sub", "write the report", elsewhere="pass --out with another folder")


def test_report_into_a_read_only_folder(tmp_path):
    from tests.media_report import Spec, make_video

    video = make_video(tmp_path / "v.mp4", Spec(duration_s=2.0, pauses_s=())).path
    mnt = tmp_path / "ro"
    with tmpfs(mnt, "1m", read_only=True) as mounted:
        if not mounted:
            pytest.skip("cannot mount a tmpfs here")
        for out in (mnt, mnt / "new-folder"):
            proc = longtake("report", str(video), "--out", str(out))
            _no_traceback(proc)
            assert proc.returncode == 1
            assert f"could not write the report into {out}" in proc.stderr and "read-only" in proc.stderr
            assert "pass --out" in proc.stderr


def test_the_cli_last_net_turns_a_stray_disk_error_into_a_sentence(tmp_path, monkeypatch, capsys):
    import orchestrator.cli as cli_mod

    def load(path):
        raise RuntimeError("a library wrapped it") from OSError("8192 requested and 0 written")

    monkeypatch.setattr(cli_mod, "_load", load)
    assert cli_mod.main(["status", str(tmp_path / "p.yaml")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: could not use ") and "the disk is full" in err and "Traceback" not in err
    monkeypatch.setattr(cli_mod, "_load", lambda path: 1 / 0)  # a real bug still shows its traceback
    assert cli_mod.main(["status", str(tmp_path / "p.yaml")]) == 1
    assert "Traceback" in capsys.readouterr().err
