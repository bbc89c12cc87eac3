"""The live collection's routes of ``fossil serve`` (issue 29): ingest jobs inside the
server, prototypes for clients that do the image work themselves, and the collection's
revision.

* ``POST /ingest`` — a multipart file ``corpus`` (any format ``fossil ingest`` reads; the
  file name tells the format unless ``format`` is given) or a form field ``path`` naming a
  file on the server's machine; optional ``name`` (the corpus name) and ``format``.  202
  with the job id under ``job``; 400 for a malformed corpus (the message names the line);
  409 when a job of the same corpus is queued or running.
* ``GET /ingest`` — every remembered job; ``GET /ingest/{job}`` — one job's state
  (``queued``, ``running``, ``done``, ``failed``, ``stopped``), captions done, references
  written, rate, errors and its latest references; ``DELETE /ingest/{job}`` — stop it after
  its current batch (a later job resumes its captions).
* ``GET /prototypes?concepts=…&n=&k=&preset=`` — the concepts' K×dim prototypes in the
  compact form of :mod:`fossil.serve.wire`, with the revision they were computed at.
* ``GET /collection`` — revision, reference count, the models the collection was built
  with and the settings it records: what a client needs to load its own models.

Ingest routes change the store: a server that answers other hosts than the local names
must have an API key (:func:`check_ingest_allowed`), whatever built the app.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import FastAPI, File, Form, HTTPException, Query, UploadFile
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from fossil.ingest.corpora import CorpusFile, corpus_name, read_corpus
from fossil.serve.guards import LOCAL_NAMES
from fossil.serve.jobs import IngestJobs, JobConflict
from fossil.serve.service import SegmentOptions, request_config
from fossil.serve.wire import MEDIA_TYPE, REVISION_HEADER, Prototypes, encode

if TYPE_CHECKING:
    from collections.abc import Callable

    from fossil.concepts import Concepts
    from fossil.db.protocols import Collection
    from fossil.serve.app import Deadline, ModelQueue, ServeSettings
    from fossil.serve.jobs import ModelsLoader
    from fossil.serve.service import Service

logger = logging.getLogger(__name__)


def check_ingest_allowed(settings: ServeSettings) -> None:
    """Ingest routes write the store: refused (403) on a server that answers non-local host
    names without an API key."""
    if settings.api_key is None and any(h not in LOCAL_NAMES for h in settings.allowed_hosts):
        raise HTTPException(
            403,
            "ingest routes need an API key on a server that answers other hosts than "
            "localhost: restart it with $FOSSIL_API_KEY (or --api-key)",
        )


def default_ingest_models(collection: Collection) -> ModelsLoader:
    """What loads the models a job generates references with: the collection's own (the
    synthetic world's for a ``fossil demo`` store), in this process, on the default device."""
    from fossil.demo.settings import is_demo_meta
    from fossil.models.loading import command_roles
    from fossil.pipeline.ingest import meta_profile, model_loaders

    meta = collection.meta
    if is_demo_meta(meta):
        from fossil.demo.world import demo_models

        roles = command_roles("ingest")
        return lambda: demo_models(meta.text_encoder, None, roles)  # type: ignore[return-value]
    return model_loaders(meta_profile(meta), (None,), 1)[0]


def build_jobs(service: Service, gate: threading.RLock) -> IngestJobs:
    """The job manager of a server: its collection, its models' loader, its gate."""
    collection = service.collection
    return IngestJobs(collection, default_ingest_models(collection), gate)


def add_live_routes(
    app: FastAPI,
    service: Service,
    settings: ServeSettings,
    queue: ModelQueue,
    jobs: IngestJobs,
    concepts_of: Callable[[str], Concepts],
) -> None:
    """Register the routes of the module on ``app``."""

    @app.post("/ingest", status_code=202, summary="Start an ingest job in the server")
    async def start_ingest(
        corpus: Annotated[UploadFile | None, File(description="a caption corpus file")] = None,
        path: Annotated[str | None, Form(description="a corpus file on the server")] = None,
        name: Annotated[str | None, Form(description="corpus name (default: file's)")] = None,
        format: Annotated[str | None, Form(description="coco, jsonl, csv or text")] = None,
    ) -> dict[str, Any]:
        """Read the corpus (a malformed one gets a 400 naming the line) and queue a job that
        registers it and processes every pending caption of the store, batch by batch."""
        check_ingest_allowed(settings)
        if (corpus is None) == (not path):
            raise ValueError("give either a multipart file `corpus` or a form field `path`")
        if corpus is not None:
            if corpus.size is not None and corpus.size > settings.max_upload_bytes:
                raise HTTPException(413, "the corpus upload is over --max-upload-mb")
            read = await run_in_threadpool(
                read_upload, corpus, settings.max_upload_bytes, name or None, format or None
            )
        else:
            assert path is not None
            read = await run_in_threadpool(read_path, path, name or None, format or None)
        try:
            job = jobs.submit(read)
        except JobConflict as error:
            raise HTTPException(409, str(error)) from None
        return job.as_dict()

    @app.get("/ingest", summary="Every ingest job the server remembers")
    async def list_ingest() -> dict[str, Any]:
        return {"jobs": [job.as_dict() for job in jobs.jobs()]}

    @app.get("/ingest/{job_id}", summary="One ingest job's state and progress")
    async def follow_ingest(job_id: str) -> dict[str, Any]:
        return jobs.get(job_id).as_dict()

    @app.delete("/ingest/{job_id}", summary="Stop an ingest job after its current batch")
    async def stop_ingest(job_id: str) -> dict[str, Any]:
        check_ingest_allowed(settings)
        return jobs.stop(job_id).as_dict()

    @app.get("/prototypes", summary="K×dim prototypes per concept, compact binary (.npz)")
    async def prototypes(
        concepts: Annotated[str, Query(description='comma-separated, e.g. "dog, grass"')] = "",
        n: Annotated[int | None, Query(description="references per concept, N")] = None,
        k: Annotated[int | None, Query(description="prototypes per concept, K ≤ N")] = None,
        preset: Annotated[str | None, Query(description="a Table 3 preset")] = None,
    ) -> Response:
        """The concepts' prototypes (design §5.6) at the current revision, as the ``.npz`` of
        :mod:`fossil.serve.wire`; the revision also in the ``X-Fossil-Revision`` header."""
        names = concepts_of(concepts)
        config = request_config(service.config, SegmentOptions(preset or None, n, k))

        def work(deadline: Deadline) -> Prototypes:
            results = service.session.query(names, config.retrieval)
            return Prototypes(
                concepts=tuple(r.concept for r in results),
                prototypes=tuple(r.prototypes for r in results),
                references=tuple(len(r.references) for r in results),
                revision=results[0].revision,
                collection_size=service.collection.refs.count(),
                taken_at=time.time(),
            )

        found = await queue.run(work)
        headers = {REVISION_HEADER: str(found.revision)}
        return Response(encode(found), media_type=MEDIA_TYPE, headers=headers)

    @app.get("/collection", summary="Revision, size and models of the collection")
    async def collection() -> JSONResponse:
        """What a client needs to do the image work itself: the collection's revision and
        reference count, the models it was built with (``meta``), the settings it records
        and how many ingest jobs are queued or running."""

        def work(deadline: Deadline) -> dict[str, Any]:
            recorded = service.collection.catalog.get_settings()
            return {
                "revision": int(service.collection.catalog.revision()),
                "references": service.collection.refs.count(),
                "meta": service.collection.meta.as_dict(),
                "settings": None if recorded is None else recorded.as_dict(),
                "ingest_active": sum(job.active for job in jobs.jobs()),
            }

        body = await run_in_threadpool(_gated, queue.gate, work)
        return JSONResponse(body, headers={REVISION_HEADER: str(body["revision"])})


def _gated(gate: threading.RLock, work: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
    with gate:
        return work(None)


def read_path(path: str, name: str | None, format: str | None) -> CorpusFile:
    """A corpus file on the server's machine; a missing one is a bad request (400)."""
    try:
        return read_corpus(Path(path).expanduser(), format=format, name=name)
    except FileNotFoundError as error:
        raise ValueError(str(error)) from None


def read_upload(upload: UploadFile, limit: int, name: str | None, format: str | None) -> CorpusFile:
    """An uploaded corpus file, read as ``fossil ingest`` reads one (its file name tells the
    format unless ``format`` is given); the error messages name the upload, not the
    temporary copy."""
    filename = Path(upload.filename or "corpus.txt").name or "corpus.txt"
    folder = Path(tempfile.mkdtemp(prefix="fossil-upload-"))
    try:
        copy = folder / filename
        with copy.open("wb") as out:
            copied = _copy_bounded(upload, out, limit)
        if copied > limit:
            raise HTTPException(413, "the corpus upload is over --max-upload-mb")
        try:
            read = read_corpus(copy, format=format, name=name or corpus_name(filename))
        except (ValueError, FileNotFoundError) as error:
            message = str(error).replace(str(copy), filename).replace(str(folder), "upload")
            raise ValueError(message) from None
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return replace(read, source=f"upload:{filename}", named_after_file=False)


def _copy_bounded(upload: UploadFile, out: Any, limit: int) -> int:
    copied = 0
    while chunk := upload.file.read(1 << 20):
        copied += len(chunk)
        if copied > limit:
            return copied
        out.write(chunk)
    return copied
