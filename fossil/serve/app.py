"""The HTTP side of ``fossil serve``: a FastAPI app over a :class:`~fossil.serve.service.Service`.

Everything a model request holds in memory — its decoded image (shrunk to at most
``max_side`` pixels first), the model work and its response (PNGs, overlay) — is done on one
worker thread, one request at a time, so the server's memory does not grow with the number
of requests: a waiting request holds only its spooled upload.  A request that waits and works
longer than the time limit gets a 503 while the server keeps answering; the work it started
stops at its next stage (after decoding, after the model call) and is dropped.  Requests
name at most ``max_concepts`` concepts.  With an API key, every route but the static page
(``/`` and ``/static/…``) needs it; every route needs an allowed ``Host``
(:mod:`fossil.serve.guards`).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, BinaryIO, TypeVar

from fastapi import FastAPI, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import fossil
from fossil.concepts import Concepts
from fossil.config import PRESETS, REGION_PROPOSERS
from fossil.serve.guards import (
    LOCAL_NAMES,
    HostCheck,
    check_host_names,
    scrub,
    store_locations,
    without_paths,
)
from fossil.serve.images import decode_upload, highlight, png_bytes
from fossil.serve.responses import query_response, segment_response
from fossil.serve.service import SegmentOptions, Service, request_config

if TYPE_CHECKING:
    from fossil.serve.jobs import IngestJobs

logger = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
T = TypeVar("T")


@dataclass(frozen=True)
class ServeSettings:
    """What the server enforces, whatever the request says."""

    api_key: str | None = None  # required on every route but the static page when set
    time_limit: float = 300.0  # seconds a model request may wait and work before a 503
    max_upload_bytes: int = 20 * 1024 * 1024  # an uploaded image larger than this gets a 413
    top: int = 8  # references per concept in /query
    max_side: int = 2048  # px: a longer side is shrunk to it when decoded (design §9)
    max_concepts: int = 200  # concepts per request (COCO-Stuff has 171 classes)
    allowed_hosts: tuple[str, ...] = LOCAL_NAMES  # Host names answered ("*": any)

    def __post_init__(self) -> None:
        if self.time_limit <= 0:
            raise ValueError(f"time limit ({self.time_limit}) must be > 0 seconds")
        if self.max_upload_bytes < 1:
            raise ValueError(f"upload limit ({self.max_upload_bytes}) must be >= 1 byte")
        if self.api_key is not None and not self.api_key.strip():
            raise ValueError("the API key is empty")
        if self.max_side < 1:
            raise ValueError(f"max_side ({self.max_side}) must be >= 1 pixel")
        if self.max_concepts < 1:
            raise ValueError(f"max_concepts ({self.max_concepts}) must be >= 1")
        object.__setattr__(self, "allowed_hosts", check_host_names(self.allowed_hosts))


class Expired(Exception):
    """Raised in a model job that reaches a stage after its request's time limit."""


@dataclass(frozen=True)
class Deadline:
    """When a model job's request stops waiting (``time.monotonic()`` seconds)."""

    end: float

    def check(self) -> None:
        """Raise :class:`Expired` past the deadline: nobody waits for the rest."""
        if time.monotonic() >= self.end:
            raise Expired


class ModelQueue:
    """Runs model jobs one at a time on one thread, each within the time limit (queueing
    included).  A job is called with its :class:`Deadline`, which it checks between stages.
    A job past the limit answers a 503; a queued one never runs, a running one stops at its
    next check (a model call cannot be interrupted) and its result is dropped.  ``gate``: a
    lock held while a job works (an ingest job's batch writes take it too: a job sees whole
    batches, :mod:`fossil.serve.jobs`)."""

    def __init__(self, time_limit: float, gate: threading.RLock | None = None) -> None:
        self.time_limit = time_limit
        self.gate = gate if gate is not None else threading.RLock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fossil-model")

    async def run(self, job: Callable[[Deadline], T]) -> T:
        deadline = Deadline(time.monotonic() + self.time_limit)

        def gated(deadline: Deadline) -> T:
            with self.gate:
                return job(deadline)

        future = self._executor.submit(gated, deadline)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), self.time_limit)
        except (TimeoutError, Expired):
            future.cancel()  # still queued: it never runs
            raise HTTPException(
                503,
                f"the request did not finish within the time limit of {self.time_limit:g} s "
                "(--time-limit), queueing included; the server is still running: retry, or "
                "send a smaller image or fewer concepts",
                headers={"Retry-After": "5"},
            ) from None

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


class BodyTooLarge(Exception):
    """Raised into the app when a request body passes the limit of :class:`BodyLimit`."""


class BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes gets a 413, by its Content-Length
    before it is read, or as soon as the bytes received pass the limit (chunked uploads):
    reading stops there, and whatever the app answers is replaced by the 413."""

    def __init__(self, app: ASGIApp, limit: int, message: str) -> None:
        self.app = app
        self.limit = limit
        self.message = message

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = JSONResponse({"detail": self.message}, status_code=413)
        length = dict(scope["headers"]).get(b"content-length", b"")
        if length.isdigit() and int(length) > self.limit:
            await refusal(scope, receive, send)
            return
        received, exceeded, answered = 0, False, False

        async def counted() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    exceeded = True
                    raise BodyTooLarge(self.message)
            return message

        async def answer(message: Message) -> None:
            nonlocal answered
            if not exceeded:
                await send(message)
            elif not answered:
                answered = True
                await refusal(scope, receive, send)

        try:
            await self.app(scope, counted, answer)
        except BodyTooLarge:
            if not answered:
                await refusal(scope, receive, send)


def _public(path: str) -> bool:
    return path == "/" or path.startswith("/static/")


def _given_key(request: Request) -> str:
    key = request.headers.get("x-api-key", "")
    auth = request.headers.get("authorization", "")
    if not key and auth.lower().startswith("bearer "):
        key = auth[7:].strip()
    return key


def create_app(
    service: Service, settings: ServeSettings | None = None, jobs: IngestJobs | None = None
) -> FastAPI:
    """The app serving ``service``: the API routes, the static page, the key and host checks.
    ``jobs``: the ingest job manager (default: one on the service's collection and models,
    :mod:`fossil.serve.live`), whose gate the model requests share; the app closes it when
    it ends."""
    from fossil.serve.live import add_live_routes, build_jobs

    settings = settings if settings is not None else ServeSettings()
    jobs = jobs if jobs is not None else build_jobs(service, threading.RLock())
    queue = ModelQueue(settings.time_limit, jobs.gate)  # reads and batch writes: one gate
    locations = store_locations(service.collection.root)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        jobs.close()  # the running job stops after its batch
        queue.close()
        from fossil.segment.crf import shutdown_pools

        shutdown_pools()  # the CRF worker processes end with the server

    app = FastAPI(
        title="fossil",
        version=fossil.__version__,
        description="Open-vocabulary segmentation with the references that decided each "
        "region (FOSSIL).  With an API key, send it as `X-API-Key` or `Authorization: Bearer`.",
        lifespan=lifespan,
    )
    app.state.service = service
    app.state.settings = settings
    app.state.jobs = jobs

    @app.middleware("http")
    async def guard(request: Request, call_next: Callable[[Request], Any]) -> Response:
        key = settings.api_key
        if key is not None and not _public(request.url.path):
            if not hmac.compare_digest(_given_key(request).encode(), key.encode()):
                return JSONResponse(
                    {"detail": "missing or wrong API key: send it as X-API-Key"},
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
        return await call_next(request)

    # a multipart body carries a little more than the file: refuse the clearly too large
    # before it is parsed (the route checks the file itself against the exact limit)
    app.add_middleware(
        BodyLimit, limit=settings.max_upload_bytes + 65536, message=_too_large(settings)
    )
    app.add_middleware(HostCheck, allowed=settings.allowed_hosts)  # outermost: checked first

    @app.exception_handler(ValueError)
    async def bad_input(_: Request, error: ValueError) -> JSONResponse:
        return JSONResponse({"detail": scrub(str(error), locations)}, status_code=400)

    @app.exception_handler(LookupError)
    async def not_found(_: Request, error: LookupError) -> JSONResponse:
        detail = str(error.args[0] if error.args else error)
        return JSONResponse({"detail": scrub(detail, locations)}, 404)

    def concepts_of(text: str) -> Concepts:
        names = service.concepts(text)
        if len(names) > settings.max_concepts:
            raise ValueError(
                f"concepts: {len(names)} given, at most {settings.max_concepts} per request "
                "(the server's --max-concepts)"
            )
        return names

    add_live_routes(app, service, settings, queue, jobs, concepts_of)

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.post("/segment", summary="Segment an image for comma-separated concepts")
    async def segment(
        image: Annotated[UploadFile, File(description="the image (any format PIL reads)")],
        concepts: Annotated[str, Form(description='comma-separated, e.g. "dog, grass"')] = "",
        n: Annotated[int | None, Form(description="references per concept, N")] = None,
        k: Annotated[int | None, Form(description="prototypes per concept, K ≤ N")] = None,
        gamma: Annotated[float | None, Form(description="γ of eq. 5")] = None,
        preset: Annotated[str | None, Form(description=f"one of {sorted(PRESETS)}")] = None,
        no_opencut: Annotated[bool, Form(description="label every patch on its own")] = False,
        regions: Annotated[
            str | None,
            Form(description=f"region proposer, one of {list(REGION_PROPOSERS)}"),
        ] = None,
    ) -> dict[str, Any]:
        """Label every pixel with one of the concepts.  An image whose long side is over the
        server's limit is shrunk to it first, and the answer is at that size (``size``; the
        upload's is ``original_size``).  Returns the label map (PNG, concept index per
        pixel), the overlay (PNG, with a legend), a region map (PNG: region index + 1 in
        red + 256·green, 0 outside regions) and, per region, its concept, score, pixel share
        and the references that decided it.  ``n``, ``k``, ``gamma``, ``preset`` and
        ``regions`` (the region proposer) override the server's settings for this request;
        ``no_opencut`` is ``regions=patches``."""
        names = concepts_of(concepts)
        options = SegmentOptions(preset or None, n, k, gamma, no_opencut, regions or None)
        config = request_config(service.config, options)
        if image.size is not None and image.size > settings.max_upload_bytes:
            raise HTTPException(413, _too_large(settings))
        upload: BinaryIO = image.file  # spooled (on disk past 1 MB): read on the model thread

        def work(deadline: Deadline) -> tuple[dict[str, Any], str]:
            data = upload.read(settings.max_upload_bytes + 1)
            if len(data) > settings.max_upload_bytes:
                raise HTTPException(413, _too_large(settings))
            pixels, original = decode_upload(data, image.filename, settings.max_side)
            del data
            deadline.check()
            start = time.perf_counter()
            result = service.segment(pixels, names, config)
            deadline.check()
            body = segment_response(pixels, result, config)
            body["original_size"] = list(original)
            body["revision"] = int(service.collection.catalog.revision())  # the one it saw
            summary = (
                f"segment {original[0]}x{original[1]} (as {pixels.shape[1]}x{pixels.shape[0]})"
                f", {len(names)} concepts: model {result.seconds:.2f} s, with the response "
                f"{time.perf_counter() - start:.2f} s"
            )
            return body, summary

        body, summary = await queue.run(work)
        logger.info("%s", summary)
        return body

    @app.get("/query", summary="References, prototype count and coverage per concept")
    async def query(
        concepts: Annotated[str, Query(description='comma-separated, e.g. "dog, grass"')] = "",
        n: Annotated[int | None, Query(description="references per concept, N")] = None,
        k: Annotated[int | None, Query(description="prototypes per concept, K ≤ N")] = None,
        preset: Annotated[str | None, Query(description=f"one of {sorted(PRESETS)}")] = None,
        top: Annotated[int | None, Query(description="references listed per concept")] = None,
    ) -> dict[str, Any]:
        """What each concept retrieves: its nearest references (caption, noun, thumbnail
        URL), how many prototypes they make and whether the collection covers it."""
        names = concepts_of(concepts)
        config = request_config(service.config, SegmentOptions(preset or None, n, k))
        shown = settings.top if top is None else top
        if shown < 1:
            raise ValueError(f"top ({shown}) must be >= 1")

        def work(deadline: Deadline) -> dict[str, Any]:
            results = service.query(names, config.retrieval)
            deadline.check()
            body = query_response(results, config.retrieval, shown)
            body["revision"] = int(service.collection.catalog.revision())  # the one it saw
            return body

        return await queue.run(work)

    @app.get("/references/{point_id}/thumbnail", summary="A reference's stored thumbnail")
    async def thumbnail(point_id: str, highlight_mask: bool = Query(False, alias="highlight")):
        """The stored WebP (the generated image, its noun mask as alpha); with
        ``highlight=true`` a PNG of the whole image with the area outside the mask dimmed."""
        path = await run_in_threadpool(service.thumbnail, point_id)
        if not highlight_mask:
            return FileResponse(path, media_type="image/webp")
        return Response(await run_in_threadpool(_highlighted, path), media_type="image/png")

    @app.get("/info", summary="What `fossil info --json` says about the collection")
    async def info() -> dict[str, Any]:
        """Without an API key, local paths are left out (the store's, the corpus files')."""
        described = await run_in_threadpool(service.describe)
        return described if settings.api_key is not None else without_paths(described, locations)

    return app


def _too_large(settings: ServeSettings) -> str:
    return (
        f"the upload is over the limit of {settings.max_upload_bytes} bytes "
        "(--max-upload-mb): send a smaller file"
    )


def _highlighted(path: Path) -> bytes:
    from fossil.ingest.thumbnails import read_thumbnail

    image, mask = read_thumbnail(path)
    return png_bytes(highlight(image, mask))
