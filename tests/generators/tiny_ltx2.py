"""A tiny random LTX-2.3 model in diffusers format, built locally (nothing is downloaded).

Same classes and folder layout as ``diffusers/LTX-2.3-Diffusers`` plus a latent
upsampler, with 2.3's architecture switches on (gated attention, cross-attention
modulation, per-modality text connectors, prompt sigma modulation, perturbable
attention for STG) and every size shrunk (configs after diffusers'
``tests/pipelines/ltx2`` dummies). The video VAE compresses 4× in time and space,
so a 9-frame 32×32 clip is 3×8×8 latents and the two-stage grid is 4k+1 frames
at multiples of 8 px: other ratios than LTX-2.3's, read through the same code.

``build_tiny_ltx2(folder)`` writes it and returns the folder; seeded, so the same
call gives byte-identical weights. Building takes well under a second.
"""

from __future__ import annotations

import json
from pathlib import Path

# Every word the tests' prompts use; anything else maps to <unk>.
_VOCAB_WORDS = (
    "a person talking to the camera natural head movement soft studio light blurry distorted face extra limbs text "
    "watermark low quality woman man smiles nods speaks calmly warm office window segment one two three four five"
).split()


def _tokenizer(folder: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3}
    for word in _VOCAB_WORDS:
        vocab.setdefault(word, len(vocab))
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>",
        model_max_length=1024, padding_side="left",
    )  # fmt: skip
    tok.save_pretrained(folder)


def build_tiny_gemma(folder: Path, *, seed: int = 0, hidden_size: int = 16, num_layers: int = 2, with_tokenizer: bool = False) -> Path:
    """A tiny random Gemma-3 (``Gemma3ForConditionalGeneration``) saved to ``folder``, optionally with its tokenizer beside it."""
    import torch
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration

    torch.manual_seed(seed)
    config = Gemma3Config(
        text_config=dict(
            vocab_size=64, hidden_size=hidden_size, intermediate_size=32, num_hidden_layers=num_layers,
            num_attention_heads=2, num_key_value_heads=1, head_dim=8, max_position_embeddings=2048, sliding_window=64,
        ),
        vision_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, image_size=32, patch_size=16),
        mm_tokens_per_image=4, boi_token_index=61, eoi_token_index=62, image_token_index=63,
    )  # fmt: skip
    Gemma3ForConditionalGeneration(config).save_pretrained(folder)
    if with_tokenizer:
        _tokenizer(folder)
    return Path(folder)


def build_tiny_ltx2(folder: Path, *, with_upsampler: bool = True, seed: int = 0) -> Path:
    """Write a complete tiny LTX-2.3 diffusers folder (with ``latent_upsampler/``) to ``folder``; return it."""
    import torch
    from diffusers import AutoencoderKLLTX2Audio, AutoencoderKLLTX2Video, FlowMatchEulerDiscreteScheduler, LTX2VideoTransformer3DModel
    from diffusers.pipelines.ltx2 import LTX2LatentUpsamplerModel, LTX2TextConnectors

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    text_hidden, text_layers = 16, 2

    build_tiny_gemma(folder / "text_encoder", seed=seed, hidden_size=text_hidden, num_layers=text_layers)
    _tokenizer(folder / "tokenizer")

    # Video stream 2 heads × 8 = 16 wide, audio stream 2 × 4 = 8 wide; the connectors emit exactly those widths.
    torch.manual_seed(seed)
    LTX2TextConnectors(
        caption_channels=text_hidden, text_proj_in_factor=text_layers + 1,
        video_connector_num_attention_heads=2, video_connector_attention_head_dim=8, video_connector_num_layers=1,
        video_connector_num_learnable_registers=None, video_gated_attn=True,
        audio_connector_num_attention_heads=2, audio_connector_attention_head_dim=4, audio_connector_num_layers=1,
        audio_connector_num_learnable_registers=None, audio_gated_attn=True,
        connector_rope_base_seq_len=32, rope_theta=10000.0, rope_double_precision=False, causal_temporal_positioning=False,
        rope_type="split", per_modality_projections=True, video_hidden_dim=16, audio_hidden_dim=8, proj_bias=True,
    ).save_pretrained(folder / "connectors")  # fmt: skip

    torch.manual_seed(seed)
    LTX2VideoTransformer3DModel(
        in_channels=4, out_channels=4, patch_size=1, patch_size_t=1, num_attention_heads=2, attention_head_dim=8,
        cross_attention_dim=16, vae_scale_factors=(4, 4, 4), gated_attn=True, cross_attn_mod=True,
        audio_in_channels=4, audio_out_channels=4, audio_num_attention_heads=2, audio_attention_head_dim=4,
        audio_cross_attention_dim=8, audio_gated_attn=True, audio_cross_attn_mod=True, num_layers=2,
        qk_norm="rms_norm_across_heads", caption_channels=text_hidden, rope_double_precision=False, rope_type="split",
        use_prompt_embeddings=False, perturbed_attn=True,
    ).save_pretrained(folder / "transformer")  # fmt: skip

    torch.manual_seed(seed)
    AutoencoderKLLTX2Video(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 8), decoder_block_out_channels=(8, 8),
        layers_per_block=(1, 1, 1), decoder_layers_per_block=(1, 1, 1), spatio_temporal_scaling=(True, True),
        decoder_spatio_temporal_scaling=(True, True), decoder_inject_noise=(False, False, False),
        downsample_type=("spatiotemporal", "spatiotemporal"), upsample_type=("spatiotemporal", "spatiotemporal"),
        upsample_factor=(1, 1), upsample_residual=(False, False), timestep_conditioning=False, patch_size=1, patch_size_t=1,
        encoder_causal=True, decoder_causal=False,
    ).save_pretrained(folder / "vae")  # fmt: skip

    # 8 mel bins and latent mel 2 × 2 channels = 4 = the transformer's audio_in_channels; ×4 in time like LTX-2.3.
    torch.manual_seed(seed)
    AutoencoderKLLTX2Audio(
        base_channels=4, output_channels=2, ch_mult=(1, 2, 4), num_res_blocks=1, attn_resolutions=None, in_channels=2,
        resolution=32, latent_channels=2, norm_type="pixel", causality_axis="height", dropout=0.0,
        mid_block_add_attention=False, sample_rate=16000, mel_hop_length=160, is_causal=True, mel_bins=8,
    ).save_pretrained(folder / "audio_vae")  # fmt: skip

    # LTX-2.x's scheduler config (token-count shift, terminal stretch).
    FlowMatchEulerDiscreteScheduler(
        num_train_timesteps=1000, shift=1.0, use_dynamic_shifting=True, base_shift=0.95, max_shift=2.05,
        base_image_seq_len=1024, max_image_seq_len=4096, shift_terminal=0.1,
    ).save_pretrained(folder / "scheduler")  # fmt: skip

    if with_upsampler:
        torch.manual_seed(seed)
        LTX2LatentUpsamplerModel(
            in_channels=4, mid_channels=32, num_blocks_per_stage=1, dims=3, spatial_upsample=True, temporal_upsample=False,
            use_rational_resampler=False,
        ).save_pretrained(folder / "latent_upsampler")  # fmt: skip

    index = {
        "_class_name": "LTX2Pipeline",
        "_diffusers_version": "0.42.1",
        "audio_vae": ["diffusers", "AutoencoderKLLTX2Audio"],
        "connectors": ["ltx2", "LTX2TextConnectors"],
        "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
        "text_encoder": ["transformers", "Gemma3ForConditionalGeneration"],
        "tokenizer": ["transformers", "GemmaTokenizerFast"],
        "transformer": ["diffusers", "LTX2VideoTransformer3DModel"],
        "vae": ["diffusers", "AutoencoderKLLTX2Video"],
        "vocoder": [None, None],
    }
    (folder / "model_index.json").write_text(json.dumps(index, indent=2))
    return folder
