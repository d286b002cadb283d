"""Export presets, and the bitrate ceiling that keeps a file under a platform's size cap."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from orchestrator.config import ExportConfig, StitcherConfig
from orchestrator.errors import ConfigError
from stitchers.clip_io import ClipWriter
from stitchers.export import MB, PRESETS, SIZE_SAFETY, VBV_BUFFER_S, container_overhead_bytes, resolve_export, video_bitrate_for_cap
from stitchers.stitch import stitch
from tests.media_video import make_plan, write_master


def _resolve(total_frames: int = 24 * 60, fps: int = 24, channels: int = 1, **export):
    return resolve_export(ExportConfig(**export), gen_width=1088, gen_height=1920, fps=Fraction(fps), total_frames=total_frames, audio_channels=channels)


def test_social_presets_are_portrait_1080p_with_their_caps() -> None:
    assert {k: (p.width, p.height, p.max_file_mb) for k, p in PRESETS.items()} == {
        "tiktok": (1080, 1920, 250.0),
        "reels": (1080, 1920, 100.0),
        "shorts": (1080, 1920, None),
        "master": (None, None, None),
    }
    s = _resolve(preset="tiktok")
    assert (s.width, s.height, s.cap_bytes) == (1080, 1920, 250 * MB)
    assert s.x264_options()["crf"] == str(PRESETS["tiktok"].crf)
    master = _resolve(preset="master")
    assert (master.width, master.height, master.cap_bytes, master.maxrate_bps) == (1088, 1920, None, None)
    assert master.crf < s.crf  # master is the high-quality one


def test_overrides_win_over_the_preset() -> None:
    s = _resolve(preset="reels", crf=26, x264_preset="slow", width=720, height=1280, max_file_mb=20)
    assert (s.width, s.height, s.crf, s.x264_preset, s.cap_bytes) == (720, 1280, 26, "slow", 20 * MB)
    opts = s.x264_options()
    assert opts["crf"] == "26" and opts["preset"] == "slow" and int(opts["maxrate"]) == s.maxrate_bps
    assert int(opts["bufsize"]) == int(s.maxrate_bps * VBV_BUFFER_S)


@pytest.mark.parametrize("minutes", [0.25, 1, 3, 10])
@pytest.mark.parametrize("preset", ["tiktok", "reels"])
def test_capped_bitrate_provably_fits_the_cap(preset: str, minutes: float) -> None:
    fps = 24
    frames = int(minutes * 60 * fps)
    s = _resolve(total_frames=frames, preset=preset, channels=2)
    duration = frames / fps
    # VBV bound: video bits ≤ maxrate·duration + bufsize. Add audio (5 % over target) and the index bound.
    worst = (s.maxrate_bps * duration + s.bufsize_bits) / 8 + s.audio_bitrate_bps * 1.05 * duration / 8 + container_overhead_bytes(frames, round(duration * 48000))
    assert worst <= s.cap_bytes * (1 - SIZE_SAFETY) + 1
    assert worst > 0.9 * s.cap_bytes * (1 - SIZE_SAFETY)  # and uses the room it has


def test_longer_videos_get_lower_ceilings() -> None:
    rates = [video_bitrate_for_cap(100 * MB, d, audio_bitrate_bps=128_000, frames=d * 24, audio_samples=d * 48000) for d in (30, 60, 180, 600)]
    assert rates == sorted(rates, reverse=True) and rates[-1] > 0


def test_a_cap_that_cannot_be_met_is_refused_with_the_figures_and_the_way_out() -> None:
    with pytest.raises(ConfigError) as err:
        _resolve(total_frames=24 * 60 * 15, preset="reels")  # 15 minutes into 100 MB
    text = str(err.value)
    assert "15:00" in text and "100 MB" in text and "Mbit/s" in text and "preset master" in text and "max_file_mb" in text
    assert err.value.exit_code == 2
    _resolve(total_frames=24 * 60 * 15, preset="tiktok")  # 250 MB holds 15 minutes


def test_fps_outside_a_platform_range_is_a_warning_not_a_resample() -> None:
    s = _resolve(preset="tiktok", fps=15)
    assert s.fps == 15 and any("15 fps" in w for w in s.warnings)


def _noise_clip(path: Path, plan) -> None:
    rng = np.random.default_rng(0)
    with ClipWriter(path, plan.width, plan.height, plan.fps, preset="ultrafast") as w:
        for _ in range(plan.segments[0].gen_frames):
            w.write(rng.integers(0, 256, (plan.height, plan.width, 3), dtype=np.uint8))


def test_a_size_cap_is_met_on_content_that_would_blow_it(tmp_path: Path) -> None:
    plan = make_plan([48], 0, "tail")  # 2 s of pure noise: the worst case for a bitrate
    clip = tmp_path / "noise.mp4"
    _noise_clip(clip, plan)
    wav = write_master(tmp_path / "m.wav", plan)
    cap_mb = 0.08
    common = dict(preset="tiktok", width=plan.width, height=plan.height, x264_preset="ultrafast")
    free = stitch(plan, [clip], wav, tmp_path / "free.mp4", stitcher=StitcherConfig(color_hold="off"), export=ExportConfig(**common, max_file_mb=1000))
    capped = stitch(plan, [clip], wav, tmp_path / "capped.mp4", stitcher=StitcherConfig(color_hold="off"), export=ExportConfig(**common, max_file_mb=cap_mb))
    assert free.size_bytes > 2 * cap_mb * MB  # the content really needs more
    assert capped.size_bytes <= cap_mb * MB
    assert not capped.warnings


def test_an_impossible_cap_fails_before_any_encoding(tmp_path: Path) -> None:
    plan = make_plan([48], 0, "tail")
    clip = tmp_path / "noise.mp4"
    _noise_clip(clip, plan)
    wav = write_master(tmp_path / "m.wav", plan)
    with pytest.raises(ConfigError, match="cannot fit"):
        stitch(plan, [clip], wav, tmp_path / "out.mp4", stitcher=StitcherConfig(), export=ExportConfig(preset="tiktok", width=128, height=224, max_file_mb=0.02))
    assert not (tmp_path / "out.mp4").exists()
