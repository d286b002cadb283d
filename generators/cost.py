"""What a plan will cost on a generator backend, estimated before anything runs.

A backend that can price its work returns a ``CostModel`` from
``Generator.cost_model(options)`` (a classmethod: no weights are loaded, so
``longtake plan`` stays fast). A cost model prices one segment from its
generation shape; ``plan_cost`` adds the segments of a plan up and divides by
the plan's output seconds. The unit is the backend's: GPU-seconds for a local
GPU backend (``ltx2``), dollars for a hosted one. The planner only compares
costs of one model with each other, so it works in any unit. One-time costs
(a compile warm-up paid once per machine) are kept apart from the per-second
figure: they do not grow with the plan and vanish on the next run.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from segmenters.plan import Plan


@dataclass(frozen=True)
class SegmentCost:
    """One segment's estimated cost in its model's unit, with the parts it is made of (same unit)."""

    total: float
    parts: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class PlanCost:
    """A whole plan's estimated cost."""

    unit: str  # "GPU-s", "USD", …
    total: float
    output_s: float  # seconds of finished video the plan makes
    segments: tuple[SegmentCost, ...]
    parts: dict[str, float]  # summed over segments
    basis: str  # where the figures come from (card, date, measured or extrapolated)
    one_time: dict[str, float] = field(default_factory=dict)  # paid once (per machine), not in total
    one_time_basis: str = ""

    @property
    def per_output_s(self) -> float:
        return self.total / self.output_s if self.output_s > 0 else float("inf")

    def describe(self) -> str:
        """One line for ``longtake plan``."""
        parts = ", ".join(f"{name} {value:,.0f}" for name, value in self.parts.items() if value > 0)
        text = (
            f"estimated cost: {self.total:,.0f} {self.unit} for {self.output_s:.1f} s of video = "
            f"{self.per_output_s:.2f} {self.unit} per output second ({parts})\n  basis: {self.basis}"
        )
        for name, value in self.one_time.items():
            text += f"\none-time: {name} {value:,.0f} {self.unit} on a machine's first run (not in the figures above)"
        if self.one_time and self.one_time_basis:
            text += f"\n  basis: {self.one_time_basis}"
        return text


class CostModel(ABC):
    """Prices segments of one backend with one set of options."""

    unit: str = "GPU-s"

    @property
    @abstractmethod
    def basis(self) -> str:
        """Where the figures come from: the card, the date, what was measured and what is extrapolated."""

    @abstractmethod
    def segment_cost(self, *, width: int, height: int, num_frames: int, fps: Fraction) -> SegmentCost:
        """Estimated cost of generating one segment of ``num_frames`` frames at ``width``×``height``."""

    def one_time_costs(self) -> dict[str, float]:
        """Costs paid once per machine rather than per segment (name → amount in ``unit``); none by default."""
        return {}

    @property
    def one_time_basis(self) -> str:
        return ""

    def plan_cost(self, plan: "Plan") -> PlanCost:
        segments = tuple(self.segment_cost(width=plan.width, height=plan.height, num_frames=s.gen_frames, fps=plan.fps) for s in plan.segments)
        parts: dict[str, float] = {}
        for seg in segments:
            for name, value in seg.parts.items():
                parts[name] = parts.get(name, 0.0) + value
        return PlanCost(
            unit=self.unit,
            total=sum(s.total for s in segments),
            output_s=plan.total_frames / float(plan.fps),
            segments=segments,
            parts=parts,
            basis=self.basis,
            one_time=self.one_time_costs(),
            one_time_basis=self.one_time_basis,
        )
