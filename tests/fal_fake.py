"""A local fake of fal.ai's queue, storage and CDN, speaking the protocol as fal-client 1.0.3 uses it.

Bound to 127.0.0.1 on a free port; point longtake at it with LONGTAKE_FAL_URL.
Routes (the paths fal-client builds; the host part is re-routed by longtake):

* ``POST /storage/auth/token`` → a CDN token; ``POST /files/upload`` → ``access_url``; ``GET /files/<id>``
* ``POST /<owner>/<alias>/<path>`` (submit) → request id and its status/response/cancel URLs
* ``GET …/requests/<id>/status`` → IN_QUEUE (with queue_position) · IN_PROGRESS (with logs) · COMPLETED
* ``GET …/requests/<id>`` → ``{"video": {"url": …}, "seed": …}``; ``PUT …/requests/<id>/cancel``

Each request is rendered by the animatic generator from the uploaded image and
audio at the requested frames, fps and size (``end_image_url`` → bookend), on a
worker thread, after ``queue_s`` in the queue and ``run_s`` running. The server
counts submissions and can be told to fail (the ``fail_*`` attributes).
Everything is bounded: worker threads sleep a fixed time, the server stops on ``close()``.
"""

from __future__ import annotations

import io
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from fractions import Fraction
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import numpy as np

KEY = "fake-fal-key-7c1d9e"  # what the fake accepts; tests check it never lands in the workdir


@dataclass
class FakeRequest:
    request_id: str
    app: str  # owner/alias
    endpoint: str
    arguments: dict
    submitted_at: float
    queue_s: float
    run_s: float
    done: threading.Event = field(default_factory=threading.Event)
    video_id: str | None = None
    error: str | None = None
    downloaded_at: float | None = None
    cancelled: bool = False


class FakeFal:
    """The fake server. Counters and switches are plain attributes (set them before the run)."""

    def __init__(self, workdir: Path, *, queue_s: float = 0.0, run_s: float = 0.3):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.queue_s, self.run_s = queue_s, run_s
        self.files: dict[str, tuple[bytes, str]] = {}
        self.requests: dict[str, FakeRequest] = {}
        self.submissions = 0
        self.lock = threading.Lock()
        self.seen_headers: list[dict] = []
        # failure switches
        self.fail_auth = False  # every call: 401
        self.fail_validation = False  # submit: 422 with a detail
        self.fail_5xx = 0  # the next N status polls answer 500
        self.fail_request = False  # requests complete with an error
        self.expire_results = False  # result files answer 404
        self.drop_connections = 0  # the next N status polls: connection closed without an answer
        self.drop_downloads = 0  # the next N result-file downloads: connection closed mid-body
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._server.handle_error = lambda request, address: None  # a dropped connection is the point, not a failure
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        for req in self.requests.values():
            req.done.wait(30)

    # -- analysis helpers for tests --------------------------------------------------------
    def max_concurrent(self) -> int:
        """Most requests that were submitted and not yet finished at one moment."""
        spans = [(r.submitted_at, r.submitted_at + r.queue_s + r.run_s) for r in self.requests.values()]
        return max((sum(1 for a, b in spans if a <= t < b) for t, _ in spans), default=0)

    # -- rendering ---------------------------------------------------------------------------
    def _render(self, req: FakeRequest) -> None:
        try:
            time.sleep(req.queue_s + req.run_s)
            if self.fail_request:
                req.error = "CUDA out of memory on the fake GPU"
                return
            req.video_id = self._render_video(req.arguments, req.request_id)
        except Exception as exc:  # pragma: no cover - shows up as a failed request
            req.error = f"fake render failed: {exc!r}"
        finally:
            req.done.set()

    def _file_from_url(self, url: str) -> bytes:
        file_id = url.rstrip("/").rsplit("/", 1)[-1]
        return self.files[file_id][0]

    def _render_video(self, args: dict, request_id: str) -> str:
        import cv2
        import soundfile as sf
        from PIL import Image

        from generators.animatic import AnimaticGenerator
        from generators.base import GenerateRequest

        size = args["video_size"]
        w, h = int(size["width"]), int(size["height"])
        image = np.asarray(Image.open(io.BytesIO(self._file_from_url(args["image_url"]))).convert("RGB"))
        if image.shape[:2] != (h, w):
            image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
        audio, rate = sf.read(io.BytesIO(self._file_from_url(args["audio_url"])), dtype="float32", always_2d=True)
        n = int(args["num_frames"])
        out = self.workdir / request_id
        request = GenerateRequest(
            segment_index=0, num_frames=n, width=w, height=h, fps=Fraction(args["fps"]).limit_denominator(1001), audio=audio,
            sample_rate_hz=int(rate), prompt=args["prompt"], negative_prompt=args.get("negative_prompt", ""), seed=int(args["seed"]),
            portrait=np.ascontiguousarray(image), chaining="bookend" if args.get("end_image_url") else "anchor", out_dir=out,
        )
        result = AnimaticGenerator().generate(request)
        video_id = uuid.uuid4().hex
        self.files[video_id] = (result.clip_path.read_bytes(), "video/mp4")
        return video_id

    # -- HTTP ---------------------------------------------------------------------------------
    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _json(self, code: int, body) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _body(self) -> bytes:
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n) if n else b""

            def _drop(self) -> None:
                self.close_connection = True
                self.connection.shutdown(2)

            def _authorised(self, cdn: bool = False) -> bool:
                fake.seen_headers.append(dict(self.headers))
                auth = self.headers.get("Authorization", "")
                ok = auth == f"Key {KEY}" or (cdn and auth == "Bearer cdn-token")
                if fake.fail_auth or not ok:
                    self._json(401, {"detail": "Invalid API key"})
                    return False
                return True

            def do_POST(self):  # noqa: N802
                path = urlparse(self.path).path
                body = self._body()
                if path == "/storage/auth/token":
                    if not self._authorised():
                        return
                    expires = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()
                    return self._json(200, {"token": "cdn-token", "token_type": "Bearer", "base_url": fake.url, "expires_at": expires})
                if path == "/files/upload":
                    if not self._authorised(cdn=True):
                        return
                    file_id = uuid.uuid4().hex
                    fake.files[file_id] = (body, self.headers.get("Content-Type", "application/octet-stream"))
                    return self._json(200, {"access_url": f"{fake.url}/files/{file_id}"})
                if not self._authorised():
                    return
                parts = path.strip("/").split("/")
                endpoint = "/".join(parts)
                args = json.loads(body or b"{}")
                if fake.fail_validation:
                    return self._json(422, {"detail": [{"loc": ["body", "video_size"], "msg": "width × height exceeds the maximum of 2 MP",
                                                         "type": "value_error"}]})
                missing = [k for k in ("prompt", "audio_url", "image_url", "num_frames", "video_size", "fps", "seed") if k not in args]
                if missing or not (9 <= int(args.get("num_frames", 0)) <= 481):
                    return self._json(422, {"detail": [{"loc": ["body", m], "msg": "field required"} for m in missing] or
                                            [{"loc": ["body", "num_frames"], "msg": "must be 9–481"}]})
                rid = uuid.uuid4().hex
                req = FakeRequest(rid, "/".join(parts[:2]), endpoint, args, time.time(), fake.queue_s, fake.run_s)
                with fake.lock:
                    fake.requests[rid] = req
                    fake.submissions += 1
                threading.Thread(target=fake._render, args=(req,), daemon=True).start()
                base = f"{fake.url}/{req.app}/requests/{rid}"
                return self._json(200, {"request_id": rid, "response_url": base, "status_url": base + "/status", "cancel_url": base + "/cancel"})

            def do_PUT(self):  # noqa: N802
                self._body()
                m = re.match(r"^/[^/]+/[^/]+/requests/([0-9a-f]+)/cancel$", urlparse(self.path).path)
                if not self._authorised():
                    return
                if not m or m.group(1) not in fake.requests:
                    return self._json(404, {"detail": "request not found"})
                fake.requests[m.group(1)].cancelled = True
                return self._json(202, {"status": "CANCELLATION_REQUESTED"})

            def do_GET(self):  # noqa: N802
                parsed = urlparse(self.path)
                path = parsed.path
                if path.startswith("/files/"):
                    file_id = path.rsplit("/", 1)[-1]
                    if file_id not in fake.files or (fake.expire_results and fake.files[file_id][1] == "video/mp4"):
                        return self._json(404, {"detail": "file not found"})
                    data, ctype = fake.files[file_id]
                    self.send_response(200)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    if ctype == "video/mp4" and fake.drop_downloads > 0:
                        fake.drop_downloads -= 1
                        self.wfile.write(data[: len(data) // 3])
                        return self._drop()
                    self.wfile.write(data)
                    return
                if not self._authorised():
                    return
                m = re.match(r"^/[^/]+/[^/]+/requests/([0-9a-f]+)(/status)?$", path)
                if not m or m.group(1) not in fake.requests:
                    return self._json(404, {"detail": "request not found"})
                req = fake.requests[m.group(1)]
                if m.group(2):
                    if fake.drop_connections > 0:
                        fake.drop_connections -= 1
                        return self._drop()
                    if fake.fail_5xx > 0:
                        fake.fail_5xx -= 1
                        return self._json(500, {"detail": "internal server error"})
                    elapsed = time.time() - req.submitted_at
                    logs = parse_qs(parsed.query).get("logs", ["false"])[0] in ("1", "true", "True")
                    if req.done.is_set():
                        body = {"status": "COMPLETED", "logs": [] if logs else None, "metrics": {"inference_time": req.run_s}}
                        if req.error:
                            body.update(error=req.error, error_type="runner_error")
                        return self._json(200, body)
                    if elapsed < req.queue_s:
                        ahead = sum(1 for r in fake.requests.values() if r.submitted_at < req.submitted_at and not r.done.is_set())
                        return self._json(200, {"status": "IN_QUEUE", "queue_position": ahead})
                    return self._json(200, {"status": "IN_PROGRESS", "logs": [{"message": "denoising", "level": "INFO"}] if logs else None})
                if not req.done.is_set():
                    return self._json(400, {"detail": "request is still in progress"})
                if req.error:
                    return self._json(500, {"detail": req.error})
                return self._json(200, {"video": {"url": f"{fake.url}/files/{req.video_id}", "content_type": "video/mp4"},
                                        "seed": req.arguments.get("seed")})

        return Handler
