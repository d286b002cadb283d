"""The report's single pass over a finished video: every per-frame feature, from one decode.

Frames are never kept: each one is reduced to a handful of numbers (frame
difference and optical flow on a ~128-px copy for the seams, averaged over a
grid of cells without the few that changed most, so talking does not count; mouth motion with
the head's rigid motion removed, on a canonical face crop, for lip sync), and a
few times a second to a face descriptor (HOG) and a face colour (Lab) for the
drift measures. The audio track is decoded in the same demux loop, band-passed
to the voice band and binned into per-frame energies on the video's timeline.
Thumbnails are kept only for the frames a contact sheet may need: around the
planned joins, or (without a plan) around the strongest jump candidates seen
so far, taken from a short ring buffer.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable

import av
import cv2
import numpy as np
from scipy import signal

from orchestrator.errors import MediaError, not_a_file
from quality.face import (
    COLOUR_COLS,
    COLOUR_ROWS,
    IDENTITY_COLS,
    IDENTITY_ROWS,
    MOUTH_COLS,
    MOUTH_ROWS,
    UPPER_COLS,
    UPPER_ROWS,
    CropGeometry,
    FaceBox,
    hog,
    lab_mean,
    locate_face,
    track,
)

SEAM_LONG_SIDE_PX = 128  # seam features are computed on a copy this size
THUMB_LONG_SIDE_PX = 320
GRID_CELL_PX = 6  # coarse grid on the seam-size copy (about 12×21 cells for 9:16)
# Seam series average the grid's cells without the most-changed few: a join changes much of the
# picture at once, a syllable or a blink only a few cells (a mouth is ~1-2 % of a head-and-
# shoulders frame), so talking does not look like a seam.
TRIM_FRACTION = 0.05
SAMPLES_PER_S = 8  # face colour and identity samples per second
TRACK_MIN_SCORE = 0.35  # below this the face is considered lost for that sample
RECENTRE_FRAC = 0.1  # move the crop when the head has moved this fraction of the face width
VOICE_BAND_HZ = (150.0, 4000.0)
PROGRESS_EVERY = 24

# Farneback settings: (pyr_scale, levels, winsize, iterations, poly_n, poly_sigma, flags)
SEAM_FLOW = (0.5, 2, 9, 2, 5, 1.1, 0)
FACE_FLOW = (0.5, 2, 9, 3, 5, 1.1, 0)


@dataclass
class AudioTrack:
    """What the pass learnt about the audio: energy per video frame and the stream's timing facts."""

    sample_rate_hz: int
    channels: int
    codec: str
    first_pts_s: float | None
    decoded_samples: int
    declared_duration_s: float | None
    frame_energy: np.ndarray  # mean square of the voice band, per video frame (absolute timeline)
    frame_samples: np.ndarray  # audio samples that fell in each frame


@dataclass
class PortraitRef:
    box: FaceBox  # in portrait pixels
    lab: np.ndarray
    hog: np.ndarray
    match_score: float


@dataclass
class StreamFeatures:
    path: Path
    width: int
    height: int
    fps: Fraction
    codec: str
    pix_fmt: str
    num_frames: int
    video_pts: np.ndarray  # int64 per decoded frame
    video_time_base: Fraction
    video_declared_duration_s: float | None
    container_duration_s: float | None
    diff: np.ndarray  # per frame: |ΔY|+|ΔU|+|ΔV| vs previous frame, cell means, top 5 % trimmed (code values); NaN at 0
    span_diff: dict[int, np.ndarray]  # span -> per frame: the same vs ``span`` frames earlier
    flow: np.ndarray  # per frame: optical-flow magnitude vs previous frame, cell means, top 5 % trimmed (px at full res)
    grid_flow: np.ndarray  # [N, rows, cols, 2] mean flow per coarse cell (px of the seam-size copy)
    mouth: np.ndarray  # per frame: non-rigid motion in the mouth region (canonical px); NaN where unknown
    head: np.ndarray  # per frame: rigid head motion (canonical px); NaN where unknown
    sample_frames: np.ndarray  # frames where colour and identity were sampled
    lab: np.ndarray  # [S, 3] face-skin Lab at those frames
    hogs: np.ndarray  # [S, D] identity descriptors
    track_scores: np.ndarray  # [S] template-match score (how sure the face position is)
    face_xy: np.ndarray  # [S, 2] face box top-left in full-res px
    face: FaceBox  # at frame 0, full-res px
    portrait: PortraitRef | None
    audio: AudioTrack | None
    thumbs: dict[int, np.ndarray] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    video_declared_frames: int | None = None  # the frame count the container's index states (None: not stated)


def _plane(frame: av.VideoFrame, index: int, height: int, width: int) -> np.ndarray:
    plane = frame.planes[index]
    arr = np.frombuffer(plane, np.uint8)
    return arr.reshape(-1, plane.line_size)[:height, :width]


_PLANAR_YUV = {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "yuv440p", "yuvj440p", "yuv411p", "yuv410p"}


def _yuv_planes(frame: av.VideoFrame) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Full-res luma and native-res chroma as views into the decoded frame (no conversion) when planar 8-bit."""
    fmt = frame.format
    if fmt.name in _PLANAR_YUV:
        w, h = frame.width, frame.height
        cw, ch = fmt.components[1].width, fmt.components[1].height
        return _plane(frame, 0, h, w), _plane(frame, 1, ch, cw), _plane(frame, 2, ch, cw)
    return frame.to_ndarray(format="gray", threads=1), None, None


class _Rows:
    """Rows appended one at a time into one preallocated block that doubles when full.

    Thousands of small per-frame arrays kept alive between the decoder's large,
    short-lived frame buffers fragment the C heap: glibc can then give nothing
    back and the resident size grows with the video's length. One block per
    series keeps the pass's memory flat.
    """

    def __init__(self, capacity: int, dtype=np.float32):
        self._capacity = max(16, capacity)
        self._dtype = dtype
        self._a: np.ndarray | None = None
        self.n = 0

    def append(self, row) -> None:
        row = np.asarray(row, self._dtype)
        if self._a is None:
            self._a = np.empty((self._capacity,) + row.shape, self._dtype)
        elif self.n == self._a.shape[0]:
            self._a = np.concatenate([self._a, np.empty_like(self._a)])
        self._a[self.n] = row
        self.n += 1

    def array(self, tail: tuple[int, ...] = ()) -> np.ndarray:
        if self._a is None:
            return np.zeros((0,) + tail, self._dtype)
        return self._a[: self.n].copy()


def _shrink(plane: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Area-average a plane down to ``size``; planes 4× larger or more are first decimated by 2 (a third of the cost)."""
    if plane.shape[1] >= 4 * size[0] and plane.shape[0] >= 4 * size[1]:
        plane = plane[::2, ::2]
    return cv2.resize(plane, size, interpolation=cv2.INTER_AREA)


def _broad(cells: np.ndarray) -> float:
    """Mean of the per-cell values without the top TRIM_FRACTION: what changed across the picture."""
    v = np.sort(cells, axis=None)
    if v.size == 0:  # a region cropped away entirely (a face box at the edge): nothing measured, not numpy's warning
        return float("nan")
    keep = max(1, int(round(v.size * (1.0 - TRIM_FRACTION))))
    return float(v[:keep].mean())


def _yuv_diff(a: tuple, b: tuple, grid: tuple[int, int]) -> float:
    """|ΔY| + |ΔU| + |ΔV| of two small frames, averaged per grid cell, then ``_broad`` (code values)."""
    d = cv2.absdiff(a[0], b[0]).astype(np.float32)
    if a[1] is not None:
        d += cv2.absdiff(a[1], b[1]).astype(np.float32) + cv2.absdiff(a[2], b[2]).astype(np.float32)
    return _broad(cv2.resize(d, grid, interpolation=cv2.INTER_AREA))


class _ThumbKeeper:
    """Thumbnails for the contact sheet: fixed frames (planned joins) or top jump candidates from a ring buffer.

    The ring holds references to the last few decoded frames (no conversion); a
    frame becomes an RGB thumbnail only when a candidate needs it.
    """

    def __init__(self, wanted: set[int] | None, fps: float, top_k: int = 8):
        self.wanted = wanted
        self.thumb_size = (2, 2)
        self.radius = max(2, int(round(fps)))
        self.span_before = max(4, int(round(fps / 3))) + 3
        self.ring: collections.deque[tuple[int, av.VideoFrame]] = collections.deque(maxlen=self.span_before + 4)
        self.top_k = top_k
        self.candidates: dict[int, float] = {}  # centre frame -> proxy score
        self.pending: list[int] = []
        self.thumbs: dict[int, np.ndarray] = {}
        self._history: collections.deque[float] = collections.deque(maxlen=self.radius)
        self._recent: collections.deque[float] = collections.deque(maxlen=self.span_before - 3)

    def _thumb(self, frame: av.VideoFrame) -> np.ndarray:
        return frame.to_ndarray(width=self.thumb_size[0], height=self.thumb_size[1], format="rgb24", threads=1)

    def offer(self, index: int, frame: av.VideoFrame, jump: float) -> None:
        if self.wanted is not None:
            if index in self.wanted:
                self.thumbs[index] = self._thumb(frame)
            return
        self.ring.append((index, frame))
        self._proxy(index, jump)
        for centre in [c for c in self.pending if index >= c + 2]:
            self.pending.remove(centre)
            if centre in self.candidates:
                for i, f in self.ring:
                    if centre - self.span_before <= i <= centre + 2 and i not in self.thumbs:
                        self.thumbs[i] = self._thumb(f)
        self._prune()

    def _proxy(self, index: int, jump: float) -> None:
        """How much this frame (or the last few, for a dissolve) stands out from the second before."""
        if not np.isfinite(jump):
            return
        self._recent.append(jump)
        if len(self._history) >= 3:
            base = float(np.median(self._history))
            w = len(self._recent)
            score = max(jump / (base + 0.25), sum(self._recent) / (w * base + 0.25 * w))
            near = [c for c in self.candidates if abs(c - index) <= self.radius]
            if score >= 2.0 and all(self.candidates[c] < score for c in near):
                for c in near:
                    del self.candidates[c]
                self.candidates[index] = score
                self.pending.append(index)
                if len(self.candidates) > self.top_k:
                    del self.candidates[min(self.candidates, key=self.candidates.get)]
        self._history.append(jump)

    def _prune(self) -> None:
        keep: set[int] = set()
        for c in list(self.candidates) + self.pending:
            keep.update(range(c - self.span_before, c + 3))
        for i in [i for i in self.thumbs if i not in keep]:
            del self.thumbs[i]


class _AudioBins:
    def __init__(self, stream: av.AudioStream, fps: Fraction):
        cc = stream.codec_context
        self.sr = int(cc.sample_rate or stream.rate)
        self.channels = int(cc.channels or 1)
        self.codec = cc.name
        self.fps = fps
        hi = min(VOICE_BAND_HZ[1], 0.45 * self.sr)
        self.sos = signal.butter(2, [VOICE_BAND_HZ[0], hi], btype="bandpass", fs=self.sr, output="sos")
        self.zi = None
        self.energy = np.zeros(1024)
        self.count = np.zeros(1024)
        self.first_pts_s: float | None = None
        self.decoded = 0
        self.next_sample: int | None = None
        tb = stream.time_base
        self.declared = float(stream.duration * tb) if stream.duration and tb else None

    def add(self, frame: av.AudioFrame) -> None:
        arr = frame.to_ndarray()
        n = frame.samples
        if arr.dtype.kind == "i":
            arr = arr.astype(np.float64) / float(np.iinfo(arr.dtype).max)
        elif arr.dtype.kind == "u":
            arr = (arr.astype(np.float64) - 128.0) / 128.0
        if frame.format.is_planar:
            x = arr.reshape(-1, n).mean(axis=0)
        else:
            x = arr.reshape(n, -1).mean(axis=1)
        x = x.astype(np.float64)
        if frame.time is not None:
            start = int(round(frame.time * self.sr))
        else:
            start = self.next_sample or 0
        if self.first_pts_s is None:
            self.first_pts_s = start / self.sr
        self.next_sample = start + n
        self.decoded += n
        if self.zi is None:
            self.zi = signal.sosfilt_zi(self.sos) * (x[0] if n else 0.0)
        y, self.zi = signal.sosfilt(self.sos, x, zi=self.zi)
        samples = start + np.arange(n, dtype=np.int64)
        bins = (samples * self.fps.numerator) // (self.sr * self.fps.denominator)
        ok = bins >= 0
        if not ok.any():
            return
        bins, y = bins[ok], y[ok]
        b0 = int(bins[0])
        need = int(bins[-1]) + 1
        if need > self.energy.size:
            grow = max(need, 2 * self.energy.size)
            self.energy = np.pad(self.energy, (0, grow - self.energy.size))
            self.count = np.pad(self.count, (0, grow - self.count.size))
        rel = bins - b0
        self.energy[b0:need] += np.bincount(rel, weights=y * y)
        self.count[b0:need] += np.bincount(rel)

    def result(self, video_start_s: float, num_frames: int) -> AudioTrack:
        # shift the absolute-time bins onto the video's frame indices
        shift = int(round(video_start_s * float(self.fps)))
        e = np.zeros(num_frames)
        c = np.zeros(num_frames)
        lo, hi = max(shift, 0), min(shift + num_frames, self.energy.size)
        if hi > lo:
            e[lo - shift : hi - shift] = self.energy[lo:hi]
            c[lo - shift : hi - shift] = self.count[lo:hi]
        with np.errstate(invalid="ignore", divide="ignore"):
            ms = np.where(c > 0, e / np.maximum(c, 1), 0.0)
        return AudioTrack(self.sr, self.channels, self.codec, self.first_pts_s, self.decoded, self.declared, ms, c)


def load_portrait(path: Path) -> np.ndarray:
    """RGB uint8 of a portrait image, or MediaError naming the file."""
    from PIL import Image, UnidentifiedImageError

    from generators.portrait import too_many_pixels

    path = Path(path)
    problem = not_a_file(path)
    if problem:
        raise MediaError(f"portrait image is missing: {path}" if problem == "does not exist" else f"portrait {path} {problem}")
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except Image.DecompressionBombError:
        raise MediaError(too_many_pixels(path)) from None
    except (UnidentifiedImageError, OSError) as exc:
        raise MediaError(f"cannot read portrait {path}: {exc}") from None


def _cover_resize(rgb: np.ndarray, width: int, height: int) -> tuple[np.ndarray, float, float, float]:
    """Scale to fill width×height and centre-crop (how a generator conditions on a portrait); returns image, scale, x0, y0."""
    h, w = rgb.shape[:2]
    s = max(width / w, height / h)
    rw, rh = max(width, int(round(w * s))), max(height, int(round(h * s)))
    resized = cv2.resize(rgb, (rw, rh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    x0, y0 = (rw - width) // 2, (rh - height) // 2
    return np.ascontiguousarray(resized[y0 : y0 + height, x0 : x0 + width]), s, x0, y0


def _portrait_reference(portrait_rgb: np.ndarray, geom: CropGeometry, template: np.ndarray, width: int, height: int) -> PortraitRef:
    """Find the video's face template in the portrait (scale search), and describe the portrait face there."""
    fitted, _, _, _ = _cover_resize(portrait_rgb, width, height)
    gray = cv2.cvtColor(fitted, cv2.COLOR_RGB2GRAY)
    pbox = locate_face(fitted)
    if pbox.method == "centre":
        pbox = geom.full_res_box()  # same framing as the video is the best guess
    best: tuple[float, CropGeometry, float, float] | None = None
    for k in (0.8, 0.87, 0.93, 1.0, 1.07, 1.15, 1.25):
        cx, cy = pbox.x + pbox.w / 2, pbox.y + pbox.h / 2
        box = FaceBox(cx - pbox.w * k / 2, cy - pbox.h * k / 2, pbox.w * k, pbox.h * k, pbox.method)
        # keep the video's box aspect so the canonical crops compare like with like
        box = FaceBox(box.x, box.y, box.w, box.w * geom.face.h / geom.face.w, box.method)
        g = CropGeometry.around(box)
        work = g.extract(gray)
        x, y, score = track(work, template, (g.face.x, g.face.y))
        if best is None or score > best[0]:
            best = (score, g, x, y)
    score, g, x, y = best
    fx, fy = x - IDENTITY_COLS[0] * g.face.w, y - IDENTITY_ROWS[0] * g.face.h
    face_in_work = FaceBox(fx, fy, g.face.w, g.face.h, g.face.method)
    work = g.extract(gray)
    ident = _identity_patch(work, face_in_work)
    full = g.full_res_box(face_in_work)
    y0, y1, x0, x1 = full.sub(COLOUR_ROWS, COLOUR_COLS)
    lab = lab_mean(fitted[max(y0, 0) : max(y1, 1), max(x0, 0) : max(x1, 1)])
    return PortraitRef(box=full, lab=lab, hog=hog(ident), match_score=score)


def _identity_patch(work: np.ndarray, face: FaceBox) -> np.ndarray:
    # The size comes from the box's size alone: rounding the corners of a box at a fractional (tracked)
    # position would change it by a pixel from frame to frame, and the HOG's length with it.
    w = max(1, int(round((IDENTITY_COLS[1] - IDENTITY_COLS[0]) * face.w)))
    h = max(1, int(round((IDENTITY_ROWS[1] - IDENTITY_ROWS[0]) * face.h)))
    centre = (face.x + (IDENTITY_COLS[0] + IDENTITY_COLS[1]) / 2 * face.w, face.y + (IDENTITY_ROWS[0] + IDENTITY_ROWS[1]) / 2 * face.h)
    return cv2.getRectSubPix(work, (w, h), centre)


def _region_mean_motion(flow: np.ndarray, face: FaceBox, rows, cols, off: tuple[int, int]) -> np.ndarray:
    y0, y1, x0, x1 = face.moved(-off[0], -off[1]).sub(rows, cols)
    y0, x0 = max(y0, 0), max(x0, 0)
    return flow[y0:y1, x0:x1].reshape(-1, 2)


def stream_features(
    video: Path,
    *,
    portrait_rgb: np.ndarray | None = None,
    thumb_frames: set[int] | None = None,
    spans: tuple[int, ...] = (),
    progress: Callable[[int, int], None] | None = None,
) -> StreamFeatures:
    """Decode ``video`` once and return its per-frame features (see the module docstring).

    ``spans``: also measure the difference between each frame and the one ``s``
    frames earlier, for each ``s`` (a crossfade's length: its whole change in one number).
    """
    video = Path(video)
    problem = not_a_file(video)
    if problem:
        raise MediaError(f"video {video} {problem}" if problem != "does not exist" else f"video file is missing: {video}")
    try:
        container = av.open(str(video))
    except av.FFmpegError as exc:
        raise MediaError(f"cannot read video {video}: {exc}") from None
    with container:
        if not container.streams.video:
            raise MediaError(f"{video} has no video stream")
        vs = container.streams.video[0]
        vs.thread_type = "AUTO"
        fps = Fraction(vs.average_rate or vs.guessed_rate or 0)
        if fps <= 0:
            raise MediaError(f"{video}: cannot tell the frame rate of the video stream")
        a_stream = container.streams.audio[0] if container.streams.audio else None
        audio = _AudioBins(a_stream, fps) if a_stream is not None else None
        tb = vs.time_base or Fraction(1, 1)
        declared_v = float(vs.duration * tb) if vs.duration else None
        declared_c = container.duration / 1e6 if container.duration else None
        expected_total = int(vs.frames or round((declared_v or declared_c or 0) * float(fps)))
        pass_ = _VideoPass(video, fps, portrait_rgb, thumb_frames, spans, progress, expected_total)
        streams = [vs] + ([a_stream] if a_stream is not None else [])
        try:
            for packet in container.demux(*streams):
                for frame in packet.decode():
                    if packet.stream.type == "video":
                        pass_.add(frame)
                    elif audio is not None:
                        audio.add(frame)
        except av.FFmpegError as exc:
            if pass_.n == 0:
                raise MediaError(f"cannot read video {video}: {exc}") from None
            pass_.notes.append(f"decoding stopped early at frame {pass_.n}: {exc}")
        if pass_.n == 0:
            raise MediaError(f"{video} has a video stream but no decodable frames")
        return pass_.finish(vs, tb, declared_v, declared_c, audio)


class _VideoPass:
    def __init__(self, path, fps, portrait_rgb, thumb_frames, spans, progress, expected_total):
        self.path, self.fps = path, fps
        self.spans = tuple(sorted({int(s) for s in spans if s >= 2}))
        cap = int(expected_total * 1.05) + 16
        self.span_diff = {s: _Rows(cap, np.float64) for s in self.spans}
        self.recent_small: collections.deque = collections.deque(maxlen=(self.spans[-1] if self.spans else 1) + 1)
        self.portrait_rgb = portrait_rgb
        self.progress = progress
        self.expected_total = expected_total
        self.keeper = _ThumbKeeper(thumb_frames, float(fps))
        self.n = 0
        self.notes: list[str] = []
        self.pts = _Rows(cap, np.int64)
        self.diff = _Rows(cap, np.float64)
        self.flow = _Rows(cap, np.float64)
        self.grid_flow = _Rows(cap)
        self.mouth = _Rows(cap, np.float64)
        self.head = _Rows(cap, np.float64)
        self.samples: list[int] = []
        self.labs = _Rows(cap // 2, np.float64)
        self.hogs = _Rows(cap // 2)
        self.scores: list[float] = []
        self.face_xy: list[tuple[float, float]] = []
        self.step = max(1, int(round(float(fps) / SAMPLES_PER_S)))
        self.portrait: PortraitRef | None = None
        self.lost = 0

    # -- per frame -----------------------------------------------------------------------
    def add(self, frame: av.VideoFrame) -> None:
        i = self.n
        y, u, v = _yuv_planes(frame)
        if i == 0:
            self._init(frame, y)
        self.pts.append(frame.pts if frame.pts is not None else i)
        ys = _shrink(y, self.small_size)
        if u is not None:
            us = _shrink(u, self.small_size)
            vs_ = _shrink(v, self.small_size)
        else:
            us = vs_ = None
        jump = float("nan")
        if i == 0:
            self.diff.append(np.nan)
            self.flow.append(np.nan)
            self.grid_flow.append(np.zeros((self.grid[1], self.grid[0], 2), np.float32))
        else:
            d = _yuv_diff((ys, us, vs_), self.prev_small, self.grid)
            fl = cv2.calcOpticalFlowFarneback(self.prev_small[0], ys, None, *SEAM_FLOW)
            cells = cv2.resize(fl, self.grid, interpolation=cv2.INTER_AREA)
            mag = _broad(np.sqrt((cells * cells).sum(axis=2))) / self.small_scale
            self.grid_flow.append(cells)
            self.diff.append(float(d))
            self.flow.append(mag)
            jump = float(d)
        self.prev_small = (ys, us, vs_)
        self.recent_small.append(self.prev_small)
        for span in self.spans:
            if len(self.recent_small) > span:
                self.span_diff[span].append(_yuv_diff(self.prev_small, self.recent_small[-1 - span], self.grid))
            else:
                self.span_diff[span].append(np.nan)

        work = self.geom.extract(y)
        self._face_motion(work)
        if i % self.step == 0:
            self._sample(frame, y, work)
            work = self.prev_work  # _sample may have re-centred the crop
        self.prev_work = work

        self.keeper.offer(i, frame, jump)
        self.n += 1
        if self.progress is not None and self.n % PROGRESS_EVERY == 0:
            self.progress(self.n, max(self.expected_total, self.n))

    def _init(self, frame: av.VideoFrame, y: np.ndarray) -> None:
        w, h = frame.width, frame.height
        self.width, self.height = w, h
        self.codec_pix_fmt = frame.format.name
        s = min(1.0, SEAM_LONG_SIDE_PX / max(w, h))
        self.small_size = (max(8, int(round(w * s))), max(8, int(round(h * s))))
        self.small_scale = self.small_size[0] / w
        self.grid = (max(2, int(round(self.small_size[0] / GRID_CELL_PX))), max(2, int(round(self.small_size[1] / GRID_CELL_PX))))
        t = min(1.0, THUMB_LONG_SIDE_PX / max(w, h))
        self.keeper.thumb_size = (max(2, int(round(w * t)) // 2 * 2), max(2, int(round(h * t)) // 2 * 2))
        rgb = frame.to_ndarray(format="rgb24", threads=1)
        face = locate_face(rgb)
        if face.method == "centre" and self.portrait_rgb is not None:
            fitted, _, _, _ = _cover_resize(self.portrait_rgb, w, h)
            pface = locate_face(fitted)
            if pface.method != "centre":
                face = pface
                self.notes.append("face not found in the first frame; using the portrait's face position")
        if face.method == "centre":
            self.notes.append("no face found (Haar cascade unavailable or no detection, no skin-coloured blob); assuming the centre of the frame")
        self.face = face
        self.geom = CropGeometry.around(face)
        self.face_w = self.geom.face  # face box in work-image px, current tracked position
        work = self.geom.extract(y)
        self.template = _identity_patch(work, self.geom.face)
        self.prev_work = None
        if self.portrait_rgb is not None:
            self.portrait = _portrait_reference(self.portrait_rgb, self.geom, self.template, w, h)
            if self.portrait.match_score < TRACK_MIN_SCORE:
                self.notes.append(f"the portrait's face matches the video's first frame poorly (score {self.portrait.match_score:.2f}); identity and colour against the portrait are rough")

    def _face_motion(self, work: np.ndarray) -> None:
        if self.prev_work is None:
            self.mouth.append(np.nan)
            self.head.append(np.nan)
            return
        f = self.face_w
        pad = 6
        y0, x0 = max(int(f.y) - pad, 0), max(int(f.x) - pad, 0)
        y1, x1 = min(int(f.y + f.h) + pad, work.shape[0]), min(int(f.x + f.w) + pad, work.shape[1])
        flow = cv2.calcOpticalFlowFarneback(self.prev_work[y0:y1, x0:x1], work[y0:y1, x0:x1], None, *FACE_FLOW)
        upper = _region_mean_motion(flow, f, UPPER_ROWS, UPPER_COLS, (x0, y0))
        mouth = _region_mean_motion(flow, f, MOUTH_ROWS, MOUTH_COLS, (x0, y0))
        if upper.size == 0 or mouth.size == 0:
            self.mouth.append(np.nan)
            self.head.append(np.nan)
            return
        rigid = np.median(upper, axis=0)
        residual = mouth - rigid
        self.mouth.append(float(np.sqrt((residual * residual).sum(axis=1)).mean()))
        self.head.append(float(np.hypot(*rigid)))

    def _sample(self, frame: av.VideoFrame, y: np.ndarray, work: np.ndarray) -> None:
        tpl_off = (self.geom.face.x + IDENTITY_COLS[0] * self.geom.face.w, self.geom.face.y + IDENTITY_ROWS[0] * self.geom.face.h)
        tx, ty, score = track(work, self.template, tpl_off)
        if score >= TRACK_MIN_SCORE:
            fx, fy = tx - IDENTITY_COLS[0] * self.geom.face.w, ty - IDENTITY_ROWS[0] * self.geom.face.h
            self.face_w = FaceBox(fx, fy, self.geom.face.w, self.geom.face.h, self.geom.face.method)
        else:
            self.lost += 1
        f = self.face_w
        dx, dy = f.x - self.geom.face.x, f.y - self.geom.face.y
        if max(abs(dx), abs(dy)) > RECENTRE_FRAC * self.geom.face.w:
            # re-centre the crop on the head; the previous crop is re-cut so the next flow compares like with like
            self.geom = self.geom.moved(dx, dy)
            self.face_w = self.geom.face
            work = self.geom.extract(y)
        self.prev_work = work
        full = self.geom.full_res_box(self.face_w)
        self.samples.append(self.n)
        self.scores.append(score)
        self.face_xy.append((full.x, full.y))
        self.hogs.append(hog(_identity_patch(work, self.face_w)))
        cs = min(1.0, 128.0 / max(full.w, 1.0))
        if cs < 1.0:
            cw, ch = max(2, int(round(self.width * cs))), max(2, int(round(self.height * cs)))
            rgb = frame.to_ndarray(width=cw, height=ch, format="rgb24", threads=1)
        else:
            rgb = frame.to_ndarray(format="rgb24", threads=1)
        y0, y1, x0, x1 = full.scaled(cs).sub(COLOUR_ROWS, COLOUR_COLS)
        patch = rgb[max(y0, 0) : max(y1, 1), max(x0, 0) : max(x1, 1)]
        self.labs.append(lab_mean(patch) if patch.size else np.full(3, np.nan))

    # -- end -----------------------------------------------------------------------------
    def finish(self, vs, tb, declared_v, declared_c, audio: _AudioBins | None) -> StreamFeatures:
        if self.progress is not None:
            self.progress(self.n, self.n)
        pts = self.pts.array()
        video_start_s = float(pts[0] * tb) if pts.size else 0.0
        if self.lost:
            self.notes.append(f"the face was not found in {self.lost} of {len(self.samples)} samples (occluded, turned away or off-frame)")
        hogs = self.hogs.array((0,))
        return StreamFeatures(
            path=self.path,
            width=self.width,
            height=self.height,
            fps=self.fps,
            codec=vs.codec_context.name,
            pix_fmt=self.codec_pix_fmt,
            num_frames=self.n,
            video_pts=pts,
            video_time_base=Fraction(tb),
            video_declared_duration_s=declared_v,
            container_duration_s=declared_c,
            diff=self.diff.array(),
            span_diff={k: v.array() for k, v in self.span_diff.items()},
            flow=self.flow.array(),
            grid_flow=self.grid_flow.array((self.grid[1], self.grid[0], 2)),
            mouth=self.mouth.array(),
            head=self.head.array(),
            sample_frames=np.asarray(self.samples, np.int64),
            lab=self.labs.array((3,)),
            hogs=hogs,
            track_scores=np.asarray(self.scores, np.float64),
            face_xy=np.asarray(self.face_xy, np.float64).reshape(-1, 2),
            face=self.face,
            portrait=self.portrait,
            audio=audio.result(video_start_s, self.n) if audio is not None else None,
            thumbs=dict(self.keeper.thumbs),
            notes=self.notes,
            video_declared_frames=int(vs.frames) if vs.frames else None,
        )
