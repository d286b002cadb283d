"""`longtake report` benchmark: a 3-minute 540×960 24 fps talking-head video with audio, measured once.

Generates (once, cached under --workdir) a synthetic talking head from
tests/media_report.py, 3 minutes long, with speech-like AAC audio, a plan of
~15-s segments joined by 8-frame crossfades, and a few planted faults (one hard
cut, a 2-frame audio delay, a slow colour drift) so every analysis has work to
do; or takes an existing --video. Then times ``build_report`` (the full job:
one decode, every analysis, report.json, report.png and the contact sheet) in a
fresh child process and prints its wall time, frames/s and peak RSS (the
child's own, from wait4), with its CPU time and the load average, since a busy
machine stretches the wall time. Target: under 60 s on a 2-core machine.

    .venv/bin/python benchmarks/report_bench.py                    # generate if needed, then time
    .venv/bin/python benchmarks/report_bench.py --minutes 0.5      # a quick look
    .venv/bin/python benchmarks/report_bench.py --video out/final.mp4 --plan plan.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGET_S = 60.0


def generate(path: Path, minutes: float, width: int, height: int, seed: int) -> Path:
    """The synthetic video (and its plan beside it, ``<name>.plan.json``)."""
    from tests.media_report import Join, Spec, make_video

    fps = Fraction(24)
    total = int(round(minutes * 60 * fps))
    step = 15 * 24
    joins = []
    for k, frame in enumerate(range(step, total - 48, step)):
        kind = "cut" if k == 3 else "crossfade" if k == 6 else "clean"
        joins.append(Join(frame, kind, context_frames=0 if kind == "cut" else 8, pose_dx=0.05))
    spec = Spec(
        duration_s=minutes * 60,
        width=width,
        height=height,
        fps=fps,
        seed=seed,
        audio_delay_frames=2,
        joins=tuple(joins),
        color_drift_lab_per_min=(0.0, 1.5, 1.0),
        pauses_s=tuple((t, t + 1.2) for t in range(20, int(minutes * 60) - 5, 27)),
        crf=20,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    made = make_video(path, spec)
    if made.plan is not None:
        made.plan.save(path.with_suffix(".plan.json"))
    print(f"generated {path} ({total} frames) in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return path


def child(video: Path, plan: Path | None, out_dir: Path) -> None:
    """Run in the timed process: build the report, print a JSON line with the timings."""
    from segmenters.plan import Plan
    from quality.report import build_report, format_summary

    t0 = time.perf_counter()
    rep = build_report(video, plan=Plan.load(plan) if plan else None, out_dir=out_dir)
    wall = time.perf_counter() - t0
    print(format_summary(rep), file=sys.stderr)
    print(json.dumps({"wall_s": wall, "frames": rep.video.frames, "verdicts": rep.verdicts()}))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--video", type=Path, help="time this video instead of the synthetic one")
    ap.add_argument("--plan", type=Path, help="its plan.json (the synthetic video brings its own)")
    ap.add_argument("--minutes", type=float, default=3.0)
    ap.add_argument("--size", default="540x960", help="WIDTHxHEIGHT of the synthetic video")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "longtake-report-bench")
    ap.add_argument("--json", action="store_true", help="print the result as one JSON line")
    ap.add_argument("--_child", nargs=3, metavar=("VIDEO", "PLAN", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args._child:
        video, plan, out = args._child
        child(Path(video), Path(plan) if plan != "-" else None, Path(out))
        return 0

    if args.video:
        video, plan = args.video, args.plan
    else:
        width, height = (int(v) for v in args.size.lower().split("x"))
        video = args.workdir / f"talking_{width}x{height}_{args.minutes:g}min_seed{args.seed}.mp4"
        if not video.is_file():
            generate(video, args.minutes, width, height, args.seed)
        plan = args.plan or video.with_suffix(".plan.json")
        plan = plan if plan.is_file() else None

    out_dir = args.workdir / "report_out"
    cmd = [sys.executable, __file__, "--_child", str(video), str(plan) if plan else "-", str(out_dir)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    _, status, usage = os.wait4(proc.pid, 0)
    out = proc.stdout.read() if proc.stdout else ""
    if status != 0:
        print(out, file=sys.stderr)
        print(f"report failed (status {status})", file=sys.stderr)
        return 1
    result = json.loads(out.strip().splitlines()[-1])
    result.update(
        video=str(video),
        plan=str(plan) if plan else None,
        peak_rss_mib=usage.ru_maxrss / 1024.0,
        cpu_s=usage.ru_utime + usage.ru_stime,
        load_avg_1min=os.getloadavg()[0],
        fps_processed=result["frames"] / result["wall_s"],
        cpus=os.cpu_count(),
        target_s=TARGET_S,
    )
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"report of {result['frames']} frames: {result['wall_s']:.1f} s wall "
            f"({result['fps_processed']:.0f} frames/s), {result['cpu_s']:.1f} s CPU, peak RSS {result['peak_rss_mib']:.0f} MiB, "
            f"{result['cpus']} CPUs (load {result['load_avg_1min']:.1f}); target < {TARGET_S:.0f} s: {'met' if result['wall_s'] < TARGET_S else 'MISSED'}"
        )
        print(f"outputs in {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
