"""The script's words and sentences, the caption files written from an alignment, and the table."""

from __future__ import annotations

from pathlib import Path

import pytest

from captions.align import AlignedLine, AlignedWord, Alignment
from captions.cues import format_table, sentence_cues, sentence_end_samples, timed_words, write_caption_files
from captions.script import parse_script
from orchestrator.errors import MediaError
from stitchers.captions import Cue, load_captions, parse_captions

SR = 1000  # one sample per millisecond keeps the arithmetic readable


def test_script_splits_sentences_at_stops_and_paragraphs_and_keeps_punctuation() -> None:
    script = parse_script("Hello there, world! It is 5.30 p.m. now — really.\n\nA new paragraph without a stop\nStill it?")
    assert [w.text for w in script.words][:4] == ["Hello", "there,", "world!", "It"]
    assert "now —" in [w.text for w in script.words]  # a dash rides with the word before
    assert [s.text for s in script.sentences] == [
        "Hello there, world!", "It is 5.30 p.m. now — really.", "A new paragraph without a stop Still it?",
    ]
    assert script.words[-1].paragraph == 1 and script.words[0].paragraph == 0
    for w in script.words:  # offsets point at each word in the text the synthesiser reads
        assert script.synthesis_text[w.char_offset : w.char_offset + len(w.text)] == w.text
    with pytest.raises(MediaError, match="no words"):
        parse_script(" — …\n\n")


def _alignment() -> Alignment:
    words = [("One", 0, 1000, 1300), ("two.", 0, 1400, 1800), ("Gone", 1, 1800, 1800), ("away.", 1, 1800, 1800),
             ("Three,", 2, 2500, 2900), ("four.", 2, 3000, 3400)]
    aligned = tuple(AlignedWord(t, s, a, b, 0.9 if b > a else 0.0, b > a) for t, s, a, b in words)
    lines = (AlignedLine(0, "One two.", 0, 2, 1000, 1800, 0.9, True), AlignedLine(1, "Gone away.", 2, 4, 1800, 1800, 0.0, False),
             AlignedLine(2, "Three, four.", 4, 6, 2500, 3400, 0.9, True))
    return Alignment(SR, aligned, lines, ((3600, 4400),))


def test_cues_are_said_sentences_held_briefly_and_never_overlapping() -> None:
    cues = sentence_cues(_alignment())
    assert cues == [Cue(1000, 2050, "One two."), Cue(2500, 3650, "Three, four.")]
    assert sentence_end_samples(_alignment()) == [(1800 + 2500) // 2]
    assert [w.text for w in timed_words(_alignment(), offset_ms=100)] == ["One", "two.", "Three,", "four."]
    assert timed_words(_alignment(), offset_ms=100)[0].start_ms == 1100


def test_long_sentences_are_cut_into_two_line_cues_after_a_comma() -> None:
    texts = "Photosynthesis turns light into sugar, and that sugar feeds almost every living thing on this planet today.".split()
    words = tuple(AlignedWord(t, 0, 100 * i, 100 * i + 80, 0.9, True) for i, t in enumerate(texts))
    line = AlignedLine(0, " ".join(texts), 0, len(texts), 0, words[-1].end_sample, 0.9, True)
    cues = sentence_cues(Alignment(SR, words, (line,)))
    assert [c.text for c in cues] == ["Photosynthesis turns light into sugar,", "and that sugar feeds almost every living thing on this planet today."]
    assert all(len(c.text) <= 84 for c in cues) and cues[0].end_ms <= cues[1].start_ms


def test_files_round_trip_through_captions_file_with_the_trim(tmp_path: Path) -> None:
    paths = write_caption_files(_alignment(), tmp_path, trim_start_sample=500)  # the master starts 0.5 s into the file
    srt, vtt = paths["srt"].read_text(), paths["vtt"].read_text()
    assert "00:00:01,500 --> 00:00:02,550\nOne two." in srt and vtt.startswith("WEBVTT")
    assert parse_captions(srt) == parse_captions(vtt)
    # Given back as captions.file, the stitcher shifts by the trim: the cues land where the words are in the video.
    assert load_captions(paths["srt"], offset_ms=-500) == sentence_cues(_alignment())
    back = Alignment.from_json(paths["words"].read_text())
    assert back.words == _alignment().words and back.unscripted == ((3600, 4400),)


def test_the_table_names_the_missing_line_the_unscripted_speech_and_confidence() -> None:
    table = format_table(_alignment())
    assert "0:01.00" in table and "0.90" in table
    assert "not in the voiceover: line 1: “Gone away.”" in table
    assert "speech not in the script: 0:03.60–0:04.40" in table


def test_without_libespeak_ng_the_error_says_what_to_install(monkeypatch) -> None:
    import ctypes

    import captions.espeak as espeak

    def no_library(*args, **kwargs):
        raise OSError("libespeak-ng.so.1: cannot open shared object file")

    monkeypatch.setattr(espeak, "_LIB", None)
    monkeypatch.setattr(ctypes, "CDLL", no_library)
    with pytest.raises(espeak.EspeakMissing, match="apt-get install espeak-ng") as info:
        espeak.synthesize("hello")
    assert info.value.exit_code == 2 and "captions.file" in str(info.value)
