"""`longtake init`: a starter project file next to a voiceover and a portrait."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from orchestrator.atomic import atomic_write_text
from orchestrator.errors import ConfigError, MediaError, not_a_file, refuse_folder
from orchestrator.preflight import Write, refuse_overwriting_inputs, report_paths, same_file

STARTER = """\
# longtake project. Every key is documented in configs/example.yaml of the longtake repo.
# Paths are relative to this file.
{paths}prompt: "A person talking warmly to the camera, natural head movement, soft studio light."
# negative_prompt: LTX-2's own by default (names lip-sync and voice failures); set one to replace it
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
  model: models/ltx-2.3-22b-dev.safetensors   # from huggingface.co/Lightricks/LTX-2.3 (or a diffusers-format folder)
  text_encoder: models/gemma-3-12b-it-qat-q4_0-unquantized   # Gemma-3 folder (google/gemma-3-12b-it-qat-q4_0-unquantized)
  upsampler: models/ltx-2.3-spatial-upscaler-x2-1.1.safetensors
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
    inputs = {"voiceover": Path(voiceover), "portrait": Path(portrait)}
    refuse_overwriting_inputs([Write("project file", project_file, "pass -o with another name")], inputs)
    if project_file.exists() and not force:
        raise ConfigError(f"{project_file} already exists; pass --force to overwrite it or -o to write elsewhere")
    base = project_file.resolve().parent
    paths = {
        "voiceover": _rel(voiceover, base),
        "portrait": _rel(portrait, base),
        "output": _rel(free_output_name(Path(voiceover), base, [*inputs.values(), project_file]), base),
    }
    # The YAML library quotes what needs quoting (`take #2.wav`, `a: b.wav`, `[draft].wav`).
    text = STARTER.format(
        paths=yaml.safe_dump(paths, sort_keys=False, allow_unicode=True, width=2**31),
        backend=backend,
        backend_options={"ltx2": LTX2_OPTIONS, "fal": FAL_OPTIONS}.get(backend, ""),
        chaining="bookend                # bookend | anchor | last-frame (tail cannot run on fal)" if backend == "fal"
        else "tail                 # tail | last-frame | anchor | bookend",
    )
    parsed = yaml.safe_load(text)
    if any(parsed.get(k) != v for k, v in paths.items()):  # pragma: no cover - the library's own guarantee
        raise ConfigError(f"could not write the paths {paths} into a project file that reads them back unchanged")
    atomic_write_text(project_file, text, doing=f"write the project file {project_file}", elsewhere="pass -o with a file in another folder")
    return project_file


def free_output_name(voiceover: Path, folder: Path, avoid: list[Path]) -> Path:
    """``<voiceover stem>.longtake.mp4`` in ``folder`` (numbered when needed) that is none of ``avoid``.

    The voiceover may itself be an MP4 (``talk.mp4``): the video must never take its name.
    """
    stem = voiceover.stem
    for n in range(1, 1000):
        candidate = folder / (f"{stem}.longtake.mp4" if n == 1 else f"{stem}.longtake-{n}.mp4")
        if not any(same_file(target, a) for target in (candidate, *report_paths(candidate)) for a in avoid):
            return candidate
    raise ConfigError(f"could not find a free output name beside {voiceover}; set `output:` by hand")  # pragma: no cover


def _rel(path: Path, base: Path) -> str:
    return os.path.relpath(Path(path).resolve(), base)
