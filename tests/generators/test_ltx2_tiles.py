"""Tiled stage-2 refinement (generators/ltx2_tiles.py) on the tiny model (CPU): exactness, blend weights, bounded error,
ltx-core's tiling semantics, the cost model, config validation, and the report's seam check on a tiled run.

The tiny model's VAE is 4 px per latent: at 96×96 stage 2 is 24×24 latents, so
64 px tiles (16 latents) overlapping by 32 px (8) make 2×2 tiles.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess

import pytest
import torch

from generators.ltx2 import LTX2Generator
from generators.ltx2_cost import LTX2CostModel, LTX2Recipe
from generators.ltx2_speed import latent_rel_error, psnr_db
from generators.ltx2_tiles import Stage2Tiling, blend_weight_sum, ramp_weights, split_axis, token_tiles
from orchestrator.config import LTX2Options
from orchestrator.errors import GeneratorError
from tests.generators.isolated import GPU_BF16, UNGUIDED, baseline_for, compare_isolated, skip_unless_fp8_runs_here
from tests.generators.test_ltx2 import options, request
from stitchers.clip_io import probe_video
from tests.generators.tiny_ltx2 import build_tiny_ltx2

SIDE = 96  # output px; 24 latents at stage 2


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return build_tiny_ltx2(tmp_path_factory.mktemp("ltx2-tiles") / "model")


def run(tiny_model, tmp_path, name, **kw):
    g = LTX2Generator(options(tiny_model, **kw), cache_dir=tmp_path / "cache")
    g.generate(_request(tmp_path / name))
    return g, g.last_output.latents, g.pipeline.decode_to_uint8(g.last_output.latents).cpu()


def _request(out_dir):
    return dataclasses.replace(request(out_dir, seed=11), width=SIDE, height=SIDE, portrait=_portrait())


def _portrait():
    import numpy as np

    rng = np.random.RandomState(0)
    img = np.full((SIDE, SIDE, 3), (40, 60, 90), dtype=np.int64)
    img[30:70, 30:66] = (200, 160, 130)
    return np.clip(img + rng.randint(-10, 10, img.shape), 0, 255).astype(np.uint8)


# ------------------------------------------------------------------------------------------ tiling semantics
@pytest.mark.parametrize("length, size, overlap", [(24, 16, 8), (60, 16, 2), (34, 16, 2), (16, 16, 2), (17, 16, 2), (40, 12, 0)])
def test_split_and_ramps_follow_ltx_core(length, size, overlap):
    video_vae = pytest.importorskip("ltx_core.model.video_vae.video_vae")
    tiling = pytest.importorskip("ltx_core.model.video_vae.tiling")
    theirs = video_vae.split_with_symmetric_overlaps(size, overlap)(length)
    ours = split_axis(length, size, overlap)
    assert [(i.start, i.end, i.left, i.right) for i in ours] == list(zip(theirs.starts, theirs.ends, theirs.left_ramps, theirs.right_ramps))
    for i in ours:
        # ltx-core's latent→pixel decode mask at scale 1: linear ramps that exclude 0 and 1.
        expected = tiling.compute_trapezoidal_mask_1d(i.end - i.start, i.left, i.right, False)
        assert torch.allclose(ramp_weights(i.end - i.start, i.left, i.right), expected, atol=1e-7)


def test_2x2_tiles_cover_every_token_and_their_weights_sum_to_one(tiny_model):
    from diffusers import LTX2VideoTransformer3DModel

    rope = LTX2VideoTransformer3DModel.from_pretrained(tiny_model / "transformer").rope
    coords = rope.prepare_video_coords(1, 3, 24, 24, torch.device("cpu"), fps=24.0)
    keyframe = rope.prepare_video_coords(1, 1, 24, 24, torch.device("cpu"), fps=24.0)  # an appended keyframe's tokens
    coords = torch.cat([coords, keyframe], dim=2)
    tiles = token_tiles(coords, Stage2Tiling(64, 32), spatial_scale=4)
    assert len(tiles) == 4 and all(len(t.index) == 4 * 16 * 16 for t in tiles)  # 3 frames + the keyframe, 16×16 each
    total = blend_weight_sum(tiles, coords.shape[2])
    assert torch.allclose(total, torch.ones_like(total), atol=1e-6)
    assert float(total.min()) > 0.999
    # the overlap really blends: some tokens get weight from 2 or 4 tiles, none from a single tile at less than 1
    counts = torch.zeros(coords.shape[2])
    for t in tiles:
        counts.index_add_(0, t.index, torch.ones(len(t.index)))
    assert set(counts.unique().tolist()) == {1.0, 2.0, 4.0}


# ------------------------------------------------------------------------------------------ on the tiny model
@pytest.fixture(scope="module")
def untiled(tiny_model, tmp_path_factory):
    return run(tiny_model, tmp_path_factory.mktemp("untiled"), "untiled")


def test_one_tile_covering_the_latent_is_exactly_untiled(tiny_model, untiled, tmp_path):
    g, lat, frames = run(tiny_model, tmp_path, "one-tile", stage2_tile_px=128, stage2_tile_overlap_px=32)
    assert g.pipeline.stage2_tiling == Stage2Tiling(128, 32)
    assert torch.equal(lat, untiled[1]) and torch.equal(frames, untiled[2])


def test_2x2_tiles_differ_from_untiled_by_a_bounded_amount(tiny_model, untiled, tmp_path):
    calls = []
    g = LTX2Generator(options(tiny_model, stage2_tile_px=64, stage2_tile_overlap_px=32), cache_dir=tmp_path / "cache")
    g.load()
    handle = g.pipeline.transformer.register_forward_pre_hook(lambda _m, _a, kw: calls.append(kw["hidden_states"].shape[1]), with_kwargs=True)
    g.generate(_request(tmp_path / "tiles"))
    handle.remove()
    lat, frames = g.last_output.latents, g.pipeline.decode_to_uint8(g.last_output.latents).cpu()
    stage1 = g.last_output.stages[0]
    assert torch.equal(stage1.latents, untiled[0].last_output.stages[0].latents), "stage 1 must not be tiled"
    stage2_tokens = g.last_output.stages[1].latents.shape[1]
    tile_calls = [n for n in calls if n < stage2_tokens and n != stage1.latents.shape[1]]
    assert len(tile_calls) == 3 * 4 and set(tile_calls) == {stage2_tokens // 24 // 24 * 16 * 16}  # 3 steps × 4 tiles
    err, psnr = latent_rel_error(untiled[1], lat), psnr_db(untiled[2], frames)
    print(f"tiny CPU quality guard, stage2_tile_px 64/32 (2x2 tiles): latent relative error {err:.2e}, PSNR {psnr:.1f} dB")
    assert 1e-5 < err < 0.25 and psnr > 20


# ------------------------------------------------------------------------------------------ options and cost
def test_tile_options_are_validated_as_config_errors():
    from pydantic import ValidationError

    assert LTX2Options(stage2_tile_px=512).stage2_tile_overlap_px == 64
    for bad in (dict(stage2_tile_px=48), dict(stage2_tile_px=500), dict(stage2_tile_px=512, stage2_tile_overlap_px=512), dict(stage2_tile_px=512, stage2_tile_overlap_px=40)):
        with pytest.raises(ValidationError, match="stage2_tile"):
            LTX2Options(**bad)
    with pytest.raises(GeneratorError):
        Stage2Tiling(64, 64)
    assert Stage2Tiling.from_options(LTX2Options()) is None


def test_cost_model_counts_tokens_per_tile():
    plain = LTX2CostModel(LTX2Recipe())
    tiled = LTX2CostModel(LTX2Recipe(stage2_tile_px=512, stage2_tile_overlap_px=64))
    whole = LTX2CostModel(LTX2Recipe(stage2_tile_px=2048))  # one tile: the same as untiled
    shape = dict(width=1088, height=1920, num_frames=481)
    assert whole.segment_cost(**shape).parts["stage 2"] == pytest.approx(plain.segment_cost(**shape).parts["stage 2"])
    # 34×60 latents → 3×5 tiles of ≤16×16: attention over 15 small tiles is far cheaper than over 124k tokens
    assert tiled.segment_cost(**shape).parts["stage 2"] < 0.6 * plain.segment_cost(**shape).parts["stage 2"]
    assert tiled.segment_cost(**shape).parts["stage 1"] == plain.segment_cost(**shape).parts["stage 1"]
    assert "512px tiles" in tiled.basis
    assert LTX2Recipe.from_options(LTX2Options(stage2_tile_px=512)).stage2_tile_px == 512


# ------------------------------------------------------------------------------------------ the report's seam check
def test_report_flags_no_seam_inside_a_segment_of_a_tiled_run(tmp_path, tiny_model, portrait_png):
    if shutil.which("espeak-ng") is None or shutil.which("sox") is None:
        pytest.skip("espeak-ng and sox are needed (.ci/run installs them)")
    from quality.report import build_report
    from segmenters.plan import Plan
    from tests.generators.test_ltx2_run import ltx2_project
    from tests.orchestrator.conftest import longtake

    vo = tmp_path / "vo"
    vo.mkdir()
    ssml = '<speak>Hello there.<break time="500ms"/>This is a tiny test.</speak>'
    subprocess.run(["espeak-ng", "-m", "-v", "en-us", "-s", "170", "-w", str(vo / "raw.wav"), ssml], check=True)
    subprocess.run(["sox", str(vo / "raw.wav"), str(vo / "vo.wav"), "pad", "0.3", "0.2"], check=True)
    project = ltx2_project(tmp_path, vo / "vo.wav", portrait_png, tiny_model, stage2_tile_px=64, stage2_tile_overlap_px=32)
    text = project.read_text().replace("width: 48", f"width: {SIDE}").replace("height: 64", f"height: {SIDE}")
    project.write_text(text)
    longtake("run", str(project), "--json", check=True, timeout=900)
    plan = Plan.load(next((tmp_path / "project.longtake-work" / "cache" / "plan").glob("*/plan.json")))
    video = tmp_path / "out" / "video.mp4"
    assert probe_video(video, count_frames=False).width == SIDE and len(plan.segments) >= 2
    rep = build_report(video)  # no plan: every frame is a candidate seam
    joins = [s.start_frame for s in plan.segments[1:]]
    print("tiled run: joins", joins, "seam candidates", [(s.frame, round(s.z, 2), s.flagged) for s in rep.seams])
    inside = [s for s in rep.seams if s.flagged and not any(abs(s.frame - j) <= 12 for j in joins)]
    assert inside == [], f"seams flagged inside segments: {inside} (joins at {joins})"


# ------------------------------------------------------------------------------------------ on a GPU (pytest -m gpu)
@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize(
    "name, kw",
    [
        ("one-tile", dict(stage2_tile_px=128, stage2_tile_overlap_px=32)),
        ("2x2-tiles", dict(stage2_tile_px=64, stage2_tile_overlap_px=32)),
        ("fp8+compile+2x2-tiles", dict(stage2_tile_px=64, stage2_tile_overlap_px=32, fp8_linears="on", fp8_edge_blocks_bf16=0, compile="blocks", **UNGUIDED)),
    ],
)
def test_gpu_tiles_against_untiled(tiny_model, tmp_path, name, kw):
    skip_unless_fp8_runs_here(kw)
    got = compare_isolated("tests.generators.test_ltx2_tiles", tiny_model, tmp_path, baseline_for(kw), {**GPU_BF16, **kw})  # a crash fails only this test
    assert got["stage2_tiling"] == [kw["stage2_tile_px"], kw["stage2_tile_overlap_px"]]
    err, psnr = got["latent_rel_error"], got["psnr_db"]
    print(f"GPU quality guard, {name}: latent relative error {err:.2e}, PSNR {psnr:.1f} dB")
    if name == "one-tile":
        # one tile covering the latent gathers every token in order: the same kernels on the same shapes
        assert err == 0.0 and psnr == float("inf")
    else:
        assert err < (0.25 if "fp8" in name else 0.1) and psnr > 18
