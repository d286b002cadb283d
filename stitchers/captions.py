"""Captions: read and write SRT/WebVTT, mux them as an MP4 subtitle track (mov_text), burn them into frames.

Cue times are converted to integer output frames once (a cue is on screen for
frame ``f`` when ``start ≤ f/fps < end``), so burnt-in text changes exactly on
frame boundaries. Burning renders each caption once with PIL into a small RGBA
patch, converts the patch to BT.709 YCbCr, and alpha-blends it into the
output planes of the frames it covers; nothing is drawn on a full frame.

Two burnt-in styles: ``lines`` (a cue at a time) and ``words`` (1–3 words at a
time, the one being spoken highlighted, from word times). Text stays inside
the 9:16 safe zone and off the speaker's mouth (``place_block``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from orchestrator.errors import MediaError
from stitchers.color import BT709_LIMITED

_TIME = r"(?:(\d+):)?(\d{1,2}):(\d{2})[,.](\d{1,3})"
_CUE_LINE = re.compile(rf"^\s*{_TIME}\s*-->\s*{_TIME}")
_TAG = re.compile(r"<[^>]*>")
_FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Bold.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSansBold.ttf",
)
# The 9:16 safe zone, as fractions of the frame: the centre 80 % of the width, clear of the top 10 % (status bar,
# Following/For You tabs) and the bottom 20 % (caption, sound and progress bars). After TikTok Creative Center's
# safe-zone guidance ("central 80–90 %, avoid the lower 20 % where captions appear"; the right-hand button column
# falls outside the centre 80 % at 1080×1920 only partly, so the zone is centred) and YouTube Shorts' similar
# margins. Meta's Reels guidance is stricter at the bottom (35 %): place captions with `position: middle` there.
SAFE_LEFT, SAFE_RIGHT, SAFE_TOP, SAFE_BOTTOM = 0.10, 0.90, 0.10, 0.80
CAPTION_BOTTOM = 0.78  # bottom of the text block at `position: bottom`: just inside the safe zone
GROUP_HOLD_MS = 400  # a word group stays up this long after its last word (or until the next group)
MOUTH_MARGIN = 0.06  # of the frame height kept between text and the mouth box


@dataclass(frozen=True)
class Cue:
    start_ms: int
    end_ms: int
    text: str  # lines joined with "\n", markup removed


def _ms(groups: Sequence[str | None]) -> int:
    hours, minutes, seconds, frac = groups
    return ((int(hours or 0) * 60 + int(minutes)) * 60 + int(seconds)) * 1000 + int((frac or "0").ljust(3, "0")[:3])


def parse_captions(text: str, source: str = "captions") -> list[Cue]:
    """Parse SRT or WebVTT text (detected from the content); raise MediaError naming the line of a bad cue."""
    lines = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    cues: list[Cue] = []
    i = 0
    vtt = bool(lines) and lines[0].strip().startswith("WEBVTT")
    while i < len(lines):
        line = lines[i]
        match = _CUE_LINE.match(line)
        if not match:
            if vtt and line.strip().startswith(("NOTE", "STYLE", "REGION")):
                while i < len(lines) and lines[i].strip():
                    i += 1
            elif "-->" in line:
                raise MediaError(f"{source}:{i + 1}: cannot read the cue timing {line.strip()!r} (expected e.g. 00:00:01,500 --> 00:00:03,000)")
            i += 1
            continue
        start, end = _ms(match.groups()[:4]), _ms(match.groups()[4:])
        if end <= start:
            raise MediaError(f"{source}:{i + 1}: the cue ends ({line.strip()}) before it starts; fix its times")
        body: list[str] = []
        i += 1
        while i < len(lines) and lines[i].strip():
            body.append(_TAG.sub("", lines[i]).strip())
            i += 1
        text_body = "\n".join(b for b in body if b)
        text_body = text_body.replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">").replace("&nbsp;", " ")
        if text_body:
            cues.append(Cue(start, end, text_body))
    if not cues and text.strip():
        raise MediaError(f"{source}: no cues found; captions must be SRT or WebVTT")
    return sorted(cues, key=lambda c: (c.start_ms, c.end_ms))


def read_text_file(path: Path, what: str, key: str) -> str:
    """A text file the user gave (UTF-8, a BOM allowed); MediaError naming ``what`` and the ``key`` to fix."""
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise MediaError(f"{what} is missing: {path} (fix {key} in the project file)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise MediaError(f"{what} {path} cannot be read as UTF-8 text: {exc}") from None


def load_captions(path: Path, *, offset_ms: int = 0, duration_ms: int | None = None) -> list[Cue]:
    """Read a caption file, shift it by ``offset_ms`` and clip it to ``[0, duration_ms)``."""
    text = read_text_file(path, "captions file", "captions.file")
    out = []
    for cue in parse_captions(text, str(path)):
        start, end = cue.start_ms + offset_ms, cue.end_ms + offset_ms
        if duration_ms is not None:
            end = min(end, duration_ms)
        start = max(start, 0)
        if end > start:
            out.append(Cue(start, end, cue.text))
    return out


def cue_frames(cue: Cue, fps: Fraction) -> tuple[int, int]:
    """Output frames ``[first, last)`` on which the cue is shown."""
    def first_frame_at(ms: int) -> int:
        return math.ceil(Fraction(ms, 1000) * fps)

    return first_frame_at(cue.start_ms), first_frame_at(cue.end_ms)


@dataclass(frozen=True)
class TimedWord:
    text: str
    start_ms: int
    end_ms: int


@dataclass(frozen=True)
class CaptionStyle:
    mode: str = "lines"  # "lines" | "words"
    words_on_screen: int = 3
    font_path: Path | None = None
    size_pct: float = 3.4
    color: tuple[int, int, int] = (255, 255, 255)
    highlight_color: tuple[int, int, int] = (255, 210, 31)
    outline_color: tuple[int, int, int] = (0, 0, 0)
    outline_pct: float = 8.0
    position: str = "bottom"


@dataclass(frozen=True)
class CaptionTrack:
    """What the stitcher needs: cues (video time), word times for the words style, how and whether to burn."""

    cues: tuple[Cue, ...]
    words: tuple[TimedWord, ...] = ()
    style: CaptionStyle = CaptionStyle()
    burn: bool = True
    mouth_box: tuple[int, int, int, int] | None = None  # x0, y0, x1, y1 in *generation* pixels; mapped by the stitcher


def hex_rgb(value: str) -> tuple[int, int, int]:
    value = value.lstrip("#")
    return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)


def mouth_box_from_face(face_box: Sequence[int] | None, width: int, height: int) -> tuple[int, int, int, int]:
    """The region the mouth and jaw may occupy, from the portrait step's face box (x, y, w, h), with room for
    head motion; where no face was found, the place ``prepare_portrait`` puts one."""
    from generators.portrait import FACE_CENTER_Y_FRAC, FACE_HEIGHT_FRAC

    if face_box is None:
        side = min(FACE_HEIGHT_FRAC * height, 0.6 * width)
        face_box = (width / 2 - side / 2, FACE_CENTER_Y_FRAC * height - side / 2, side, side)
    fx, fy, fw, fh = (float(v) for v in face_box)
    cx = fx + fw / 2
    return (int(max(0, cx - 0.45 * fw)), int(max(0, fy + 0.55 * fh)), int(min(width, cx + 0.45 * fw)), int(min(height, fy + 1.15 * fh)))


def place_block(block_w: int, block_h: int, width: int, height: int, position: str, avoid: tuple[int, int, int, int] | None) -> tuple[int, int]:
    """Top-left (even) of a text block centred in the safe zone at ``position``, moved above or below ``avoid``
    (the mouth box, in output pixels, plus a margin) when it would cover it."""
    top, bottom = int(SAFE_TOP * height), int(SAFE_BOTTOM * height)
    x = (width - block_w) // 2
    wanted = {"bottom": int(CAPTION_BOTTOM * height) - block_h, "top": top, "middle": (top + bottom - block_h) // 2}[position]
    wanted = max(top, min(wanted, bottom - block_h))
    y = wanted
    if avoid is not None:
        margin = int(MOUTH_MARGIN * height)
        ax0, ay0, ax1, ay1 = avoid[0], avoid[1] - margin, avoid[2], avoid[3] + margin
        if x < ax1 and x + block_w > ax0 and y < ay1 and y + block_h > ay0:
            options = [c for c in (ay1, ay0 - block_h) if top <= c and c + block_h <= bottom]
            if options:
                y = min(options, key=lambda c: abs(c - wanted))
            else:  # no clear band: the lowest the zone allows, the least cover
                y = max(top, bottom - block_h)
    return x & ~1, max(0, y) & ~1


def group_words(words: Sequence[TimedWord], per_group: int, fits, *, max_gap_ms: int = 600) -> list[list[TimedWord]]:
    """Consecutive words, at most ``per_group`` at a time, a new group after a sentence end or a pause, and
    never wider than ``fits`` allows (``fits(text) -> bool``)."""
    groups: list[list[TimedWord]] = []
    current: list[TimedWord] = []
    for word in words:
        if current:
            prev = current[-1]
            ends_sentence = prev.text.rstrip("\"'”’)]").endswith((".", "!", "?", "…", ":", ";"))
            if len(current) >= per_group or ends_sentence or word.start_ms - prev.end_ms > max_gap_ms \
                    or not fits(" ".join(w.text for w in current + [word])):
                groups.append(current)
                current = []
        current.append(word)
    if current:
        groups.append(current)
    return groups


def format_cues(cues: Sequence[Cue], kind: str) -> str:
    """SRT (``kind="srt"``) or WebVTT text for the cues."""
    def stamp(ms: int) -> str:
        h, rest = divmod(max(0, ms), 3_600_000)
        m, rest = divmod(rest, 60_000)
        sec, milli = divmod(rest, 1000)
        return f"{h:02d}:{m:02d}:{sec:02d}{',' if kind == 'srt' else '.'}{milli:03d}"

    blocks = [] if kind == "srt" else ["WEBVTT\n"]
    for i, cue in enumerate(cues, 1):
        text = cue.text if kind == "srt" else cue.text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        blocks.append(f"{i}\n{stamp(cue.start_ms)} --> {stamp(cue.end_ms)}\n{text}\n")
    return "\n".join(blocks)


# -- mov_text ------------------------------------------------------------------------------

ASS_HEADER = (
    "[Script Info]\nScriptType: v4.00+\nPlayResX: 384\nPlayResY: 288\n\n"
    "[V4+ Styles]\nFormat: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, Italic, "
    "Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, MarginV, Encoding\n"
    "Style: Default,Arial,16,&Hffffff,&Hffffff,&H0,&H0,0,0,0,0,100,100,0,0,1,1,0,2,10,10,10,0\n\n"
    "[Events]\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n"
)


def ass_dialogue(index: int, cue: Cue) -> bytes:
    """The ASS event line the mov_text encoder takes (ReadOrder,Layer,Style,Name,MarginL,MarginR,MarginV,Effect,Text)."""
    text = cue.text.replace("\\", "\u29f5").replace("{", "(").replace("}", ")").replace("\n", "\\N")
    return f"{index},0,Default,,0,0,0,,{text}".encode("utf-8")


# -- burning in -------------------------------------------------------------------------------


def load_font(size_px: int, path: Path | None = None):
    """``path``, else a bold sans font that exists here (DejaVu, Liberation, FreeFont), else PIL's built-in one."""
    from PIL import ImageFont

    if path is not None:
        try:
            return ImageFont.truetype(str(path), size_px)
        except OSError:
            raise MediaError(f"captions.font {path} is not a TrueType/OpenType font file (or is missing); fix the path or remove the key") from None
    for candidate in _FONT_CANDIDATES:
        if Path(candidate).is_file():
            return ImageFont.truetype(candidate, size_px)
    return ImageFont.load_default(size=size_px)


def _wrap(text: str, font, max_width: float) -> str:
    lines = []
    for paragraph in text.split("\n"):
        words, line = paragraph.split(), ""
        for word in words:
            trial = f"{line} {word}".strip()
            if line and font.getlength(trial) > max_width:
                lines.append(line)
                line = word
            else:
                line = trial
        if line:
            lines.append(line)
    return "\n".join(lines)


@dataclass
class _Patch:
    x: int
    y: int  # even, top-left in the output frame
    luma: np.ndarray  # float32 [h, w] text Y
    alpha: np.ndarray  # float32 [h, w] 0…1
    chroma: tuple[np.ndarray, np.ndarray]  # float32 [h/2, w/2] Cb, Cr
    alpha_half: np.ndarray


def _patch(rgba: np.ndarray, x: int, y: int, width: int, height: int) -> _Patch | None:
    """An RGBA image placed at (x, y), clipped to the frame, as premultiplied BT.709 4:2:0 planes."""
    h, w = rgba.shape[:2]
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + w, width), min(y + h, height)
    if x1 <= x0 or y1 <= y0:
        return None
    rgba = rgba[y0 - y : y1 - y, x0 - x : x1 - x]
    rgba = rgba[: rgba.shape[0] & ~1, : rgba.shape[1] & ~1]
    if rgba.size == 0:
        return None
    m = BT709_LIMITED.rgb_to_code()
    codes = rgba[..., :3] @ m[:3, :3].T.astype(np.float32) + m[:3, 3].astype(np.float32)
    alpha = rgba[..., 3] / 255.0
    hh, ww = alpha.shape[0] // 2, alpha.shape[1] // 2
    alpha_half = cv2.resize(alpha, (ww, hh), interpolation=cv2.INTER_AREA)
    # Premultiplied downsampling, so the glyph edge's colour is not diluted by transparent pixels.
    chroma = tuple(cv2.resize(codes[..., c] * alpha, (ww, hh), interpolation=cv2.INTER_AREA) for c in (1, 2))
    return _Patch(x0, y0, codes[..., 0] * alpha, alpha, chroma, alpha_half)  # type: ignore[arg-type]


def _draw_patch(patch: _Patch, planes: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    h, w = patch.alpha.shape
    _blend(planes[0][patch.y : patch.y + h, patch.x : patch.x + w], patch.luma, patch.alpha)
    hy, hx = patch.y // 2, patch.x // 2
    for c in (0, 1):
        _blend(planes[1 + c][hy : hy + h // 2, hx : hx + w // 2], patch.chroma[c], patch.alpha_half)


class CaptionBurner:
    """Draws the caption on screen at each output frame into 4:2:0 BT.709 planes.

    ``lines`` style: the cue at that frame, wrapped to the safe zone's width. ``words`` style: the group of
    1–3 words at that frame, the word being spoken in the highlight colour.
    """

    def __init__(self, cues: Sequence[Cue], fps: Fraction, width: int, height: int, *, font_px: int | None = None,
                 style: CaptionStyle | None = None, words: Sequence[TimedWord] = (), mouth_box: tuple[int, int, int, int] | None = None):
        self.style = style or CaptionStyle()
        self.width, self.height = width, height
        self.font_px = font_px or max(10, round(height * self.style.size_pct / 100))
        self.font = load_font(self.font_px, self.style.font_path)
        self.stroke_px = max(1, round(self.font_px * self.style.outline_pct / 100)) if self.style.outline_pct > 0 else 0
        self.mouth_box = mouth_box
        self.max_text_w = (SAFE_RIGHT - SAFE_LEFT) * width - 2 * self.stroke_px - 4
        if self.style.mode == "words" and words:
            groups = group_words(words, self.style.words_on_screen, lambda text: self.font.getlength(text) <= self.max_text_w)
            # One span per (group, highlighted word): word k is highlighted from its start to the next word's start;
            # the last one until the group comes down.
            spans = []
            for g, group in enumerate(groups):
                nxt = groups[g + 1][0].start_ms if g + 1 < len(groups) else None
                end_ms = group[-1].end_ms + GROUP_HOLD_MS
                if nxt is not None:
                    end_ms = min(end_ms, nxt)
                for k, word in enumerate(group):
                    stop = group[k + 1].start_ms if k + 1 < len(group) else end_ms
                    if stop > word.start_ms:
                        spans.append(Cue(word.start_ms, stop, f"{g}:{k}"))
            self._groups = groups
            entries = spans
        else:
            self._groups = []
            entries = list(cues)
        self._spans = [(*cue_frames(c, fps), c) for c in entries]
        self._spans = [s for s in self._spans if s[1] > s[0]]
        self._k = 0
        self._cache: tuple[Cue, _Patch | None] | None = None
        self.drawn_boxes: list[tuple[int, int, int, int]] = []  # every patch placed (x0, y0, x1, y1), for checks

    def cue_at(self, frame: int) -> Cue | None:
        while self._k < len(self._spans) and self._spans[self._k][1] <= frame:
            self._k += 1
        for first, last, cue in self._spans[self._k : self._k + 4]:  # overlapping cues: the earliest wins
            if first <= frame < last:
                return cue
        return None

    def highlighted_at(self, frame: int) -> str | None:
        """The highlighted word at ``frame`` (words style), for checks and logs."""
        cue = self.cue_at(frame)
        if cue is None or not self._groups:
            return None
        g, k = (int(v) for v in cue.text.split(":"))
        return self._groups[g][k].text

    def _render(self, cue: Cue) -> _Patch | None:
        from PIL import Image, ImageDraw

        style = self.style
        stroke = self.stroke_px
        probe = ImageDraw.Draw(Image.new("RGBA", (1, 1)))
        if self._groups:
            g, k = (int(v) for v in cue.text.split(":"))
            pieces = [w.text for w in self._groups[g]]
            text = " ".join(pieces)
        else:
            k, pieces = -1, []
            text = _wrap(cue.text, self.font, self.max_text_w)
        left, top, right, bottom = probe.multiline_textbbox((0, 0), text, font=self.font, align="center", stroke_width=stroke)
        w, h = int(right - left) + 4, int(bottom - top) + 4
        w, h = w + w % 2, h + h % 2
        image = Image.new("RGBA", (w, h), (0, 0, 0, 0))
        draw = ImageDraw.Draw(image)
        outline = (*style.outline_color, 255)
        if pieces:
            x = 2 - left
            space = self.font.getlength(" ")
            for i, piece in enumerate(pieces):
                colour = style.highlight_color if i == k else style.color
                draw.text((x, 2 - top), piece, font=self.font, fill=(*colour, 255), stroke_width=stroke, stroke_fill=outline)
                x += self.font.getlength(piece) + space
        else:
            draw.multiline_text((2 - left, 2 - top), text, font=self.font, fill=(*style.color, 255), align="center", stroke_width=stroke, stroke_fill=outline)
        rgba = np.asarray(image, dtype=np.float32)
        # Words style: one fixed line height, so the caption does not bob as words with descenders come and go.
        block_h = h if not pieces else max(h, int(self.font_px * 1.3) + 2 * stroke)
        x, y = place_block(w, block_h, self.width, self.height, style.position, self.mouth_box)
        patch = _patch(rgba, x, y + (block_h - h) // 2 & ~1, self.width, self.height)
        if patch is not None:
            self.drawn_boxes.append((patch.x, patch.y, patch.x + patch.alpha.shape[1], patch.y + patch.alpha.shape[0]))
        return patch

    def burn(self, frame: int, planes: tuple[np.ndarray, np.ndarray, np.ndarray]) -> bool:
        """Draw the caption showing at ``frame`` (if any) into the planes; True when something was drawn."""
        cue = self.cue_at(frame)
        if cue is None:
            return False
        if self._cache is None or self._cache[0] is not cue:
            self._cache = (cue, self._render(cue))
        patch = self._cache[1]
        if patch is None:
            return False
        _draw_patch(patch, planes)
        return True


def _blend(region: np.ndarray, premultiplied: np.ndarray, alpha: np.ndarray) -> None:
    out = region.astype(np.float32) * (1.0 - alpha) + premultiplied
    np.clip(out, 0.0, 255.0, out=out)
    np.copyto(region, np.rint(out), casting="unsafe")
