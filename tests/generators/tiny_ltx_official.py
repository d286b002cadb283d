"""A tiny random LTX-2.3 in Lightricks' own single-file layout, built with ltx-core's own classes.

Lightricks ships LTX-2.3 as one ``.safetensors`` per checkpoint
(``ltx-2.3-22b-dev.safetensors``): the transformer under ``model.diffusion_model.``
(its text connectors included), the video VAE under ``vae.``, the audio VAE under
``audio_vae.``, the vocoder under ``vocoder.`` and Gemma's feature projection under
``text_embedding_projection.``, with the whole architecture as JSON in the file's
``config`` metadata (what ltx-core's ``SafetensorsModelStateDictLoader`` reads).
The spatial upsampler is a file of its own with its config in the metadata too,
and a LoRA is a file of ``diffusion_model.<module>.lora_A/lora_B.weight`` pairs.

``build_tiny_ltx_official(folder)`` writes such files for a model with every
LTX-2.3 switch of the real config on (gated attention in the transformer and
the connectors, cross-attention AdaLN, split float64 RoPE, per-token-RMS text
projection with separate video/audio embeds, the 9-block video VAE ladder, the
vocoder with bandwidth extension) and every size shrunk. It returns the paths
and the in-memory ltx-core modules (built by ltx-core's own configurators from
the very config saved in the file), so parity tests can run the reference on the
same weights that longtake loads from disk. Seeded: the same call gives the same
weights. Needs ``ltx-core`` (the ``parity`` extra).

Sizes: the video VAE compresses 8x in time and space (patch 1, three 2x steps)
into 4 latent channels, so the two-stage grid is 8k+1 frames at multiples of 16
px; audio latents are 2 channels x 2 mel bins = 4 transformer channels.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHECKPOINT_NAME = "ltx-2.3-22b-dev.safetensors"
DISTILLED_NAME = "ltx-2.3-22b-distilled-1.1.safetensors"
UPSAMPLER_NAME = "ltx-2.3-spatial-upscaler-x2-1.1.safetensors"
LORA_NAME = "ltx-2.3-22b-distilled-lora-384.safetensors"
GEMMA_DIR = "gemma-3-12b-it-qat-q4_0-unquantized"

GEMMA_HIDDEN = 16
GEMMA_LAYERS = 2
LORA_RANK = 4

# The real LTX-2.3 config's architecture, sizes shrunk (keys and switches as in ltx-2.3-22b-dev.safetensors' metadata).
TINY_CONFIG: dict[str, Any] = {
    "transformer": {
        "_class_name": "AVTransformer3DModel", "activation_fn": "gelu-approximate", "attention_bias": True,
        "attention_head_dim": 8, "attention_type": "default", "caption_channels": GEMMA_HIDDEN, "cross_attention_dim": 16,
        "double_self_attention": False, "dropout": 0.0, "in_channels": 4, "norm_elementwise_affine": False, "norm_eps": 1e-06,
        "num_attention_heads": 2, "num_embeds_ada_norm": 1000, "num_layers": 2, "num_vector_embeds": None,
        "only_cross_attention": False, "cross_attention_norm": True, "out_channels": 4, "upcast_attention": False,
        "use_linear_projection": False, "qk_norm": "rms_norm", "standardization_norm": "rms_norm",
        "positional_embedding_type": "rope", "positional_embedding_theta": 10000.0, "positional_embedding_max_pos": [20, 2048, 2048],
        "timestep_scale_multiplier": 1000, "av_ca_timestep_scale_multiplier": 1000.0, "causal_temporal_positioning": True,
        "audio_num_attention_heads": 2, "audio_attention_head_dim": 4, "audio_in_channels": 4, "audio_out_channels": 4,
        "use_audio_video_cross_attention": True, "share_ff": False, "audio_cross_attention_dim": 8,
        "audio_positional_embedding_max_pos": [20], "av_cross_ada_norm": True, "use_embeddings_connector": True,
        "connector_attention_head_dim": 8, "connector_num_attention_heads": 2, "connector_num_layers": 1,
        "connector_positional_embedding_max_pos": [4096], "connector_num_learnable_registers": 128, "connector_norm_output": True,
        "use_middle_indices_grid": True, "apply_gated_attention": True, "connector_apply_gated_attention": True,
        "caption_projection_first_linear": False, "caption_projection_second_linear": False, "caption_proj_input_norm": False,
        "connector_learnable_registers_std": 1, "caption_proj_before_connector": True, "audio_connector_attention_head_dim": 4,
        "audio_connector_num_attention_heads": 2, "cross_attention_adaln": True, "text_encoder_norm_type": "per_token_rms",
        "rope_type": "split", "frequencies_precision": "float64",
    },
    "vae": {
        "_class_name": "CausalVideoAutoencoder", "dims": 3, "in_channels": 3, "out_channels": 3, "latent_channels": 4,
        "encoder_blocks": [
            ["res_x", {"num_layers": 1}], ["compress_space_res", {"multiplier": 2}], ["res_x", {"num_layers": 1}],
            ["compress_time_res", {"multiplier": 2}], ["res_x", {"num_layers": 1}], ["compress_all_res", {"multiplier": 2}],
            ["res_x", {"num_layers": 1}], ["compress_all_res", {"multiplier": 1}], ["res_x", {"num_layers": 1}],
        ],
        "decoder_blocks": [
            ["res_x", {"num_layers": 1}], ["compress_space", {"multiplier": 2}], ["res_x", {"num_layers": 1}],
            ["compress_time", {"multiplier": 2}], ["res_x", {"num_layers": 1}], ["compress_all", {"multiplier": 1}],
            ["res_x", {"num_layers": 1}], ["compress_all", {"multiplier": 2}], ["res_x", {"num_layers": 1}],
        ],
        "scaling_factor": 1.0, "norm_layer": "pixel_norm", "patch_size": 1, "latent_log_var": "uniform", "use_quant_conv": False,
        "causal_decoder": False, "timestep_conditioning": False, "normalize_latent_channels": False,
        "encoder_base_channels": 4, "decoder_base_channels": 4, "spatial_padding_mode": "zeros",
    },
    "scheduler": {"_class_name": "RectifiedFlowScheduler", "_diffusers_version": "0.25.1", "num_train_timesteps": 1000,
                  "shifting": None, "base_resolution": None, "sampler": "LinearQuadratic"},
    "audio_vae": {
        "model": {"params": {"ddconfig": {
            "double_z": True, "mel_bins": 8, "z_channels": 2, "resolution": 32, "downsample_time": False, "in_channels": 2,
            "out_ch": 2, "ch": 4, "ch_mult": [1, 2, 4], "num_res_blocks": 1, "attn_resolutions": [], "dropout": 0.0,
            "mid_block_add_attention": False, "norm_type": "pixel", "causality_axis": "height",
        }, "sampling_rate": 16000}},
        "preprocessing": {
            "audio": {"sampling_rate": 16000, "max_wav_value": 32768.0, "duration": 5.12, "stereo": True, "causal_padding": 3},
            "stft": {"filter_length": 1024, "hop_length": 160, "win_length": 1024, "causal": True},
            "mel": {"n_mel_channels": 8, "mel_fmin": 0, "mel_fmax": 8000},
        },
    },
    "vocoder": {
        "vocoder": {"upsample_initial_channel": 64, "resblock": "AMP1", "upsample_rates": [5, 2, 2, 2, 2, 2],
                    "resblock_kernel_sizes": [3], "upsample_kernel_sizes": [11, 4, 4, 4, 4, 4], "resblock_dilation_sizes": [[1, 3, 5]],
                    "stereo": True, "use_tanh_at_final": False, "activation": "snakebeta", "use_bias_at_final": False},
        "bwe": {"upsample_initial_channel": 32, "resblock": "AMP1", "upsample_rates": [6, 5, 2, 2, 2], "resblock_kernel_sizes": [3],
                "upsample_kernel_sizes": [12, 11, 4, 4, 4], "resblock_dilation_sizes": [[1, 3, 5]], "stereo": True,
                "use_tanh_at_final": False, "activation": "snakebeta", "use_bias_at_final": False, "apply_final_activation": False,
                "input_sampling_rate": 16000, "output_sampling_rate": 48000, "hop_length": 80, "n_fft": 64, "win_size": 64, "num_mels": 8},
    },
}  # fmt: skip

# The spatial upsampler file's own metadata config (LatentUpsamplerConfigurator reads it flat).
TINY_UPSAMPLER_CONFIG: dict[str, Any] = {
    "_class_name": "LatentUpsampler", "in_channels": 4, "mid_channels": 32, "num_blocks_per_stage": 1, "dims": 3,
    "spatial_upsample": True, "temporal_upsample": False, "spatial_scale": 2.0, "rational_resampler": False,
}  # fmt: skip

# Modules the distilled LoRA adapts in every transformer block (attention projections and feed-forwards of both streams).
LORA_TARGETS = tuple(
    f"{attn}.{proj}"
    for attn in ("attn1", "attn2", "audio_attn1", "audio_attn2", "audio_to_video_attn", "video_to_audio_attn")
    for proj in ("to_q", "to_k", "to_v", "to_out.0")
) + ("ff.net.0.proj", "ff.net.2", "audio_ff.net.0.proj", "audio_ff.net.2")


@dataclass
class TinyOfficialLTX:
    """The files written and the ltx-core modules their weights came from (float32 holding the files' bfloat16 values, eval mode)."""

    folder: Path
    checkpoint: Path  # ltx-2.3-22b-dev.safetensors layout
    upsampler: Path
    lora: Path
    gemma: Path  # Gemma-3 folder (config, weights, tokenizer), as ltx-pipelines' gemma_root
    config: dict
    transformer: Any = None  # ltx_core LTXModel
    video_encoder: Any = None
    video_decoder: Any = None
    audio_encoder: Any = None
    audio_decoder: Any = None
    vocoder: Any = None
    embeddings_processor: Any = None  # feature extractor (V2) + video/audio connectors
    spatial_upsampler: Any = None
    lora_state: dict = field(default_factory=dict)  # the LoRA file's tensors
    distilled: Path | None = None


def _bf16_exact(values):
    """Round to bfloat16 and back: the files store bfloat16 (as Lightricks' do), and float32 modules holding exactly
    those values make a float32 comparison against what is loaded from disk exact."""
    import torch

    return values.to(torch.bfloat16).to(torch.float32)


def _randomize(module, generator, scale: float = 0.05) -> None:
    """Fill every floating parameter with seeded noise (many ltx-core tables start at zero, which would hide a mapping error)."""
    import torch

    with torch.no_grad():
        for name, param in module.named_parameters():
            if not param.dtype.is_floating_point:
                continue
            values = torch.randn(param.shape, generator=generator, dtype=torch.float32) * scale
            if "std-of-means" in name or name.endswith("norm.weight"):
                values = values.abs() + 0.5
            param.copy_(_bf16_exact(values))
        for name, buf in module.named_buffers():
            if not buf.dtype.is_floating_point:
                continue
            if "per_channel_statistics" in name:
                # Latent statistics are buffers in ltx-core; a std of zero would divide by zero.
                values = torch.randn(buf.shape, generator=generator, dtype=torch.float32) * scale
                buf.copy_(_bf16_exact((values.abs() + 0.5) if "std" in name else values))
            else:
                buf.copy_(_bf16_exact(buf.float()))


def _prefixed(prefix: str, state: dict, *, skip: tuple[str, ...] = ()) -> dict:
    """``state`` under ``prefix``, floating tensors as bfloat16 (the dtype of the released files)."""
    import torch

    return {
        prefix + k: (v.detach().to(torch.bfloat16) if v.dtype.is_floating_point else v.detach()).contiguous()
        for k, v in state.items()
        if not k.startswith(skip)
    }


def build_tiny_ltx_official(folder: Path, *, seed: int = 0, with_distilled: bool = False) -> TinyOfficialLTX:
    """Write the tiny official-layout checkpoint, upsampler, LoRA and Gemma folder to ``folder``; return them and the modules."""
    import torch
    from safetensors.torch import save_file

    from ltx_core.model.audio_vae.model_configurator import AudioDecoderConfigurator, AudioEncoderConfigurator, VocoderConfigurator
    from ltx_core.model.transformer.model_configurator import LTXModelConfigurator
    from ltx_core.model.upsampler import LatentUpsamplerConfigurator
    from ltx_core.model.video_vae.model_configurator import VideoDecoderConfigurator, VideoEncoderConfigurator
    from ltx_core.text_encoders.gemma.embeddings_connector import AudioEmbeddings1DConnectorConfigurator, Embeddings1DConnectorConfigurator
    from ltx_core.text_encoders.gemma.embeddings_processor import EmbeddingsProcessor
    from ltx_core.text_encoders.gemma.feature_extractor import FeatureExtractorV2

    from tests.generators.tiny_ltx2 import build_tiny_gemma

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = copy.deepcopy(TINY_CONFIG)
    gen = torch.Generator().manual_seed(seed)

    def make(configurator, cfg=config):
        module = configurator.from_config(cfg)
        # Configurators may build on the meta device (ltx-core loads weights by assignment); give them real storage.
        module = module.to_empty(device="cpu") if any(p.is_meta for p in module.parameters()) else module
        module = module.float()
        _randomize(module, gen)
        return module.eval()

    transformer = make(LTXModelConfigurator)
    video_encoder = make(VideoEncoderConfigurator)
    video_decoder = make(VideoDecoderConfigurator)
    audio_encoder = make(AudioEncoderConfigurator)
    audio_decoder = make(AudioDecoderConfigurator)
    vocoder = make(VocoderConfigurator)
    video_connector = make(Embeddings1DConnectorConfigurator)
    audio_connector = make(AudioEmbeddings1DConnectorConfigurator)
    # ltx-core's EmbeddingsProcessorConfigurator sizes the projection from Gemma-3 12B's fixed config; the tiny Gemma
    # needs the same V2 extractor class at its own width: (layers + 1) hidden states concatenated.
    t = config["transformer"]
    flat = GEMMA_HIDDEN * (GEMMA_LAYERS + 1)
    feature_extractor = FeatureExtractorV2(
        video_aggregate_embed=torch.nn.Linear(flat, t["num_attention_heads"] * t["attention_head_dim"], bias=True),
        embedding_dim=GEMMA_HIDDEN,
        audio_aggregate_embed=torch.nn.Linear(flat, t["audio_num_attention_heads"] * t["audio_attention_head_dim"], bias=True),
    ).float()
    _randomize(feature_extractor, gen)
    embeddings_processor = EmbeddingsProcessor(
        feature_extractor=feature_extractor.eval(), video_connector=video_connector, audio_connector=audio_connector
    ).eval()
    spatial_upsampler = make(LatentUpsamplerConfigurator, TINY_UPSAMPLER_CONFIG)

    # One set of latent statistics per VAE, shared by its encoder and decoder as in the file.
    for enc, dec in ((video_encoder, video_decoder), (audio_encoder, audio_decoder)):
        dec.per_channel_statistics.load_state_dict(enc.per_channel_statistics.state_dict())

    stats = ("per_channel_statistics.",)
    tensors: dict[str, Any] = {}
    tensors.update(_prefixed("model.diffusion_model.", transformer.state_dict()))
    tensors.update(_prefixed("model.diffusion_model.video_embeddings_connector.", video_connector.state_dict()))
    tensors.update(_prefixed("model.diffusion_model.audio_embeddings_connector.", audio_connector.state_dict()))
    tensors.update(_prefixed("text_embedding_projection.", feature_extractor.state_dict()))
    tensors.update(_prefixed("vae.encoder.", video_encoder.state_dict(), skip=stats))
    tensors.update(_prefixed("vae.decoder.", video_decoder.state_dict(), skip=stats))
    tensors.update(_prefixed("vae.per_channel_statistics.", video_encoder.per_channel_statistics.state_dict()))
    tensors.update(_prefixed("audio_vae.encoder.", audio_encoder.state_dict(), skip=stats))
    tensors.update(_prefixed("audio_vae.decoder.", audio_decoder.state_dict(), skip=stats))
    tensors.update(_prefixed("audio_vae.per_channel_statistics.", audio_encoder.per_channel_statistics.state_dict()))
    tensors.update(_prefixed("vocoder.", vocoder.state_dict()))
    metadata = {"config": json.dumps(config)}
    checkpoint = folder / CHECKPOINT_NAME
    save_file(tensors, str(checkpoint), metadata=metadata)

    distilled = None
    if with_distilled:
        # Same architecture, other weights: what tells the two apart is the name (and the LoRA-free stage 1 it is made for).
        other = {k: ((v.float() + 0.01).to(v.dtype) if v.dtype.is_floating_point and k.startswith("model.diffusion_model.transformer_blocks.") else v) for k, v in tensors.items()}
        distilled = folder / DISTILLED_NAME
        save_file(other, str(distilled), metadata=metadata)

    upsampler = folder / UPSAMPLER_NAME
    save_file(_prefixed("", spatial_upsampler.state_dict()), str(upsampler), metadata={"config": json.dumps(TINY_UPSAMPLER_CONFIG)})

    lora_state: dict[str, Any] = {}
    blocks = config["transformer"]["num_layers"]
    model_state = transformer.state_dict()
    for block in range(blocks):
        for target in LORA_TARGETS:
            weight = model_state[f"transformer_blocks.{block}.{target}.weight"]
            out_features, in_features = weight.shape
            key = f"diffusion_model.transformer_blocks.{block}.{target}"
            lora_state[f"{key}.lora_A.weight"] = (torch.randn(LORA_RANK, in_features, generator=gen) * 0.05).to(torch.bfloat16)
            lora_state[f"{key}.lora_B.weight"] = (torch.randn(out_features, LORA_RANK, generator=gen) * 0.05).to(torch.bfloat16)
    lora = folder / LORA_NAME
    save_file(lora_state, str(lora))

    gemma = build_tiny_gemma(folder / GEMMA_DIR, seed=seed, hidden_size=GEMMA_HIDDEN, num_layers=GEMMA_LAYERS, with_tokenizer=True)

    return TinyOfficialLTX(
        folder=folder, checkpoint=checkpoint, upsampler=upsampler, lora=lora, gemma=gemma, config=config,
        transformer=transformer, video_encoder=video_encoder, video_decoder=video_decoder, audio_encoder=audio_encoder,
        audio_decoder=audio_decoder, vocoder=vocoder, embeddings_processor=embeddings_processor,
        spatial_upsampler=spatial_upsampler, lora_state=lora_state, distilled=distilled,
    )  # fmt: skip
