"""What the user is told: global flags anywhere, notices with the `warning:` prefix and in --json,
paths that are not files, huge portraits, Python warnings, manifest-only warnings, and a throttled
progress line."""

from __future__ import annotations

import io
import json
import logging
import os
import struct
import warnings
import zlib
from pathlib import Path

import click
import numpy as np
import pytest
from PIL import Image

import orchestrator.cli as cli_mod
import orchestrator.events as events_mod
from orchestrator.cache import StepCache
from orchestrator.errors import ConfigError, MediaError, not_a_file
from orchestrator.events import Events, EventsLogHandler
from orchestrator.lock import LOCK_FILENAME, WorkdirLock


@pytest.fixture
def routed(capsys):
    """The 'longtake' logger routed through a --json Events, as the CLI sets it up; yields capsys."""
    lt = logging.getLogger("longtake")
    saved = (lt.handlers[:], lt.level, lt.propagate)
    lt.handlers[:] = [EventsLogHandler(Events(json_out=True, progress=False))]
    lt.setLevel(logging.WARNING)
    lt.propagate = False
    try:
        yield capsys
    finally:
        lt.handlers[:], lt.level, lt.propagate = saved


def _log_events(out: str) -> list[dict]:
    return [e for e in map(json.loads, out.splitlines()) if e["event"] == "log"]


# -- global flags after the subcommand -------------------------------------------------------------


def test_debug_and_verbose_are_accepted_after_the_subcommand(tmp_path, monkeypatch, capsys):
    levels = []

    def load(path):
        levels.append(logging.getLogger("longtake").getEffectiveLevel())
        raise ConfigError("stop here")

    monkeypatch.setattr(cli_mod, "_load", load)
    assert cli_mod.main(["status", str(tmp_path / "p.yaml"), "-v"]) == 2
    assert cli_mod.main(["status", str(tmp_path / "p.yaml"), "--debug"]) == 2
    err = capsys.readouterr().err
    assert "No such option" not in err and "Traceback" in err  # --debug shows the traceback
    assert cli_mod.main(["status", str(tmp_path / "p.yaml")]) == 2
    assert levels == [logging.INFO, logging.WARNING, logging.WARNING]


# -- lock and cache notices -------------------------------------------------------------------------


def test_lock_takeover_is_a_warning_and_a_json_event(tmp_path, routed):
    (tmp_path / LOCK_FILENAME).write_text(json.dumps({"pid": 999999, "host": "h", "started_utc": "2026-01-01T00:00:00Z", "command": "run"}))
    with WorkdirLock(tmp_path):
        pass
    out, err = routed.readouterr()
    assert err.startswith("warning: the previous longtake run") and "taking it over" in err
    [event] = _log_events(out)
    assert event["level"] == "warning" and "taking it over" in event["message"]


def test_unusable_cache_entry_is_a_warning_and_a_json_event(tmp_path, routed):
    cache = StepCache(tmp_path)
    cache.entry_dir("vad", "ab" * 32).mkdir(parents=True)  # no manifest: never finished
    assert cache.lookup("vad", "ab" * 32) is None
    out, err = routed.readouterr()
    assert err.startswith("warning: cache entry vad/") and "is unusable" in err
    assert [e["level"] for e in _log_events(out)] == ["warning"]


# -- paths that exist but are not files -------------------------------------------------------------


def test_not_a_file_names_what_it_is(tmp_path):
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)
    (tmp_path / "dangling").symlink_to(tmp_path / "gone")
    assert not_a_file(tmp_path) == "is a folder, not a file"
    assert not_a_file(fifo) == "is a named pipe (FIFO), not a file"
    assert not_a_file("/dev/null") == "is a device, not a file"
    assert not_a_file(tmp_path / "gone") == "does not exist"
    assert not_a_file(tmp_path / "dangling") == "is a broken symbolic link"
    (tmp_path / "f").write_text("x")
    assert not_a_file(tmp_path / "f") is None


def test_inputs_that_are_not_files_are_not_called_missing(tmp_path):
    from generators.portrait import prepare_portrait
    from orchestrator.init_project import write_starter_project
    from segmenters.ingest import probe_audio

    fifo = tmp_path / "voice.wav"
    os.mkfifo(fifo)
    face = tmp_path / "face.png"
    Image.new("RGB", (8, 8)).save(face)
    with pytest.raises(MediaError, match="named pipe") as info:
        probe_audio(fifo)
    with pytest.raises(MediaError, match=r"is a device, not a file") as info:
        prepare_portrait(Path("/dev/null"), 64, 64)  # once said "save it as PNG"
    with pytest.raises(MediaError, match=r"voiceover .* is a named pipe") as info:
        write_starter_project(fifo, face, tmp_path / "p.yaml")
    with pytest.raises(MediaError, match=r"portrait .* is a folder, not a file") as info:
        write_starter_project(face, tmp_path, tmp_path / "p.yaml")
    assert "not found" not in str(info.value)


def test_graph_input_hash_says_what_the_path_is(tmp_path):
    from orchestrator.config import load_project
    from orchestrator.graph import RunGraph
    from tests.orchestrator.conftest import write_project

    project = load_project(write_project(tmp_path, tmp_path / "voice.wav", tmp_path))  # portrait: a folder
    with pytest.raises(MediaError) as info:
        RunGraph(project)._file_hash(project.portrait, "portrait")
    assert "is a folder, not a file" in str(info.value) and "not found" not in str(info.value)


# -- huge portraits and stray Python warnings --------------------------------------------------------


def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims width×height (no pixel data needed: the size check comes first)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))
    return path


def test_a_900_megapixel_portrait_is_told_to_downscale(tmp_path):
    from generators.portrait import prepare_portrait

    with pytest.raises(MediaError) as info:
        prepare_portrait(_png_header_only(tmp_path / "huge.png", 30000, 30000), 64, 64)
    text = str(info.value)
    assert "too many pixels" in text and "30000×30000 = 900 MP" in text and "limit of 179 MP" in text
    assert "downscale" in text and "save it as PNG" not in text


def test_report_portrait_over_the_pixel_limit_is_a_sentence(tmp_path):
    from quality.stream import load_portrait

    with pytest.raises(MediaError, match=r"too many pixels \(30000×30000 = 900 MP"):
        load_portrait(_png_header_only(tmp_path / "huge.png", 30000, 30000))


def test_decompression_bomb_warning_becomes_a_portrait_warning(tmp_path, monkeypatch):
    from generators.portrait import prepare_portrait

    path = tmp_path / "big.png"
    Image.new("RGB", (120, 100), (200, 160, 140)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)  # 12,000 px: over the warning limit, under the error one
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any raw Python warning fails the test
        prepared = prepare_portrait(path, 64, 64)
    assert any("is very large" in w and "downscale" in w for w in prepared.warnings)


def test_python_warnings_come_out_as_longtake_warnings(tmp_path, monkeypatch, capsys):
    def load(path):
        cli_mod._setup(click.get_current_context())
        np.mean(np.zeros(0))  # numpy: "Mean of empty slice"
        raise ConfigError("stop here")

    monkeypatch.setattr(cli_mod, "_load", load)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        assert cli_mod.main(["status", str(tmp_path / "p.yaml")]) == 2
    err = capsys.readouterr().err
    assert "warning: Mean of empty slice (RuntimeWarning from" in err
    assert "RuntimeWarning: Mean of empty slice" not in err  # the raw form, with its source line


# -- throttled progress ------------------------------------------------------------------------------


class _FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_line_is_throttled_and_ends_on_the_final_state(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(events_mod.time, "monotonic", lambda: clock[0])
    tty = _FakeTTY()
    events = Events(stream=tty)
    assert events.progress_on
    total = 4320  # 3 minutes at 24 fps, reported frame by frame
    for done in range(1, total + 1):
        clock[0] += 180.0 / total
        events.progress("stitching frame", done, total)
    repaints = tty.getvalue().count("\r")
    assert 1000 <= repaints <= 180 * events_mod.MAX_REPAINT_HZ + 2
    assert tty.getvalue().rstrip().endswith(f"stitching frame {total}/{total}")


def test_report_shows_progress_on_a_terminal(tmp_path, monkeypatch):
    from tests.media_report import Spec, make_video

    video = make_video(tmp_path / "v.mp4", Spec(duration_s=2.0, pauses_s=())).path
    tty = _FakeTTY()
    monkeypatch.setattr("sys.stderr", tty)
    assert cli_mod.main(["report", str(video), "--out", str(tmp_path / "rep")]) == 0
    painted = tty.getvalue()
    assert "report: frame" in painted and "report: frame 48/48" in painted
