"""The report's signal processing on arrays: no video, so every case is exact and fast."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest

from quality.drift import analyse_color, analyse_identity, per_second
from quality.face import CropGeometry, FaceBox, _haar, _skin, centre_box, crop, delta_e2000, hog, locate_face, track
from quality.seams import detect_seams, score_joins
from quality.sync import analyse_mouth, analyse_sync, speech_activity
from tests.media_report import FACE_B, HeadRenderer

FPS = Fraction(24)


# -- colour ------------------------------------------------------------------------------


# Sharma, Wu & Dalal (2005), "The CIEDE2000 color-difference formula", Table 1 (pairs 1, 2, 7, 13, 17, 25, 31).
SHARMA = [
    ((50.0, 2.6772, -79.7751), (50.0, 0.0, -82.7485), 2.0425),
    ((50.0, 3.1571, -77.2803), (50.0, 0.0, -82.7485), 2.8615),
    ((50.0, 0.0, 0.0), (50.0, -1.0, 2.0), 2.3669),
    ((50.0, 2.49, -0.001), (50.0, -2.49, 0.0009), 7.1792),
    ((50.0, 2.5, 0.0), (73.0, 25.0, -18.0), 27.1492),
    ((60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644),
    ((22.7233, 20.0904, -46.694), (23.0331, 14.973, -42.5619), 2.0373),
]


def test_delta_e2000_matches_sharma_reference_pairs():
    lab1 = np.array([p[0] for p in SHARMA])
    lab2 = np.array([p[1] for p in SHARMA])
    expected = np.array([p[2] for p in SHARMA])
    np.testing.assert_allclose(delta_e2000(lab1, lab2), expected, atol=1e-4)
    np.testing.assert_allclose(delta_e2000(lab2, lab1), expected, atol=1e-4)  # symmetric
    assert float(delta_e2000(lab1[0], lab1[0])) == 0.0


def test_colour_drift_rate_is_the_delta_e_of_one_minute_of_the_fitted_slope():
    rng = np.random.default_rng(0)
    start = np.array([66.0, 14.0, 21.0])
    slope = np.array([-3.0, 6.0, 1.5])  # Lab units per minute
    frames = np.arange(0, 90 * 24, 3)  # 90 s, 8 samples a second
    lab = start + np.outer(frames / 24 / 60, slope) + rng.normal(0, 0.3, (frames.size, 3))
    c = analyse_color(frames, lab, FPS, portrait_lab=start + np.array([2.0, 0, 0]))
    expected_rate = float(delta_e2000(start, start + slope))
    assert c.delta_e_per_min == pytest.approx(expected_rate, rel=0.05)
    np.testing.assert_allclose(c.slope_lab_per_min, slope, atol=0.15)
    assert c.worst_second >= 85  # the last seconds are furthest from the first
    assert c.de_vs_portrait[0] == pytest.approx(float(delta_e2000(start, start + [2.0, 0, 0])), abs=0.2)


def test_no_colour_drift_reads_as_nearly_zero():
    rng = np.random.default_rng(1)
    frames = np.arange(0, 60 * 24, 3)
    lab = np.array([66.0, 14.0, 21.0]) + rng.normal(0, 0.3, (frames.size, 3))
    c = analyse_color(frames, lab, FPS, None)
    assert c.delta_e_per_min < 0.15
    assert c.delta_e_total < 0.15


def test_per_second_groups_by_whole_seconds_at_fractional_fps():
    fps = Fraction(30000, 1001)
    frames = np.arange(0, 120)
    ps = per_second(frames, frames.astype(float), fps)
    # frame 29 is at 0.9676 s, frame 30 at 1.001 s
    assert ps.seconds.tolist() == [0, 1, 2, 3]
    assert ps.values[0] == pytest.approx(np.median(np.arange(30)))
    assert ps.values[1] == pytest.approx(np.median(np.arange(30, 60)))


# -- face --------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(180, 320), (540, 960), (360, 640)])
@pytest.mark.parametrize("mouth_open", [0.0, 1.0])
def test_skin_face_box_puts_eyes_in_the_upper_half_and_mouth_in_the_mouth_region(size, mouth_open):
    w, h = size
    r = HeadRenderer(w, h)
    box = _skin(r.render(0.0, mouth_open, sway=False))
    assert box is not None and box.method == "skin"
    hw = r.head_w
    eye_y = r.cy - 0.12 * hw
    mouth_y = r.cy + 0.32 * hw
    assert box.y <= eye_y <= box.y + 0.5 * box.h
    assert box.y + 0.58 * box.h <= mouth_y <= box.y + box.h
    assert box.x <= r.cx - 0.22 * hw and r.cx + 0.22 * hw <= box.x + box.w  # both eyes inside
    assert 0.35 * hw < box.w < 1.1 * hw


def _grace_hopper() -> np.ndarray:
    """A real head-and-shoulders portrait that ships inside the matplotlib wheel."""
    from matplotlib import cbook
    from PIL import Image

    with Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)) as im:
        return np.asarray(im.convert("RGB"))


def _assert_on_grace_hoppers_face(box: FaceBox) -> None:
    # her face: brow to chin about x 150..380, y 110..350 of the 512×600 picture
    cx, cy = box.x + box.w / 2, box.y + box.h / 2
    assert 230 <= cx <= 300 and 190 <= cy <= 270, box
    assert 150 <= box.w <= 280, box


def test_skin_detector_finds_a_real_face():
    box = _skin(_grace_hopper())
    assert box is not None
    _assert_on_grace_hoppers_face(box)


HAS_HAAR = hasattr(cv2, "CascadeClassifier") and (Path(getattr(getattr(cv2, "data", None), "haarcascades", "")) / "haarcascade_frontalface_default.xml").is_file()


@pytest.mark.skipif(not HAS_HAAR, reason="this OpenCV ships no Haar cascades (5.x)")
def test_haar_detector_finds_a_real_face_in_colour_and_in_grey():
    rgb = _grace_hopper()
    box = _haar(rgb)
    assert box is not None and box.method == "haar"
    _assert_on_grace_hoppers_face(box)
    grey = np.repeat(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
    assert _haar(grey) is not None


def test_skin_coloured_wall_is_not_taken_for_a_face():
    frame = HeadRenderer(180, 320, seed=6, wall_rgb=(226, 176, 142)).render(0.0, 0.5)
    assert _skin(frame) is None


def test_no_skin_falls_back_to_the_centre_box_and_says_so():
    gray = np.full((320, 180, 3), (40, 90, 160), np.uint8)
    box = locate_face(gray)
    assert box.method == "centre"
    assert box == centre_box(180, 320)
    assert 0 < box.x and box.x + box.w < 180 and 0 < box.y and box.y + box.h < 320


def test_crop_replicates_edges_outside_the_image():
    img = np.arange(20, dtype=np.uint8).reshape(4, 5)
    out = crop(img, -2, 3, 3, 7)
    assert out.shape == (5, 4)
    assert out[0].tolist() == [3, 4, 4, 4]  # row 0 repeated above, column 4 repeated right
    assert out[-1].tolist() == [13, 14, 14, 14]


def test_track_finds_a_shifted_template_to_a_fraction_of_a_pixel():
    rng = np.random.default_rng(2)
    img = cv2.GaussianBlur(rng.uniform(0, 255, (120, 120)).astype(np.float32), (0, 0), 2.0)
    template = img[40:80, 30:70].copy()
    shifted = cv2.warpAffine(img, np.float32([[1, 0, 3.4], [0, 1, -2.3]]), (120, 120))
    x, y, score = track(shifted, template, (30, 40))
    assert x == pytest.approx(33.4, abs=0.3) and y == pytest.approx(37.7, abs=0.3)
    assert score > 0.95


def test_crop_geometry_maps_the_face_to_the_canonical_width_and_back():
    box = FaceBox(100.0, 200.0, 240.0, 260.0, "skin")
    g = CropGeometry.around(box)
    assert g.face.w == 64
    back = g.full_res_box()
    assert (back.x, back.y, back.w, back.h) == pytest.approx((100.0, 200.0, 240.0, 260.0))
    moved = g.moved(8.0, -4.0)  # canonical px
    assert moved.full_res_box().x == pytest.approx(100.0 + 8.0 * 240 / 64)


def test_hog_ignores_brightness_and_contrast_but_not_a_different_face():
    r = HeadRenderer(180, 320)
    a = cv2.cvtColor(r.render(0.0, 0.0, sway=False), cv2.COLOR_RGB2GRAY)[90:150, 50:130]
    b = cv2.cvtColor(r.render(0.0, 0.0, face=FACE_B, sway=False), cv2.COLOR_RGB2GRAY)[90:150, 50:130]
    brighter = np.clip(a.astype(np.float32) * 0.8 + 30, 0, 255).astype(np.uint8)  # no clipping: a pure gain and offset
    ha, hb, hbright = hog(a), hog(b), hog(brighter)
    cos = lambda u, v: float(u @ v / np.linalg.norm(u) / np.linalg.norm(v))
    assert cos(ha, hbright) > 0.98
    assert cos(ha, hb) < cos(ha, hbright) - 0.1
    with pytest.raises(ValueError, match="2×2 cells"):
        hog(np.zeros((10, 10), np.uint8))


def test_identity_patch_has_one_size_wherever_a_tracked_face_sits():
    from quality.stream import _identity_patch

    work = np.random.default_rng(0).integers(0, 256, (200, 160), dtype=np.uint8)
    sizes = {_identity_patch(work, FaceBox(30 + dx, 40 + dy, 67.0, 83.0, "haar")).shape for dx in np.linspace(0, 1, 11) for dy in np.linspace(0, 1, 11)}
    assert len(sizes) == 1  # a fractional position must not change the HOG's length
    assert len({hog(_identity_patch(work, FaceBox(30 + d, 40 + d, 67.0, 83.0, "haar"))).shape for d in np.linspace(0, 1, 11)}) == 1


def test_identity_drop_is_measured_from_the_start_and_placed_at_its_worst():
    rng = np.random.default_rng(3)
    base = rng.uniform(0, 1, 300)
    frames = np.arange(0, 40 * 24, 3)
    hogs = []
    for f in frames:
        t = f / 24
        w = np.clip((t - 20) / 15, 0, 1)  # morph between 20 s and 35 s
        hogs.append(base * (1 - w) + np.roll(base, 7) * w + rng.normal(0, 0.01, 300))  # turns into another descriptor
    ident = analyse_identity(frames, np.array(hogs), FPS, None)
    assert ident.reference == "first second"
    assert ident.start > 0.99
    assert ident.drop > 0.1
    assert ident.worst_second >= 34
    steady = analyse_identity(frames, np.array([base + rng.normal(0, 0.01, 300) for _ in frames]), FPS, None)
    assert steady.drop < 0.01


# -- seams -------------------------------------------------------------------------------


def _motion_series(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    diff = 2.0 + rng.gamma(4.0, 0.15, n)
    flow = 0.5 + rng.gamma(4.0, 0.03, n)
    diff[0] = flow[0] = np.nan
    return diff, flow


def test_planned_joins_flag_a_cut_and_a_dissolve_but_not_a_clean_join():
    diff, flow = _motion_series(480, 4)
    diff[200] += 25.0  # hard cut at 200
    flow[200] += 3.0
    diff[352:361] += 2.2  # a 9-step dissolve ending at 360 (crossfade of 8 frames)
    seams = score_joins(diff, flow, [(100, 8), (200, 0), (360, 8)], FPS, threshold=6.0)
    by_frame = {s.frame: s for s in seams}
    assert not by_frame[100].flagged and by_frame[100].z < 4
    assert by_frame[200].flagged and by_frame[200].z > 12 and by_frame[200].peak_frame == 200
    assert by_frame[360].flagged
    assert by_frame[360].window == (351, 361)


def test_a_still_shot_does_not_turn_encoder_noise_into_a_seam():
    rng = np.random.default_rng(5)
    diff = 0.3 + rng.normal(0, 0.01, 240)
    flow = 0.01 + np.abs(rng.normal(0, 0.001, 240))
    seams = score_joins(diff, flow, [(120, 8)], FPS, threshold=6.0)
    assert not seams[0].flagged


def test_detection_without_a_plan_finds_the_cut_frame_exactly_and_the_dissolve_inside_its_span():
    diff, flow = _motion_series(600, 6)
    diff[150] += 25.0
    flow[150] += 3.0
    diff[400:409] += 3.0
    seams, score = detect_seams(diff, flow, FPS, threshold=8.0)
    flagged = [s for s in seams if s.flagged]
    assert [s.frame for s in flagged][:1] == [150]
    assert len(flagged) == 2
    assert 400 <= flagged[1].frame <= 408
    assert score.shape == diff.shape and np.nanargmax(score) == 150


# -- audio, sync, pauses -----------------------------------------------------------------


def _speech_energy(n: int, seed: int, pauses: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame energy of syllables (and its envelope), silent in ``pauses`` (frame ranges)."""
    rng = np.random.default_rng(seed)
    env = np.zeros(n)
    f = 4
    while f < n - 4:
        length = int(rng.integers(3, 7))
        env[f : f + length] = np.maximum(env[f : f + length], rng.uniform(0.4, 1.0) * np.hanning(length + 2)[1:-1])
        f += length + int(rng.integers(0, 4))
    for a, b in pauses:
        env[a:b] = 0
    energy = (env * 0.3) ** 2 + 1e-9
    return energy, env


@pytest.mark.parametrize("delay", [-5, -3, 0, 2, 3, 7])
def test_sync_recovers_a_known_delay_to_within_a_fraction_of_a_frame(delay):
    n = 24 * 20
    energy, env = _speech_energy(n + 40, 7, [(200, 230)])
    # the mouth at frame t shows the envelope of audio frame t + delay (positive: audio late)
    shown = env[np.clip(np.arange(n) + delay, 0, env.size - 1)] ** 0.6
    mouth = np.abs(np.diff(shown, prepend=shown[:1])) + 0.01
    activity = speech_activity(energy[:n], FPS)
    s = analyse_sync(mouth, activity, FPS)
    assert s.offset_frames == pytest.approx(delay, abs=0.5)
    assert s.confidence > 0.6
    assert abs(s.drift_frames_per_min) < 0.5


def test_sync_drift_is_the_slope_of_the_window_lags():
    n = 24 * 40
    energy, env = _speech_energy(n + 40, 8, [])
    delays = np.rint(np.linspace(0, 6, n)).astype(int)  # 6 frames over 40 s = 9 frames/min
    shown = env[np.clip(np.arange(n) + delays, 0, env.size - 1)] ** 0.6
    mouth = np.abs(np.diff(shown, prepend=shown[:1]))
    s = analyse_sync(mouth, speech_activity(energy[:n], FPS), FPS)
    assert s.drift_frames_per_min == pytest.approx(9.0, abs=2.0)
    assert s.offset_start_frames < 1.5 and s.offset_end_frames > 4.5


def test_sync_on_a_mouth_that_does_not_talk_has_no_confidence():
    n = 24 * 20
    energy, _ = _speech_energy(n, 9, [])
    rng = np.random.default_rng(9)
    s = analyse_sync(rng.gamma(2.0, 0.1, n), speech_activity(energy, FPS), FPS)
    assert s.confidence < 0.3


def test_speech_activity_finds_pauses_where_they_are():
    n = 24 * 10
    energy, _ = _speech_energy(n, 10, [(72, 110), (170, 200)])
    act = speech_activity(energy, FPS)
    assert act.has_speech
    assert not act.speech[76:106].any() and not act.speech[174:196].any()
    assert act.speech[20:60].mean() > 0.9  # syllable gaps are bridged


def test_silent_audio_has_no_speech():
    act = speech_activity(np.full(240, 1e-8), FPS)
    assert not act.has_speech and not act.speech.any()


def test_mouth_moving_in_a_pause_is_flagged_there_and_only_there():
    n = 24 * 12
    energy, env = _speech_energy(n, 11, [(72, 110), (170, 210)])
    act = speech_activity(energy, FPS)
    shown = env ** 0.6
    mouth = np.abs(np.diff(shown, prepend=shown[:1])) + 0.01
    rng = np.random.default_rng(11)
    mouth[175:205] = rng.uniform(0.05, 0.3, 30)  # babbling in the second pause
    m = analyse_mouth(mouth, act, FPS, flag_score=0.45)
    flagged = [p for p in m.pauses if p.flagged]
    assert len(flagged) == 1 and flagged[0].start_frame <= 175 and flagged[0].end_frame >= 205
    quiet = [p for p in m.pauses if p.start_frame <= 72 < p.end_frame]
    assert quiet and quiet[0].score < 0.3
