"""LTX-2.3 audio-to-video through diffusers components (the real generator).

Only the frame grid lives here so far; it is read from the model folder's VAE
config without loading weights, so ``longtake plan`` never needs a GPU.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from generators import register
from generators.base import GenerateRequest, GenerateResult, Generator, ProgressFn
from segmenters.plan import FrameGrid

# LTX-2.3's video VAE: 8 frames per latent frame, 32 px per latent pixel.
LTX2_TEMPORAL_COMPRESSION = 8
LTX2_SPATIAL_COMPRESSION = 32


def vae_compression_from_config(model: str | Path | None) -> tuple[int, int]:
    """(temporal, spatial) compression of the video VAE, from ``<model>/vae/config.json`` if it is a local folder.

    Falls back to LTX-2.3's known ratios for a hub id or a folder without the file.
    """
    if model:
        cfg_path = Path(model) / "vae" / "config.json"
        if cfg_path.is_file():
            cfg = json.loads(cfg_path.read_text())
            scaling = cfg.get("spatio_temporal_scaling", (True, True, True, True))
            if isinstance(scaling, bool):
                scaling = (scaling,) * (len(cfg.get("layers_per_block", (4, 6, 6, 2, 2))) - 1)
            n_scaling = sum(bool(s) for s in scaling)
            spatial = cfg.get("spatial_compression_ratio") or cfg.get("patch_size", 4) * 2**n_scaling
            temporal = cfg.get("temporal_compression_ratio") or cfg.get("patch_size_t", 1) * 2**n_scaling
            return int(temporal), int(spatial)
    return LTX2_TEMPORAL_COMPRESSION, LTX2_SPATIAL_COMPRESSION


@register
class LTX2Generator(Generator):
    NAME = "ltx2"

    @classmethod
    def grid_for(cls, options: Any) -> FrameGrid:
        temporal, spatial = vae_compression_from_config(getattr(options, "model", None))
        # Two-stage runs stage 1 at half size, so the output must divide by twice the VAE's ratio.
        two_stage = getattr(options, "stage2", "distilled") != "none"
        return FrameGrid(frame_grid=temporal, spatial_multiple=spatial * (2 if two_stage else 1))

    def model_identity(self) -> str:  # pragma: no cover - completed with the generator (issue 5)
        raise NotImplementedError("the ltx2 generator is not built yet (issue 5)")

    def generate(self, request: GenerateRequest, progress: ProgressFn | None = None) -> GenerateResult:  # pragma: no cover
        raise NotImplementedError("the ltx2 generator is not built yet (issue 5)")
