"""Forced alignment against speech whose word times are known: espeak-ng speech with planted pauses, espeak-ng's
own word timings, and a script that differs from what was said."""

from __future__ import annotations

import io
import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import resample_poly

from captions.align import align_script
from captions.script import parse_script
from tests.orchestrator.conftest import REPO

RATE = 16_000
LEAD_S = 0.5


def _need_espeak() -> None:
    from captions.espeak import EspeakMissing, synthesize

    try:
        synthesize("test")
    except EspeakMissing:
        pytest.skip("libespeak-ng is not installed (.ci/run installs espeak-ng)")


@pytest.fixture(scope="module")
def script():
    _need_espeak()
    return parse_script((REPO / "configs" / "demo" / "voiceover.txt").read_text())


def _errors_ms(aligned: np.ndarray, truth: np.ndarray) -> np.ndarray:
    return np.abs(aligned - truth) * 1000.0 / RATE


def _check(errors: np.ndarray, what: str) -> None:
    median, p95 = float(np.median(errors)), float(np.percentile(errors, 95))
    assert median < 80 and p95 < 200, f"{what}: median {median:.0f} ms, p95 {p95:.0f} ms over {len(errors)} words"


def test_word_times_on_the_3_minute_script_read_with_planted_pauses(script) -> None:
    """Another voice at another rate reads each sentence with a random pause after every word (espeak-ng's word
    gap, the command-line program); the true words are the islands of sound between the pauses."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (.ci/run installs it)")
    rng = np.random.default_rng(5)
    pieces, truth, pos = [np.zeros(int(LEAD_S * RATE), np.float32)], [], int(LEAD_S * RATE)
    for sentence in script.sentences:
        gap = int(rng.integers(12, 30))  # ×10 ms after every word
        wav = subprocess.run(["espeak-ng", "-v", "en-us+f3", "-s", "150", "-g", str(gap), "--stdout", sentence.text],
                             capture_output=True, check=True).stdout
        audio, sr = sf.read(io.BytesIO(wav), dtype="float32")
        audio = resample_poly(audio, RATE, sr).astype(np.float32)
        loud = np.flatnonzero(np.abs(audio) > 0.02)
        splits = np.flatnonzero(np.diff(loud) > 0.1 * RATE)
        starts = np.concatenate([[loud[0]], loud[splits + 1]]) - loud[0]
        ends = np.concatenate([loud[splits], [loud[-1]]]) + 1 - loud[0]
        n = sentence.end_word - sentence.first_word
        # espeak-ng runs a few short words together without the gap; those sentences' word times are unknown.
        truth += [(pos + s, pos + e) for s, e in zip(starts, ends)] if len(starts) == n else [(-1, -1)] * n
        audio = audio[loud[0] : loud[-1] + 1]
        pieces.append(audio)
        pos += len(audio)
        pause = int(rng.uniform(0.25, 0.9) * RATE)
        pieces.append(np.zeros(pause, np.float32))
        pos += pause
    audio = np.concatenate(pieces) + rng.standard_normal(pos).astype(np.float32) * 1e-3
    alignment = align_script(script, audio, master_rate_hz=RATE, master_samples=len(audio))
    truth = np.array(truth)
    known = truth[:, 0] >= 0
    assert known.sum() > 200  # most of the script is measured
    starts = np.array([w.start_sample for w in alignment.words])[known]
    ends = np.array([w.end_sample for w in alignment.words])[known]
    _check(_errors_ms(starts, truth[known, 0]), "word starts")
    _check(_errors_ms(ends, truth[known, 1]), "word ends")
    assert all(w.found for w in alignment.words) and not alignment.missing_lines and not alignment.unscripted


def _read(text_script, voice: str, rate_wpm: int):
    """Continuous speech from espeak-ng's library with its word events: audio at 16 kHz and true word spans."""
    from captions.espeak import synthesize

    synth = synthesize(text_script.synthesis_text, voice=voice, rate_wpm=rate_wpm)
    audio = resample_poly(synth.samples.astype(np.float32) / 32768, RATE, synth.sample_rate_hz).astype(np.float32)
    lead = np.zeros(int(LEAD_S * RATE), np.float32)
    audio = np.concatenate([lead, audio, lead])
    offsets = np.array([w.char_offset for w in text_script.words])
    start_ms: dict[int, int] = {}
    for event in synth.words:
        start_ms.setdefault(int(np.searchsorted(offsets, event.char_offset, side="right")) - 1, event.start_ms)
    loud = np.abs(audio) > 0.02
    truth = []
    for k in range(len(text_script.words)):
        if k not in start_ms or k + 1 not in start_ms:
            truth.append((-1, -1))
            continue
        lo, hi = len(lead) + start_ms[k] * RATE // 1000, len(lead) + start_ms[k + 1] * RATE // 1000
        sound = np.flatnonzero(loud[lo : hi - 480])  # the next word's onset may sit in the last frames
        truth.append((lo + sound[0], lo + sound[-1] + 1) if len(sound) else (-1, -1))
    audio += np.random.default_rng(0).standard_normal(len(audio)).astype(np.float32) * 1e-3
    return audio, np.array(truth)


def test_word_times_against_espeak_ngs_own_timing(script) -> None:
    """Connected speech by a British voice at 150 words a minute (the aligner reads with an American one at 175)."""
    audio, truth = _read(script, "en-gb-x-rp", 150)
    alignment = align_script(script, audio, master_rate_hz=RATE, master_samples=len(audio))
    known = truth[:, 0] >= 0
    assert known.sum() > 400
    _check(_errors_ms(np.array([w.start_sample for w in alignment.words])[known], truth[known, 0]), "word starts")
    _check(_errors_ms(np.array([w.end_sample for w in alignment.words])[known], truth[known, 1]), "word ends")
    assert min(line.confidence for line in alignment.lines) > 0.5


EXTRA_IN_SCRIPT = "Penguins cannot fly, but they swim faster than most boats in the harbour."
SAID_NOT_WRITTEN = "My grandmother kept seven cats and a parrot that sang opera every morning."


def test_an_extra_and_a_missing_sentence_are_reported_and_the_rest_stays_aligned(script) -> None:
    sentences = [s.text for s in script.sentences]
    said = sentences[:12] + [SAID_NOT_WRITTEN] + sentences[12:]
    written = sentences[:25] + [EXTRA_IN_SCRIPT] + sentences[25:]
    said_script, written_script = parse_script("\n\n".join(said)), parse_script("\n\n".join(written))
    audio, truth = _read(said_script, "en-gb-x-rp", 160)
    alignment = align_script(written_script, audio, master_rate_hz=RATE, master_samples=len(audio))

    # The report names both: the written line nobody said, and where the unwritten speech is.
    assert [line.text for line in alignment.missing_lines] == [EXTRA_IN_SCRIPT]
    assert all(not w.found and w.end_sample == w.start_sample for w in alignment.words if w.sentence == 25)
    extra = said_script.sentences[12]
    true_span = (truth[extra.first_word, 0], truth[extra.end_word - 1, 1])
    assert len(alignment.unscripted) == 1
    start, end = alignment.unscripted[0]
    overlap = min(end, true_span[1]) - max(start, true_span[0])
    assert overlap > 0.6 * (true_span[1] - true_span[0]), (alignment.unscripted, true_span)

    # Every other word: as well aligned as without the differences.
    errors = []
    for index, text in enumerate(written):
        if text == EXTRA_IN_SCRIPT:
            continue
        w_sent, s_sent = written_script.sentences[index], said_script.sentences[said.index(text)]
        for offset in range(w_sent.end_word - w_sent.first_word):
            true_start = truth[s_sent.first_word + offset, 0]
            if true_start >= 0:
                errors.append(abs(alignment.words[w_sent.first_word + offset].start_sample - true_start) * 1000 / RATE)
    errors = np.array(errors)
    assert np.median(errors) < 80 and np.percentile(errors, 95) < 200 and (errors > 1000).sum() <= 2, np.sort(errors)[-5:]
    # The line after the unwritten speech is not blamed for it.
    assert alignment.lines[12].confidence > 0.5 and alignment.lines[12].found
