"""The segment length the planner aims for when the project does not set one: the cheapest under a limit on seams.

A segment of ``n`` owned frames is generated over ``n + context`` frames
rounded up to the generator's grid, and one pass costs more per second the
longer it is (attention grows with the square of the tokens). Short segments
are therefore cheaper per output second, until the context frames every seam
re-generates and the per-segment work outweigh that, and every seam is one more
place a viewer may see a join. So the default target is the owned length that
minimises cost per output second among the lengths that keep at most
``max_seams_per_minute`` seams in a minute of video. An explicit
``segmenter.target_segment_s`` always wins; a backend without a cost model
gets ``DEFAULT_TARGET_SEGMENT_S``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable

from orchestrator.errors import ConfigError
from segmenters.plan import FrameGrid

DEFAULT_TARGET_SEGMENT_S = 12.0


@dataclass(frozen=True)
class TargetChoice:
    target_segment_s: float
    reason: str  # one line for `longtake plan`
    cost_per_output_s: float | None = None  # in the cost model's unit, for a segment of the target length


def cheapest_target(
    cost_of_gen_frames: Callable[[int], float],
    *,
    fps: Fraction,
    grid: FrameGrid,
    context_frames: int,
    min_segment_s: float,
    max_segment_s: float,
    max_seams_per_minute: float,
    unit: str = "",
) -> TargetChoice:
    """The owned length (on the frame grid) of least cost per output second with at most ``max_seams_per_minute`` seams."""
    fps_f = float(fps)
    shortest_s = max(min_segment_s, 60.0 / max_seams_per_minute)
    n_lo = int(math.ceil(shortest_s * fps_f - 1e-9))
    max_gen = grid.round_down_frames(int(math.floor(max_segment_s * fps_f + 1e-9)))
    n_hi = max_gen - context_frames
    if n_hi < n_lo:
        raise ConfigError(
            f"segmenter.max_seams_per_minute {max_seams_per_minute:g} asks for segments of at least {shortest_s:g} s, but with "
            f"{context_frames} context frames a pass of at most {max_segment_s:g} s owns at most {max(n_hi, 0) / fps_f:.2f} s; "
            "raise max_seams_per_minute or set segmenter.target_segment_s"
        )
    best_n, best = n_hi, math.inf
    cache: dict[int, float] = {}
    for n in range(n_hi, n_lo - 1, -1):  # longest first: a tie keeps the fewer seams
        gen = grid.round_up_frames(n + context_frames)
        if gen not in cache:
            cache[gen] = cost_of_gen_frames(gen)
        per_s = cache[gen] / (n / fps_f)
        if per_s < best - 1e-12 * abs(best if math.isfinite(best) else 1.0):
            best_n, best = n, per_s
    target_s = best_n / fps_f
    reason = (
        f"target segment length {target_s:.2f} s (not set: the cheapest per output second, {best:.2f} {unit}/s, "
        f"with at most {max_seams_per_minute:g} seams per minute)"
    )
    return TargetChoice(target_segment_s=target_s, reason=reason, cost_per_output_s=best)


def resolve_target(
    explicit_s: float | None,
    cost_of_gen_frames: Callable[[int], float] | None,
    **kwargs,
) -> TargetChoice:
    """The project's ``target_segment_s`` when set; otherwise the cheapest (``cheapest_target``) or the fixed default."""
    if explicit_s is not None:
        return TargetChoice(explicit_s, f"target segment length {explicit_s:g} s (segmenter.target_segment_s)")
    if cost_of_gen_frames is None:
        lo, hi = kwargs["min_segment_s"], kwargs["max_segment_s"]
        target = min(max(DEFAULT_TARGET_SEGMENT_S, lo), hi)
        return TargetChoice(target, f"target segment length {target:g} s (default; this backend has no cost model)")
    return cheapest_target(cost_of_gen_frames, **kwargs)
