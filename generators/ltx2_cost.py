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
- ``lora``: the rank-384 distilled LoRA run unfused through PEFT adds 18 %
  of the (bf16) linear term to each stage-2 pass: the fit to
  ``UNFUSED_LORA_POINT``, where it added 7.8 % to stage 2 at 1088×1920×241
  on an H200. Fused (``stage2_lora_mode: fused``) it costs what no LoRA costs
  (37.8 s against 38.1 s for that segment), so it adds nothing then.
- ``k_rest``: conditioning encode, upsample, VAE decode and clip writing per
  output pixel-frame, fitted to ``REST_POINTS``.

Speed options (``generators.ltx2_speed``):

- ``fp8_linears: on`` + ``compile: blocks`` multiplies the linear term of
  every pass by ``speed_set_linear_factor("fp8_linears+compile")`` (≈ 0.60), a one-parameter fit
  to ``FP8_COMPILE_POINTS``; the constant and the attention term stay. That
  one factor reproduces the measured pass ratios of both stages (0.68–0.71 at
  stage 1's 8k–16k tokens, where the linears are ~75 % of a pass; 0.78–0.83 at
  stage 2's 33k–63k tokens, where attention weighs more) within ±0.025, while
  one constant per stage would miss by up to 0.037. The unfused LoRA's extra
  matmuls stay bf16, so its overhead is not scaled.
- ``compile: blocks`` alone and ``fp8_linears: on`` alone are priced the same
  way, each with its own factor fitted to ``COMPILE_POINTS`` / ``FP8_POINTS``
  (one pass per stage at 1088×1920×241, against bf16 in the same process):
  compile alone ≈ 0.78 (it fuses the norms, modulation and activations around
  the bf16 matmuls), fp8 alone ≈ 1.12 (> 1: without compile the per-row
  activation quantisation runs as separate kernels and costs more than the
  fp8 matmuls save).
- ``stage2_tile_px``: each stage-2 pass is priced as one ``forward`` per
  spatial tile (the constant and the audio stream repeat per tile, overlaps
  count twice). That per-tile sum, an extrapolation of the untiled fit, was
  checked against ``TILE_CHECK_POINTS``: 1088-px tiles at 1088×1920×241 on an
  H200, within 2 % with and without fp8+compile (``test_ltx2_cost.py`` holds
  it to 5 %).
- ``SEGMENT_CHECK_POINTS`` are whole segments timed with all their stage-1
  steps: a 704×1280, 201-frame dev segment (30 steps × 4 passes, 5,720-token
  stage-1 passes, below every fitted point) came within 0.2 % of the model.
- Compilation is a one-time cost per machine (on a cold Inductor cache), not
  a per-second one: ``LTX2CostModel.one_time_costs`` gives it apart, from
  ``COMPILE_WARMUP_POINTS`` (the first segment's wall minus a warm one's).

All calibration points use random weights of LTX-2.3's shapes (which cost what
the real ones do), diffusers 0.42.1. Every figure for a shape or recipe not in
the tables is an extrapolation of this fit.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

import numpy as np

from generators.cost import CostModel, SegmentCost

STAGE2_STEPS = 3  # the distilled sigmas [0.909375, 0.725, 0.421875] → 0
DISTILLED_STAGE1_STEPS = 8


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


@dataclass(frozen=True)
class SpeedupPoint:
    """One transformer pass timed in bf16 and with a speed option set, same shape, same card."""

    video_tokens: int
    bf16_s: float
    option_s: float
    card: str
    date: str
    source: str

    @property
    def ratio(self) -> float:
        return self.option_s / self.bf16_s


_FP8_OPT = "benchmarks/results/ltx2_gpu_h200_fp8_2026-11-30.json (bf16 and fp8+compile in one process)"
_FP8_PLAN = "benchmarks/results/ltx2_gpu_h200_plan_fp8_2026-11-30.json against the bf16 ltx2_gpu_h200_plan_2026-11-30.json"
# fp8_linears: on + compile: blocks (fp8_edge_blocks_bf16: 1, attention: auto), one unguided pass per stage, warm.
FP8_COMPILE_POINTS: tuple[SpeedupPoint, ...] = (
    SpeedupPoint(8_160, 0.71, 0.4826, "H200", "2026-11-30", _FP8_PLAN + ", stage 1 of 1088x1920x121"),
    SpeedupPoint(13_260, 1.58, 1.0825, "H200", "2026-11-30", _FP8_PLAN + ", stage 1 of 1088x1920x201"),
    SpeedupPoint(15_810, 1.5148, 1.0790, "H200", "2026-11-30", _FP8_OPT + ", stage 1 of 1088x1920x241"),
    SpeedupPoint(32_640, 3.67, 2.8509, "H200", "2026-11-30", _FP8_PLAN + ", stage 2 of 1088x1920x121"),
    SpeedupPoint(53_040, 7.59, 6.3281, "H200", "2026-11-30", _FP8_PLAN + ", stage 2 of 1088x1920x201"),
    SpeedupPoint(63_240, 30.094 / 3, 25.048 / 3, "H200", "2026-11-30", _FP8_OPT + ", stage 2 of 1088x1920x241"),
)
_ALONE = "benchmarks/results/ltx2_gpu_h200_options_alone_2026-11-30.json (bf16 and the option in one process)"
# compile: blocks alone (attention: auto), one unguided stage-1 pass and the 3 stage-2 passes, warm; GPU 1 of the run.
COMPILE_POINTS: tuple[SpeedupPoint, ...] = (
    SpeedupPoint(15_810, 1.5229, 1.2755, "H200", "2026-11-30", _ALONE + ", compile, stage 1 of 1088x1920x241"),
    SpeedupPoint(63_240, 30.235 / 3, 27.336 / 3, "H200", "2026-11-30", _ALONE + ", compile, stage 2 of 1088x1920x241"),
)
# fp8_linears: on alone (fp8_edge_blocks_bf16: 1, no compile), the same shape; GPU 0 of the same run.
FP8_POINTS: tuple[SpeedupPoint, ...] = (
    SpeedupPoint(15_810, 1.5230, 1.6611, "H200", "2026-11-30", _ALONE + ", fp8, stage 1 of 1088x1920x241"),
    SpeedupPoint(63_240, 30.286 / 3, 31.784 / 3, "H200", "2026-11-30", _ALONE + ", fp8, stage 2 of 1088x1920x241"),
)
# Stage 2 of 1088x1920x241 (3 passes, bf16) without the LoRA and with it unfused; fused it took 37.8 s of segment wall
# against 38.1 s without (benchmarks/results/ltx2_gpu_h200_options_lora2_2026-11-30.log).
UNFUSED_LORA_POINT = SpeedupPoint(
    63_240, 29.90, 32.24, "H200", "2026-11-30", "benchmarks/results/ltx2_gpu_h200_options_lora2_2026-11-30.json, stage 2 of 1088x1920x241"
)


_TILES = "benchmarks/results/ltx2_gpu_h200_options_tiles_2026-11-30.json (each against bf16 in one process)"
# Stage 2 (3 passes) of 1088x1920x241 with stage2_tile_px 1088 (overlap 64: 2 tiles of 34x34 latents, 8 rows shared),
# measured; not used by the fit, only to check its per-tile extrapolation: (options, stage-2 seconds).
TILE_CHECK_POINTS: tuple[tuple[dict, float, str], ...] = (
    ({"stage2_tile_px": 1088}, 22.97, _TILES + ", tiles"),
    ({"stage2_tile_px": 1088, "fp8_linears": "on", "compile": "blocks"}, 17.74, _TILES + ", fp8+compile+tiles"),
)

# Whole segments timed end to end with every stage-1 step (not one step extrapolated); not used by the fit, only to
# check it: (options, width, height, frames, measured wall s, measured stage-1 s, source).
SEGMENT_CHECK_POINTS: tuple[tuple[dict, int, int, int, float, float, str], ...] = (
    ({"stage1_steps": 30}, 704, 1280, 201, 68.48, 58.67,
     "benchmarks/results/ltx2_gpu_h200_dev30_704_2026-11-30.json, the second (warm, tail-chained) dev segment, 30 guided steps"),
)  # fmt: skip


@dataclass(frozen=True)
class WarmupPoint:
    """The first segment's wall on a cold Inductor cache and a warm segment's, same shape and options."""

    first_s: float
    warm_s: float
    graphs: int
    card: str
    date: str
    source: str

    @property
    def one_time_s(self) -> float:
        return self.first_s - self.warm_s


_WARMUP = "benchmarks/results/ltx2_gpu_h200_fp8_2026-11-30.log, 1088x1920x241, one unguided stage-1 pass + 3 stage-2 passes"
COMPILE_WARMUP_POINTS: dict[str, WarmupPoint] = {
    "fp8_linears+compile": WarmupPoint(175.6, 32.5, 6, "H200", "2026-11-30", _WARMUP),
    # compile alone, cold cache, while the other GPU of the host ran a benchmark (their 32 CPU cores shared)
    "compile": WarmupPoint(160.8, 34.8, 4, "H200", "2026-11-30", "benchmarks/results/ltx2_gpu_h200_options_alone_2026-11-30.log, 1088x1920x241"),
}


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


def forward_seconds(video_tokens: int, *, linear_factor: float = 1.0) -> float:
    """One pass in bf16, or with a speed option that scales the linear layers' term by ``linear_factor``."""
    c0, c1, c2 = forward_coefficients()
    return c0 + linear_factor * c1 * video_tokens + c2 * video_tokens**2


def _linear_share(tokens: np.ndarray) -> np.ndarray:
    _c0, c1, _c2 = forward_coefficients()
    return c1 * tokens / forward_seconds(tokens)


# The measured speed option sets: name -> the pass ratios their linear factor is fitted to.
SPEED_SET_POINTS: dict[str, tuple[SpeedupPoint, ...]] = {
    "fp8_linears+compile": FP8_COMPILE_POINTS,
    "compile": COMPILE_POINTS,
    "fp8_linears": FP8_POINTS,
}
SPEED_SET_LABELS = {"fp8_linears+compile": "fp8_linears: on + compile: blocks", "compile": "compile: blocks", "fp8_linears": "fp8_linears: on"}


@lru_cache(maxsize=None)
def speed_set_linear_factor(name: str) -> float:
    """k in ``ratio(T) = 1 − (1 − k)·share(T)``, least squares over the set's points (share: the fit's linear term / pass)."""
    points = SPEED_SET_POINTS[name]
    share = _linear_share(np.array([p.video_tokens for p in points], dtype=np.float64))
    saved = 1.0 - np.array([p.ratio for p in points], dtype=np.float64)
    return float(1.0 - share @ saved / (share @ share))


@lru_cache(maxsize=1)
def unfused_lora_linear_overhead() -> float:
    """The unfused LoRA's extra time per stage-2 pass as a fraction of the bf16 fit's linear term, from ``UNFUSED_LORA_POINT``."""
    p = UNFUSED_LORA_POINT
    _c0, c1, _c2 = forward_coefficients()
    return (p.option_s - p.bf16_s) / STAGE2_STEPS / (c1 * p.video_tokens)


def video_tokens(width: int, height: int, num_frames: int, *, temporal: int = 8, spatial: int = 32, keyframes: int = 0) -> int:
    """Video tokens of one pass (patch size 1): latent frames × latent height × latent width, appended keyframe latents included."""
    return ((num_frames - 1) // temporal + 1 + keyframes) * (height // spatial) * (width // spatial)


def stage2_forward_seconds(recipe: "LTX2Recipe", width: int, height: int, num_frames: int) -> float:
    """One stage-2 pass: over the whole latent, or one forward per spatial tile (each repeats the fixed cost and the
    audio stream; overlaps are computed twice). The per-tile sum extrapolates the untiled fit; ``TILE_CHECK_POINTS``
    checks it."""
    shape = dict(temporal=recipe.temporal, spatial=recipe.spatial, keyframes=recipe.keyframes)
    if not recipe.stage2_tile_px:
        return forward_seconds(video_tokens(width, height, num_frames, **shape), linear_factor=recipe.linear_factor)
    from generators.ltx2_tiles import Stage2Tiling

    tiling = Stage2Tiling(recipe.stage2_tile_px, recipe.stage2_tile_overlap_px)
    frames = (num_frames - 1) // recipe.temporal + 1 + recipe.keyframes
    tiles = tiling.tile_tokens(height // recipe.spatial, width // recipe.spatial, frames, recipe.spatial)
    return sum(forward_seconds(t, linear_factor=recipe.linear_factor) for t in tiles)


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
    fp8_linears: str = "off"
    compile: str = "off"

    @property
    def speed_set(self) -> str | None:
        """The measured speed option set this recipe runs (a ``SPEED_SET_POINTS`` name), or None for bf16 pricing.

        ``fp8_linears: emulated`` (a CPU check of the rounding, far slower) is not a speed option and is not priced."""
        fp8, compiled = self.fp8_linears == "on", self.compile == "blocks"
        return {(True, True): "fp8_linears+compile", (False, True): "compile", (True, False): "fp8_linears"}.get((fp8, compiled))

    @property
    def linear_factor(self) -> float:
        return speed_set_linear_factor(self.speed_set) if self.speed_set else 1.0

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
            fp8_linears=str(getattr(options, "fp8_linears", "off")),
            compile=str(getattr(options, "compile", "off")),
        )

    def describe(self) -> str:
        stage1 = f"stage 1 {self.stage1_steps} steps × {self.passes_per_step} pass{'es' if self.passes_per_step > 1 else ''}"
        tiles = f" in {self.stage2_tile_px}px tiles" if self.stage2_tile_px else ""
        text = stage1 + (f", stage 2 {STAGE2_STEPS} steps{tiles}" + (" (+unfused LoRA)" if self.unfused_lora else "") if self.two_stage else ", one stage")
        if self.speed_set:
            points = SPEED_SET_POINTS[self.speed_set]
            return text + (
                f"; {SPEED_SET_LABELS[self.speed_set]}: linear term ×{self.linear_factor:.2f} (fit to {len(points)} {points[0].card} pass "
                f"ratios {min(p.ratio for p in points):.2f}–{max(p.ratio for p in points):.2f}, {points[0].date})"
            )
        return text + ("; fp8_linears: emulated priced as bf16 (a CPU check, far slower)" if self.fp8_linears == "emulated" else "")


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
        k = r.linear_factor
        if r.two_stage:
            stage1 = r.stage1_steps * r.passes_per_step * forward_seconds(video_tokens(width // 2, height // 2, num_frames, **shape), linear_factor=k)
            t2 = video_tokens(width, height, num_frames, **shape)
            _c0, c1, _c2 = forward_coefficients()
            lora = unfused_lora_linear_overhead() * c1 * t2 if r.unfused_lora else 0.0
            stage2 = STAGE2_STEPS * (stage2_forward_seconds(r, width, height, num_frames) + lora)
        else:
            stage1 = r.stage1_steps * r.passes_per_step * forward_seconds(video_tokens(width, height, num_frames, **shape), linear_factor=k)
            stage2 = 0.0
        rest = rest_seconds_per_pixel_frame() * width * height * num_frames
        parts = {"stage 1": stage1, "stage 2": stage2, "decode+io": rest}
        return SegmentCost(total=stage1 + stage2 + rest, parts=parts)

    def _warmup(self) -> tuple[str, WarmupPoint] | None:
        """The measured compile warm-up this recipe pays (its option set's name and point), or None without compile."""
        if self.recipe.compile != "blocks":
            return None
        name = self.recipe.speed_set or "compile"
        return name, COMPILE_WARMUP_POINTS[name]

    def one_time_costs(self) -> dict[str, float]:
        """Compilation on a cold Inductor cache: paid by a machine's first run, then cached (``ltx2_speed.compile_cache_dir``)."""
        warmup = self._warmup()
        return {} if warmup is None else {"compile warm-up": warmup[1].one_time_s}

    @property
    def one_time_basis(self) -> str:
        warmup = self._warmup()
        if warmup is None:
            return ""
        name, p = warmup
        return (
            f"{name}: first segment {p.first_s:.0f} s against {p.warm_s:.1f} s warm on {p.card} ({p.graphs} block graphs, {p.date}); "
            "guided (dev) passes compile more graphs (not measured); paid again after a torch or diffusers upgrade"
        )
