"""The animatic generator: clip shape, audio-driven mouth, chaining modes, determinism, the lossless tail."""

from __future__ import annotations

import threading
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

import generators.animatic as animatic
from generators import get_generator_class
from generators.animatic import ANIMATIC_VERSION, AnimaticGenerator, MotionPath, estimate_camera, frame_envelope, mouth_opening
from generators.base import GenerateRequest
from orchestrator.config import AnimaticOptions
from orchestrator.errors import GeneratorError
from orchestrator.timebase import frame_to_sample
from segmenters.plan import FrameGrid
from stitchers.clip_io import ClipWriter, iter_frames, probe_video
from tests.media_image import draw_face_portrait

FPS = Fraction(24)
SR = 16000
W, H = 96, 160
C = 9  # context frames, as the planner's default
LABEL_ROWS = 24  # the preview label lives above this row at 96×160


@pytest.fixture(scope="module")
def portrait() -> np.ndarray:
    # Mild texture so camera motion shows up in pixel differences.
    return draw_face_portrait(W, H, noise=3.0, seed=5).image


def frame_amplitudes_to_audio(amplitudes: np.ndarray, start_frame: int = 0) -> np.ndarray:
    """A 220 Hz tone whose amplitude is constant over each frame (frames local to the clip), float32 [samples, 1]."""
    n = len(amplitudes)
    first = frame_to_sample(start_frame, FPS, SR)
    bounds = [frame_to_sample(start_frame + i, FPS, SR) - first for i in range(n + 1)]
    envelope = np.zeros(bounds[-1], np.float32)
    for i in range(n):
        envelope[bounds[i]:bounds[i + 1]] = amplitudes[i]
    t = (np.arange(bounds[-1]) + first) / SR
    return (envelope * np.sin(2 * np.pi * 220.0 * t)).astype(np.float32)[:, None]


def silence(n: int) -> np.ndarray:
    return frame_amplitudes_to_audio(np.zeros(n))


def make_request(out_dir: Path, portrait: np.ndarray, **overrides) -> GenerateRequest:
    n = overrides.pop("num_frames", 49)
    fields = dict(
        segment_index=0,
        num_frames=n,
        width=W,
        height=H,
        fps=FPS,
        audio=silence(n),
        sample_rate_hz=SR,
        prompt="a person talking",
        negative_prompt="",
        seed=1,
        portrait=portrait,
        chaining="tail",
        context=None,
        tail_start=0,
        tail_frames=0,
        out_dir=out_dir,
    )
    fields.update(overrides)
    return GenerateRequest(**fields)


def generator(**options) -> AnimaticGenerator:
    return AnimaticGenerator(AnimaticOptions(backend="animatic", **options))


def decoded(path: Path) -> np.ndarray:
    return np.stack(list(iter_frames(path)))


def codec_close(clip_frames: np.ndarray, rendered: np.ndarray) -> bool:
    """Equal within what H.264 at the animatic's CRF loses on a grainy portrait."""
    err = np.abs(clip_frames.astype(np.int16) - rendered.astype(np.int16))
    return float(err.mean()) < 2.5 and float(np.percentile(err, 99)) < 10


def step_diffs(frames: np.ndarray) -> np.ndarray:
    """Mean absolute change from each frame to the next, below the label."""
    body = frames[:, LABEL_ROWS:].astype(np.float32)
    return np.abs(np.diff(body, axis=0)).mean(axis=(1, 2, 3))


# -- interface -------------------------------------------------------------------------

def test_registered_with_ltx_grid() -> None:
    assert get_generator_class("animatic") is AnimaticGenerator
    assert AnimaticGenerator.grid_for(AnimaticOptions(backend="animatic")) == FrameGrid(frame_grid=8, spatial_multiple=2)


def test_model_identity_names_the_options_that_change_output() -> None:
    base = generator().model_identity()
    assert base.startswith(ANIMATIC_VERSION + ":")
    assert generator().model_identity() == base
    assert generator(motion_strength=2.0).model_identity() != base
    assert generator(mouth_gain=0.5).model_identity() != base
    assert generator(chaining="anchor").model_identity() == base  # the request carries the mode


def test_clip_matches_the_request_and_reports_progress(tmp_path: Path, portrait: np.ndarray) -> None:
    calls: list[tuple[int, int, str]] = []
    result = generator().generate(make_request(tmp_path, portrait, num_frames=41), lambda d, t, s: calls.append((d, t, s)))
    info = probe_video(result.clip_path)
    assert (info.num_frames, info.width, info.height, info.fps) == (41, W, H, FPS)
    assert result.num_frames == 41 and result.tail_path is None
    assert result.clip_path.parent == tmp_path
    assert calls[0] == (0, 41, "render") and calls[-1] == (41, 41, "render")
    assert [c[0] for c in calls] == sorted(c[0] for c in calls)
    assert {"setup", "render", "total"} <= set(result.timings_s)


@pytest.mark.parametrize(
    "change, match",
    [
        ({"num_frames": 40}, "8k\\+1"),
        ({"width": 95}, "divisible by 2"),
        ({"portrait": np.zeros((H, W + 2, 3), np.uint8)}, "prepare_portrait"),
        ({"chaining": "sideways"}, "chaining"),
        ({"context": np.zeros((49, H, W, 3), np.uint8)}, "shorter than the clip"),
        ({"context": np.zeros((3, H, W), np.uint8)}, "context"),
        ({"tail_start": 45, "tail_frames": 9}, "tail"),
    ],
)
def test_bad_requests_fail_fast(tmp_path: Path, portrait: np.ndarray, change: dict, match: str) -> None:
    change = dict(change)
    request = make_request(tmp_path, change.pop("portrait", portrait), **change)
    with pytest.raises(GeneratorError, match=match):
        generator().generate(request)
    assert not (tmp_path / animatic.CLIP_NAME).exists()


# -- audio → mouth ---------------------------------------------------------------------

def test_frame_envelope_is_rms_per_frame() -> None:
    amps = np.array([0.0, 0.5, 0.5, 0.0, 0.2, 0.0])
    env = frame_envelope(frame_amplitudes_to_audio(amps), SR, FPS, 6)
    assert env.shape == (6,)
    np.testing.assert_allclose(env, amps / np.sqrt(2), atol=0.01)
    # Past the end of the audio: silence; stereo is averaged.
    short = frame_amplitudes_to_audio(np.array([0.5, 0.5]))
    np.testing.assert_allclose(frame_envelope(short, SR, FPS, 4)[2:], 0.0)
    stereo = np.repeat(frame_amplitudes_to_audio(amps), 2, axis=1)
    np.testing.assert_allclose(frame_envelope(stereo, SR, FPS, 6), env)


def test_mouth_opening_maps_loudness() -> None:
    env = np.array([0.0, 1e-4, 0.35, 0.35, 0.35, 0.0])
    opening = mouth_opening(env)
    assert opening[0] == 0.0 and opening[3] == 1.0
    assert np.all((opening >= 0) & (opening <= 1))
    assert np.all(mouth_opening(env, gain=0.0) == 0.0)


@pytest.mark.parametrize("motion_strength", [0.0, 1.0])
def test_mouth_opens_with_the_audio(tmp_path: Path, motion_strength: float) -> None:
    drawn = draw_face_portrait(W, H)
    n = 57
    # Blocks of loud and quiet frames at known positions, at several loudness levels.
    amps = np.zeros(n)
    for start, amp in [(4, 0.5), (14, 0.05), (22, 0.5), (31, 0.15), (40, 0.5), (50, 0.02)]:
        amps[start:start + 5] = amp
    result = generator(motion_strength=motion_strength).generate(
        make_request(tmp_path, drawn.image, num_frames=n, audio=frame_amplitudes_to_audio(amps))
    )
    frames = decoded(result.clip_path)
    # The lower face: below the nose, above the neck.
    (mx, my), fw = drawn.mouth_center, drawn.face_size[0]
    region = frames[:, int(my - 0.15 * fw):int(my + 0.35 * fw), int(mx - 0.3 * fw):int(mx + 0.3 * fw)].astype(np.float32)
    if motion_strength == 0:
        still = drawn.image[int(my - 0.15 * fw):int(my + 0.35 * fw), int(mx - 0.3 * fw):int(mx + 0.3 * fw)].astype(np.float32)
        change = np.abs(region - still).mean(axis=(1, 2, 3))
    else:
        # The camera moves too, so measure what only an open mouth brings: dark pixels.
        change = (region.mean(axis=3) < 60).mean(axis=(1, 2))
    loudness_db = 20 * np.log10(np.maximum(amps / np.sqrt(2), 1e-6))
    expected = np.clip((loudness_db + 45) / 30, 0, 1)
    assert np.corrcoef(change, expected)[0, 1] > 0.85
    loud, quiet = amps >= 0.5, amps == 0
    assert change[loud].mean() > 4 * change[quiet].mean() + 1e-3


def test_mouth_gain_zero_keeps_the_mouth_shut(tmp_path: Path, portrait: np.ndarray) -> None:
    loud = frame_amplitudes_to_audio(np.full(17, 0.5))
    request = make_request(tmp_path, portrait, num_frames=17, audio=loud, chaining="anchor", tail_frames=17)
    frames = np.load(generator(mouth_gain=0.0, motion_strength=0.0).generate(request).tail_path)
    assert np.array_equal(frames[:, LABEL_ROWS:], np.broadcast_to(portrait[LABEL_ROWS:], frames[:, LABEL_ROWS:].shape))


# -- chaining ----------------------------------------------------------------------------

def render_segment_a(tmp_path: Path, portrait: np.ndarray, strength: float = 5.0) -> np.ndarray:
    """Segment 0 of a chain: 49 frames, its last C frames kept as the tail."""
    req = make_request(tmp_path / "a", portrait, num_frames=49, tail_start=49 - C, tail_frames=C, seed=11)
    return np.load(generator(motion_strength=strength).generate(req).tail_path)


def test_tail_mode_continues_from_the_context(tmp_path: Path, portrait: np.ndarray) -> None:
    tail_a = render_segment_a(tmp_path, portrait)
    req_b = make_request(
        tmp_path / "b", portrait, segment_index=1, context=tail_a, seed=12, tail_start=0, tail_frames=25,
    )
    result = generator(motion_strength=5.0).generate(req_b)
    lossless = np.load(result.tail_path)  # frames 0…24 of B: the context, the join, and what follows
    # The first C frames are the context: exactly as rendered, and within codec tolerance in the clip.
    assert np.array_equal(lossless[:C], tail_a)
    clip = decoded(result.clip_path)
    assert codec_close(clip[:C], tail_a)
    # The camera carries on: no step at the join larger than ordinary frame-to-frame motion.
    d = step_diffs(lossless)
    join = d[C - 1]
    ordinary = np.concatenate([d[C - 5:C - 1], d[C:C + 4]])
    assert ordinary.min() > 0.2, "the camera should be moving in this test"
    assert join <= 1.5 * ordinary.max(), f"jump at the join {join:.2f} vs ordinary {ordinary.round(2)}"
    # …nor a stall: the step across the join is in line with the steps either side of it.
    either_side = (d[C - 2] + d[C]) / 2
    assert abs(join - either_side) <= 0.15 * either_side, f"join step {join:.2f} vs {d[C - 2]:.2f} before, {d[C]:.2f} after"

    # Control: starting from the portrait instead (anchor) does jump, so the check above can fail.
    req_anchor = make_request(tmp_path / "c", portrait, segment_index=1, context=tail_a, seed=12, chaining="anchor", tail_frames=1)
    first_anchor = np.load(generator(motion_strength=5.0).generate(req_anchor).tail_path)
    anchor_jump = step_diffs(np.stack([tail_a[-1], first_anchor[0]]))[0]
    assert anchor_jump > 3 * join


def test_tail_mode_matches_colour_held_context(tmp_path: Path, portrait: np.ndarray) -> None:
    tail_a = render_segment_a(tmp_path, portrait, strength=1.0)
    # The stitcher's colour hold may have shifted the context's colours.
    held = np.clip(tail_a.astype(np.float32) * np.array([1.12, 1.0, 0.9]) + np.array([-4.0, 6.0, 3.0]), 0, 255).astype(np.uint8)
    req = make_request(tmp_path / "b", portrait, segment_index=1, context=held, seed=12, num_frames=97, tail_start=0, tail_frames=97)
    frames = np.load(generator(motion_strength=1.0).generate(req).tail_path).astype(np.float32)
    body_means = frames[:, LABEL_ROWS:].mean(axis=(1, 2))  # [n, 3]
    assert np.abs(body_means[C] - body_means[C - 1]).max() < 1.5  # no colour step at the join
    # …and it eases back to the portrait's own colours once the join is behind.
    assert np.abs(body_means[-1] - portrait[LABEL_ROWS:].reshape(-1, 3).mean(axis=0)).max() < 2.5


def test_last_frame_mode_starts_on_the_context_frame(tmp_path: Path, portrait: np.ndarray) -> None:
    tail_a = render_segment_a(tmp_path, portrait)
    last = tail_a[-1:]
    req = make_request(tmp_path / "b", portrait, segment_index=1, chaining="last-frame", context=last, tail_frames=13)
    result = generator(motion_strength=5.0).generate(req)
    lossless = np.load(result.tail_path)
    assert np.array_equal(lossless[0], last[0])
    assert codec_close(decoded(result.clip_path)[0], last[0])
    d = step_diffs(lossless)
    assert d[0] <= 1.5 * step_diffs(tail_a).max()  # no jump off the context frame


def test_anchor_mode_starts_from_the_portrait(tmp_path: Path, portrait: np.ndarray) -> None:
    tail_a = render_segment_a(tmp_path, portrait)
    for seed in (3, 4):
        req = make_request(tmp_path / f"s{seed}", portrait, segment_index=2, chaining="anchor", context=tail_a, seed=seed, tail_frames=49)
        frames = np.load(generator(motion_strength=5.0).generate(req).tail_path)
        assert np.array_equal(frames[0, LABEL_ROWS:], portrait[LABEL_ROWS:])  # silent audio: exactly the portrait
        assert step_diffs(frames[[0, -1]])[0] > 1.0  # and then the camera moves
    # A chain's first segment (tail mode, no context yet) starts from the portrait too.
    first = np.load(generator().generate(make_request(tmp_path / "first", portrait, tail_frames=1)).tail_path)
    assert np.array_equal(first[0, LABEL_ROWS:], portrait[LABEL_ROWS:])


def test_bookend_mode_starts_and_ends_on_the_portrait(tmp_path: Path, portrait: np.ndarray) -> None:
    loud = frame_amplitudes_to_audio(np.full(49, 0.5))  # speech to the very end: the mouth still closes on the last frame
    req = make_request(tmp_path, portrait, segment_index=2, chaining="bookend", audio=loud, seed=3, tail_frames=49)
    frames = np.load(generator(motion_strength=5.0).generate(req).tail_path)
    middle = step_diffs(np.stack([portrait, frames[24]]))[0]
    assert middle > 1.0  # it moves (and talks) in between …
    assert step_diffs(np.stack([portrait, frames[-1]]))[0] < 0.05 * middle  # … and lands back on the portrait
    assert np.abs(frames[-1, LABEL_ROWS:].astype(int) - portrait[LABEL_ROWS:]).max() <= 1
    # Control: anchor mode with the same seed does not come back.
    anchor = make_request(tmp_path / "a", portrait, segment_index=2, chaining="anchor", audio=loud, seed=3, tail_frames=49)
    other = np.load(generator(motion_strength=5.0).generate(anchor).tail_path)
    assert step_diffs(np.stack([portrait, other[-1]]))[0] > 0.2 * middle


def test_same_seed_same_frames(tmp_path: Path, portrait: np.ndarray) -> None:
    tail_a = render_segment_a(tmp_path, portrait)
    audio = frame_amplitudes_to_audio(np.tile([0.0, 0.3, 0.5, 0.1], 13)[:49], start_frame=40)
    runs = []
    for name, seed in (("x", 7), ("y", 7), ("z", 8)):
        req = make_request(tmp_path / name, portrait, segment_index=1, context=tail_a, seed=seed, audio=audio, tail_start=20, tail_frames=9)
        result = generator(motion_strength=2.0).generate(req)
        runs.append((decoded(result.clip_path), np.load(result.tail_path)))
    assert np.array_equal(runs[0][0], runs[1][0]) and np.array_equal(runs[0][1], runs[1][1])
    assert not np.array_equal(runs[0][0][30:], runs[2][0][30:])  # another seed, another camera


# -- the lossless tail ---------------------------------------------------------------------

def test_tail_npy_is_exactly_what_was_rendered(tmp_path: Path, portrait: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    written: list[np.ndarray] = []

    encode = ClipWriter.write

    def spy(self: ClipWriter, frame: np.ndarray) -> None:
        written.append(frame.copy())
        encode(self, frame)

    monkeypatch.setattr(ClipWriter, "write", spy)
    audio = frame_amplitudes_to_audio(np.tile([0.0, 0.5], 25)[:49])
    result = generator().generate(make_request(tmp_path, portrait, audio=audio, tail_start=30, tail_frames=9))
    tail = np.load(result.tail_path)
    assert result.tail_path == tmp_path / animatic.TAIL_NAME
    assert tail.dtype == np.uint8 and tail.shape == (9, H, W, 3)
    assert len(written) == 49
    assert np.array_equal(tail, np.stack(written[30:39]))
    clip = decoded(result.clip_path)
    assert codec_close(clip[30:39], tail)
    assert not codec_close(clip[20:29], tail)  # …and the comparison can tell frames apart
    assert not list(tmp_path.glob(".*.tmp*"))  # no temporary files left behind


def test_interrupted_render_leaves_nothing(tmp_path: Path, portrait: np.ndarray) -> None:
    def stop(done: int, total: int, stage: str) -> None:
        if done >= 16:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generator().generate(make_request(tmp_path, portrait, tail_start=40, tail_frames=9), stop)
    assert list(tmp_path.iterdir()) == []
    assert not any(t.name == "animatic-encode" and t.is_alive() for t in threading.enumerate())


# -- reading the camera back -----------------------------------------------------------------

def test_estimate_camera_recovers_position_and_velocity(portrait: np.ndarray) -> None:
    import cv2

    points = np.array([[0.3 * W, 0.3 * H, 1], [0.7 * W, 0.3 * H, 1], [0.3 * W, 0.7 * H, 1], [0.7 * W, 0.7 * H, 1]]).T
    for seed in range(3):
        path = MotionPath(W, H, FPS, seed, 5.0, (W / 2, 0.4 * H))
        end = 60 + 20 * seed
        frames = np.stack([cv2.warpAffine(portrait, path.matrix(t), (W, H), borderMode=cv2.BORDER_REFLECT_101) for t in range(end - C, end)])
        mask = np.zeros((H, W), np.uint8)
        mask[20:-20, 12:-12] = 1
        state = estimate_camera(frames, portrait, mask)
        true_m = path.matrix(end - 1)
        true_v = path.matrix(end - 0.5) - path.matrix(end - 1.5)
        assert np.abs((state.matrix - true_m) @ points).max() < 0.25
        assert np.abs((state.velocity - true_v) @ points).max() < 0.1
        assert state.correlation > 0.99


def test_motion_path_starts_at_the_given_state() -> None:
    start_m = np.array([[1.01, 0.002, -1.5], [-0.002, 0.99, 2.0]])
    start_v = np.array([[0.0002, 0.0, 0.05], [0.0, -0.0001, -0.03]])
    path = MotionPath(W, H, FPS, 3, 1.0, (48, 64), start_frame=8, start_matrix=start_m, start_velocity=start_v)
    np.testing.assert_allclose(path.matrix(8), start_m, atol=1e-9)
    np.testing.assert_allclose((path.matrix(8.001) - path.matrix(8)) / 0.001, start_v, atol=1e-4)
    # Long after the join it is this segment's own path again.
    late = 8 + animatic.BLEND_S * 24 + 5
    np.testing.assert_allclose(path.matrix(late), path.free(late), atol=1e-12)


# -- no face -----------------------------------------------------------------------------------

def test_no_mouth_is_painted_where_there_is_no_skin(tmp_path: Path) -> None:
    from tests.media_image import draw_circle_image

    # No face and nothing skin-coloured where a framed portrait has its mouth: leave the picture alone…
    plain = draw_circle_image(W, H, (W / 2, 0.2 * H), 10)
    amps = np.tile([0.0] * 4 + [0.5] * 4, 7)[:49]
    req = make_request(tmp_path, plain, audio=frame_amplitudes_to_audio(amps), tail_frames=49, chaining="anchor")
    frames = np.load(generator(motion_strength=0.0).generate(req).tail_path)
    assert np.array_equal(frames[:, LABEL_ROWS:], np.broadcast_to(plain[LABEL_ROWS:], frames[:, LABEL_ROWS:].shape))
    # …but the corner tag still shows the audio level, so timing can be checked.
    tag = frames[:, :LABEL_ROWS].astype(np.int16)
    green = ((tag[..., 1] - tag[..., 0]) > 80).sum(axis=(1, 2))
    inside_loud = (amps == 0.5) & (np.roll(amps, 1) == 0.5) & (np.roll(amps, -1) == 0.5)
    inside_quiet = (amps == 0) & (np.roll(amps, 1) == 0) & (np.roll(amps, -1) == 0)
    assert green[inside_loud].min() > 0 and green[inside_quiet].max() == 0
