"""The fal.ai generator: LTX-2.3 audio-to-video hosted on fal, for creators without a 40-GB GPU.

Per segment it uploads the segment's audio span (FLAC, lossless) and its
conditioning image(s) (PNG), submits one queue request through ``fal-client``,
shows the queue position and progress, and downloads the result into the
segment's cache entry at once (fal keeps results for about an hour).

Never paying twice: a request's id is written durably (fsync) to
``<workdir>/fal/<segment key>.json`` before it is first polled. A run that dies
at any point re-attaches on resume to that request, in flight or finished,
instead of submitting again; a finished request whose download failed is
downloaded again. Only a request that failed on fal's side, or whose result
expired before it was downloaded, is submitted anew (the error says so).

Segments that do not depend on each other (``anchor``, ``bookend``) are queued
up to ``max_in_flight`` at a time: while one is polled the next ones already
run on fal. ``tail`` chaining cannot run here (the endpoints take images, not
a latent prefix); ``last-frame`` sends the previous segment's colour-held last
frame as ``image_url``.

The key comes from ``FAL_KEY`` only and goes into nothing but the
Authorization header. ``LONGTAKE_FAL_URL`` points the queue, the uploads and
the result downloads at another server (a company proxy, a test server):
fal-client fixes its hosts and forces https, so the requests are re-routed by
an httpx transport here, with the original host in ``X-Fal-Original-Host``.

Prices live in ``ENDPOINTS`` with the date they were read; ``estimate_cost``
turns a plan into dollars (per megapixel of generated video, per request, as fal bills it).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from generators import register
from generators.base import GenerateRequest, GenerateResult, Generator, ProgressFn
from orchestrator.atomic import atomic_path, atomic_write_text
from orchestrator.errors import ConfigError, GeneratorError
from segmenters.plan import FrameGrid

if TYPE_CHECKING:  # pragma: no cover
    from segmenters.plan import Plan

log = logging.getLogger("longtake")

KEY_ENV = "FAL_KEY"
URL_ENV = "LONGTAKE_FAL_URL"
JOURNAL_DIR = "fal"
CLIP_NAME = "clip.mp4"
TAIL_NAME = "tail.npy"
PROTOCOL_VERSION = "fal-v1"  # bump when the arguments sent for the same request change

# LTX-2.3's grid on fal: num_frames 9…481 (8k+1), sizes multiples of 32.
FRAME_GRID = 8
SPATIAL_MULTIPLE = 32
MAX_FRAMES = 481

PRICES_READ_ON = "2026-11-30"
# Hosts fal-client talks to (fal_client 1.0.3: queue, run, REST storage, CDN uploads and results, backup domains).
FAL_HOSTS = ("queue.fal.run", "fal.run", "rest.fal.ai", "v3.fal.media", "v3b.fal.media", "fal.media", "queue.falrun.com", "falrun.com")

RETRIES_5XX = 4  # our own retries of a 5xx answer (fal-client retries 429, 408/409 and ingress 502–504 itself)
RETRY_DELAY_S = 1.0  # doubled per retry
DOWNLOAD_ATTEMPTS = 3
DOWNLOAD_CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class EndpointSpec:
    """What one fal endpoint takes and costs."""

    price_per_mp_usd: float  # per megapixel of generated video (width × height × frames), rounded up per request
    price_note: str  # where the price comes from
    end_image: bool = True  # takes end_image_url (bookend)
    seed: bool = True
    custom_size: bool = True
    fps: bool = True


ENDPOINTS: dict[str, EndpointSpec] = {
    "fal-ai/ltx-2.3-22b/distilled/audio-to-video": EndpointSpec(
        0.001205, f"fal.ai model page, read {PRICES_READ_ON}"),
    "fal-ai/ltx-2.3-22b/audio-to-video": EndpointSpec(
        0.001605, f"not published in what we could read on {PRICES_READ_ON}: assumed equal to fal-ai/ltx-2.3-22b/video-to-video's; check fal.ai/pricing"),
    "fal-ai/ltx-2.3-quality/audio-to-video": EndpointSpec(
        0.0027075, f"the /lora variant's price, read {PRICES_READ_ON} (an upper bound for the plain endpoint)", end_image=False),
}


# ------------------------------------------------------------------------------------
# cost
# ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CostEstimate:
    endpoint: str
    total_usd: float
    megapixels: float  # billed megapixels, summed over the requests
    requests: int
    price_per_mp_usd: float
    price_note: str

    def describe(self) -> str:
        return (f"estimated fal.ai cost: ${self.total_usd:.2f} for {self.requests} request(s), {self.megapixels:,.1f} MP of video "
                f"on {self.endpoint} at ${self.price_per_mp_usd:g}/MP ({self.price_note})")


def request_megapixels(width: int, height: int, num_frames: int) -> float:
    """Megapixels of generated video one request bills. fal says "rounded up", but its own worked example
    (121 frames at 1280×720 ≈ 111.5 MP → $0.1344) bills the exact figure; we round up to 0.1 MP to stay on the safe side."""
    return math.ceil(width * height * num_frames / 1e5) / 10


def estimate_cost(endpoint: str, width: int, height: int, frames_per_request: list[int]) -> CostEstimate:
    spec = ENDPOINTS[endpoint]
    mps = [request_megapixels(width, height, n) for n in frames_per_request]
    return CostEstimate(endpoint, sum(mps) * spec.price_per_mp_usd, sum(mps), len(mps), spec.price_per_mp_usd, spec.price_note)


def plan_cost(endpoint: str, plan: "Plan", indices: list[int] | None = None) -> CostEstimate:
    segments = plan.segments if indices is None else [plan.segments[i] for i in indices]
    return estimate_cost(endpoint, plan.width, plan.height, [s.gen_frames for s in segments])


# ------------------------------------------------------------------------------------
# the client: fal-client, optionally re-routed to LONGTAKE_FAL_URL
# ------------------------------------------------------------------------------------

def _rerouting_transport(base_url: str):
    """An httpx transport sending requests for fal's hosts to ``base_url`` instead (same path and query)."""
    import httpx

    base = httpx.URL(base_url)
    prefix = base.raw_path.rstrip(b"/")

    class Reroute(httpx.HTTPTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            host = request.url.host
            if host in FAL_HOSTS or host.endswith(".fal.media") or host.endswith(".fal.run"):
                request.headers["X-Fal-Original-Host"] = host
                request.url = request.url.copy_with(scheme=base.scheme, host=base.host, port=base.port, raw_path=prefix + request.url.raw_path)
                request.headers["Host"] = base.netloc.decode("ascii")
            return super().handle_request(request)

    return Reroute()


def make_client(key: str, base_url: str | None):
    """A fal-client SyncClient with ``key``; with ``base_url``, every fal host is re-routed there."""
    import fal_client

    if not base_url:
        return fal_client.SyncClient(key=key)

    from functools import cached_property

    import httpx
    from fal_client.client import USER_AGENT, CDNToken, CDNTokenManager

    transport = _rerouting_transport(base_url)

    class RoutedTokenManager(CDNTokenManager):
        def _refresh_token(self) -> CDNToken:
            from datetime import datetime

            with httpx.Client(transport=transport) as client:
                response = client.post(self._url, headers=self._headers, json={})
                response.raise_for_status()
                data = response.json()
            return CDNToken(token=data["token"], token_type=data["token_type"], base_upload_url=data["base_url"],
                            expires_at=datetime.fromisoformat(data["expires_at"]))

    class RoutedClient(fal_client.SyncClient):
        @cached_property
        def _client(self) -> httpx.Client:
            return httpx.Client(transport=transport, headers={"Authorization": self._auth.header_value, "User-Agent": USER_AGENT},
                                timeout=self.default_timeout, follow_redirects=True)

        @cached_property
        def _token_manager(self) -> CDNTokenManager:
            return RoutedTokenManager(self._auth)

        def _get_cdn_client(self) -> httpx.Client:
            token = self._token_manager.get_token()
            return httpx.Client(transport=transport, headers={"Authorization": f"{token.token_type} {token.token}", "User-Agent": USER_AGENT},
                                timeout=self.default_timeout)

    client = RoutedClient(key=key)
    client.download_transport = transport  # type: ignore[attr-defined]
    return client


# ------------------------------------------------------------------------------------
# the journal: request ids written durably before the first poll
# ------------------------------------------------------------------------------------

class RequestJournal:
    """One JSON file per segment key under ``<workdir>/fal``: the fal request that makes (or made) that segment.

    ``status``: ``submitted`` (in flight or finished, not yet downloaded) · ``completed`` (finished; ``video_url``
    known) · ``failed`` / ``expired`` (a rerun submits anew). The files hold no secret: ids, URLs, times.
    """

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def path(self, key: str) -> Path:
        return self.folder / f"{key}.json"

    def read(self, key: str) -> dict | None:
        try:
            return json.loads(self.path(key).read_text())
        except (OSError, ValueError):
            return None

    def write(self, key: str, record: dict) -> None:
        atomic_write_text(self.path(key), json.dumps(record, indent=1, sort_keys=True))  # fsynced file and folder

    def update(self, key: str, **changes: Any) -> dict:
        record = {**(self.read(key) or {}), **changes}
        self.write(key, record)
        return record

    def in_flight(self) -> list[dict]:
        """Every request submitted and not yet downloaded, oldest first."""
        records = []
        if self.folder.is_dir():
            for path in sorted(self.folder.glob("[!.]*.json")):  # not an atomic write's hidden temporary file
                try:
                    rec = json.loads(path.read_text())
                except (OSError, ValueError):
                    continue
                if rec.get("status") in ("submitted", "completed"):
                    records.append({**rec, "key": path.stem})
        return sorted(records, key=lambda r: r.get("submitted_at", 0))


def journal_for_workdir(workdir: Path) -> RequestJournal:
    return RequestJournal(Path(workdir) / JOURNAL_DIR)


# ------------------------------------------------------------------------------------
# errors → sentences
# ------------------------------------------------------------------------------------

class _Retry(Exception):
    """A 5xx answer worth another try."""


def _http_status(exc: BaseException) -> int | None:
    return getattr(exc, "status_code", None) or getattr(getattr(exc, "response", None), "status_code", None)


def _detail(exc: BaseException) -> str:
    msg = getattr(exc, "message", None) or str(exc)
    if isinstance(msg, (list, dict)):
        items = msg if isinstance(msg, list) else [msg]
        parts = []
        for item in items:
            if isinstance(item, dict):
                loc = ".".join(str(p) for p in item.get("loc", []) if p != "body")
                parts.append(f"{loc}: {item.get('msg', item)}" if loc else str(item.get("msg", item)))
            else:
                parts.append(str(item))
        return "; ".join(parts)
    return str(msg)


def _translate(exc: BaseException, what: str, where: str, base_url: str | None) -> Exception:
    """One sentence for a failed call; exit 2 for the key or the settings, 1 otherwise (finished segments are kept).

    ``answered`` on the error says whether fal answered at all (an HTTP status), i.e. whether a submit surely failed."""
    error = _sentence(exc, what, where, base_url)
    error.answered = _http_status(exc) is not None  # type: ignore[attr-defined]
    return error


def _sentence(exc: BaseException, what: str, where: str, base_url: str | None) -> Exception:
    import httpx
    from fal_client.auth import MissingCredentialsError

    status = _http_status(exc)
    if isinstance(exc, MissingCredentialsError):
        return ConfigError(f"no fal.ai key: set {KEY_ENV} in the environment (create one at https://fal.ai/dashboard/keys)")
    if status in (401, 403):
        return ConfigError(
            f"fal.ai refused the key in {KEY_ENV} (HTTP {status}) while {what}: check that it is a valid, active key "
            "(https://fal.ai/dashboard/keys) and that the account has credit; finished segments are kept"
        )
    if status == 422:
        return ConfigError(f"fal.ai rejected {where}'s request (HTTP 422): {_detail(exc)}; change that setting and run again")
    if status is not None:
        return GeneratorError(f"fal.ai answered HTTP {status} while {what} for {where}: {_detail(exc)}; "
                              "finished segments are kept; run again later to resume")
    if isinstance(exc, httpx.TransportError):
        host = base_url or "fal.ai"
        return GeneratorError(
            f"cannot reach {host} while {what} for {where} ({type(exc).__name__}: {exc}); check the network"
            f"{' and ' + URL_ENV if base_url else ''}; requests already submitted are kept and a rerun re-attaches to them"
        )
    return GeneratorError(f"fal.ai call failed while {what} for {where}: {exc}")


# ------------------------------------------------------------------------------------
# the generator
# ------------------------------------------------------------------------------------

@register
class FalGenerator(Generator):
    """LTX-2.3 audio-to-video on fal.ai: upload, submit, poll, download; re-attaches instead of paying twice."""

    NAME = "fal"

    def __init__(self, options: Any = None, *, cache_dir: Path | None = None):
        super().__init__(options, cache_dir=cache_dir)
        # cache_dir is <workdir>/models; the journal lives beside it.
        self.journal = RequestJournal((Path(cache_dir).parent if cache_dir is not None else Path(".")) / JOURNAL_DIR)
        self._client = None
        self._base_url: str | None = None
        self._queued: list[GenerateRequest] = []  # independent segments the graph will ask for next, in order
        self.submissions = 0

    # -- interface -----------------------------------------------------------------------
    @classmethod
    def grid_for(cls, options: Any) -> FrameGrid:
        return FrameGrid(frame_grid=FRAME_GRID, spatial_multiple=SPATIAL_MULTIPLE, max_frames=MAX_FRAMES)

    @property
    def endpoint(self) -> str:
        return str(getattr(self.options, "endpoint", "fal-ai/ltx-2.3-22b/distilled/audio-to-video"))

    def model_identity(self) -> str:
        o = self.options
        params = {
            "endpoint": self.endpoint,
            "image_strength": getattr(o, "image_strength", 1.0),
            "end_image_strength": getattr(o, "end_image_strength", 1.0),
            "audio_strength": getattr(o, "audio_strength", 1.0),
        }
        return f"{PROTOCOL_VERSION}:" + json.dumps(params, sort_keys=True, separators=(",", ":"))

    @classmethod
    def estimate_cost(cls, options: Any, plan: "Plan", indices: list[int] | None = None) -> CostEstimate:
        return plan_cost(str(options.endpoint), plan, indices)

    def load(self) -> None:
        if self._client is not None:
            return
        key = os.environ.get(KEY_ENV, "").strip()
        if not key:
            raise ConfigError(f"no fal.ai key: set {KEY_ENV} in the environment (create one at https://fal.ai/dashboard/keys); "
                              "longtake never reads it from the project file")
        self._base_url = os.environ.get(URL_ENV, "").strip() or None
        self._client = make_client(key, self._base_url)

    def prefetch(self, requests: list[GenerateRequest]) -> None:
        """Segments that do not depend on each other, in the order they will be asked for: queue them ahead."""
        self._queued = [r for r in requests if r.chaining in ("anchor", "bookend")]

    def generate(self, request: GenerateRequest, progress: ProgressFn | None = None) -> GenerateResult:
        t0 = time.monotonic()
        self.check_inputs(request)
        self.load()
        key = self._key(request)
        where = f"segment {request.segment_index}"
        record = self.journal.read(key)
        if record is None or record.get("status") not in ("submitted", "completed"):
            record = self._submit(request, key)
        elif progress:
            progress(0, 1, f"re-attached to fal request {record['request_id']}")
        self._top_up(exclude=key)
        if record.get("status") == "submitted":
            record = self._wait(request, key, record, progress)
        t_remote = time.monotonic() - t0
        downloaded = self._download(request, key, record, where)
        clip, tail_path = self._finish_clip(request, downloaded)
        self.journal.update(key, status="downloaded", downloaded_at=time.time())
        return GenerateResult(clip_path=clip, tail_path=tail_path, num_frames=request.num_frames,
                              timings_s={"fal": t_remote, "total": time.monotonic() - t0})

    # -- checks -----------------------------------------------------------------------------
    def check_inputs(self, request: GenerateRequest) -> None:
        spec = ENDPOINTS.get(self.endpoint)
        if spec is None:
            raise ConfigError(f"generator.endpoint {self.endpoint!r} is not one longtake knows; use one of {sorted(ENDPOINTS)}")
        if request.chaining == "tail":
            raise ConfigError("tail chaining cannot run on fal (its endpoints take images, not a latent prefix); "
                              "set generator.chaining to bookend, anchor or last-frame")
        if request.chaining == "bookend" and not spec.end_image:
            raise ConfigError(f"{self.endpoint} takes no end image, so bookend chaining cannot run on it; "
                              "use fal-ai/ltx-2.3-22b/distilled/audio-to-video, or chaining anchor or last-frame")
        if not (FRAME_GRID + 1 <= request.num_frames <= MAX_FRAMES) or (request.num_frames - 1) % FRAME_GRID:
            raise GeneratorError(f"{self.endpoint} generates {FRAME_GRID}k+1 frames between {FRAME_GRID + 1} and {MAX_FRAMES}, "
                                 f"but segment {request.segment_index} needs {request.num_frames}")
        if request.width % SPATIAL_MULTIPLE or request.height % SPATIAL_MULTIPLE:
            raise GeneratorError(f"`width` and `height` have to be divisible by {SPATIAL_MULTIPLE} but are {request.width} and {request.height}")

    # -- request content ---------------------------------------------------------------------
    def _start_image(self, request: GenerateRequest) -> np.ndarray:
        if request.chaining == "last-frame" and request.context is not None and len(request.context):
            return np.asarray(request.context[-1])
        return np.asarray(request.portrait)

    def _arguments(self, request: GenerateRequest) -> dict:
        """Everything sent but the uploaded files' URLs. Prompt expansion off: the same request gives the same video."""
        o = self.options
        spec = ENDPOINTS[self.endpoint]
        args: dict[str, Any] = {
            "prompt": request.prompt,
            "negative_prompt": request.negative_prompt,
            "num_frames": request.num_frames,
            "match_audio_length": False,
            "enable_prompt_expansion": False,
            "image_strength": float(getattr(o, "image_strength", 1.0)),
            "audio_strength": float(getattr(o, "audio_strength", 1.0)),
        }
        if spec.seed:
            args["seed"] = int(request.seed)
        if spec.fps:
            args["fps"] = float(request.fps)
        if spec.custom_size:
            args["video_size"] = {"width": int(request.width), "height": int(request.height)}
        if request.chaining == "bookend":
            args["end_image_strength"] = float(getattr(o, "end_image_strength", 1.0))
        return args

    def _key(self, request: GenerateRequest) -> str:
        if request.job_key:
            return request.job_key
        h = hashlib.sha256()
        h.update(json.dumps([self.endpoint, self._arguments(request)], sort_keys=True).encode())
        h.update(np.ascontiguousarray(request.audio).tobytes())
        h.update(np.ascontiguousarray(self._start_image(request)).tobytes())
        return h.hexdigest()

    # -- submit, poll ------------------------------------------------------------------------
    def _call(self, fn: Callable[[], Any], what: str, where: str) -> Any:
        """``fn`` with fal-client's retries, plus ours for 5xx; failures become one sentence."""
        for attempt in range(RETRIES_5XX + 1):
            try:
                return fn()
            except Exception as exc:  # noqa: BLE001 - every failure becomes a sentence below
                status = _http_status(exc)
                if status is not None and status >= 500 and attempt < RETRIES_5XX:
                    log.info("fal.ai answered HTTP %s while %s for %s; retrying", status, what, where)
                    time.sleep(RETRY_DELAY_S * 2**attempt)
                    continue
                raise _translate(exc, what, where, self._base_url) from None
        raise AssertionError("unreachable")

    def _upload_image(self, image: np.ndarray, where: str) -> str:
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)).save(buf, format="PNG")
        return self._call(lambda: self._client.upload(buf.getvalue(), "image/png", file_name="image.png"), "uploading an image", where)

    def _upload_audio(self, request: GenerateRequest, where: str) -> str:
        import soundfile as sf

        buf = io.BytesIO()
        sf.write(buf, np.asarray(request.audio, dtype=np.float32), request.sample_rate_hz, format="FLAC", subtype="PCM_24")
        return self._call(lambda: self._client.upload(buf.getvalue(), "audio/flac", file_name="audio.flac"), "uploading the audio", where)

    def _submit(self, request: GenerateRequest, key: str) -> dict:
        where = f"segment {request.segment_index}"
        args = self._arguments(request)
        args["audio_url"] = self._upload_audio(request, where)
        image_url = self._upload_image(self._start_image(request), where)
        args["image_url"] = image_url
        if request.chaining == "bookend":
            args["end_image_url"] = image_url  # the portrait again: the segment ends where it started
        previous = self.journal.read(key)
        if previous and previous.get("status") == "submitting":
            log.warning(
                "segment %d: a previous run stopped while submitting it to fal.ai, before fal's answer arrived; if fal had "
                "accepted that request it is charged although its id never reached this machine; submitting again",
                request.segment_index,
            )
        # An intent first: the only window a crash cannot re-attach across is the one between this write and the next.
        self.journal.write(key, {"segment": request.segment_index, "endpoint": self.endpoint, "status": "submitting",
                                 "started_at": time.time()})
        try:
            handle = self._submit_request(args, where)
        except (ConfigError, GeneratorError) as exc:
            if getattr(exc, "answered", False):  # fal answered with an error: nothing was accepted, nothing to warn about
                self.journal.path(key).unlink(missing_ok=True)
            raise
        record = {
            "segment": request.segment_index,
            "endpoint": self.endpoint,
            "request_id": handle.request_id,
            "status": "submitted",
            "submitted_at": time.time(),
            "num_frames": request.num_frames,
            "size": [request.width, request.height],
        }
        self.journal.write(key, record)  # durable before the first poll: a rerun re-attaches to this id
        self.submissions += 1
        log.info("segment %d: submitted to fal.ai as request %s", request.segment_index, handle.request_id)
        return record

    def _submit_request(self, args: dict, where: str):
        return self._call(lambda: self._client.submit(self.endpoint, arguments=args), "submitting", where)

    def _top_up(self, exclude: str) -> None:
        """Submit queued independent segments until max_in_flight requests are on fal."""
        limit = int(getattr(self.options, "max_in_flight", 1))
        keys = {self._key(r): r for r in self._queued}
        busy = sum(1 for k in keys if k != exclude and (self.journal.read(k) or {}).get("status") in ("submitted", "completed")) + 1
        for k, r in keys.items():
            if busy >= limit:
                break
            if k == exclude:
                continue
            rec = self.journal.read(k)
            if rec is None or rec.get("status") not in ("submitted", "completed", "downloaded"):
                self._submit(r, k)
                busy += 1

    def _wait(self, request: GenerateRequest, key: str, record: dict, progress: ProgressFn | None) -> dict:
        import fal_client

        where = f"segment {request.segment_index}"
        request_id = record["request_id"]
        handle = self._client.get_handle(self.endpoint, request_id)
        interval = float(getattr(self.options, "poll_interval_s", 2.0))
        while True:
            status = self._call(lambda: handle.status(with_logs=True), "polling", where)
            if isinstance(status, fal_client.Queued):
                if progress:
                    progress(0, 1, f"queued on fal.ai (position {status.position}, request {request_id})")
            elif isinstance(status, fal_client.InProgress):
                last = next((str(entry.get("message", "")) for entry in reversed(status.logs or []) if isinstance(entry, dict)), "")
                if progress:
                    progress(0, 1, f"running on fal.ai{': ' + last if last else ''}")
            elif isinstance(status, fal_client.Completed):
                if status.error:
                    self.journal.update(key, status="failed", error=str(status.error))
                    raise GeneratorError(
                        f"{where}'s request {request_id} failed on fal.ai: {status.error}; finished segments are kept, "
                        "and a rerun submits this segment again"
                    )
                break
            time.sleep(interval)
        try:
            result = self._client.result(self.endpoint, request_id)
        except Exception as exc:  # noqa: BLE001
            code = _http_status(exc)
            if code in (404, 410):
                self.journal.update(key, status="expired")
                raise GeneratorError(
                    f"{where}'s result (fal request {request_id}) has expired on fal.ai before it was downloaded "
                    "(fal keeps results about an hour); a rerun generates this segment again, which is charged again"
                ) from None
            if code is not None and code < 500 and code not in (401, 403, 422):
                self.journal.update(key, status="failed", error=_detail(exc))
                raise GeneratorError(f"{where}'s request {request_id} failed on fal.ai: {_detail(exc)}; a rerun submits it again") from None
            raise _translate(exc, "fetching the result", where, self._base_url) from None
        url = ((result or {}).get("video") or {}).get("url")
        if not url:
            self.journal.update(key, status="failed", error="no video in the result")
            raise GeneratorError(f"{where}'s request {request_id} finished on fal.ai without a video in its result: {str(result)[:200]}")
        return self.journal.update(key, status="completed", video_url=url, completed_at=time.time())

    # -- download, normalise ---------------------------------------------------------------------
    def _download(self, request: GenerateRequest, key: str, record: dict, where: str) -> Path:
        import httpx

        url = record["video_url"]
        out_dir = Path(request.out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        target = out_dir / "download.mp4"
        transport = getattr(self._client, "download_transport", None)
        last: BaseException | None = None
        for attempt in range(DOWNLOAD_ATTEMPTS):
            try:
                with httpx.Client(transport=transport, timeout=httpx.Timeout(120.0, connect=30.0), follow_redirects=True) as http:
                    with http.stream("GET", url) as response:
                        if response.status_code in (403, 404, 410):
                            self.journal.update(key, status="expired")
                            raise GeneratorError(
                                f"{where}'s result (fal request {record['request_id']}) has expired on fal.ai before it was downloaded "
                                f"(HTTP {response.status_code}; fal keeps results about an hour); a rerun generates this segment again, "
                                "which is charged again"
                            )
                        response.raise_for_status()
                        with atomic_path(target) as tmp, open(tmp, "wb") as fh:
                            for chunk in response.iter_bytes(DOWNLOAD_CHUNK_BYTES):
                                fh.write(chunk)
                return target
            except GeneratorError:
                raise
            except (httpx.HTTPError, OSError) as exc:
                last = exc
                time.sleep(RETRY_DELAY_S * 2**attempt)
        raise GeneratorError(
            f"{where}: downloading the finished result of fal request {record['request_id']} failed ({type(last).__name__}: {last}); "
            "it stays on fal for about an hour and a rerun downloads it without generating it again"
        )

    def _finish_clip(self, request: GenerateRequest, downloaded: Path) -> tuple[Path, Path | None]:
        """The clip at exactly the requested frames and size (fal may round either), and the tail for the next segment."""
        from stitchers.clip_io import ClipWriter, iter_frames, probe_video

        out_dir = Path(request.out_dir)
        clip = out_dir / CLIP_NAME
        info = probe_video(downloaded)
        n, w, h = request.num_frames, request.width, request.height
        lo, hi = request.tail_start, request.tail_start + request.tail_frames
        tail: list[np.ndarray] = []
        if (info.width, info.height, info.num_frames) == (w, h, n):
            if request.tail_frames:
                for i, frame in enumerate(iter_frames(downloaded)):
                    if lo <= i < hi:
                        tail.append(frame)
                    if i + 1 >= hi:
                        break
            os.replace(downloaded, clip)
        else:
            import cv2

            log.warning("segment %d: fal returned %d frames of %d×%d for %d of %d×%d; scaled and %s to fit",
                        request.segment_index, info.num_frames, info.width, info.height, n, w, h,
                        "trimmed" if info.num_frames > n else "held on its last frame")
            last = None
            with ClipWriter(clip, w, h, request.fps) as writer:
                frames = iter_frames(downloaded)
                for i in range(n):
                    frame = next(frames, None)
                    if frame is None:
                        frame = last
                    else:
                        frame = _cover(frame, w, h, cv2)
                    if frame is None:
                        raise GeneratorError(f"segment {request.segment_index}: fal returned a video with no frames")
                    writer.write(frame)
                    if lo <= i < hi:
                        tail.append(frame)
                    last = frame
            downloaded.unlink(missing_ok=True)
        if not request.tail_frames:
            return clip, None
        tail_path = out_dir / TAIL_NAME
        with atomic_path(tail_path) as tmp, open(tmp, "wb") as fh:
            np.save(fh, np.stack(tail))
        return clip, tail_path


def _cover(frame: np.ndarray, width: int, height: int, cv2) -> np.ndarray:
    """Scale to cover ``width``×``height`` and crop the middle (never stretched)."""
    fh, fw = frame.shape[:2]
    scale = max(width / fw, height / fh)
    nw, nh = max(width, round(fw * scale)), max(height, round(fh * scale))
    resized = cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    x0, y0 = (nw - width) // 2, (nh - height) // 2
    return np.ascontiguousarray(resized[y0:y0 + height, x0:x0 + width])


__all__ = ["ENDPOINTS", "PRICES_READ_ON", "CostEstimate", "FalGenerator", "RequestJournal", "estimate_cost", "journal_for_workdir",
           "make_client", "plan_cost"]
