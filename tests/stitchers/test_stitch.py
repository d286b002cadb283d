"""End to end: synthetic segment clips in, one MP4 out; read every output frame back and check who made it.

Each clip frame carries the output frame index it stands for and a grey level
saying which segment drew it (tests/media_video.py), so from the decoded
output we can assert, frame by frame, that nothing was dropped, repeated or
misplaced, and which crossfade weight landed where.
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from orchestrator.config import ExportConfig, StitcherConfig
from orchestrator.errors import LongtakeError, MediaError
from stitchers.clip_io import ClipWriter
from stitchers.color import color_stats
from stitchers.stitch import stitch
from tests.media_video import (
    SCENE_TOP,
    decode_audio,
    draw_frame,
    make_plan,
    probe_weight,
    read_index,
    read_probe,
    scene,
    write_clips,
    write_master,
)
from tests.stitchers.conftest import ffprobe, run_stitch


def ramp(k: int, n: int) -> float:
    return (1 - math.cos(math.pi * (k + 0.5) / n)) / 2


def expected_weight(plan, f: int) -> tuple[int, float]:
    """(incoming segment, its weight) at output frame f; weight 1 where a single clip shows."""
    for seg in plan.segments[1:]:
        if plan.chaining != "last-frame" and seg.gen_start_frame <= f < seg.start_frame:
            return seg.index, ramp(f - seg.gen_start_frame, seg.context_frames)
    return plan.owner_of(f).index, 1.0


CASES = [
    pytest.param("tail", 24, 9, [26, 19, 31], id="tail-24fps"),
    pytest.param("tail", 25, 5, [13, 9, 17, 11, 20, 8], id="tail-25fps-6-segments"),
    pytest.param("last-frame", 30, 1, [21, 18, 25], id="last-frame-30fps"),
    pytest.param("anchor", 25, 4, [20, 23, 16], id="anchor-25fps"),
    pytest.param("anchor", 30, 0, [20, 23], id="anchor-30fps-hard-cut"),
    pytest.param("tail", 24, 0, [33], id="one-segment"),
]


@pytest.mark.parametrize("chaining, fps, context, owned", CASES)
def test_every_frame_comes_from_the_right_clip_with_the_right_weight(tmp_path: Path, chaining: str, fps: int, context: int, owned: list[int]) -> None:
    plan = make_plan(owned, context, chaining, fps=fps)
    s = run_stitch(tmp_path, plan)
    frames = s.frames()
    assert len(frames) == plan.total_frames == s.result.frames
    assert [read_index(f) for f in frames] == list(range(plan.total_frames))
    for f, frame in enumerate(frames):
        seg, w = expected_weight(plan, f)
        level = read_probe(frame)
        measured = probe_weight(level, seg) if seg > 0 else 1.0 - probe_weight(level, 1)
        assert measured == pytest.approx(w, abs=0.025), f"frame {f}: segment {seg} should weigh {w:.3f}, reads {measured:.3f}"
    assert s.result.fps == Fraction(fps)
    assert s.result.duration_s == pytest.approx(plan.total_frames / fps)
    assert (s.result.width, s.result.height) == (plan.width, plan.height)
    assert s.result.size_bytes == s.path.stat().st_size


def test_generation_size_is_cropped_to_the_output_without_distortion(tmp_path: Path) -> None:
    plan = make_plan([20, 20], 6, "tail", width=160, height=224)  # like 1088×1920 → 1080×1920, scaled down
    s = run_stitch(tmp_path, plan, export={"preset": "tiktok", "width": 128, "height": 224})
    frames = s.frames()
    assert frames[0].shape == (224, 128, 3)
    assert [read_index(f) for f in frames] == list(range(plan.total_frames))
    # The crop is centred: the scene's left and right columns both lose 16 px, so the picture matches the source window.
    want = scene(160, 224)[SCENE_TOP:, 16:144]
    got = frames[5][SCENE_TOP:].astype(np.float32)
    assert np.abs(got - want).mean() < 3.0
    assert np.abs(frames[5][SCENE_TOP:].astype(np.float32) - scene(160, 224)[SCENE_TOP:, 0:128]).mean() > 6.0


def _segment_stats(frames, plan, i, top: int = 0):
    """Lab stats over a segment's own frames (away from its seams), whole frame or the scene below ``top``."""
    seg = plan.segments[i]
    return color_stats([frames[f][top:] for f in range(seg.start_frame + 2, seg.end_frame - 10)])


DRIFT_GAINS = [(1.0, 1.0, 1.0), (1.10, 1.0, 0.90), (0.95, 1.03, 1.12), (1.12, 1.08, 1.02)]


def test_colour_hold_removes_planted_drift(tmp_path: Path) -> None:
    plan = make_plan([30, 30, 30, 30], 9, "tail")
    off = run_stitch(tmp_path / "off", plan, gains=DRIFT_GAINS).frames()
    held = run_stitch(tmp_path / "held", plan, gains=DRIFT_GAINS, stitcher={"color_hold": "first", "color_hold_strength": 1.0}).frames()
    half = run_stitch(tmp_path / "half", plan, gains=DRIFT_GAINS, stitcher={"color_hold": "first", "color_hold_strength": 0.5}).frames()
    ref, ref_scene = _segment_stats(off, plan, 0), _segment_stats(off, plan, 0, SCENE_TOP)
    assert _segment_stats(held, plan, 0).delta_e(ref) < 0.3  # the reference segment is left alone
    for i in (1, 2, 3):
        before = _segment_stats(off, plan, i).delta_e(ref)
        after = _segment_stats(held, plan, i).delta_e(ref)
        midway = _segment_stats(half, plan, i).delta_e(ref)
        assert before > 4.0
        assert after < min(1.0, 0.15 * before), f"segment {i}: ΔE {before:.1f} → {after:.1f}"
        assert 0.3 * before < midway < 0.7 * before
        # The scene itself (not only the frame-wide statistics the correction is fitted on) comes back too.
        assert _segment_stats(held, plan, i, SCENE_TOP).delta_e(ref_scene) < 0.25 * _segment_stats(off, plan, i, SCENE_TOP).delta_e(ref_scene)
    # Frames still read right through the correction.
    assert [read_index(f) for f in held] == list(range(plan.total_frames))


def test_colour_hold_to_the_portrait_corrects_segment_zero_too(tmp_path: Path) -> None:
    plan = make_plan([30, 30], 9, "tail")
    gains = [(1.1, 1.0, 0.88)] * 2  # the whole video drifted warm; the portrait (the same picture) is neutral
    portrait = draw_frame(plan.width, plan.height, 0, 0)
    first = run_stitch(tmp_path / "first", plan, gains=gains, stitcher={"color_hold": "first", "color_hold_strength": 1.0}).frames()
    held = run_stitch(tmp_path / "portrait", plan, gains=gains, stitcher={"color_hold": "portrait", "color_hold_strength": 1.0}, reference_rgb=portrait).frames()
    want = color_stats(portrait)
    assert _segment_stats(first, plan, 0).delta_e(want) > 4.0
    for i in (0, 1):
        assert _segment_stats(held, plan, i).delta_e(want) < 1.0


def test_colour_hold_portrait_without_a_portrait_falls_back_with_a_warning(tmp_path: Path) -> None:
    plan = make_plan([30, 30], 9, "tail")
    s = run_stitch(tmp_path, plan, gains=[(1, 1, 1), (1.1, 1, 0.9)], stitcher={"color_hold": "portrait", "color_hold_strength": 1.0})
    assert any("portrait" in w and "segment 0" in w for w in s.result.warnings)
    frames = s.frames()
    assert _segment_stats(frames, s.plan, 1).delta_e(_segment_stats(frames, s.plan, 0)) < 1.0


def _max_step(frames, lo: int, hi: int) -> float:
    stats = [color_stats(frames[f]).mean for f in range(lo, hi)]
    return max(float(np.linalg.norm(b - a)) for a, b in zip(stats, stats[1:]))


def test_colour_correction_ramps_in_instead_of_jumping_at_a_seam(tmp_path: Path) -> None:
    # last-frame chaining: the picture is continuous across the seam (clip 1 starts from clip 0's last frame)
    # but drifts warmer over time, so each segment gets a different correction; without a ramp the change of
    # correction would land on one frame boundary.
    plan = make_plan([36, 36], 1, "last-frame")

    def drift_in_time(segment: int, f: int) -> tuple[float, float, float]:
        return (1.0 + 0.004 * f, 1.0, 1.0 - 0.004 * f)

    cfg = {"color_hold": "first", "color_hold_strength": 1.0}
    hard = run_stitch(tmp_path / "hard", plan, tint=drift_in_time, stitcher={**cfg, "color_ramp_frames": 0}).frames()
    soft = run_stitch(tmp_path / "soft", plan, tint=drift_in_time, stitcher={**cfg, "color_ramp_frames": 12}).frames()
    raw = run_stitch(tmp_path / "raw", plan, tint=drift_in_time).frames()
    seam = plan.segments[1].start_frame
    natural = _max_step(raw, seam - 4, seam + 14)  # the drift itself, frame to frame
    jump = _max_step(hard, seam - 2, seam + 2)
    assert jump > 4 * natural and jump > 2.0  # an unramped change of correction is a visible jump
    assert _max_step(soft, seam - 4, seam + 14) < 0.35 * jump


def test_master_audio_is_muxed_sample_exact_from_t0(tmp_path: Path) -> None:
    plan = make_plan([24, 30], 9, "tail")
    s = run_stitch(tmp_path, plan, master={"sample_rate_hz": 44100, "channels": 2, "clicks_s": [0.25, 1.5]})
    audio, rate = decode_audio(s.path)
    assert rate == 48000 and audio.shape[0] == 2
    for t in (0.25, 1.5):
        k = round(t * 48000)
        window = np.abs(audio[0, k - 2400 : k + 2400])
        assert abs(int(np.argmax(window)) - 2400) <= 48, f"click at {t} s moved"  # within 1 ms
    probe = ffprobe(s.path)
    video, sound = probe["streams"][0], probe["streams"][1]
    want_samples = round(Fraction(plan.total_frames) / plan.fps * 48000)
    assert int(sound["duration_ts"]) == want_samples  # presented length: exact to the sample
    assert float(sound["start_time"]) == 0.0 and float(video["start_time"]) == 0.0
    assert abs(float(video["duration"]) - float(sound["duration"])) < 1 / 24


def test_audio_longer_or_shorter_by_a_little_is_fitted_with_a_warning(tmp_path: Path) -> None:
    plan = make_plan([24, 24], 9, "tail")
    s = run_stitch(tmp_path, plan, master={"seconds": 2.3})  # 0.3 s longer than the 48-frame video
    assert any("cut" in w for w in s.result.warnings)
    assert int(ffprobe(s.path)["streams"][1]["duration_ts"]) == 96000


def test_audio_from_another_voiceover_is_refused(tmp_path: Path) -> None:
    plan = make_plan([24, 24], 9, "tail")
    with pytest.raises(MediaError, match="different voiceover"):
        run_stitch(tmp_path, plan, master={"seconds": 9.0})
    assert not (tmp_path / "out.mp4").exists()


def test_progress_reports_every_frame(tmp_path: Path) -> None:
    plan = make_plan([20, 15], 5, "tail")
    calls = []
    run_stitch(tmp_path, plan, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(k, plan.total_frames) for k in range(1, plan.total_frames + 1)]


# -- errors: name the segment and the file, exit 3, leave no broken output behind ---------------------------------


def _inputs(tmp_path: Path, owned=(20, 20, 20)):
    plan = make_plan(list(owned), 9, "tail")
    clips = write_clips(plan, tmp_path / "clips")
    wav = write_master(tmp_path / "m.wav", plan)
    return plan, clips, wav


def _stitch(plan, clips, wav, out):
    return stitch(plan, clips, wav, out, stitcher=StitcherConfig(color_hold="off"), export=ExportConfig(preset="master", x264_preset="ultrafast"))


def _assert_no_output(out: Path, before: bytes | None = None) -> None:
    if before is None:
        assert not out.exists()
    else:
        assert out.read_bytes() == before  # an existing output survives a failed stitch untouched
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]  # no temp file left


def test_missing_clip_names_segment_and_path(tmp_path: Path) -> None:
    plan, clips, wav = _inputs(tmp_path)
    clips[2].unlink()
    with pytest.raises(MediaError) as err:
        _stitch(plan, clips, wav, tmp_path / "out.mp4")
    assert "segment 2" in str(err.value) and str(clips[2]) in str(err.value) and "missing" in str(err.value)
    assert err.value.exit_code == 3
    _assert_no_output(tmp_path / "out.mp4")


def test_wrong_size_clip_names_segment_and_sizes(tmp_path: Path) -> None:
    plan, clips, wav = _inputs(tmp_path)
    with ClipWriter(clips[1], 96, 224, plan.fps) as w:
        w.write_all(np.zeros((plan.segments[1].gen_frames, 224, 96, 3), np.uint8))
    with pytest.raises(MediaError, match=r"segment 1: .*96×224 but the plan generates 128×224"):
        _stitch(plan, clips, wav, tmp_path / "out.mp4")
    _assert_no_output(tmp_path / "out.mp4")


def test_short_clip_is_reported_as_truncated(tmp_path: Path) -> None:
    plan, clips, wav = _inputs(tmp_path)
    with ClipWriter(clips[1], plan.width, plan.height, plan.fps) as w:
        for j in range(10):
            w.write(draw_frame(plan.width, plan.height, j, 1))
    with pytest.raises(MediaError, match=r"segment 1: .*truncated"):
        _stitch(plan, clips, wav, tmp_path / "out.mp4")


def test_cut_off_file_fails_cleanly_and_keeps_the_previous_output(tmp_path: Path) -> None:
    plan, clips, wav = _inputs(tmp_path)
    out = tmp_path / "out.mp4"
    out.write_bytes(b"previous good video")
    data = clips[2].read_bytes()
    clips[2].write_bytes(data[: len(data) // 2])  # a copy that died half way: no index at the end
    with pytest.raises(MediaError, match=r"segment 2: .*seg002\.mp4"):
        _stitch(plan, clips, wav, out)
    _assert_no_output(out, before=b"previous good video")


def test_garbage_file_is_a_media_error(tmp_path: Path) -> None:
    plan, clips, wav = _inputs(tmp_path)
    clips[0].write_bytes(b"\x00not a video" * 1000)
    with pytest.raises(MediaError, match="segment 0"):
        _stitch(plan, clips, wav, tmp_path / "out.mp4")


def test_failure_mid_stream_leaves_no_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plan, clips, wav = _inputs(tmp_path)
    import stitchers.clips as clips_module

    real = clips_module.iter_clip

    def dies_in_segment_2(clip, limit=None):
        for k, frame in enumerate(real(clip, limit)):
            if clip.segment == 2 and k == 5:
                raise MediaError(f"segment 2: clip {clip.path} cannot be decoded at frame 5")
            yield frame

    monkeypatch.setattr(clips_module, "iter_clip", dies_in_segment_2)
    with pytest.raises(MediaError, match="segment 2"):
        _stitch(plan, clips, wav, tmp_path / "out.mp4")
    _assert_no_output(tmp_path / "out.mp4")


def test_clip_count_must_match_the_plan(tmp_path: Path) -> None:
    plan, clips, wav = _inputs(tmp_path)
    with pytest.raises(ValueError, match="3 segments but 2 clips"):
        _stitch(plan, clips[:2], wav, tmp_path / "out.mp4")


def test_errors_are_longtake_errors_with_exit_codes() -> None:
    assert issubclass(MediaError, LongtakeError) and MediaError.exit_code == 3


def test_prefetcher_stops_early_and_passes_errors_on(tmp_path: Path) -> None:
    import threading
    import time

    from stitchers.clips import Prefetcher, check_clip

    plan, clip_paths, _ = _inputs(tmp_path, owned=(40, 40, 40))
    clips = [check_clip(plan, i, p)[0] for i, p in enumerate(clip_paths)]
    pre = Prefetcher(clips, depth=2)
    got = []
    for i in range(3):
        frames = pre.frames(i)
        for k, frame in enumerate(frames):
            got.append((i, k))
            if k == 2:
                break  # abandon each clip early: the thread must skip the rest, not decode it or hang
        frames.close()
    pre.close()
    assert got == [(i, k) for i in range(3) for k in range(3)]
    assert not any(t.name == "longtake-decode" and t.is_alive() for t in threading.enumerate())

    clip_paths[1].write_bytes(b"\x00" * 4096)  # clip 1 now fails to open: the error surfaces when clip 1 is read
    pre = Prefetcher(clips, depth=2)
    assert sum(1 for _ in pre.frames(0)) == clips[0].frames_needed
    t0 = time.monotonic()
    with pytest.raises(MediaError, match="segment 1"):
        next(pre.frames(1))
    pre.close()
    assert time.monotonic() - t0 < 5


def test_interrupt_mid_stitch_stops_promptly_and_leaves_nothing(tmp_path: Path) -> None:
    import threading

    plan, clips, wav = _inputs(tmp_path, owned=(30, 30, 30))
    out = tmp_path / "out.mp4"

    def ctrl_c_at_frame_35(done: int, total: int) -> None:
        if done == 35:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        stitch(plan, clips, wav, out, stitcher=StitcherConfig(color_hold="first"), export=ExportConfig(preset="master", x264_preset="ultrafast"), progress=ctrl_c_at_frame_35)
    _assert_no_output(out)
    assert not any(t.name.startswith(("longtake-decode", "longtake-colour")) and t.is_alive() for t in threading.enumerate())
