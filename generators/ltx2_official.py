"""Lightricks' single-file LTX-2.3 checkpoints, read into the diffusers components longtake runs.

Lightricks distributes LTX-2.3 as one ``.safetensors`` per checkpoint
(``ltx-2.3-22b-dev.safetensors``, ``ltx-2.3-22b-distilled-1.1.safetensors``): the
transformer and its text connectors under ``model.diffusion_model.``, the video VAE
under ``vae.``, the audio VAE under ``audio_vae.``, the vocoder under ``vocoder.``,
Gemma's feature projection under ``text_embedding_projection.``, and the whole
architecture as JSON in the ``config`` metadata. The spatial upsampler
(``ltx-2.3-spatial-upscaler-x2-1.1.safetensors``) is a file of its own; Gemma-3 is
a folder of its own (``generator.text_encoder``).

This module checks such a file from its header alone (is it LTX at all, which LTX
generation, is it cut short, is it distilled), works out each component's diffusers
config (from the file's own metadata, else the full-size LTX-2.3 configs shipped in
``generators/ltx2_configs/ltx-2.3``), and loads each component by renaming its keys
as they are read: diffusers' single-file converters
(``diffusers.loaders.single_file_utils``), plus what they lack for 2.3 (the text
connectors and projection, the prompt AdaLN, the ninth video-decoder block). Each
tensor is read from the memory-mapped file once, in the target dtype, onto the
target device, into a model built on the meta device: no second copy on disk and
none in memory.
"""

from __future__ import annotations

import json
import logging
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from orchestrator.errors import GeneratorError, ModelFileError

log = logging.getLogger(__name__)

CONFIG_DIR = Path(__file__).with_name("ltx2_configs") / "ltx-2.3"
TRANSFORMER_PREFIX = "model.diffusion_model."
CONNECTOR_PREFIXES = (TRANSFORMER_PREFIX + "video_embeddings_connector.", TRANSFORMER_PREFIX + "audio_embeddings_connector.", "text_embedding_projection.")
SECTIONS = {"transformer": TRANSFORMER_PREFIX, "vae": "vae.", "audio_vae": "audio_vae."}
# Gemma-3 12B, which LTX-2.3's text projection was trained on: 3840 wide, 48 layers (+ the embeddings = 49 states).
GEMMA_HIDDEN = 3840
GEMMA_STATES = 49
GEMMA_HINT = (
    "download Gemma-3 (`hf download google/gemma-3-12b-it-qat-q4_0-unquantized --local-dir models/gemma-3-12b-it-qat-q4_0-unquantized`) "
    "and set generator.text_encoder to that folder"
)
UPSAMPLER_HINT = "download ltx-2.3-spatial-upscaler-x2-1.1.safetensors from Lightricks/LTX-2.3 and set generator.upsampler to it"


def is_single_file(spec: str | Path | None) -> bool:
    return bool(spec) and str(spec).endswith((".safetensors", ".sft"))


# ----------------------------------------------------------------------------------------------
# the header
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Header:
    """A safetensors file's tensor table and metadata, read without touching the weights."""

    path: Path
    tensors: dict[str, dict]  # name -> {"dtype", "shape", "data_offsets"}
    metadata: dict[str, str]

    @property
    def config(self) -> dict:
        raw = self.metadata.get("config")
        if not raw:
            return {}
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            raise ModelFileError(f"{self.path} has a damaged `config` in its metadata (not JSON); re-download it") from None
        return value if isinstance(value, dict) else {}

    def names(self, prefix: str) -> list[str]:
        return [n for n in self.tensors if n.startswith(prefix)]

    def shape(self, name: str) -> tuple[int, ...] | None:
        entry = self.tensors.get(name)
        return tuple(int(d) for d in entry["shape"]) if entry else None

    def num_parameters(self, prefixes: tuple[str, ...], exclude: tuple[str, ...] = ()) -> int:
        total = 0
        for name, entry in self.tensors.items():
            if name.startswith(prefixes) and not name.startswith(exclude):
                count = 1
                for d in entry["shape"]:
                    count *= int(d)
                total += count
        return total


def read_header(path: Path, *, what: str = "generator.model") -> Header:
    """The header of ``path``; a file that is not safetensors, or is cut short, is one sentence."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{what}: file not found: {path}; download it from huggingface.co/Lightricks/LTX-2.3 and set {what} to its path")
    size = path.stat().st_size
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                raise ValueError("shorter than a safetensors header")
            (header_len,) = struct.unpack("<Q", head)
            if header_len > min(size - 8, 100 * 1024**2):
                raise ValueError("header length out of range")
            table = json.loads(fh.read(header_len))
        if not isinstance(table, dict):
            raise ValueError("header is not a JSON object")
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{what}: {path} is not a safetensors file ({exc}); point {what} at an LTX-2.3 .safetensors checkpoint") from None
    metadata = table.pop("__metadata__", None) or {}
    data_end = max((int(e.get("data_offsets", [0, 0])[1]) for e in table.values() if isinstance(e, dict)), default=0)
    if 8 + header_len + data_end > size:
        raise ModelFileError(
            f"{what}: {path} is truncated ({size:,} of {8 + header_len + data_end:,} bytes; an interrupted download?); download it again"
        )
    return Header(path=path, tensors={k: v for k, v in table.items() if isinstance(v, dict)}, metadata={str(k): str(v) for k, v in metadata.items()})


# ----------------------------------------------------------------------------------------------
# what the file is
# ----------------------------------------------------------------------------------------------

def _version_from_metadata(header: Header) -> str | None:
    for key in ("model_version", "version"):
        value = header.metadata.get(key)
        if value:
            match = re.match(r"\s*v?(\d+)\.(\d+)", value)
            if match:
                return f"{match.group(1)}.{match.group(2)}"
    return None


def _describe_other(header: Header) -> str:
    names = list(header.tensors)
    if not names:
        return "it holds no tensors"
    if any(".lora_A." in n or ".lora_down." in n for n in names):
        return "it is a LoRA (set it as generator.stage2_lora, not generator.model)"
    if any(n.startswith(("upsampler.", "res_blocks.", "initial_conv.")) for n in names) and not header.names(TRANSFORMER_PREFIX):
        return "it is a latent upsampler (set it as generator.upsampler, not generator.model)"
    if any(n.startswith(("model.layers.", "language_model.", "model.language_model.")) for n in names):
        return "it is a language model's weights (Gemma goes in generator.text_encoder as a folder)"
    sample = ", ".join(sorted(names)[:3])
    return f"it holds {len(names):,} tensors such as {sample}, none of them LTX-2's (`{TRANSFORMER_PREFIX}…`, `vae.…`, `audio_vae.…`)"


def identify(header: Header, *, what: str = "generator.model") -> None:
    """Raise GeneratorError unless ``header`` is a complete LTX-2.3 single-file checkpoint; the message says what it is instead."""
    path, config = header.path, header.config
    transformer_cfg = config.get("transformer", {}) if isinstance(config.get("transformer"), dict) else {}
    version = _version_from_metadata(header)
    blocks = header.names(TRANSFORMER_PREFIX + "transformer_blocks.")
    if not blocks:
        if version and version.startswith("2.5") or transformer_cfg.get("use_keyframes_abs_pos_embedding"):
            raise ModelFileError(f"{what}: {path} is an LTX-2.5 file, a different model that longtake does not run; use LTX-2.3 (ltx-2.3-22b-dev.safetensors)")
        raise ModelFileError(f"{what}: {path} is not an LTX-2.3 checkpoint: {_describe_other(header)}")
    if (version and version.startswith("2.5")) or transformer_cfg.get("use_keyframes_abs_pos_embedding"):
        raise ModelFileError(
            f"{what}: {path} is an LTX-2.5 checkpoint (a different model, split per component); longtake runs LTX-2.3: "
            "use ltx-2.3-22b-dev.safetensors or ltx-2.3-22b-distilled-1.1.safetensors"
        )
    gated = any(".to_gate_logits." in n for n in blocks)
    v1_projection = "text_embedding_projection.aggregate_embed.weight" in header.tensors or header.names(TRANSFORMER_PREFIX + "caption_projection.")
    if (version and version.startswith("2.0")) or (not gated and v1_projection):
        raise ModelFileError(
            f"{what}: {path} is an LTX-2.0 checkpoint (no gated attention, the old text projection); longtake needs LTX-2.3: "
            "download ltx-2.3-22b-dev.safetensors from Lightricks/LTX-2.3"
        )
    if not gated:
        raise ModelFileError(f"{what}: {path} is an LTX-2 transformer without LTX-2.3's gated attention; use ltx-2.3-22b-dev.safetensors")
    missing = [name for name, prefix in SECTIONS.items() if not header.names(prefix)]
    if not header.names("text_embedding_projection."):
        missing.append("text_embedding_projection")
    if missing:
        raise ModelFileError(
            f"{what}: {path} holds the LTX-2.3 transformer but not its {', '.join(missing)} (a transformer-only or split file); "
            "use the complete single file ltx-2.3-22b-dev.safetensors (or the diffusers folder)"
        )


def looks_distilled(path: Path) -> bool:
    """Lightricks names the distilled checkpoint `…-distilled…` (the LoRA, `…-distilled-lora…`, is not a checkpoint)."""
    name = Path(path).name.lower()
    return "distilled" in name and "lora" not in name


# ----------------------------------------------------------------------------------------------
# configs: the file's own architecture, in diffusers terms
# ----------------------------------------------------------------------------------------------

def shipped_config(component: str) -> dict:
    name = "scheduler_config.json" if component == "scheduler" else "config.json"
    return json.loads((CONFIG_DIR / component / name).read_text(encoding="utf-8"))


def _vae_ratios(vae: dict) -> tuple[int, int]:
    """(temporal, spatial) compression of an ltx-core video VAE config (its encoder block ladder and patch size)."""
    temporal = spatial = 1
    for name, _params in vae.get("encoder_blocks", []):
        if name.startswith(("compress_time", "compress_all")):
            temporal *= 2
        if name.startswith(("compress_space", "compress_all")):
            spatial *= 2
    return temporal, spatial * int(vae.get("patch_size", 4))


def _vae_config(vae: dict) -> dict:
    """diffusers ``AutoencoderKLLTX2Video`` config for an ltx-core VAE config (res/compress ladders as in LTX-2.x)."""
    enc_layers, down_types, enc_channels = [], [], []
    channels = int(vae.get("latent_channels", 128))
    kinds = {"compress_space": "spatial", "compress_time": "temporal", "compress_all": "spatiotemporal"}
    for name, params in vae.get("encoder_blocks", []):
        params = {"num_layers": params} if isinstance(params, int) else params
        if name == "res_x":
            enc_layers.append(int(params.get("num_layers", 1)))
        else:
            down_types.append(kinds[name.removesuffix("_res")])
            channels *= int(params.get("multiplier", 2))
            enc_channels.append(channels)
    dec_layers, up_types, up_factors, dec_channels = [], [], [], []
    channels = int(vae.get("decoder_base_channels", 128)) * 8
    # ltx-core builds the decoder from the reversed list (latent side first); diffusers lists most of it pixel side first.
    for name, params in reversed(vae.get("decoder_blocks", [])):
        params = {"num_layers": params} if isinstance(params, int) else params
        if name == "res_x":
            dec_layers.append(int(params.get("num_layers", 1)))
        else:
            up_types.append(kinds[name])
            factor = int(params.get("multiplier", 1))
            up_factors.append(factor)
            dec_channels.append(channels)
            channels //= factor
    temporal, spatial = _vae_ratios(vae)
    n_up = len(up_types)
    return {
        "_class_name": "AutoencoderKLLTX2Video",
        "in_channels": int(vae.get("in_channels", 3)), "out_channels": int(vae.get("out_channels", 3)),
        "latent_channels": int(vae.get("latent_channels", 128)),
        "block_out_channels": enc_channels, "down_block_types": ["LTX2VideoDownBlock3D"] * len(enc_channels),
        "layers_per_block": enc_layers, "spatio_temporal_scaling": [True] * len(enc_channels), "downsample_type": down_types,
        "decoder_block_out_channels": list(reversed(dec_channels)), "decoder_layers_per_block": list(reversed(dec_layers)),
        "decoder_spatio_temporal_scaling": [True] * n_up, "decoder_inject_noise": [False] * (n_up + 1),
        "upsample_type": up_types, "upsample_residual": [False] * n_up, "upsample_factor": list(reversed(up_factors)),
        "timestep_conditioning": bool(vae.get("timestep_conditioning", True)), "patch_size": int(vae.get("patch_size", 4)), "patch_size_t": 1,
        "resnet_norm_eps": 1e-6, "scaling_factor": float(vae.get("scaling_factor", 1.0)), "encoder_causal": True,
        "decoder_causal": bool(vae.get("causal_decoder", False)),
        "encoder_spatial_padding_mode": vae.get("spatial_padding_mode", "zeros"), "decoder_spatial_padding_mode": vae.get("spatial_padding_mode", "reflect"),
        "spatial_compression_ratio": spatial, "temporal_compression_ratio": temporal,
    }  # fmt: skip


def _audio_vae_config(audio: dict) -> dict:
    params = audio.get("model", {}).get("params", {})
    dd = params.get("ddconfig", {})
    stft = audio.get("preprocessing", {}).get("stft", {})
    mel = audio.get("preprocessing", {}).get("mel", {})
    return {
        "_class_name": "AutoencoderKLLTX2Audio",
        "base_channels": int(dd.get("ch", 128)), "output_channels": int(dd.get("out_ch", 2)), "ch_mult": list(dd.get("ch_mult", (1, 2, 4))),
        "num_res_blocks": int(dd.get("num_res_blocks", 2)), "attn_resolutions": list(dd["attn_resolutions"]) if dd.get("attn_resolutions") else None,
        "in_channels": int(dd.get("in_channels", 2)), "resolution": int(dd.get("resolution", 256)), "latent_channels": int(dd.get("z_channels", 8)),
        "norm_type": dd.get("norm_type", "pixel"), "causality_axis": dd.get("causality_axis", "height"), "dropout": float(dd.get("dropout", 0.0)),
        "mid_block_add_attention": bool(dd.get("mid_block_add_attention", False)), "sample_rate": int(params.get("sampling_rate", 16000)),
        "mel_hop_length": int(stft.get("hop_length", 160)), "is_causal": bool(stft.get("causal", True)),
        "mel_bins": int(dd.get("mel_bins") or mel.get("n_mel_channels") or 64), "double_z": bool(dd.get("double_z", True)),
    }  # fmt: skip


def _transformer_config(t: dict, vae: dict, audio: dict) -> dict:
    temporal, spatial = _vae_ratios(vae) if vae else (8, 32)
    max_pos = list(t.get("positional_embedding_max_pos", [20, 2048, 2048]))
    audio_params = _audio_vae_config(audio) if audio else {"sample_rate": 16000, "mel_hop_length": 160}
    gated = bool(t.get("apply_gated_attention", False))
    cross_mod = bool(t.get("cross_attention_adaln", False))
    return {
        "_class_name": "LTX2VideoTransformer3DModel",
        "in_channels": int(t.get("in_channels", 128)), "out_channels": int(t.get("out_channels", 128)), "patch_size": 1, "patch_size_t": 1,
        "num_attention_heads": int(t.get("num_attention_heads", 32)), "attention_head_dim": int(t.get("attention_head_dim", 128)),
        "cross_attention_dim": int(t.get("cross_attention_dim", 4096)), "vae_scale_factors": [temporal, spatial, spatial],
        "pos_embed_max_pos": int(max_pos[0]), "base_height": int(max_pos[1]), "base_width": int(max_pos[2]),
        "gated_attn": gated, "cross_attn_mod": cross_mod,
        "audio_in_channels": int(t.get("audio_in_channels", 128)), "audio_out_channels": int(t.get("audio_out_channels", 128)),
        "audio_patch_size": 1, "audio_patch_size_t": 1, "audio_num_attention_heads": int(t.get("audio_num_attention_heads", 32)),
        "audio_attention_head_dim": int(t.get("audio_attention_head_dim", 64)), "audio_cross_attention_dim": int(t.get("audio_cross_attention_dim", 2048)),
        "audio_scale_factor": 4, "audio_pos_embed_max_pos": int(list(t.get("audio_positional_embedding_max_pos", [20]))[0]),
        "audio_sampling_rate": int(audio_params["sample_rate"]), "audio_hop_length": int(audio_params["mel_hop_length"]),
        "audio_gated_attn": gated, "audio_cross_attn_mod": cross_mod, "num_layers": int(t.get("num_layers", 48)),
        "activation_fn": "gelu-approximate", "qk_norm": "rms_norm_across_heads", "norm_elementwise_affine": False, "norm_eps": float(t.get("norm_eps", 1e-6)),
        "caption_channels": int(t.get("caption_channels", GEMMA_HIDDEN)), "attention_bias": True, "attention_out_bias": True,
        "rope_theta": float(t.get("positional_embedding_theta", 10000.0)), "rope_double_precision": t.get("frequencies_precision") == "float64",
        "causal_offset": 1, "timestep_scale_multiplier": int(t.get("timestep_scale_multiplier", 1000)),
        "cross_attn_timestep_scale_multiplier": int(t.get("av_ca_timestep_scale_multiplier", 1000)), "rope_type": t.get("rope_type", "interleaved"),
        # 2.3 projects the text in the connector stage, not in the transformer; its STG blocks are perturbable.
        "use_prompt_embeddings": not t.get("caption_proj_before_connector", False), "perturbed_attn": True,
        "ff_bias": bool(t.get("ff_bias", True)), "audio_ff_bias": bool(t.get("audio_ff_bias", True)), "use_prompt_adaln_single": cross_mod,
    }  # fmt: skip


def _connectors_config(t: dict, gemma_hidden: int, gemma_states: int, registers: tuple[int, int]) -> dict:
    video_heads, video_dim = int(t.get("connector_num_attention_heads", 30)), int(t.get("connector_attention_head_dim", 128))
    v2 = bool(t.get("caption_proj_before_connector", False))
    return {
        "_class_name": "LTX2TextConnectors",
        "caption_channels": gemma_hidden, "text_proj_in_factor": gemma_states,
        "video_connector_num_attention_heads": video_heads, "video_connector_attention_head_dim": video_dim,
        "video_connector_num_layers": int(t.get("connector_num_layers", 2)), "video_connector_num_learnable_registers": registers[0] or None,
        "video_gated_attn": bool(t.get("connector_apply_gated_attention", False)),
        "audio_connector_num_attention_heads": int(t.get("audio_connector_num_attention_heads", video_heads)),
        "audio_connector_attention_head_dim": int(t.get("audio_connector_attention_head_dim", video_dim)),
        "audio_connector_num_layers": int(t.get("audio_connector_num_layers", t.get("connector_num_layers", 2))),
        "audio_connector_num_learnable_registers": registers[1] or None,
        "audio_gated_attn": bool(t.get("connector_apply_gated_attention", False)),
        "connector_rope_base_seq_len": int(list(t.get("connector_positional_embedding_max_pos", [4096]))[0]),
        "rope_theta": float(t.get("positional_embedding_theta", 10000.0)), "rope_double_precision": t.get("frequencies_precision") == "float64",
        # ltx-core's connectors position tokens plainly (its configurator never passes causal positioning to them).
        "causal_temporal_positioning": False, "rope_type": t.get("rope_type", "interleaved"),
        "per_modality_projections": v2, "video_hidden_dim": int(t.get("num_attention_heads", 32)) * int(t.get("attention_head_dim", 128)),
        "audio_hidden_dim": int(t.get("audio_num_attention_heads", 32)) * int(t.get("audio_attention_head_dim", 64)), "proj_bias": v2,
    }  # fmt: skip


def upsampler_config(header: Header) -> dict:
    cfg = header.config or {}
    if not cfg:
        return shipped_config("latent_upsampler")
    return {
        "_class_name": "LTX2LatentUpsamplerModel",
        "in_channels": int(cfg.get("in_channels", 128)), "mid_channels": int(cfg.get("mid_channels", 1024)),
        "num_blocks_per_stage": int(cfg.get("num_blocks_per_stage", 4)), "dims": int(cfg.get("dims", 3)),
        "spatial_upsample": bool(cfg.get("spatial_upsample", True)), "temporal_upsample": bool(cfg.get("temporal_upsample", False)),
        "rational_spatial_scale": float(cfg.get("spatial_scale", 2.0)), "use_rational_resampler": bool(cfg.get("rational_resampler", False)),
    }  # fmt: skip


def diffusers_configs(ltx_config: dict, *, gemma_hidden: int = GEMMA_HIDDEN, gemma_states: int = GEMMA_STATES, registers: tuple[int, int] = (128, 128)) -> dict[str, dict]:
    """Every component's diffusers config for an LTX-2.3 single file's ``config`` metadata."""
    t, vae, audio = ltx_config.get("transformer", {}), ltx_config.get("vae", {}), ltx_config.get("audio_vae", {})
    return {
        "transformer": _transformer_config(t, vae, audio),
        "vae": _vae_config(vae),
        "audio_vae": _audio_vae_config(audio),
        "connectors": _connectors_config(t, gemma_hidden, gemma_states, registers),
    }


def checkpoint_configs(header: Header, *, gemma_config: dict | None = None) -> dict[str, dict]:
    """The diffusers configs for this file: from its metadata, else the shipped LTX-2.3 ones; Gemma's width from its folder."""
    hidden, states = GEMMA_HIDDEN, GEMMA_STATES
    if gemma_config:
        text = gemma_config.get("text_config", gemma_config)
        hidden = int(text.get("hidden_size", hidden))
        states = int(text.get("num_hidden_layers", states - 1)) + 1
    registers = tuple(
        (header.shape(f"{TRANSFORMER_PREFIX}{side}_embeddings_connector.learnable_registers") or (0,))[0] for side in ("video", "audio")
    )
    if header.config.get("transformer"):
        configs = diffusers_configs(header.config, gemma_hidden=hidden, gemma_states=states, registers=registers)
    else:
        configs = {name: shipped_config(name) for name in ("transformer", "vae", "audio_vae", "connectors")}
        configs["connectors"].update(caption_channels=hidden, text_proj_in_factor=states)
    projection = header.shape("text_embedding_projection.video_aggregate_embed.weight")
    if projection and projection[1] != hidden * states:
        raise ModelFileError(
            f"the text encoder does not fit {header.path.name}: its projection takes {projection[1]} features, but this Gemma gives "
            f"{hidden} x {states} = {hidden * states}; set generator.text_encoder to Gemma-3 12B (google/gemma-3-12b-it-qat-q4_0-unquantized)"
        )
    return configs


def vae_ratios_of_file(path: Path) -> tuple[int, int]:
    """(temporal, spatial) compression of the video VAE inside a single-file checkpoint (its metadata; else LTX-2.3's)."""
    header = read_header(path)
    vae = header.config.get("vae")
    if isinstance(vae, dict) and vae.get("encoder_blocks"):
        return _vae_ratios(vae)
    return shipped_vae_ratios()


def shipped_vae_ratios() -> tuple[int, int]:
    cfg = shipped_config("vae")
    return int(cfg["temporal_compression_ratio"]), int(cfg["spatial_compression_ratio"])


# ----------------------------------------------------------------------------------------------
# key conversion
# ----------------------------------------------------------------------------------------------

def _decoder_block_name(index: int) -> str:
    """diffusers' name for ltx-core's video-decoder block ``index`` (0: mid block; then upsampler, resnets, … per level)."""
    if index == 0:
        return "mid_block"
    level = (index - 1) // 2
    return f"up_blocks.{level}.upsamplers.0" if index % 2 else f"up_blocks.{level}"


def convert_transformer_keys(names: list[str]) -> dict[str, str]:
    """Original name -> diffusers name for the transformer (connector keys excluded)."""
    from diffusers.loaders.single_file_utils import convert_ltx2_transformer_to_diffusers

    # diffusers' 2.0 converter predates 2.3's prompt AdaLN; under its own name it would be taken for `adaln_single`.
    pre = {n: n.replace("prompt_adaln_single.", "prompt_adaln.") for n in names}
    return _rename_with(convert_ltx2_transformer_to_diffusers, pre)


def convert_vae_keys(names: list[str]) -> dict[str, str]:
    from diffusers.loaders.single_file_utils import convert_ltx2_vae_to_diffusers

    mapping = _rename_with(convert_ltx2_vae_to_diffusers, {n: n for n in names})
    fixed = {}
    for original, new in mapping.items():
        # diffusers' converter knows the 7-block decoder of LTX-2.0; LTX-2.3's has 9, and any extra block keeps its index.
        match = re.match(r"decoder\.up_blocks\.(\d+)\.(.*)", new)
        if match and int(match.group(1)) >= 7 and original.startswith(f"vae.decoder.up_blocks.{match.group(1)}."):
            new = f"decoder.{_decoder_block_name(int(match.group(1)))}.{match.group(2)}".replace(".res_blocks.", ".resnets.")
        fixed[original] = new
    return fixed


def convert_audio_vae_keys(names: list[str]) -> dict[str, str]:
    from diffusers.loaders.single_file_utils import convert_ltx2_audio_vae_to_diffusers

    return _rename_with(convert_ltx2_audio_vae_to_diffusers, {n: n for n in names})


CONNECTOR_RENAMES = (
    (TRANSFORMER_PREFIX + "video_embeddings_connector.", "video_connector."),
    (TRANSFORMER_PREFIX + "audio_embeddings_connector.", "audio_connector."),
    ("text_embedding_projection.video_aggregate_embed.", "video_text_proj_in."),
    ("text_embedding_projection.audio_aggregate_embed.", "audio_text_proj_in."),
    ("text_embedding_projection.aggregate_embed.", "text_proj_in."),
    (".transformer_1d_blocks.", ".transformer_blocks."),
    (".q_norm.", ".norm_q."),
    (".k_norm.", ".norm_k."),
)


def convert_connector_keys(names: list[str]) -> dict[str, str]:
    """diffusers has no single-file converter for the text connectors and projection; the renames are few."""
    mapping = {}
    for name in names:
        new = name
        for old, repl in CONNECTOR_RENAMES:
            new = new.replace(old, repl)
        mapping[name] = new
    return mapping


def _rename_with(converter: Callable[[dict], dict], pre: dict[str, str]) -> dict[str, str]:
    """Run a diffusers state-dict converter over key names only: each value is its original name, so the output maps back."""
    converted = converter({renamed: original for original, renamed in pre.items()})
    return {original: new for new, original in converted.items()}


# ----------------------------------------------------------------------------------------------
# loading
# ----------------------------------------------------------------------------------------------

COMPONENT_KEYS: dict[str, tuple[Callable[[Header], list[str]], Callable[[list[str]], dict[str, str]]]] = {
    "transformer": (lambda h: [n for n in h.names(TRANSFORMER_PREFIX) if not n.startswith(CONNECTOR_PREFIXES)], convert_transformer_keys),
    "vae": (lambda h: h.names("vae."), convert_vae_keys),
    "audio_vae": (lambda h: h.names("audio_vae."), convert_audio_vae_keys),
    "connectors": (lambda h: [n for n in h.tensors if n.startswith(CONNECTOR_PREFIXES)], convert_connector_keys),
}


def component_num_parameters(header: Header, component: str) -> int:
    select, _ = COMPONENT_KEYS[component]
    return header.num_parameters(tuple(select(header))) if select(header) else 0


def load_component(cls, config: dict, path: Path, mapping: dict[str, str], *, dtype, device: str | None = None, what: str):
    """Build ``cls`` from ``config`` on the meta device and fill it from ``path``, renaming keys by ``mapping`` as they are read."""
    import torch
    from accelerate import init_empty_weights
    from safetensors import safe_open

    kwargs = {k: v for k, v in config.items() if not k.startswith("_")}
    with init_empty_weights():
        model = cls.from_config(kwargs)
    expected = model.state_dict()
    target = str(device) if device else "cpu"
    state = {}
    try:
        with safe_open(str(path), framework="pt", device=target) as fh:
            for original, name in mapping.items():
                tensor = fh.get_tensor(original)
                if name in expected and expected[name].dtype.is_floating_point and tensor.dtype.is_floating_point:
                    # Buffers kept in float32 by the model (latent statistics, RoPE tables) stay float32.
                    keep = expected[name].dtype == torch.float32 and name.startswith(("latents_", "per_channel"))
                    tensor = tensor.to(torch.float32 if keep else dtype)
                state[name] = tensor
    except (OSError, RuntimeError) as exc:
        raise GeneratorError(f"cannot read the {what} from {path}: {str(exc).splitlines()[0]}; the file may be damaged, download it again") from None
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        detail = f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}"
        raise ModelFileError(f"{path} does not match LTX-2.3's {what} ({detail}, {len(missing)} missing, {len(unexpected)} unexpected); is it an LTX-2.3 checkpoint?")
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as exc:
        first = next((line.strip() for line in str(exc).splitlines() if "size mismatch" in line), str(exc).splitlines()[0])
        raise ModelFileError(f"{path} does not match LTX-2.3's {what}: {first}; is it an LTX-2.3 checkpoint?") from None
    # init_empty_weights leaves buffers real (on the CPU); the loaded ones were assigned on the target already.
    model.to(target)
    return model.eval()


def load_from_checkpoint(component: str, header: Header, config: dict, *, dtype, device: str | None = None):
    """One of transformer / vae / audio_vae / connectors from the single file, as its diffusers class."""
    from diffusers import AutoencoderKLLTX2Audio, AutoencoderKLLTX2Video, LTX2VideoTransformer3DModel
    from diffusers.pipelines.ltx2 import LTX2TextConnectors

    classes = {"transformer": LTX2VideoTransformer3DModel, "vae": AutoencoderKLLTX2Video, "audio_vae": AutoencoderKLLTX2Audio, "connectors": LTX2TextConnectors}
    select, convert = COMPONENT_KEYS[component]
    return load_component(classes[component], config, header.path, convert(select(header)), dtype=dtype, device=device, what=component)


def load_upsampler_file(path: Path, *, dtype, device: str | None = None):
    from diffusers.pipelines.ltx2 import LTX2LatentUpsamplerModel

    header = read_header(path, what="generator.upsampler")
    return load_component(
        LTX2LatentUpsamplerModel, upsampler_config(header), path, {n: n for n in header.tensors}, dtype=dtype, device=device, what="latent upsampler"
    )


def check_upsampler_file(path: Path) -> Header:
    header = read_header(path, what="generator.upsampler")
    if header.names(TRANSFORMER_PREFIX) or not header.names(("initial_conv.", "upsampler.", "res_blocks.", "post_upsample_res_blocks.")):
        raise ModelFileError(f"generator.upsampler: {path} is not LTX's latent upsampler: {_describe_other(header)}; {UPSAMPLER_HINT}")
    return header


def find_beside(checkpoint: Path, pattern: str) -> Path | None:
    """The one file or folder next to ``checkpoint`` matching ``pattern`` (how LTX's files sit in a models folder)."""
    matches = sorted(Path(checkpoint).parent.glob(pattern))
    return matches[0] if matches else None


def resolved_variant(options: Any) -> str:
    """``model_variant`` with ``auto`` decided: a single file named `…distilled…` is the distilled checkpoint, anything else dev."""
    variant = getattr(options, "model_variant", "auto")
    if variant != "auto":
        return variant
    model = getattr(options, "model", None)
    return "distilled" if is_single_file(model) and looks_distilled(Path(str(model))) else "dev"
