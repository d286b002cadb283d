"""Segment clips on disk: streaming write and read of the high-quality intermediate.

Generators write each segment as H.264 4:4:4 at a low CRF (visually lossless,
~20× smaller than raw) through ``ClipWriter``; the stitcher streams them back
with ``iter_frames``. Nothing here holds more than one frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator

import av
import numpy as np

from orchestrator.atomic import atomic_path
from orchestrator.errors import MediaError

INTERMEDIATE_CRF = 12
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

    def __init__(self, path: Path, width: int, height: int, fps: Fraction, crf: int = INTERMEDIATE_CRF, preset: str = "veryfast", gop_frames: int | None = None):
        self.path = Path(path)
        self.width, self.height, self.fps = width, height, Fraction(fps)
        self._crf, self._preset = crf, preset
        # A keyframe every second (by default) lets the stitcher sample a clip's colour by decoding keyframes only.
        self._gop = gop_frames if gop_frames is not None else max(1, round(self.fps))
        self.frames_written = 0

    def __enter__(self) -> "ClipWriter":
        self._atomic = atomic_path(self.path)
        tmp = self._atomic.__enter__()
        self._container = av.open(str(tmp), mode="w", format="mp4")
        stream = self._container.add_stream("libx264", rate=self.fps)
        stream.width, stream.height = self.width, self.height
        stream.pix_fmt = "yuv444p"
        stream.options = {"crf": str(self._crf), "preset": self._preset, "g": str(self._gop)}
        stream.codec_context.time_base = 1 / self.fps
        cc = stream.codec_context
        cc.colorspace, cc.color_primaries, cc.color_trc, cc.color_range = _BT709, _BT709, _BT709, _LIMITED_RANGE
        self._stream = stream
        return self

    def write(self, frame: np.ndarray) -> None:
        if frame.shape != (self.height, self.width, 3) or frame.dtype != np.uint8:
            raise ValueError(f"frame must be uint8 [{self.height}, {self.width}, 3], got {frame.dtype} {list(frame.shape)}")
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        vf = vf.reformat(format="yuv444p", dst_colorspace=_BT709, dst_color_range=_LIMITED_RANGE)
        vf.colorspace, vf.color_range = _BT709, _LIMITED_RANGE
        vf.pts = self.frames_written
        for packet in self._stream.encode(vf):
            self._container.mux(packet)
        self.frames_written += 1

    def write_all(self, frames: Iterable[np.ndarray]) -> None:
        for frame in frames:
            self.write(frame)

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                for packet in self._stream.encode():
                    self._container.mux(packet)
        finally:
            self._container.close()
            self._atomic.__exit__(exc_type, exc, tb)


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
