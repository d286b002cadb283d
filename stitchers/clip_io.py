"""Segment clips on disk: streaming write and read of the high-quality intermediate.

Generators write each segment as H.264 4:4:4 at a low CRF (visually lossless, about
100× smaller than raw on a moving portrait) through ``ClipWriter``, usually on a worker thread
(``BackgroundClipWriter``) so encoding overlaps rendering or the GPU decode; the
stitcher streams them back with ``iter_frames``. Nothing here holds more than a
bounded queue of frames.

The intermediate uses x264's ``ultrafast`` preset: on the same CRF it is 2.5×
(smooth picture) to 4.7× (noise-like picture) faster to encode than
``veryfast`` on 2 cores (6× on the H100 host's 16, with frame threads; see
benchmarks/results/ltx2_gpu_h100.txt) and faster to decode, at a higher PSNR (48.6 against 46.4 dB on a
moving portrait), for 2–2.5× the bytes — a trade the intermediate should make,
since the stitcher, not the intermediate, sets the delivered size.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterable, Iterator

import av
import numpy as np

from orchestrator.atomic import atomic_path
from orchestrator.errors import MediaError

INTERMEDIATE_CRF = 12
INTERMEDIATE_PRESET = "ultrafast"
ENCODER_NICE = 5  # the background encoder yields the CPU to the thread that feeds it
# Intermediates are BT.709, tagged, like the final video, so the stitcher passes
# their YCbCr through without a matrix conversion.
_BT709 = 1  # AVCOL_SPC / AVCOL_PRI / AVCOL_TRC_BT709
_LIMITED_RANGE = 1  # AVCOL_RANGE_MPEG


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    width: int
    height: int
    fps: Fraction
    num_frames: int
    codec: str
    pix_fmt: str


class ClipWriter:
    """Write RGB uint8 frames to ``path`` atomically (the file appears only when closed without error)."""

    def __init__(self, path: Path, width: int, height: int, fps: Fraction, crf: int = INTERMEDIATE_CRF, preset: str = INTERMEDIATE_PRESET, gop_frames: int | None = None):
        self.path = Path(path)
        self.width, self.height, self.fps = width, height, Fraction(fps)
        self._crf, self._preset = crf, preset
        # A keyframe every second (by default) lets the stitcher sample a clip's colour by decoding keyframes only.
        self._gop = gop_frames if gop_frames is not None else max(1, round(self.fps))
        self.frames_written = 0

    def __enter__(self) -> "ClipWriter":
        self._atomic = atomic_path(self.path)
        tmp = self._atomic.__enter__()
        self._tmp = tmp
        self._container = av.open(str(tmp), mode="w", format="mp4")
        stream = self._container.add_stream("libx264", rate=self.fps)
        stream.width, stream.height = self.width, self.height
        stream.pix_fmt = "yuv444p"
        stream.options = {"crf": str(self._crf), "preset": self._preset, "g": str(self._gop)}
        stream.codec_context.time_base = 1 / self.fps
        cc = stream.codec_context
        # Frame threads (x264's and ffmpeg's default); PyAV's default, slice threads, scales worse with cores.
        cc.thread_type, cc.thread_count = "FRAME", 0
        cc.colorspace, cc.color_primaries, cc.color_trc, cc.color_range = _BT709, _BT709, _BT709, _LIMITED_RANGE
        self._stream = stream
        return self

    def write(self, frame: np.ndarray) -> None:
        if frame.shape != (self.height, self.width, 3) or frame.dtype != np.uint8:
            raise ValueError(f"frame must be uint8 [{self.height}, {self.width}, 3], got {frame.dtype} {list(frame.shape)}")
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        self._encode(vf.reformat(format="yuv444p", dst_colorspace=_BT709, dst_color_range=_LIMITED_RANGE))

    def write_ycbcr(self, planes: np.ndarray) -> None:
        """Write one frame already in BT.709 limited-range Y'CbCr 4:4:4: uint8 ``[3, H, W]`` (Y, Cb, Cr planes).

        For callers that convert on the GPU (``stitchers.color.BT709_LIMITED``'s matrix): the
        encoder then spends no CPU on colour conversion.
        """
        if planes.shape != (3, self.height, self.width) or planes.dtype != np.uint8:
            raise ValueError(f"planes must be uint8 [3, {self.height}, {self.width}], got {planes.dtype} {list(planes.shape)}")
        self._encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(planes), format="yuv444p"))

    def _encode(self, vf: av.VideoFrame) -> None:
        vf.colorspace, vf.color_range = _BT709, _LIMITED_RANGE
        vf.pts = self.frames_written
        for packet in self._stream.encode(vf):
            self._container.mux(packet)
        self.frames_written += 1

    def write_all(self, frames: Iterable[np.ndarray]) -> None:
        for frame in frames:
            self.write(frame)

    def start_writeback(self) -> None:
        """Write what the muxer has handed to the OS so far to disk (fsync, safe from any thread).

        Called periodically while a long clip is written, it keeps the dirty pages few, so the
        fsync at close (the clip's durability) does not stall the caller at the end.
        """
        with contextlib.suppress(OSError, AttributeError):
            fd = os.open(self._tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                for packet in self._stream.encode():
                    self._container.mux(packet)
        finally:
            self._container.close()
            self._atomic.__exit__(exc_type, exc, tb)


class BackgroundClipWriter:
    """A ``ClipWriter`` fed from a bounded queue and encoding on a worker thread.

    x264 and libswscale release the GIL, so the encode overlaps whatever the
    producer does next (render a frame, decode the next tile on the GPU). At most
    ``max_items`` items wait, so memory stays bounded; an item is one RGB frame
    ``[H, W, 3]`` (``put``) or a chunk of Y'CbCr frames ``[f, 3, H, W]``
    (``put_ycbcr``), given as an array or as a function the worker calls to get it
    (a GPU producer hands over its device tensor's copy that way and never waits on
    it). An error on the worker is raised in the producer by the next ``put`` or by
    leaving the ``with`` block; leaving it on an exception stops the worker at once
    and no clip appears (the writer is atomic).

    The producer is the critical path (it keeps a GPU busy), the encoder has slack:
    the worker runs at ``encoder_nice`` (the x264 threads it starts inherit it), and
    a flusher starts the clip's write-back every ``flush_interval_s`` so the final
    fsync has little left to do.
    """

    _STOP = object()

    def __init__(self, path: Path, width: int, height: int, fps: Fraction, *, max_items: int = 8, encoder_nice: int = ENCODER_NICE,
                 flush_interval_s: float = 1.0, **writer_options):  # fmt: skip
        self._writer = ClipWriter(path, width, height, fps, **writer_options)
        self._queue: queue.Queue = queue.Queue(maxsize=max_items)
        self._error: BaseException | None = None
        self._cancel = threading.Event()
        self._done = threading.Event()
        self._nice = encoder_nice
        self._flush_interval_s = flush_interval_s
        self._thread = threading.Thread(target=self._run, name="clip-writer", daemon=True)
        self._flusher = threading.Thread(target=self._flush_loop, name="clip-flusher", daemon=True)

    @property
    def frames_written(self) -> int:
        return self._writer.frames_written

    def __enter__(self) -> "BackgroundClipWriter":
        self._writer.__enter__()
        self._thread.start()
        if self._flush_interval_s > 0:
            self._flusher.start()
        return self

    def _run(self) -> None:
        if self._nice > 0:
            with contextlib.suppress(OSError, AttributeError):  # per-thread on Linux; elsewhere it is only a hint
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), os.getpriority(os.PRIO_PROCESS, 0) + self._nice)
        while True:
            item = self._queue.get()
            if item is self._STOP:
                return
            if self._error is not None or self._cancel.is_set():
                continue  # drain without work until the producer stops
            try:
                kind, data = item
                fetched = callable(data)
                if fetched:
                    data = data()
                if kind == "rgb":
                    self._writer.write(data)
                else:
                    if fetched:  # an array was checked when it was queued
                        self._check_chunk(data)
                    for planes in data:
                        if self._cancel.is_set():
                            break
                        self._writer.write_ycbcr(planes)
            except BaseException as exc:  # noqa: BLE001 - handed to the producer thread
                self._error = exc

    def _flush_loop(self) -> None:
        while not self._done.wait(self._flush_interval_s):
            self._writer.start_writeback()

    def put(self, frame: "np.ndarray | Callable[[], np.ndarray]") -> None:
        """Queue one RGB uint8 ``[H, W, 3]`` frame (the array must not change afterwards)."""
        self._put(("rgb", frame))

    def put_ycbcr(self, chunk: "np.ndarray | Callable[[], np.ndarray]") -> None:
        """Queue uint8 ``[f, 3, H, W]`` BT.709 limited-range Y'CbCr frames (see ``ClipWriter.write_ycbcr``)."""
        if not callable(chunk):
            self._check_chunk(chunk)
        self._put(("ycbcr", chunk))

    def _check_chunk(self, chunk: np.ndarray) -> None:
        if chunk.ndim != 4 or chunk.shape[1:] != (3, self._writer.height, self._writer.width) or chunk.dtype != np.uint8:
            raise ValueError(f"chunk must be uint8 [f, 3, {self._writer.height}, {self._writer.width}], got {chunk.dtype} {list(chunk.shape)}")

    def _put(self, item: tuple) -> None:
        while True:
            if self._error is not None:
                raise self._error
            if not self._thread.is_alive():
                raise MediaError(f"the encoder for {self._writer.path} stopped early")
            try:
                self._queue.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self._cancel.set()  # skip the queued work: the clip is discarded anyway
        while self._thread.is_alive():
            try:
                self._queue.put(self._STOP, timeout=0.5)
                break
            except queue.Full:
                continue
        self._thread.join()
        self._done.set()
        if self._flusher.is_alive():
            self._flusher.join()
        error = self._error if exc_type is None else None
        try:
            self._writer.__exit__(*((type(error), error, None) if error is not None else (exc_type, exc, tb)))
        finally:
            if error is not None:
                raise error


def probe_video(path: Path, *, count_frames: bool = True) -> VideoInfo:
    """Read a clip's shape once, at the boundary; raise MediaError with the path on failure.

    When the container does not record its frame count, ``count_frames`` decodes the stream to count
    them; without it ``num_frames`` is 0 then (for callers that only need size and rate).
    """
    path = Path(path)
    if not path.is_file():
        raise MediaError(f"video file is missing: {path}")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise MediaError(f"{path} has no video stream")
            stream = container.streams.video[0]
            num_frames = stream.frames
            if not num_frames and count_frames:
                num_frames = sum(1 for _ in container.decode(stream))
            fps = stream.average_rate or stream.guessed_rate or Fraction(0)
            return VideoInfo(path, stream.width, stream.height, Fraction(fps), int(num_frames), stream.codec_context.name, str(stream.format.name))
    except av.FFmpegError as exc:
        raise MediaError(f"cannot read video {path}: {exc}") from None


def iter_frames(path: Path) -> Iterator[np.ndarray]:
    """Yield a clip's frames as RGB uint8 arrays, one at a time."""
    path = Path(path)
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                yield frame.to_ndarray(format="rgb24")
    except av.FFmpegError as exc:
        raise MediaError(f"cannot read video {path}: {exc}") from None
