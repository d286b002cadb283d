"""The step cache: keys, round trips, broken entries, SIGKILL at any byte, full and read-only disks."""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from fractions import Fraction
from pathlib import Path

import pytest

import orchestrator.cache as cache_mod
from orchestrator.cache import (
    CACHE_DIRNAME,
    CacheEntry,
    CacheError,
    StepCache,
    canonical_json,
    file_sha256,
    step_key,
)
from orchestrator.errors import LongtakeError, WorkdirError
from tests.fs_helpers import tmpfs

REPO = Path(__file__).resolve().parents[2]
KEY = "ab" * 32


def _run_child(script: str, *args: str, timeout: float = 20) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _write_entry(cache: StepCache, step: str, key: str, files: dict[str, bytes], **kw) -> CacheEntry:
    with cache.writing(step, key, **kw) as w:
        for name, data in files.items():
            w.add_output(name).write_bytes(data)
    entry = cache.lookup(step, key)
    assert entry is not None
    return entry


def _work_dirs(workdir: Path) -> list[Path]:
    root = workdir / CACHE_DIRNAME
    if not root.exists():
        return []
    return sorted(p for step in root.iterdir() for p in step.iterdir() if p.name.startswith("."))


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


_tmpfs = tmpfs


# ----------------------------------------------------------------------------- keys


def test_canonical_json_exact_form():
    obj = {
        "b": 1,
        "a": [1.5, (2, 3)],
        "p": Path("/x/y.wav"),
        "f": Fraction(24000, 1001),
        "u": "é",
        "n": None,
        "t": True,
        "small": 1e-7,
        "tenth": 0.1,
    }
    assert canonical_json(obj) == (
        '{"a":[1.5,[2,3]],"b":1,"f":"24000/1001","n":null,"p":"/x/y.wav",'
        '"small":1e-07,"t":true,"tenth":0.1,"u":"é"}'
    )
    assert canonical_json({"x": {"z": 1, "y": 2}}) == canonical_json({"x": {"y": 2, "z": 1}})


@pytest.mark.parametrize(
    "bad",
    [{1, 2}, b"bytes", object(), {"k": {"nested": {3}}}, {1: "int key"}, [complex(1, 2)]],
    ids=["set", "bytes", "object", "nested-set", "int-key", "complex"],
)
def test_canonical_json_rejects_unknown_types(bad):
    with pytest.raises(TypeError):
        canonical_json(bad)


def test_canonical_json_rejects_nan():
    with pytest.raises(ValueError):
        canonical_json({"x": float("nan")})


BASE = dict(
    params={"prompt": "a woman talks", "seed": 7, "fps": Fraction(24), "guidance": 3.0},
    inputs={"audio": "1" * 64, "previous_segment": "2" * 64},
    code_version="segment-3",
    model_identity="Lightricks/LTX-2.3@abc",
)


def test_step_key_is_stable_across_processes_and_dict_order():
    key = step_key("segment", **BASE)
    assert len(key) == 64 and int(key, 16) >= 0
    reordered = dict(
        params=dict(reversed(list(BASE["params"].items()))),
        inputs=dict(reversed(list(BASE["inputs"].items()))),
        code_version=BASE["code_version"],
        model_identity=BASE["model_identity"],
    )
    assert step_key("segment", **reordered) == key
    # Another interpreter with another hash seed derives the same key.
    child = _run_child(
        """
        from fractions import Fraction
        from orchestrator.cache import step_key
        print(step_key("segment", params={"seed": 7, "guidance": 3.0, "prompt": "a woman talks", "fps": Fraction(24)},
                       inputs={"previous_segment": "2" * 64, "audio": "1" * 64},
                       code_version="segment-3", model_identity="Lightricks/LTX-2.3@abc"))
        """
    )
    assert child.returncode == 0, child.stderr
    assert child.stdout.strip() == key
    # Pinned: changing how keys are derived silently invalidates every user's cache.
    assert key == step_key("segment", **BASE) == _GOLDEN_KEY


_GOLDEN_KEY = hashlib.sha256(
    (
        '{"code_version":"segment-3","inputs":{"audio":"' + "1" * 64 + '","previous_segment":"' + "2" * 64 + '"},'
        '"key_format":1,"model_identity":"Lightricks/LTX-2.3@abc",'
        '"params":{"fps":"24/1","guidance":3.0,"prompt":"a woman talks","seed":7},"step":"segment"}'
    ).encode()
).hexdigest()


@pytest.mark.parametrize(
    "change",
    [
        {"params": {**BASE["params"], "prompt": "a man talks"}},
        {"params": {**BASE["params"], "seed": 8}},
        {"params": {**BASE["params"], "guidance": 3.0000001}},
        {"params": {**BASE["params"], "fps": Fraction(25)}},
        {"params": {**BASE["params"], "extra": None}},
        {"inputs": {**BASE["inputs"], "previous_segment": "3" * 64}},
        {"inputs": {"audio": "1" * 64}},
        {"code_version": "segment-4"},
        {"model_identity": "Lightricks/LTX-2.3@def"},
        {"model_identity": None},
    ],
    ids=["prompt", "seed", "float", "fps", "new-param", "input-hash", "input-removed", "code", "model", "no-model"],
)
def test_step_key_changes_with_everything(change):
    assert step_key("segment", **{**BASE, **change}) != step_key("segment", **BASE)


def test_step_key_depends_on_step_name():
    assert step_key("segment", **BASE) != step_key("stitch", **BASE)


def test_file_sha256_streams(tmp_path):
    data = os.urandom(300_001)
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    assert file_sha256(path, chunk_bytes=4096) == hashlib.sha256(data).hexdigest() == file_sha256(path)


# ------------------------------------------------------------------------ round trip


def test_write_then_lookup_round_trip(tmp_path):
    cache = StepCache(tmp_path)
    assert cache.lookup("segment", KEY) is None
    with cache.writing(
        "segment", KEY, params={"prompt": "hi", "fps": Fraction(24)}, inputs={"audio": "f" * 64},
        code_version="seg-1", model_identity="ltx@1",
    ) as w:
        assert w.dir.parent == tmp_path / "cache" / "segment"
        assert w.dir.name.startswith(f".tmp-{KEY}@{cache_mod.host_name()}+") and f"+{os.getpid()}+" in w.dir.name
        w.add_output("frames.bin").write_bytes(b"\x01" * 1000)
        w.add_output("tail/last.png").write_bytes(b"png")
        (w.dir / "scratch.txt").write_text("not an output")
        w.meta["warnings"] = ["forced cut"]
        w.meta["timings_s"] = {"denoise": 1.5}
        time.sleep(0.05)
        assert cache.lookup("segment", KEY) is None  # nothing visible before commit

    entry = cache.lookup("segment", KEY, verify=True)
    assert entry is not None
    assert entry.path == cache.entry_dir("segment", KEY) == tmp_path / "cache" / "segment" / KEY
    assert entry.output("frames.bin").read_bytes() == b"\x01" * 1000
    assert entry.output("tail/last.png").read_bytes() == b"png"
    assert entry.output_hash("frames.bin") == file_sha256(entry.output("frames.bin"))
    assert entry.outputs == {
        "frames.bin": hashlib.sha256(b"\x01" * 1000).hexdigest(),
        "tail/last.png": hashlib.sha256(b"png").hexdigest(),
    }
    assert entry.meta == {"warnings": ["forced cut"], "timings_s": {"denoise": 1.5}}
    assert entry.duration_s >= 0.05
    m = json.loads((entry.path / "manifest.json").read_text())
    assert m == entry.manifest
    assert m["format"] == 1 and m["step"] == "segment" and m["key"] == KEY
    assert m["params"] == {"prompt": "hi", "fps": "24/1"} and m["inputs"] == {"audio": "f" * 64}
    assert m["code_version"] == "seg-1" and m["model_identity"] == "ltx@1"
    assert m["outputs"]["frames.bin"] == {"sha256": entry.outputs["frames.bin"], "bytes": 1000}
    assert m["created_utc"].endswith("Z") and m["longtake_version"]
    assert _work_dirs(tmp_path) == []
    assert [(e.step, e.key) for e in cache.entries()] == [("segment", KEY)]
    assert set(cache.entries()) == {entry}


def test_output_of_unknown_name_is_a_clear_key_error(tmp_path):
    entry = _write_entry(StepCache(tmp_path), "vad", KEY, {"probs.npy": b"123"})
    with pytest.raises(KeyError) as info:
        entry.output("nope.npy")
    assert "nope.npy" in str(info.value) and "probs.npy" in str(info.value)
    with pytest.raises(KeyError):
        entry.output_hash("nope.npy")


def test_rewriting_an_entry_replaces_it(tmp_path):
    cache = StepCache(tmp_path)
    _write_entry(cache, "segment", KEY, {"a.bin": b"old", "gone.bin": b"x"})
    entry = _write_entry(cache, "segment", KEY, {"a.bin": b"new"})
    assert entry.output("a.bin").read_bytes() == b"new"
    assert not (entry.path / "gone.bin").exists()
    assert _work_dirs(tmp_path) == []


@pytest.mark.parametrize("name", ["", "../x", "/abs", "a/../b", ".hidden", "manifest.json", "a\\b"])
def test_bad_output_names_are_refused(tmp_path, name):
    with pytest.raises(CacheError):
        with StepCache(tmp_path).writing("s", KEY) as w:
            w.add_output(name)
    assert _work_dirs(tmp_path) == []


def test_bad_step_or_key_names_are_refused(tmp_path):
    cache = StepCache(tmp_path)
    for step, key in [("../x", KEY), ("s", "a/b"), ("s", ".tmp-x"), ("", KEY)]:
        with pytest.raises(CacheError):
            cache.entry_dir(step, key)


def test_declared_output_never_written_is_an_error(tmp_path):
    cache = StepCache(tmp_path)
    with pytest.raises(CacheError, match="did not write"):
        with cache.writing("s", KEY) as w:
            w.add_output("never.bin")
    assert cache.lookup("s", KEY) is None and _work_dirs(tmp_path) == []


# -------------------------------------------------------------------- broken entries


def test_entry_without_manifest_is_ignored_and_cleared(tmp_path, caplog):
    cache = StepCache(tmp_path)
    d = cache.entry_dir("segment", KEY)
    d.mkdir(parents=True)
    (d / "frames.bin").write_bytes(b"half")
    with caplog.at_level(logging.WARNING, logger="longtake.orchestrator.cache"):
        assert cache.lookup("segment", KEY) is None
    assert "never finished" in caplog.text
    assert not d.exists() and _work_dirs(tmp_path) == []
    assert cache.entries() == []
    _write_entry(cache, "segment", KEY, {"frames.bin": b"whole"})  # and it can be redone


@pytest.mark.parametrize(
    "manifest_text",
    [
        "{not json",
        "",
        "[1, 2]",
        json.dumps({"format": 1, "step": "segment", "key": "cd" * 32, "outputs": {}}),
        json.dumps({"format": 1, "step": "segment", "key": KEY, "outputs": {"a": {"sha256": "zz", "bytes": 1}}}),
        json.dumps({"format": 1, "step": "segment", "key": KEY, "outputs": {"../a": {"sha256": "0" * 64, "bytes": 1}}}),
    ],
    ids=["truncated-json", "empty", "not-object", "other-key", "bad-hash", "escaping-name"],
)
def test_corrupt_manifest_is_a_warning_and_a_miss(tmp_path, caplog, manifest_text):
    cache = StepCache(tmp_path)
    entry = _write_entry(cache, "segment", KEY, {"a": b"data"})
    (entry.path / "manifest.json").write_text(manifest_text)
    with caplog.at_level(logging.WARNING, logger="longtake.orchestrator.cache"):
        assert cache.lookup("segment", KEY) is None
    assert "unusable" in caplog.text and "redone" in caplog.text
    assert not entry.path.exists()


def test_manifest_from_a_newer_format_is_a_miss_but_left_alone(tmp_path, caplog):
    cache = StepCache(tmp_path)
    entry = _write_entry(cache, "segment", KEY, {"a": b"data"})
    m = dict(entry.manifest, format=2)
    (entry.path / "manifest.json").write_text(json.dumps(m))
    with caplog.at_level(logging.WARNING, logger="longtake.orchestrator.cache"):
        assert cache.lookup("segment", KEY) is None
    assert "format 2" in caplog.text and entry.path.exists()


def test_missing_or_truncated_output_is_a_miss_even_without_verify(tmp_path, caplog):
    cache = StepCache(tmp_path)
    entry = _write_entry(cache, "segment", KEY, {"a.bin": b"x" * 5000, "b.bin": b"y"})
    with open(entry.output("a.bin"), "r+b") as fh:
        fh.truncate(4096)
    with caplog.at_level(logging.WARNING, logger="longtake.orchestrator.cache"):
        assert cache.lookup("segment", KEY) is None
    assert "4096 bytes" in caplog.text
    entry = _write_entry(cache, "segment", KEY, {"a.bin": b"x" * 5000, "b.bin": b"y"})
    entry.output("b.bin").unlink()
    assert cache.lookup("segment", KEY) is None


def test_verify_detects_same_size_corruption(tmp_path, caplog):
    cache = StepCache(tmp_path)
    entry = _write_entry(cache, "segment", KEY, {"a.bin": b"x" * 5000})
    with open(entry.output("a.bin"), "r+b") as fh:
        fh.seek(2500)
        fh.write(b"Z")
    assert cache.lookup("segment", KEY) is not None  # cheap lookup trusts size
    with caplog.at_level(logging.WARNING, logger="longtake.orchestrator.cache"):
        assert cache.lookup("segment", KEY, verify=True) is None
    assert "sha256" in caplog.text
    assert cache.lookup("segment", KEY) is None  # moved aside


# ----------------------------------------------------------------- exceptions, kills


@pytest.mark.parametrize("exc_type", [RuntimeError, KeyboardInterrupt])
def test_exception_inside_writing_leaves_nothing(tmp_path, exc_type):
    cache = StepCache(tmp_path)
    with pytest.raises(exc_type):
        with cache.writing("segment", KEY) as w:
            w.add_output("a.bin").write_bytes(b"partial")
            raise exc_type("boom")
    assert cache.lookup("segment", KEY) is None
    assert not cache.entry_dir("segment", KEY).exists()
    assert _work_dirs(tmp_path) == []


def test_exception_while_rewriting_keeps_the_old_entry(tmp_path):
    cache = StepCache(tmp_path)
    _write_entry(cache, "segment", KEY, {"a.bin": b"old"})
    with pytest.raises(RuntimeError):
        with cache.writing("segment", KEY) as w:
            w.add_output("a.bin").write_bytes(b"new")
            raise RuntimeError("generator crashed")
    assert cache.lookup("segment", KEY, verify=True).output("a.bin").read_bytes() == b"old"


_KILL_CHILD = """
import os, signal, sys
from pathlib import Path
import orchestrator.cache as c
import orchestrator.atomic as atomic

workdir, key, point = Path(sys.argv[1]), sys.argv[2], sys.argv[3]

def die():
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)

if point == "before_manifest":
    c.atomic_write_text = lambda target, text: die()
elif point == "mid_manifest":
    def half(target, text):
        with atomic.atomic_path(target) as tmp:
            with open(tmp, "w") as fh:
                fh.write(text[: len(text) // 2])
                fh.flush()
                os.fsync(fh.fileno())
            die()
    c.atomic_write_text = half
elif point in ("before_rename", "after_moving_old_aside"):
    real_replace = os.replace
    def replace(src, dst):
        if Path(dst).name == key and point == "before_rename" and Path(src).name.startswith(".tmp-"):
            die()
        real_replace(src, dst)
        if Path(src).name == key and point == "after_moving_old_aside":
            die()
    c.os.replace = replace

cache = c.StepCache(workdir)
with cache.writing("segment", key, params={"i": 1}) as w:
    if point == "before_outputs":
        die()
    with open(w.add_output("frames.bin"), "wb") as fh:
        fh.write(b"a" * 200_000)
        if point == "mid_output":
            fh.flush()
            die()
        fh.write(b"b" * 200_000)
print("committed")
"""


@pytest.mark.parametrize(
    "point",
    ["before_outputs", "mid_output", "before_manifest", "mid_manifest", "before_rename", "after_moving_old_aside"],
)
def test_sigkill_inside_writing_leaves_no_finished_entry(tmp_path, point):
    cache = StepCache(tmp_path)
    if point == "after_moving_old_aside":
        old = _write_entry(cache, "segment", KEY, {"frames.bin": b"old"})
        (old.path / "manifest.json").unlink()  # a broken leftover that the commit must replace
    child = _run_child(_KILL_CHILD, str(tmp_path), KEY, point)
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert "committed" not in child.stdout
    assert cache.lookup("segment", KEY) is None
    assert cache.lookup("segment", KEY, verify=True) is None
    assert cache.entries() == []
    leftovers = _work_dirs(tmp_path)
    assert leftovers, "the dead writer's temporary folder should still be there"
    assert cache.sweep_temp() == len(leftovers)
    assert _work_dirs(tmp_path) == []
    _write_entry(cache, "segment", KEY, {"frames.bin": b"redone"})  # a rerun redoes it


def test_sigkill_at_random_moments_never_leaves_a_false_entry(tmp_path):
    """Kill a writer at random times, several trials: every visible entry is complete and correct."""
    script = """
    import os, sys, hashlib
    from pathlib import Path
    from orchestrator.cache import StepCache
    cache = StepCache(Path(sys.argv[1]))
    for i in range(int(sys.argv[2]), 10_000):
        key = hashlib.sha256(str(i).encode()).hexdigest()
        with cache.writing("segment", key, params={"i": i}) as w:
            with open(w.add_output("frames.bin"), "wb") as fh:
                for j in range(1 + i % 7):
                    fh.write(bytes([i % 251]) * 65536)
            w.add_output("tail.txt").write_text(f"segment {i}")
    """
    rng = random.Random(1234)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    cache = StepCache(tmp_path)
    finished_total = 0
    for trial in range(5):
        # Overlapping key ranges: some commits are new entries, some replace finished ones.
        start = str(trial * 60)
        proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script), str(tmp_path), start], cwd=REPO, env=env)
        time.sleep(rng.uniform(0.15, 0.6))
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
        for entry in cache.entries():
            i = entry.manifest["params"]["i"]
            assert cache.lookup("segment", entry.key, verify=True) is not None
            assert entry.output("frames.bin").read_bytes() == bytes([i % 251]) * (65536 * (1 + i % 7))
            assert entry.output("tail.txt").read_text() == f"segment {i}"
        # A bare <key>/ folder may exist only if it is a finished entry.
        keys_on_disk = {p.name for p in (tmp_path / "cache" / "segment").iterdir() if not p.name.startswith(".")}
        assert keys_on_disk == {e.key for e in cache.entries()}
        cache.sweep_temp()
        assert _work_dirs(tmp_path) == []
        finished_total = len(keys_on_disk)
    assert finished_total > 0


# ---------------------------------------------------------------------- housekeeping


def test_sweep_temp_only_removes_dead_processes_leftovers(tmp_path):
    cache = StepCache(tmp_path)
    step_dir = tmp_path / "cache" / "segment"
    step_dir.mkdir(parents=True)
    dead = step_dir / f".tmp-{KEY}-{_dead_pid()}-0a0b0c0d"
    dead_trash = step_dir / f".trash-{KEY}-{_dead_pid()}-0a0b0c0e"
    mine_stale = step_dir / f".tmp-{KEY}-{os.getpid()}-deadbeef"  # an earlier process that had our pid
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        alive = step_dir / f".tmp-{KEY}-{sleeper.pid}-0a0b0c0f"
        for d in (dead, dead_trash, mine_stale, alive):
            d.mkdir()
            (d / "f").write_bytes(b"x")
        with cache.writing("segment", KEY) as w:
            w.add_output("a").write_bytes(b"1")
            assert cache.sweep_temp() == 3
            assert w.dir.exists() and alive.exists()
        assert not dead.exists() and not dead_trash.exists() and not mine_stale.exists()
        assert cache.lookup("segment", KEY) is not None
    finally:
        sleeper.kill()
        sleeper.wait()


def _foreign_dir(step_dir: Path, host: str, pid: int, rand: str = "0a0b0c0d") -> Path:
    d = step_dir / f".tmp-{KEY}@{host}+feedf00d+{pid}+12345+{rand}"
    d.mkdir()
    (d / "clip.mp4").write_bytes(b"partial")
    return d


def test_sweep_leaves_another_hosts_work_until_it_is_a_day_stale(tmp_path, monkeypatch):
    """On shared storage a pid names a process on the writer's host, not here: a dead-here pid proves nothing."""
    monkeypatch.setenv("LONGTAKE_HOST", "alpha")
    cache = StepCache(tmp_path)
    step_dir = tmp_path / "cache" / "segment"
    step_dir.mkdir(parents=True)
    dead_here = _dead_pid()
    fresh = _foreign_dir(step_dir, "beta", dead_here, "00000001")
    stale = _foreign_dir(step_dir, "beta", dead_here, "00000002")
    day_old = time.time() - cache_mod.FOREIGN_STALE_S - 60
    for path in (stale, stale / "clip.mp4"):
        os.utime(path, (day_old, day_old))
    local_dead = step_dir / f".tmp-{KEY}@alpha+{cache_mod._me().namespace}+{dead_here}+1+00000003"
    local_dead.mkdir()
    # A live pid whose start time differs is a reused pid: its writer is gone.
    reused = step_dir / f".tmp-{KEY}@alpha+{cache_mod._me().namespace}+{os.getppid()}+1+00000004"
    reused.mkdir()
    assert cache.sweep_temp() == 3
    assert fresh.exists() and not stale.exists() and not local_dead.exists() and not reused.exists()
    # Only a file's change counts as life: a day-old folder whose clip still grows is kept.
    os.utime(fresh, (day_old, day_old))
    assert cache.sweep_temp() == 0 and fresh.exists()


_BETA_WRITER = """
import os, sys, time
from pathlib import Path
from orchestrator.cache import StepCache
workdir, key, ready, go = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4])
cache = StepCache(workdir)
with cache.writing("segment", key) as w:
    w.add_output("clip.mp4").write_bytes(b"beta-first-half")
    swept = cache.sweep_temp()  # alpha's entry is being written right now
    ready.write_text(str(swept))
    deadline = time.monotonic() + 30
    while not go.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    with open(w.dir / "clip.mp4", "ab") as fh:
        fh.write(b"-second-half")
print(os.getpid(), flush=True)
"""


def test_two_hosts_share_one_cache_without_deleting_each_others_work(tmp_path, monkeypatch):
    """Host beta runs in its own pid namespace (as on another machine): alpha's pid means nothing there."""
    if shutil.which("unshare") is None or subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "true"],
                                                           capture_output=True).returncode != 0:
        pytest.skip("needs `unshare --pid` (root or CAP_SYS_ADMIN) to give the second host its own pids")
    monkeypatch.setenv("LONGTAKE_HOST", "alpha")
    cache = StepCache(tmp_path)
    key_a, key_b = "aa" * 32, "bb" * 32
    ready, go = tmp_path / "beta-ready", tmp_path / "go"
    with cache.writing("segment", key_a) as w:
        w.add_output("clip.mp4").write_bytes(b"alpha-first-half")
        beta = subprocess.Popen(
            ["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-c", textwrap.dedent(_BETA_WRITER),
             str(tmp_path), key_b, str(ready), str(go)],
            cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO), LONGTAKE_HOST="beta"),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        try:
            deadline = time.monotonic() + 30
            while not ready.exists() and beta.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert ready.exists(), beta.stderr.read() if beta.poll() is not None else "beta never got ready"
            assert ready.read_text() == "0"  # beta's sweep left alpha's folder alone
            assert cache.sweep_temp() == 0  # and alpha's sweep leaves beta's
            assert len(_work_dirs(tmp_path)) == 2
            with open(w.dir / "clip.mp4", "ab") as fh:
                fh.write(b"-second-half")
            go.write_text("go")
            out, err = beta.communicate(timeout=30)
        finally:
            if beta.poll() is None:
                beta.kill()
                beta.wait()
    assert beta.returncode == 0, err
    assert int(out.split()[0]) != beta.pid  # it really had pids of its own
    for key, who in ((key_a, b"alpha"), (key_b, b"beta")):
        entry = cache.lookup("segment", key, verify=True)
        assert entry is not None
        assert entry.output("clip.mp4").read_bytes() == who + b"-first-half-second-half"
    assert _work_dirs(tmp_path) == []


def test_remove_except(tmp_path):
    cache = StepCache(tmp_path)
    k1, k2, k3 = "11" * 32, "22" * 32, "33" * 32
    _write_entry(cache, "segment", k1, {"a": b"x" * 100})
    _write_entry(cache, "segment", k2, {"a": b"y" * 200})
    _write_entry(cache, "stitch", k3, {"out.mp4": b"z" * 300})
    broken = cache.entry_dir("vad", k1)
    broken.mkdir(parents=True)
    (broken / "probs.npy").write_bytes(b"q" * 50)
    stale = tmp_path / "cache" / "segment" / f".tmp-{k3}-{_dead_pid()}-12345678"
    stale.mkdir()
    (stale / "a").write_bytes(b"w" * 70)

    manifest_bytes = sum((cache.entry_dir(s, k) / "manifest.json").stat().st_size for s, k in [("segment", k2), ("stitch", k3)])
    removed, freed = cache.remove_except({("segment", k1)})
    assert removed == 3
    assert freed == 200 + 300 + 50 + 70 + manifest_bytes
    assert [(e.step, e.key) for e in cache.entries()] == [("segment", k1)]
    assert cache.lookup("segment", k1, verify=True) is not None
    assert not (tmp_path / "cache" / "stitch").exists()  # emptied step folders go too
    assert _work_dirs(tmp_path) == []
    assert cache.remove_except({("segment", k1)}) == (0, 0)


def test_empty_or_missing_cache_is_fine(tmp_path):
    cache = StepCache(tmp_path / "not-yet")
    assert cache.entries() == [] and cache.sweep_temp() == 0 and cache.remove_except(set()) == (0, 0)
    assert cache.lookup("segment", KEY, verify=True) is None


# ---------------------------------------------------------------- full and read-only


def _assert_disk_full_message(err: WorkdirError, folder: Path):
    text = str(err)
    assert str(folder) in text
    assert "disk is full" in text and "free of" in text
    assert "Free space or set `workdir:`" in text
    assert err.errno == errno.ENOSPC and err.exit_code == 1 and isinstance(err, LongtakeError)


def test_disk_full_on_a_real_tiny_tmpfs(tmp_path):
    mnt = tmp_path / "small"
    with _tmpfs(mnt, "1m") as mounted:
        if not mounted:
            pytest.skip("cannot mount a tmpfs here (not root?); the patched tests below cover the logic")
        cache = StepCache(mnt)
        keep = _write_entry(cache, "vad", KEY, {"probs.npy": b"p" * 10_000})

        # The step's own write fails.
        with pytest.raises(WorkdirError) as info:
            with cache.writing("segment", KEY) as w:
                w.add_output("frames.bin").write_bytes(b"f" * 2_000_000)
        _assert_disk_full_message(info.value, mnt / "cache" / "segment")
        assert info.value.free_bytes is not None and info.value.free_bytes < 1 << 20
        assert cache.lookup("segment", KEY) is None and _work_dirs(mnt) == []

        # The outputs fit to the last page; the manifest written last does not.
        with pytest.raises(WorkdirError) as info:
            with cache.writing("segment", KEY) as w:
                with open(w.add_output("frames.bin"), "wb", buffering=0) as fh:
                    try:
                        while True:
                            fh.write(b"f" * 4096)
                    except OSError as exc:
                        assert exc.errno == errno.ENOSPC
        _assert_disk_full_message(info.value, mnt / "cache" / "segment")
        assert cache.lookup("segment", KEY) is None and _work_dirs(mnt) == []

        assert cache.lookup("vad", KEY, verify=True) == keep  # finished work untouched
        _write_entry(cache, "segment", KEY, {"frames.bin": b"fits now"})


def test_disk_full_patched_while_writing_manifest(tmp_path, monkeypatch):
    cache = StepCache(tmp_path)
    keep = _write_entry(cache, "vad", KEY, {"probs.npy": b"p" * 100})

    def full(target, text):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(cache_mod, "atomic_write_text", full)
    with pytest.raises(WorkdirError) as info:
        with cache.writing("segment", KEY) as w:
            w.add_output("a").write_bytes(b"1")
    _assert_disk_full_message(info.value, tmp_path / "cache" / "segment")
    assert isinstance(info.value.__cause__, OSError)
    assert cache.lookup("segment", KEY) is None and _work_dirs(tmp_path) == []
    assert cache.lookup("vad", KEY, verify=True) == keep


def test_disk_full_patched_inside_the_step_and_quota(tmp_path):
    cache = StepCache(tmp_path)
    with pytest.raises(WorkdirError) as info:
        with cache.writing("segment", KEY):
            try:
                raise OSError(errno.ENOSPC, "No space left on device")
            except OSError as exc:
                raise RuntimeError("encoder failed") from exc  # wrapped by a media library
    _assert_disk_full_message(info.value, tmp_path / "cache" / "segment")
    with pytest.raises(WorkdirError, match="quota"):
        with cache.writing("segment", KEY):
            raise OSError(errno.EDQUOT, "Disk quota exceeded")
    assert _work_dirs(tmp_path) == []


def test_disk_full_elsewhere_is_not_reworded(tmp_path):
    with pytest.raises(OSError) as info:
        with StepCache(tmp_path / "wd").writing("segment", KEY):
            raise OSError(errno.ENOSPC, "No space left on device", "/some/other/disk/file")
    assert not isinstance(info.value, WorkdirError)


def _assert_read_only_message(err: WorkdirError, workdir: Path):
    text = str(err)
    assert str(workdir) in text and ("read-only" in text or "permission denied" in text)
    assert "set `workdir:`" in text and err.exit_code == 1


def test_read_only_workdir_on_a_real_read_only_mount(tmp_path):
    mnt = tmp_path / "ro"
    with _tmpfs(mnt, "4m") as mounted:
        if not mounted:
            pytest.skip("cannot mount a tmpfs here (not root?); the patched test covers the logic")
        cache = StepCache(mnt)
        keep = _write_entry(cache, "vad", KEY, {"probs.npy": b"p" * 100})
        (cache.entry_dir("vad", "cd" * 32)).mkdir()  # a broken entry that cannot be cleared
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        with pytest.raises(WorkdirError) as info:
            with cache.writing("vad", "ef" * 32):
                pass
        _assert_read_only_message(info.value, mnt)
        with pytest.raises(WorkdirError):
            with cache.writing("new_step", KEY):
                pass
        assert cache.lookup("vad", KEY, verify=True) == keep  # finished work still readable
        assert cache.lookup("vad", "cd" * 32) is None  # broken one: a miss, no crash
        assert cache.sweep_temp() == 0


def test_read_only_workdir_patched(tmp_path, monkeypatch):
    cache = StepCache(tmp_path)

    def ro_mkdir(path, mode=0o777, *a, **k):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))

    monkeypatch.setattr(os, "mkdir", ro_mkdir)
    with pytest.raises(WorkdirError) as info:
        with cache.writing("vad", KEY):
            pass
    _assert_read_only_message(info.value, tmp_path)
    assert "read-only" in str(info.value)
