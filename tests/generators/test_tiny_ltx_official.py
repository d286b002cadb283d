"""The tiny official-layout fixture is what Lightricks' own loaders read: every component ltx-core builds from the
single file (and the upsampler file) has exactly the fixture's weights, and ltx-core fuses the LoRA file."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.parity


@pytest.fixture(scope="module")
def official(tmp_path_factory):
    from tests.generators.tiny_ltx_official import build_tiny_ltx_official

    return build_tiny_ltx_official(tmp_path_factory.mktemp("official"))


def _build(configurator, path, sd_ops=None, dtype=None):
    import torch
    from ltx_core.loader.single_gpu_model_builder import SingleGPUModelBuilder

    return SingleGPUModelBuilder(model_class_configurator=configurator, model_path=str(path), model_sd_ops=sd_ops).build(
        device=torch.device("cpu"), dtype=dtype or torch.float32
    )


def _same_weights(built, module) -> None:
    import torch

    a, b = built.state_dict(), module.state_dict()
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k].to(a[k].dtype))]
    assert not different


def test_ltx_core_loads_every_component_of_the_single_file(official):
    from ltx_core.model.audio_vae.model_configurator import (
        AUDIO_VAE_DECODER_COMFY_KEYS_FILTER, AUDIO_VAE_ENCODER_COMFY_KEYS_FILTER, VOCODER_COMFY_KEYS_FILTER,
        AudioDecoderConfigurator, AudioEncoderConfigurator, VocoderConfigurator,
    )  # fmt: skip
    from ltx_core.model.transformer.model_configurator import LTXV_MODEL_COMFY_RENAMING_MAP, LTXModelConfigurator
    from ltx_core.model.upsampler import LatentUpsamplerConfigurator
    from ltx_core.model.video_vae.model_configurator import (
        VAE_DECODER_COMFY_KEYS_FILTER, VAE_ENCODER_COMFY_KEYS_FILTER, VideoDecoderConfigurator, VideoEncoderConfigurator,
    )  # fmt: skip

    path = official.checkpoint
    _same_weights(_build(LTXModelConfigurator, path, LTXV_MODEL_COMFY_RENAMING_MAP), official.transformer)
    _same_weights(_build(VideoEncoderConfigurator, path, VAE_ENCODER_COMFY_KEYS_FILTER), official.video_encoder)
    _same_weights(_build(VideoDecoderConfigurator, path, VAE_DECODER_COMFY_KEYS_FILTER), official.video_decoder)
    _same_weights(_build(AudioEncoderConfigurator, path, AUDIO_VAE_ENCODER_COMFY_KEYS_FILTER), official.audio_encoder)
    _same_weights(_build(AudioDecoderConfigurator, path, AUDIO_VAE_DECODER_COMFY_KEYS_FILTER), official.audio_decoder)
    _same_weights(_build(VocoderConfigurator, path, VOCODER_COMFY_KEYS_FILTER), official.vocoder)
    _same_weights(_build(LatentUpsamplerConfigurator, official.upsampler), official.spatial_upsampler)


def test_the_text_projection_and_connectors_sit_where_ltx_core_maps_them(official):
    from ltx_core.text_encoders.gemma.encoders.encoder_configurator import EMBEDDINGS_PROCESSOR_KEY_OPS
    from safetensors import safe_open

    with safe_open(str(official.checkpoint), "pt") as fh:
        mapped = {EMBEDDINGS_PROCESSOR_KEY_OPS.apply_to_key(k) for k in fh.keys()} - {None}
    assert mapped == set(official.embeddings_processor.state_dict())


def test_ltx_core_fuses_the_lora_file_into_every_targeted_weight(official):
    import torch
    from ltx_core.loader.sd_ops import LTXV_LORA_COMFY_RENAMING_MAP
    from ltx_core.loader.single_gpu_model_builder import SingleGPUModelBuilder
    from ltx_core.model.transformer.model_configurator import LTXV_MODEL_COMFY_RENAMING_MAP, LTXModelConfigurator

    from tests.generators.tiny_ltx_official import LORA_TARGETS

    builder = SingleGPUModelBuilder(
        model_class_configurator=LTXModelConfigurator, model_path=str(official.checkpoint), model_sd_ops=LTXV_MODEL_COMFY_RENAMING_MAP
    ).lora(str(official.lora), 1.0, LTXV_LORA_COMFY_RENAMING_MAP)
    fused = builder.build(device=torch.device("cpu"), dtype=torch.bfloat16).state_dict()
    base = official.transformer.state_dict()
    changed = {k for k in fused if not torch.equal(fused[k], base[k].to(torch.bfloat16))}
    expected = {f"transformer_blocks.{b}.{t}.weight" for b in range(official.config["transformer"]["num_layers"]) for t in LORA_TARGETS}
    assert changed == expected
