"""Tiled stage-2 refinement: each transformer pass of stage 2 runs on overlapping spatial tiles of the latent.

Stage 2 refines the ×2-upsampled latent at full size, where self-attention over
all video tokens is quadratic in their number (≈70 % of a pass at 124k tokens).
With ``generator.stage2_tile_px`` set, every stage-2 transformer pass is split
into spatial tiles (all latent frames, all of the frozen audio), and the tiles'
velocities are blended back into one before the Euler step, so the schedule,
the conditioning and the audio are those of the untiled stage. A tile keeps its
tokens' absolute RoPE coordinates, so it sees where it sits in the frame; what
it loses is attention to tokens outside it. That makes the result approximate
(off by default): attention cost drops from ``T²`` to ``Σ tileᵢ²`` and the
activations held at once from those of ``T`` tokens to those of one tile.

The tiling follows the semantics of ltx-core's spatial VAE tiling
(``ltx_core.model.video_vae.tiling``, ltx-pipelines 1.0.0), which is the only
spatial tiling Lightricks' pipelines ship (default 512 px tiles, 64 px
overlap): an axis of ``L`` latents is cut into tiles of ``size`` latents whose
starts step by ``size - overlap``, the last one clamped to the edge; each tile
fades in over its left overlap and out over its right one with linear ramps
that exclude 0 and 1 (``k / (overlap + 1)``), a 2-D tile weight is the product
of its row and column ramps, and the blend divides by the summed weights
(which are 1 wherever two ramps meet). Appended keyframe tokens belong to the
tiles their spatial coordinates fall in, like the base tokens under them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from orchestrator.errors import GeneratorError

if TYPE_CHECKING:  # pragma: no cover
    import torch

TILE_PX_STEP = 32  # one latent of LTX-2's VAE: tile sizes and overlaps are whole latents
MIN_TILE_PX = 64


@dataclass(frozen=True)
class Interval:
    """One tile along one axis, in latents: ``[start, end)`` with ramps of ``left``/``right`` latents."""

    start: int
    end: int
    left: int
    right: int


@dataclass(frozen=True)
class Stage2Tiling:
    """Tile size and overlap in output pixels (multiples of 32, like ltx-core's ``SpatialTilingConfig``)."""

    tile_px: int
    overlap_px: int = 64

    def __post_init__(self) -> None:
        if self.tile_px < MIN_TILE_PX or self.tile_px % TILE_PX_STEP:
            raise GeneratorError(f"generator.stage2_tile_px must be 0 (off) or a multiple of 32 of at least 64, got {self.tile_px}")
        if self.overlap_px < 0 or self.overlap_px % TILE_PX_STEP or self.overlap_px >= self.tile_px:
            raise GeneratorError(
                f"generator.stage2_tile_overlap_px must be a multiple of 32 below stage2_tile_px ({self.tile_px}), got {self.overlap_px}"
            )

    @classmethod
    def from_options(cls, options) -> "Stage2Tiling | None":
        tile_px = int(getattr(options, "stage2_tile_px", 0) or 0)
        if tile_px == 0:
            return None
        return cls(tile_px=tile_px, overlap_px=int(getattr(options, "stage2_tile_overlap_px", 64)))

    def latent_size(self, spatial_scale: int) -> tuple[int, int]:
        """(tile, overlap) in latents of a VAE with ``spatial_scale`` pixels per latent."""
        return max(1, self.tile_px // spatial_scale), self.overlap_px // spatial_scale

    def axis_intervals(self, length: int, spatial_scale: int = TILE_PX_STEP) -> list[Interval]:
        size, overlap = self.latent_size(spatial_scale)
        return split_axis(length, size, overlap)

    def tile_tokens(self, latent_h: int, latent_w: int, latent_f: int, spatial_scale: int = TILE_PX_STEP) -> list[int]:
        """Video tokens of each tile (patch size 1), for the cost model."""
        rows = self.axis_intervals(latent_h, spatial_scale)
        cols = self.axis_intervals(latent_w, spatial_scale)
        return [latent_f * (r.end - r.start) * (c.end - c.start) for r in rows for c in cols]


def split_axis(length: int, size: int, overlap: int) -> list[Interval]:
    """Cut ``length`` latents into tiles of ``size`` stepping by ``size - overlap``; one tile when it already fits."""
    if length <= size:
        return [Interval(0, length, 0, 0)]
    stride = size - overlap
    count = -(-(length - overlap) // stride)  # enough tiles that the last reaches the edge
    starts = [i * stride for i in range(count)]
    return [
        Interval(start, min(start + size, length) if i < count - 1 else length, overlap if i else 0, overlap if i < count - 1 else 0)
        for i, start in enumerate(starts)
    ]


def ramp_weights(length: int, left: int, right: int) -> "torch.Tensor":
    """A trapezoid of ``length``: linear fade-in over ``left``, fade-out over ``right``, both excluding 0 and 1."""
    import torch

    weight = torch.ones(length, dtype=torch.float32)
    if left:
        weight[:left] = torch.arange(1, left + 1, dtype=torch.float32) / (left + 1)
    if right:
        weight[length - right :] *= torch.arange(right, 0, -1, dtype=torch.float32) / (right + 1)
    return weight


@dataclass
class TokenTile:
    """The packed-token indices of one tile and each one's blend weight."""

    index: "torch.Tensor"  # [n] long
    weight: "torch.Tensor"  # [n] float32


def token_tiles(video_coords: "torch.Tensor", tiling: Stage2Tiling, spatial_scale: int) -> list[TokenTile]:
    """Tiles of the packed video tokens from their pixel coordinates ``[1, 3, tokens, 2]`` (keyframe tokens included)."""
    import torch

    rows = torch.div(video_coords[0, 1, :, 0], spatial_scale, rounding_mode="floor").long().cpu()
    cols = torch.div(video_coords[0, 2, :, 0], spatial_scale, rounding_mode="floor").long().cpu()
    height, width = int(rows.max()) + 1, int(cols.max()) + 1
    tiles = []
    for r in tiling.axis_intervals(height, spatial_scale):
        row_w = ramp_weights(r.end - r.start, r.left, r.right)
        for c in tiling.axis_intervals(width, spatial_scale):
            col_w = ramp_weights(c.end - c.start, c.left, c.right)
            inside = (rows >= r.start) & (rows < r.end) & (cols >= c.start) & (cols < c.end)
            index = inside.nonzero().squeeze(1)
            tiles.append(TokenTile(index=index, weight=row_w[rows[index] - r.start] * col_w[cols[index] - c.start]))
    return tiles


def blend_weight_sum(tiles: list[TokenTile], num_tokens: int) -> "torch.Tensor":
    import torch

    total = torch.zeros(num_tokens, dtype=torch.float32)
    for tile in tiles:
        total.index_add_(0, tile.index, tile.weight)
    return total


def tiled_pass(pass_fn: Callable[..., "torch.Tensor"], tiles: list[TokenTile]) -> Callable[..., "torch.Tensor"]:
    """``pass_fn`` (``ltx2_guidance.transformer_pass``) run per tile, the tiles' velocities blended into one."""
    import torch

    def run(transformer, *, latents: "torch.Tensor", video_timestep: "torch.Tensor", video_coords: "torch.Tensor", **kwargs) -> "torch.Tensor":
        device = latents.device
        total = blend_weight_sum(tiles, latents.shape[1])
        if bool((total <= 0).any()):
            raise GeneratorError("stage-2 tiling left some video tokens outside every tile (their coordinates lie off the latent grid)")
        blended = torch.zeros(latents.shape, dtype=torch.float32, device=device)
        for tile in tiles:
            index = tile.index.to(device)
            velocity = pass_fn(
                transformer,
                latents=latents[:, index], video_timestep=video_timestep[:, index], video_coords=video_coords[:, :, index], **kwargs
            )
            blended.index_add_(1, index, velocity.float() * tile.weight.to(device)[None, :, None])
        return blended / total.to(device)[None, :, None]

    return run
