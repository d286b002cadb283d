"""Lightricks' single-file LTX-2.3 checkpoints through longtake's production loader (``generator.model: <file>``).

The files are the tiny official-layout ones of ``tiny_ltx_official`` (ltx-core's own classes, random weights);
what longtake loads from them is compared with the ltx-core modules the weights came from.
"""

from __future__ import annotations

import json
import shutil

import pytest

from orchestrator.config import LTX2Options
from orchestrator.errors import GeneratorError

pytestmark = pytest.mark.parity


@pytest.fixture(scope="module")
def official(tmp_path_factory):
    from tests.generators.tiny_ltx_official import build_tiny_ltx_official

    return build_tiny_ltx_official(tmp_path_factory.mktemp("official"), with_distilled=True)


def options(official, **kw) -> LTX2Options:
    base = dict(
        model=str(official.checkpoint), text_encoder=str(official.gemma), upsampler=str(official.upsampler),
        device="cpu", dtype="float32", stage1_steps=2, stg_blocks=[1],
    )  # fmt: skip
    return LTX2Options(**{**base, **kw})


def _save(path, tensors, metadata=None):
    from safetensors.torch import save_file

    save_file(tensors, str(path), metadata=metadata)
    return path


def test_shipped_configs_are_the_released_checkpoints_own_config_in_diffusers_terms():
    from generators import ltx2_official as O

    real = json.loads((O.CONFIG_DIR / "ltx_core_config.json").read_text())
    translated = O.diffusers_configs(real)
    for name in ("transformer", "vae", "audio_vae", "connectors"):
        assert O.shipped_config(name) == json.loads(json.dumps(translated[name]))
    t = O.shipped_config("transformer")
    assert (t["num_layers"], t["num_attention_heads"], t["attention_head_dim"]) == (48, 32, 128)
    assert t["gated_attn"] and t["cross_attn_mod"] and t["perturbed_attn"] and t["rope_type"] == "split"
    vae = O.shipped_config("vae")
    assert (vae["temporal_compression_ratio"], vae["spatial_compression_ratio"]) == (8, 32)


def test_the_planner_reads_the_grid_from_the_single_file(official):
    from generators.ltx2 import LTX2Generator
    from segmenters.plan import FrameGrid

    # The tiny VAE compresses 8x in time and space; two-stage halves stage 1, so sizes are multiples of 16.
    assert LTX2Generator.grid_for(options(official)) == FrameGrid(frame_grid=8, spatial_multiple=16)
    assert LTX2Generator.grid_for(options(official, stage2="none")) == FrameGrid(frame_grid=8, spatial_multiple=8)


def test_every_component_loads_with_the_reference_weights_and_the_vae_decodes_like_ltx_core(official):
    import torch

    from generators import ltx2_loading as L
    from generators.ltx2 import LTX2Generator

    gen = LTX2Generator(options(official))
    info = gen.model_info()
    assert info.kind == "official" and not info.distilled
    pipe = L.build_pipeline(info, dtype="float32", two_stage=True)
    ref = official.transformer.state_dict()
    got = pipe.transformer.state_dict()
    assert torch.equal(got["proj_in.weight"], ref["patchify_proj.weight"])
    assert torch.equal(got["transformer_blocks.1.attn1.to_gate_logits.weight"], ref["transformer_blocks.1.attn1.to_gate_logits.weight"])
    assert torch.equal(got["prompt_adaln.linear.weight"], ref["prompt_adaln_single.linear.weight"])
    assert torch.equal(got["audio_time_embed.linear.weight"], ref["audio_adaln_single.linear.weight"])
    assert torch.equal(pipe.vae.latents_std, official.video_encoder.per_channel_statistics.get_buffer("std-of-means"))
    for name, value in official.spatial_upsampler.state_dict().items():
        assert torch.equal(pipe.latent_upsampler.state_dict()[name], value)

    # The 9-block decoder of LTX-2.3 (diffusers' converter knows 7): decode one latent both ways. ltx-core's decoder
    # un-normalises its input with the latent statistics itself; diffusers' pipeline does that before the decoder.
    torch.manual_seed(0)
    latent = torch.randn(1, 4, 2, 3, 4)
    stats = (-1, 1, 1, 1)
    with torch.no_grad():
        ours = pipe.vae.decoder(latent * pipe.vae.latents_std.view(stats) + pipe.vae.latents_mean.view(stats), None)
        theirs = official.video_decoder(latent)
    assert ours.shape == theirs.shape
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


def test_the_connectors_load_from_the_single_file(official):
    import torch

    from generators import ltx2_official as O
    from generators.ltx2 import LTX2Generator

    info = LTX2Generator(options(official)).model_info()
    connectors = O.load_from_checkpoint("connectors", O.read_header(info.root), info["connectors"].config, dtype=torch.float32)
    ref = official.embeddings_processor.state_dict()
    got = connectors.state_dict()
    assert torch.equal(got["video_text_proj_in.weight"], ref["feature_extractor.video_aggregate_embed.weight"])
    assert torch.equal(got["audio_connector.transformer_blocks.0.attn1.norm_q.weight"], ref["audio_connector.transformer_1d_blocks.0.attn1.q_norm.weight"])
    assert torch.equal(got["video_connector.learnable_registers"], ref["video_connector.learnable_registers"])


def test_the_distilled_checkpoint_is_recognised_and_changes_the_identity(official):
    from generators.ltx2 import LTX2Generator

    dev = LTX2Generator(options(official))
    distilled = LTX2Generator(options(official, model=str(official.distilled)))
    assert not dev.distilled_stage1 and distilled.distilled_stage1
    assert distilled.model_info().distilled
    assert LTX2Generator(options(official, model=str(official.distilled), model_variant="dev")).distilled_stage1 is False
    assert dev.model_identity() != distilled.model_identity()


def test_a_missing_gemma_says_where_to_put_it(official, tmp_path):
    from generators.ltx2 import LTX2Generator

    lonely = tmp_path / official.checkpoint.name
    shutil.copy(official.checkpoint, lonely)
    with pytest.raises(GeneratorError, match=r"generator\.text_encoder is not set.*gemma-3-12b-it-qat-q4_0-unquantized") as err:
        LTX2Generator(options(official, model=str(lonely), text_encoder=None)).model_info()
    assert err.value.exit_code == 2
    with pytest.raises(GeneratorError, match=r"Gemma-3 folder not found: .*nowhere"):
        LTX2Generator(options(official, text_encoder=str(tmp_path / "nowhere"))).model_info()


def test_a_truncated_checkpoint_says_so(official, tmp_path):
    from generators.ltx2 import LTX2Generator

    cut = tmp_path / "ltx-2.3-22b-dev.safetensors"
    cut.write_bytes(official.checkpoint.read_bytes()[: official.checkpoint.stat().st_size // 2])
    with pytest.raises(GeneratorError, match=r"is truncated .* download it again"):
        LTX2Generator(options(official, model=str(cut))).model_info()
    with pytest.raises(GeneratorError, match=r"is truncated"):
        LTX2Generator.grid_for(options(official, model=str(cut)))


def test_an_ltx_2_0_checkpoint_says_which_it_is(tmp_path):
    import torch

    from generators import ltx2_official as O

    path = _save(tmp_path / "ltx-2-19b-dev.safetensors", {
        "model.diffusion_model.transformer_blocks.0.attn1.to_q.weight": torch.zeros(2, 2),
        "model.diffusion_model.caption_projection.linear_1.weight": torch.zeros(2, 2),
        "text_embedding_projection.aggregate_embed.weight": torch.zeros(2, 2),
        "vae.encoder.conv_in.conv.weight": torch.zeros(1),
    })  # fmt: skip
    with pytest.raises(GeneratorError, match=r"is an LTX-2\.0 checkpoint"):
        O.identify(O.read_header(path))


def test_an_ltx_2_5_checkpoint_says_which_it_is(tmp_path):
    import torch

    from generators import ltx2_official as O

    blocks = {"model.diffusion_model.transformer_blocks.0.attn1.to_gate_logits.weight": torch.zeros(2, 2)}
    by_version = _save(tmp_path / "a.safetensors", blocks, {"model_version": "2.5.0"})
    by_config = _save(tmp_path / "b.safetensors", blocks, {"config": json.dumps({"transformer": {"use_keyframes_abs_pos_embedding": True}})})
    for path in (by_version, by_config):
        with pytest.raises(GeneratorError, match=r"is an LTX-2\.5 checkpoint"):
            O.identify(O.read_header(path))


def test_other_files_say_what_they_are_not(official, tmp_path):
    import torch

    from generators import ltx2_official as O
    from generators.ltx2 import LTX2Generator

    sd = _save(tmp_path / "sdxl.safetensors", {"conditioner.embedders.0.weight": torch.zeros(2), "first_stage_model.decoder.x": torch.zeros(2)})
    with pytest.raises(GeneratorError, match=r"is not an LTX-2\.3 checkpoint: it holds 2 tensors such as conditioner"):
        O.identify(O.read_header(sd))
    with pytest.raises(GeneratorError, match=r"is a LoRA \(set it as generator\.stage2_lora"):
        LTX2Generator(options(official, model=str(official.lora))).model_info()
    with pytest.raises(GeneratorError, match=r"is a latent upsampler \(set it as generator\.upsampler"):
        LTX2Generator(options(official, model=str(official.upsampler))).model_info()
    with pytest.raises(GeneratorError, match=r"generator\.upsampler: .* is not LTX's latent upsampler"):
        LTX2Generator(options(official, upsampler=str(official.lora))).model_info()
    text = tmp_path / "notes.safetensors"
    text.write_text("hello")
    with pytest.raises(GeneratorError, match=r"is not a safetensors file"):
        O.read_header(text)


def test_the_distilled_lora_file_attaches_to_every_module_it_names(official):
    from generators import ltx2_loading as L
    from generators.ltx2 import LTX2Generator
    from tests.generators.tiny_ltx_official import LORA_TARGETS

    info = LTX2Generator(options(official)).model_info()
    pipe = L.build_pipeline(info, dtype="float32", two_stage=False)
    L.load_stage2_lora(pipe, str(official.lora), 1.0)
    adapted = {n for n, mod in pipe.transformer.named_modules() if len(getattr(mod, "lora_A", {})) > 0}
    assert adapted == {f"transformer_blocks.{b}.{t}" for b in range(2) for t in LORA_TARGETS}
