"""`longtake captions` and captions in a run: the files it writes, the table, the cache (editing the script
reruns captions and the export, nothing else), word captions burnt into the video."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.media_video import decode_rgb
from tests.orchestrator.conftest import SPEECH, events, longtake, steps_with, write_project


def _script_text() -> str:
    sentences = [s.strip() + "." for s in SPEECH.split(".") if s.strip()]
    return " ".join(sentences[:3]) + "\n\n" + " ".join(sentences[3:]) + "\n"


@pytest.fixture(scope="module")
def captioned(tmp_path_factory, speech_flac, portrait_png):
    if shutil.which("ffprobe") is None:
        pytest.skip("ffprobe is not installed")
    folder = tmp_path_factory.mktemp("captioned")
    (folder / "narration.txt").write_text(_script_text())
    project = write_project(folder, speech_flac, portrait_png, video={"width": 256, "height": 448},
                            captions={"script": "narration.txt", "size_pct": 6})
    proc = longtake("captions", str(project))
    return folder, project, proc


def test_captions_command_writes_the_files_and_prints_the_table(captioned) -> None:
    folder, project, proc = captioned
    assert proc.returncode == 0, proc.stderr
    work = folder / "project.longtake-work"
    words = json.loads((work / "words.json").read_text())
    sr = words["sample_rate_hz"]
    spoken = [w["text"] for w in words["words"]]
    assert spoken == _script_text().split()
    last_end = 0
    for w in words["words"]:
        assert w["found"] and w["start_sample"] < w["end_sample"] and w["start_sample"] >= last_end
        assert abs(w["start_s"] - w["start_sample"] / sr) < 1e-3 and 0 < w["confidence"] <= 1
        last_end = w["end_sample"]
    srt = (work / "captions.srt").read_text()
    assert srt.startswith("1\n00:00:0") and "Welcome to this short test." in srt
    assert (work / "captions.vtt").read_text().startswith("WEBVTT")
    # The table: one row per sentence with its start, end and confidence.
    rows = [line for line in proc.stdout.splitlines() if line[:4].strip().isdigit()]
    sentences = [s for s in SPEECH.split(".") if s.strip()]
    assert len(rows) == len(sentences) and "Welcome to this short test." in rows[0]
    assert all(float(row.split()[3]) > 0.5 for row in rows)
    assert f"{len(sentences)} lines, {len(spoken)} of {len(spoken)} words found in the voiceover" in proc.stdout
    # Sentences follow each other with the 450-ms pauses the voiceover has between them.
    lines = words["lines"]
    assert all(b["start_s"] - a["end_s"] > 0.3 for a, b in zip(lines, lines[1:]))


def test_a_run_burns_word_captions_and_editing_the_script_reruns_only_captions_and_export(captioned, tmp_path) -> None:
    folder, project, _ = captioned
    evts = events(longtake("run", str(project), "--json", check=True))
    assert "captions" in steps_with(evts, "step_cached")  # `longtake captions` already aligned it
    video = folder / "out" / "video.mp4"
    words = json.loads((folder / "project.longtake-work" / "words.json").read_text())
    frames = decode_rgb(video)
    fps = 24
    # Mid-word frames show highlight-coloured pixels in the lower part of the picture; the lead-in shows none.
    first = words["words"][0]
    mid = int((first["start_s"] + first["end_s"]) / 2 * fps)
    yellow = lambda rgb: ((rgb[..., 0] > 190) & (rgb[..., 1] > 150) & (rgb[..., 2] < 110)).sum()
    assert yellow(frames[mid]) > 10 and yellow(frames[0]) == 0
    # Sidecar subtitles beside the video, on the video's time line (the workdir's captions.srt is voiceover time).
    from stitchers.captions import parse_captions

    sidecar = parse_captions((folder / "out" / "video.vtt").read_text())
    assert abs(sidecar[0].start_ms - first["start_s"] * 1000) <= 1 and sidecar[0].text.startswith("Welcome")
    assert parse_captions((folder / "out" / "video.srt").read_text()) == sidecar

    # Edit one word inside a sentence: captions and the export rerun; the plan and every segment stay.
    text = _script_text().replace("We are checking", "We are testing")
    (folder / "narration.txt").write_text(text)
    status = {s["step"]: s for s in json.loads(longtake("status", str(project), "--json").stdout)}
    assert status["captions"]["reason"] == "captions script changed"
    # The plan takes the sentence ends from the alignment, so it can only tell once the script is aligned again.
    assert status["plan"]["reason"] == "waits on captions"
    ran = steps_with(events(longtake("run", str(project), "--json", check=True)), "step_started")
    assert ran == ["captions", "stitch", "report"]
