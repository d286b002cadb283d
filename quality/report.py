"""`longtake report`: measure what long-form talking video gets wrong, in a finished MP4.

Seams at the joins, colour and identity drift over minutes, lip sync against
the file's own audio (offset, drift, a mouth that moves in the pauses), and the
container facts the stitcher promises. Classical signal processing only; one
decode of the video (see ``quality.stream``), then small per-frame arrays are
analysed by ``quality.seams``, ``quality.drift``, ``quality.sync`` and
``quality.integrity``. Each measure gets a verdict, ``ok`` / ``check`` / ``bad``,
with the reason and its worst moments as timestamps.

    report = build_report(Path("final.mp4"), plan=Plan.load("plan.json"), portrait=Path("me.png"), out_dir=Path("out"))
    print(format_summary(report))        # the one-screen table
    report.to_dict()                     # what report.json holds

Sign conventions: ``sync.offset_frames > 0`` means the audio comes late;
``integrity.av_duration_diff_frames > 0`` means the audio is longer.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Callable

import numpy as np

from orchestrator.atomic import atomic_write_text
from orchestrator.errors import writing_to
from orchestrator.timebase import format_timestamp, fps_str
from quality.drift import ColorAnalysis, IdentityAnalysis, analyse_color, analyse_identity
from quality.face import FaceBox
from quality.integrity import IntegrityAnalysis, analyse_integrity
from quality.seams import Seam, detect_seams, dissolve_frames, score_joins, seam_curves
from quality.stream import StreamFeatures, load_portrait, stream_features
from quality.sync import MouthAnalysis, SyncAnalysis, analyse_mouth, analyse_sync, locate_mouth, speech_activity
from segmenters.plan import Plan
from stitchers.clip_io import probe_video

REPORT_VERSION = 1
MEASURES = ("seams", "color", "identity", "sync", "mouth", "integrity")
LABELS = {
    "seams": "seams",
    "color": "colour drift",
    "identity": "identity drift",
    "sync": "lip sync",
    "mouth": "mouth in pauses",
    "integrity": "integrity",
}
_RANK = {"ok": 0, "check": 1, "bad": 2}


@dataclass(frozen=True)
class Thresholds:
    """Where ok ends and check / bad begin. Sync limits are in milliseconds, positive = audio late.

    The sync limits are broadcast standards and the colour limits are counted in
    just-noticeable ΔE2000 steps; the seam, identity and pause limits were set on
    the synthetic talking heads of tests/media_report.py and are the ones to tune
    on real LTX output.
    """

    seam_z: float = 6.0  # a planned join is flagged at this robust z; twice this is bad
    seam_z_unplanned: float = 8.0  # without a plan every frame is tested, so a jump must stand out more
    # EBU R37: at most 40 ms audio lead / 60 ms lag is ok; ITU-R BT.1359 acceptability (90 / 185 ms) is bad beyond
    sync_ok_early_ms: float = 40.0
    sync_ok_late_ms: float = 60.0
    sync_bad_early_ms: float = 90.0
    sync_bad_late_ms: float = 185.0
    sync_min_confidence: float = 0.3
    color_check_delta_e: float = 2.0  # total fitted drift over the video (ΔE2000); about two just-noticeable steps
    color_bad_delta_e: float = 4.0
    color_spike_check_delta_e: float = 3.5  # any one second against the first
    color_spike_bad_delta_e: float = 6.0
    color_portrait_check_delta_e: float = 6.0  # the face's colour against the portrait's
    identity_check_drop: float = 0.08  # fall of the face's HOG similarity below its start
    identity_bad_drop: float = 0.15
    identity_portrait_check: float = 0.6  # similarity to the portrait at the start
    pause_check: float = 0.45  # mouth motion in a pause, as a fraction of its motion in speech
    pause_bad: float = 0.7
    av_diff_bad_frames: float = 1.0  # DESIGN: video and audio durations agree within one frame


@dataclass(frozen=True)
class Moment:
    frame: int
    text: str


@dataclass(frozen=True)
class Finding:
    verdict: str  # "ok" | "check" | "bad"
    result: str  # the one-line measurement
    reason: str  # why this verdict
    worst: tuple[Moment, ...] = ()


@dataclass(frozen=True)
class VideoMeta:
    path: str
    width: int
    height: int
    fps: Fraction
    frames: int
    duration_s: float
    codec: str
    pix_fmt: str


@dataclass(frozen=True, eq=False)
class Curves:
    """Per-frame series behind report.png (not in report.json)."""

    diff: np.ndarray
    flow: np.ndarray
    seam_score: np.ndarray
    mouth: np.ndarray
    audio_db: np.ndarray
    speech: np.ndarray
    gate_db: float


@dataclass(frozen=True, eq=False)
class Report:
    video: VideoMeta
    face: FaceBox
    planned: bool
    thresholds: Thresholds
    seams: tuple[Seam, ...]
    color: ColorAnalysis
    identity: IdentityAnalysis
    sync: SyncAnalysis
    mouth: MouthAnalysis
    integrity: IntegrityAnalysis
    findings: dict[str, Finding]
    notes: tuple[str, ...]
    curves: Curves
    thumbs: dict[int, np.ndarray] = field(default_factory=dict, repr=False)
    files: tuple[str, ...] = ()
    chaining: str | None = None  # the plan's chaining mode, when a plan was given

    def verdicts(self) -> dict[str, str]:
        return {m: self.findings[m].verdict for m in MEASURES}

    @property
    def overall(self) -> str:
        return max(self.verdicts().values(), key=_RANK.__getitem__)

    @property
    def seam_threshold(self) -> float:
        return self.thresholds.seam_z if self.planned else self.thresholds.seam_z_unplanned

    def to_dict(self) -> dict:
        """Everything in report.json: plain JSON types, no NaN (unknown values are None)."""
        return _to_dict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


# -- building -------------------------------------------------------------------------------


REPORT_FILES = ("report.json", "report.png", "contact_sheet.png")


def build_report(
    video: Path,
    *,
    plan: Plan | None = None,
    portrait: Path | None = None,
    out_dir: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
    thresholds: Thresholds = Thresholds(),
) -> Report:
    """Measure ``video``; with ``out_dir``, also write report.json, report.png and contact_sheet.png there.

    ``plan`` gives the joins to score (without one, every frame is a candidate);
    ``portrait`` is the reference for identity and colour (without one, the first
    second is). ``progress(frames_done, frames_total)`` is called during the pass.
    Raises MediaError for a missing or unreadable video or portrait.
    """
    video = Path(video)
    if out_dir is not None:
        # A report that stops half-way (Ctrl-C, a bad frame) must not leave an older video's files looking current.
        for name in REPORT_FILES:
            (Path(out_dir) / name).unlink(missing_ok=True)
    portrait_rgb = load_portrait(Path(portrait)) if portrait is not None else None
    fps_hint = probe_video(video, count_frames=False).fps
    notes: list[str] = []
    joins = _plan_joins(plan, fps_hint, notes) if plan is not None else None
    wanted = None
    if joins is not None:
        wanted = set()
        for j, c in joins:
            wanted.update(_sheet_frames(j - c, j))
    spans = tuple(c + 1 for _, c in joins if c >= 1) if joins is not None else (dissolve_frames(fps_hint),)
    feats = stream_features(video, portrait_rgb=portrait_rgb, thumb_frames=wanted, spans=spans, progress=progress)
    notes.extend(feats.notes)
    return _assemble(feats, plan, joins, thresholds, notes, out_dir)


def _plan_joins(plan: Plan, fps: Fraction, notes: list[str]) -> list[tuple[int, int]]:
    """(first frame of segment i, its crossfade frames) for i > 0, on the video's frame grid.

    As in ``stitchers.compose.seam_kind``: last-frame chaining drops the shared
    frames (a cut), the other modes crossfade over them.
    """
    blend = plan.chaining != "last-frame"
    if plan.chaining == "bookend":
        notes.append("bookend chaining: every join is a cut between two frames that are both the portrait (no crossfade)")
    joins = [(s.start_frame, s.context_frames if blend else 0) for s in plan.segments[1:]]
    if fps and plan.fps != fps:
        ratio = fps / plan.fps
        joins = [(int(round(j * ratio)), int(round(c * ratio))) for j, c in joins]
        notes.append(f"the plan is at {fps_str(plan.fps)} fps but the video at {fps_str(fps)}; joins were mapped by time")
    return joins


def _sheet_frames(first_changed: int, first_after: int) -> list[int]:
    """Frames for a contact sheet of a transition whose changes run over diff indices [first_changed, first_after]."""
    pre = first_changed - 1
    frames = [pre - 1, pre]
    if first_after - first_changed >= 2:
        frames.append((first_changed + first_after) // 2)
    frames += [first_after, first_after + 1]
    return [f for f in frames if f >= 0]


def _assemble(
    f: StreamFeatures,
    plan: Plan | None,
    joins: list[tuple[int, int]] | None,
    th: Thresholds,
    notes: list[str],
    out_dir: Path | None,
) -> Report:
    fps = f.fps
    # 1. seams
    curves = seam_curves(f.diff, f.flow, fps, f.span_diff)
    if joins is not None:
        seams = score_joins(f.diff, f.flow, joins, fps, th.seam_z, f.span_diff)
        dropped = len(joins) - len(seams)
        if dropped:
            notes.append(f"{dropped} planned join(s) lie outside the video's {f.num_frames} frames and were not scored")
        score = np.fmax(np.fmax(curves["z_diff"], curves["z_flow"]), np.fmax(curves["z_diff_sum"], curves["z_flow_sum"]))
    else:
        seams, score = detect_seams(f.diff, f.flow, fps, th.seam_z_unplanned, f.span_diff)
    # 2. colour and identity
    color = analyse_color(f.sample_frames, f.lab, fps, f.portrait.lab if f.portrait else None)
    identity = analyse_identity(f.sample_frames, f.hogs, fps, f.portrait.hog if f.portrait else None)
    # 3. sync and the mouth in pauses
    energy = f.audio.frame_energy if f.audio is not None else np.zeros(f.num_frames)
    activity = speech_activity(energy, fps)
    at_seams = np.zeros(f.num_frames, bool)
    for s in seams:
        if s.flagged:
            at_seams[max(0, s.window[0]) : s.window[1] + 2] = True
    mouth_motion = f.mouth
    sync = analyse_sync(mouth_motion, activity, fps, exclude=at_seams)
    if activity.has_speech and (f.face.method == "centre" or sync.confidence < th.sync_min_confidence):
        # no face, or its mouth does not follow the speech: look for the mouth by audio-visual synchrony
        cell = locate_mouth(f.grid_flow, activity, fps, exclude=at_seams)
        if cell is not None:
            alt = analyse_sync(cell.motion, activity, fps, exclude=at_seams)
            if alt.confidence >= sync.confidence + 0.1:
                rows, cols = f.grid_flow.shape[1:3]
                x = (cell.col + 0.5) / cols * f.width
                y = (cell.row + 0.5) / rows * f.height
                notes.append(
                    f"lip sync uses the motion near ({x:.0f}, {y:.0f}) px, found by audio-visual synchrony, "
                    f"instead of the {f.face.method} face box (confidence {alt.confidence:.2f} vs {sync.confidence:.2f})"
                )
                sync, mouth_motion = replace(alt, source="motion grid"), cell.motion
    mouth = analyse_mouth(np.where(at_seams, np.nan, mouth_motion), activity, fps, th.pause_check)
    # 4. container facts
    integrity = analyse_integrity(f, plan)

    meta = VideoMeta(str(f.path), f.width, f.height, fps, f.num_frames, float(f.num_frames / fps), f.codec, f.pix_fmt)
    findings = {
        "seams": _judge_seams(seams, joins is not None, th.seam_z if joins is not None else th.seam_z_unplanned, fps),
        "color": _judge_color(color, th, fps),
        "identity": _judge_identity(identity, th, fps),
        "sync": _judge_sync(sync, activity.has_speech, f.audio is not None, th, fps),
        "mouth": _judge_mouth(mouth, th, fps),
        "integrity": _judge_integrity(integrity, th),
    }
    report = Report(
        video=meta,
        face=f.face,
        planned=joins is not None,
        thresholds=th,
        seams=tuple(seams),
        color=color,
        identity=identity,
        sync=sync,
        mouth=mouth,
        integrity=integrity,
        findings=findings,
        notes=tuple(notes),
        curves=Curves(f.diff, f.flow, score, mouth_motion, activity.level_db, activity.speech, activity.gate_db),
        thumbs=f.thumbs,
        chaining=plan.chaining if plan is not None else None,
    )
    if out_dir is not None:
        report = write_outputs(report, Path(out_dir))
    return report


# -- verdicts -------------------------------------------------------------------------------


def _ts(frame: float, fps: Fraction) -> str:
    return format_timestamp(float(frame / fps))


def _worse(a: str, b: str) -> str:
    return a if _RANK[a] >= _RANK[b] else b


def _judge_seams(seams: list[Seam], planned: bool, threshold: float, fps: Fraction) -> Finding:
    flagged = [s for s in seams if s.flagged]
    finite = [s for s in seams if math.isfinite(s.z)]
    ranked = sorted(finite, key=lambda s: -s.z)
    shown = [s for s in ranked if s.flagged][:3] or ranked[:1]
    moments = tuple(Moment(s.frame, f"{'join' if s.planned else 'jump'} at frame {s.frame}, z {s.z:.1f}") for s in shown)
    where = f"{len(seams)} planned join{'s' if len(seams) != 1 else ''}" if planned else "no plan: every frame checked"
    if not finite:
        return Finding("ok", f"{where}; nothing to score", "no joins inside the video" if planned else "no jumps stand out", ())
    top = max(finite, key=lambda s: s.z)
    result = f"{where}; {len(flagged)} flagged, max z {top.z:.1f}"
    if top.z >= 2 * threshold:
        return Finding("bad", result, f"a {'join' if top.planned else 'jump'} at {_ts(top.frame, fps)} stands out at z {top.z:.1f} ≥ {2 * threshold:g}", moments)
    if flagged:
        return Finding("check", result, f"{len(flagged)} flagged at z ≥ {threshold:g}", moments)
    return Finding("ok", result, f"all below z {threshold:g}", moments if planned else ())


def _judge_color(c: ColorAnalysis, th: Thresholds, fps: Fraction) -> Finding:
    if c.seconds.size == 0:
        return Finding("check", "no face samples", "the face colour could not be measured")
    parts, verdict, reasons = [], "ok", []
    if c.delta_e_per_min is not None:
        parts.append(f"{c.delta_e_per_min:.2f} ΔE00/min, {c.delta_e_total:.2f} over the video")
        if c.delta_e_total >= th.color_bad_delta_e:
            verdict, reasons = _worse(verdict, "bad"), reasons + [f"drifts {c.delta_e_total:.1f} ΔE00 ≥ {th.color_bad_delta_e:g}"]
        elif c.delta_e_total >= th.color_check_delta_e:
            verdict, reasons = _worse(verdict, "check"), reasons + [f"drifts {c.delta_e_total:.1f} ΔE00 ≥ {th.color_check_delta_e:g}"]
    if c.worst_delta_e is not None:
        if c.worst_delta_e >= th.color_spike_bad_delta_e:
            verdict, reasons = _worse(verdict, "bad"), reasons + [f"one second is {c.worst_delta_e:.1f} ΔE00 from the first"]
        elif c.worst_delta_e >= th.color_spike_check_delta_e:
            verdict, reasons = _worse(verdict, "check"), reasons + [f"one second is {c.worst_delta_e:.1f} ΔE00 from the first"]
    if c.de_vs_portrait is not None and c.de_vs_portrait.size:
        worst_p = float(c.de_vs_portrait.max())
        parts.append(f"{float(c.de_vs_portrait[0]):.1f}→{float(c.de_vs_portrait[-1]):.1f} ΔE00 vs portrait")
        if worst_p >= th.color_portrait_check_delta_e:
            verdict, reasons = _worse(verdict, "check"), reasons + [f"{worst_p:.1f} ΔE00 from the portrait"]
    moments = ()
    if c.worst_second is not None and c.worst_delta_e is not None:
        moments = (Moment(int(math.ceil(c.worst_second * fps)), f"ΔE00 {c.worst_delta_e:.1f} vs first second"),)
    return Finding(verdict, "; ".join(parts) or "too short to fit a drift", "; ".join(reasons) or "stable", moments)


def _judge_identity(i: IdentityAnalysis, th: Thresholds, fps: Fraction) -> Finding:
    if i.start is None:
        return Finding("check", "no face samples", "the face could not be compared")
    result = f"similarity to {i.reference} {i.start:.2f}→{i.end:.2f}, drop {i.drop:.2f}"
    moments = (Moment(int(math.ceil(i.worst_second * fps)), f"lowest similarity (3-s median), drop {i.drop:.2f}"),) if i.worst_second is not None else ()
    verdict, reasons = "ok", []
    if i.drop >= th.identity_bad_drop:
        verdict, reasons = "bad", [f"the face drifts from its start (drop {i.drop:.2f} ≥ {th.identity_bad_drop:g})"]
    elif i.drop >= th.identity_check_drop:
        verdict, reasons = "check", [f"the face drifts from its start (drop {i.drop:.2f} ≥ {th.identity_check_drop:g})"]
    if i.reference == "portrait" and i.start < th.identity_portrait_check:
        verdict = _worse(verdict, "check")
        reasons.append(f"the face differs from the portrait from the start (similarity {i.start:.2f} < {th.identity_portrait_check:g})")
    return Finding(verdict, result, "; ".join(reasons) or "stable", moments)


def _ms(frames: float, fps: Fraction) -> float:
    return 1000.0 * frames / float(fps)


def _sync_level(offset_frames: float, th: Thresholds, fps: Fraction) -> str:
    ms = _ms(offset_frames, fps)
    if ms > th.sync_bad_late_ms or ms < -th.sync_bad_early_ms:
        return "bad"
    if ms > th.sync_ok_late_ms or ms < -th.sync_ok_early_ms:
        return "check"
    return "ok"


def _describe_offset(frames: float, fps: Fraction) -> str:
    if abs(frames) < 0.25:
        return f"{abs(frames):.1f} frames (in sync)"
    side = "audio late" if frames > 0 else "audio early"
    return f"{frames:+.1f} frames ({_ms(frames, fps):+.0f} ms, {side})"


def _judge_sync(s: SyncAnalysis, has_speech: bool, has_audio: bool, th: Thresholds, fps: Fraction) -> Finding:
    if not has_audio:
        return Finding("check", "no audio track", "nothing to sync against")
    if not has_speech:
        return Finding("check", "no speech found in the audio", "nothing to sync against")
    if s.offset_frames is None or s.confidence < th.sync_min_confidence:
        result = f"confidence {s.confidence:.2f}" + (f", tentative offset {_describe_offset(s.offset_frames, fps)}" if s.offset_frames is not None else "")
        return Finding("check", result, "mouth motion and speech barely correlate: the face may not be talking, or the mouth was not found")
    result = f"offset {_describe_offset(s.offset_frames, fps)}, confidence {s.confidence:.2f}"
    if s.drift_frames_per_min is not None:
        result += f", drift {s.drift_frames_per_min:+.2f} frames/min"
    verdict = _sync_level(s.offset_frames, th, fps)
    reasons = [] if verdict == "ok" else [f"offset {_ms(s.offset_frames, fps):+.0f} ms is outside [-{th.sync_ok_early_ms:g}, +{th.sync_ok_late_ms:g}] ms"]
    for label, off in (("start", s.offset_start_frames), ("end", s.offset_end_frames)):
        if off is not None and _RANK[_sync_level(off, th, fps)] > _RANK[verdict]:
            verdict = _sync_level(off, th, fps)
            reasons.append(f"drifts to {_ms(off, fps):+.0f} ms at the {label}")
    used = [w for w in s.windows if w.used and w.lag_frames is not None]
    worst = sorted(used, key=lambda w: -abs(w.lag_frames - s.offset_frames))[:2]
    moments = tuple(Moment(w.start_frame, f"window lag {w.lag_frames:+.1f} frames (r {w.r:.2f})") for w in worst if abs(w.lag_frames - s.offset_frames) > 1.0)
    return Finding(verdict, result, "; ".join(reasons) or "within EBU R37 limits", moments)


def _judge_mouth(m: MouthAnalysis, th: Thresholds, fps: Fraction) -> Finding:
    if m.speech_motion is None:
        return Finding("check", "no speech found", "cannot compare the mouth in pauses with the mouth in speech")
    if not m.pauses:
        return Finding("ok", "no pauses of 0.5 s or more", "nothing to check")
    worst = max(m.pauses, key=lambda p: p.score)
    result = f"{len(m.pauses)} pauses, motion {m.ratio:.2f}× speech (worst {worst.score:.2f}×)"
    moments = tuple(
        Moment(p.start_frame, f"mouth moves in a {float((p.end_frame - p.start_frame) / fps):.1f}-s pause ({p.score:.2f}× speech)")
        for p in sorted(m.pauses, key=lambda p: -p.score)[:3]
        if p.flagged
    )
    if worst.score >= th.pause_bad:
        return Finding("bad", result, f"the mouth moves in a pause as much as in speech ({worst.score:.2f}× ≥ {th.pause_bad:g})", moments)
    if worst.score >= th.pause_check:
        return Finding("check", result, f"the mouth moves in a pause ({worst.score:.2f}× ≥ {th.pause_check:g})", moments)
    return Finding("ok", result, "still in pauses", moments)


def _judge_integrity(g: IntegrityAnalysis, th: Thresholds) -> Finding:
    problems: list[tuple[str, str]] = []
    if g.missing_frames > 1:  # one frame of slack: some muxers count the last frame's duration differently
        problems.append((
            "bad",
            f"the file is cut short: its container promises {g.declared_frames} frames"
            + (f" ({format_timestamp(g.declared_duration_s)})" if g.declared_duration_s else "")
            + f", but decoding ended at frame {g.frames} ({format_timestamp(g.decoded_end_s)}); "
            "the copy or the export stopped early: copy or export it again",
        ))
    if not g.has_audio:
        problems.append(("bad", "no audio track"))
    else:
        if abs(g.av_duration_diff_frames) > th.av_diff_bad_frames:
            problems.append(("bad", f"audio is {g.av_duration_diff_frames:+.1f} frames {'longer' if g.av_duration_diff_frames > 0 else 'shorter'} than video"))
        frame_ms = 1000.0 / float(g.fps)
        rel = g.audio_start_ms - g.video_start_ms
        if abs(rel) >= frame_ms / 2:
            problems.append(("bad", f"audio starts {rel:+.0f} ms from the first frame"))
        elif abs(g.audio_start_ms) > 1.0 or abs(g.video_start_ms) > 1.0:
            problems.append(("check", f"streams start at audio {g.audio_start_ms:.1f} ms / video {g.video_start_ms:.1f} ms, not 0"))
    if g.frame_count_diff != 0:
        level = "check" if abs(g.frame_count_diff) == 1 else "bad"
        problems.append((level, f"{g.frames} frames, expected round(duration·fps) = {g.frames_expected} from the {g.frames_expected_from}"))
    if not g.constant_frame_rate:
        problems.append(("bad", f"variable frame rate: {g.irregular_intervals} uneven frame intervals (longest {g.max_interval_frames:.2f} frames)"))
    if g.plan_fps_matches is False:
        problems.append(("bad", "frame rate differs from the plan's"))
    if g.plan_frames_diff:
        problems.append(("bad", f"{g.frames} frames but the plan has {g.frames + g.plan_frames_diff}"))
    av = f"A/V {g.av_duration_diff_frames:+.2f} frames" if g.av_duration_diff_frames is not None else "no audio"
    start = f"audio at {g.audio_start_ms:.1f} ms" if g.audio_start_ms is not None else ""
    promised = f" ({g.declared_frames} promised)" if g.missing_frames > 1 else ""
    result = ", ".join(x for x in (av, f"{g.frames}/{g.frames_expected} frames{promised}", "CFR" if g.constant_frame_rate else "VFR", start) if x)
    verdict = "ok"
    for level, _ in problems:
        verdict = _worse(verdict, level)
    return Finding(verdict, result, "; ".join(p for _, p in problems) or "as promised")


# -- output ---------------------------------------------------------------------------------


def _num(x, digits: int = 3):
    if x is None:
        return None
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    x = float(x)
    return round(x, digits) if math.isfinite(x) else None


def _to_dict(r: Report) -> dict:
    fps = r.video.fps
    sec = lambda frame: _num(float(frame / fps), 3)
    fin = r.findings
    d: dict = {
        "version": REPORT_VERSION,
        "video": {
            "path": r.video.path,
            "width": r.video.width,
            "height": r.video.height,
            "fps": fps_str(fps),
            "frames": r.video.frames,
            "duration_s": _num(r.video.duration_s),
            "codec": r.video.codec,
            "pix_fmt": r.video.pix_fmt,
        },
        "overall": r.overall,
        "verdicts": r.verdicts(),
        "face": {"method": r.face.method, "box": r.face.as_list(), "identity_reference": r.identity.reference},
        "seams": [
            {
                "frame": s.frame,
                "time_s": sec(s.frame),
                "z": _num(s.z, 2),
                "z_diff": _num(s.z_diff, 2),
                "z_flow": _num(s.z_flow, 2),
                "flagged": s.flagged,
                "peak_frame": s.peak_frame,
                "window": list(s.window),
                "planned": s.planned,
            }
            for s in r.seams
        ],
        "seams_summary": {**_finding(fin["seams"], fps), "threshold_z": r.seam_threshold, "planned": r.planned, "flagged": sum(s.flagged for s in r.seams),
                          "chaining": r.chaining},
        "color": {
            **_finding(fin["color"], fps),
            "delta_e_per_min": _num(r.color.delta_e_per_min),
            "delta_e_total": _num(r.color.delta_e_total),
            "slope_lab_per_min": [_num(v) for v in r.color.slope_lab_per_min] if r.color.slope_lab_per_min else None,
            "delta_e_vs_first_max": _num(r.color.worst_delta_e),
            "worst_time_s": _num(r.color.worst_second),
            "delta_e_vs_portrait_start": _num(r.color.de_vs_portrait[0]) if r.color.de_vs_portrait is not None and r.color.de_vs_portrait.size else None,
            "delta_e_vs_portrait_max": _num(r.color.de_vs_portrait.max()) if r.color.de_vs_portrait is not None and r.color.de_vs_portrait.size else None,
            "per_second": {
                "second": [int(s) for s in r.color.seconds],
                "lab": [[_num(v, 2) for v in row] for row in r.color.lab],
                "delta_e_vs_first": [_num(v, 3) for v in r.color.de_vs_first],
                "delta_e_vs_portrait": [_num(v, 3) for v in r.color.de_vs_portrait] if r.color.de_vs_portrait is not None else None,
            },
        },
        "identity": {
            **_finding(fin["identity"], fps),
            "reference": r.identity.reference,
            "similarity_start": _num(r.identity.start),
            "similarity_end": _num(r.identity.end),
            "drop": _num(r.identity.drop),
            "slope_per_min": _num(r.identity.slope_per_min, 4),
            "worst_time_s": _num(r.identity.worst_second),
            "per_second": {"second": [int(s) for s in r.identity.seconds], "similarity": [_num(v, 4) for v in r.identity.similarity]},
        },
        "sync": {
            **_finding(fin["sync"], fps),
            "offset_frames": _num(r.sync.offset_frames, 2),
            "offset_ms": _num(_ms(r.sync.offset_frames, fps), 1) if r.sync.offset_frames is not None else None,
            "confidence": _num(r.sync.confidence),
            "drift_frames_per_min": _num(r.sync.drift_frames_per_min),
            "offset_start_frames": _num(r.sync.offset_start_frames, 2),
            "offset_end_frames": _num(r.sync.offset_end_frames, 2),
            "global_lag_frames": _num(r.sync.global_lag_frames, 2),
            "global_r": _num(r.sync.global_r),
            "mouth_source": r.sync.source,
            "windows": [
                {
                    "start_frame": w.start_frame,
                    "end_frame": w.end_frame,
                    "time_s": sec(w.start_frame),
                    "lag_frames": _num(w.lag_frames, 2),
                    "r": _num(w.r),
                    "speech_fraction": _num(w.speech_fraction, 2),
                    "used": w.used,
                }
                for w in r.sync.windows
            ],
        },
        "mouth": {
            **_finding(fin["mouth"], fps),
            "speech_motion": _num(r.mouth.speech_motion, 4),
            "silence_motion": _num(r.mouth.silence_motion, 4),
            "silence_motion_ratio": _num(r.mouth.ratio),
            "pauses": [
                {"start_frame": p.start_frame, "end_frame": p.end_frame, "time_s": sec(p.start_frame), "score": _num(p.score), "flagged": p.flagged}
                for p in r.mouth.pauses
            ],
        },
        "integrity": {
            **_finding(fin["integrity"], fps),
            "frames": r.integrity.frames,
            "frames_expected": r.integrity.frames_expected,
            "frames_expected_from": r.integrity.frames_expected_from,
            "frame_count_diff": r.integrity.frame_count_diff,
            "av_duration_diff_frames": _num(r.integrity.av_duration_diff_frames, 3),
            "video_duration_s": _num(r.integrity.video_duration_s, 4),
            "audio_duration_s": _num(r.integrity.audio_duration_s, 4),
            "video_start_ms": _num(r.integrity.video_start_ms, 2),
            "audio_start_ms": _num(r.integrity.audio_start_ms, 2),
            "audio_sample_rate_hz": r.integrity.audio_sample_rate_hz,
            "constant_frame_rate": r.integrity.constant_frame_rate,
            "irregular_intervals": r.integrity.irregular_intervals,
            "max_interval_frames": _num(r.integrity.max_interval_frames, 3),
            "plan_frames_diff": r.integrity.plan_frames_diff,
            "plan_fps_matches": r.integrity.plan_fps_matches,
            "declared_frames": r.integrity.declared_frames,
            "declared_duration_s": _num(r.integrity.declared_duration_s, 4),
            "decoded_end_s": _num(r.integrity.decoded_end_s, 4),
            "missing_frames": r.integrity.missing_frames,
        },
        "thresholds": {k: getattr(r.thresholds, k) for k in r.thresholds.__dataclass_fields__},
        "notes": list(r.notes),
        "files": list(r.files),
    }
    return d


def _finding(f: Finding, fps: Fraction) -> dict:
    return {
        "verdict": f.verdict,
        "result": f.result,
        "reason": f.reason,
        "worst": [{"frame": m.frame, "time_s": _num(float(m.frame / fps)), "timestamp": _ts(m.frame, fps), "what": m.text} for m in f.worst],
    }


def write_outputs(report: Report, out_dir: Path) -> Report:
    """Write report.json, report.png and (when a join was captured) contact_sheet.png; return the report naming them."""
    from quality.plot import write_contact_sheet, write_report_png

    with writing_to(out_dir, f"write the report into {out_dir}", elsewhere="pass --out with another folder"):
        out_dir.mkdir(parents=True, exist_ok=True)
        files = []
        png = out_dir / "report.png"
        write_report_png(report, png)
        files.append(png.name)
        sheet = out_dir / "contact_sheet.png"
        made, why = write_contact_sheet(report, sheet)
    notes = report.notes
    if made:
        files.append(sheet.name)
    elif why:
        notes = notes + (why,)
    files.append("report.json")
    report = replace(report, files=tuple(files), notes=notes)
    atomic_write_text(out_dir / "report.json", report.to_json(), doing=f"write the report into {out_dir}",
                      elsewhere="pass --out with another folder")
    return report


def worst_seam(report: Report) -> Seam | None:
    finite = [s for s in report.seams if math.isfinite(s.z)]
    return max(finite, key=lambda s: s.z) if finite else None


def format_summary(report: Report) -> str:
    """The one-screen terminal table: a verdict per measure, the numbers, and the worst moments."""
    v = report.video
    lines = [
        f"longtake report  {Path(v.path).name}  {format_timestamp(v.duration_s)}  {v.width}×{v.height}  {float(v.fps):g} fps  {v.frames} frames",
        f"face: {report.face.method} box {report.face.as_list()} px; identity against the {report.identity.reference}; "
        f"mouth from the {report.sync.source}; {'planned joins' if report.planned else 'no plan'}",
        "",
        f"{'measure':<16} {'verdict':<7} result",
    ]
    for m in MEASURES:
        f = report.findings[m]
        lines.append(f"{LABELS[m]:<16} {f.verdict.upper() if f.verdict != 'ok' else 'ok':<7} {f.result}")
        if f.verdict != "ok":
            lines.append(f"{'':<24} why: {f.reason}")
            for moment in f.worst[:3]:
                lines.append(f"{'':<24} {_ts(moment.frame, v.fps):>9}  {moment.text}")
    lines += ["", f"{'overall':<16} {report.overall.upper() if report.overall != 'ok' else 'ok'}"]
    if report.notes:
        lines.append("")
        lines += [f"note: {n}" for n in report.notes]
    if report.files:
        lines.append("")
        lines.append("wrote " + ", ".join(report.files))
    return "\n".join(lines)
