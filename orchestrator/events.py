"""Progress and machine-readable events.

Every step reports through one ``Events`` object: a progress line on stderr
(only when stderr is a terminal, repainted at most ``MAX_REPAINT_HZ`` times a
second, whatever rate a step reports at; a step's final state is always shown) and, with ``--json``, one JSON object per line
on stdout. Logging goes through the same object so a log line never breaks the
progress line.

A Ray batch finishes projects on driver threads while the pool loop reports
segments, each project through its own ``Events``: every write to stdout or
stderr holds one module-level lock, so two threads never interleave parts of
a JSON line or of a progress repaint.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from typing import Any, TextIO

# A terminal line repainted faster than the eye reads only costs time (a 3-minute
# stitch reports 4,320 frames); 10 Hz still looks live.
MAX_REPAINT_HZ = 10.0

# One for the process: the Events of a batch's projects and of its pool share stdout and stderr. Reentrant: say()
# clears the line under it.
_WRITE_LOCK = threading.RLock()


class Events:
    def __init__(self, *, json_out: bool = False, progress: bool | None = None, stream: TextIO | None = None,
                 fields: dict[str, Any] | None = None):
        """``fields`` go into every JSON event (a batch names each event's project)."""
        self.json_out = json_out
        self.fields = dict(fields or {})
        self._stream = stream
        self.progress_on = self._err.isatty() if progress is None else progress
        self._line_len = 0
        self._painted_at = -1e9
        self._t0 = time.monotonic()
        self.total_segments = 0
        self.done_segments = 0
        self._segment_times: list[float] = []
        self._stop = threading.Event()

    @property
    def _err(self) -> TextIO:
        # Looked up on every write: a test harness (or a caller) may swap sys.stderr after we were made.
        return self._stream or sys.stderr

    # -- machine events -----------------------------------------------------------
    def emit(self, event: str, **fields: Any) -> None:
        if self.json_out:
            record = {"event": event, "t_s": round(time.monotonic() - self._t0, 3), **self.fields, **fields}
            line = json.dumps(record, default=str) + "\n"
            with _WRITE_LOCK:
                sys.stdout.write(line)
                sys.stdout.flush()

    # -- stopping a step on another thread ------------------------------------------
    def stop_at_next_progress(self) -> None:
        """Make the next progress report raise KeyboardInterrupt: how Ctrl-C reaches a step running on a thread
        other than the main one (a batch's finishing), which Python's own Ctrl-C never interrupts. A step reports
        progress every frame, so it stops within a frame, its temp folder removed as on a Ctrl-C."""
        self._stop.set()

    # -- human progress -----------------------------------------------------------
    def status(self, text: str, *, final: bool = False) -> None:
        """Show ``text`` on the progress line; a repaint within 1/MAX_REPAINT_HZ of the last is skipped unless ``final``."""
        if self._stop.is_set():
            raise KeyboardInterrupt
        if not self.progress_on:
            return
        with _WRITE_LOCK:
            now = time.monotonic()
            if not final and self._line_len and now - self._painted_at < 1.0 / MAX_REPAINT_HZ:
                return
            self._painted_at = now
            eta = self._eta()
            line = f"[{self.done_segments}/{self.total_segments} segments{eta}] {text}"
            pad = max(0, self._line_len - len(line))
            self._err.write("\r" + line + " " * pad)
            self._err.flush()
            self._line_len = len(line)

    def progress(self, what: str, done: int, total: int) -> None:
        """``what done/total`` on the progress line, throttled; the last one (done == total) is always shown."""
        self.status(f"{what} {done}/{total}", final=done >= total)

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
        with _WRITE_LOCK:
            if self.progress_on and self._line_len:
                self._err.write("\r" + " " * self._line_len + "\r")
                self._err.flush()
                self._line_len = 0

    def say(self, text: str) -> None:
        """A human line on stderr (not in --json mode's stdout)."""
        with _WRITE_LOCK:
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
