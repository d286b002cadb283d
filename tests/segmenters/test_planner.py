"""The planner: tiling, the generator's grid, max length, cuts in pauses, forced cuts, errors.

Audio here is synthetic noise bursts with silences at known sample positions;
VAD probabilities are derived from the known layout, so the expected cuts are exact.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from orchestrator.errors import ConfigError, MediaError
from orchestrator.timebase import frame_to_sample
from segmenters.plan import FrameGrid, Plan
from segmenters.planner import PlannerSettings, context_frames_for, find_pauses, generation_size, plan_voiceover

SR = 16_000
HOP = 256


def layout_audio(spans: list[tuple[float, float]], total_s: float, seed: int = 0, dips: list[float] = ()) -> np.ndarray:
    """Noise over each (start_s, end_s) speech span, silence elsewhere; optional energy dips (quiet 40 ms) inside speech."""
    rng = np.random.default_rng(seed)
    audio = np.zeros(int(total_s * SR), dtype=np.float32)
    for a, b in spans:
        i, j = int(a * SR), min(int(b * SR), len(audio))
        audio[i:j] = rng.normal(0, 0.2, j - i)
    for t in dips:
        i = int(t * SR)
        audio[i - 320 : i + 320] *= 0.02
    return audio


def oracle_vad(audio: np.ndarray) -> np.ndarray:
    frames = len(audio) // HOP
    rms = np.sqrt((audio[: frames * HOP].reshape(frames, HOP) ** 2).mean(axis=1))
    return (rms > 0.01).astype(np.float32)


def make_plan(audio, *, fps=Fraction(24), grid=FrameGrid(8, 64), settings=None, chaining="tail", context=9, sr=SR):
    settings = settings or PlannerSettings(max_segment_s=20, min_segment_s=4, target_segment_s=12, min_pause_ms=250)
    return plan_voiceover(
        duration_samples=len(audio), sample_rate_hz=sr, trim_start_sample=0, audio_16k=audio, vad_probs=oracle_vad(audio),
        vad_hop_samples=HOP, vad_name="oracle", settings=settings, grid=grid, fps=fps, width=1088, height=1920,
        chaining=chaining, context_frames=context,
    )


def random_speech(total_s: float, seed: int) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Speech runs of 1.5–7 s separated by pauses of 0.3–1.2 s; returns audio and the pause spans."""
    rng = np.random.default_rng(seed)
    spans, pauses, t = [], [], 0.4
    while t < total_s - 1:
        end = min(total_s - 0.5, t + rng.uniform(1.5, 7))
        spans.append((t, end))
        gap = rng.uniform(0.3, 1.2)
        pauses.append((end, end + gap))
        t = end + gap
    return layout_audio(spans, total_s, seed), pauses[:-1]


def assert_invariants(plan: Plan, max_s: float = 20.0):
    plan.validate(max_segment_s=max_s)  # tiling, grid, audio span
    assert plan.segments[0].start_frame == 0
    assert plan.segments[-1].end_frame == plan.total_frames
    for a, b in zip(plan.segments, plan.segments[1:]):
        assert a.end_frame == b.start_frame
    for s in plan.segments:
        assert (s.gen_frames - 1) % plan.frame_grid == 0 and s.gen_frames >= plan.frame_grid + 1
        assert Fraction(s.gen_frames) / plan.fps <= max_s
        assert s.audio_end_sample - s.audio_start_sample == frame_to_sample(s.gen_end_frame, plan.fps, plan.sample_rate_hz) - frame_to_sample(s.gen_start_frame, plan.fps, plan.sample_rate_hz)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("fps", [Fraction(24), Fraction(25), Fraction(30)])
def test_random_layouts_tile_fit_the_grid_and_cut_inside_pauses(seed, fps):
    audio, pauses = random_speech(150, seed)
    plan = make_plan(audio, fps=fps)
    assert_invariants(plan)
    assert len(plan.segments) >= 150 / 20
    for seg in plan.segments[:-1]:
        assert seg.cut == "pause"
        t = seg.end_frame / float(fps)
        assert any(a <= t <= b for a, b in pauses), f"cut at {t:.3f}s is not inside a pause"
        assert seg.owned_frames / float(fps) >= 4.0


def test_exact_cuts_when_only_two_pauses_fit():
    # 36 s of speech with pauses only at 12.0–12.6 s and 24.0–24.6 s: a 20-s limit forces exactly those cuts.
    audio = layout_audio([(0.2, 12.0), (12.6, 24.0), (24.6, 36.0)], 36.2)
    plan = make_plan(audio)
    assert_invariants(plan)
    cuts = [s.end_frame / 24 for s in plan.segments[:-1]]
    assert len(cuts) == 2
    assert 12.0 < cuts[0] < 12.6 and 24.0 < cuts[1] < 24.6
    assert [s.cut for s in plan.segments] == ["pause", "pause", "end"]
    assert all(abs(s.pause_ms - 600) <= 42 for s in plan.segments[:-1])  # measured on the frame grid


def test_longer_pause_wins_between_equal_lengths():
    # Two pauses 0.5 s apart near the target: the 1.0-s pause must be chosen over the 0.3-s one.
    audio = layout_audio([(0.2, 11.5), (11.8, 12.3), (13.3, 24.0)], 24.3)
    plan = make_plan(audio, settings=PlannerSettings(20, 4, 12, 250))
    assert len(plan.segments) == 2
    t = plan.segments[0].end_frame / 24
    assert 12.3 < t < 13.3


def test_pauses_shorter_than_min_pause_are_not_pause_cuts():
    # Only 150-ms gaps: below min_pause_ms, so every cut is forced.
    spans, t = [], 0.2
    while t < 40:
        spans.append((t, t + 5.0))
        t += 5.15
    audio = layout_audio(spans, 46)
    plan = make_plan(audio, settings=PlannerSettings(20, 4, 12, 250))
    assert_invariants(plan)
    assert all(s.cut == "forced" for s in plan.segments[:-1])


def test_forced_cut_is_flagged_warned_and_at_the_quietest_point():
    # 50 s of speech with no pause at all, but short energy dips at known times.
    dips = [9.0, 17.5, 26.0, 34.5, 43.0]
    audio = layout_audio([(0.1, 50.0)], 50.1, dips=dips)
    plan = make_plan(audio)
    assert_invariants(plan)
    forced = [s for s in plan.segments if s.cut == "forced"]
    assert forced and len(forced) == len(plan.segments) - 1
    assert len(plan.warnings) == len(forced)
    for seg in forced:
        t = seg.end_frame / 24
        assert min(abs(t - d) for d in dips) <= 1 / 24 + 0.03, f"forced cut at {t:.3f}s misses every dip"
        stamp = f"0:{int(t):02d}"
        assert any(stamp in w and "forced cut" in w for w in plan.warnings)


def test_forced_cuts_only_where_no_pause_path_exists():
    # A pause-free 30-s stretch in the middle of paused speech: forced cuts appear only inside it.
    spans = [(0.2, 6), (6.5, 12), (12.5, 42.5), (43.0, 49), (49.5, 55)]
    audio = layout_audio(spans, 55.3, dips=[20.0, 27.5, 35.0])
    plan = make_plan(audio)
    assert_invariants(plan)
    for seg in plan.segments[:-1]:
        t = seg.end_frame / 24
        if seg.cut == "forced":
            assert 12.5 < t < 42.5
        else:
            assert seg.cut == "pause"
    assert any(s.cut == "forced" for s in plan.segments)


@pytest.mark.parametrize("grid", [FrameGrid(8, 32), FrameGrid(4, 16), FrameGrid(6, 8)])
def test_grid_comes_from_the_generator(grid):
    audio, _ = random_speech(80, 3)
    plan = make_plan(audio, grid=grid, context=grid.frame_grid + 1)
    assert plan.frame_grid == grid.frame_grid and plan.spatial_multiple == grid.spatial_multiple
    assert_invariants(plan)
    assert all((s.gen_frames - 1) % grid.frame_grid == 0 for s in plan.segments)


def test_most_segments_land_exactly_on_the_grid():
    # Candidates span a grid period inside each pause, so little is generated in vain.
    audio, _ = random_speech(180, 11)
    plan = make_plan(audio)
    waste = sum(s.gen_frames - s.owned_frames - s.context_frames for s in plan.segments)
    assert waste / plan.total_frames < 0.02


def test_max_segment_s_is_respected_including_context():
    audio, _ = random_speech(120, 5)
    plan = make_plan(audio, settings=PlannerSettings(10, 3, 7, 250), context=17)
    assert_invariants(plan, max_s=10)
    assert all(s.gen_frames <= 241 for s in plan.segments)
    assert all(s.context_frames == 17 for s in plan.segments[1:])


@pytest.mark.parametrize("chaining,context,expected", [("tail", 9, 9), ("last-frame", 9, 1), ("anchor", 9, 8), ("bookend", 9, 0)])
def test_context_per_chaining_mode(chaining, context, expected):
    assert context_frames_for(chaining, context, 8, FrameGrid(8, 32)) == expected


def test_bookend_plan_has_no_context_and_follows_the_backends_frame_limit():
    audio, _ = random_speech(120, 5)
    plan = make_plan(audio, chaining="bookend", context=0, grid=FrameGrid(8, 32, max_frames=241))
    assert_invariants(plan)
    assert plan.chaining == "bookend"
    assert all(s.context_frames == 0 and s.gen_start_frame == s.start_frame for s in plan.segments)
    assert max(s.gen_frames for s in plan.segments) <= 241  # the endpoint's limit, below max_segment_s' 473
    assert max(s.gen_frames for s in make_plan(audio, chaining="bookend", context=0).segments) > 241


def test_tail_context_must_sit_on_the_grid():
    with pytest.raises(ConfigError) as err:
        context_frames_for("tail", 12, 8, FrameGrid(8, 32))
    assert "segmenter.context_frames" in str(err.value) and "use 9 or 17" in str(err.value)


def test_no_speech_is_a_media_error():
    audio = np.zeros(SR * 30, dtype=np.float32)
    with pytest.raises(MediaError, match="no speech"):
        make_plan(audio)


def test_too_short_is_a_media_error():
    with pytest.raises(MediaError, match="at least"):
        make_plan(layout_audio([(0.0, 0.2)], 0.3))


def test_short_voiceover_is_one_segment():
    plan = make_plan(layout_audio([(0.1, 2.5)], 2.6))
    assert len(plan.segments) == 1 and plan.segments[0].cut == "end"
    assert plan.total_frames == round(2.6 * 24)


def test_total_frames_uses_master_rate():
    audio = layout_audio([(0.1, 9.9)], 10.0)
    # same audio described at 44.1 kHz master rate: total_frames follows duration_samples/sample_rate
    plan = plan_voiceover(
        duration_samples=441_000 + 1000, sample_rate_hz=44_100, trim_start_sample=123, audio_16k=audio, vad_probs=oracle_vad(audio),
        vad_hop_samples=HOP, vad_name="oracle", settings=PlannerSettings(20, 4, 12, 250), grid=FrameGrid(8, 32),
        fps=Fraction(25), width=1088, height=1920, chaining="tail", context_frames=9,
    )
    assert plan.total_frames == round((442_000 / 44_100) * 25)
    assert plan.trim_start_sample == 123
    assert plan.segments[-1].audio_end_sample == frame_to_sample(plan.segments[-1].gen_end_frame, Fraction(25), 44_100)


def test_plan_json_round_trip_is_stable():
    audio, _ = random_speech(60, 2)
    plan = make_plan(audio)
    text = plan.to_json()
    again = Plan.from_dict(__import__("json").loads(text))
    assert again == plan
    assert again.to_json() == text
    data = __import__("json").loads(text)
    assert data["version"] == 1 and data["fps"] == "24/1"
    assert set(data["segments"][0]) >= {"index", "start_frame", "end_frame", "context_frames", "gen_frames", "audio_start_sample", "audio_end_sample", "cut", "pause_ms"}


def test_plan_validation_names_the_broken_rule():
    audio, _ = random_speech(60, 2)
    data = make_plan(audio).to_dict()
    data["segments"][1]["start_frame"] += 1
    with pytest.raises(ConfigError, match="tile"):
        Plan.from_dict(data)


def test_find_pauses_and_generation_size():
    probs = np.array([1, 0, 0, 1, 1, 0, 1, 0], dtype=np.float32)
    assert find_pauses(probs, 0.5) == [(1, 3), (5, 6), (7, 8)]
    assert generation_size(1080, 1920, 64) == (1088, 1920)
    assert generation_size(540, 960, 2) == (540, 960)


@pytest.mark.parametrize("sentence_end_s, expected", [(11.3, (11.0, 11.6)), (12.7, (12.4, 13.0))])
def test_an_equal_pause_at_a_sentence_end_wins(sentence_end_s, expected):
    # Two 0.6-s pauses either side of the 12-s target: the one holding the script's sentence end is the cut.
    audio = layout_audio([(0.2, 11.0), (11.6, 12.4), (13.0, 24.0)], 24.3)
    settings = PlannerSettings(20, 4, 12, 250)
    ends = [round(sentence_end_s * 24), round(5.0 * 24), round(20.0 * 24)]  # other sentence ends sit in no pause
    plan = plan_voiceover(
        duration_samples=len(audio), sample_rate_hz=SR, trim_start_sample=0, audio_16k=audio, vad_probs=oracle_vad(audio),
        vad_hop_samples=HOP, vad_name="oracle", settings=settings, grid=FrameGrid(8, 64), fps=Fraction(24), width=1088, height=1920,
        chaining="tail", context_frames=9, sentence_end_frames=ends,
    )
    assert len(plan.segments) == 2
    assert expected[0] < plan.segments[0].end_frame / 24 < expected[1]
