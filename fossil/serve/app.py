"""The HTTP side of ``fossil serve``: a FastAPI app over a :class:`~fossil.serve.service.Service`.

Model work (``/segment``, ``/query``) runs one request at a time on one worker thread; a
request that waits and works longer than the time limit gets a 503 while the server keeps
answering (the work it started finishes in the background and is dropped).  With an API key,
every route but the static page (``/`` and ``/static/…``) needs it.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

from fastapi import FastAPI, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import fossil
from fossil.config import PRESETS
from fossil.serve.images import decode_upload, highlight, png_bytes
from fossil.serve.responses import query_response, segment_response
from fossil.serve.service import SegmentOptions, Service, request_config

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

    def __post_init__(self) -> None:
        if self.time_limit <= 0:
            raise ValueError(f"time limit ({self.time_limit}) must be > 0 seconds")
        if self.max_upload_bytes < 1:
            raise ValueError(f"upload limit ({self.max_upload_bytes}) must be >= 1 byte")
        if self.api_key is not None and not self.api_key.strip():
            raise ValueError("the API key is empty")


class ModelQueue:
    """Runs model calls one at a time on one thread, each within the time limit (queueing
    included).  A call past the limit raises a 503; if it had started it runs to its end in
    the background (a model call cannot be interrupted) and its result is dropped."""

    def __init__(self, time_limit: float) -> None:
        self.time_limit = time_limit
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fossil-model")

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        future = self._executor.submit(fn, *args)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), self.time_limit)
        except TimeoutError:
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


def create_app(service: Service, settings: ServeSettings | None = None) -> FastAPI:
    """The app serving ``service``: the API routes, the static page, the key check."""
    settings = settings if settings is not None else ServeSettings()
    queue = ModelQueue(settings.time_limit)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        queue.close()

    app = FastAPI(
        title="fossil",
        version=fossil.__version__,
        description="Open-vocabulary segmentation with the references that decided each "
        "region (FOSSIL).  With an API key, send it as `X-API-Key` or `Authorization: Bearer`.",
        lifespan=lifespan,
    )
    app.state.service = service
    app.state.settings = settings

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

    @app.exception_handler(ValueError)
    async def bad_input(_: Request, error: ValueError) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=400)

    @app.exception_handler(LookupError)
    async def not_found(_: Request, error: LookupError) -> JSONResponse:
        return JSONResponse({"detail": str(error.args[0] if error.args else error)}, 404)

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
    ) -> dict[str, Any]:
        """Label every pixel with one of the concepts.  Returns the label map (PNG, concept
        index per pixel), the overlay (PNG, with a legend), a region map (PNG: region
        index + 1 in red + 256·green, 0 outside regions) and, per region, its concept,
        score, pixel share and the references that decided it."""
        names = service.parse_concepts(concepts)
        options = SegmentOptions(preset or None, n, k, gamma, no_opencut)
        config = request_config(service.config, options)
        data = await image.read(settings.max_upload_bytes + 1)
        if len(data) > settings.max_upload_bytes:
            raise HTTPException(413, _too_large(settings))
        pixels = await run_in_threadpool(decode_upload, data, image.filename)
        start = time.perf_counter()
        result = await queue.run(service.segment, pixels, names, config)
        logger.info(
            "segment %dx%d, %d concepts: %.2f s (model %.2f s)",
            pixels.shape[1],
            pixels.shape[0],
            len(names),
            time.perf_counter() - start,
            result.seconds,
        )
        return await run_in_threadpool(segment_response, pixels, result, config)

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
        names = service.parse_concepts(concepts)
        config = request_config(service.config, SegmentOptions(preset or None, n, k))
        shown = settings.top if top is None else top
        if shown < 1:
            raise ValueError(f"top ({shown}) must be >= 1")
        results = await queue.run(service.query, names, config.retrieval)
        return query_response(results, config.retrieval, shown)

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
        return await run_in_threadpool(service.describe)

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
