"""The ``plan`` section of ``ltx2_gpu_bench.py``: what the bundled 3-minute explainer costs on the ltx2 backend.

The explainer (``configs/demo.yaml``: its voiceover, its segmenter settings) is
planned by the project's own planner as an ``ltx2`` run would plan it, per
generation size and recipe. Every segment's generated length (context frames
included, rounded to the 8k+1 grid) is then priced from per-pass times
measured in this run at that length:

- one segment per distinct length (``--plan-max-lengths`` picks that many,
  spread over the range; the others are INTERPOLATED by a quadratic fit in
  video tokens through the measured ones), with stage 1 = one unguided step
  (one pass at half size) and stage 2 = its 3 distilled steps (3 passes);
- a recipe's segment = its stage-1 passes × the measured stage-1 pass + the 3
  measured stage-2 passes + everything else the segment measured (conditioning
  encode, upsample, decode, writing). Full step counts are EXTRAPOLATED from
  the per-pass times; so is the whole plan's wall time, which adds the
  measured model load and prompt encoding once.

It prints GPU-seconds per output second and the 3-minute video's wall time per
size and recipe, and the cost model's figure (``generators.ltx2_cost``) beside
it, so the model can be re-calibrated from these numbers.
"""

from __future__ import annotations

import time
from fractions import Fraction
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RECIPES = {"distilled": dict(model_variant="distilled"), "dev": dict(model_variant="dev", stage1_steps=30)}
DEV_PASSES = 4  # cond, CFG, STG, modality
STAGE2_PASSES = 3  # the distilled stage-2 steps, one unguided pass each


def demo_plans(model_dir: Path, sizes: list[tuple[int, int]], work: Path, *, tiny: bool) -> dict:
    """The explainer's plan per output size and recipe, as ``longtake plan`` makes it for the ltx2 backend."""
    from orchestrator.config import LTX2Options, load_project
    from orchestrator.graph import RunGraph

    project = load_project(ROOT / "configs" / "demo.yaml")
    segmenter = project.segmenter
    if tiny:
        # The tiny model is priced on passes of a few frames: plan ~1.5-s segments (cuts mostly forced; a smoke test).
        segmenter = segmenter.model_copy(update={"vad": "energy", "max_segment_s": 2.0, "min_segment_s": 0.5, "target_segment_s": 1.5, "context_frames": 5})
    plans = {}
    for width, height in sizes:
        for recipe, opts in RECIPES.items():
            proj = project.model_copy(update={
                "workdir": work / "demo-plan", "segmenter": segmenter,
                "video": project.video.model_copy(update={"width": width, "height": height}),
                "generator": LTX2Options(model=str(model_dir), **opts),
            })  # fmt: skip
            graph = RunGraph(proj)
            plan = graph.run_plan()
            estimate = graph.cost_model().plan_cost(plan)
            plans[f"{plan.width}x{plan.height}/{recipe}"] = {
                "size": [plan.width, plan.height], "recipe": recipe, "fps": str(plan.fps), "total_frames": plan.total_frames,
                "gen_frames": [s.gen_frames for s in plan.segments], "context_frames": graph.context_frames,
                "target": graph.target_choice().reason, "model_estimate_gpu_s": estimate.total,
            }  # fmt: skip
    return plans


def pick_lengths(lengths: list[int], count: int) -> list[int]:
    """``count`` lengths spread over the sorted distinct ``lengths`` (all of them when count ≤ 0 or enough)."""
    distinct = sorted(set(lengths))
    if count <= 0 or count >= len(distinct):
        return distinct
    index = np.unique(np.round(np.linspace(0, len(distinct) - 1, max(count, 2))).astype(int))
    return [distinct[i] for i in index]


def measure_lengths(gen, make_request, *, width: int, height: int, lengths: list[int], context_frames: int, work: Path, log, out: dict | None = None, on_row=None,
                    timer=None) -> dict:  # fmt: skip
    """Per-pass times at each length with a loaded generator running unguided stage-1 steps + the 3 stage-2 steps.

    With a ``timer`` (the GPU bench's ``ModelTimer``, attached to ``gen.pipeline``) and two or more stage-1 steps, the
    stage-1 pass is the *last* stage-1 transformer forward, timed alone; what stage 1 spent beyond its passes (the
    first forward at a new shape, latent preparation: paid once per segment, not per step) goes into ``rest_s``.
    Without one, the whole stage counts as one pass and pricing 8 or 120 passes multiplies those one-time costs: a
    704×1280 dev segment timed whole took 68.5 s (0.489 s per forward) where such pricing said 121.6 s (0.93 s at that
    shape, first seen in that segment; 0.66 s at 265 frames, a shape the warm-up had run).

    A first segment at the longest length is run and discarded, so one-time warm-ups are not billed to a length.
    Rows go into ``out`` as they are measured and ``on_row()`` is called after each, so a run stopped at its time
    limit keeps the lengths it finished.
    """
    out = {} if out is None else out
    rng = np.random.RandomState(0)
    context = rng.randint(0, 256, (context_frames, height, width, 3)).astype(np.uint8)
    # The warm-up runs at the longest length: a compiled block graph first built for shorter segments guards on 32-bit
    # indexing and compiles again when a longer one outgrows it (seen at 265 frames), which would be billed to that row.
    for index, frames in enumerate([max(lengths), *lengths]):
        req = make_request(index, width=width, height=height, num_frames=frames, fps=Fraction(24), context=context,
                           out_dir=work / f"plan-{width}x{height}-{frames}-{index}", context_frames=context_frames)  # fmt: skip
        gen.encode_prompts([req.prompt])
        if timer is not None:
            timer.reset()
        t = time.perf_counter()
        res = gen.generate(req)
        wall = time.perf_counter() - t
        st = res.timings_s
        forwards = timer.durations.get("transformer", []) if timer is not None else []
        stage1_forwards = len(forwards) - STAGE2_PASSES
        timed_alone = stage1_forwards >= 2
        if timed_alone:
            stage1_pass = forwards[stage1_forwards - 1]
            stage1_once = st["stage1"] - stage1_forwards * stage1_pass
        else:
            stage1_forwards, stage1_pass, stage1_once = 1, st["stage1"], 0.0
        row = {"stage1_pass_s": stage1_pass, "stage1_once_s": stage1_once, "stage1_pass_timed_alone": timed_alone,
               "stage2_pass_s": st["stage2"] / STAGE2_PASSES, "rest_s": wall - stage1_forwards * stage1_pass - st["stage2"], "wall_s": wall}  # fmt: skip
        if index == 0:
            log(f"  [plan {width}x{height}] warm-up at {frames} frames: {wall:.2f} s (discarded)")
            continue
        out[frames] = row
        if on_row is not None:
            on_row()
        log(f"  [plan {width}x{height}] {frames} frames: stage-1 pass {row['stage1_pass_s']:.2f} s, stage-2 pass "
            f"{row['stage2_pass_s']:.2f} s, rest {row['rest_s']:.2f} s")  # fmt: skip
    return out


def _tokens(width: int, height: int, frames: int, temporal: int, spatial: int) -> int:
    return ((frames - 1) // temporal + 1) * (height // spatial) * (width // spatial)


def _fit_at(x: list[float], y: list[float], x_new: float, degree: int) -> float:
    return float(np.polyval(np.polyfit(x, y, min(degree, len(x) - 1)), x_new))


def per_length(measured: dict, frames: int, *, width: int, height: int, temporal: int, spatial: int) -> tuple[dict, bool]:
    """Measured figures at ``frames``, or INTERPOLATED from the measured lengths (quadratic in tokens; rest linear in frames)."""
    if frames in measured:
        return measured[frames], False
    keys = sorted(measured)
    half = [_tokens(width // 2, height // 2, f, temporal, spatial) for f in keys]
    full = [_tokens(width, height, f, temporal, spatial) for f in keys]
    row = {
        "stage1_pass_s": _fit_at(half, [measured[f]["stage1_pass_s"] for f in keys], _tokens(width // 2, height // 2, frames, temporal, spatial), 2),
        "stage2_pass_s": _fit_at(full, [measured[f]["stage2_pass_s"] for f in keys], _tokens(width, height, frames, temporal, spatial), 2),
        "rest_s": _fit_at(keys, [measured[f]["rest_s"] for f in keys], frames, 1),
    }
    return row, True


def price_plan(plan: dict, measured: dict, *, temporal: int, spatial: int, fixed_s: float) -> dict:
    """A recipe's segments priced from the per-pass times; totals, per output second and the whole video's wall."""
    width, height = plan["size"]
    recipe = plan["recipe"]
    stage1_passes = 8 if recipe == "distilled" else RECIPES["dev"]["stage1_steps"] * DEV_PASSES
    total = 0.0
    interpolated = 0
    for frames in plan["gen_frames"]:
        row, interp = per_length(measured, frames, width=width, height=height, temporal=temporal, spatial=spatial)
        interpolated += interp
        total += stage1_passes * row["stage1_pass_s"] + STAGE2_PASSES * row["stage2_pass_s"] + row["rest_s"]
    output_s = plan["total_frames"] / float(Fraction(plan["fps"]))
    return {
        "segments_gpu_s": total, "per_output_s": total / output_s, "output_s": output_s, "wall_s": total + fixed_s,
        "segments": len(plan["gen_frames"]), "interpolated_segments": interpolated, "stage1_passes": stage1_passes,
    }  # fmt: skip


def summarize_plan(section: dict) -> list[str]:
    """The report lines of the plan section (from the saved JSON)."""
    out = [
        "",
        "The bundled explainer (configs/demo.yaml), planned for the ltx2 backend and priced from per-pass times measured "
        "at each segment length in this run (stage-1 = the second of 2 unguided passes at half size, timed alone, stage-2 = 3 passes, rest = "
        "conditioning, upsample, decode, writing, and stage 1's once-per-segment costs where the pass was timed alone). Full recipes (distilled: 8 passes; dev: 30 steps x 4 guidance passes) "
        "are EXTRAPOLATED from those passes; lengths not measured are INTERPOLATED (counted per row); the 3-minute wall "
        f"adds model load + prompt encoding once ({section['fixed_s']:.1f} s, measured).",
    ]
    for key, row in section["priced"].items():
        plan = section["plans"][key]
        model = plan["model_estimate_gpu_s"]
        interp = f" ({row['interpolated_segments']} segments at INTERPOLATED lengths)" if row["interpolated_segments"] else ""
        out.append(
            f"  {key}: {row['segments']} segments, {row['output_s']:.1f} s of video: EXTRAPOLATED {row['segments_gpu_s']:.0f} GPU-s = "
            f"{row['per_output_s']:.2f} GPU-s per output second, 3-minute wall {row['wall_s'] / 60:.1f} min{interp}; "
            f"cost model {model:.0f} GPU-s (x{row['segments_gpu_s'] / model:.2f} measured/model)"
        )
        out.append(f"    {plan['target']}")
    return out
