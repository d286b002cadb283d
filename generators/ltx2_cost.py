"""The ltx2 backend's cost model: GPU-seconds per segment from its stage shapes, steps and guidance passes.

A segment's GPU time is, with ``T₁``/``T₂`` the video tokens of stage 1 (half
size) and stage 2 (full size):

    steps₁ · passes · forward(T₁)  +  3 · forward(T₂) · lora  +  k_rest · W·H·F

- ``forward(T) = c₀ + c₁·T + c₂·T²``: one transformer pass. The linear term is
  the linear layers, norms and the audio stream; the quadratic one is
  self-attention over the video tokens (at 124k tokens it is 74 % of the pass,
  matching the ~70 % a profile showed). The coefficients are a least-squares
  fit (relative error) to the measured passes in ``FORWARD_POINTS``.
- ``passes``: 1 for the distilled recipe (8 fixed steps, no guidance); for the
  dev recipe one per active guidance term (cond, CFG, STG, modality).
- ``lora``: the rank-384 distilled LoRA run unfused through PEFT adds an
  estimated 15 % to the linear term of stage 2 (12–19 % per linear was seen);
  not yet measured end to end, and nothing when it is fused or absent.
- ``k_rest``: conditioning encode, upsample, VAE decode and clip writing per
  output pixel-frame, fitted to ``REST_POINTS``.

All calibration points are bf16 with random weights of LTX-2.3's shapes
(which cost what the real ones do), diffusers 0.42.1. Every figure for a
shape or recipe not in the tables is an extrapolation of this fit.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

import numpy as np

from generators.cost import CostModel, SegmentCost

STAGE2_STEPS = 3  # the distilled sigmas [0.909375, 0.725, 0.421875] → 0
DISTILLED_STAGE1_STEPS = 8
UNFUSED_LORA_LINEAR_OVERHEAD = 0.15  # estimate, see the module docstring


@dataclass(frozen=True)
class CalibrationPoint:
    video_tokens: int  # or output pixel-frames for REST_POINTS
    seconds: float
    card: str
    date: str
    source: str


_LTX_MD = "LTX.md 'Measured cost' table, one forward"
_BENCH_H100 = "benchmarks/results/ltx2_gpu_h100_part10/11.json, stage time / passes"
# One transformer forward (audio tokens of the same span frozen alongside), bf16, resident weights.
FORWARD_POINTS: tuple[CalibrationPoint, ...] = (
    CalibrationPoint(13_420, 1.20, "H100 80GB", "before 2026-11-24", _LTX_MD + ", 352x640x481"),
    CalibrationPoint(31_110, 3.45, "H100 80GB", "before 2026-11-24", _LTX_MD + ", 544x960x481"),
    CalibrationPoint(53_680, 7.61, "H100 80GB", "before 2026-11-24", _LTX_MD + ", 704x1280x481"),
    CalibrationPoint(27_280, 2.93, "H100 80GB", "before 2026-11-24", _LTX_MD + ", 704x1280x241"),
    CalibrationPoint(63_240, 9.76, "H100 80GB", "before 2026-11-24", _LTX_MD + ", 1088x1920x241"),
    CalibrationPoint(124_440, 30.07, "H100 80GB", "before 2026-11-24", _LTX_MD + ", 1088x1920x481"),
    CalibrationPoint(13_420, 5.02 / 4, "H100 80GB", "2026-11-24", _BENCH_H100 + ", stage 1 of 704x1280x481"),
    CalibrationPoint(53_680, 23.90 / 3, "H100 80GB", "2026-11-24", _BENCH_H100 + ", stage 2 of 704x1280x481"),
    CalibrationPoint(31_110, 14.78 / 4, "H100 80GB", "2026-11-24", _BENCH_H100 + ", stage 1 of 1088x1920x481"),
    CalibrationPoint(124_440, 91.37 / 3, "H100 80GB", "2026-11-24", _BENCH_H100 + ", stage 2 of 1088x1920x481"),
    CalibrationPoint(124_440, 90.1 / 3, "H200", "2026-11-30", "LTX.md H200 run (--sections build,big), stage 2 of 1088x1920x481"),
)
# Wall time of a segment outside the two denoising stages (condition encode, upsample, decode, write), per output pixel-frame.
REST_POINTS: tuple[CalibrationPoint, ...] = (
    CalibrationPoint(704 * 1280 * 481, 34.1 - 5.02 - 23.90, "H100 80GB", "2026-11-24", _BENCH_H100 + ", 704x1280x481"),
    CalibrationPoint(1088 * 1920 * 481, 119.1 - 14.78 - 91.37, "H100 80GB", "2026-11-24", _BENCH_H100 + ", 1088x1920x481"),
)

BASIS = (
    "bf16 transformer passes fitted to H100 80GB measurements (2026-11-24 and the LTX.md table) and one H200 "
    "stage-2 pass (2026-11-30), random LTX-2.3-shaped weights; whole-plan figures are EXTRAPOLATED from that fit"
)


@lru_cache(maxsize=1)
def forward_coefficients() -> tuple[float, float, float]:
    """(c₀, c₁, c₂) of ``forward(T) = c₀ + c₁·T + c₂·T²``, least squares in relative error over ``FORWARD_POINTS``."""
    tokens = np.array([p.video_tokens for p in FORWARD_POINTS], dtype=np.float64)
    seconds = np.array([p.seconds for p in FORWARD_POINTS], dtype=np.float64)
    design = np.stack([np.ones_like(tokens), tokens, tokens**2], axis=1) / seconds[:, None]
    coef, *_ = np.linalg.lstsq(design, np.ones_like(seconds), rcond=None)
    return float(coef[0]), float(coef[1]), float(coef[2])


@lru_cache(maxsize=1)
def rest_seconds_per_pixel_frame() -> float:
    pixels = np.array([p.video_tokens for p in REST_POINTS], dtype=np.float64)
    seconds = np.array([p.seconds for p in REST_POINTS], dtype=np.float64)
    return float(pixels @ seconds / (pixels @ pixels))


def forward_seconds(video_tokens: int) -> float:
    c0, c1, c2 = forward_coefficients()
    return c0 + c1 * video_tokens + c2 * video_tokens**2


def video_tokens(width: int, height: int, num_frames: int, *, temporal: int = 8, spatial: int = 32, keyframes: int = 0) -> int:
    """Video tokens of one pass (patch size 1): latent frames × latent height × latent width, appended keyframe latents included."""
    return ((num_frames - 1) // temporal + 1 + keyframes) * (height // spatial) * (width // spatial)


def stage2_forward_seconds(recipe: "LTX2Recipe", width: int, height: int, num_frames: int) -> float:
    """One stage-2 pass: over the whole latent, or one forward per spatial tile (each repeats the fixed cost and the
    audio stream; overlaps are computed twice). The per-tile sum is this fit's extrapolation, not yet measured."""
    shape = dict(temporal=recipe.temporal, spatial=recipe.spatial, keyframes=recipe.keyframes)
    if not recipe.stage2_tile_px:
        return forward_seconds(video_tokens(width, height, num_frames, **shape))
    from generators.ltx2_tiles import Stage2Tiling

    tiling = Stage2Tiling(recipe.stage2_tile_px, recipe.stage2_tile_overlap_px)
    frames = (num_frames - 1) // recipe.temporal + 1 + recipe.keyframes
    tiles = tiling.tile_tokens(height // recipe.spatial, width // recipe.spatial, frames, recipe.spatial)
    return sum(forward_seconds(t) for t in tiles)


@dataclass(frozen=True)
class LTX2Recipe:
    """The parts of ``LTX2Options`` that set the work of one segment."""

    two_stage: bool = True
    stage1_steps: int = DISTILLED_STAGE1_STEPS
    passes_per_step: int = 1
    keyframes: int = 0  # appended keyframe latent frames (the identity anchor)
    unfused_lora: bool = False
    stage2_tile_px: int = 0  # ltx2_tiles: stage 2 per spatial tile; 0 = one pass over the whole latent
    stage2_tile_overlap_px: int = 64
    temporal: int = 8
    spatial: int = 32

    @classmethod
    def from_options(cls, options) -> "LTX2Recipe":
        from generators.ltx2_guidance import VideoGuidance

        from generators.ltx2_official import resolved_variant

        distilled = resolved_variant(options) == "distilled"
        passes = 1
        if not distilled:
            passes = VideoGuidance(
                guidance_scale=options.guidance_scale, stg_scale=options.stg_scale, modality_scale=options.modality_scale
            ).passes_per_step
        two_stage = getattr(options, "stage2", "distilled") != "none"
        lora = bool(getattr(options, "stage2_lora", None)) and two_stage and getattr(options, "stage2_lora_mode", "unfused") == "unfused"
        return cls(
            two_stage=two_stage,
            stage1_steps=DISTILLED_STAGE1_STEPS if distilled else int(options.stage1_steps),
            passes_per_step=passes,
            keyframes=1 if getattr(options, "identity_anchor_strength", 0.0) > 0 else 0,
            unfused_lora=lora,
            stage2_tile_px=int(getattr(options, "stage2_tile_px", 0) or 0),
            stage2_tile_overlap_px=int(getattr(options, "stage2_tile_overlap_px", 64)),
        )

    def describe(self) -> str:
        stage1 = f"stage 1 {self.stage1_steps} steps × {self.passes_per_step} pass{'es' if self.passes_per_step > 1 else ''}"
        tiles = f" in {self.stage2_tile_px}px tiles" if self.stage2_tile_px else ""
        return stage1 + (f", stage 2 {STAGE2_STEPS} steps{tiles}" + (" (+unfused LoRA)" if self.unfused_lora else "") if self.two_stage else ", one stage")


class LTX2CostModel(CostModel):
    unit = "GPU-s"

    def __init__(self, recipe: LTX2Recipe):
        self.recipe = recipe

    @property
    def basis(self) -> str:
        return f"{self.recipe.describe()}; {BASIS}"

    def segment_cost(self, *, width: int, height: int, num_frames: int, fps: Fraction | None = None) -> SegmentCost:
        r = self.recipe
        shape = dict(temporal=r.temporal, spatial=r.spatial, keyframes=r.keyframes)
        if r.two_stage:
            stage1 = r.stage1_steps * r.passes_per_step * forward_seconds(video_tokens(width // 2, height // 2, num_frames, **shape))
            t2 = video_tokens(width, height, num_frames, **shape)
            _c0, c1, _c2 = forward_coefficients()
            lora = UNFUSED_LORA_LINEAR_OVERHEAD * c1 * t2 if r.unfused_lora else 0.0
            stage2 = STAGE2_STEPS * (stage2_forward_seconds(r, width, height, num_frames) + lora)
        else:
            stage1 = r.stage1_steps * r.passes_per_step * forward_seconds(video_tokens(width, height, num_frames, **shape))
            stage2 = 0.0
        rest = rest_seconds_per_pixel_frame() * width * height * num_frames
        parts = {"stage 1": stage1, "stage 2": stage2, "decode+io": rest}
        return SegmentCost(total=stage1 + stage2 + rest, parts=parts)
