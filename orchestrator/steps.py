"""What each step of the run graph does, given its inputs, writing into a cache entry.

Each function here is the body of one step: it reads finished upstream entries,
writes its outputs into the ``EntryWriter``'s temporary folder and records
metadata. Keys, caching, order and resume live in ``orchestrator.graph``.
Each step has a code version: bump it when a change alters the step's output,
so finished entries made by older code are redone.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from orchestrator.atomic import atomic_copy
from orchestrator.config import Project
from orchestrator.errors import MediaError
from segmenters.plan import INDEPENDENT_MODES, FrameGrid, Plan, Segment

if TYPE_CHECKING:  # pragma: no cover
    from generators.base import Generator
    from orchestrator.cache import CacheEntry, EntryWriter

log = logging.getLogger("longtake")

CODE_VERSIONS = {
    "ingest": "ingest-1",
    "vad": "vad-1",
    "plan": "plan-1",
    "captions": "captions-1",
    "portrait": "portrait-1",
    "segment": "segment-1",
    "stitch": "stitch-1",
    "report": "report-1",
}


def segment_seed(project_seed: int, index: int) -> int:
    """A per-segment seed derived from the project seed: reproducible, decorrelated across segments."""
    digest = hashlib.sha256(f"longtake-seed:{project_seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


# -- ingest / vad / plan -------------------------------------------------------------

def run_ingest(project: Project, out: "EntryWriter") -> None:
    from segmenters.ingest import ingest_audio, write_master_wav

    master = ingest_audio(project.voiceover, project.audio)
    write_master_wav(master, out.add_output("master.wav"))
    np.save(out.add_output("vad16k.npy"), master.vad_16k.astype(np.float32))
    out.meta.update(
        sample_rate_hz=master.sample_rate_hz,
        duration_samples=master.duration_samples,
        trim_start_sample=master.trim_start_sample,
        channels=int(master.samples.shape[1]) if master.samples.ndim == 2 else 1,
        lufs_before=master.lufs_before,
        lufs_after=master.lufs_after,
        gain_db=master.gain_db,
        true_peak_dbtp=master.true_peak_dbtp,
        warnings=list(master.warnings),
    )


def run_vad(vad_name: str, threshold: float, ingest: "CacheEntry", out: "EntryWriter") -> None:
    from segmenters.vad import get_vad

    audio = np.load(ingest.output("vad16k.npy"))
    result = get_vad(vad_name, threshold).detect(audio)
    np.save(out.add_output("vad.npy"), result.probs.astype(np.float32))
    out.meta.update(backend=result.backend, hop_samples=result.hop_samples, sample_rate_hz=result.sample_rate_hz)


def run_plan(
    project: Project, grid: FrameGrid, context_frames: int, ingest: "CacheEntry", vad: "CacheEntry", out: "EntryWriter",
    target_segment_s: float | None = None,
    sentence_end_frames: Sequence[int] = (),
) -> Plan:
    from segmenters.plan_plot import draw_plan
    from segmenters.planner import PlannerSettings, generation_size, plan_voiceover
    from segmenters.segment_length import DEFAULT_TARGET_SEGMENT_S

    seg = project.segmenter
    width, height = generation_size(project.video.width, project.video.height, grid.spatial_multiple)
    audio_16k = np.load(ingest.output("vad16k.npy"))
    probs = np.load(vad.output("vad.npy"))
    plan = plan_voiceover(
        duration_samples=ingest.meta["duration_samples"],
        sample_rate_hz=ingest.meta["sample_rate_hz"],
        trim_start_sample=ingest.meta["trim_start_sample"],
        audio_16k=audio_16k,
        vad_probs=probs,
        vad_hop_samples=vad.meta["hop_samples"],
        vad_name=vad.meta["backend"],
        settings=PlannerSettings(
            seg.max_segment_s, seg.min_segment_s, target_segment_s or seg.target_segment_s or DEFAULT_TARGET_SEGMENT_S, seg.min_pause_ms, seg.vad_threshold
        ),
        grid=grid,
        fps=project.video.fps,
        width=width,
        height=height,
        chaining=project.generator.chaining,
        context_frames=context_frames,
        sentence_end_frames=sentence_end_frames,
    )
    out.add_output("plan.json").write_text(plan.to_json())
    draw_plan(plan, audio_16k, probs, vad.meta["hop_samples"], out.add_output("plan.png"), threshold=seg.vad_threshold)
    out.meta["warnings"] = list(plan.warnings)
    return plan


# -- captions ---------------------------------------------------------------------------

def run_captions(project: Project, ingest: "CacheEntry", out: "EntryWriter"):
    """Align the script to the master audio: words.json (master samples), captions.srt/.vtt (voiceover time)."""
    from captions.align import align_script
    from captions.cues import write_caption_files
    from captions.script import load_script

    cfg = project.captions
    script = load_script(cfg.script)
    alignment = align_script(
        script, np.load(ingest.output("vad16k.npy")), master_rate_hz=ingest.meta["sample_rate_hz"],
        master_samples=ingest.meta["duration_samples"], voice=cfg.voice,
    )
    for name in ("captions.srt", "captions.vtt", "words.json"):
        out.add_output(name)
    write_caption_files(alignment, out.dir, trim_start_sample=ingest.meta["trim_start_sample"])
    sr = alignment.sample_rate_hz
    warnings = [f"captions: line {line.index} is not in the voiceover and gets no captions: “{line.text}”" for line in alignment.missing_lines]
    warnings += [f"captions: speech at {a / sr:.1f}–{b / sr:.1f} s (video time) is not in the script" for a, b in alignment.unscripted]
    low = [line.index for line in alignment.lines if line.found and line.confidence < 0.5]
    if low:
        warnings.append(f"captions: low alignment confidence on line(s) {', '.join(map(str, low))}; check them (`longtake captions` shows the table)")
    for message in warnings:
        log.warning(message)
    out.meta.update(
        warnings=warnings,
        lines=len(alignment.lines),
        words=len(alignment.words),
        missing_lines=[line.index for line in alignment.missing_lines],
        unscripted_s=[[round(a / sr, 2), round(b / sr, 2)] for a, b in alignment.unscripted],
        timings_s=alignment.timings_s,
    )
    return alignment


# -- portrait ---------------------------------------------------------------------------

def run_portrait(project: Project, width: int, height: int, out: "EntryWriter") -> None:
    from PIL import Image

    from generators.portrait import prepare_portrait

    prepared = prepare_portrait(project.portrait, width, height)
    Image.fromarray(prepared.image).save(out.add_output("portrait.png"))
    out.meta.update(face_box=list(prepared.face_box) if prepared.face_box else None, warnings=list(prepared.warnings))


def load_portrait(entry: "CacheEntry") -> np.ndarray:
    from PIL import Image

    with Image.open(entry.output("portrait.png")) as im:
        return np.asarray(im.convert("RGB"))


# -- segments ---------------------------------------------------------------------------

def read_audio_span(master_wav: Path, start_sample: int, end_sample: int) -> np.ndarray:
    """float32 [end-start, channels] of the master track, zero-padded where the span runs past the end."""
    import soundfile as sf

    with sf.SoundFile(str(master_wav)) as f:
        channels = f.channels
        n = end_sample - start_sample
        span = np.zeros((n, channels), dtype=np.float32)
        lo = max(0, start_sample)
        hi = min(f.frames, end_sample)
        if hi > lo:
            f.seek(lo)
            span[lo - start_sample : hi - start_sample] = f.read(hi - lo, dtype="float32", always_2d=True)
    return span


def audio_span_sha256(span: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(span).tobytes()).hexdigest()


def tail_range(plan: Plan, seg: Segment) -> tuple[int, int]:
    """(local start, count) of the frames the next segment continues from; (0, 0) when none is needed."""
    if seg.index + 1 >= len(plan.segments) or plan.chaining in INDEPENDENT_MODES:
        return 0, 0
    nxt = plan.segments[seg.index + 1]
    return nxt.gen_start_frame - seg.gen_start_frame, nxt.context_frames


def run_segment(
    *,
    generator: "Generator",
    out: "EntryWriter",
    progress: Callable[[int, int, str], None] | None,
    job_key: str = "",
    **fields,
) -> None:
    """Generate one segment into ``out``; ``fields`` are ``build_request``'s (plan, seg, prompt, …)."""
    request = build_request(out_dir=out.dir, job_key=job_key, **fields)
    result = generator.generate(request, progress)
    _check_and_register(fields["plan"], fields["seg"], result, fields["seed"], out)


def build_request(
    *,
    plan: Plan,
    seg: Segment,
    prompt: str,
    negative_prompt: str,
    seed: int,
    portrait: np.ndarray,
    audio: np.ndarray,
    context: np.ndarray | None,
    identity_anchor_strength: float,
    out_dir: Path,
    job_key: str = "",
):
    """The generator's request for one segment of the plan."""
    from generators.base import GenerateRequest

    tail_start, tail_frames = tail_range(plan, seg)
    return GenerateRequest(
        segment_index=seg.index,
        num_frames=seg.gen_frames,
        width=plan.width,
        height=plan.height,
        fps=plan.fps,
        audio=audio,
        sample_rate_hz=plan.sample_rate_hz,
        prompt=prompt,
        negative_prompt=negative_prompt,
        seed=seed,
        portrait=portrait,
        chaining=plan.chaining,
        context=context,
        identity_anchor_strength=identity_anchor_strength,
        tail_start=tail_start,
        tail_frames=tail_frames,
        out_dir=Path(out_dir),
        job_key=job_key,
    )


def _check_and_register(plan: Plan, seg: Segment, result, seed: int, out: "EntryWriter") -> None:
    from stitchers.clip_io import probe_video

    info = probe_video(result.clip_path)
    if info.num_frames != seg.gen_frames or (info.width, info.height) != (plan.width, plan.height):
        raise MediaError(
            f"segment {seg.index}: the generator wrote {info.num_frames} frames of {info.width}×{info.height}, "
            f"the plan needs {seg.gen_frames} of {plan.width}×{plan.height}"
        )
    _register(out, result.clip_path, "clip.mp4")
    if result.tail_path is not None:
        _register(out, result.tail_path, "tail.npy")
    out.meta.update(timings_s=result.timings_s, seed=seed, num_frames=result.num_frames)


def _register(out: "EntryWriter", produced: Path, name: str) -> None:
    """Record a file the generator wrote as the entry's output ``name`` (moving it if it used another name)."""
    target = out.add_output(name)
    if Path(produced).resolve() != target.resolve():
        shutil.move(str(produced), str(target))


# -- stitch / report ------------------------------------------------------------------------

def export_to_output(produced: Path, output: Path) -> None:
    """Copy a finished file to the user's output path atomically (never a half-written output)."""
    atomic_copy(produced, output, doing=f"write {output}", elsewhere="set `output:` in the project file to another folder")
