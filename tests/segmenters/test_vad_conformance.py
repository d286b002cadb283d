"""One conformance suite run over every registered VAD backend, plus the registry and backend-specific checks.

Tolerances (stated once, used throughout):
* EDGE_TOLERANCE_MS: a detected speech onset or offset may sit this far from
  the true one. It covers one hop (up to 32 ms), smoothing windows and the
  hangover each detector holds after speech ends (WebRTC's is ~100 ms).
* Silences are checked away from the edges, by EDGE_TOLERANCE_MS at each end;
  there no frame may be called speech.
* Inside speech at least MIN_SPEECH_FRACTION of the frames must be speech
  (speech has short gaps of its own between words).

Speech comes from espeak-ng. Pure tones and noise are only asserted to be
*detected* for backends that react to energy (``SPEECH_SPECIFIC = False``);
every backend must stay silent in the silences between them.
"""

from __future__ import annotations

import logging
import math
import subprocess
import sys

import numpy as np
import pytest

from orchestrator.errors import ConfigError
from segmenters.ingest import integrated_loudness
from segmenters.vad import FALLBACK_VAD, KNOWN_VADS, VAD_BACKENDS, get_vad
from segmenters.vad.base import VadBackend, VadResult
from tests.media_audio import Noise, Silence, Speech, Tone, make_track

RATE_HZ = 16000
THRESHOLD = 0.5
EDGE_TOLERANCE_MS = 150
MIN_SPEECH_FRACTION = 0.8
EDGE_TOLERANCE_SAMPLES = EDGE_TOLERANCE_MS * RATE_HZ // 1000

BACKEND_NAMES = sorted(VAD_BACKENDS)


@pytest.fixture(scope="module", params=BACKEND_NAMES)
def vad(request: pytest.FixtureRequest) -> VadBackend:
    return get_vad(request.param, threshold=THRESHOLD)


@pytest.fixture(scope="module")
def speech_track():
    """Two sentences between silences, over a -65 dBFS room-noise floor."""
    return make_track(
        [
            Silence(1.2),
            Speech("The quick brown fox jumps over the lazy dog."),
            Silence(1.5),
            Speech("Then it runs away into the forest, very quickly."),
            Silence(1.0),
        ],
        RATE_HZ,
        noise_floor_dbfs=-65.0,
    )


@pytest.fixture(scope="module")
def burst_track():
    return make_track(
        [Silence(1.0), Tone(1.0, 440.0, 0.5), Silence(0.8), Noise(1.0, 0.1), Silence(0.9), Tone(0.5, 1000.0, 0.3), Silence(1.0)],
        RATE_HZ,
        noise_floor_dbfs=-70.0,
    )


def frame_range(result: VadResult, start_sample: int, end_sample: int) -> slice:
    """Frames lying entirely inside [start_sample, end_sample)."""
    return slice(-(-start_sample // result.hop_samples), end_sample // result.hop_samples)


def speech_runs(mask: np.ndarray) -> list[tuple[int, int]]:
    edges = np.diff(mask.astype(np.int8), prepend=0, append=0)
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)))


def assert_silent_between(result: VadResult, track, what: str) -> None:
    mask = result.speech_mask(THRESHOLD)
    for start, end in track.spans("silence"):
        inside = mask[frame_range(result, start + EDGE_TOLERANCE_SAMPLES, end - EDGE_TOLERANCE_SAMPLES)]
        assert inside.size > 0 and not inside.any(), f"{result.backend} calls {inside.mean():.0%} of the silence at {start / RATE_HZ:.2f} s ({what}) speech"


def assert_sounds_found(result: VadResult, track, kinds: tuple[str, ...]) -> None:
    mask = result.speech_mask(THRESHOLD)
    runs = speech_runs(mask)
    for start, end in track.spans(*kinds):
        inside = mask[frame_range(result, start, end)]
        assert inside.mean() >= MIN_SPEECH_FRACTION, f"{result.backend}: only {inside.mean():.0%} of the sound at {start / RATE_HZ:.2f} s detected"
        # the run of speech covering this sound starts and ends near its edges
        first = min(s for s, e in runs if e * result.hop_samples > start)
        last = max(e for s, e in runs if s * result.hop_samples < end)
        assert abs(first * result.hop_samples - start) <= EDGE_TOLERANCE_SAMPLES, f"{result.backend}: onset {first * result.hop_samples - start:+d} samples off"
        assert abs(last * result.hop_samples - end) <= EDGE_TOLERANCE_SAMPLES, f"{result.backend}: offset {last * result.hop_samples - end:+d} samples off"


# ------------------------------------------------------------------------------------
# the contract every backend keeps
# ------------------------------------------------------------------------------------


@pytest.mark.parametrize("n_samples", [0, 1, 159, 160, 161, 479, 480, 511, 512, 513, 2 * RATE_HZ + 37])
def test_one_prob_per_hop_covering_every_sample(vad: VadBackend, n_samples: int) -> None:
    audio = (0.1 * np.sin(2 * np.pi * 300 * np.arange(n_samples) / RATE_HZ)).astype(np.float32)
    result = vad.detect(audio)

    assert result.backend == vad.NAME
    assert isinstance(result.hop_samples, int) and result.hop_samples > 0
    assert result.sample_rate_hz == RATE_HZ
    assert result.probs.dtype == np.float32 and result.probs.ndim == 1
    assert result.n_frames == math.ceil(n_samples / result.hop_samples)
    assert result.speech_mask(THRESHOLD).shape == result.probs.shape


def test_hop_does_not_depend_on_the_input(vad: VadBackend, speech_track) -> None:
    hops = {vad.detect(speech_track.mono[:n]).hop_samples for n in (1000, 16000, speech_track.n_samples)}
    assert len(hops) == 1


@pytest.mark.parametrize("signal", ["speech", "full-scale square", "loud noise", "dc offset"])
def test_probs_lie_in_the_unit_interval(vad: VadBackend, speech_track, signal: str) -> None:
    n = 3 * RATE_HZ
    audio = {
        "speech": speech_track.mono,
        "full-scale square": np.sign(np.sin(2 * np.pi * 200 * np.arange(n) / RATE_HZ)),
        "loud noise": np.clip(np.random.default_rng(0).standard_normal(n), -1, 1),
        "dc offset": np.full(n, 0.7),
    }[signal].astype(np.float32)
    probs = vad.detect(audio).probs
    assert np.isfinite(probs).all() and probs.min() >= 0.0 and probs.max() <= 1.0


def test_speech_is_detected_inside_known_speech(vad: VadBackend, speech_track) -> None:
    assert_sounds_found(vad.detect(speech_track.mono), speech_track, ("speech",))


def test_silence_is_detected_in_known_silences(vad: VadBackend, speech_track) -> None:
    assert_silent_between(vad.detect(speech_track.mono), speech_track, "between sentences")


def test_silent_between_tone_and_noise_bursts(vad: VadBackend, burst_track) -> None:
    result = vad.detect(burst_track.mono)
    assert_silent_between(result, burst_track, "between bursts")
    if not vad.SPEECH_SPECIFIC:
        assert_sounds_found(result, burst_track, ("tone", "noise"))


def test_quiet_speech_is_still_speech(vad: VadBackend) -> None:
    # The VAD gets audio normalised to audio.target_lufs, which may be as low as -40 LUFS.
    track = make_track([Silence(1.0), Speech("Speaking softly, but clearly."), Silence(1.0)], RATE_HZ)
    gain = 10 ** ((-40.0 - integrated_loudness(track.mono, RATE_HZ)) / 20)
    quiet = (track.mono * gain + 10 ** (-85 / 20) * np.random.default_rng(2).standard_normal(track.n_samples)).astype(np.float32)
    result = vad.detect(quiet)
    assert_sounds_found(result, track, ("speech",))
    assert_silent_between(result, track, "around quiet speech")


def test_digital_silence_is_not_speech(vad: VadBackend) -> None:
    result = vad.detect(np.zeros(3 * RATE_HZ, dtype=np.float32))
    assert result.n_frames > 0 and not result.speech_mask(THRESHOLD).any()


def test_deterministic(vad: VadBackend, speech_track) -> None:
    first = vad.detect(speech_track.mono).probs
    again = vad.detect(speech_track.mono).probs
    fresh = type(vad)(threshold=THRESHOLD).detect(speech_track.mono).probs
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(first, fresh)


def test_does_not_modify_its_input(vad: VadBackend, speech_track) -> None:
    audio = speech_track.mono.copy()
    vad.detect(audio)
    np.testing.assert_array_equal(audio, speech_track.mono)


@pytest.mark.parametrize(
    "bad",
    [np.zeros((RATE_HZ, 2), dtype=np.float32), np.zeros(RATE_HZ, dtype=np.int16), np.array([0.0, np.nan, 0.0], dtype=np.float32)],
    ids=["stereo", "int16", "nan"],
)
def test_rejects_input_it_cannot_score(vad: VadBackend, bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match=vad.NAME):
        vad.detect(bad)


def test_three_minutes_gives_one_probability_per_hop(vad: VadBackend, speech_track) -> None:
    # Speed is measured by benchmarks/plan_bench.py, not asserted here.
    audio = np.tile(speech_track.mono, math.ceil(180 * RATE_HZ / speech_track.n_samples))[: 180 * RATE_HZ]
    result = vad.detect(audio)
    assert result.n_frames == math.ceil(180 * RATE_HZ / result.hop_samples)


# ------------------------------------------------------------------------------------
# VadResult
# ------------------------------------------------------------------------------------


def test_vad_result_validates_its_fields() -> None:
    with pytest.raises(ValueError, match="hop_samples"):
        VadResult("x", 0, np.zeros(3, dtype=np.float32))
    with pytest.raises(ValueError, match="float32"):
        VadResult("x", 160, np.zeros(3, dtype=np.float64))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        VadResult("x", 160, np.array([0.2, 1.5], dtype=np.float32))
    result = VadResult("x", 160, np.array([0.2, 0.5, 0.9], dtype=np.float32))
    assert result.speech_mask(0.5).tolist() == [False, True, True]
    assert result.frame_start_samples().tolist() == [0, 160, 320]


# ------------------------------------------------------------------------------------
# the registry
# ------------------------------------------------------------------------------------


def test_registry_holds_the_importable_backends() -> None:
    assert set(VAD_BACKENDS) <= set(KNOWN_VADS) == {"silero", "webrtc", "energy"}
    assert FALLBACK_VAD in VAD_BACKENDS
    for name, cls in VAD_BACKENDS.items():
        assert cls.NAME == name and issubclass(cls, VadBackend)


def test_unknown_backend_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="silero, webrtc, energy") as caught:
        get_vad("silerro")
    assert caught.value.exit_code == 2


def test_unavailable_backend_falls_back_to_energy(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.delitem(VAD_BACKENDS, "webrtc", raising=False)
    with caplog.at_level(logging.WARNING, logger="longtake"):
        backend = get_vad("webrtc", threshold=0.3)
    assert backend.NAME == "energy" and backend.threshold == 0.3
    assert any("webrtc" in m and "energy" in m for m in caplog.messages)


def test_backend_that_fails_to_load_falls_back_to_energy(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    class Broken(VadBackend):
        NAME = "silero"

        def __init__(self, threshold: float = 0.5):
            raise ImportError("No module named 'torch'")

        def detect(self, audio_16k: np.ndarray) -> VadResult:
            raise AssertionError("never built")

    monkeypatch.setitem(VAD_BACKENDS, "silero", Broken)
    with caplog.at_level(logging.WARNING, logger="longtake"):
        backend = get_vad("silero")
    assert backend.NAME == "energy"
    assert any("torch" in m for m in caplog.messages)


def test_importing_the_registry_does_not_import_torch() -> None:
    code = "import sys, segmenters.vad; print('torch' in sys.modules, 'webrtcvad' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]


# ------------------------------------------------------------------------------------
# backend-specific
# ------------------------------------------------------------------------------------


@pytest.mark.skipif("silero" not in VAD_BACKENDS, reason="silero-vad is not installed")
def test_silero_batched_matches_the_packaged_model(speech_track) -> None:
    from segmenters.vad.silero import SileroVad

    silero = get_vad("silero")
    assert isinstance(silero, SileroVad)
    audio = speech_track.mono[: 4 * RATE_HZ + 100]
    np.testing.assert_allclose(silero.detect(audio).probs, silero.reference_probs(audio), atol=1e-3)


@pytest.mark.skipif("webrtc" not in VAD_BACKENDS, reason="webrtcvad is not installed")
def test_webrtc_threshold_sets_aggressiveness(speech_track) -> None:
    from segmenters.vad.webrtc import aggressiveness_for

    assert [aggressiveness_for(t) for t in (0.1, 0.3, 0.5, 0.8)] == [0, 1, 2, 3]
    noisy = speech_track.mono + (0.01 * np.random.default_rng(1).standard_normal(speech_track.n_samples)).astype(np.float32)
    speech_frames = [int(get_vad("webrtc", threshold=t).detect(noisy).probs.sum()) for t in (0.1, 0.8)]
    assert speech_frames[0] > speech_frames[1]  # the more aggressive mode lets less noise through
