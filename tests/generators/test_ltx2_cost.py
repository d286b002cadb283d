"""The ltx2 cost model: its fit to the measured passes, how recipes and options change it, and plan totals."""

from __future__ import annotations

from fractions import Fraction

import pytest

from generators.cost import CostModel
from generators.ltx2 import LTX2Generator
from generators.ltx2_cost import FORWARD_POINTS, LTX2CostModel, LTX2Recipe, forward_seconds, video_tokens
from orchestrator.config import LTX2Options
from segmenters.plan import FrameGrid, Plan, make_segment

FPS = Fraction(24)


def cost(options: LTX2Options, width=1088, height=1920, frames=481):
    return LTX2Generator.cost_model(options).segment_cost(width=width, height=height, num_frames=frames, fps=FPS)


def test_fit_reproduces_every_measured_pass_within_6_percent():
    for point in FORWARD_POINTS:
        assert forward_seconds(point.video_tokens) == pytest.approx(point.seconds, rel=0.06), point.source
    assert video_tokens(1088, 1920, 481) == 124_440 and video_tokens(352, 640, 481) == 13_420


def test_distilled_20s_1088x1920_matches_the_benchmarks_extrapolation():
    # The H100/H200 benchmark extrapolated 131.6–133.9 GPU-s for this segment (LTX.md, benchmarks/results).
    seg = cost(LTX2Options(model_variant="distilled"))
    assert 125 < seg.total < 140
    assert seg.parts["stage 2"] > 2.5 * seg.parts["stage 1"]  # stage 2's 124k-token attention dominates


def test_dev_recipe_pays_steps_times_guidance_passes_in_stage_1():
    distilled = cost(LTX2Options(model_variant="distilled"))
    dev = cost(LTX2Options(model_variant="dev", stage1_steps=30))
    assert dev.parts["stage 1"] == pytest.approx(distilled.parts["stage 1"] * 30 * 4 / 8)
    no_stg = cost(LTX2Options(stage1_steps=30, stg_scale=0.0))
    assert no_stg.parts["stage 1"] == pytest.approx(dev.parts["stage 1"] * 3 / 4)
    unguided = cost(LTX2Options(stage1_steps=30, guidance_scale=1.0, stg_scale=0.0, modality_scale=1.0))
    assert unguided.parts["stage 1"] == pytest.approx(dev.parts["stage 1"] / 4)
    assert dev.parts["stage 2"] == pytest.approx(distilled.parts["stage 2"])


def test_one_stage_runs_stage_1_at_full_size_and_no_stage_2():
    one = cost(LTX2Options(model_variant="distilled", stage2="none"))
    assert one.parts["stage 2"] == 0
    assert one.parts["stage 1"] == pytest.approx(8 * forward_seconds(124_440))


def test_identity_anchor_and_unfused_lora_add_work():
    base = cost(LTX2Options(model_variant="distilled"))
    anchored = cost(LTX2Options(model_variant="distilled", identity_anchor_strength=0.2))
    assert anchored.parts["stage 2"] > base.parts["stage 2"]  # one more latent frame of keyframe tokens
    lora = cost(LTX2Options(stage2_lora="/x/lora.safetensors"))
    assert lora.parts["stage 2"] > base.parts["stage 2"] * 1.03


def test_shorter_passes_cost_less_per_second():
    per_s = {n: cost(LTX2Options(model_variant="distilled"), frames=n).total / (n / 24) for n in (241, 481)}
    assert per_s[241] < 0.8 * per_s[481]


def test_plan_cost_adds_the_segments_and_divides_by_output_seconds():
    grid = FrameGrid(8, 64)
    segs = (
        make_segment(index=0, start_frame=0, end_frame=240, context_frames=0, grid=grid, fps=FPS, sample_rate_hz=48000, cut="pause"),
        make_segment(index=1, start_frame=240, end_frame=400, context_frames=9, grid=grid, fps=FPS, sample_rate_hz=48000, cut="end"),
    )
    plan = Plan(fps=FPS, frame_grid=8, spatial_multiple=64, sample_rate_hz=48000, trim_start_sample=0, duration_samples=400 * 2000,
                total_frames=400, width=704, height=1280, chaining="tail", segments=segs)  # fmt: skip
    model: CostModel = LTX2CostModel(LTX2Recipe())
    total = model.plan_cost(plan)
    expected = sum(model.segment_cost(width=704, height=1280, num_frames=s.gen_frames, fps=FPS).total for s in segs)
    assert segs[1].gen_frames == 169  # 160 owned + 9 context, rounded up to 8k+1
    assert total.total == pytest.approx(expected)
    assert total.per_output_s == pytest.approx(expected / (400 / 24))
    assert total.unit == "GPU-s" and "H200" in total.basis and "EXTRAPOLATED" in total.basis
    assert "GPU-s per output second" in total.describe()
