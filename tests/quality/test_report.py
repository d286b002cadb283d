"""`longtake report` end to end on synthetic talking-head videos with planted faults (tests/media_report.py).

Every video is 180×320 at 24 fps with a speech-like AAC track; each test plants
one fault at a known place and checks the report finds it there, and that the
other measures stay quiet.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from orchestrator.errors import MediaError
from quality import report as report_mod
from quality.face import FaceBox, delta_e2000
from quality.report import MEASURES, Report, build_report, format_summary
from stitchers.clip_io import ClipWriter
from tests.media_report import Join, Spec, make_video, plan_for, write_portrait

FPS = Fraction(24)
SEAM_JOINS = (Join(72, "clean"), Join(144, "cut", context_frames=0), Join(216, "crossfade", context_frames=8))


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("report_media")


@pytest.fixture(scope="module")
def portrait(media) -> Path:
    return write_portrait(media / "portrait.png", 360, 640)  # twice the video's size, like a real portrait


def _make(media: Path, name: str, spec: Spec):
    return make_video(media / f"{name}.mp4", spec)


@pytest.fixture(scope="module")
def clean(media, portrait):
    spec = Spec(seed=1, joins=(Join(96, "clean"), Join(192, "clean")))
    made = _make(media, "clean", spec)
    out = media / "clean_report"
    progress: list[tuple[int, int]] = []
    rep = build_report(made.path, plan=made.plan, portrait=portrait, out_dir=out, progress=lambda d, t: progress.append((d, t)))
    return made, rep, out, progress


@pytest.fixture(scope="module")
def seams(media):
    made = _make(media, "seams", Spec(seed=3, joins=SEAM_JOINS))
    return made, build_report(made.path, plan=made.plan), build_report(made.path, out_dir=media / "seams_unplanned")


def _verdicts_except(rep: Report, *skip: str) -> dict[str, str]:
    return {k: v for k, v in rep.verdicts().items() if k not in skip}


# -- clean input --------------------------------------------------------------------------


def test_clean_video_reports_nothing_bad(clean):
    _, rep, _, _ = clean
    assert rep.verdicts() == {m: "ok" for m in MEASURES}, format_summary(rep)
    assert rep.overall == "ok"
    assert not any(s.flagged for s in rep.seams)
    assert [s.frame for s in rep.seams] == [96, 192]
    assert abs(rep.sync.offset_frames) <= 0.5
    assert rep.sync.confidence > 0.5
    assert rep.sync.source == "face crop"
    assert rep.face.method in ("haar", "skin")  # Haar where this OpenCV ships it
    assert rep.identity.reference == "portrait" and rep.identity.drop < 0.03
    assert rep.color.delta_e_total < 1.0


def test_clean_video_integrity_matches_the_design_rules(clean):
    _, rep, _, _ = clean
    g = rep.integrity
    assert g.frames == g.frames_expected == 288
    assert g.frame_count_diff == 0
    assert abs(g.av_duration_diff_frames) < 1.0
    assert g.constant_frame_rate and g.irregular_intervals == 0
    assert g.audio_start_ms == pytest.approx(0.0, abs=0.5)
    assert g.plan_frames_diff == 0 and g.plan_fps_matches


def test_outputs_are_written_and_json_has_the_contract_fields(clean):
    _, rep, out, _ = clean
    assert set(rep.files) == {"report.json", "report.png", "contact_sheet.png"}
    data = json.loads((out / "report.json").read_text())
    assert data["version"] == 1 and data["overall"] == "ok"
    assert data["verdicts"] == rep.verdicts()
    assert data["sync"]["offset_frames"] == pytest.approx(rep.sync.offset_frames, abs=0.01)
    assert 0 <= data["sync"]["confidence"] <= 1
    assert [s["frame"] for s in data["seams"]] == [96, 192]
    assert all(set(s) >= {"frame", "z", "flagged"} and s["flagged"] is False for s in data["seams"])
    assert isinstance(data["color"]["delta_e_per_min"], float)
    assert abs(data["integrity"]["av_duration_diff_frames"]) < 1.0
    assert len(data["color"]["per_second"]["second"]) == 12
    png = Image.open(out / "report.png")
    assert png.size == (1400, 1300)
    sheet = Image.open(out / "contact_sheet.png")
    # the worst join's neighbourhood: 4 frames + a middle crossfade frame + the difference image
    assert sheet.size[0] > 5 * 180 and sheet.size[1] > 320


def test_progress_is_reported_up_to_the_last_frame(clean):
    _, _, _, progress = clean
    done = [d for d, _ in progress]
    assert done == sorted(done) and done[-1] == 288 and progress[-1] == (288, 288)
    assert len(progress) >= 288 // 24


def test_summary_fits_a_screen_and_names_every_measure(clean, seams):
    for rep in (clean[1], seams[1]):
        text = format_summary(rep)
        lines = text.splitlines()
        assert len(lines) <= 30 and max(len(line) for line in lines) <= 140
        for label in report_mod.LABELS.values():
            assert label in text
    bad = format_summary(seams[1])
    assert "BAD" in bad and "0:06.00" in bad  # the cut, as a timestamp


# -- seams --------------------------------------------------------------------------------


def test_planned_joins_find_the_cut_and_the_crossfade_but_not_the_clean_join(seams):
    _, planned, _ = seams
    by_frame = {s.frame: s for s in planned.seams}
    assert set(by_frame) == {72, 144, 216}
    assert not by_frame[72].flagged and by_frame[72].z < 4
    assert by_frame[144].flagged and by_frame[144].z >= 2 * planned.thresholds.seam_z
    assert by_frame[144].peak_frame == 144
    assert by_frame[216].flagged
    assert planned.verdicts()["seams"] == "bad"
    assert _verdicts_except(planned, "seams") == {m: "ok" for m in MEASURES if m != "seams"}


def test_without_a_plan_the_cut_is_found_at_its_frame_and_the_crossfade_inside_its_span(seams):
    _, _, unplanned = seams
    flagged = [s for s in unplanned.seams if s.flagged]
    assert [s.frame for s in flagged][0] == 144
    assert len(flagged) == 2
    assert 216 - 8 <= flagged[1].frame <= 216  # the crossfade blends frames [208, 216)
    assert not any(s.planned for s in unplanned.seams)


def test_contact_sheet_without_a_plan_shows_the_cut_from_the_ring_buffer(seams, media):
    _, _, unplanned = seams
    assert "contact_sheet.png" in unplanned.files
    assert {142, 143, 144, 145} <= set(unplanned.thumbs)
    assert len(unplanned.thumbs) <= 8 * 16  # a few candidates' neighbourhoods, not the video
    sheet = Image.open(media / "seams_unplanned" / "contact_sheet.png")
    thumb_w = unplanned.thumbs[144].shape[1]
    assert sheet.size[0] // (thumb_w + 6) == 5  # 4 frames around the cut + the difference image


def test_clean_video_without_a_plan_flags_no_jump(clean):
    made, _, _, _ = clean
    rep = build_report(made.path)
    assert not any(s.flagged for s in rep.seams)
    assert rep.verdicts()["seams"] == "ok"


def test_skin_colour_detector_path_end_to_end(clean, monkeypatch):
    made, _, _, _ = clean
    monkeypatch.setattr("quality.face._haar", lambda rgb: None)  # as with OpenCV 5, which has no cascades
    rep = build_report(made.path, plan=made.plan)
    assert rep.face.method == "skin"
    assert rep.verdicts() == {m: "ok" for m in MEASURES}, format_summary(rep)
    assert abs(rep.sync.offset_frames) <= 0.5 and rep.sync.source == "face crop"


# -- lip sync -----------------------------------------------------------------------------


@pytest.mark.parametrize("delay, verdict", [(3, "check"), (-3, "bad")])
def test_audio_offset_is_measured_to_within_a_frame(media, delay, verdict):
    made = _make(media, f"delay{delay}", Spec(seed=2, audio_delay_frames=delay))
    rep = build_report(made.path)
    assert rep.sync.offset_frames == pytest.approx(delay, abs=1.0)
    assert rep.sync.confidence > 0.5
    # 125 ms late is past EBU R37 (60 ms) but within ITU-R BT.1359 (185 ms); 125 ms early is past 90 ms
    assert rep.verdicts()["sync"] == verdict
    assert _verdicts_except(rep, "sync") == {m: "ok" for m in MEASURES if m != "sync"}


def test_sync_drift_is_found_and_its_direction_is_right(media):
    made = _make(media, "drift", Spec(seed=4, duration_s=18.0, audio_delay_frames=0, delay_end_frames=5))
    rep = build_report(made.path)
    # 5 frames over 18 s = 16.7 frames/min
    assert rep.sync.drift_frames_per_min == pytest.approx(5 / 18 * 60, rel=0.3)
    assert rep.sync.offset_start_frames < 1.5 and rep.sync.offset_end_frames > 3.0
    assert rep.verdicts()["sync"] in ("check", "bad")
    assert "drifts to" in rep.findings["sync"].reason


def test_mouth_found_by_audio_visual_synchrony_when_the_face_box_is_wrong(media, monkeypatch):
    made = _make(media, "wrongbox", Spec(seed=5, audio_delay_frames=-2))
    # a detector that looks at the wrong place: the bottom-left corner of the frame
    monkeypatch.setattr("quality.stream.locate_face", lambda rgb: FaceBox(2.0, 240.0, 50.0, 60.0, "centre"))
    rep = build_report(made.path)
    assert rep.face.method == "centre"
    assert rep.sync.source == "motion grid"
    assert rep.sync.offset_frames == pytest.approx(-2, abs=1.0)
    assert any("audio-visual synchrony" in n for n in rep.notes)


# -- mouth in pauses ----------------------------------------------------------------------


def test_mouth_moving_in_a_silent_pause_is_flagged_at_that_pause(media):
    made = _make(media, "babble", Spec(seed=6, pauses_s=((5.0, 6.4),), babble_s=((5.05, 6.35),)))
    rep = build_report(made.path)
    flagged = [p for p in rep.mouth.pauses if p.flagged]
    assert len(flagged) == 1
    start_s, end_s = flagged[0].start_frame / 24, flagged[0].end_frame / 24
    assert start_s <= 5.2 and end_s >= 6.2
    assert rep.verdicts()["mouth"] == "bad"
    assert {m: rep.verdicts()[m] for m in ("seams", "color", "identity", "integrity")} == dict.fromkeys(("seams", "color", "identity", "integrity"), "ok")


# -- drift --------------------------------------------------------------------------------


def test_colour_drift_of_known_slope(media, portrait):
    slope = (0.0, 45.0, 0.0)  # Lab units per minute: the face reddens
    made = _make(media, "colour", Spec(seed=7, duration_s=8.0, color_drift_lab_per_min=slope))
    rep = build_report(made.path, portrait=portrait)
    start = rep.color.lab[0]
    expected = float(delta_e2000(start, start + np.array(slope)))
    assert rep.color.delta_e_per_min == pytest.approx(expected, rel=0.15)
    assert rep.color.slope_lab_per_min[1] == pytest.approx(45.0, rel=0.15)
    assert rep.verdicts()["color"] == "bad"
    assert rep.color.worst_second >= 6
    assert rep.verdicts()["identity"] == "ok" and rep.verdicts()["sync"] == "ok"


def test_identity_morph_is_found_late_not_early(media, portrait):
    made = _make(media, "morph", Spec(seed=8, duration_s=9.0, identity_morph_s=(3.5, 8.5)))
    rep = build_report(made.path, portrait=portrait)
    assert rep.identity.reference == "portrait"
    assert rep.identity.drop >= rep.thresholds.identity_bad_drop
    assert rep.identity.worst_second >= 7
    assert rep.verdicts()["identity"] == "bad"
    early = rep.identity.similarity[rep.identity.seconds < 3]
    assert early.min() > rep.identity.start - 0.03


# -- integrity ----------------------------------------------------------------------------


def test_short_audio_and_variable_frame_rate_are_caught(media):
    made = _make(media, "shortvfr", Spec(seed=9, duration_s=8.0, audio_trim_end_s=1.0, vfr=True))
    rep = build_report(made.path)
    g = rep.integrity
    assert g.av_duration_diff_frames == pytest.approx(-24.0, abs=1.0)
    assert g.frames == 192 and g.frames_expected == 168 and g.frame_count_diff == 24
    assert not g.constant_frame_rate and g.irregular_intervals == 2 * 19 and g.max_interval_frames == pytest.approx(1.5, abs=0.01)
    assert rep.verdicts()["integrity"] == "bad"
    assert "shorter" in rep.findings["integrity"].reason and "variable frame rate" in rep.findings["integrity"].reason


def test_late_audio_start_is_caught_and_agrees_with_the_sync_offset(media):
    made = _make(media, "latestart", Spec(seed=10, duration_s=8.0, audio_start_s=0.125))
    rep = build_report(made.path)
    # the encoder's first AAC frame (priming, 1024 samples = 21 ms) is stamped before the content
    assert 100.0 <= rep.integrity.audio_start_ms <= 126.0
    assert rep.verdicts()["integrity"] == "bad"
    assert rep.sync.offset_frames == pytest.approx(3.0, abs=1.0)


def test_truncated_video_is_caught_without_a_plan(media):
    """A faststart MP4 cut at 60 %: audio and video end together, so only the container's own index tells."""
    import av

    made = _make(media, "tocut", Spec(seed=12, duration_s=8.0))
    whole = media / "tocut_faststart.mp4"
    with av.open(str(made.path)) as src, av.open(str(whole), "w", format="mp4", options={"movflags": "+faststart"}) as dst:
        mapping = {s.index: dst.add_stream_from_template(s) for s in src.streams}
        for packet in src.demux():
            if packet.dts is not None:
                packet.stream = mapping[packet.stream.index]
                dst.mux(packet)
    data = whole.read_bytes()
    cut = media / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.6)])

    intact = build_report(whole)
    assert intact.integrity.declared_frames == 192 and intact.integrity.missing_frames == 0
    assert intact.verdicts()["integrity"] == "ok"

    rep = build_report(cut)
    g = rep.integrity
    assert g.declared_frames == 192 and 60 < g.frames < 150 and g.missing_frames == 192 - g.frames
    assert g.decoded_end_s == pytest.approx(g.frames / 24, abs=0.05)
    assert rep.verdicts()["integrity"] == "bad"
    reason = rep.findings["integrity"].reason
    assert "cut short" in reason and "192 frames (0:08.00)" in reason and f"ended at frame {g.frames}" in reason
    assert json.loads(rep.to_json())["integrity"]["missing_frames"] == g.missing_frames


def test_plan_that_does_not_match_the_video_is_reported(seams, media):
    made, _, _ = seams
    longer = Spec(seed=3, duration_s=13.0, joins=SEAM_JOINS)
    rep = build_report(made.path, plan=plan_for(longer))
    assert rep.integrity.plan_frames_diff == 24
    assert rep.verdicts()["integrity"] == "bad"


def test_video_without_audio_is_bad_integrity_and_unmeasurable_sync(media):
    path = media / "silent.mp4"
    rng = np.random.default_rng(0)
    with ClipWriter(path, 64, 64, FPS) as w:
        for _ in range(48):
            w.write(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    rep = build_report(path)
    assert not rep.integrity.has_audio
    assert rep.verdicts()["integrity"] == "bad" and rep.verdicts()["sync"] == "check"
    assert "no audio track" in rep.findings["integrity"].reason
    data = json.loads(json.dumps(rep.to_dict(), allow_nan=False))  # strict JSON: no NaN leaks out
    assert data["sync"]["offset_frames"] is None and data["integrity"]["av_duration_diff_frames"] is None
    assert "no audio track" in format_summary(rep)


def test_ntsc_frame_rate_keeps_integer_frame_arithmetic(media):
    made = _make(media, "ntsc", Spec(seed=11, duration_s=8.0, fps=Fraction(30000, 1001)))
    rep = build_report(made.path)
    g = rep.integrity
    assert rep.video.fps == Fraction(30000, 1001)
    assert g.frames == made.spec.num_frames == g.frames_expected
    assert g.constant_frame_rate and abs(g.av_duration_diff_frames) < 1.0
    assert rep.verdicts()["integrity"] == "ok"
    assert abs(rep.sync.offset_frames) <= 0.5


# -- errors -------------------------------------------------------------------------------


def test_missing_and_unreadable_inputs_are_media_errors(tmp_path, clean):
    with pytest.raises(MediaError, match="missing"):
        build_report(tmp_path / "nope.mp4")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"this is not a video")
    with pytest.raises(MediaError, match="junk.mp4"):
        build_report(junk)
    with pytest.raises(MediaError, match="portrait"):
        build_report(clean[0].path, portrait=tmp_path / "missing.png")
    assert MediaError.exit_code == 3
