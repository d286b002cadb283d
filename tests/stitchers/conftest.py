"""Shared helpers for stitcher tests: run a stitch over synthetic clips, ask ffprobe like an outside client."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pytest

from orchestrator.config import ExportConfig, StitcherConfig
from segmenters.plan import Plan
from stitchers.stitch import StitchResult, stitch
from tests.media_video import decode_rgb, write_clips, write_master


@dataclass
class Stitched:
    plan: Plan
    result: StitchResult
    clips: list[Path]
    master: Path

    @property
    def path(self) -> Path:
        return self.result.output

    def frames(self) -> list[np.ndarray]:
        return decode_rgb(self.path)


def run_stitch(
    folder: Path,
    plan: Plan,
    *,
    gains: Sequence[Sequence[float]] | None = None,
    tint: Callable[[int, int], Sequence[float]] | None = None,
    stitcher: dict | None = None,
    export: dict | None = None,
    reference_rgb: np.ndarray | None = None,
    master: dict | None = None,
    progress=None,
    captions=None,
) -> Stitched:
    """Write the plan's clips and master audio into ``folder`` and stitch them (small, fast settings by default)."""
    folder.mkdir(parents=True, exist_ok=True)
    clips = write_clips(plan, folder / "clips", gains=gains, tint=tint)
    wav = write_master(folder / "master.wav", plan, **(master or {}))
    export_cfg = ExportConfig(**{"preset": "master", "crf": 14, "x264_preset": "veryfast", **(export or {})})
    stitcher_cfg = StitcherConfig(**{"color_hold": "off", **(stitcher or {})})
    result = stitch(plan, clips, wav, folder / "out.mp4", stitcher=stitcher_cfg, export=export_cfg, reference_rgb=reference_rgb, progress=progress,
                    captions=captions)
    return Stitched(plan, result, clips, wav)


def require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed (.ci/run installs it)")
    return path


def ffprobe(path: Path, *args: str) -> dict[str, Any]:
    out = subprocess.run(
        [require("ffprobe"), "-v", "error", "-print_format", "json", "-show_format", "-show_streams", *args, str(path)],
        capture_output=True, text=True, check=True,
    )
    return json.loads(out.stdout)


def top_level_atoms(path: Path) -> list[str]:
    """The MP4's top-level box types in file order (ftyp, moov, mdat, …)."""
    names = []
    with open(path, "rb") as fh:
        while header := fh.read(8):
            size, kind = struct.unpack(">I4s", header)
            if size == 1:
                size = struct.unpack(">Q", fh.read(8))[0] - 8
            elif size == 0:
                names.append(kind.decode("latin-1"))
                break
            names.append(kind.decode("latin-1"))
            fh.seek(size - 8, 1)
    return names
