"""Captions: SRT/WebVTT parsing, frame-exact timing, the mov_text track, and burnt-in text."""

from __future__ import annotations

import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from orchestrator.errors import MediaError
from stitchers.captions import CAPTION_BOTTOM, Cue, cue_frames, load_captions, parse_captions
from tests.media_video import make_plan
from tests.stitchers.conftest import ffprobe, require, run_stitch

SRT = "\ufeff1\r\n00:00:00,500 --> 00:00:01,250\r\nHello <i>there</i>\r\n\r\n2\r\n00:00:01,500 --> 00:00:02,000\r\nTwo lines &amp;\r\nof text\r\n\r\n3\r\n01:00:00,000 --> 01:00:01,000\r\nan hour in\r\n"
VTT = """WEBVTT - a talk

NOTE this block is a comment
that spans two lines

intro
00:00.500 --> 00:01.250 align:start position:10%
<v Speaker>Hello there</v>

00:00:01.500 --> 00:00:02.000
Two lines &amp;
of <b>text</b>
"""


def test_srt_and_vtt_parse_to_the_same_cues() -> None:
    srt = parse_captions(SRT)
    vtt = parse_captions(VTT)
    assert srt[:2] == vtt == [Cue(500, 1250, "Hello there"), Cue(1500, 2000, "Two lines &\nof text")]
    assert srt[2] == Cue(3_600_000, 3_601_000, "an hour in")


@pytest.mark.parametrize(
    "text, where",
    [
        ("1\n00:00:01,000 --> 00:00:00,500\nbackwards\n", ":2:"),
        ("1\n00:00:01,000 -> 00:00:02,000\nbad arrow\n\n2\n00:00:x1,000 --> 00:00:02,000\nbad\n", ":6:"),
        ("just some words\n", "no cues"),
    ],
)
def test_bad_caption_files_name_the_line(text: str, where: str) -> None:
    with pytest.raises(MediaError, match=where):
        parse_captions(text, "talk.srt")


def test_load_shifts_and_clips_to_the_video(tmp_path: Path) -> None:
    path = tmp_path / "talk.srt"
    path.write_text(SRT, encoding="utf-8")
    cues = load_captions(path, offset_ms=-700, duration_ms=1_400)
    assert cues == [Cue(0, 550, "Hello there"), Cue(800, 1300, "Two lines &\nof text")]
    with pytest.raises(MediaError, match="missing"):
        load_captions(tmp_path / "nope.srt")


@pytest.mark.parametrize("fps, first, last", [(Fraction(25), 13, 32), (Fraction(30), 15, 38), (Fraction(30000, 1001), 15, 38)])
def test_cue_frames_are_the_frames_whose_start_time_is_inside_the_cue(fps: Fraction, first: int, last: int) -> None:
    cue = Cue(500, 1250, "x")
    assert cue_frames(cue, fps) == (first, last)
    assert first / fps >= Fraction(1, 2) > (first - 1) / fps
    assert (last - 1) / fps < Fraction(5, 4) <= last / fps


def test_captions_are_muxed_as_a_subtitle_track_shifted_by_the_trim(tmp_path: Path) -> None:
    plan = make_plan([30, 30], 6, "tail", fps=25, trim_start_sample=24000)  # the master starts 0.5 s into the voiceover
    srt = tmp_path / "talk.srt"
    srt.write_text("1\n00:00:01,000 --> 00:00:02,000\nfirst words\n\n2\n00:00:02,100 --> 00:00:02,300\nsecond\n", encoding="utf-8")
    s = run_stitch(tmp_path / "run", plan, export={"captions": srt})
    streams = ffprobe(s.path)["streams"]
    assert [st["codec_type"] for st in streams] == ["video", "audio", "subtitle"]
    assert streams[2]["codec_name"] == "mov_text"
    out = subprocess.run([require("ffmpeg"), "-v", "error", "-i", str(s.path), "-map", "0:s", "-f", "srt", "-"], capture_output=True, text=True, check=True).stdout
    assert "00:00:00,500 --> 00:00:01,500\nfirst words" in out
    assert "00:00:01,600 --> 00:00:01,800\nsecond" in out
    # Not burnt in: the picture is the same as without captions.
    plain = run_stitch(tmp_path / "plain", plan).frames()
    assert all(np.array_equal(a, b) for a, b in zip(plain, s.frames()))


def test_burnt_in_captions_appear_exactly_on_their_frames(tmp_path: Path) -> None:
    plan = make_plan([30, 30], 6, "tail", fps=25)
    srt = tmp_path / "talk.srt"
    srt.write_text("1\n00:00:00,400 --> 00:00:01,000\nHELLO WORLD\n", encoding="utf-8")
    burnt_run = run_stitch(tmp_path / "burnt", plan, export={"captions": srt, "burn_captions": True})
    assert [st["codec_type"] for st in ffprobe(burnt_run.path)["streams"]] == ["video", "audio"]  # not shown twice
    burnt = burnt_run.frames()
    plain = run_stitch(tmp_path / "plain", plan).frames()
    first, last = cue_frames(Cue(400, 1000, ""), plan.fps)
    assert (first, last) == (10, 25)
    band = slice(int(plan.height * CAPTION_BOTTOM) - 40, int(plan.height * CAPTION_BOTTOM))
    # The two runs are separate encodes, so frames differ by a little encoder noise (a few levels) everywhere.
    for f, (a, b) in enumerate(zip(burnt, plain)):
        diff = np.abs(a.astype(int) - b.astype(int))
        white = (a[band].min(axis=-1) > 225).sum()  # the scene has no near-white pixels in the band
        if first <= f < last:
            assert diff[band].max() > 100 and white > 30, f"frame {f}: caption missing"
            assert (a[band].max(axis=-1) < 40).sum() > 30  # a dark outline around the glyphs
            assert diff[: band.start - 4].max() <= 8 and diff[band.stop + 4 :].max() <= 8  # nothing drawn elsewhere
        else:
            assert white == 0 and diff[band].mean() < 1.0, f"frame {f}: a caption outside its cue"


@pytest.mark.parametrize("fonts", ["system", "none"])
def test_burner_draws_with_a_system_font_or_pils_builtin(fonts: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import stitchers.captions as captions

    if fonts == "none":  # fonts-dejavu-core and friends not installed
        monkeypatch.setattr(captions, "_FONT_CANDIDATES", ("/nonexistent/font.ttf",))
    burner = captions.CaptionBurner([Cue(0, 1000, "a long caption that has to wrap onto two lines")], Fraction(25), 128, 224)
    planes = (np.full((224, 128), 100, np.uint8), np.full((112, 64), 128, np.uint8), np.full((112, 64), 128, np.uint8))
    assert burner.burn(3, planes)
    assert not burner.burn(25, tuple(p.copy() for p in planes))  # the cue is over at 1.000 s
    bright = np.argwhere(planes[0] > 200)
    assert len(bright) > 50
    assert bright[:, 0].max() < 224 * CAPTION_BOTTOM and bright[:, 0].min() > 224 * 0.4  # in the lower band, above the UI
    assert bright[:, 1].max() - bright[:, 1].min() > 64  # wrapped to the width, centred
    assert abs((bright[:, 1].max() + bright[:, 1].min()) / 2 - 64) < 8
