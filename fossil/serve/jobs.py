"""Ingest jobs inside ``fossil serve`` (issue 29): the server owns the store's writes too.

An embedded store belongs to one process, so while ``fossil serve`` holds it, new captions
can only reach it through the server.  :class:`IngestJobs` runs ingest jobs one at a time on
one thread, each through the library's ingest call
(:func:`fossil.pipeline.ingest.ingest_corpora`) on the server's open collection.  The
server's readers and the job's writer share one lock, ``gate``: a read (a model request)
holds it for its whole work, a batch write for its upsert and catalog transaction.  So
reads are answered between batches and each sees whole batches only, at one revision.

A job stops after its current batch when asked (:meth:`IngestJobs.stop`); its captions
stay in the catalog, and a later job (of any corpus: every pending caption is claimed, as
``fossil ingest`` does) resumes them.  A server killed in a job leaves leases behind; the
next server's job manager hands them back at start (the store's lock proves that no other
process works on it), and the next job completes the work exactly: point ids are
deterministic (design §4).

Memory stays bounded: at most ``max_queued`` jobs wait (each holds its corpus's captions,
whose size the upload limit bounds), at most ``max_kept`` finished jobs are remembered
(their captions dropped), and each job keeps a bounded list of errors and of its latest
references.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from fossil.ingest.corpora import CorpusFile
from fossil.pipeline.ingest import IngestProgress, ingest_corpora
from fossil.pipeline.ingest_config import IngestOptions

if TYPE_CHECKING:
    from fossil.db.protocols import Collection
    from fossil.ingest.references import IngestModels

logger = logging.getLogger(__name__)

STATES = ("queued", "running", "done", "failed", "stopped")
ACTIVE = ("queued", "running")
MAX_ERRORS = 20  # error messages kept per job
LATEST = 8  # latest references kept per job (the page shows their thumbnails)


class JobConflict(Exception):
    """A job was refused: the same corpus is already queued or running, or the queue is
    full (the message says which and what to do)."""


@dataclass
class IngestJob:
    """One ingest job and its progress (``as_dict`` is what ``GET /ingest/{job}`` answers).
    ``captions``/``references``: completed and written by this job; ``total``: the captions
    it set out to process (every pending caption of the store, its corpus's included)."""

    id: str
    corpus: str
    source: str
    captions_given: int
    state: str = "queued"
    total: int = 0
    captions: int = 0
    references: int = 0
    failed_captions: int = 0
    created: float = field(default_factory=time.time)
    started: float | None = None
    ended: float | None = None
    errors: deque[str] = field(default_factory=lambda: deque(maxlen=MAX_ERRORS))
    latest: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=LATEST))
    revision: int | None = None  # the collection revision after the last written batch
    stop: threading.Event = field(default_factory=threading.Event)
    corpus_file: CorpusFile | None = None  # dropped once the job ends

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    def elapsed(self) -> float:
        if self.started is None:
            return 0.0
        return max((self.ended or time.time()) - self.started, 1e-9)

    def as_dict(self) -> dict[str, Any]:
        elapsed = self.elapsed()
        return {
            "job": self.id,
            "corpus": self.corpus,
            "source": self.source,
            "state": self.state,
            "captions_given": self.captions_given,
            "total": self.total,
            "captions_done": self.captions,
            "references_written": self.references,
            "failed_captions": self.failed_captions,
            "rate": {
                "references_per_s": round(self.references / elapsed, 3) if elapsed else 0.0,
                "captions_per_s": round(self.captions / elapsed, 3) if elapsed else 0.0,
            },
            "elapsed_s": round(elapsed, 2),
            "created": self.created,
            "started": self.started,
            "ended": self.ended,
            "stop_requested": self.stop.is_set(),
            "errors": list(self.errors),
            "latest": list(self.latest),
            "revision": self.revision,
        }


ModelsLoader = Callable[[], "IngestModels"]


class IngestJobs:
    """Runs ingest jobs on ``collection`` (open, shared with the server's readers), one at a
    time on one thread, with the models ``load_models`` gives (called once, at the first
    job).  ``gate``: the lock the readers hold (see the module).  The leases a killed server
    left are handed back when the server opens its store (``fossil serve`` opens it as a
    writer: :func:`fossil.db.open.open_collection`)."""

    def __init__(
        self,
        collection: Collection,
        load_models: ModelsLoader,
        gate: threading.RLock,
        *,
        options: IngestOptions | None = None,
        max_queued: int = 8,
        max_kept: int = 50,
    ) -> None:
        if max_queued < 1 or max_kept < 1:
            raise ValueError(f"max_queued ({max_queued}) and max_kept ({max_kept}) must be >= 1")
        self.collection = collection
        self.gate = gate
        self.options = options if options is not None else IngestOptions()
        self.max_queued, self.max_kept = max_queued, max_kept
        self._load_models = load_models
        self._models: IngestModels | None = None
        self._jobs: OrderedDict[str, IngestJob] = OrderedDict()
        self._lock = threading.Lock()  # guards _jobs and the job states
        self._wake = threading.Condition(self._lock)
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="fossil-ingest", daemon=True)
        self._thread.start()

    # -- the API's calls ----------------------------------------------------------------------
    def submit(self, corpus: CorpusFile) -> IngestJob:
        """Queue a job for ``corpus`` (read already: a bad file never gets here).
        :class:`JobConflict` when a job of the same corpus is queued or running, or when
        ``max_queued`` jobs wait."""
        with self._lock:
            if self._closed:
                raise JobConflict("the server is shutting down: no new ingest job")
            for job in self._jobs.values():
                if job.active and job.corpus == corpus.name:
                    raise JobConflict(
                        f"corpus {corpus.name!r} is already being ingested by job {job.id} "
                        f"({job.state}): follow it with GET /ingest/{job.id}, or stop it with "
                        f"DELETE /ingest/{job.id} before starting another"
                    )
            queued = sum(job.state == "queued" for job in self._jobs.values())
            if queued >= self.max_queued:
                raise JobConflict(
                    f"{queued} ingest jobs are already queued (at most {self.max_queued}): "
                    "wait for one to finish"
                )
            job = IngestJob(
                id=uuid.uuid4().hex[:12],
                corpus=corpus.name,
                source=corpus.source,
                captions_given=len(corpus.captions),
                corpus_file=corpus,
            )
            self._jobs[job.id] = job
            self._forget_finished()
            self._wake.notify_all()
        logger.info("ingest job %s queued: corpus %r, %d captions", job.id, job.corpus,
                    job.captions_given)  # fmt: skip
        return job

    def get(self, job_id: str) -> IngestJob:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise LookupError(f"no ingest job {job_id!r} (finished jobs are kept for a while)")
        return job

    def jobs(self) -> list[IngestJob]:
        """Every job remembered, oldest first."""
        with self._lock:
            return list(self._jobs.values())

    def stop(self, job_id: str) -> IngestJob:
        """Stop a job: a queued one never runs, a running one stops after its current batch
        (its state turns ``stopped`` then)."""
        job = self.get(job_id)
        with self._lock:
            job.stop.set()
            if job.state == "queued":
                self._finish(job, "stopped")
        return job

    def close(self, timeout: float = 30.0) -> None:
        """Stop every job (the running one after its batch) and end the thread."""
        with self._lock:
            self._closed = True
            for job in self._jobs.values():
                job.stop.set()
                if job.state == "queued":
                    self._finish(job, "stopped")
            self._wake.notify_all()
        self._thread.join(timeout)

    # -- the job thread -----------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            with self._lock:
                job = self._next()
                while job is None and not self._closed:
                    self._wake.wait()
                    job = self._next()
                if job is None:
                    return
                job.state, job.started = "running", time.time()
            self._run(job)

    def _next(self) -> IngestJob | None:
        return next((j for j in self._jobs.values() if j.state == "queued"), None)

    def _run(self, job: IngestJob) -> None:
        assert job.corpus_file is not None
        try:
            if self._models is None:
                self._models = self._load_models()
            summary = ingest_corpora(
                self.collection,
                [job.corpus_file],
                self._models,
                replace(self.options, progress=False),
                on_progress=lambda progress: self._progress(job, progress),
                should_stop=job.stop.is_set,
                write_lock=self.gate,
            )
        except Exception as error:  # noqa: BLE001 - the job fails, the server goes on
            logger.exception("ingest job %s failed", job.id)
            job.errors.append(f"{type(error).__name__}: {error}")
            with self._lock:
                self._finish(job, "failed")
            return
        job.failed_captions = summary.stats.failures
        stopped = summary.interrupted and job.stop.is_set()
        with self._lock:
            self._finish(job, "stopped" if stopped else "done")
        logger.info("ingest job %s %s: %d captions, %d references in %.1f s", job.id,
                    job.state, job.captions, job.references, job.elapsed())  # fmt: skip

    def _progress(self, job: IngestJob, progress: IngestProgress) -> None:
        job.total = progress.total
        job.captions, job.references = progress.captions, progress.references
        if progress.stage == "batch":
            catalog = self.collection.catalog
            job.revision = int(catalog.revision())
            counts = catalog.status_counts(corpora=[job.corpus])
            job.failed_captions = counts["failed"]
            for reference in latest_references(self.collection, LATEST):
                if all(r["id"] != reference["id"] for r in job.latest):
                    job.latest.append(reference)

    def _finish(self, job: IngestJob, state: str) -> None:
        job.state, job.ended, job.corpus_file = state, time.time(), None

    def _forget_finished(self) -> None:
        finished = [j.id for j in self._jobs.values() if not j.active]
        for job_id in finished[: max(0, len(finished) - self.max_kept)]:
            del self._jobs[job_id]


def latest_references(collection: Collection, limit: int) -> list[dict[str, Any]]:
    """The ``limit`` references written last (oldest first): id, noun, caption."""
    rows = collection.catalog.latest_references(limit)
    return [{"id": r["point_id"], "noun": r["noun"], "caption": r["caption"]} for r in rows]
