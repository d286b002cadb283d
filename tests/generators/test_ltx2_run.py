"""`longtake run` with the ltx2 backend end to end on a tiny random LTX-2.3 saved in diffusers format (CPU).

The model folder goes through the production loading path; the run graph, the
cache and the stitcher are the real ones.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from segmenters.plan import Plan
from tests.generators.tiny_ltx2 import build_tiny_ltx2
from tests.orchestrator.conftest import events, longtake, steps_with, write_project


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return build_tiny_ltx2(tmp_path_factory.mktemp("ltx2") / "model")


@pytest.fixture(scope="module")
def short_speech(tmp_path_factory):
    if shutil.which("espeak-ng") is None or shutil.which("sox") is None:
        pytest.skip("espeak-ng and sox are needed (.ci/run installs them)")
    folder = tmp_path_factory.mktemp("vo")
    ssml = '<speak>Hello there.<break time="500ms"/>This is a tiny test.<break time="500ms"/>It has three parts.</speak>'
    subprocess.run(["espeak-ng", "-m", "-v", "en-us", "-s", "170", "-w", str(folder / "raw.wav"), ssml], check=True)
    subprocess.run(["sox", str(folder / "raw.wav"), str(folder / "vo.wav"), "pad", "0.3", "0.2"], check=True)
    return folder / "vo.wav"


def ltx2_project(folder, voiceover, portrait, model, **generator):
    return write_project(
        folder, voiceover, portrait,
        video={"width": 48, "height": 64, "fps": 24},
        segmenter={"vad": "webrtc", "max_segment_s": 2.0, "min_segment_s": 0.8, "target_segment_s": 1.3, "min_pause_ms": 200, "context_frames": 5},
        generator={"backend": "ltx2", "model": str(model), "device": "cpu", "dtype": "float32", "stage1_steps": 2, "stg_blocks": [1], **generator},
    )  # fmt: skip


def assert_video_and_cached_rerun(tmp_path, project, plan, segments) -> None:
    """The output has the plan's frames as H.264 with audio, and a rerun loads nothing and generates nothing."""
    info = json.loads(subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-show_streams", "-of", "json", str(tmp_path / "out" / "video.mp4")],
                                     capture_output=True, text=True, check=True).stdout)  # fmt: skip
    video = next(s for s in info["streams"] if s["codec_type"] == "video")
    assert int(video["nb_read_frames"]) == plan.total_frames and video["codec_name"] == "h264"
    assert any(s["codec_type"] == "audio" for s in info["streams"])
    again = events(longtake("run", str(project), "--json", check=True, timeout=600))
    assert not [e for e in again if e["event"] == "generator_loaded"]
    assert set(segments) <= set(steps_with(again, "step_cached"))


def test_run_with_the_tiny_model_makes_a_valid_video_and_resumes(tmp_path, tiny_model, short_speech, portrait_png):
    project = ltx2_project(tmp_path, short_speech, portrait_png, tiny_model)
    first = events(longtake("run", str(project), "--json", check=True, timeout=600))
    plan = Plan.load(next((tmp_path / "project.longtake-work" / "cache" / "plan").glob("*/plan.json")))
    assert plan.frame_grid == 4 and plan.spatial_multiple == 8  # read from the tiny model's VAE config
    assert len(plan.segments) >= 3
    segments = [f"segment_{i:03d}" for i in range(len(plan.segments))]
    assert [s for s in steps_with(first, "step_finished") if s.startswith("segment_")] == segments
    assert len([e for e in first if e["event"] == "generator_loaded"]) == 1  # loaded once for every segment
    assert len(steps_with(first, "step_started")) == len(set(steps_with(first, "step_started")))
    assert_video_and_cached_rerun(tmp_path, project, plan, segments)

    # a prompt change on the last segment reruns only it (and stitch/report); the model loads again, once
    data = project.read_text() + f"segments:\n- index: {len(segments) - 1}\n  prompt: the person smiles\n"
    project.write_text(data)
    third = events(longtake("run", str(project), "--json", check=True, timeout=600))
    assert [s for s in steps_with(third, "step_started") if s.startswith("segment_")] == [segments[-1]]
    assert len([e for e in third if e["event"] == "generator_loaded"]) == 1


def test_missing_model_folder_fails_before_any_segment(tmp_path, short_speech, portrait_png):
    project = ltx2_project(tmp_path, short_speech, portrait_png, tmp_path / "no-such-model")
    proc = longtake("run", str(project), "--json", timeout=600)
    assert proc.returncode == 1
    assert "no-such-model" in proc.stderr
    assert not [s for s in steps_with(events(proc), "step_finished") if s.startswith("segment_")]


def test_cuda_without_a_gpu_says_how_to_fix_it(tmp_path, tiny_model, short_speech, portrait_png):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    project = ltx2_project(tmp_path, short_speech, portrait_png, tiny_model, device="cuda")
    proc = longtake("run", str(project), timeout=600)
    assert proc.returncode == 1
    assert "cuda" in proc.stderr.lower() and "device" in proc.stderr
