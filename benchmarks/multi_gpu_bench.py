"""Segments across N GPUs: `longtake run --gpus N` on one project, for each N given, from an empty cache.

For every N in ``--gpus`` (e.g. ``1,2,4,8``) the project is copied to a fresh
work folder and rendered by the Ray executor; the ``--json`` events give

- ``segments_s``: first segment sent out -> last segment finished (what the GPUs
  parallelise),
- ``wall_s``: the whole command (Ray start, model loads, ingest, stitch, report),

and the speed-up of each against the first N. Independent segments (``anchor``,
and any mode whose segments read no other segment) spread over the actors; a
chained project uses one GPU at a time, so use ``--chaining anchor`` (or
``bookend`` where that mode exists) for the scaling figure.

``--tiny`` renders a small animatic project on the CPU (Ray declares N pretend
GPUs): a smoke test of this script and of the executor, not a GPU figure.

    python benchmarks/multi_gpu_bench.py --project configs/demo.yaml --gpus 1,2 --chaining anchor
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def run_once(project: Path, gpus: int, chaining: str | None, scratch: Path, overrides: dict | None = None) -> dict:
    data = yaml.safe_load(project.read_text())
    base = project.resolve().parent
    for key in ("voiceover", "portrait"):
        data[key] = str((base / data[key]).resolve())
    if (data.get("captions") or {}).get("script"):
        data["captions"]["script"] = str((base / data["captions"]["script"]).resolve())
    for dotted, value in (overrides or {}).items():
        *parents, leaf = dotted.split(".")
        node = data
        for name in parents:
            if not isinstance(node.get(name), dict):
                node[name] = {}
            node = node[name]
        if value is None and leaf in node:
            del node[leaf]
        elif value is not None:
            node[leaf] = value
    if chaining:
        data.setdefault("generator", {})["chaining"] = chaining
    folder = scratch / f"gpus{gpus}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    data["workdir"] = str(folder / "work")
    data["output"] = str(folder / "video.mp4")
    path = folder / "project.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "orchestrator.cli", "run", str(path), "--gpus", str(gpus), "--json"],
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}, capture_output=True, text=True)
    wall_s = time.monotonic() - t0
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0:
        errors = [e.get("error") or e.get("message") for e in events if e["event"] in ("project_finished", "step_failed", "log")]
        raise SystemExit(f"--gpus {gpus} failed ({proc.returncode}): {errors}\n{proc.stderr[-2000:]}")
    seg = [e for e in events if str(e.get("step", "")).startswith("segment_")]
    starts = [e["t_s"] for e in seg if e["event"] == "step_started"]
    ends = [e["t_s"] for e in seg if e["event"] == "step_finished"]
    per_gpu: dict[str, int] = {}
    first_on_gpu: dict[str, float] = {}  # each actor's first segment carries its warm-ups (compile, kernel tuning)
    for e in seg:
        if e["event"] == "step_finished":
            where = f"{e.get('host')}/gpu{e.get('gpu')}"
            per_gpu[where] = per_gpu.get(where, 0) + 1
            first_on_gpu.setdefault(where, e.get("seconds") or 0.0)
    loads = {f"{e.get('host')}/gpu{e.get('gpu')}": e.get("seconds") for e in events if e["event"] == "generator_loaded" and e.get("gpu") is not None}
    segment_gpu_s = sum(e.get("seconds") or 0.0 for e in seg if e["event"] == "step_finished")
    output_s = _duration_s(folder / "video.mp4")
    return {
        "gpus": gpus,
        "segments": len(ends),
        "segments_s": round(max(ends) - min(starts), 2) if ends else None,
        "segment_mean_s": round(segment_gpu_s / max(len(ends), 1), 2),
        "wall_s": round(wall_s, 2),
        "per_gpu": per_gpu,
        # What the user pays: GPU-seconds of segment work per second of finished video (every segment's time, summed)
        "segment_gpu_s": round(segment_gpu_s, 2),
        "output_s": round(output_s, 3),
        "gpu_s_per_output_s": round(segment_gpu_s / output_s, 3) if output_s else None,
        "first_segment_s_per_gpu": first_on_gpu,
        "actor_load_s": loads,  # each actor's model load + prompt encoding, before the first segment
    }


def _duration_s(video: Path) -> float:
    """Frames / frame rate of the finished video's video stream (0 when there is none)."""
    import av

    if not video.is_file():
        return 0.0
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        frames = stream.frames or sum(1 for _ in container.demux(stream) if _.size)
        return float(frames / stream.average_rate) if stream.average_rate else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--project", type=Path, help="project file (the explainer on a GPU host)")
    ap.add_argument("--gpus", default="1,2", help="GPU counts to run, comma-separated (default 1,2)")
    ap.add_argument("--chaining", help="override generator.chaining (anchor/bookend scale; chained modes do not)")
    ap.add_argument("--tiny", action="store_true", help="small animatic project on the CPU: a smoke test, not a figure")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a project key (dotted, value in YAML; `null` removes it), e.g. generator.model=/tmp/m")
    ap.add_argument("--first-s", type=float, help="render only the voiceover's first S seconds (cut with soundfile)")
    ap.add_argument("--json-out", type=Path, help="also write the figures here")
    args = ap.parse_args()
    counts = [int(n) for n in args.gpus.split(",") if n.strip()]
    overrides = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            ap.error(f"--set takes KEY=VALUE, got {item!r}")
        overrides[key.strip()] = yaml.safe_load(value)
    with tempfile.TemporaryDirectory(prefix="longtake-multigpu-") as tmp:
        scratch = Path(tmp)
        project = args.project
        if args.tiny:
            project = _tiny_project(scratch)
        if project is None:
            ap.error("give --project or --tiny")
        if args.first_s:
            overrides["voiceover"] = str(_excerpt(project, args.first_s, scratch))
        rows = []
        for n in counts:  # each row printed as it ends: a run stopped at a time limit keeps the ones before it
            rows.append(run_once(project, n, args.chaining, scratch, overrides))
            print(f"--gpus {n}: {json.dumps(rows[-1])}", flush=True)
    first = rows[0]
    print(f"{'gpus':>4}  {'segments':>8}  {'segments_s':>10}  {'speed-up':>8}  {'wall_s':>8}  {'speed-up':>8}  per GPU")
    for r in rows:
        seg_x = first["segments_s"] / r["segments_s"] if r["segments_s"] else float("nan")
        wall_x = first["wall_s"] / r["wall_s"]
        r["segments_speedup"], r["wall_speedup"] = round(seg_x, 3), round(wall_x, 3)
        print(f"{r['gpus']:>4}  {r['segments']:>8}  {r['segments_s']:>10}  {seg_x:>7.2f}x  {r['wall_s']:>8}  {wall_x:>7.2f}x  {r['per_gpu']}")
        print(f"      {r['segment_gpu_s']} GPU-s of segments for {r['output_s']} s of video = {r['gpu_s_per_output_s']} GPU-s per output s "
              f"(first segment per GPU: {r['first_segment_s_per_gpu']}; model load + prompts per actor before it: {r['actor_load_s']})")
    if args.json_out:
        args.json_out.write_text(json.dumps({"command": sys.argv, "rows": rows}, indent=1))


def _excerpt(project: Path, seconds: float, scratch: Path) -> Path:
    """The project's voiceover cut to its first ``seconds`` (a shorter plan of the same speech)."""
    import soundfile as sf

    data = yaml.safe_load(project.read_text())
    source = (project.resolve().parent / data["voiceover"]).resolve()
    info = sf.info(str(source))
    audio, rate = sf.read(str(source), frames=int(seconds * info.samplerate), always_2d=True)
    out = scratch / f"voiceover-first-{seconds:g}s.wav"
    sf.write(str(out), audio, rate)
    return out


def _tiny_project(scratch: Path) -> Path:
    """The bundled 3-minute explainer at 128×224 with the animatic generator."""
    data = yaml.safe_load((ROOT / "configs" / "demo.yaml").read_text())
    for key in ("voiceover", "portrait"):
        data[key] = str((ROOT / "configs" / data[key]).resolve())
    data["video"] = {"width": 128, "height": 224, "fps": 24}
    data["segmenter"] = {"vad": "webrtc"}
    data["export"] = {"preset": "master", "x264_preset": "ultrafast"}
    data.pop("captions", None)
    path = scratch / "tiny.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


if __name__ == "__main__":
    main()
