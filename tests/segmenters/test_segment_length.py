"""The default target segment length: the cheapest per output second under a limit on seams."""

from __future__ import annotations

from fractions import Fraction

import pytest

from orchestrator.errors import ConfigError
from segmenters.plan import FrameGrid
from segmenters.segment_length import DEFAULT_TARGET_SEGMENT_S, cheapest_target, resolve_target

GRID = FrameGrid(8, 64)
KW = dict(fps=Fraction(24), grid=GRID, context_frames=9, min_segment_s=2, max_segment_s=20)


def test_interior_optimum_is_found_on_the_grid():
    # fixed 60 units per segment + quadratic pass cost: per second = 60/L + L (in frames/24) is least near L = 7.7 s
    cost = lambda gen: 60 + (gen / 24) ** 2  # noqa: E731
    choice = cheapest_target(cost, max_seams_per_minute=60, **KW)
    frames = round(choice.target_segment_s * 24)
    assert 6.5 < choice.target_segment_s < 9
    assert GRID.is_valid_num_frames(frames + 9)  # owned + context lands exactly on 8k+1: nothing generated in vain
    # a neighbour on the grid costs more per second
    for other in (frames - 8, frames + 8):
        assert cost(other + 9) / other > cost(frames + 9) / frames


def test_seam_limit_binds_when_short_segments_are_cheaper():
    cost = lambda gen: (gen / 24) ** 2  # noqa: E731  (pure attention: shorter is always cheaper)
    assert cheapest_target(cost, max_seams_per_minute=6, **KW).target_segment_s == pytest.approx(10.0)
    assert cheapest_target(cost, max_seams_per_minute=12, **KW).target_segment_s == pytest.approx(5.0)


def test_flat_cost_prefers_fewer_seams():
    choice = cheapest_target(lambda gen: 7.0 * gen, max_seams_per_minute=6, **KW)
    assert round(choice.target_segment_s * 24) + 9 == GRID.round_down_frames(480) == 473  # the longest pass within 20 s


def test_explicit_target_wins_and_no_cost_model_gets_the_default():
    assert resolve_target(8.5, lambda gen: 1.0, max_seams_per_minute=6, **KW).target_segment_s == 8.5
    fallback = resolve_target(None, None, max_seams_per_minute=6, **KW)
    assert fallback.target_segment_s == DEFAULT_TARGET_SEGMENT_S and "no cost model" in fallback.reason


def test_impossible_seam_limit_is_a_config_error():
    with pytest.raises(ConfigError, match="max_seams_per_minute 1 asks for segments of at least 60 s"):
        cheapest_target(lambda gen: 1.0, max_seams_per_minute=1, **KW)
