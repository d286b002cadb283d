"""The narration script: words, sentences and paragraphs, as written.

A word keeps its punctuation for display ("sun," stays "sun,"); tokens with no
letter or digit ("—", "…") ride along with the word before them. A sentence
ends at ``.``, ``!``, ``?`` (closing quotes and brackets allowed after it) when
the next word does not start in lower case, and at every paragraph break.
``synthesis_text`` joins the words back with single spaces (paragraphs with a
blank line) and records where each word sits in it, so the synthesiser's
character offsets map back to words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import MediaError

_SENTENCE_END = re.compile(r"[.!?…]+[\"'”’»)\]]*$")
_HAS_WORD = re.compile(r"\w")


@dataclass(frozen=True)
class ScriptWord:
    text: str  # as displayed, punctuation kept
    sentence: int
    paragraph: int
    char_offset: int  # in Script.synthesis_text


@dataclass(frozen=True)
class Sentence:
    index: int
    first_word: int
    end_word: int  # exclusive
    paragraph: int
    text: str


@dataclass(frozen=True)
class Script:
    words: tuple[ScriptWord, ...]
    sentences: tuple[Sentence, ...]
    synthesis_text: str


def parse_script(text: str, source: str = "script") -> Script:
    """Split plain text into words and sentences; MediaError when it has no words."""
    paragraphs = [p for p in re.split(r"\n\s*\n", text.replace("\r\n", "\n").lstrip("\ufeff")) if p.strip()]
    tokens: list[tuple[str, int]] = []  # (display text, paragraph)
    for p_index, paragraph in enumerate(paragraphs):
        for raw in paragraph.split():
            if _HAS_WORD.search(raw) or not tokens or tokens[-1][1] != p_index:
                tokens.append((raw, p_index))
            else:
                tokens[-1] = (f"{tokens[-1][0]} {raw}", p_index)
    tokens = [t for t in tokens if _HAS_WORD.search(t[0])]
    if not tokens:
        raise MediaError(f"{source}: the script has no words; write the narration as plain text")
    words: list[ScriptWord] = []
    sentences: list[Sentence] = []
    pieces: list[str] = []
    offset = 0
    first = 0
    for i, (token, paragraph) in enumerate(tokens):
        if i:
            sep = "\n\n" if paragraph != tokens[i - 1][1] else " "
            pieces.append(sep)
            offset += len(sep)
        words.append(ScriptWord(token, len(sentences), paragraph, offset))
        pieces.append(token)
        offset += len(token)
        last = i + 1 == len(tokens)
        next_token = None if last else tokens[i + 1]
        ends = last or next_token[1] != paragraph or (
            _SENTENCE_END.search(token) is not None and not next_token[0][:1].islower()
        )
        if ends:
            sentences.append(Sentence(len(sentences), first, i + 1, paragraph, " ".join(t for t, _ in tokens[first : i + 1])))
            first = i + 1
    return Script(tuple(words), tuple(sentences), "".join(pieces))


def load_script(path: Path) -> Script:
    from stitchers.captions import read_text_file

    return parse_script(read_text_file(path, "captions script", "captions.script"), str(path))
