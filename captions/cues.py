"""From an alignment to what people read: sentence cues (SRT/WebVTT), timed words, and the table `longtake captions` prints.

Cue and word times here are milliseconds on the *master track* (the video's
time line) plus ``offset_ms``: 0 for the video, the trimmed lead
(``trim_start_sample``) for files timed to the voiceover as delivered, which is
what ``captions.file`` expects, so an edited ``captions.srt`` round-trips.
"""

from __future__ import annotations

from pathlib import Path

from captions.align import Alignment, AlignedLine
from orchestrator.atomic import atomic_write_text
from orchestrator.timebase import format_timestamp
from stitchers.captions import Cue, TimedWord, format_cues

MAX_CUE_CHARS = 84  # two lines of 42 characters, the common broadcast subtitle limit
MIN_CUE_MS = 700
HOLD_MS = 250  # a cue stays this long after its last word, unless the next one starts sooner


def _ms(sample: int, rate_hz: int, offset_ms: int) -> int:
    return int(round(sample * 1000 / rate_hz)) + offset_ms


def sentence_end_samples(alignment: Alignment) -> list[int]:
    """The middle of the gap between each said sentence and the next: where a cut would fall between sentences."""
    said = [line for line in alignment.lines if line.found]
    return [(a.end_sample + b.start_sample) // 2 for a, b in zip(said, said[1:]) if b.start_sample >= a.end_sample]


def timed_words(alignment: Alignment, offset_ms: int = 0) -> list[TimedWord]:
    """Every word the voiceover says, with its times."""
    sr = alignment.sample_rate_hz
    return [TimedWord(w.text, _ms(w.start_sample, sr, offset_ms), _ms(w.end_sample, sr, offset_ms)) for w in alignment.words if w.found]


def _chunks(line: AlignedLine, words: list) -> list[list]:
    """A long sentence in pieces of at most MAX_CUE_CHARS, cut after a comma where one is in the last two thirds."""
    out, current = [], []
    for w in words:
        if current and len(" ".join(x.text for x in current + [w])) > MAX_CUE_CHARS:
            cut = len(current)
            for i in range(len(current) - 1, len(current) // 3 - 1, -1):
                if current[i].text.endswith((",", ";", ":", "—")):
                    cut = i + 1
                    break
            out.append(current[:cut])
            current = current[cut:]
        current.append(w)
    if current:
        out.append(current)
    return out


def sentence_cues(alignment: Alignment, offset_ms: int = 0) -> list[Cue]:
    """One cue per sentence the voiceover says (long ones split), from its first word's start to its last word's end."""
    sr = alignment.sample_rate_hz
    spans: list[tuple[int, int, str]] = []
    for line in alignment.lines:
        if not line.found:
            continue
        words = list(alignment.words[line.first_word : line.end_word])
        for chunk in _chunks(line, words):
            said = [w for w in chunk if w.found]
            if not said:
                continue
            start = _ms(min(w.start_sample for w in said), sr, offset_ms)
            end = _ms(max(w.end_sample for w in said), sr, offset_ms)
            spans.append((start, end, " ".join(w.text for w in chunk)))
    cues = []
    for i, (start, end, text) in enumerate(spans):
        nxt = spans[i + 1][0] if i + 1 < len(spans) else None
        end = max(end + HOLD_MS, start + MIN_CUE_MS)
        if nxt is not None:
            end = min(end, nxt)
        if end > start:
            cues.append(Cue(max(0, start), end, text))
    return cues


def write_caption_files(alignment: Alignment, folder: Path, *, trim_start_sample: int) -> dict[str, Path]:
    """captions.srt and captions.vtt (timed to the voiceover file) and words.json (master-track samples) in ``folder``."""
    folder = Path(folder)
    offset_ms = int(round(trim_start_sample * 1000 / alignment.sample_rate_hz))
    cues = sentence_cues(alignment, offset_ms)
    paths = {"srt": folder / "captions.srt", "vtt": folder / "captions.vtt", "words": folder / "words.json"}
    atomic_write_text(paths["srt"], format_cues(cues, "srt"))
    atomic_write_text(paths["vtt"], format_cues(cues, "vtt"))
    atomic_write_text(paths["words"], alignment.to_json(trim_start_sample=trim_start_sample))
    return paths


def format_table(alignment: Alignment) -> str:
    """The lines with their times (master track = video time) and how far the alignment trusts each."""
    sr = alignment.sample_rate_hz
    rows = [f"{'line':>4}  {'start':>9}  {'end':>9}  {'conf':>4}  text"]
    for line in alignment.lines:
        text = line.text if len(line.text) <= 60 else line.text[:57] + "…"
        if line.found:
            rows.append(f"{line.index:>4}  {format_timestamp(line.start_sample / sr):>9}  {format_timestamp(line.end_sample / sr):>9}  "
                        f"{line.confidence:>4.2f}  {text}")
        else:
            rows.append(f"{line.index:>4}  {'—':>9}  {'—':>9}  {0:>4.2f}  {text}   ← not in the voiceover")
    said = sum(1 for w in alignment.words if w.found)
    rows.append(f"\n{len(alignment.lines)} lines, {said} of {len(alignment.words)} words found in the voiceover")
    for line in alignment.missing_lines:
        rows.append(f"not in the voiceover: line {line.index}: “{line.text}”")
    for start, end in alignment.unscripted:
        rows.append(f"speech not in the script: {format_timestamp(start / sr)}–{format_timestamp(end / sr)}")
    low = [line for line in alignment.lines if line.found and line.confidence < 0.5]
    if low:
        rows.append(f"low confidence (check these): lines {', '.join(str(line.index) for line in low)}")
    return "\n".join(rows)
