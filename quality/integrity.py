"""Container facts a finished longtake video must satisfy (DESIGN.md, Stitching).

The video and audio durations agree within one frame; the frame count is
``round(duration·fps)`` of the master audio; frames are evenly spaced (constant
frame rate); the first audio sample sits at time 0, with the first frame; and,
given the plan, the video has the plan's frame rate and frame count. Without a
plan, the container's own index is the promise: a file cut short (a copy that
stopped, a full disk) decodes fewer frames than its index states, and the
analysis says where decoding ended.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from quality.stream import StreamFeatures
from segmenters.plan import Plan

IRREGULAR_FRAC = 0.1  # a frame interval this far (in frames) from 1 is irregular


@dataclass(frozen=True)
class IntegrityAnalysis:
    frames: int
    fps: Fraction
    video_start_ms: float
    video_duration_s: float
    has_audio: bool
    audio_start_ms: float | None
    audio_duration_s: float | None
    audio_sample_rate_hz: int | None
    av_duration_diff_frames: float | None  # (audio − video) duration in frames
    frames_expected: int
    frames_expected_from: str  # "audio" | "video"
    frame_count_diff: int
    constant_frame_rate: bool
    irregular_intervals: int
    max_interval_frames: float
    plan_frames_diff: int | None
    plan_fps_matches: bool | None
    declared_frames: int | None = None  # frames the container's index promises (None: it does not say)
    declared_duration_s: float | None = None  # the video stream's (else the container's) stated duration
    decoded_end_s: float = 0.0  # where decoding ended: the end of the last decoded frame
    missing_frames: int = 0  # declared − decoded frames (> 0: the file is cut short or damaged)


def analyse_integrity(f: StreamFeatures, plan: Plan | None) -> IntegrityAnalysis:
    tb = f.video_time_base
    pts = f.video_pts
    fps = f.fps
    starts_s = float(pts[0] * tb) if pts.size else 0.0
    ordered = np.sort(pts)
    intervals = np.diff(ordered).astype(np.float64) * float(tb) * float(fps)  # in frames
    irregular = int(np.sum(np.abs(intervals - 1.0) > IRREGULAR_FRAC)) if intervals.size else 0
    max_interval = float(intervals.max()) if intervals.size else 1.0
    video_duration = (float((ordered[-1] - ordered[0]) * tb) + 1.0 / float(fps)) if pts.size else 0.0

    a = f.audio
    audio_start_ms = audio_duration = av_diff = None
    if a is not None and a.decoded_samples > 0:
        decoded = a.decoded_samples / a.sample_rate_hz
        # the container's own duration trims encoder padding (AAC) where it says less than was decoded
        audio_duration = min(decoded, a.declared_duration_s) if a.declared_duration_s else decoded
        audio_start_ms = 1000.0 * (a.first_pts_s or 0.0)
        av_diff = (audio_duration - video_duration) * float(fps)
    if audio_duration is not None:
        expected = int(round(audio_duration * float(fps)))
        source = "audio"
    else:
        expected = int(round(video_duration * float(fps)))
        source = "video"
    plan_diff = plan.total_frames - f.num_frames if plan is not None else None
    declared_s = f.video_declared_duration_s or f.container_duration_s
    declared_frames = f.video_declared_frames or (int(round(declared_s * float(fps))) if declared_s else None)
    decoded_end_s = (float((ordered[-1]) * tb) + 1.0 / float(fps)) if pts.size else 0.0
    plan_fps = (plan.fps == fps) if plan is not None else None
    return IntegrityAnalysis(
        frames=f.num_frames,
        fps=fps,
        video_start_ms=1000.0 * starts_s,
        video_duration_s=video_duration,
        has_audio=a is not None and a.decoded_samples > 0,
        audio_start_ms=audio_start_ms,
        audio_duration_s=audio_duration,
        audio_sample_rate_hz=a.sample_rate_hz if a is not None else None,
        av_duration_diff_frames=av_diff,
        frames_expected=expected,
        frames_expected_from=source,
        frame_count_diff=f.num_frames - expected,
        constant_frame_rate=irregular == 0,
        irregular_intervals=irregular,
        max_interval_frames=max_interval,
        plan_frames_diff=plan_diff,
        plan_fps_matches=plan_fps,
        declared_frames=declared_frames,
        declared_duration_s=declared_s,
        decoded_end_s=decoded_end_s,
        missing_frames=max(0, declared_frames - f.num_frames) if declared_frames else 0,
    )
