"""The stitched file as outside clients see it: ffprobe's report, and a browser's <video> element playing it."""

from __future__ import annotations

from fractions import Fraction

import pytest

from tests.media_video import make_plan, read_index
from tests.stitchers.browser import find_chromium, play_video
from tests.stitchers.conftest import Stitched, ffprobe, run_stitch, top_level_atoms

FPS_CASES = [Fraction(25), Fraction(30), Fraction(30000, 1001)]


_BUILT: dict[Fraction, Stitched] = {}


def _build(fps: Fraction, factory) -> Stitched:
    if fps not in _BUILT:
        folder = factory.mktemp(f"fps{fps.numerator}")
        plan = make_plan([30, 26, 34], 6, "tail", fps=fps)
        srt = folder / "talk.srt"
        srt.write_text("1\n00:00:00,200 --> 00:00:01,000\nhello\n", encoding="utf-8")
        # The tiktok preset (at test size): capped CRF, faststart, captions muxed.
        _BUILT[fps] = run_stitch(folder, plan, export={"preset": "tiktok", "width": 128, "height": 224, "captions": srt}, master={"sample_rate_hz": 44100})
    return _BUILT[fps]


@pytest.fixture(scope="module", params=FPS_CASES, ids=lambda f: f"{float(f):.3f}fps")
def stitched(request, tmp_path_factory) -> Stitched:
    return _build(request.param, tmp_path_factory)


@pytest.fixture(scope="module")
def stitched_ntsc(tmp_path_factory) -> Stitched:
    """One browser run is enough; it gets the fractional rate, the one most likely to go wrong."""
    return _build(Fraction(30000, 1001), tmp_path_factory)


def test_ffprobe_sees_h264_yuv420p_aac_cfr_bt709_in_order(stitched: Stitched) -> None:
    plan = stitched.plan
    info = ffprobe(stitched.path, "-count_packets")
    assert "mp4" in info["format"]["format_name"]
    video, audio, subs = info["streams"]
    assert (video["index"], audio["index"], subs["index"]) == (0, 1, 2)
    assert video["codec_name"] == "h264" and video["profile"] == "High" and video["pix_fmt"] == "yuv420p"
    assert (video["width"], video["height"]) == (128, 224)
    fps = f"{plan.fps.numerator}/{plan.fps.denominator}"
    assert video["r_frame_rate"] == video["avg_frame_rate"] == fps  # constant frame rate
    assert int(video["nb_frames"]) == int(video["nb_read_packets"]) == plan.total_frames
    assert (video["color_space"], video["color_transfer"], video["color_primaries"], video["color_range"]) == ("bt709", "bt709", "bt709", "tv")
    assert audio["codec_name"] == "aac" and int(audio["sample_rate"]) == 48000
    assert subs["codec_name"] == "mov_text"
    want_s = float(plan.total_frames / plan.fps)
    frame_s = float(1 / plan.fps)
    assert float(video["start_time"]) == 0.0 and float(audio["start_time"]) == 0.0
    assert abs(float(video["duration"]) - want_s) < frame_s / 2
    assert abs(float(audio["duration"]) - float(video["duration"])) < frame_s
    assert abs(float(info["format"]["duration"]) - want_s) < frame_s


def test_frame_timestamps_are_evenly_spaced(stitched: Stitched) -> None:
    info = ffprobe(stitched.path, "-select_streams", "v:0", "-show_entries", "packet=pts")
    pts = sorted(int(p["pts"]) for p in info["packets"])
    steps = {b - a for a, b in zip(pts, pts[1:])}
    assert len(steps) == 1 and pts[0] == 0


def test_index_is_in_front_of_the_media_data(stitched: Stitched) -> None:
    atoms = top_level_atoms(stitched.path)
    assert atoms[0] == "ftyp"
    assert atoms.index("moov") < atoms.index("mdat")


def test_chromium_plays_the_whole_video_and_shows_the_right_frames(stitched_ntsc: Stitched) -> None:
    binary = find_chromium()
    if binary is None:
        pytest.skip("chromium is not installed (.ci/run installs it)")
    stitched = stitched_ntsc
    plan = stitched.plan
    probe_frames = [0, 1, plan.segments[1].start_frame - 3, plan.segments[1].start_frame, plan.total_frames // 2, plan.total_frames - 1]
    times = [float((f + Fraction(1, 2)) / plan.fps) for f in probe_frames]  # mid-frame, so rounding cannot pick a neighbour
    result = play_video(binary, stitched.path, times)
    frame_s = float(1 / plan.fps)
    assert result["ended"] is True
    assert abs(result["duration"] - float(plan.total_frames / plan.fps)) < frame_s
    assert (result["width"], result["height"]) == (128, 224)
    # Every frame went through the decoder (played at 4×, so many are dropped from display, not from decoding).
    assert result["decoded"] >= plan.total_frames - 1
    assert [read_index(g) for g in result["grabs"]] == probe_frames
