"""Play a video in headless Chromium, as a viewer's browser would, and read back what it decoded.

A tiny Chrome DevTools Protocol client over ``--remote-debugging-pipe`` (fd 3
in, fd 4 out, NUL-separated JSON): no websocket library, no fixed sleeps. The
page is served by a localhost ``http.server`` (range requests and all, like a
CDN), and one ``Runtime.evaluate`` with ``awaitPromise`` runs the whole check.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import http.server
import io
import json
import os
import select
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--mute-audio",
    "--autoplay-policy=no-user-gesture-required",
    "--remote-debugging-pipe",
]


def find_chromium() -> str | None:
    """Debian's launcher (/usr/bin/chromium: it execs the browser, so the debugging pipe survives) or another build."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


class _RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Static files with HTTP Range support (206), as CDNs serve video; without it a browser cannot seek."""

    def log_message(self, *args: Any) -> None:
        pass

    def send_head(self):  # type: ignore[override]
        path = Path(self.translate_path(self.path))
        header = self.headers.get("Range")
        if not header or not path.is_file() or not header.startswith("bytes="):
            return super().send_head()
        size = path.stat().st_size
        first, _, last = header[len("bytes="):].split(",")[0].partition("-")
        start = int(first) if first else max(0, size - int(last))
        end = min(int(last), size - 1) if first and last else size - 1
        if start >= size or start > end:
            self.send_error(416)
            return None
        fh = open(path, "rb")
        fh.seek(start)
        self.send_response(206)
        self.send_header("Content-Type", self.guess_type(str(path)))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        self._range_left = end - start + 1
        return fh

    def copyfile(self, source, outputfile) -> None:  # type: ignore[override]
        left = getattr(self, "_range_left", None)
        if left is None:
            return super().copyfile(source, outputfile)
        while left > 0:
            chunk = source.read(min(left, 1 << 16))
            if not chunk:
                break
            outputfile.write(chunk)
            left -= len(chunk)


@contextlib.contextmanager
def serve(folder: Path) -> Iterator[str]:
    """Serve ``folder`` on a free localhost port; yields the base URL."""
    handler = functools.partial(_RangeHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class Chromium:
    """One headless Chromium with a page attached; ``evaluate`` runs async JS and returns its value."""

    def __init__(self, binary: str, timeout_s: float = 60.0):
        self.timeout_s = timeout_s
        self._profile = tempfile.mkdtemp(prefix="longtake-chromium-")
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()

        def wire_pipes() -> None:
            # Chromium reads commands on fd 3 and writes replies on fd 4; dup first so the fds are inheritable.
            r, w = os.dup(to_child_r), os.dup(from_child_w)
            os.dup2(r, 3)
            os.dup2(w, 4)

        self._proc = subprocess.Popen(
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={self._profile}", "about:blank"],
            preexec_fn=wire_pipes,
            close_fds=False,  # closing happens after preexec_fn and would take fds 3 and 4 with it
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_child_r)
        os.close(from_child_w)
        self._buffer = b""
        self._next_id = 0
        try:
            targets = self._call("Target.getTargets")["targetInfos"]
            page = next(t for t in targets if t["type"] == "page")
            self._session = self._call("Target.attachToTarget", {"targetId": page["targetId"], "flatten": True})["sessionId"]
            self._call("Page.enable", session=True)
        except BaseException:
            self.close()
            raise

    def _send(self, method: str, params: dict | None, session: bool) -> int:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self._session
        os.write(self._to_child, json.dumps(message).encode() + b"\0")
        return self._next_id

    def _call(self, method: str, params: dict | None = None, *, session: bool = False, timeout_s: float | None = None) -> dict:
        want = self._send(method, params, session)
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        while True:
            while b"\0" not in self._buffer:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([self._from_child], [], [], left)[0]:
                    raise TimeoutError(f"chromium did not answer {method} in time")
                chunk = os.read(self._from_child, 1 << 16)
                if not chunk:
                    raise RuntimeError("chromium exited")
                self._buffer += chunk
            raw, self._buffer = self._buffer.split(b"\0", 1)
            message = json.loads(raw)
            if message.get("id") == want:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    def navigate(self, url: str) -> None:
        self._call("Page.navigate", {"url": url}, session=True)
        # Wait until the document exists (the evaluate below needs a body).
        for _ in range(200):
            ready = self.evaluate("document.readyState")
            if ready == "complete":
                return
            time.sleep(0.05)
        raise TimeoutError(f"{url} did not finish loading")

    def evaluate(self, expression: str) -> Any:
        result = self._call(
            "Runtime.evaluate",
            {"expression": expression, "awaitPromise": True, "returnByValue": True, "timeout": int(self.timeout_s * 1000)},
            session=True,
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise RuntimeError(details.get("exception", {}).get("description") or details.get("text"))
        return result["result"].get("value")

    def close(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self._proc.kill()
        self._proc.wait(timeout=10)
        for fd in (self._to_child, self._from_child):
            with contextlib.suppress(OSError):
                os.close(fd)
        shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> "Chromium":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


PLAY_AND_GRAB = """
(async () => {
  const v = document.createElement('video');
  v.muted = true; v.preload = 'auto'; v.src = %(src)s;
  document.body.appendChild(v);
  await new Promise((ok, bad) => { v.onloadedmetadata = ok; v.onerror = () => bad(new Error('media error ' + (v.error && v.error.code) + ' ' + (v.error && v.error.message))); });
  const out = {duration: v.duration, width: v.videoWidth, height: v.videoHeight, grabs: []};
  v.playbackRate = %(rate)s;
  await v.play();
  await new Promise((ok, bad) => { v.onended = ok; v.onerror = () => bad(new Error('error while playing')); });
  const q = v.getVideoPlaybackQuality();
  out.decoded = q.totalVideoFrames; out.dropped = q.droppedVideoFrames; out.ended = v.ended; out.end_time = v.currentTime;
  const c = document.createElement('canvas'); c.width = v.videoWidth; c.height = v.videoHeight;
  const g = c.getContext('2d');
  for (const t of %(times)s) {
    v.currentTime = t;
    await new Promise(ok => { v.onseeked = ok; });
    // The seeked frame is on screen once a video frame callback fires (bounded: headless may not composite).
    await Promise.race([new Promise(ok => v.requestVideoFrameCallback(() => ok())), new Promise(ok => setTimeout(ok, 300))]);
    g.drawImage(v, 0, 0);
    out.grabs.push(c.toDataURL('image/png'));
  }
  return out;
})()
"""


def play_video(binary: str, video: Path, seek_times_s: list[float], *, playback_rate: float = 4.0) -> dict:
    """Play ``video`` to the end in a ``<video>`` element, then seek to each time and grab the frame shown.

    Returns duration, size, decoded/dropped frame counts, ``ended`` and the grabs as RGB uint8 arrays.
    """
    from PIL import Image

    folder = Path(video).parent
    (folder / "play.html").write_text("<!doctype html><html><body></body></html>\n")
    with serve(folder) as base, Chromium(binary) as browser:
        browser.navigate(f"{base}/play.html")
        result = browser.evaluate(PLAY_AND_GRAB % {"src": json.dumps(f"{base}/{Path(video).name}"), "rate": playback_rate, "times": json.dumps(seek_times_s)})
    grabs = []
    for url in result.pop("grabs"):
        png = base64.b64decode(url.split(",", 1)[1])
        grabs.append(np.asarray(Image.open(io.BytesIO(png)).convert("RGB")))
    result["grabs"] = grabs
    return result
