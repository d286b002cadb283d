"""Stitch a plan's segment clips into one MP4: crossfades, colour hold, the master audio, export presets.

``stitch()`` reads as numbered stages:

1. check inputs: every clip (present, decodable, right size, fps and length),
   the master audio, the export settings and captions, before any encoding, so
   a bad segment 14 fails in a second, not after 13 segments of encoding;
2. colour: per-segment Lab statistics from a few keyframes, one fitted
   correction per segment toward the reference (the portrait or segment 0),
   measured on a background thread while the segments before it encode;
3. stream: decode each clip once, in order; each output frame is rendered from
   its layers (``compose.clip_uses`` decides which) straight into a 4:2:0
   frame, captions burnt in, encoded, and followed by the master audio up to
   the same instant. Only the frames of the overlap being crossfaded are held,
   so memory does not grow with the video's length;
4. finish: flush, move the index to the front, check frame count and
   durations, and rename into place (a failed stitch leaves no ``output``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator, Sequence

import av
import cv2
import numpy as np

from orchestrator.atomic import atomic_path
from orchestrator.config import ExportConfig, StitcherConfig
from orchestrator.errors import LongtakeError, MediaError
from orchestrator.timebase import frame_to_sample
from segmenters.plan import Plan
from stitchers.audio import OUTPUT_RATE_HZ, AudioFeed, probe_audio
from stitchers.captions import CaptionBurner, CaptionStyle, CaptionTrack, Cue, load_captions
from stitchers.clips import CheckedClip, Prefetcher, YuvFrame, check_clip, sample_clip_rgb
from stitchers.color import ColorStats, ColorTransform, YCbCrSpace, color_stats, color_transform
from stitchers.compose import Compositor, FrameUse, Geometry, Layer, assemble, canonical_matrix, fit_geometry
from stitchers.export import EncodeSettings, Mp4Writer, resolve_export

ProgressFn = Callable[[int, int], None]
AUDIO_MISMATCH_ERROR_S = 0.5  # more than this and the audio is not the voiceover the plan was made from


@dataclass(frozen=True)
class StitchResult:
    output: Path
    frames: int
    duration_s: float
    size_bytes: int
    width: int
    height: int
    fps: Fraction
    timings_s: dict[str, float]
    warnings: tuple[str, ...]


class _Timer:
    def __init__(self) -> None:
        self.totals: dict[str, float] = {}

    def add(self, name: str, seconds: float) -> None:
        self.totals[name] = self.totals.get(name, 0.0) + seconds

    def timed_iter(self, name: str, it: Iterator) -> Iterator:
        try:
            while True:
                t0 = time.perf_counter()
                try:
                    item = next(it)
                except StopIteration:
                    return
                finally:
                    self.add(name, time.perf_counter() - t0)
                yield item
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()


@contextlib.contextmanager
def _opencv_single_threaded():
    """OpenCV's pool spins while it waits: on a machine x264 already keeps busy, a 1080p LUT costs 2.7× the
    CPU with two threads as with one. The per-plane work here is cheap; run it on the calling thread."""
    before = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(before)


def stitch(
    plan: Plan,
    clips: Sequence[Path],
    master_wav: Path,
    output: Path,
    *,
    stitcher: StitcherConfig,
    export: ExportConfig,
    reference_rgb: np.ndarray | None = None,
    progress: ProgressFn | None = None,
    captions: CaptionTrack | None = None,
) -> StitchResult:
    """Join the segment ``clips`` of ``plan`` into ``output`` with the master audio; see the module docstring.

    ``captions``: cues and word times on the video's time line, burnt in or muxed (``export.captions``, the
    older way to give a caption file, still works when this is None).
    """
    with _opencv_single_threaded():
        return _stitch(plan, clips, master_wav, output, stitcher=stitcher, export=export, reference_rgb=reference_rgb, progress=progress,
                       captions=captions)


def _stitch(
    plan: Plan,
    clips: Sequence[Path],
    master_wav: Path,
    output: Path,
    *,
    stitcher: StitcherConfig,
    export: ExportConfig,
    reference_rgb: np.ndarray | None,
    progress: ProgressFn | None,
    captions: CaptionTrack | None = None,
) -> StitchResult:
    t_start = time.perf_counter()
    timer = _Timer()
    output = Path(output)
    warnings: list[str] = []

    # 1. check inputs
    if len(clips) != len(plan.segments):
        raise ValueError(f"the plan has {len(plan.segments)} segments but {len(clips)} clips were given")
    checked: list[CheckedClip] = []
    for i, path in enumerate(clips):
        clip, clip_warnings = check_clip(plan, i, Path(path))
        checked.append(clip)
        warnings += clip_warnings
    audio = probe_audio(Path(master_wav))
    video_s = Fraction(plan.total_frames) / plan.fps
    mismatch_s = abs(audio.duration_s - float(video_s))
    if mismatch_s > AUDIO_MISMATCH_ERROR_S:
        raise MediaError(
            f"master audio {audio.path} lasts {audio.duration_s:.2f} s but the plan's video lasts {float(video_s):.2f} s; "
            "the plan was made from a different voiceover: run `longtake plan` again"
        )
    if mismatch_s > float(1 / plan.fps):
        warnings.append(f"master audio lasts {audio.duration_s:.3f} s, the video {float(video_s):.3f} s; the audio is {'cut' if audio.duration_s > video_s else 'padded with silence'} to the video")
    settings = resolve_export(export, gen_width=plan.width, gen_height=plan.height, fps=plan.fps, total_frames=plan.total_frames, audio_channels=audio.channels)
    warnings += settings.warnings
    geometry = fit_geometry(plan.width, plan.height, settings.width, settings.height)
    if captions is None and export.captions is not None:
        # Caption times refer to the voiceover as delivered; the master starts trim_start_sample later.
        offset_ms = -round(plan.trim_start_sample * 1000 / plan.sample_rate_hz)
        captions = CaptionTrack(tuple(load_captions(Path(export.captions), offset_ms=offset_ms, duration_ms=int(video_s * 1000))),
                                style=CaptionStyle(), burn=export.burn_captions)
    cues: list[Cue] = list(captions.cues) if captions is not None else []
    # Burnt-in captions are not also muxed: movenc enables a lone text track, and players that show
    # enabled text tracks would draw the captions twice.
    settings = dataclasses.replace(settings, mux_captions=bool(captions and cues and not captions.burn),
                                   burn_captions=bool(captions and captions.burn and (cues or captions.words)))
    timer.add("check_s", time.perf_counter() - t_start)

    # 2. colour (measured in the background, ahead of need), 3. stream, 4. finish
    transforms = _ColorTransforms(plan, checked, geometry, stitcher, reference_rgb, warnings)
    total_out_samples = frame_to_sample(plan.total_frames, plan.fps, OUTPUT_RATE_HZ)
    feed = AudioFeed(audio, total_out_samples)
    try:
        with atomic_path(output, suffix=".mp4") as tmp:
            writer = Mp4Writer(tmp, settings, audio_layout=feed.layout, cues=cues)
            try:
                _stream(plan, checked, transforms, settings, geometry, writer, feed, captions, stitcher.color_ramp_frames, timer, progress)
                t0 = time.perf_counter()
                writer.finish()
                timer.add("finish_s", time.perf_counter() - t0)
            except BaseException:
                writer.abort()
                raise
            _verify(tmp, plan.total_frames, settings.fps)
    finally:
        transforms.close()
        timer.add("color_wait_s", transforms.wait_s)
    size = output.stat().st_size
    if settings.cap_bytes is not None and size > settings.cap_bytes:
        warnings.append(f"{output} is {size / 1e6:.1f} MB, over {settings.preset}'s {settings.cap_bytes / 1e6:g} MB cap; lower export.max_file_mb a little and stitch again")
    timer.add("total_s", time.perf_counter() - t_start)
    return StitchResult(
        output=output,
        frames=plan.total_frames,
        duration_s=float(video_s),
        size_bytes=size,
        width=settings.width,
        height=settings.height,
        fps=settings.fps,
        timings_s={k: round(v, 4) for k, v in timer.totals.items()},
        warnings=tuple(warnings),
    )


class _ColorTransforms:
    """One correction per segment toward the reference, measured on a background thread ahead of need.

    Sampling a clip's colour costs a few keyframe decodes; done here while
    earlier segments encode, it adds no wait before the first frame (in
    ``first`` mode segment 0 *is* the reference, so its correction is the
    identity without measuring anything). ``self[i]`` blocks only if the
    measurement of clip i is not finished yet.
    """

    def __init__(self, plan: Plan, clips: Sequence[CheckedClip], geometry: Geometry, cfg: StitcherConfig, reference_rgb: np.ndarray | None, warnings: list[str]):
        self._n = len(plan.segments)
        self._strength = cfg.color_hold_strength
        self._cache: dict[int, ColorTransform] = {}
        self.wait_s = 0.0
        self._pool: ThreadPoolExecutor | None = None
        if cfg.color_hold == "off" or cfg.color_hold_strength == 0.0:
            self._mode = "off"
            return
        self._mode = cfg.color_hold
        self._reference: ColorStats | None = None
        if self._mode == "portrait":
            if reference_rgb is None:
                warnings.append("stitcher.color_hold is 'portrait' but no portrait was given to the stitcher; holding to segment 0 instead")
                self._mode = "first"
            else:
                self._reference = color_stats(np.asarray(reference_rgb))

        def measure(i: int) -> ColorStats:
            seg = plan.segments[i]
            # What the segment itself shows (its owned frames), not the context it shares with the previous one.
            return color_stats(sample_clip_rgb(clips[i], seg.context_frames, seg.context_frames + seg.owned_frames, geometry))

        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="longtake-colour")
        self._stats: list[Future] = [self._pool.submit(measure, i) for i in range(self._n)]

    def __getitem__(self, i: int) -> ColorTransform:
        if i not in self._cache:
            if self._mode == "off" or (self._mode == "first" and i == 0):
                self._cache[i] = ColorTransform.identity()
            else:
                t0 = time.perf_counter()
                reference = self._reference or self._stats[0].result()
                self._cache[i] = color_transform(self._stats[i].result(), reference, self._strength)
                self.wait_s += time.perf_counter() - t0
        return self._cache[i]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)


def _stream(
    plan: Plan,
    clips: Sequence[CheckedClip],
    transforms: "_ColorTransforms",
    settings: EncodeSettings,
    geometry: Geometry,
    writer: Mp4Writer,
    feed: AudioFeed,
    captions: CaptionTrack | None,
    color_ramp_frames: int,
    timer: _Timer,
    progress: ProgressFn | None,
) -> None:
    compositor = Compositor(geometry)
    burner = None
    if settings.burn_captions and captions is not None:
        burner = CaptionBurner(captions.cues, settings.fps, settings.width, settings.height, style=captions.style, words=captions.words,
                               mouth_box=_to_output_box(captions.mouth_box, geometry))
    total = plan.total_frames
    emitted = 0

    def emit(f: int, layers: list[Layer]) -> None:
        nonlocal emitted
        t0 = time.perf_counter()
        frame = writer.new_frame()
        planes = tuple(
            np.frombuffer(frame.planes[c], dtype=np.uint8).reshape(p.height, p.line_size)[:, : p.width]
            for c, p in enumerate(frame.planes)
        )
        compositor.render(layers, planes)  # type: ignore[arg-type]
        if burner is not None:
            burner.burn(f, planes)  # type: ignore[arg-type]
        t1 = time.perf_counter()
        writer.write_video(frame)
        for audio_frame in feed.frames_until(frame_to_sample(f + 1, settings.fps, OUTPUT_RATE_HZ)):
            writer.write_audio(audio_frame)
        t2 = time.perf_counter()
        timer.add("compose_s", t1 - t0)
        timer.add("encode_s", t2 - t1)
        emitted += 1
        if progress is not None:
            progress(emitted, total)

    matrices: dict[tuple[int, float, YCbCrSpace], np.ndarray] = {}

    def make_layer(i: int, use: FrameUse, yuv: YuvFrame) -> Layer:
        key = (i, use.color_mix, yuv.space)
        matrix = matrices.get(key)
        if matrix is None:
            t = transforms[i] if use.color_mix >= 1.0 or i == 0 else ColorTransform.lerp(transforms[i - 1], transforms[i], use.color_mix)
            matrix = matrices[key] = canonical_matrix(t.in_space(yuv.space))
        return Layer(yuv.planes, matrix, use.weight if use.blend else 1.0, yuv.keep)

    prefetch = Prefetcher(clips)

    def open_clip(i: int) -> Iterator[YuvFrame]:
        matrices.clear()
        return timer.timed_iter("decode_wait_s", prefetch.frames(i))

    try:
        for f, layers in assemble(plan, open_clip, make_layer, color_ramp_frames):
            emit(f, layers)
    finally:
        prefetch.close()
        timer.add("decode_s", prefetch.decode_s)
    if emitted != total:
        raise LongtakeError(f"internal error: wrote {emitted} frames, the plan has {total}")
    for audio_frame in feed.frames_until(feed.total_samples):
        writer.write_audio(audio_frame)


def _to_output_box(box: tuple[int, int, int, int] | None, g: Geometry) -> tuple[int, int, int, int] | None:
    """A box in generation pixels, through the crop and scale, in output pixels."""
    if box is None:
        return None
    sx, sy = g.out_width / g.crop_width, g.out_height / g.crop_height
    x0, y0, x1, y1 = box
    return (int(np.floor((x0 - g.crop_x) * sx)), int(np.floor((y0 - g.crop_y) * sy)),
            int(np.ceil((x1 - g.crop_x) * sx)), int(np.ceil((y1 - g.crop_y) * sy)))


def _verify(path: Path, frames: int, fps: Fraction) -> None:
    """Read the finished file's index back: frame count and both durations, before it is renamed into place."""
    try:
        with av.open(str(path)) as container:
            video = container.streams.video[0]
            audio = container.streams.audio[0]
            got_frames = video.frames
            video_s = float(video.duration * video.time_base) if video.duration else None
            audio_s = float(audio.duration * audio.time_base) if audio.duration else None
    except (av.FFmpegError, IndexError) as exc:
        raise LongtakeError(f"internal error: the stitched file cannot be read back: {exc}") from None
    if got_frames != frames:
        raise LongtakeError(f"internal error: the stitched file has {got_frames} frames, the plan {frames}")
    want_s = frames / fps
    if video_s is not None and audio_s is not None and abs(video_s - audio_s) > float(1 / fps):
        raise LongtakeError(f"internal error: video lasts {video_s:.3f} s but audio {audio_s:.3f} s (want {float(want_s):.3f} s)")
