"""Integer time: audio positions are samples, video positions are frames at a Fraction fps.

Seconds are for display only. Every conversion rounds half up with integer
arithmetic, so the same frame always maps to the same sample on every machine.
"""

from __future__ import annotations

from fractions import Fraction


def parse_fps(value: str | int | float | Fraction) -> Fraction:
    """'24', '24/1', '30000/1001', 25, 29.97 → Fraction (floats are limited to /1001 forms)."""
    if isinstance(value, Fraction):
        fps = value
    elif isinstance(value, int):
        fps = Fraction(value)
    elif isinstance(value, float):
        fps = Fraction(value).limit_denominator(1001)
    else:
        fps = Fraction(str(value).strip())
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {value!r}")
    return fps


def fps_str(fps: Fraction) -> str:
    """Fraction(24) → '24/1' (the plan's stable spelling)."""
    return f"{fps.numerator}/{fps.denominator}"


def _div_round(num: int, den: int) -> int:
    """round(num/den) with halves rounded up, exact for any integers (den > 0)."""
    return (2 * num + den) // (2 * den)


def frame_to_sample(frame: int, fps: Fraction, sample_rate_hz: int) -> int:
    """First audio sample of video frame ``frame``."""
    return _div_round(frame * sample_rate_hz * fps.denominator, fps.numerator)


def sample_to_frame(sample: int, fps: Fraction, sample_rate_hz: int) -> int:
    """Nearest frame boundary to audio sample ``sample``."""
    return _div_round(sample * fps.numerator, sample_rate_hz * fps.denominator)


def format_timestamp(seconds: float) -> str:
    """83.25 → '1:23.25' (for messages and tables)."""
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    minutes, secs = divmod(seconds, 60.0)
    return f"{sign}{int(minutes)}:{secs:05.2f}"
