"""Fixtures for CLI-level tests: real speech (espeak-ng), a drawn portrait, small projects."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]

SPEECH = (
    "Welcome to this short test. We are checking that long voice overs are split at pauses. "
    "Each sentence ends with a full stop, so there is a clear gap. "
    "The planner should cut inside these gaps and never inside a word. "
    "Then every segment is generated, one after another. "
    "Finally the pieces are joined, and the original audio goes back on top. "
    "That is the whole idea, thank you for listening."
)


def _need(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed (.ci/run installs it)")


def draw_portrait(width: int = 256, height: int = 320) -> np.ndarray:
    """A face-like drawing: skin oval, eyes, mouth, on a two-tone background."""
    yy, xx = np.mgrid[0:height, 0:width]
    img = np.zeros((height, width, 3), np.uint8)
    img[:] = (40, 70, 110)
    img[yy > height * 0.75] = (90, 60, 50)
    cx, cy = width / 2, height * 0.42
    face = ((xx - cx) / (width * 0.22)) ** 2 + ((yy - cy) / (height * 0.25)) ** 2 < 1
    img[face] = (225, 180, 150)
    for ex in (cx - width * 0.08, cx + width * 0.08):
        eye = ((xx - ex) / (width * 0.03)) ** 2 + ((yy - (cy - height * 0.05)) / (height * 0.02)) ** 2 < 1
        img[eye] = (30, 30, 30)
    mouth = ((xx - cx) / (width * 0.07)) ** 2 + ((yy - (cy + height * 0.12)) / (height * 0.015)) ** 2 < 1
    img[mouth] = (150, 60, 60)
    return img


def write_project(folder: Path, voiceover: Path, portrait: Path, **overrides) -> Path:
    """A small, fast animatic project (128×224, short segments) with overrides merged in."""
    data = {
        "voiceover": str(voiceover),
        "portrait": str(portrait),
        "prompt": "a person talking",
        "output": "out/video.mp4",
        "seed": 3,
        "video": {"width": 128, "height": 224, "fps": 24},
        "segmenter": {"vad": "webrtc", "max_segment_s": 6, "min_segment_s": 2, "target_segment_s": 4, "context_frames": 9},
        "generator": {"backend": "animatic", "chaining": "tail"},
        "export": {"preset": "master", "x264_preset": "ultrafast"},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "project.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def longtake(*args: str, cwd: Path | None = None, timeout: float = 300, check: bool = False) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "orchestrator.cli", *args], cwd=cwd or REPO, env=env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"longtake {' '.join(args)} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def events(proc: subprocess.CompletedProcess) -> list[dict]:
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def steps_with(evts: list[dict], kind: str) -> list[str]:
    return [e["step"] for e in evts if e["event"] == kind]
