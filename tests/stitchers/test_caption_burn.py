"""Word captions burnt into the stitched video: inside the 9:16 safe zone, off the mouth, highlighted on time;
and as a subtitle track when not burnt (ffprobe and a browser see it)."""

from __future__ import annotations

import json
import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from stitchers.captions import (
    SAFE_BOTTOM, SAFE_LEFT, SAFE_RIGHT, SAFE_TOP, CaptionStyle, CaptionTrack, Cue, TimedWord, format_cues, parse_captions, place_block,
)
from tests.media_video import make_plan
from tests.stitchers.browser import Chromium, find_chromium, serve
from tests.stitchers.conftest import ffprobe, run_stitch

W, H, FPS = 360, 640, 24
WORDS = (TimedWord("Sunlight", 500, 900), TimedWord("feeds", 1000, 1400), TimedWord("leaves.", 1500, 2100),
         TimedWord("Plants", 2600, 3000), TimedWord("grow.", 3100, 3600))
CUES = (Cue(500, 2100, "Sunlight feeds leaves."), Cue(2600, 3600, "Plants grow."))
# Where the mouth is, in generation pixels (= output pixels here): right where bottom captions would go.
MOUTH = (100, 430, 260, 520)
STYLE = CaptionStyle(mode="words", words_on_screen=3, size_pct=4.5, highlight_color=(255, 210, 31), outline_pct=12)


def _first_frame(ms: int) -> int:
    return math.ceil(Fraction(ms, 1000) * FPS)


@pytest.fixture(scope="module")
def burnt(tmp_path_factory):
    folder = tmp_path_factory.mktemp("burn")
    plan = make_plan([48, 48], 9, "tail", fps=FPS, width=W, height=H)
    track = CaptionTrack(CUES, WORDS, STYLE, burn=True, mouth_box=MOUTH)
    with_captions = run_stitch(folder / "burnt", plan, captions=track)
    plain = run_stitch(folder / "plain", plan)
    return plan, with_captions, plain


def _yellow(rgb: np.ndarray) -> np.ndarray:
    return (rgb[..., 0] > 190) & (rgb[..., 1] > 150) & (rgb[..., 2] < 110)


def test_caption_pixels_stay_in_the_safe_zone_and_off_the_mouth(burnt) -> None:
    plan, with_captions, plain = burnt
    assert [st["codec_type"] for st in ffprobe(with_captions.path)["streams"]] == ["video", "audio"]
    x0, x1, y0, y1 = int(SAFE_LEFT * W), int(SAFE_RIGHT * W), int(SAFE_TOP * H), int(SAFE_BOTTOM * H)
    drawn_frames = 0
    for f, (a, b) in enumerate(zip(with_captions.frames(), plain.frames())):
        changed = np.abs(a.astype(int) - b.astype(int)).max(axis=-1) > 40  # well above the encoder's noise
        ys, xs = np.nonzero(changed)
        if len(ys) == 0:
            continue
        drawn_frames += 1
        assert xs.min() >= x0 and xs.max() < x1 and ys.min() >= y0 and ys.max() < y1, f"frame {f}: caption outside the safe zone"
        mx0, my0, mx1, my1 = MOUTH
        assert not changed[my0:my1, mx0:mx1].any(), f"frame {f}: caption over the mouth"
    # The captions were drawn at all: from the first word to the last group's hold.
    assert drawn_frames >= _first_frame(3600) - _first_frame(500)


def test_the_highlight_moves_to_each_word_on_the_frame_it_starts(burnt) -> None:
    _, with_captions, _ = burnt
    frames = with_captions.frames()
    centre = []
    for rgb in frames:
        ys, xs = np.nonzero(_yellow(rgb))
        centre.append(float(xs.mean()) if len(xs) > 20 else None)
    assert centre[_first_frame(500) - 2] is None  # nothing before the first word
    for word in WORDS:
        f = _first_frame(word.start_ms)
        window = range(f - 1, f + 2)
        # Within ±1 frame of the word's start the highlight jumps: the highlighted word is a new one.
        changes = [g for g in window if centre[g] is not None and (centre[g - 1] is None or abs(centre[g] - centre[g - 1]) > 15)]
        assert changes, f"{word.text}: the highlight did not change within a frame of {word.start_ms} ms ({centre[f - 2 : f + 3]})"
        # …and it does not change again until the next word.
        later = [g for g in range(f + 2, _first_frame(word.end_ms)) if centre[g] is not None and abs(centre[g] - centre[g - 1]) > 15]
        assert not later, f"{word.text}: the highlight moved at frames {later}"
    # Words of one group share a line: the highlight moves left to right. Three words do not fit 80 % of a
    # 360-px frame at this size, so "leaves." starts a group of its own, centred.
    firsts = [centre[_first_frame(w.start_ms) + 2] for w in WORDS[:3]]
    assert firsts[0] < W / 2 < firsts[1] and abs(firsts[2] - W / 2) < 10


def test_placement_moves_above_the_mouth_and_else_keeps_its_position() -> None:
    x, y = place_block(200, 40, W, H, "bottom", None)
    assert y + 40 <= SAFE_BOTTOM * H and y > 0.7 * H
    x, y = place_block(200, 40, W, H, "bottom", MOUTH)
    assert y + 40 <= MOUTH[1] and y >= SAFE_TOP * H
    x, y = place_block(200, 40, W, H, "top", MOUTH)
    assert y == int(SAFE_TOP * H) & ~1


def test_not_burnt_gives_a_subtitle_track_ffprobe_and_a_browser_see(tmp_path: Path) -> None:
    plan = make_plan([48, 48], 9, "tail", fps=FPS, width=W, height=H)
    track = CaptionTrack(CUES, WORDS, STYLE, burn=False, mouth_box=MOUTH)
    stitched = run_stitch(tmp_path / "track", plan, captions=track)
    streams = ffprobe(stitched.path)["streams"]
    assert [st["codec_type"] for st in streams] == ["video", "audio", "subtitle"]
    plain = run_stitch(tmp_path / "plain", plan).frames()
    assert all(np.abs(a.astype(int) - b.astype(int)).max() <= 8 for a, b in zip(plain, stitched.frames()))  # nothing drawn
    # The sidecar WebVTT our writer makes reads back to the same cues.
    vtt = tmp_path / "track" / "out.vtt"
    vtt.write_text(format_cues(CUES, "vtt"), encoding="utf-8")
    assert parse_captions(vtt.read_text()) == list(CUES)
    binary = find_chromium()
    if binary is None:
        pytest.skip("chromium is not installed (.ci/run installs it)")
    script = """
    (async () => {
      const v = document.createElement('video');
      v.muted = true; v.preload = 'auto'; v.src = %(src)s;
      const t = document.createElement('track'); t.kind = 'captions'; t.src = %(vtt)s; t.default = true;
      v.appendChild(t); document.body.appendChild(v);
      await new Promise((ok, bad) => { v.onloadedmetadata = ok; v.onerror = () => bad(new Error('media error ' + (v.error && v.error.code))); });
      if (t.readyState !== 2) await new Promise((ok, bad) => { t.onload = ok; t.onerror = () => bad(new Error('track error')); });
      v.textTracks[0].mode = 'showing';
      v.playbackRate = 4;
      await v.play();
      await new Promise((ok, bad) => { v.onended = ok; v.onerror = () => bad(new Error('error while playing')); });
      const ended = v.ended, decoded = v.getVideoPlaybackQuality().totalVideoFrames;
      v.currentTime = 1.2;
      await new Promise(ok => { v.onseeked = ok; });
      const active = Array.from(v.textTracks[0].activeCues || []).map(c => c.text);
      const cues = Array.from(v.textTracks[0].cues).map(c => [c.startTime, c.endTime, c.text]);
      return {ended, duration: v.duration, cues, active, decoded};
    })()
    """
    folder = stitched.path.parent
    (folder / "play.html").write_text("<!doctype html><html><body></body></html>\n")
    with serve(folder) as base, Chromium(binary) as browser:
        browser.navigate(f"{base}/play.html")
        result = browser.evaluate(script % {"src": json.dumps(f"{base}/{stitched.path.name}"), "vtt": json.dumps(f"{base}/out.vtt")})
    assert result["ended"] and abs(result["duration"] - plan.total_frames / FPS) < 0.05 and result["decoded"] > 0
    assert result["cues"] == [[0.5, 2.1, "Sunlight feeds leaves."], [2.6, 3.6, "Plants grow."]]
    assert result["active"] == ["Sunlight feeds leaves."]
