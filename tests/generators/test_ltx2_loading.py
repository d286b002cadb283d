"""The model folder: checks that fail before any segment starts, identity, memory estimates, the frame grid."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from generators.ltx2 import LTX2Generator, vae_compression_from_config
from generators.ltx2_loading import (
    GiB,
    ComponentInfo,
    ModelInfo,
    check_fits,
    estimate_memory,
    inspect_model,
    safetensors_num_parameters,
)
from orchestrator.config import LTX2Options
from orchestrator.errors import GeneratorError
from segmenters.plan import FrameGrid
from tests.generators.tiny_ltx2 import build_tiny_ltx2


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return build_tiny_ltx2(tmp_path_factory.mktemp("ltx2") / "model")


@pytest.fixture
def model_copy(tiny_model, tmp_path) -> Path:
    """A private copy a test may damage."""
    return Path(shutil.copytree(tiny_model, tmp_path / "model"))


def options(model: Path, **kw) -> LTX2Options:
    return LTX2Options(**{"model": str(model), "device": "cpu", "dtype": "float32", "stage1_steps": 2, "stg_blocks": [1], **kw})


# ----------------------------------------------------------------------------------- frame grid


def test_grid_comes_from_the_vae_config(tiny_model):
    assert LTX2Generator.grid_for(options(tiny_model)) == FrameGrid(frame_grid=4, spatial_multiple=8)
    assert LTX2Generator.grid_for(options(tiny_model, stage2="none")) == FrameGrid(frame_grid=4, spatial_multiple=4)
    # Without a local folder: LTX-2.3's own ratios.
    assert vae_compression_from_config("diffusers/LTX-2.3-Diffusers") == (8, 32)
    assert LTX2Generator.grid_for(LTX2Options()) == FrameGrid(frame_grid=8, spatial_multiple=64)


def test_grid_agrees_with_the_loaded_vae(tiny_model):
    gen = LTX2Generator(options(tiny_model))
    gen.load()
    grid = gen.grid_for(gen.options)
    assert gen.pipeline.vae_temporal_compression_ratio == grid.frame_grid
    assert gen.pipeline.vae_spatial_compression_ratio * 2 == grid.spatial_multiple


# ----------------------------------------------------------------------------------- identity


def test_model_identity_is_stable_and_names_what_changes_output(tiny_model, model_copy):
    a = LTX2Generator(options(tiny_model)).model_identity()
    assert a == LTX2Generator(options(tiny_model)).model_identity()
    assert a.startswith("ltx2:")
    # Placement does not change the frames; guidance and precision do.
    assert LTX2Generator(options(tiny_model, offload="model")).model_identity() == a
    assert LTX2Generator(options(tiny_model, guidance_scale=4.0)).model_identity() != a
    assert LTX2Generator(options(tiny_model, dtype="bfloat16")).model_identity() != a
    assert LTX2Generator(options(tiny_model, model_variant="distilled")).model_identity() != a
    # Same content in another folder: same identity; other weights: another identity.
    assert LTX2Generator(options(model_copy)).model_identity() == a
    weights = next((model_copy / "transformer").glob("*.safetensors"))
    with open(weights, "ab") as fh:
        fh.write(b"\0" * 64)
    assert LTX2Generator(options(model_copy)).model_identity() != a


def test_text_identity_ignores_generation_options(tiny_model):
    a = LTX2Generator(options(tiny_model)).text_identity()
    assert LTX2Generator(options(tiny_model, guidance_scale=5.0, stage1_steps=9)).text_identity() == a
    assert LTX2Generator(options(tiny_model, dtype="bfloat16")).text_identity() != a


# ----------------------------------------------------------------------------------- clear errors


def test_missing_folder(tmp_path):
    with pytest.raises(GeneratorError, match="model folder not found.*set generator.model"):
        LTX2Generator(options(tmp_path / "nowhere")).load()


@pytest.mark.parametrize("component", ["transformer", "vae", "audio_vae", "connectors", "text_encoder", "tokenizer", "scheduler"])
def test_missing_component_is_named(model_copy, component):
    shutil.rmtree(model_copy / component)
    with pytest.raises(GeneratorError, match=f"missing the `{component}` component"):
        LTX2Generator(options(model_copy)).load()


def test_truncated_weights_are_reported_as_incomplete(model_copy):
    weights = next((model_copy / "transformer").glob("*.safetensors"))
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(GeneratorError, match=r"incomplete .*re-download"):
        LTX2Generator(options(model_copy)).load()


def test_missing_shard_is_named(model_copy):
    folder = model_copy / "vae"
    weights = next(folder.glob("*.safetensors"))
    (folder / "diffusion_pytorch_model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"a": weights.name, "b": "diffusion_pytorch_model-00002-of-00002.safetensors"}})
    )
    with pytest.raises(GeneratorError, match="`vae` is incomplete: shard diffusion_pytorch_model-00002-of-00002.safetensors"):
        LTX2Generator(options(model_copy)).load()


def test_component_without_weights(model_copy):
    for path in (model_copy / "audio_vae").glob("*.safetensors"):
        path.unlink()
    with pytest.raises(GeneratorError, match="`audio_vae` has no weights"):
        LTX2Generator(options(model_copy)).load()


def test_wrong_pipeline_type(model_copy):
    index = json.loads((model_copy / "model_index.json").read_text())
    index["_class_name"] = "FluxPipeline"
    (model_copy / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(GeneratorError, match="wrong model type: .* holds a FluxPipeline"):
        LTX2Generator(options(model_copy)).model_identity()


def test_wrong_component_type(model_copy):
    cfg_path = model_copy / "transformer" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["_class_name"] = "LTXVideoTransformer3DModel"  # LTX-Video 0.9, not LTX-2
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(GeneratorError, match="wrong model type: .*`transformer` must be LTX2VideoTransformer3DModel"):
        LTX2Generator(options(model_copy)).load()


def test_wrong_text_encoder_type(model_copy):
    cfg_path = model_copy / "text_encoder" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["model_type"] = "t5"
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(GeneratorError, match="wrong model type: the text encoder .* is `t5`"):
        LTX2Generator(options(model_copy)).load()


def test_two_stage_without_upsampler_says_how_to_fix(model_copy):
    shutil.rmtree(model_copy / "latent_upsampler")
    with pytest.raises(GeneratorError, match="set generator.upsampler .* or set generator.stage2: none"):
        LTX2Generator(options(model_copy)).load()
    # One-stage needs no upsampler.
    LTX2Generator(options(model_copy, stage2="none")).model_identity()


def test_explicit_upsampler_folder(tiny_model, tmp_path):
    up = Path(shutil.copytree(tiny_model / "latent_upsampler", tmp_path / "upsampler-pipeline" / "latent_upsampler"))
    gen = LTX2Generator(options(tiny_model, upsampler=str(up.parent)))
    assert gen.model_info().upsampler.path == up


def test_cuda_without_gpu(tiny_model):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    gen = LTX2Generator(LTX2Options(model=str(tiny_model), device="cuda", stg_blocks=[1]))
    with pytest.raises(GeneratorError, match="sees no CUDA GPU.*generator.device: cpu"):
        gen.load()
    with pytest.raises(GeneratorError, match="no CUDA GPU"):
        gen.preflight(32, 32, 9)


def test_stg_block_out_of_range(tiny_model):
    with pytest.raises(GeneratorError, match=r"stg_blocks \[28\] are out of range for this 2-block transformer"):
        LTX2Generator(LTX2Options(model=str(tiny_model), device="cpu")).load()


def test_preflight_checks_the_grid(tiny_model):
    gen = LTX2Generator(options(tiny_model))
    with pytest.raises(GeneratorError, match="num_frames must be 4k\\+1"):
        gen.preflight(32, 32, 10)
    with pytest.raises(GeneratorError, match="divisible by 8, got 36×32"):
        gen.preflight(36, 32, 9)
    gen.preflight(40, 32, 9)


def test_safetensors_parameter_count(tiny_model):
    from safetensors.torch import load_file

    path = next((tiny_model / "transformer").glob("*.safetensors"))
    expected = sum(t.numel() for t in load_file(str(path)).values())
    assert safetensors_num_parameters(path) == expected
    info = inspect_model(tiny_model, upsampler=tiny_model / "latent_upsampler")
    assert info["transformer"].num_parameters == expected


# ----------------------------------------------------------------------------------- memory


def ltx23_info() -> ModelInfo:
    """An LTX-2.3-sized ModelInfo (parameter counts only), as inspect_model would report it."""

    def comp(name, params, cfg=None):
        return ComponentInfo(name, Path(name), name, cfg or {}, (), int(params))

    tcfg = {"num_attention_heads": 32, "attention_head_dim": 128, "num_layers": 48}
    components = {
        "transformer": comp("transformer", 19.0e9, tcfg),
        "vae": comp("vae", 0.7e9),
        "audio_vae": comp("audio_vae", 0.05e9),
        "connectors": comp("connectors", 3.5e9),
        "text_encoder": comp("text_encoder", 12.2e9),
        "tokenizer": comp("tokenizer", 0),
        "scheduler": comp("scheduler", 0),
    }
    return ModelInfo(Path("ltx-2.3"), components, upsampler=comp("latent_upsampler", 0.5e9))


SHAPE = dict(dtype="bfloat16", two_stage=True, spatial=32, temporal=8)


def test_memory_estimate_matches_measured_h100_peaks():
    # benchmarks/results/ltx2_gpu_h100.txt: peak allocated per segment on an H100, LTX-2.3 shapes, bf16, plus what the
    # default reference_release 1.2.0 adds (per-token cross-attention modulation): +3.3 GiB at 53,680 tokens measured on
    # an H200 (benchmarks/results/ltx2_parity_step_h200.txt), scaled by the token count at 124,440 (+7.7 GiB).
    big = estimate_memory(ltx23_info(), width=1088, height=1920, num_frames=481, offload="none", fp8_storage=False, **SHAPE)
    assert abs(big.peak_bytes - (73.4 + 7.7) * GiB) < 3 * GiB
    small = estimate_memory(ltx23_info(), width=704, height=1280, num_frames=481, offload="none", fp8_storage=False, **SHAPE)
    assert abs(small.peak_bytes - (53.2 + 3.3) * GiB) < 3 * GiB
    low = estimate_memory(ltx23_info(), width=704, height=1280, num_frames=481, offload="sequential", fp8_storage=True, **SHAPE)
    assert abs(low.peak_bytes - (18.9 + 3.3) * GiB) < 3 * GiB and low.peak_bytes < 24 * GiB


def test_not_enough_memory_names_a_setting_that_fits():
    info = ltx23_info()
    kw = dict(width=1088, height=1920, num_frames=481, **SHAPE)
    # reference_release 1.2.0's per-token modulation puts this shape just past an 80 GB card's 79 GiB.
    check_fits(info, free_bytes=85 * GiB, offload="none", fp8_storage=False, **kw)
    with pytest.raises(GeneratorError, match=r"not enough GPU memory for 1088×1920, 481 frames.*set generator.offload: sequential"):
        check_fits(info, free_bytes=50 * GiB, offload="none", fp8_storage=False, **kw)
    # fp8 storage is named only when streaming alone is not enough.
    streamed = estimate_memory(info, offload="sequential", fp8_storage=False, **kw).peak_bytes
    streamed_fp8 = estimate_memory(info, offload="sequential", fp8_storage=True, **kw).peak_bytes
    assert streamed_fp8 < streamed
    with pytest.raises(GeneratorError, match=r"set generator.offload: sequential and generator.fp8_storage: true"):
        check_fits(info, free_bytes=(streamed + streamed_fp8) // 2, offload="none", fp8_storage=False, **kw)
    with pytest.raises(GeneratorError, match="smaller size or shorter segments"):
        check_fits(info, free_bytes=24 * GiB, offload="none", fp8_storage=False, **kw)
