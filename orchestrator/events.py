"""Progress and machine-readable events.

Every step reports through one ``Events`` object: a progress line on stderr
(only when stderr is a terminal) and, with ``--json``, one JSON object per line
on stdout. Logging goes through the same object so a log line never breaks the
progress line.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, TextIO


class Events:
    def __init__(self, *, json_out: bool = False, progress: bool | None = None, stream: TextIO | None = None,
                 fields: dict[str, Any] | None = None):
        """``fields`` go into every JSON event (a batch names each event's project)."""
        self.json_out = json_out
        self.fields = dict(fields or {})
        self._stream = stream
        self.progress_on = self._err.isatty() if progress is None else progress
        self._line_len = 0
        self._t0 = time.monotonic()
        self.total_segments = 0
        self.done_segments = 0
        self._segment_times: list[float] = []

    @property
    def _err(self) -> TextIO:
        # Looked up on every write: a test harness (or a caller) may swap sys.stderr after we were made.
        return self._stream or sys.stderr

    # -- machine events -----------------------------------------------------------
    def emit(self, event: str, **fields: Any) -> None:
        if self.json_out:
            record = {"event": event, "t_s": round(time.monotonic() - self._t0, 3), **self.fields, **fields}
            sys.stdout.write(json.dumps(record, default=str) + "\n")
            sys.stdout.flush()

    # -- human progress -----------------------------------------------------------
    def status(self, text: str) -> None:
        if not self.progress_on:
            return
        eta = self._eta()
        line = f"[{self.done_segments}/{self.total_segments} segments{eta}] {text}"
        pad = max(0, self._line_len - len(line))
        self._err.write("\r" + line + " " * pad)
        self._err.flush()
        self._line_len = len(line)

    def segment_done(self, seconds: float, cached: bool) -> None:
        self.done_segments += 1
        if not cached:
            self._segment_times.append(seconds)

    def _eta(self) -> str:
        left = self.total_segments - self.done_segments
        if not self._segment_times or left <= 0:
            return ""
        per = sum(self._segment_times) / len(self._segment_times)
        secs = int(per * left)
        return f", ETA {secs // 60}:{secs % 60:02d}"

    def clear(self) -> None:
        if self.progress_on and self._line_len:
            self._err.write("\r" + " " * self._line_len + "\r")
            self._err.flush()
            self._line_len = 0

    def say(self, text: str) -> None:
        """A human line on stderr (not in --json mode's stdout)."""
        self.clear()
        self._err.write(text + "\n")
        self._err.flush()


class EventsLogHandler(logging.Handler):
    """Routes the 'longtake' logger through Events so warnings don't tear the progress line."""

    def __init__(self, events: Events):
        super().__init__(level=logging.INFO)
        self.events = events

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        prefix = {logging.WARNING: "warning: ", logging.ERROR: "error: "}.get(record.levelno, "")
        self.events.say(prefix + msg)
        self.events.emit("log", level=record.levelname.lower(), message=msg)
