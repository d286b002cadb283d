"""Captions: read SRT/WebVTT, mux them as an MP4 subtitle track (mov_text), burn them into frames.

Cue times are converted to integer output frames once (a cue is on screen for
frame ``f`` when ``start ≤ f/fps < end``), so burnt-in text changes exactly on
frame boundaries. Burning renders each cue once with PIL into a small RGBA
patch, converts the patch to BT.709 YCbCr, and alpha-blends it into the
output planes of the frames it covers; nothing is drawn on a full frame.
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
CAPTION_BOTTOM = 0.78  # bottom of the text block, as a fraction of the height: above TikTok/Reels/Shorts' UI


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


def load_captions(path: Path, *, offset_ms: int = 0, duration_ms: int | None = None) -> list[Cue]:
    """Read a caption file, shift it by ``offset_ms`` and clip it to ``[0, duration_ms)``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise MediaError(f"captions file is missing: {path} (fix export.captions in the project file)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise MediaError(f"captions file {path} cannot be read as UTF-8 text: {exc}") from None
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


def load_font(size_px: int):
    """A bold sans font that exists here (DejaVu, Liberation, FreeFont) or PIL's built-in one (Pillow ≥ 10.1)."""
    from PIL import ImageFont

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


class CaptionBurner:
    """Draws the cue on screen at each output frame into 4:2:0 BT.709 planes."""

    def __init__(self, cues: Sequence[Cue], fps: Fraction, width: int, height: int, *, font_px: int | None = None):
        self.width, self.height = width, height
        self.font_px = font_px or max(10, round(height * 0.034))
        self.font = load_font(self.font_px)
        self._spans = [(*cue_frames(c, fps), c) for c in cues]
        self._k = 0
        self._cache: tuple[Cue, _Patch | None] | None = None

    def cue_at(self, frame: int) -> Cue | None:
        while self._k < len(self._spans) and self._spans[self._k][1] <= frame:
            self._k += 1
        for first, last, cue in self._spans[self._k : self._k + 4]:  # overlapping cues: the earliest wins
            if first <= frame < last:
                return cue
        return None

    def _render(self, cue: Cue) -> _Patch | None:
        from PIL import Image, ImageDraw

        stroke = max(1, self.font_px // 12)
        text = _wrap(cue.text, self.font, self.width * 0.86)
        probe = ImageDraw.Draw(Image.new("RGBA", (1, 1)))
        left, top, right, bottom = probe.multiline_textbbox((0, 0), text, font=self.font, align="center", stroke_width=stroke)
        w, h = int(right - left) + 4, int(bottom - top) + 4
        w, h = w + w % 2, h + h % 2
        image = Image.new("RGBA", (w, h), (0, 0, 0, 0))
        ImageDraw.Draw(image).multiline_text((2 - left, 2 - top), text, font=self.font, fill=(255, 255, 255, 255), align="center", stroke_width=stroke, stroke_fill=(0, 0, 0, 255))
        rgba = np.asarray(image, dtype=np.float32)
        x = (self.width - w) // 2 & ~1
        y = int(self.height * CAPTION_BOTTOM) - h & ~1
        # Clip the patch to the frame (very long captions on tiny frames).
        x0, y0 = max(x, 0), max(y, 0)
        x1, y1 = min(x + w, self.width), min(y + h, self.height)
        if x1 <= x0 or y1 <= y0:
            return None
        rgba = rgba[y0 - y : y1 - y, x0 - x : x1 - x]
        if rgba.shape[0] % 2 or rgba.shape[1] % 2:
            rgba = rgba[: rgba.shape[0] & ~1, : rgba.shape[1] & ~1]
        m = BT709_LIMITED.rgb_to_code()
        codes = rgba[..., :3] @ m[:3, :3].T.astype(np.float32) + m[:3, 3].astype(np.float32)
        alpha = rgba[..., 3] / 255.0
        hh, ww = alpha.shape[0] // 2, alpha.shape[1] // 2
        alpha_half = cv2.resize(alpha, (ww, hh), interpolation=cv2.INTER_AREA)
        # Premultiplied downsampling, so the glyph edge's colour is not diluted by transparent pixels.
        chroma = tuple(cv2.resize(codes[..., c] * alpha, (ww, hh), interpolation=cv2.INTER_AREA) for c in (1, 2))
        return _Patch(x0, y0, codes[..., 0] * alpha, alpha, chroma, alpha_half)  # type: ignore[arg-type]

    def burn(self, frame: int, planes: tuple[np.ndarray, np.ndarray, np.ndarray]) -> bool:
        """Draw the cue showing at ``frame`` (if any) into the planes; True when something was drawn."""
        cue = self.cue_at(frame)
        if cue is None:
            return False
        if self._cache is None or self._cache[0] is not cue:
            self._cache = (cue, self._render(cue))
        patch = self._cache[1]
        if patch is None:
            return False
        h, w = patch.alpha.shape
        _blend(planes[0][patch.y : patch.y + h, patch.x : patch.x + w], patch.luma, patch.alpha)
        hy, hx = patch.y // 2, patch.x // 2
        for c in (0, 1):
            _blend(planes[1 + c][hy : hy + h // 2, hx : hx + w // 2], patch.chroma[c], patch.alpha_half)
        return True


def _blend(region: np.ndarray, premultiplied: np.ndarray, alpha: np.ndarray) -> None:
    out = region.astype(np.float32) * (1.0 - alpha) + premultiplied
    np.clip(out, 0.0, 255.0, out=out)
    np.copyto(region, np.rint(out), casting="unsafe")
