"""The work-folder lock: contention across processes, takeover after SIGKILL, release on errors."""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from orchestrator.errors import LockedError, WorkdirError
from orchestrator.lock import LOCK_FILENAME, WorkdirLock, _locked_message
from tests.fs_helpers import tmpfs

REPO = Path(__file__).resolve().parents[2]

# Holds the lock, says so, then waits for a line on stdin (or to be killed).
_HOLDER = """
import sys
from pathlib import Path
from orchestrator.lock import WorkdirLock
with WorkdirLock(Path(sys.argv[1]), command=sys.argv[2]):
    print("held", flush=True)
    sys.stdin.readline()
print("released", flush=True)
"""

# Tries once; prints the outcome.
_TRY = """
import sys
from pathlib import Path
from orchestrator.errors import LockedError
from orchestrator.lock import WorkdirLock
try:
    with WorkdirLock(Path(sys.argv[1])):
        print("acquired")
except LockedError as exc:
    print("locked:", exc)
"""


def _env() -> dict:
    return dict(os.environ, PYTHONPATH=str(REPO))


@contextlib.contextmanager
def _holder(workdir: Path, command: str = "run"):
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(_HOLDER), str(workdir), command],
        cwd=REPO,
        env=_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "held"
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def _try_in_child(workdir: Path) -> str:
    r = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_TRY), str(workdir)], cwd=REPO, env=_env(), capture_output=True, text=True, timeout=20
    )
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_acquire_records_the_holder_and_release_clears_it(tmp_path):
    workdir = tmp_path / "new" / "workdir"
    with WorkdirLock(workdir, command="clean") as lock:
        assert lock.held and lock.previous is None
        body = json.loads((workdir / LOCK_FILENAME).read_text())
        assert body["pid"] == os.getpid() and body["command"] == "clean" and body["host"]
        started = dt.datetime.strptime(body["started_utc"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)
        assert abs((dt.datetime.now(dt.timezone.utc) - started).total_seconds()) < 60
        assert _try_in_child(workdir).startswith("locked:")
    assert not lock.held
    assert (workdir / LOCK_FILENAME).read_text() == ""  # file stays (never unlink a flock file), body cleared
    assert _try_in_child(workdir) == "acquired"


def test_second_run_in_another_process_is_refused_with_the_holders_pid(tmp_path):
    with _holder(tmp_path, "run") as proc:
        with pytest.raises(LockedError) as info:
            with WorkdirLock(tmp_path):
                pass
        text = str(info.value)
        assert f"pid {proc.pid}" in text and f"kill {proc.pid}" in text
        assert "`longtake run`" in text and str(tmp_path) in text and "UTC" in text
        assert text.startswith("another longtake run (pid ")
        assert info.value.exit_code == 1
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "released"
    with WorkdirLock(tmp_path) as lock:  # a clean release is not reported as a crash
        assert lock.previous is None


def test_same_process_cannot_hold_it_twice(tmp_path):
    with WorkdirLock(tmp_path):
        with pytest.raises(LockedError, match=f"pid {os.getpid()}"):
            WorkdirLock(tmp_path).acquire()


def test_stale_lock_of_a_sigkilled_run_is_taken_over(tmp_path, caplog):
    with _holder(tmp_path, "run") as proc:
        dead_pid = proc.pid
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
    # The dead run's body is still in the file; the kernel has dropped its flock.
    assert json.loads((tmp_path / LOCK_FILENAME).read_text())["pid"] == dead_pid
    with caplog.at_level(logging.WARNING, logger="longtake.orchestrator.lock"):
        with WorkdirLock(tmp_path) as lock:
            assert lock.previous["pid"] == dead_pid
            assert json.loads((tmp_path / LOCK_FILENAME).read_text())["pid"] == os.getpid()
            assert _try_in_child(tmp_path).startswith(f"locked: another longtake run (pid {os.getpid()}")
    assert f"pid {dead_pid}" in caplog.text and "ended without releasing" in caplog.text


def test_stale_lock_file_with_garbage_is_taken_over(tmp_path):
    (tmp_path / LOCK_FILENAME).write_bytes(b"\x00\xffnot json")
    with WorkdirLock(tmp_path) as lock:
        assert lock.previous is None
        assert json.loads((tmp_path / LOCK_FILENAME).read_text())["pid"] == os.getpid()


def test_released_after_an_exception(tmp_path):
    lock = WorkdirLock(tmp_path)
    with pytest.raises(RuntimeError):
        with lock:
            raise RuntimeError("step failed")
    assert not lock.held
    assert _try_in_child(tmp_path) == "acquired"
    with pytest.raises(KeyboardInterrupt):
        with WorkdirLock(tmp_path):
            raise KeyboardInterrupt
    with WorkdirLock(tmp_path) as again:
        assert again.previous is None


def test_message_without_a_readable_body_still_helps(tmp_path):
    text = _locked_message({}, tmp_path, tmp_path / LOCK_FILENAME)
    assert str(tmp_path) in text and "wait for it or stop it" in text
    today = dt.datetime.now(dt.timezone.utc).replace(hour=22, minute=41, second=5)
    body = {"pid": 1234, "host": "elsewhere", "started_utc": today.strftime("%Y-%m-%dT%H:%M:%SZ"), "command": "run"}
    assert _locked_message(body, Path("/w"), Path("/w/longtake.lock")) == (
        "another longtake run (pid 1234 on host elsewhere, started 22:41 UTC, `longtake run`) is using /w; "
        "wait for it or stop it (kill 1234 on host elsewhere)"
    )


def _fill(path: Path) -> None:
    (path / "workdir").mkdir()
    (path / "workdir" / LOCK_FILENAME).write_text("")
    (path / "fresh").mkdir()


def _read_only_mount(path: Path):
    """A tmpfs at ``path`` remounted read-only (root only); yields False when not possible here."""
    return tmpfs(path, "1m", prepare=_fill, read_only=True)


def test_read_only_workdir_is_a_clear_error(tmp_path):
    mnt = tmp_path / "ro"
    with _read_only_mount(mnt) as mounted:
        if not mounted:
            pytest.skip("cannot mount a tmpfs here (not root?); the patched test covers the logic")
        for workdir in (mnt / "workdir", mnt / "fresh", mnt / "fresh" / "sub"):
            with pytest.raises(WorkdirError) as info:
                with WorkdirLock(workdir):
                    pass
            assert "read-only" in str(info.value) and "set `workdir:`" in str(info.value)
            assert info.value.exit_code == 1


def test_read_only_workdir_patched(tmp_path, monkeypatch):
    real_open = os.open

    def ro_open(path, flags, *a, **k):
        if str(path).endswith(LOCK_FILENAME):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, flags, *a, **k)

    monkeypatch.setattr(os, "open", ro_open)
    with pytest.raises(WorkdirError) as info:
        with WorkdirLock(tmp_path):
            pass
    assert str(tmp_path) in str(info.value) and "read-only" in str(info.value)


def test_full_disk_does_not_stop_taking_the_lock(tmp_path, monkeypatch, caplog):
    """`longtake clean` must still get the lock on a full disk; only the body is lost."""
    import orchestrator.lock as lock_mod

    def full(fd, text):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(lock_mod, "_write_body", full)
    with caplog.at_level(logging.WARNING, logger="longtake.orchestrator.lock"):
        with WorkdirLock(tmp_path, command="clean") as lock:
            assert lock.held
            assert _try_in_child(tmp_path).startswith("locked:")
    assert "held anyway" in caplog.text


# -------------------------------------------------------------- hosts whose flock does not reach each other


def _node_local_flock(monkeypatch):
    """Play a file system whose flock is node-local (Lustre `localflock`, NFS `local_lock=all`, old CIFS)."""
    import orchestrator.lock as lock_mod

    monkeypatch.setattr(lock_mod.fcntl, "flock", lambda fd, op: None)


def test_a_run_from_another_host_is_refused_where_flock_is_node_local(tmp_path, monkeypatch):
    env = dict(_env(), LONGTAKE_HOST="beta")
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(_HOLDER), str(tmp_path), "run"], cwd=REPO, env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        monkeypatch.setenv("LONGTAKE_HOST", "alpha")
        _node_local_flock(monkeypatch)
        # Pretend beta's pid namespace is not ours, as on another machine.
        lease = json.loads((tmp_path / "longtake.lease").read_text())
        lease["owner"]["namespace"] = "0ther0ns"
        (tmp_path / "longtake.lease").write_text(json.dumps(lease))
        with pytest.raises(LockedError) as info:
            WorkdirLock(tmp_path).acquire()
        assert f"pid {proc.pid} on host beta" in str(info.value) and "`longtake run`" in str(info.value)
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_a_silent_lease_of_another_host_is_taken_over(tmp_path, monkeypatch, caplog):
    import orchestrator.lock as lock_mod

    monkeypatch.setenv("LONGTAKE_HOST", "alpha")
    _node_local_flock(monkeypatch)
    silent_s = lock_mod.LEASE_STALE_S + 5
    body = {"owner": {"host": "beta", "namespace": "0ther0ns", "pid": 4242, "start": 7}, "command": "run",
            "token": "t", "heartbeat_unix": __import__("time").time() - silent_s}
    (tmp_path / "longtake.lease").write_text(json.dumps(body))
    with caplog.at_level(logging.WARNING, logger="orchestrator.lock"):
        with WorkdirLock(tmp_path):
            mine = json.loads((tmp_path / "longtake.lease").read_text())
            assert mine["owner"]["host"] == "alpha" and mine["owner"]["pid"] == os.getpid()
    assert "from pid 4242 on host beta" in caplog.text
    assert not (tmp_path / "longtake.lease").exists()  # released with the lock


def test_a_lease_of_a_dead_local_run_is_taken_over_and_a_live_one_refused(tmp_path, monkeypatch):
    from orchestrator.hosts import ProcessId

    _node_local_flock(monkeypatch)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    me = ProcessId.me()
    body = {"owner": dict(me.to_dict(), pid=dead.pid), "command": "run", "token": "t", "heartbeat_unix": 0}
    (tmp_path / "longtake.lease").write_text(json.dumps(body))
    with WorkdirLock(tmp_path):
        pass
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        import orchestrator.hosts as hosts

        live = ProcessId(me.host, me.namespace, sleeper.pid, hosts.start_ticks(sleeper.pid) or 0)
        body = {"owner": live.to_dict(), "command": "clean", "token": "t", "heartbeat_unix": 0}
        (tmp_path / "longtake.lease").write_text(json.dumps(body))
        with pytest.raises(LockedError, match=f"`longtake clean`, pid {sleeper.pid}"):
            WorkdirLock(tmp_path).acquire()
    finally:
        sleeper.kill()
        sleeper.wait()


def test_an_exited_process_not_yet_reaped_counts_as_dead():
    """A zombie (exited, its parent has not waited for it) keeps its /proc entry and its start time, but runs no
    more: its lease and its cache temp folders are free to take (a SIGKILLed Ray worker sits so until its raylet reaps it)."""
    import time

    from orchestrator.hosts import ProcessId, start_ticks

    if not Path("/proc/self/stat").exists():
        pytest.skip("needs /proc")
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    me = ProcessId.me()
    try:
        deadline = time.monotonic() + 30
        while Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":  # not reaped: no wait() yet
            assert time.monotonic() < deadline, "the child did not exit"
            time.sleep(0.05)
        assert start_ticks(child.pid) is None
        assert not ProcessId(me.host, me.namespace, child.pid, 0).alive()
    finally:
        child.wait()
