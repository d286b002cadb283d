"""plan.png: the waveform, the VAD curve and the chosen cuts, for a human to check a plan at a glance."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from segmenters.plan import Plan

PAUSE_COLOR = "#2a9d8f"
FORCED_COLOR = "#e63946"


def draw_plan(plan: Plan, audio_16k: np.ndarray, vad_probs: np.ndarray, hop_samples: int, path: Path, threshold: float = 0.5) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    duration_s = len(audio_16k) / 16_000
    rows = max(1, int(np.ceil(duration_s / 60.0)))  # one row per minute keeps words legible
    fig, axes = plt.subplots(rows, 1, figsize=(16, 2.2 * rows), squeeze=False)
    # Envelope at 100 points per second: the waveform drawn sample by sample would be a solid block.
    step = 160
    n = len(audio_16k) // step
    env = np.abs(audio_16k[: n * step]).reshape(n, step).max(axis=1) if n else np.zeros(0)
    env_t = np.arange(n) * step / 16_000
    vad_t = (np.arange(len(vad_probs)) + 0.5) * hop_samples / 16_000
    fps = float(plan.fps)
    for row in range(rows):
        ax = axes[row][0]
        t0, t1 = row * 60.0, min((row + 1) * 60.0, max(duration_s, 1e-3))
        m = (env_t >= t0) & (env_t < t1)
        peak = float(env.max()) if len(env) else 1.0
        ax.fill_between(env_t[m], -env[m] / peak, env[m] / peak, color="#8d99ae", linewidth=0)
        mv = (vad_t >= t0) & (vad_t < t1)
        ax.plot(vad_t[mv], vad_probs[mv] * 2 - 1, color="#1d3557", linewidth=0.8, label="speech probability")
        ax.axhline(threshold * 2 - 1, color="#1d3557", linewidth=0.5, linestyle=":")
        for seg in plan.segments[1:]:
            t = seg.start_frame / fps
            if t0 <= t < t1:
                forced = plan.segments[seg.index - 1].cut == "forced"
                ax.axvline(t, color=FORCED_COLOR if forced else PAUSE_COLOR, linewidth=2 if forced else 1.2)
                ax.axvspan(seg.gen_start_frame / fps, t, color=PAUSE_COLOR, alpha=0.15)
                ax.text(t, 1.02, str(seg.index), color="black", fontsize=7, ha="center", va="bottom")
        ax.set_xlim(t0, t0 + 60.0 if rows > 1 else t1)
        ax.set_ylim(-1.05, 1.2)
        ax.set_yticks([])
        ax.set_xlabel("seconds (after trimming)")
    axes[0][0].set_title(
        f"{len(plan.segments)} segments · {plan.total_frames} frames at {fps:g} fps · "
        f"cuts in pauses (green), forced cuts (red), shaded: context/overlap",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
