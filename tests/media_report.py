"""Synthetic talking-portrait videos with planted faults, for the report tests and its benchmark.

A drawn head (skin ellipse with texture, hair, eyes, nose, a mouth) sways
gently over a textured background; its mouth opens with a speech-like audio
envelope, and the same envelope modulates a voiced tone that is muxed as AAC.
Every fault the report must find is planted at a known place:

- ``audio_delay_frames``: the mouth at frame ``f`` shows the envelope of audio
  frame ``f + d`` (positive: the audio comes late); ``delay_end_frames`` makes
  the delay ramp linearly to another value by the last frame (sync drift);
- ``joins``: segment boundaries, each ``"clean"`` (the next segment continues
  the picture exactly), ``"cut"`` (a pose/colour jump, no crossfade) or
  ``"crossfade"`` (the same jump dissolved over the context frames);
- ``color_drift_lab_per_min``: a linear drift of the whole picture in Lab;
- ``identity_morph_s``: the face turns into another face (eyes, brows, nose,
  jaw, hair) linearly over ``(start_s, end_s)``;
- ``babble_s``: intervals where the mouth moves while the audio is silent;
- ``audio_start_s`` / ``audio_trim_end_s`` / ``vfr``: container faults;
- ``wall_rgb``: a flat (e.g. skin-coloured) wall behind the head, to defeat a skin detector.

Nothing here is imported by the product.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator, Sequence

import av
import cv2
import numpy as np

from orchestrator.timebase import frame_to_sample
from segmenters.plan import FrameGrid, Plan, make_segment

SAMPLE_RATE_HZ = 48_000
SKIN_RGB = (224, 172, 138)


# -- audio -----------------------------------------------------------------------------


def speech_envelope(duration_s: float, sr: int, seed: int, pauses_s: Sequence[tuple[float, float]] = ()) -> np.ndarray:
    """Per-sample envelope in [0, 1]: irregular syllables in phrases, silent in ``pauses_s`` and between phrases."""
    rng = np.random.default_rng(seed)
    n = int(round(duration_s * sr))
    env = np.zeros(n, np.float64)
    t = 0.35
    phrase_end = t + rng.uniform(1.8, 3.2)
    while t < duration_s - 0.3:
        if t >= phrase_end:  # a breath between phrases
            t += rng.uniform(0.45, 0.8)
            phrase_end = t + rng.uniform(1.8, 3.2)
            continue
        dur = rng.uniform(0.09, 0.26)
        amp = rng.uniform(0.45, 1.0)
        a, b = int(t * sr), min(n, int((t + dur) * sr))
        if b > a:
            env[a:b] = np.maximum(env[a:b], amp * np.hanning(b - a + 2)[1:-1] ** 0.7)
        t += dur + rng.uniform(0.02, 0.16)
    for start_s, end_s in pauses_s:
        a, b = int(start_s * sr), int(end_s * sr)
        fade = int(0.03 * sr)
        env[a:b] = 0.0
        if a - fade > 0:
            env[a - fade : a] *= np.linspace(1, 0, fade)
        if b + fade < n:
            env[b : b + fade] *= np.linspace(0, 1, fade)
    return env


def voice(env: np.ndarray, sr: int, seed: int) -> np.ndarray:
    """A voiced tone (gliding f0, 12 harmonics, breath noise) shaped by ``env``; float32 mono in [-1, 1]."""
    rng = np.random.default_rng(seed + 1)
    n = env.size
    t = np.arange(n) / sr
    f0 = 150.0 + 25.0 * np.sin(2 * np.pi * 0.37 * t) + 10.0 * np.sin(2 * np.pi * 2.3 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    tone = sum(np.sin(k * phase) / k for k in range(1, 13))
    noise = rng.standard_normal(n)
    signal = env * (0.55 * tone / 2.0 + 0.08 * noise) + 1e-4 * noise
    return np.clip(signal, -1, 1).astype(np.float32)


def frame_envelope(env: np.ndarray, sr: int, fps: Fraction, num_frames: int) -> np.ndarray:
    """Mean envelope over each video frame's sample span (0 past the end)."""
    out = np.zeros(num_frames)
    for f in range(num_frames):
        a, b = frame_to_sample(f, fps, sr), frame_to_sample(f + 1, fps, sr)
        if a < env.size:
            out[f] = env[a:min(b, env.size)].mean()
    return out


# -- picture ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Face:
    """Geometry of a drawn face in units of the head width (so it scales with the frame)."""

    eye_dx: float = 0.22
    eye_y: float = -0.12
    eye_rx: float = 0.085
    eye_ry: float = 0.045
    brow_y: float = -0.22
    brow_tilt: float = 0.0
    nose_len: float = 0.16
    jaw: float = 1.0  # head height / width multiplier
    hair_rgb: tuple[int, int, int] = (70, 45, 30)
    iris_rgb: tuple[int, int, int] = (60, 90, 60)

    def mix(self, other: "Face", w: float) -> "Face":
        def lerp(a, b):
            if isinstance(a, tuple):
                return tuple(int(round(x + (y - x) * w)) for x, y in zip(a, b))
            return a + (b - a) * w

        return Face(**{k: lerp(getattr(self, k), getattr(other, k)) for k in self.__dataclass_fields__})


FACE_A = Face()
FACE_B = Face(eye_dx=0.16, eye_y=-0.05, eye_rx=0.06, eye_ry=0.065, brow_y=-0.31, brow_tilt=0.5, nose_len=0.27, jaw=1.22, hair_rgb=(210, 190, 120), iris_rgb=(40, 60, 140))


class HeadRenderer:
    """Draws frames of a talking head at ``width``×``height`` (any size; geometry scales with the width)."""

    def __init__(self, width: int, height: int, seed: int = 0, wall_rgb: tuple[int, int, int] | None = None):
        self.w, self.h = width, height
        rng = np.random.default_rng(seed + 7)
        yy = np.linspace(0, 1, height)[:, None, None]
        if wall_rgb is None:
            base = np.array([70.0, 95.0, 120.0]) * (1 - yy) + np.array([150.0, 150.0, 140.0]) * yy
        else:  # a flat wall, e.g. skin-coloured, which defeats a skin detector
            base = np.array(wall_rgb, np.float64) * (1.0 - 0.1 * yy)
        texture = cv2.GaussianBlur(rng.standard_normal((height, width)).astype(np.float32), (0, 0), max(1.0, width / 90))
        texture /= texture.std() + 1e-9
        self.background = np.clip(base + 14.0 * texture[..., None], 0, 255).astype(np.float32)
        skin_tex = cv2.GaussianBlur(rng.standard_normal((height, width)).astype(np.float32), (0, 0), max(0.7, width / 200))
        self.skin_texture = (skin_tex / (skin_tex.std() + 1e-9)).astype(np.float32)
        self.head_w = 0.5 * width
        self.cx, self.cy = 0.5 * width, 0.36 * height
        self._cache: dict = {}

    def _geom(self, dx: float, dy: float):
        hw, s = self.head_w, 16  # cv2 drawing with 4 fractional bits: smooth sub-pixel geometry
        P = lambda x, y: (int(round((self.cx + dx + x * hw) * s)), int(round((self.cy + dy + y * hw) * s)))
        A = lambda rx, ry: (max(1, int(round(rx * hw * s))), max(1, int(round(ry * hw * s))))
        return P, A

    def _static(self, face: Face, blink: bool) -> np.ndarray:
        """The head without its mouth at the rest position: RGBA float32 (cached per face and blink)."""
        key = (face, blink)
        if key in self._cache:
            return self._cache[key]
        w, h, hw = self.w, self.h, self.head_w
        P, A = self._geom(0.0, 0.0)
        layer = np.zeros((h, w, 3), np.float32)
        mask = np.zeros((h, w), np.float32)
        # shoulders and neck
        cv2.ellipse(layer, P(0, 1.15 * face.jaw), A(0.9, 0.45), 0, 180, 360, (60, 70, 110), -1, cv2.LINE_AA, 4)
        cv2.ellipse(mask, P(0, 1.15 * face.jaw), A(0.9, 0.45), 0, 180, 360, 1.0, -1, cv2.LINE_AA, 4)
        cv2.rectangle(layer, P(-0.17, 0.3), P(0.17, 0.9 * face.jaw), SKIN_RGB, -1, cv2.LINE_AA, 4)
        cv2.rectangle(mask, P(-0.17, 0.3), P(0.17, 0.9 * face.jaw), 1.0, -1, cv2.LINE_AA, 4)
        # hair behind, then the face
        cv2.ellipse(layer, P(0, -0.12), A(0.55, 0.62 * face.jaw), 0, 0, 360, face.hair_rgb, -1, cv2.LINE_AA, 4)
        cv2.ellipse(mask, P(0, -0.12), A(0.55, 0.62 * face.jaw), 0, 0, 360, 1.0, -1, cv2.LINE_AA, 4)
        face_mask = np.zeros((h, w), np.float32)
        cv2.ellipse(face_mask, P(0, 0.02), A(0.45, 0.6 * face.jaw), 0, 0, 360, 1.0, -1, cv2.LINE_AA, 4)
        cv2.ellipse(face_mask, P(0, -0.5 * face.jaw), A(0.5, 0.25), 0, 0, 360, 0.0, -1, cv2.LINE_AA, 4)  # hairline
        skin = np.array(SKIN_RGB, np.float32) * (1 + 0.035 * self.skin_texture[..., None])
        layer = layer * (1 - face_mask[..., None]) + skin * face_mask[..., None]
        mask = np.maximum(mask, face_mask)
        # eyes, brows, nose
        for side in (-1, 1):
            ex = side * face.eye_dx
            cv2.ellipse(layer, P(ex, face.eye_y), A(face.eye_rx, face.eye_ry * (0.1 if blink else 1.0)), 0, 0, 360, (245, 245, 240), -1, cv2.LINE_AA, 4)
            if not blink:
                cv2.circle(layer, P(ex, face.eye_y), int(face.eye_ry * 0.9 * hw * 16), face.iris_rgb, -1, cv2.LINE_AA, 4)
            tilt = side * face.brow_tilt * 0.06
            cv2.line(layer, P(ex - 0.09, face.brow_y + tilt), P(ex + 0.09, face.brow_y - tilt), (60, 40, 30), max(1, int(0.03 * hw)), cv2.LINE_AA, 4)
        cv2.line(layer, P(0.0, -0.02), P(0.03, -0.02 + face.nose_len), (170, 120, 95), max(1, int(0.025 * hw)), cv2.LINE_AA, 4)
        rgba = np.dstack([layer, mask]).astype(np.float32)
        if len(self._cache) > 64:
            self._cache.clear()
        self._cache[key] = rgba
        return rgba

    def render(
        self,
        t_s: float,
        mouth_open: float,
        *,
        face: Face = FACE_A,
        pose_dx: float = 0.0,
        pose_dy: float = 0.0,
        lab_shift: tuple[float, float, float] = (0.0, 0.0, 0.0),
        sway: bool = True,
    ) -> np.ndarray:
        """One RGB uint8 frame at time ``t_s``; ``pose_*`` in head widths, ``lab_shift`` added in Lab."""
        blink = 0.5 < (t_s % 4.1) / 4.1 < 0.5 + 0.12 / 4.1
        rgba = self._static(face, blink)
        hw = self.head_w
        dx = pose_dx * hw + (0.03 * hw * np.sin(2 * np.pi * t_s / 5.3) if sway else 0.0)
        dy = pose_dy * hw + (0.02 * hw * np.sin(2 * np.pi * t_s / 3.7 + 1.0) if sway else 0.0)
        moved = cv2.warpAffine(rgba, np.float32([[1, 0, dx], [0, 1, dy]]), (self.w, self.h), flags=cv2.INTER_LINEAR)
        alpha = moved[..., 3:]
        frame = self.background + (moved[..., :3] - self.background) * alpha
        # mouth: dark opening whose height follows mouth_open, lips around it
        P, A = self._geom(dx, dy)
        my = 0.32 * face.jaw
        open_ry = 0.012 + 0.11 * float(np.clip(mouth_open, 0, 1))
        cv2.ellipse(frame, P(0, my), A(0.17, open_ry + 0.025), 0, 0, 360, (170, 70, 75), -1, cv2.LINE_AA, 4)
        cv2.ellipse(frame, P(0, my), A(0.14, open_ry), 0, 0, 360, (45, 15, 20), -1, cv2.LINE_AA, 4)
        if any(lab_shift):
            lab = cv2.cvtColor(np.clip(frame / 255.0, 0, 1).astype(np.float32), cv2.COLOR_RGB2Lab)
            lab += np.float32(lab_shift)
            frame = cv2.cvtColor(lab, cv2.COLOR_Lab2RGB) * 255.0
        return np.clip(frame + 0.5, 0, 255).astype(np.uint8)


def write_portrait(path: Path, width: int, height: int, seed: int = 0) -> Path:
    """The still the video was 'generated' from: the rest pose, mouth closed, PNG."""
    from PIL import Image

    frame = HeadRenderer(width, height, seed).render(0.0, 0.0, sway=False)
    Image.fromarray(frame).save(path)
    return Path(path)


# -- the planted-fault video -----------------------------------------------------------


@dataclass(frozen=True)
class Join:
    frame: int
    kind: str = "clean"  # clean | cut | crossfade
    context_frames: int = 8
    pose_dx: float = 0.08  # jump of the next segment's pose, in head widths (cut / crossfade)
    lab_shift: tuple[float, float, float] = (0.0, 0.0, 0.0)


@dataclass(frozen=True)
class Spec:
    duration_s: float = 12.0
    width: int = 180
    height: int = 320
    fps: Fraction = Fraction(24)
    seed: int = 0
    audio_delay_frames: int = 0
    delay_end_frames: int | None = None
    joins: tuple[Join, ...] = ()
    color_drift_lab_per_min: tuple[float, float, float] = (0.0, 0.0, 0.0)
    identity_morph_s: tuple[float, float] | None = None
    pauses_s: tuple[tuple[float, float], ...] = ((5.0, 6.4),)
    babble_s: tuple[tuple[float, float], ...] = ()
    audio_start_s: float = 0.0
    audio_trim_end_s: float = 0.0
    vfr: bool = False
    crf: int = 18
    wall_rgb: tuple[int, int, int] | None = None

    @property
    def num_frames(self) -> int:
        return int(round(self.duration_s * self.fps))


@dataclass(frozen=True)
class Made:
    path: Path
    spec: Spec
    mouth_open: np.ndarray  # per frame, what was drawn
    speech_frames: np.ndarray  # per frame, audio envelope (on the audio's own timeline)
    plan: Plan | None = None


def _delays(spec: Spec) -> np.ndarray:
    n = spec.num_frames
    end = spec.audio_delay_frames if spec.delay_end_frames is None else spec.delay_end_frames
    return np.rint(np.linspace(spec.audio_delay_frames, end, n)).astype(int)


def mouth_track(spec: Spec, env_frames: np.ndarray) -> np.ndarray:
    """Per-frame mouth opening: the envelope ``delay`` frames ahead, plus babbling in ``babble_s``."""
    n = spec.num_frames
    delays = _delays(spec)
    idx = np.clip(np.arange(n) + delays, 0, n - 1)
    # A mouth is not a loudness meter: compress the envelope and let the articulation
    # strength wander slowly (±30 %), so sync has to work on shape, not exact proportion.
    rng = np.random.default_rng(spec.seed + 42)
    gain = np.convolve(rng.uniform(0.7, 1.3, n + 12), np.ones(12) / 12, mode="valid")[:n]
    track = np.clip(env_frames ** 0.6 * gain, 0, 1)[idx]
    if spec.babble_s:
        for a_s, b_s in spec.babble_s:
            a, b = int(a_s * spec.fps), int(b_s * spec.fps)
            f = a
            while f < b:  # syllable-like opening bumps of 3-7 frames, no sound
                length = int(rng.integers(3, 8))
                amp = rng.uniform(0.5, 1.0)
                bump = amp * np.hanning(length + 2)[1:-1]
                end = min(b, f + length)
                track[f:end] = bump[: end - f]
                f = end + int(rng.integers(0, 3))
    return np.clip(track, 0, 1)


def _segment_of(frame: int, joins: Sequence[Join]) -> int:
    return sum(1 for j in joins if frame >= j.frame)


def _frames(spec: Spec, renderer: HeadRenderer, mouth: np.ndarray) -> Iterator[np.ndarray]:
    fps = spec.fps
    joins = sorted(spec.joins, key=lambda j: j.frame)
    poses = [(0.0, (0.0, 0.0, 0.0))]
    for j in joins:  # each non-clean join moves the next segment's pose (and colour)
        dx, lab = poses[-1]
        if j.kind != "clean":
            dx += j.pose_dx if len(poses) % 2 else -j.pose_dx
            lab = tuple(a + b for a, b in zip(lab, j.lab_shift))
        poses.append((dx, lab))
    drift = np.array(spec.color_drift_lab_per_min, np.float64) / 60.0
    for f in range(spec.num_frames):
        t = float(f / fps)
        face = FACE_A
        if spec.identity_morph_s is not None:
            a, b = spec.identity_morph_s
            face = FACE_A.mix(FACE_B, float(np.clip((t - a) / (b - a), 0, 1)))

        def draw(seg: int) -> np.ndarray:
            dx, lab = poses[seg]
            shift = tuple(float(x) for x in np.array(lab) + drift * t)
            return renderer.render(t, mouth[f], face=face, pose_dx=dx, lab_shift=shift)

        seg = _segment_of(f, joins)
        frame = draw(seg)
        # a crossfade region is [join - context, join): frames blend the previous segment into the next
        for k, j in enumerate(joins):
            if j.kind == "crossfade" and j.frame - j.context_frames <= f < j.frame:
                w = (f - (j.frame - j.context_frames) + 1) / (j.context_frames + 1)
                prev = draw(k)
                nxt = draw(k + 1)
                frame = np.clip(prev * (1 - w) + nxt * w + 0.5, 0, 255).astype(np.uint8)
        yield frame


def plan_for(spec: Spec) -> Plan:
    """A valid longtake plan whose joins are the spec's join frames (context = each join's crossfade length)."""
    grid = FrameGrid(8, 32)
    n = spec.num_frames
    starts = [0] + [j.frame for j in sorted(spec.joins, key=lambda j: j.frame)]
    contexts = [0] + [j.context_frames if j.kind != "cut" else 0 for j in sorted(spec.joins, key=lambda j: j.frame)]
    ends = starts[1:] + [n]
    segs = tuple(
        make_segment(i, s, e, c, grid, spec.fps, SAMPLE_RATE_HZ, "end" if i == len(starts) - 1 else "pause")
        for i, (s, e, c) in enumerate(zip(starts, ends, contexts))
    )
    return Plan(
        fps=spec.fps, frame_grid=8, spatial_multiple=32, sample_rate_hz=SAMPLE_RATE_HZ, trim_start_sample=0,
        duration_samples=frame_to_sample(n, spec.fps, SAMPLE_RATE_HZ), total_frames=n,
        width=spec.width, height=spec.height, chaining="tail", segments=segs,
    )


def write_av(path: Path, frames: Iterator[np.ndarray], audio: np.ndarray, spec: Spec) -> None:
    """H.264 yuv420p + AAC mono in MP4, the way the stitcher's output looks (plus any planted container faults)."""
    fps = spec.fps
    with av.open(str(path), mode="w", format="mp4") as container:
        vs = container.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = spec.width, spec.height, "yuv420p"
        vs.options = {"crf": str(spec.crf), "preset": "ultrafast" if spec.width * spec.height <= 320 * 320 else "veryfast"}
        tick = 4 if spec.vfr else 1  # a finer time base lets the VFR fault move single frames
        vs.codec_context.time_base = Fraction(1, 1) / (fps * tick)
        ast = container.add_stream("aac", rate=SAMPLE_RATE_HZ)
        ast.layout = "mono"
        audio_pts0 = int(round(spec.audio_start_s * SAMPLE_RATE_HZ))
        keep = audio.size - int(round(spec.audio_trim_end_s * SAMPLE_RATE_HZ))
        audio = audio[:keep]
        pos = 0
        for f, frame in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
            pts = f * tick
            if spec.vfr and f % 10 == 5:
                pts += 2  # half a frame late: irregular frame timing
            vf.pts = pts
            for p in vs.encode(vf):
                container.mux(p)
            # interleave audio up to this frame's time
            want = frame_to_sample(f + 1, fps, SAMPLE_RATE_HZ) - audio_pts0
            while pos < min(want, audio.size):
                chunk = audio[pos : pos + 1024]
                af = av.AudioFrame.from_ndarray(chunk[None, :], format="fltp", layout="mono")
                af.sample_rate, af.pts = SAMPLE_RATE_HZ, audio_pts0 + pos
                for p in ast.encode(af):
                    container.mux(p)
                pos += chunk.size
        while pos < audio.size:
            chunk = audio[pos : pos + 1024]
            af = av.AudioFrame.from_ndarray(chunk[None, :], format="fltp", layout="mono")
            af.sample_rate, af.pts = SAMPLE_RATE_HZ, audio_pts0 + pos
            for p in ast.encode(af):
                container.mux(p)
            pos += chunk.size
        for p in vs.encode():
            container.mux(p)
        for p in ast.encode():
            container.mux(p)


def make_video(path: Path, spec: Spec = Spec()) -> Made:
    """Render ``spec`` to ``path`` (MP4 with audio) and return what was planted."""
    path = Path(path)
    fps, n = spec.fps, spec.num_frames
    env = speech_envelope(spec.duration_s, SAMPLE_RATE_HZ, spec.seed, spec.pauses_s)
    env_frames = frame_envelope(env, SAMPLE_RATE_HZ, fps, n)
    mouth = mouth_track(spec, env_frames)
    renderer = HeadRenderer(spec.width, spec.height, spec.seed, spec.wall_rgb)
    write_av(path, _frames(spec, renderer, mouth), voice(env, SAMPLE_RATE_HZ, spec.seed), spec)
    return Made(path=path, spec=spec, mouth_open=mouth, speech_frames=env_frames, plan=plan_for(spec) if spec.joins else None)
