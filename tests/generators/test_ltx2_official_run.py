"""`longtake run` end to end through the CLI on Lightricks' single-file layout (tiny LTX-2.3, CPU).

The checkpoint, upsampler, LoRA and Gemma folder are the files of ``tiny_ltx_official``; the project file names
them as a user names the real ones. The planner reads the frame grid from the checkpoint's own config.
"""

from __future__ import annotations

import pytest

from segmenters.plan import Plan
from tests.generators.test_ltx2_run import assert_video_and_cached_rerun, short_speech  # noqa: F401  (fixture)
from tests.orchestrator.conftest import events, longtake, steps_with, write_project

pytestmark = pytest.mark.parity


@pytest.fixture(scope="module")
def official(tmp_path_factory):
    from tests.generators.tiny_ltx_official import build_tiny_ltx_official

    return build_tiny_ltx_official(tmp_path_factory.mktemp("official"))


def official_project(folder, voiceover, portrait, official, **generator):
    return write_project(
        folder, voiceover, portrait,
        video={"width": 48, "height": 64, "fps": 24},
        segmenter={"vad": "webrtc", "max_segment_s": 2.0, "min_segment_s": 0.8, "target_segment_s": 1.3, "min_pause_ms": 200, "context_frames": 9},
        generator={
            "backend": "ltx2", "model": str(official.checkpoint), "text_encoder": str(official.gemma), "upsampler": str(official.upsampler),
            "stage2_lora": str(official.lora), "device": "cpu", "dtype": "float32", "stage1_steps": 2, "stg_blocks": [1], **generator,
        },
    )  # fmt: skip


def test_run_on_the_official_single_files_makes_a_valid_video_and_resumes(tmp_path, official, short_speech, portrait_png):  # noqa: F811
    project = official_project(tmp_path, short_speech, portrait_png, official)
    first = events(longtake("run", str(project), "--json", check=True, timeout=600))
    plan = Plan.load(next((tmp_path / "project.longtake-work" / "cache" / "plan").glob("*/plan.json")))
    assert plan.frame_grid == 8 and plan.spatial_multiple == 16  # from the checkpoint's config metadata, not a vae/ folder
    assert len(plan.segments) >= 2
    segments = [f"segment_{i:03d}" for i in range(len(plan.segments))]
    assert [s for s in steps_with(first, "step_finished") if s.startswith("segment_")] == segments
    assert len([e for e in first if e["event"] == "generator_loaded"]) == 1
    assert_video_and_cached_rerun(tmp_path, project, plan, segments)


def test_a_single_file_without_gemma_stops_before_any_segment_with_exit_2(tmp_path, official, short_speech, portrait_png):  # noqa: F811
    project = official_project(tmp_path, short_speech, portrait_png, official, text_encoder=str(tmp_path / "no-gemma-here"))
    proc = longtake("run", str(project), "--json", timeout=600)
    assert proc.returncode == 2
    assert "Gemma-3 folder not found" in proc.stderr and "no-gemma-here" in proc.stderr
    assert not [s for s in steps_with(events(proc), "step_finished") if s.startswith("segment_")]
