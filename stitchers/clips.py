"""Reading segment clips for the stitcher: checks at the boundary, then YCbCr planes, one frame at a time.

Every failure names the segment and the file and says how to fix it
(``MediaError``, exit 3). Frames come out as views on the decoder's own
buffers (no copy, no RGB conversion); the frame object travels with them to
keep that memory alive for as long as a crossfade needs it.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator, Sequence

import av
import cv2
import numpy as np

from orchestrator.errors import MediaError
from segmenters.plan import Plan
from stitchers.clip_io import VideoInfo, probe_video
from stitchers.color import YCbCrSpace, ycbcr_space_for
from stitchers.compose import Geometry, clip_frames_needed

def _fix(segment: int) -> str:
    # --redo replaces the cached entry in one step; no folder needs deleting by hand.
    return f"regenerate it with `longtake run PROJECT.yaml --redo {segment}`"
_PLANAR_444 = ("yuv444p", "yuvj444p")


@dataclass(frozen=True)
class CheckedClip:
    segment: int
    path: Path
    info: VideoInfo
    frames_needed: int


def check_clip(plan: Plan, i: int, path: Path) -> tuple[CheckedClip, list[str]]:
    """Probe segment ``i``'s clip and check it against the plan; returns warnings for harmless mismatches."""
    path = Path(path)
    where = f"segment {i}: clip {path}"
    if not path.is_file():
        raise MediaError(f"{where} is missing; {_fix(i)}")
    try:
        info = probe_video(path)
    except MediaError as exc:
        raise MediaError(f"segment {i}: {exc}; {_fix(i)}") from None
    seg = plan.segments[i]
    if (info.width, info.height) != (plan.width, plan.height):
        raise MediaError(f"{where} is {info.width}×{info.height} but the plan generates {plan.width}×{plan.height}; {_fix(i)}")
    if info.fps and abs(Fraction(info.fps) - plan.fps) > plan.fps / 1000:
        raise MediaError(f"{where} runs at {float(info.fps):g} fps but the plan is {float(plan.fps):g} fps; {_fix(i)}")
    needed = clip_frames_needed(plan, i)
    warnings: list[str] = []
    if info.num_frames and info.num_frames < needed:
        raise MediaError(f"{where} has {info.num_frames} frames but the stitch needs its first {needed} (the plan generates {seg.gen_frames}); the file is truncated; {_fix(i)}")
    if info.num_frames and info.num_frames != seg.gen_frames:
        warnings.append(f"segment {i}: clip {path} has {info.num_frames} frames, the plan generates {seg.gen_frames}; using its first {needed}")
    return CheckedClip(i, path, info, needed), warnings


@dataclass
class YuvFrame:
    planes: tuple[np.ndarray, np.ndarray, np.ndarray]  # Y, Cb, Cr at full resolution, uint8
    space: YCbCrSpace
    keep: object


def _plane_view(plane, width: int, height: int) -> np.ndarray:
    return np.frombuffer(plane, dtype=np.uint8).reshape(height, plane.line_size)[:, :width]


def _as_yuv444(frame: av.VideoFrame) -> YuvFrame:
    if frame.format.name not in _PLANAR_444:
        # Foreign clips (4:2:0, RGB, …): let libswscale bring them to BT.709 4:4:4 once.
        frame = frame.reformat(format="yuv444p", dst_colorspace=1, dst_color_range=1)
        space = ycbcr_space_for(1, 1)
    else:
        space = ycbcr_space_for(frame.colorspace, frame.color_range, frame.format.name)
    w, h = frame.width, frame.height
    planes = tuple(_plane_view(frame.planes[c], w, h) for c in range(3))
    return YuvFrame(planes, space, frame)  # type: ignore[arg-type]


def iter_clip(clip: CheckedClip, limit: int | None = None) -> Iterator[YuvFrame]:
    """Decode the clip's first ``limit`` frames (all if None) as YCbCr 4:4:4 planes; MediaError if it ends early."""
    want = clip.frames_needed if limit is None else limit
    got = 0
    where = f"segment {clip.segment}: clip {clip.path}"
    try:
        with av.open(str(clip.path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                if (frame.width, frame.height) != (clip.info.width, clip.info.height):
                    raise MediaError(f"{where} changes size to {frame.width}×{frame.height} at frame {got}; {_fix(clip.segment)}")
                yield _as_yuv444(frame)
                got += 1
                if got >= want:
                    return
    except av.FFmpegError as exc:
        raise MediaError(f"{where} cannot be decoded at frame {got}: {exc}; {_fix(clip.segment)}") from None
    if got < want:
        raise MediaError(f"{where} ends after {got} frames but the stitch needs {want}; the file is truncated; {_fix(clip.segment)}")


def _to_rgb_small(yuv: YuvFrame, geometry: Geometry, max_pixels: int) -> np.ndarray:
    """A small RGB uint8 copy of the shown window, converted with the same matrix the stitcher uses."""
    win_h, win_w = geometry.crop_height, geometry.crop_width
    step = max(1, int(np.ceil(np.sqrt(win_w * win_h / max_pixels))))
    size = (max(1, win_w // step), max(1, win_h // step))
    planes = [cv2.resize(geometry.window(p), size, interpolation=cv2.INTER_AREA) for p in yuv.planes]
    codes = np.stack(planes, axis=-1).astype(np.float64)
    m = yuv.space.code_to_rgb()
    rgb = codes @ m[:3, :3].T + m[:3, 3]
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def sample_clip_rgb(clip: CheckedClip, lo: int, hi: int, geometry: Geometry, *, samples: int = 4, max_pixels: int = 65536) -> list[np.ndarray]:
    """Small RGB frames from about ``samples`` evenly spaced points of local frames ``[lo, hi)``, for colour statistics.

    Seeks to the keyframe at or before each point and decodes only that frame
    (ClipWriter puts a keyframe every second): a handful of frame decodes per
    clip instead of hundreds. A clip whose keyframes are too sparse to give
    distinct samples in range is decoded fully and sampled evenly instead.
    """
    where = f"segment {clip.segment}: clip {clip.path}"
    count = max(1, min(samples, hi - lo))
    targets = [lo + (2 * k + 1) * (hi - lo) // (2 * count) for k in range(count)]
    found: dict[int, np.ndarray] = {}
    try:
        with av.open(str(clip.path)) as container:
            stream = container.streams.video[0]
            ctx = stream.codec_context
            rate, tb = stream.average_rate or stream.guessed_rate, stream.time_base
            start = stream.start_time or 0
            if rate and tb:
                for target in targets:
                    container.seek(start + int(Fraction(target) / Fraction(rate) / Fraction(tb)), stream=stream, backward=True, any_frame=False)
                    for packet in container.demux(stream):
                        if packet.size == 0 or not packet.is_keyframe:
                            continue
                        # Decode this one packet and drain: the decoder would otherwise wait for
                        # more packets to fill its reorder buffer before giving the frame back.
                        decoded = list(ctx.decode(packet)) + list(ctx.decode(None))
                        ctx.flush_buffers()
                        if decoded and decoded[0].pts is not None:
                            index = round((decoded[0].pts - start) * Fraction(tb) * Fraction(rate))
                            if lo <= index < hi and index not in found:
                                found[index] = _to_rgb_small(_as_yuv444(decoded[0]), geometry, max_pixels)
                        break
    except av.FFmpegError as exc:
        raise MediaError(f"{where} cannot be decoded: {exc}; {_fix(clip.segment)}") from None
    if len(found) >= min(3, count):
        return [found[k] for k in sorted(found)]
    wanted = set(targets)
    out = []
    for index, yuv in enumerate(iter_clip(clip, limit=hi)):
        if index in wanted:
            out.append(_to_rgb_small(yuv, geometry, max_pixels))
    return out


class Prefetcher:
    """Decodes the clips, in order, on a background thread, at most ``depth`` frames ahead of the consumer.

    PyAV releases the GIL while decoding, so decoding the next frames overlaps
    compositing and encoding the current one. ``frames(i)`` must be called for
    i = 0, 1, … in order; an error raised while decoding clip i is raised by
    ``frames(i)`` at the point the bad frame would have been. ``close()``
    stops the thread and drops what it decoded.
    """

    _END = object()

    def __init__(self, clips: Sequence[CheckedClip], depth: int = 6):
        self._clips = list(clips)
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._skip_through = -1  # clips up to this index are abandoned by the consumer: stop decoding them
        self.decode_s = 0.0  # time the thread spent inside the decoder
        self._thread = threading.Thread(target=self._run, name="longtake-decode", daemon=True)
        self._thread.start()

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for i, clip in enumerate(self._clips):
                frames = iter_clip(clip)
                try:
                    while self._skip_through < i:
                        t0 = time.perf_counter()
                        frame = next(frames, self._END)
                        self.decode_s += time.perf_counter() - t0
                        if frame is self._END:
                            break
                        if not self._put((i, frame)):
                            return
                finally:
                    frames.close()
                if not self._put((i, self._END)):
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which re-raises it
            self._put((None, exc))

    def _get(self):
        """The next item; (None, None) once the thread is gone and nothing is left."""
        while True:
            try:
                return self._queue.get(timeout=0.1)
            except queue.Empty:
                if not self._thread.is_alive() and self._queue.empty():
                    return None, None

    def frames(self, i: int) -> Iterator[YuvFrame]:
        done = False
        try:
            while True:
                owner, item = self._get()
                if owner is None:
                    done = True
                    if item is None:
                        raise RuntimeError(f"internal error: the decoding thread stopped before clip {i}")
                    raise item
                if owner != i:
                    raise RuntimeError(f"internal error: prefetched a frame of clip {owner} while reading clip {i}")
                if item is self._END:
                    done = True
                    return
                yield item
        finally:
            if not done:
                # Closed early: the consumer has what it needs (or is unwinding). Stop decoding this clip
                # and drop what was decoded ahead, up to its end marker.
                self._skip_through = i
                while True:
                    owner, item = self._get()
                    if owner is None:
                        if item is not None:
                            self._queue.put((owner, item))  # keep the error for the next clip's reader
                        break
                    if item is self._END:
                        break

    def close(self) -> None:
        self._stop.set()
        while self._thread.is_alive():
            try:
                while True:
                    self._queue.get_nowait()
            except queue.Empty:
                pass
            self._thread.join(timeout=0.05)
