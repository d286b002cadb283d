"""The fal backend end to end against a local fake fal (tests/fal_fake.py): runs in every chaining mode fal supports,
never paying twice across kill -9, parallel bookend segments, an error sentence and exit code for every failure,
the cost guard, and the key never written anywhere."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("fal_client")

from generators import fal as falgen  # noqa: E402
from orchestrator.cli import main  # noqa: E402
from tests.fal_fake import KEY, FakeFal  # noqa: E402
from tests.orchestrator.conftest import REPO, events, write_project  # noqa: E402

SIZE = {"width": 128, "height": 224}  # multiples of fal's 32


def fal_project(folder: Path, speech_flac: Path, portrait_png: Path, chaining: str, **generator) -> Path:
    return write_project(folder, speech_flac, portrait_png, video={**SIZE, "fps": 24},
                         generator={"backend": "fal", "chaining": chaining, "poll_interval_s": 0.05, **generator})


def env_for(fake: FakeFal | None, key: str | None = KEY, url: str | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("FAL_KEY", "LONGTAKE_FAL_URL")}
    env["PYTHONPATH"] = str(REPO)
    if key:
        env["FAL_KEY"] = key
    env["LONGTAKE_FAL_URL"] = url or (fake.url if fake else "")
    return env


def cli(*args: str, env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "orchestrator.cli", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def ffprobe(path: Path) -> dict:
    out = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-show_streams", "-of", "json", str(path)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def frame_digest(path: Path) -> str:
    out = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:v", "-f", "md5", "-"], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def plan_of(folder: Path) -> dict:
    return json.loads(next((folder / "project.longtake-work" / "cache" / "plan").glob("*/plan.json")).read_text())


def assert_key_nowhere(folder: Path, *texts: str) -> None:
    needle = KEY.encode()
    leaks = [p for p in folder.rglob("*") if p.is_file() and needle in p.read_bytes()]
    assert not leaks, f"the key was written to {leaks}"
    assert all(KEY not in t for t in texts), "the key appeared in the events or logs"


@pytest.fixture
def fake(tmp_path):
    server = FakeFal(tmp_path / "fake-fal")
    yield server
    server.close()


@pytest.fixture(autouse=True)
def _need_ffmpeg():
    if shutil.which("ffprobe") is None or shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg/ffprobe are not installed")


# ------------------------------------------------------------------------------------ cost


def test_cost_follows_fals_published_example_and_the_plan():
    # fal's page: 121 frames at 1280×720 ≈ 112 MP → $0.1344 on the distilled endpoint.
    one = falgen.estimate_cost("fal-ai/ltx-2.3-22b/distilled/audio-to-video", 1280, 720, [121])
    assert one.megapixels == pytest.approx(111.6) and one.total_usd == pytest.approx(0.1345, abs=1e-4)
    two = falgen.estimate_cost("fal-ai/ltx-2.3-22b/audio-to-video", 1280, 720, [121, 241])
    assert two.requests == 2 and two.total_usd > one.total_usd * 2
    assert falgen.PRICES_READ_ON in one.describe()


# ------------------------------------------------------------------------------------ full runs


@pytest.mark.slow
@pytest.mark.parametrize("chaining", ["last-frame", "anchor", "bookend"])
def test_full_run_on_the_fake(tmp_path, fake, speech_flac, portrait_png, chaining):
    fake.run_s = 0.6
    project = fal_project(tmp_path / chaining, speech_flac, portrait_png, chaining)
    plan = cli("plan", str(project), env=env_for(fake))
    assert plan.returncode == 0, plan.stderr
    assert "estimated fal.ai cost: $" in plan.stdout and "fal-ai/ltx-2.3-22b/distilled/audio-to-video" in plan.stdout
    proc = cli("run", str(project), "--json", env=env_for(fake))
    assert proc.returncode == 0, proc.stderr
    p = plan_of(tmp_path / chaining)
    n = len(p["segments"])
    assert n >= 3 and fake.submissions == n  # one request per segment
    assert p["chaining"] == chaining and (p["width"], p["height"]) == (128, 224)
    streams = ffprobe(tmp_path / chaining / "out" / "video.mp4")["streams"]
    video = next(s for s in streams if s["codec_type"] == "video")
    assert int(video["nb_read_frames"]) == p["total_frames"] and (video["width"], video["height"]) == (128, 224)
    assert any(s["codec_type"] == "audio" for s in streams)
    sent = [r.arguments for r in fake.requests.values()]
    assert all(a["enable_prompt_expansion"] is False and a["match_audio_length"] is False for a in sent)
    assert sorted(a["num_frames"] for a in sent) == sorted(s["gen_frames"] for s in p["segments"])
    assert all(a["video_size"] == SIZE and a["fps"] == 24.0 for a in sent)
    if chaining == "bookend":
        assert all(a["end_image_url"] == a["image_url"] for a in sent)
        assert fake.max_concurrent() >= 2, "bookend segments never ran on fal at the same time"
    else:
        assert all("end_image_url" not in a for a in sent)
    if chaining == "last-frame":
        assert fake.max_concurrent() == 1  # each segment waits for the previous one's last frame
        assert len({a["image_url"] for a in sent}) == n  # every segment starts from a different image
    report = json.loads((tmp_path / chaining / "out" / "video.report.json").read_text())
    assert report["seams_summary"]["chaining"] == chaining
    assert_key_nowhere(tmp_path / chaining, proc.stdout, proc.stderr, plan.stdout, plan.stderr)


@pytest.mark.slow
def test_kill_9_in_flight_then_rerun_pays_once_per_segment(tmp_path, speech_flac, portrait_png):
    reference = FakeFal(tmp_path / "ref-fal", run_s=0.3)
    slow = FakeFal(tmp_path / "slow-fal", run_s=3.0)
    try:
        ref_project = fal_project(tmp_path / "ref", speech_flac, portrait_png, "bookend", max_in_flight=2)
        assert cli("run", str(ref_project), env=env_for(reference)).returncode == 0
        project = fal_project(tmp_path / "killed", speech_flac, portrait_png, "bookend", max_in_flight=2)
        proc = subprocess.Popen([sys.executable, "-m", "orchestrator.cli", "run", str(project), "--json"], cwd=REPO, env=env_for(slow),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # Kill once two requests are in flight, i.e. their ids are on disk (a kill inside the microseconds between
        # fal accepting a request and its id reaching the disk cannot be re-attached: see the warning test below).
        journal = tmp_path / "killed" / "project.longtake-work" / "fal"

        def in_flight() -> int:
            # not the ".<name>.tmp" files an atomic write leaves for a moment
            records = [json.loads(f.read_text()) for f in journal.glob("[!.]*.json")] if journal.is_dir() else []
            return sum(1 for r in records if r.get("status") == "submitted" and r.get("request_id"))

        deadline = time.monotonic() + 120
        while in_flight() < 2 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        assert in_flight() >= 2, "the run never had two requests in flight"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        submitted_before = slow.submissions
        status = cli("status", str(project), env=env_for(slow))
        assert "in flight on fal (request" in status.stdout, status.stdout
        rerun = cli("run", str(project), "--json", env=env_for(slow))
        assert rerun.returncode == 0, rerun.stderr
        n = len(plan_of(tmp_path / "killed")["segments"])
        seeds = sorted(r.arguments["seed"] for r in slow.requests.values())
        assert slow.submissions == n, (f"{slow.submissions} requests for {n} segments ({submitted_before} before the kill); seeds {seeds}; "
                                       f"stderr {rerun.stderr[-2000:]}")
        assert frame_digest(tmp_path / "killed" / "out" / "video.mp4") == frame_digest(tmp_path / "ref" / "out" / "video.mp4")
        assert_key_nowhere(tmp_path / "killed", rerun.stdout, rerun.stderr, status.stdout)
    finally:
        reference.close()
        slow.close()


# ------------------------------------------------------------------------------------ errors, in process


def run_in_process(project: Path, monkeypatch, capsys, fake: FakeFal | None, *extra: str, key: str | None = KEY, url: str | None = None):
    monkeypatch.setattr(falgen, "RETRY_DELAY_S", 0.01)
    import fal_client.client as fc

    monkeypatch.setattr(fc, "MAX_ATTEMPTS", 3)
    monkeypatch.setattr(fc, "BASE_DELAY", 0.01)
    if key:
        monkeypatch.setenv("FAL_KEY", key)
    else:
        monkeypatch.delenv("FAL_KEY", raising=False)
    monkeypatch.setenv("LONGTAKE_FAL_URL", url or fake.url)
    code = main(["run", str(project), "--json", *extra])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_missing_key_is_exit_2(tmp_path, fake, speech_flac, portrait_png, monkeypatch, capsys):
    project = fal_project(tmp_path / "p", speech_flac, portrait_png, "bookend")
    code, _out, err = run_in_process(project, monkeypatch, capsys, fake, key=None)
    assert code == 2 and "set FAL_KEY in the environment" in err and fake.submissions == 0


@pytest.mark.parametrize("switch,code,sentence", [
    ("fail_auth", 2, "fal.ai refused the key in FAL_KEY (HTTP 401)"),
    ("fail_validation", 2, "rejected segment 0's request (HTTP 422): video_size: width × height exceeds the maximum of 2 MP"),
    ("fail_request", 1, "failed on fal.ai: CUDA out of memory on the fake GPU; finished segments are kept"),
    ("expire_results", 1, "has expired on fal.ai before it was downloaded"),
])
def test_each_failure_has_its_sentence_and_exit_code(tmp_path, fake, speech_flac, portrait_png, monkeypatch, capsys, switch, code, sentence):
    setattr(fake, switch, True)
    project = fal_project(tmp_path / "p", speech_flac, portrait_png, "last-frame")
    got, out, err = run_in_process(project, monkeypatch, capsys, fake)
    assert got == code and sentence in err, err
    if switch in ("fail_request", "expire_results"):
        rid = next(iter(fake.requests))
        assert f"segment 0's" in err and rid in err
    assert_key_nowhere(tmp_path / "p", out, err)


def test_no_network_is_a_sentence(tmp_path, speech_flac, portrait_png, monkeypatch, capsys):
    project = fal_project(tmp_path / "p", speech_flac, portrait_png, "bookend")
    code, _out, err = run_in_process(project, monkeypatch, capsys, None, url="http://127.0.0.1:9")  # discard port: nobody listens
    assert code == 1 and "cannot reach http://127.0.0.1:9" in err and "ConnectError" in err


def test_500s_dropped_connections_and_a_slow_queue_are_survived(tmp_path, fake, speech_flac, portrait_png, monkeypatch, capsys):
    fake.fail_5xx, fake.drop_connections, fake.queue_s = 3, 2, 0.4
    project = fal_project(tmp_path / "p", speech_flac, portrait_png, "anchor", max_in_flight=1)
    code, out, err = run_in_process(project, monkeypatch, capsys, fake)
    assert code == 0, err
    n = len(plan_of(tmp_path / "p")["segments"])
    assert fake.submissions == n and fake.fail_5xx == 0 and fake.drop_connections == 0
    stages = [e.get("stage", "") for e in events(subprocess.CompletedProcess([], 0, out, "")) if e["event"] == "progress"]
    assert any(s.startswith("queued on fal.ai (position") for s in stages) and any(s.startswith("running on fal.ai") for s in stages)


def test_a_failed_download_is_downloaded_again_not_regenerated(tmp_path, fake, speech_flac, portrait_png, monkeypatch, capsys):
    fake.drop_downloads = falgen.DOWNLOAD_ATTEMPTS  # every attempt of the first run breaks off mid-file
    project = fal_project(tmp_path / "p", speech_flac, portrait_png, "last-frame")
    code, _out, err = run_in_process(project, monkeypatch, capsys, fake)
    assert code == 1 and "a rerun downloads it without generating it again" in err
    assert fake.submissions == 1
    code, _out, err = run_in_process(project, monkeypatch, capsys, fake)
    assert code == 0, err
    assert fake.submissions == len(plan_of(tmp_path / "p")["segments"])  # segment 0 was not submitted twice


def test_tail_chaining_is_refused_naming_the_modes_that_work(tmp_path, speech_flac, portrait_png, monkeypatch, capsys):
    project = fal_project(tmp_path / "p", speech_flac, portrait_png, "tail")
    assert main(["plan", str(project)]) == 2
    err = capsys.readouterr().err
    assert "generator.chaining" in err and "use bookend" in err and "anchor" in err and "last-frame" in err


def test_run_refuses_above_max_cost_unless_yes(tmp_path, fake, speech_flac, portrait_png, monkeypatch, capsys):
    project = fal_project(tmp_path / "p", speech_flac, portrait_png, "bookend", max_cost_usd=0.0)
    code, _out, err = run_in_process(project, monkeypatch, capsys, fake)
    assert code == 2 and "above generator.max_cost_usd $0.00" in err and "--yes" in err and fake.submissions == 0
    code, _out, err = run_in_process(project, monkeypatch, capsys, fake, "--yes")
    assert code == 0, err


def test_a_batch_enforces_each_projects_cost_limit_unless_yes(tmp_path, fake, speech_flac, portrait_png, monkeypatch, capsys):
    """`longtake run a.yaml b.yaml` guards the money like a single run: the dear project stops before any submission."""
    dear = fal_project(tmp_path / "dear", speech_flac, portrait_png, "bookend", max_cost_usd=0.0)
    cheap = fal_project(tmp_path / "cheap", speech_flac, portrait_png, "bookend")
    code, out, _err = run_in_process(dear, monkeypatch, capsys, fake, str(cheap))
    finished = {e["project"]: e for e in events(subprocess.CompletedProcess([], 0, out, "")) if e["event"] == "project_finished"}
    assert code == 1 and finished[str(cheap)]["ok"] and not finished[str(dear)]["ok"]
    assert "above generator.max_cost_usd $0.00" in finished[str(dear)]["error"]
    assert fake.submissions == len(plan_of(tmp_path / "cheap")["segments"])  # nothing of the dear project was paid for
    code, _out, err = run_in_process(dear, monkeypatch, capsys, fake, str(cheap), "--yes")
    assert code == 0, err


def test_a_kill_while_submitting_is_warned_about(tmp_path, fake, speech_flac, portrait_png, monkeypatch, capsys):
    project = fal_project(tmp_path / "p", speech_flac, portrait_png, "last-frame")
    real_submit = falgen.FalGenerator._submit_request

    def killed_while_submitting(self, *args, **kwargs):
        raise KeyboardInterrupt  # as if the process died between "submitting" and fal's answer

    monkeypatch.setattr(falgen.FalGenerator, "_submit_request", killed_while_submitting)
    code, _out, _err = run_in_process(project, monkeypatch, capsys, fake)
    assert code == 130
    monkeypatch.setattr(falgen.FalGenerator, "_submit_request", real_submit)
    code, _out, err = run_in_process(project, monkeypatch, capsys, fake)
    assert code == 0, err
    assert "segment 0: a previous run stopped while submitting it to fal.ai" in err
