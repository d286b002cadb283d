"""Audio ingest: every format, the master track's level and span, the warnings, and the refusals.

Media come from tests/media_audio.py, with sounds at known sample positions.
Tolerances: lossless formats decode sample-exact; the leading-silence trim is
found on a 10-ms grid behind 5-ms fade-ins, so it is checked to ±15 ms
(±25 ms for lossy codecs, whose pre-echo smears an onset).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile

from orchestrator.config import AudioConfig
from orchestrator.errors import MediaError
from segmenters.ingest import (
    count_clipped_runs,
    ingest_audio,
    integrated_loudness,
    probe_audio,
    true_peak_dbtp,
    write_master_wav,
)
from tests.media_audio import (
    FORMATS,
    Noise,
    Silence,
    Speech,
    Tone,
    make_track,
    lufs,
    true_peak_dbtp_reference,
    truncate_copy,
    write_audio,
    write_png,
    write_track,
    write_video_only_mp4,
)

CFG = AudioConfig()
TRIM_TOLERANCE_S = 0.015
LOSSY_TRIM_TOLERANCE_S = 0.025
SENTENCES = (
    "Welcome to this short explainer about long videos.",
    "We cut the voice at natural pauses, and generate each piece in turn.",
    "Then the pieces are joined, and nobody can see the seams.",
)


def burst_track(sample_rate_hz: int = 44100, channels: int = 1):
    """Sound starts at exactly 1.0 s: a tone, a pause, a noise burst, a tail of silence."""
    return make_track([Silence(1.0), Tone(1.0, 440.0, 0.4), Silence(0.6), Noise(1.0, 0.1), Silence(0.8)], sample_rate_hz, channels)


def expected_trim_sample(track, lead_in_ms: int = CFG.lead_in_ms) -> int:
    return max(0, track.first_sound_sample - round(lead_in_ms * track.sample_rate_hz / 1000))


def warnings_about(master, word: str) -> list[str]:
    return [w for w in master.warnings if word in w]


# ------------------------------------------------------------------------------------
# formats, channels, sample rates
# ------------------------------------------------------------------------------------


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("fmt", list(FORMATS))
def test_reads_every_format(tmp_path: Path, fmt: str, channels: int) -> None:
    spec = FORMATS[fmt]
    track = burst_track(44100, channels)
    path = write_track(track, tmp_path / "voice", fmt)

    master = ingest_audio(path, CFG)

    assert (master.source.codec, master.source.lossy) == (spec.codec, spec.lossy)
    assert master.source.channels == channels and master.samples.shape[1] == channels
    assert master.sample_rate_hz == master.source.sample_rate_hz == 44100
    assert master.samples.dtype == np.float32 and master.samples.flags.c_contiguous
    decoded_samples = master.trim_start_sample + master.duration_samples
    tolerance_s = LOSSY_TRIM_TOLERANCE_S if spec.lossy else TRIM_TOLERANCE_S
    assert abs(master.trim_start_sample - expected_trim_sample(track)) <= tolerance_s * 44100
    gain = 10 ** (master.gain_db / 20)
    if spec.lossy:
        # codec delay must be compensated: the waveform lines up with the original, sample for sample
        assert abs(decoded_samples - track.n_samples) <= 1100  # AAC pads up to one frame at the end
        original = track.samples[master.trim_start_sample :]
        n = min(original.shape[0], master.duration_samples)
        for c in range(channels):
            assert np.corrcoef(original[:n, c], master.samples[:n, c])[0, 1] > 0.97
    else:
        assert decoded_samples == track.n_samples
        reference, _ = soundfile.read(str(path), dtype="float32", always_2d=True)  # an independent decoder
        np.testing.assert_allclose(master.samples, reference[master.trim_start_sample :] * gain, rtol=0, atol=2e-6)
    assert abs(lufs(master.samples, 44100) - CFG.target_lufs) <= 0.5
    assert true_peak_dbtp_reference(master.samples) <= CFG.true_peak_dbtp + 0.1
    assert not warnings_about(master, "clipping") and not warnings_about(master, "sample rate")


@pytest.mark.parametrize(
    ("fmt", "sample_rate_hz"),
    [("wav16", 8000), ("wav16", 11025), ("ogg", 11025), ("wav16", 22050), ("mp3", 22050), ("flac", 32000), ("wav24", 48000), ("m4a", 48000), ("flac", 96000)],
)
def test_odd_sample_rates_keep_their_rate_and_feed_a_16k_copy(tmp_path: Path, fmt: str, sample_rate_hz: int) -> None:
    track = burst_track(sample_rate_hz, 1)
    master = ingest_audio(write_track(track, tmp_path / "voice", fmt), CFG)

    assert master.sample_rate_hz == sample_rate_hz
    assert master.vad_16k.dtype == np.float32 and master.vad_16k.ndim == 1
    assert abs(master.vad_16k.shape[0] - master.duration_samples * 16000 / sample_rate_hz) <= 1
    # the 16 kHz copy starts where the master starts: sound begins one lead-in in
    first_sound_16k = np.flatnonzero(np.abs(master.vad_16k) > 0.05 * np.abs(master.vad_16k).max())[0]
    expected_16k = (track.first_sound_sample - master.trim_start_sample) * 16000 / sample_rate_hz
    assert abs(first_sound_16k - expected_16k) <= 0.02 * 16000
    assert bool(warnings_about(master, "sample rate")) == (sample_rate_hz < 16000)


def test_vad_copy_is_the_master_mixed_to_mono_at_16k(tmp_path: Path) -> None:
    track = make_track([Silence(0.5), Tone(2.0, 1000.0, 0.3), Silence(0.5)], 44100, channels=2)
    master = ingest_audio(write_track(track, tmp_path / "voice", "wav24"), CFG)

    mono = master.samples.mean(axis=1)
    rms_master = math.sqrt(float(np.mean(mono.astype(np.float64) ** 2)))
    rms_vad = math.sqrt(float(np.mean(master.vad_16k.astype(np.float64) ** 2)))
    assert abs(20 * math.log10(rms_vad / rms_master)) < 0.1  # same gain, same span, no level change


def test_phase_inverted_stereo_still_gives_the_vad_a_signal(tmp_path: Path) -> None:
    track = make_track([Silence(0.5), Noise(2.0, 0.1), Silence(0.5)], 44100)
    inverted = np.stack([track.samples[:, 0], -track.samples[:, 0]], axis=1)
    master = ingest_audio(write_audio(tmp_path / "voice", inverted, 44100, "wav24"), CFG)

    assert warnings_about(master, "phase-inverted")
    assert np.sqrt(np.mean(master.vad_16k**2)) > 0.5 * np.sqrt(np.mean(master.samples[:, 0] ** 2))


def test_libsndfile_reads_what_ffmpeg_cannot(tmp_path: Path) -> None:
    track = burst_track(16000, 1)
    path = tmp_path / "voice.mat"
    soundfile.write(str(path), track.samples, 16000, format="MAT5", subtype="PCM_16")  # MATLAB 5: no FFmpeg demuxer

    master = ingest_audio(path, CFG)

    assert master.source.decoder == "libsndfile"
    assert master.trim_start_sample + master.duration_samples == track.n_samples
    reference, _ = soundfile.read(str(path), dtype="float32", always_2d=True)
    np.testing.assert_allclose(master.samples, reference[master.trim_start_sample :] * 10 ** (master.gain_db / 20), atol=2e-6)


def test_probe_reports_what_the_container_says(tmp_path: Path) -> None:
    track = burst_track(48000, 2)
    mp3 = probe_audio(write_track(track, tmp_path / "a", "mp3"))
    m4a = probe_audio(write_track(track, tmp_path / "b", "m4a"))
    wav = probe_audio(write_track(track, tmp_path / "c", "wav16"))

    assert (mp3.container, mp3.codec, mp3.lossy, mp3.bit_rate_bps, mp3.channels, mp3.sample_rate_hz) == ("mp3", "mp3", True, 192000, 2, 48000)
    assert (m4a.container, m4a.codec, m4a.lossy) == ("m4a", "aac", True)
    assert (wav.container, wav.codec, wav.lossy, wav.bit_rate_bps) == ("wav", "pcm_s16le", False, 48000 * 2 * 16)
    assert wav.duration_s == pytest.approx(track.duration_s, abs=1e-6)
    assert mp3.duration_s == pytest.approx(track.duration_s, abs=0.03)


# ------------------------------------------------------------------------------------
# loudness and true peak
# ------------------------------------------------------------------------------------


@pytest.mark.parametrize("target_lufs", [-14.0, -23.0, -30.0])
@pytest.mark.parametrize("amplitude", [0.005, 0.2, 0.9])
def test_loudness_is_normalised_to_the_target(tmp_path: Path, target_lufs: float, amplitude: float) -> None:
    track = make_track([Silence(0.3), Tone(3.0, 500.0, amplitude), Silence(0.3)], 48000)
    cfg = AudioConfig(target_lufs=target_lufs)
    master = ingest_audio(write_track(track, tmp_path / "voice", "wav24"), cfg)

    source_lufs = lufs(track.samples[master.trim_start_sample :], 48000)
    assert master.lufs_before == pytest.approx(source_lufs, abs=0.05)
    assert abs(lufs(master.samples, 48000) - target_lufs) <= 0.5
    assert master.lufs_after == pytest.approx(target_lufs, abs=0.05)
    assert master.gain_db == pytest.approx(master.lufs_after - master.lufs_before, abs=0.01)
    assert true_peak_dbtp_reference(master.samples) <= cfg.true_peak_dbtp + 0.1
    assert not warnings_about(master, "ceiling")


def test_true_peak_ceiling_reduces_the_gain_instead_of_clipping(tmp_path: Path) -> None:
    # a quiet hum with loud spikes: reaching -14 LUFS would push the spikes far past full scale
    track = make_track([Silence(0.2), Tone(3.0, 200.0, 0.01), Silence(0.2)], 48000)
    samples = track.samples.copy()
    samples[track.first_sound_sample + 4800 :: 9600, 0] = 0.6
    cfg = AudioConfig(target_lufs=-14.0, true_peak_dbtp=-1.0)
    master = ingest_audio(write_audio(tmp_path / "voice", samples, 48000, "wav24"), cfg)

    assert warnings_about(master, "ceiling")
    assert master.true_peak_dbtp == pytest.approx(-1.0, abs=0.01)
    assert true_peak_dbtp_reference(master.samples) <= -1.0 + 0.1
    assert master.lufs_after < cfg.target_lufs - 3
    assert lufs(master.samples, 48000) == pytest.approx(master.lufs_after, abs=0.05)
    # a plain gain: the spikes keep their shape (nothing was limited)
    np.testing.assert_allclose(master.samples, samples[master.trim_start_sample :] * 10 ** (master.gain_db / 20), atol=1e-6)


@pytest.mark.parametrize("channels", [1, 2, 5])
def test_integrated_loudness_agrees_with_pyloudnorm(channels: int) -> None:
    track = make_track([Silence(0.7), Speech(SENTENCES[0]), Silence(0.4), Noise(1.3, 0.05)], 44100, channels=channels, noise_floor_dbfs=-60)
    assert integrated_loudness(track.samples, 44100) == pytest.approx(lufs(track.samples, 44100), abs=0.05)


def test_true_peak_finds_the_peak_between_samples() -> None:
    # a sine at a quarter of the sample rate, sampled 45° off its crests: every sample is 3 dB under the peak
    n = np.arange(48000)
    samples = (0.8 * np.sin(2 * np.pi * n / 4 + np.pi / 4)).astype(np.float32)
    assert 20 * math.log10(np.abs(samples).max()) == pytest.approx(20 * math.log10(0.8) - 3.01, abs=0.01)
    assert true_peak_dbtp(samples, 48000) == pytest.approx(20 * math.log10(0.8), abs=0.1)


@pytest.mark.parametrize("kind", ["speech", "noise", "stereo"])
def test_true_peak_agrees_with_plain_oversampling(kind: str) -> None:
    # Content up to 15 kHz: any 4× meter under-reads energy right at Nyquist (by up to 0.7 dB, BS.1770-4 Annex 2).
    parts = {"speech": [Speech(SENTENCES[1])], "noise": [Noise(2.0, 0.2, lowpass_hz=15000.0)], "stereo": [Tone(0.5, 3000.0), Speech(SENTENCES[2])]}[kind]
    track = make_track(parts, 44100, channels=2 if kind == "stereo" else 1)
    assert true_peak_dbtp(track.samples, 44100) == pytest.approx(true_peak_dbtp_reference(track.samples), abs=0.15)


# ------------------------------------------------------------------------------------
# leading-silence trim
# ------------------------------------------------------------------------------------


@pytest.mark.parametrize("lead_in_ms", [0, 100, 250, 1000, 3000])
def test_trim_keeps_the_lead_in(tmp_path: Path, lead_in_ms: int) -> None:
    track = make_track([Silence(1.5), Tone(1.0, 300.0, 0.3), Silence(0.5)], 22050)
    master = ingest_audio(write_track(track, tmp_path / "voice", "wav16"), AudioConfig(lead_in_ms=lead_in_ms))

    assert abs(master.trim_start_sample - expected_trim_sample(track, lead_in_ms)) <= TRIM_TOLERANCE_S * 22050
    assert master.duration_samples == track.n_samples - master.trim_start_sample


def test_trim_can_be_turned_off(tmp_path: Path) -> None:
    track = burst_track(22050)
    master = ingest_audio(write_track(track, tmp_path / "voice", "wav16"), AudioConfig(trim_leading_silence=False))
    assert master.trim_start_sample == 0 and master.duration_samples == track.n_samples


@pytest.mark.parametrize(
    ("label", "peak", "noise_floor_dbfs"),
    [("studio", 0.5, None), ("quiet", 0.004, -90.0), ("noisy room", 0.5, -40.0)],
)
def test_trim_finds_speech_onset_relative_to_the_recordings_own_level(tmp_path: Path, label: str, peak: float, noise_floor_dbfs: float | None) -> None:
    track = make_track([Silence(2.0), Speech(SENTENCES[0], peak=peak), Silence(1.0)], 44100, noise_floor_dbfs=noise_floor_dbfs)
    master = ingest_audio(write_track(track, tmp_path / "voice", "wav24"), CFG)

    assert abs(master.trim_start_sample - expected_trim_sample(track)) <= 0.03 * 44100, label
    assert bool(warnings_about(master, "very quiet")) == (label == "quiet")


def test_trim_ignores_a_click_before_the_speech(tmp_path: Path) -> None:
    track = make_track([Silence(0.3), Tone(0.004, 2000.0, 0.8, ramp_ms=0.5), Silence(1.2), Tone(1.0, 300.0, 0.3), Silence(0.3)], 44100)
    master = ingest_audio(write_track(track, tmp_path / "voice", "wav16"), CFG)
    onset = track.events[3].start_sample
    assert abs(master.trim_start_sample - (onset - round(0.25 * 44100))) <= TRIM_TOLERANCE_S * 44100


# ------------------------------------------------------------------------------------
# warnings
# ------------------------------------------------------------------------------------


def test_clipping_is_counted_in_flat_runs() -> None:
    t = np.arange(44100) / 44100
    clean = np.sin(2 * np.pi * 100 * t)  # touches full scale at each crest, never flat
    clipped = np.clip(1.5 * np.sin(2 * np.pi * 100 * t), -1.0, 1.0)
    quantised_clean = (np.round(clean * 32767) / 32768).astype(np.float32)[:, None]

    assert count_clipped_runs(quantised_clean)[0] == 0
    count, first = count_clipped_runs(clipped.astype(np.float32)[:, None])
    assert count == 200  # 100 cycles, a flat top and a flat bottom each
    assert first == pytest.approx(math.asin(1 / 1.5) / (2 * math.pi * 100) * 44100, abs=2)  # where the first crest hits the rail


def test_clipping_warning(tmp_path: Path) -> None:
    track = make_track([Silence(0.5), Tone(1.0, 150.0, 1.6), Silence(0.5)], 44100)
    clipped = np.clip(track.samples, -1.0, 1.0)
    master = ingest_audio(write_audio(tmp_path / "clipped", clipped, 44100, "wav16"), CFG)
    clean = ingest_audio(write_audio(tmp_path / "clean", track.samples / 1.6, 44100, "wav16"), CFG)

    [warning] = warnings_about(master, "clipping")
    assert re.search(r"\b(29[0-9]|30[0-9])\b flat run", warning)  # ~150 cycles × 2 flat runs
    assert "0:00.5" in warning  # the first run is just after the 0.5-s silence
    assert not warnings_about(clean, "clipping")


def test_more_than_two_channels_are_mixed_to_mono_with_a_word(tmp_path: Path) -> None:
    eight = ingest_audio(write_track(burst_track(44100, 8), tmp_path / "eight", "wav16"), CFG)
    [warning] = warnings_about(eight, "channels")
    assert "8 audio channels" in warning and "mono" in warning and "equal weight" in warning
    stereo = ingest_audio(write_track(burst_track(44100, 2), tmp_path / "two", "wav16"), CFG)
    assert not warnings_about(stereo, "audio channels")


@pytest.mark.parametrize(
    ("fmt", "channels", "bitrate", "warned"),
    [("mp3_low", 2, None, True), ("mp3", 2, None, False), ("mp3", 1, "96k", False), ("mp3", 1, "48k", True), ("m4a", 2, "64k", True)],
)
def test_low_bitrate_warning(tmp_path: Path, fmt: str, channels: int, bitrate: str | None, warned: bool) -> None:
    track = make_track([Silence(0.5), Speech(SENTENCES[1]), Noise(0.5, 0.05)], 44100, channels=channels)
    master = ingest_audio(write_track(track, tmp_path / "voice", fmt, bitrate=bitrate), CFG)
    found = warnings_about(master, "low bitrate")
    assert bool(found) == warned
    if fmt == "mp3_low":
        assert "32 kbps" in found[0]


def test_long_silences_are_named_with_their_times(tmp_path: Path) -> None:
    track = make_track([Silence(0.5), Tone(1.0), Silence(4.0), Tone(1.0), Silence(2.5), Tone(1.0), Silence(3.5)], 16000)
    master = ingest_audio(write_track(track, tmp_path / "voice", "wav16"), CFG)

    [warning] = warnings_about(master, "longer than 3 s")
    spans = re.findall(r"(\d+):(\d\d\.\d\d)–(\d+):(\d\d\.\d\d)", warning)
    found = [(int(a) * 60 + float(b), int(c) * 60 + float(d)) for a, b, c, d in spans]
    expected = [(1.5, 5.5), (10.0, 13.5)]  # the 2.5-s gap is not long; the trailing 3.5 s is
    assert len(found) == len(expected)
    for (start, end), (want_start, want_end) in zip(found, expected):
        assert abs(start - want_start) <= 0.03 and abs(end - want_end) <= 0.03


def test_leading_silence_is_reported_only_when_it_is_kept(tmp_path: Path) -> None:
    path = write_track(make_track([Silence(3.5), Tone(1.0), Silence(0.2)], 16000), tmp_path / "voice", "wav16")
    assert not warnings_about(ingest_audio(path, CFG), "longer than 3 s")
    assert warnings_about(ingest_audio(path, AudioConfig(trim_leading_silence=False)), "longer than 3 s")


def test_max_duration_warning(tmp_path: Path) -> None:
    path = write_track(burst_track(16000), tmp_path / "voice", "wav16")
    assert warnings_about(ingest_audio(path, AudioConfig(max_duration_s=2.0)), "max_duration_s")
    assert not warnings_about(ingest_audio(path, AudioConfig(max_duration_s=10.0)), "max_duration_s")


def test_warnings_are_logged_too(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write_track(burst_track(11025), tmp_path / "voice", "wav16")
    with caplog.at_level("WARNING", logger="longtake"):
        master = ingest_audio(path, CFG)
    assert master.warnings and all(w in caplog.messages for w in master.warnings)


# ------------------------------------------------------------------------------------
# refusals: MediaError, exit code 3, the file named
# ------------------------------------------------------------------------------------


def _missing(d: Path) -> Path:
    return d / "nope.wav"


def _directory(d: Path) -> Path:
    (d / "folder.wav").mkdir()
    return d / "folder.wav"


def _empty(d: Path) -> Path:
    (d / "empty.wav").write_bytes(b"")
    return d / "empty.wav"


def _header_only(d: Path) -> Path:
    return write_audio(d / "header", np.zeros(0, dtype=np.float32), 16000, "wav16")


def _truncated(fmt: str):
    def make(d: Path) -> Path:
        whole = write_track(burst_track(44100, 2), d / f"whole-{fmt}", fmt)
        return truncate_copy(whole, d / f"cut{whole.suffix}", 0.5)

    return make


def _random_bytes(d: Path) -> Path:
    (d / "noise.wav").write_bytes(np.random.default_rng(0).bytes(20000))
    return d / "noise.wav"


def _silent(level_dbfs: float | None):
    def make(d: Path) -> Path:
        track = make_track([Silence(3.0)], 16000, noise_floor_dbfs=level_dbfs)
        return write_track(track, d / "silent", "wav_float")

    return make


def _too_short(d: Path) -> Path:
    return write_track(make_track([Tone(0.2)], 16000), d / "short", "wav16")


def _nan(d: Path) -> Path:
    samples = burst_track(16000).samples.copy()
    samples[20000] = np.nan
    return write_audio(d / "nan", samples, 16000, "wav_float")


REFUSALS = {
    "missing": (_missing, "not found"),
    "directory": (_directory, "not a file"),
    "empty": (_empty, "empty"),
    "header only": (_header_only, "no audio samples"),
    "truncated wav": (_truncated("wav16"), "truncated"),
    "truncated flac": (_truncated("flac"), "truncated"),
    "truncated mp3": (_truncated("mp3"), "truncated"),
    "truncated m4a": (_truncated("m4a"), "cannot be read"),
    "random bytes": (_random_bytes, "cannot be read"),
    "png named .wav": (lambda d: write_png(d / "portrait.wav"), "it is an image"),
    "video only": (lambda d: write_video_only_mp4(d / "clip.mp4"), "no audio stream"),
    "digital silence": (_silent(None), "silent"),
    "hiss below the floor": (_silent(-75.0), "silent"),
    "too short": (_too_short, "at least 0.4 s"),
    "nan samples": (_nan, "NaN"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_unusable_files_are_refused_clearly(tmp_path: Path, case: str) -> None:
    make, phrase = REFUSALS[case]
    path = make(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())

    with pytest.raises(MediaError) as caught:
        ingest_audio(path, CFG)

    assert caught.value.exit_code == 3
    message = str(caught.value)
    assert str(path) in message and phrase in message
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written


def _damaged_copy(tmp_path: Path, fmt: str) -> Path:
    """600 bytes of garbage in the middle of an encoded 4-s tone (a bad sector, a broken transfer)."""
    track = make_track([Silence(0.5), Tone(3.0, 300.0, 0.3), Silence(0.5)], 44100, channels=2)
    data = bytearray(write_track(track, tmp_path / "whole", fmt).read_bytes())
    middle = len(data) // 2
    data[middle : middle + 600] = np.random.default_rng(0).bytes(600)
    damaged = tmp_path / f"damaged{FORMATS[fmt].suffix}"
    damaged.write_bytes(bytes(data))
    return damaged


@pytest.mark.parametrize(("fmt", "phrase"), [("mp3", "damaged packet"), ("flac", "fewer samples decoded")])
def test_damage_in_the_middle_is_a_warning(tmp_path: Path, fmt: str, phrase: str) -> None:
    master = ingest_audio(_damaged_copy(tmp_path, fmt), CFG)
    assert warnings_about(master, phrase)


def test_damage_that_loses_much_audio_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="truncated or damaged"):
        ingest_audio(_damaged_copy(tmp_path, "ogg"), CFG)


def test_probe_refuses_too(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="no audio stream"):
        probe_audio(write_video_only_mp4(tmp_path / "clip.mp4"))


# ------------------------------------------------------------------------------------
# writing the master
# ------------------------------------------------------------------------------------


def test_write_master_wav_round_trips_and_replaces_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    master = ingest_audio(write_track(burst_track(48000, 2), tmp_path / "voice", "wav24"), CFG)
    target = tmp_path / "out" / "master.wav"
    target.parent.mkdir()
    target.write_bytes(b"old")

    write_master_wav(master, target)

    data, rate_hz = soundfile.read(str(target), dtype="float32", always_2d=True)
    assert rate_hz == 48000 and soundfile.info(str(target)).subtype == "FLOAT"
    np.testing.assert_array_equal(data, master.samples)
    assert sorted(p.name for p in target.parent.iterdir()) == ["master.wav"]

    def broken_write(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(soundfile, "write", broken_write)
    with pytest.raises(OSError):
        write_master_wav(master, target)
    np.testing.assert_array_equal(soundfile.read(str(target), dtype="float32", always_2d=True)[0], master.samples)
    assert sorted(p.name for p in target.parent.iterdir()) == ["master.wav"]


# ------------------------------------------------------------------------------------
# a real-length voiceover
# ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def three_minute_voiceover(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """3 minutes of 48 kHz stereo FLAC: 2 s of room tone, sentences with pauses, one silence of ~4 s at 1:30."""
    rate_hz = 48000
    sentences = make_track([p for text in SENTENCES for p in (Speech(text), Silence(0.6))], rate_hz).samples[:, 0]
    first_half = np.tile(sentences, 20)[: 88 * rate_hz]
    gap = np.zeros(4 * rate_hz, dtype=np.float32)
    second_half = np.tile(sentences, 20)[: 180 * rate_hz - 2 * rate_hz - first_half.shape[0] - gap.shape[0]]
    mono = np.concatenate([np.zeros(2 * rate_hz, dtype=np.float32), first_half, gap, second_half])
    mono += (10 ** (-70 / 20) * np.random.default_rng(3).standard_normal(mono.shape[0])).astype(np.float32)
    stereo = np.stack([mono, 0.9 * mono], axis=1)
    path = write_audio(tmp_path_factory.mktemp("long") / "voiceover", stereo, rate_hz, "flac")
    last_voice_s = 2.0 + np.flatnonzero(np.abs(first_half) > 0.01)[-1] / rate_hz  # the silence starts after the last word
    return {"path": path, "n_samples": stereo.shape[0], "silence_s": (last_voice_s, 94.0)}


def test_three_minute_voiceover(three_minute_voiceover: dict) -> None:
    master = ingest_audio(three_minute_voiceover["path"], AudioConfig(target_lufs=-23.0))

    assert master.trim_start_sample + master.duration_samples == three_minute_voiceover["n_samples"] == 180 * 48000
    assert abs(master.trim_start_sample - (2 * 48000 - round(0.25 * 48000))) <= 0.03 * 48000
    assert abs(integrated_loudness(master.samples, 48000) + 23.0) <= 0.5  # pyloudnorm agreement is tested above
    assert master.vad_16k.shape[0] == pytest.approx(master.duration_samples / 3, abs=1)
    [silence] = warnings_about(master, "longer than 3 s")
    [(start_min, start_s, end_min, end_s)] = re.findall(r"(\d+):(\d\d\.\d\d)–(\d+):(\d\d\.\d\d)", silence)
    want_start_s, want_end_s = three_minute_voiceover["silence_s"]
    assert abs(int(start_min) * 60 + float(start_s) - want_start_s) <= 0.03
    assert abs(int(end_min) * 60 + float(end_s) - want_end_s) <= 0.03
    # the target is well under 1 s on an idle 2-core machine; this only guards against a gross regression
