"""The stitch schedule and assembly, on plans alone: which clip frame lands where, with what weight.

These run over many random plans in every chaining mode, so the streaming
stitcher's bookkeeping (drops, blends, nested overlaps, emission order) is
checked far beyond what encoded-video tests can afford.
"""

from __future__ import annotations

import math
import random
from fractions import Fraction

import numpy as np
import pytest

from orchestrator.errors import LongtakeError
from segmenters.plan import FrameGrid, Plan, make_segment
from stitchers.compose import FrameUse, Layer, assemble, clip_frames_needed, clip_uses, raised_cosine, seam_kind
from tests.media_video import make_plan


def expected_ramp(k: int, n: int) -> float:
    # Written out independently of the implementation: a raised cosine sampled at frame centres.
    return (1 - math.cos(math.pi * (k + 0.5) / n)) / 2


def random_plan(rng: random.Random, chaining: str) -> Plan:
    grid = FrameGrid(8, 32)
    fps = Fraction(rng.choice([24, 25, 30]))
    segments, start = [], 0
    n = rng.randint(1, 6)
    for i in range(n):
        owned = rng.randint(1, 40)
        if i == 0:
            context = 0
        elif chaining == "last-frame":
            context = 1
        else:
            prev = segments[-1]
            # Sometimes longer than the previous owned range: an overlap that reaches into the seam before.
            context = rng.randint(0, min(12, prev.owned_frames + prev.context_frames))
        segments.append(make_segment(i, start, start + owned, context, grid, fps, 48000, "end" if i == n - 1 else "pause"))
        start += owned
    plan = Plan(fps=fps, frame_grid=8, spatial_multiple=32, sample_rate_hz=48000, trim_start_sample=0, duration_samples=0,
                total_frames=start, width=64, height=64, chaining=chaining, segments=tuple(segments))  # type: ignore[arg-type]
    return plan


def test_raised_cosine_rises_from_near_zero_to_near_one_symmetrically() -> None:
    for n in (1, 2, 5, 9, 24):
        w = [raised_cosine(k, n) for k in range(n)]
        assert all(0 < x < 1 for x in w) or n == 1
        assert all(b > a for a, b in zip(w, w[1:]))
        assert all(abs(w[k] + w[n - 1 - k] - 1) < 1e-12 for k in range(n))
        assert w == pytest.approx([expected_ramp(k, n) for k in range(n)])
    assert raised_cosine(0, 9) < 0.01 and raised_cosine(8, 9) > 0.99


@pytest.mark.parametrize("chaining", ["tail", "last-frame", "anchor"])
def test_every_output_frame_is_completed_once_in_order_by_its_owner(chaining: str) -> None:
    rng = random.Random(sum(map(ord, chaining)))
    for _ in range(300):
        plan = random_plan(rng, chaining)
        finals = []
        for i, seg in enumerate(plan.segments):
            uses = clip_uses(plan, i, color_ramp_frames=5)
            assert len(uses) == clip_frames_needed(plan, i) == seg.end_frame - seg.gen_start_frame <= seg.gen_frames
            for j, use in enumerate(uses):
                if use is None:
                    continue
                assert use.output_frame == seg.gen_start_frame + j
                assert use.output_frame < seg.end_frame  # grid padding past the owned end is never shown
                if use.final:
                    finals.append(use.output_frame)
        assert finals == sorted(finals) == list(range(plan.total_frames))


def test_last_frame_chaining_drops_exactly_the_duplicated_first_frame() -> None:
    plan = make_plan([20, 17, 30], 1, "last-frame")
    for i, seg in enumerate(plan.segments):
        uses = clip_uses(plan, i)
        dropped = [j for j, u in enumerate(uses) if u is None]
        assert dropped == ([] if i == 0 else [0])
        assert not any(u.blend for u in uses if u is not None)
        first = next(u for u in uses if u is not None)
        assert first.output_frame == seg.start_frame


@pytest.mark.parametrize("chaining", ["tail", "anchor"])
def test_overlap_frames_blend_with_a_raised_cosine_ramp(chaining: str) -> None:
    plan = make_plan([30, 25, 20], 9, chaining)
    for i, seg in enumerate(plan.segments[1:], start=1):
        uses = clip_uses(plan, i)
        blends = [u for u in uses if u is not None and u.blend]
        assert [u.output_frame for u in blends] == list(range(seg.start_frame - 9, seg.start_frame))
        assert [u.weight for u in blends] == pytest.approx([expected_ramp(k, 9) for k in range(9)])
        assert all(u.weight == 1.0 and not u.blend for u in uses[9:])
        # The previous clip holds those frames back instead of emitting them.
        prev = clip_uses(plan, i - 1)
        held = [u.output_frame for u in prev if u is not None and not u.final]
        assert held == list(range(seg.start_frame - 9, seg.start_frame))


def test_colour_correction_ramps_in_where_clips_do_not_overlap() -> None:
    plan = make_plan([20, 30], 1, "last-frame")
    uses = [u for u in clip_uses(plan, 1, color_ramp_frames=6) if u is not None]
    assert [u.color_mix for u in uses[:6]] == pytest.approx([expected_ramp(k, 6) for k in range(6)])
    assert all(u.color_mix == 1.0 for u in uses[6:])
    # Overlapping seams ramp colour through the crossfade itself, not separately.
    tail = make_plan([20, 30], 9, "tail")
    assert all(u.color_mix == 1.0 for u in clip_uses(tail, 1, color_ramp_frames=6) if u is not None)
    # A hard cut (anchor mode with no overlap) also ramps.
    cut = make_plan([20, 30], 0, "anchor")
    assert seam_kind(cut, 1) == "cut"
    assert [u.color_mix for u in clip_uses(cut, 1, color_ramp_frames=4)][:4] == pytest.approx([expected_ramp(k, 4) for k in range(4)])


def _weights_by_segment(plan: Plan) -> dict[int, dict[int, float]]:
    """Run ``assemble`` with layers that remember their segment; return {frame: {segment: total weight}}."""
    out: dict[int, dict[int, float]] = {}

    def make_layer(i: int, use: FrameUse, item: tuple[int, int]) -> Layer:
        return Layer((np.zeros(1),) * 3, np.eye(3, 4), use.weight if use.blend else 1.0, keep=item)

    def open_clip(i: int):
        return ((i, j) for j in range(plan.segments[i].gen_frames))

    for f, layers in assemble(plan, open_clip, make_layer):
        weights: dict[int, float] = {}
        for layer in layers:
            seg, j = layer.keep
            assert plan.segments[seg].gen_start_frame + j == f  # every layer is the clip frame for this instant
            weights[seg] = weights.get(seg, 0.0) + layer.weight
        out[f] = weights
    return out


@pytest.mark.parametrize("chaining", ["tail", "last-frame", "anchor"])
def test_assembled_weights_match_nested_crossfades(chaining: str) -> None:
    rng = random.Random(7 + len(chaining))
    for _ in range(200):
        plan = random_plan(rng, chaining)
        got = _weights_by_segment(plan)
        assert sorted(got) == list(range(plan.total_frames))
        for f, weights in got.items():
            # Expected: start from the owner, then fold in every later segment whose overlap covers f.
            owner = plan.owner_of(f)
            expected = {owner.index: 1.0}
            for seg in plan.segments[owner.index + 1 :]:
                if chaining != "last-frame" and seg.gen_start_frame <= f < seg.start_frame:
                    w = expected_ramp(f - seg.gen_start_frame, seg.context_frames)
                    expected = {k: v * (1 - w) for k, v in expected.items()}
                    expected[seg.index] = w
            assert set(weights) == set(expected), (f, weights, expected)
            for k in expected:
                assert weights[k] == pytest.approx(expected[k], abs=1e-12)
            assert sum(weights.values()) == pytest.approx(1.0)


def test_nested_overlap_reaching_across_a_short_segment() -> None:
    # Segment 1 owns 4 frames; segment 2's 9-frame overlap starts inside segment 1's own blend with segment 0.
    grid, fps = FrameGrid(8, 32), Fraction(24)
    segs = (
        make_segment(0, 0, 20, 0, grid, fps, 48000, "pause"),
        make_segment(1, 20, 24, 9, grid, fps, 48000, "pause"),
        make_segment(2, 24, 40, 9, grid, fps, 48000, "end"),
    )
    plan = Plan(fps=fps, frame_grid=8, spatial_multiple=32, sample_rate_hz=48000, trim_start_sample=0, duration_samples=0,
                total_frames=40, width=64, height=64, chaining="tail", segments=segs)
    plan.validate()
    got = _weights_by_segment(plan)
    assert set(got[16]) == {0, 1, 2}  # three clips in one frame
    w1, w2 = expected_ramp(16 - 11, 9), expected_ramp(16 - 15, 9)
    assert got[16][0] == pytest.approx((1 - w1) * (1 - w2))
    assert got[16][1] == pytest.approx(w1 * (1 - w2))
    assert got[16][2] == pytest.approx(w2)


def test_a_clip_that_runs_out_is_an_error_naming_the_segment() -> None:
    plan = make_plan([20, 20], 9, "tail")

    def open_clip(i: int):
        return range(5 if i == 1 else plan.segments[i].gen_frames)

    with pytest.raises(LongtakeError, match="segment 1"):
        for _ in assemble(plan, open_clip, lambda i, use, item: Layer((np.zeros(1),) * 3, np.eye(3, 4), 1.0)):
            pass
