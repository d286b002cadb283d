"""Plan the bundled 3-minute voiceover with each VAD backend: wall time, peak memory, real-time factor.

Each backend runs in a fresh subprocess so peak RSS is its own (ru_maxrss of the child).
Targets (2-core machine): silero < 3 s, webrtc < 1 s for 3 minutes; peak RSS < 1 GB.

    .venv/bin/python benchmarks/plan_bench.py [--voiceover FILE] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
t_import = time.perf_counter()
import av, numpy, pyloudnorm, scipy.signal, soundfile  # the libraries ingest needs: a one-off start-up cost
t_import = time.perf_counter() - t_import
from pathlib import Path
from orchestrator.config import AudioConfig
from segmenters.ingest import ingest_audio
from segmenters.vad import get_vad
from segmenters.planner import PlannerSettings, plan_voiceover
from segmenters.plan import FrameGrid
from fractions import Fraction

backend, path = sys.argv[2], Path(sys.argv[3])
t0 = time.perf_counter()
master = ingest_audio(path, AudioConfig())
t1 = time.perf_counter()
vad = get_vad(backend)
t2 = time.perf_counter()
result = vad.detect(master.vad_16k)
t3 = time.perf_counter()
plan = plan_voiceover(duration_samples=master.duration_samples, sample_rate_hz=master.sample_rate_hz,
    trim_start_sample=master.trim_start_sample, audio_16k=master.vad_16k, vad_probs=result.probs,
    vad_hop_samples=result.hop_samples, vad_name=backend, settings=PlannerSettings(20, 4, 12, 250),
    grid=FrameGrid(8, 64), fps=Fraction(24), width=1088, height=1920, chaining="tail", context_frames=9)
t4 = time.perf_counter()
print(json.dumps({"import_s": t_import, "ingest_s": t1 - t0, "vad_load_s": t2 - t1, "vad_s": t3 - t2, "plan_s": t4 - t3, "total_s": t4 - t0,
    "audio_s": master.duration_samples / master.sample_rate_hz, "segments": len(plan.segments),
    "forced": sum(s.cut == "forced" for s in plan.segments),
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--voiceover", type=Path, default=REPO / "configs" / "demo" / "voiceover.flac")
    ap.add_argument("--repeat", type=int, default=3, help="runs per backend; the best is reported")
    ap.add_argument("--backends", default="silero,webrtc,energy")
    args = ap.parse_args()
    print(f"voiceover: {args.voiceover}")
    print(f"{'backend':<8} {'audio':>7} {'imports':>7} {'ingest':>7} {'vad':>7} {'plan':>6} {'total':>7} {'+imports':>8} {'RTF':>8} {'peak RSS':>9} {'segments':>9}")
    for backend in args.backends.split(","):
        runs = []
        for _ in range(args.repeat):
            out = subprocess.run([sys.executable, "-c", CHILD, str(REPO), backend, str(args.voiceover)], capture_output=True, text=True, check=True)
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
        best = min(runs, key=lambda r: r["total_s"])
        rtf = best["total_s"] / best["audio_s"]
        print(
            f"{backend:<8} {best['audio_s']:>6.1f}s {best['import_s']:>6.2f}s {best['ingest_s']:>6.2f}s {best['vad_load_s'] + best['vad_s']:>6.2f}s {best['plan_s']:>5.2f}s "
            f"{best['total_s']:>6.2f}s {best['total_s'] + best['import_s']:>7.2f}s {rtf:>8.4f} {max(r['peak_rss_mb'] for r in runs):>7.0f}MB {best['segments']:>5} ({best['forced']} forced)"
        )
    print("total = ingest + VAD (model load + detection) + plan, best of --repeat; +imports adds the one-off import of\n"
          "av/numpy/scipy/pyloudnorm/soundfile (paid once per process); RTF = total / audio length; RSS = max over runs")


if __name__ == "__main__":
    main()
