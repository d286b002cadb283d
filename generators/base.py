"""The generator interface: one segment request in, one clip on disk out.

Every backend (``ltx2``, ``animatic``, …) subclasses ``Generator``, sets ``NAME``
and registers in ``generators.GENERATORS``. Heavy imports (torch, diffusers)
happen inside ``load()``, never at module import, so planning and ``--help``
stay fast and need no GPU.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar

import numpy as np

from segmenters.plan import FrameGrid

if TYPE_CHECKING:  # pragma: no cover
    from generators.cost import CostModel

# progress(done_steps, total_steps, stage_name)
ProgressFn = Callable[[int, int, str], None]


@dataclass(frozen=True)
class GenerateRequest:
    """Everything one segment needs. Frames are local to the clip: 0 … num_frames-1."""

    segment_index: int
    num_frames: int  # frame_grid*k + 1
    width: int  # generation size, a multiple of spatial_multiple
    height: int
    fps: Fraction
    audio: np.ndarray = field(repr=False)  # float32 [samples, channels] at sample_rate_hz: exactly the generated span, silence-padded
    sample_rate_hz: int
    prompt: str
    negative_prompt: str
    seed: int
    portrait: np.ndarray = field(repr=False)  # uint8 [height, width, 3], already framed to the output aspect
    chaining: str  # "tail" | "last-frame" | "anchor" | "bookend"
    context: np.ndarray | None = field(default=None, repr=False)  # uint8 [C, H, W, 3]: frames 0…C-1 to continue from (colour-held)
    identity_anchor_strength: float = 0.0
    tail_start: int = 0  # local index of the first frame the next segment continues from
    tail_frames: int = 0  # how many frames to keep losslessly for the next segment (0: none)
    out_dir: Path = Path(".")  # write here; the caller moves the folder into the cache when complete
    job_key: str = ""  # the segment's cache key: a hosted backend files its request under it to re-attach after a crash


@dataclass(frozen=True)
class GenerateResult:
    clip_path: Path  # num_frames frames at width×height, fps: the high-quality intermediate (H.264, see stitchers.clip_io)
    tail_path: Path | None  # lossless uint8 .npy [tail_frames, H, W, 3], or None when tail_frames == 0
    num_frames: int
    timings_s: dict[str, float] = field(default_factory=dict)


class Generator(ABC):
    NAME: ClassVar[str]

    def __init__(self, options: Any, *, cache_dir: Path | None = None):
        self.options = options
        self.cache_dir = cache_dir

    @classmethod
    @abstractmethod
    def grid_for(cls, options: Any) -> FrameGrid:
        """The frame grid and spatial multiple for these options, without loading weights."""

    @classmethod
    def cost_model(cls, options: Any) -> "CostModel | None":
        """What this backend's segments cost (``generators.cost``), without loading weights; None when it cannot say."""
        return None

    @abstractmethod
    def model_identity(self) -> str:
        """A stable string naming the model and every option that changes its output (part of cache keys)."""

    def load(self) -> None:
        """Load models; idempotent. Called once per run before the first segment."""

    def preflight(self, width: int, height: int, num_frames: int) -> None:
        """Refuse settings that cannot run (memory, grid) before the first segment starts; called after load()."""

    def prefetch(self, requests: list[GenerateRequest]) -> None:
        """Segments that do not depend on each other, in the order ``generate`` will be asked for them.

        A hosted backend may start them early (several in flight at once); local ones ignore this.
        """

    @classmethod
    def estimate_cost(cls, options: Any, plan: Any, indices: list[int] | None = None) -> Any:
        """The money these segments cost (an object with ``total_usd`` and ``describe()``), or None when free to run."""
        return None

    def encode_prompts(self, prompts: list[str]) -> None:
        """Encode each distinct prompt once (backends without a text encoder do nothing)."""

    @abstractmethod
    def generate(self, request: GenerateRequest, progress: ProgressFn | None = None) -> GenerateResult:
        """Generate one segment's clip into ``request.out_dir``."""

    def close(self) -> None:
        """Free models and memory."""
