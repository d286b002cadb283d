"""Pictures for the report: report.png (every measure over time, joins marked) and the worst join's contact sheet.

matplotlib is imported here, on first use, so `longtake --help` stays fast;
the Agg canvas is used directly so no global backend state is touched.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from orchestrator.atomic import atomic_path
from orchestrator.timebase import format_timestamp

if TYPE_CHECKING:
    from quality.report import Report

_COLOURS = {"ok": "#2e7d32", "check": "#ef6c00", "bad": "#c62828"}


def _mmss(x: float, _pos=None) -> str:
    sign = "-" if x < 0 else ""
    x = abs(x)
    return f"{sign}{int(x // 60)}:{int(x % 60):02d}"


def _envelope(t: np.ndarray, y: np.ndarray, max_points: int = 3000) -> tuple[np.ndarray, np.ndarray]:
    """Per-bin maxima when a series has more points than a plot can show (minutes of frames)."""
    if y.size <= max_points:
        return t, y
    k = int(np.ceil(y.size / max_points))
    n = y.size // k * k
    return t[:n:k], y[:n].reshape(-1, k).max(axis=1)


def write_report_png(report: "Report", path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    fps = float(report.video.fps)
    n = report.video.frames
    t = np.arange(n) / fps
    fig = Figure(figsize=(14, 13), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(5, 1, sharex=True)
    fin = report.findings

    def title(ax, measure: str, text: str) -> None:
        f = fin[measure]
        ax.set_title(f"{text} — {f.verdict.upper()}: {f.result}", loc="left", fontsize=10, color=_COLOURS[f.verdict])

    # 1. seams
    ax = axes[0]
    score = np.clip(np.nan_to_num(report.curves.seam_score, nan=0.0), -5, None)
    ax.plot(t, score, lw=0.7, color="#555", label="jump score (robust z, per frame)")
    thr = report.seam_threshold
    ax.axhline(thr, color=_COLOURS["check"], ls="--", lw=0.8, label=f"flag at z {thr:g}")
    top = max([thr * 2.5] + [s.z for s in report.seams if math.isfinite(s.z)])
    for s in report.seams:
        colour = _COLOURS["bad"] if s.flagged else "#1565c0"
        ax.axvline(s.frame / fps, color=colour, lw=1.0 if s.flagged else 0.6, alpha=0.8)
        if math.isfinite(s.z) and (s.flagged or s.planned):
            ax.annotate(f"{s.z:.0f}", (s.frame / fps, min(s.z, top)), fontsize=7, color=colour, xytext=(2, 0), textcoords="offset points")
    ax.set_ylim(-5, top * 1.1)
    ax.set_ylabel("z")
    ax.legend(loc="upper right", fontsize=7)
    title(ax, "seams", "Seams" + (" (planned joins in blue, flagged in red)" if report.planned else " (no plan: detected jumps)"))

    # 2. colour
    ax = axes[1]
    c = report.color
    if c.seconds.size:
        ts = c.seconds + 0.5
        ax.plot(ts, c.de_vs_first, marker=".", lw=1, label="ΔE00 vs first second")
        if c.de_vs_portrait is not None:
            ax.plot(ts, c.de_vs_portrait, marker=".", lw=1, label="ΔE00 vs portrait")
        ax.axhline(report.thresholds.color_check_delta_e, color=_COLOURS["check"], ls="--", lw=0.8)
        ax.legend(loc="upper left", fontsize=7)
    ax.set_ylabel("ΔE00")
    title(ax, "color", "Face colour")

    # 3. identity
    ax = axes[2]
    i = report.identity
    if i.seconds.size:
        ax.plot(i.seconds + 0.5, i.similarity, marker=".", lw=1, color="#6a1b9a", label=f"HOG similarity to {i.reference}")
        if i.start is not None:
            ax.axhline(i.start, color="#999", lw=0.8, ls=":")
            ax.axhline(i.start - report.thresholds.identity_check_drop, color=_COLOURS["check"], ls="--", lw=0.8)
        ax.legend(loc="lower left", fontsize=7)
    ax.set_ylabel("similarity")
    title(ax, "identity", "Identity")

    # 4. sync
    ax = axes[3]
    th = report.thresholds
    lo, hi = -th.sync_ok_early_ms * fps / 1000, th.sync_ok_late_ms * fps / 1000
    ax.axhspan(lo, hi, color=_COLOURS["ok"], alpha=0.12, label="EBU R37 tolerance")
    for w in report.sync.windows:
        if w.lag_frames is None:
            continue
        centre = (w.start_frame + w.end_frame) / 2 / fps
        size = 10 + 80 * max(w.r, 0)
        if w.used:
            ax.scatter([centre], [w.lag_frames], s=size, color="#1565c0", zorder=3)
        else:
            ax.scatter([centre], [w.lag_frames], s=size, facecolors="none", edgecolors="#999", zorder=3)
    if report.sync.offset_frames is not None:
        ax.axhline(report.sync.offset_frames, color="#1565c0", lw=1, label=f"offset {report.sync.offset_frames:+.1f} frames")
    ax.axhline(0, color="#333", lw=0.5)
    ax.set_ylabel("lag (frames)\n+ = audio late")
    ax.legend(loc="best", fontsize=7)
    title(ax, "sync", "Lip sync per 4-s window (hollow: not used)")

    # 5. audio and mouth
    ax = axes[4]
    cur = report.curves
    above = np.maximum(cur.audio_db - cur.gate_db, 0)
    m = np.nan_to_num(cur.mouth)
    scale = np.percentile(m, 99) if m.size and np.percentile(m, 99) > 0 else 1.0
    if above.size and above.max() > 0:
        ax.plot(*_envelope(t, above / above.max()), lw=0.6, color="#888", label="voice level above gate")
    ax.plot(*_envelope(t, np.clip(m / scale, 0, 1.2)), lw=0.7, color="#c2185b", label="mouth motion")
    for p in report.mouth.pauses:
        ax.axvspan(p.start_frame / fps, p.end_frame / fps, color=_COLOURS["bad"] if p.flagged else "#90caf9", alpha=0.25 if p.flagged else 0.2)
    ax.set_ylabel("normalised")
    ax.legend(loc="upper right", fontsize=7)
    title(ax, "mouth", "Audio and mouth (pauses shaded, flagged in red)")
    ax.set_xlabel("time")
    ax.xaxis.set_major_formatter(FuncFormatter(_mmss))
    ax.set_xlim(0, max(t[-1] if t.size else 1, 1 / fps))
    for a in axes:
        a.grid(alpha=0.25)

    integ = fin["integrity"]
    fig.suptitle(
        f"{Path(report.video.path).name} — overall {report.overall.upper()}   |   integrity {integ.verdict.upper()}: {integ.result}",
        fontsize=11,
        color=_COLOURS[report.overall],
    )
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")


def write_contact_sheet(report: "Report", path: Path) -> tuple[bool, str | None]:
    """Frames either side of the worst join, with the difference across it; (written, why not)."""
    from PIL import Image, ImageDraw

    from quality.report import _sheet_frames, worst_seam

    seam = worst_seam(report)
    if seam is None:
        return False, None
    if seam.planned:
        context = seam.frame - seam.window[0] - 1
        first, after = seam.frame - context, seam.frame
    else:
        first, after = seam.window
    frames = [f for f in _sheet_frames(first, after) if f < report.video.frames]
    have = [f for f in frames if f in report.thumbs]
    before, post = first - 1, after
    if before not in report.thumbs or post not in report.thumbs:
        return False, f"no contact sheet: the frames around frame {seam.frame} were not kept"
    tiles = [report.thumbs[f] for f in have]
    diff = np.abs(report.thumbs[before].astype(np.int16) - report.thumbs[post].astype(np.int16))
    tiles.append(np.clip(diff * 3, 0, 255).astype(np.uint8))
    h, w = tiles[0].shape[:2]
    pad, caption = 6, 30
    sheet = Image.new("RGB", (len(tiles) * (w + pad) + pad, h + caption + 26 + pad), (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    fps = report.video.fps
    kind = "join" if seam.planned else "jump"
    draw.text((pad, 6), f"worst {kind}: frame {seam.frame} at {format_timestamp(float(seam.frame / fps))}, z {seam.z:.1f}"
              f" ({'flagged' if seam.flagged else 'below threshold'})", fill=(235, 235, 235))
    labels = [f"frame {f}\n{format_timestamp(float(f / fps))}" for f in have] + [f"|{before} - {post}| x3"]
    for k, (tile, label) in enumerate(zip(tiles, labels)):
        x = pad + k * (w + pad)
        sheet.paste(Image.fromarray(tile), (x, 26))
        if k < len(have) and have[k] >= post and (k == 0 or have[k - 1] < post):
            draw.line([(x - pad // 2, 22), (x - pad // 2, 26 + h)], fill=(230, 60, 60), width=3)
        draw.multiline_text((x, 26 + h + 3), label, fill=(220, 220, 220), spacing=2)
    with atomic_path(path) as tmp:
        sheet.save(tmp, format="PNG")
    return True, None
