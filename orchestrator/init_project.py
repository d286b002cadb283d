"""`longtake init`: a starter project file next to a voiceover and a portrait."""

from __future__ import annotations

import os
from pathlib import Path

from orchestrator.atomic import atomic_write_text
from orchestrator.errors import ConfigError, MediaError, not_a_file, refuse_folder

STARTER = """\
# longtake project. Every key is documented in configs/example.yaml of the longtake repo.
# Paths are relative to this file.
voiceover: {voiceover}
portrait: {portrait}
prompt: "A person talking warmly to the camera, natural head movement, soft studio light."
negative_prompt: "blurry, distorted face, extra limbs, text, watermark, low quality"
output: {stem}.mp4
seed: 0
video: {{width: 1080, height: 1920, fps: 24}}   # 9:16 for TikTok, Reels and Shorts
audio: {{target_lufs: -14, trim_leading_silence: true}}
segmenter: {{vad: silero, max_segment_s: 20, max_seams_per_minute: 6, min_segment_s: 4, min_pause_ms: 250, context_frames: 9}}
generator:
  backend: {backend}{backend_options}
  chaining: {chaining}
stitcher: {{color_hold: first, color_hold_strength: 0.8}}
export: {{preset: tiktok}}       # tiktok | reels | shorts | master
"""

LTX2_OPTIONS = """
  model: diffusers/LTX-2.3-Diffusers   # or a local folder in diffusers format
  device: cuda
  dtype: bfloat16
  offload: none                  # model | sequential on GPUs under ~48 GB"""

FAL_OPTIONS = """
  endpoint: fal-ai/ltx-2.3-22b/distilled/audio-to-video   # the key comes from FAL_KEY in the environment
  max_cost_usd: 10               # `longtake run` refuses above this estimate unless --yes (`longtake plan` shows it)"""


def write_starter_project(voiceover: Path, portrait: Path, project_file: Path | None, *, backend: str = "ltx2", force: bool = False) -> Path:
    for kind, path in (("voiceover", voiceover), ("portrait", portrait)):
        problem = not_a_file(path)
        if problem:
            raise MediaError(f"{kind} {path} {problem}; name the {kind} file")
    project_file = Path(project_file) if project_file else Path(voiceover).with_name("project.yaml")
    refuse_folder(project_file, f"write the project file {project_file}", elsewhere="pass -o with a file name")
    if project_file.exists() and not force:
        raise ConfigError(f"{project_file} already exists; pass --force to overwrite it or -o to write elsewhere")
    base = project_file.resolve().parent
    text = STARTER.format(
        voiceover=_rel(voiceover, base),
        portrait=_rel(portrait, base),
        stem=Path(voiceover).stem,
        backend=backend,
        backend_options={"ltx2": LTX2_OPTIONS, "fal": FAL_OPTIONS}.get(backend, ""),
        chaining="bookend                # bookend | anchor | last-frame (tail cannot run on fal)" if backend == "fal"
        else "tail                 # tail | last-frame | anchor | bookend",
    )
    atomic_write_text(project_file, text, doing=f"write the project file {project_file}", elsewhere="pass -o with a file in another folder")
    return project_file


def _rel(path: Path, base: Path) -> str:
    return os.path.relpath(Path(path).resolve(), base)
