"""The ingest worker loop (design §2, §4): claim a batch → compute its references → write.

:class:`BatchWriter` persists one batch in the design §4 write order (vector upsert first, then one
catalog transaction), so a crash at any point leaves a state that a rerun completes exactly:
point ids are deterministic and the upsert is idempotent.  Thumbnails are written staged and
moved into place after the catalog commit (:mod:`fossil.ingest.thumbnails`), so a killed run
leaves none among the store's; the next run's writer sweeps what it staged.
:class:`Claimer` leases batches; :func:`run_ingest` is the single-process loop
(:mod:`fossil.ingest.pool` runs several generator processes for one writer).
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from fossil.db.edge import EdgeStore
from fossil.db.protocols import CaptionJob, Collection
from fossil.db.space import (
    WRITE_MARGIN,
    FreeBytes,
    batch_bytes,
    disk_full,
    free_bytes,
    is_disk_full,
    require_free,
)
from fossil.ingest.references import (
    TEMPLATE_WEIGHT,
    BatchResult,
    IngestModels,
    IngestStats,
    process_batch,
)
from fossil.ingest.thumbnails import publish_thumbnails, staging_root, sweep_staging

logger = logging.getLogger(__name__)

# jobs, template weight, the staged thumbnail root → the batch's references
Process = Callable[[Sequence[CaptionJob], float, Path | None], BatchResult]
KILL_ENV = "FOSSIL_TEST_KILL_AT"
KILL_POINTS = ("generate", "after-upsert", "after-complete", "delete-batch")


@dataclass
class KillSwitch:
    """Test-only fault injection.  ``FOSSIL_TEST_KILL_AT=POINT:N`` makes the ingest process
    SIGKILL itself the N-th time it reaches POINT: ``generate`` (a batch leased and generated,
    its thumbnails written, nothing stored; with ``--workers``, when the batch is sent to a
    worker), ``after-upsert`` (vectors written, catalog not committed), ``after-complete``
    (batch committed), ``delete-batch`` (``fossil corpus remove``: a batch of points deleted
    from the vector store).  The crash-safety tests use it; never set it otherwise."""

    point: str | None = None
    nth: int = 0
    seen: int = 0

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> KillSwitch:
        spec = environ.get(KILL_ENV, "")
        if not spec:
            return cls()
        point, _, nth = spec.partition(":")
        if point not in KILL_POINTS or not nth.isdigit():
            raise ValueError(f"{KILL_ENV}={spec!r}: expected POINT:N with POINT in {KILL_POINTS}")
        return cls(point, int(nth))

    def hit(self, point: str) -> None:
        if point == self.point:
            self.seen += 1
            if self.seen == self.nth:
                logger.warning("%s: killing the process at %s #%d", KILL_ENV, point, self.nth)
                os.kill(os.getpid(), signal.SIGKILL)


class BatchWriter:
    """Writes batches in the design §4 order and keeps the run's counters and progress bar;
    ``on_batch(stats)`` is called after each batch with the run's counters so far.
    ``lock``: held while one batch is written (its upsert and catalog transaction), so that
    readers of the same open collection in other threads (``fossil serve``) see whole
    batches only."""

    def __init__(
        self,
        collection: Collection,
        owner: str,
        *,
        total: int | None = None,
        progress: bool = False,
        kill: KillSwitch | None = None,
        on_batch: Callable[[IngestStats], None] | None = None,
        lock: AbstractContextManager[object] | None = None,
    ) -> None:
        self.collection = collection
        self.lock = lock if lock is not None else nullcontext()
        self.owner = owner
        self.kill = kill or KillSwitch()
        self.on_batch = on_batch
        self.stats = IngestStats()
        self.started = time.monotonic()
        self.bar = tqdm(total=total, unit="caption", disable=not progress, dynamic_ncols=True)
        self._seen: set[int] = set()  # caption ids met in this run: retries do not advance
        if collection.root is not None and isinstance(collection.refs, EdgeStore):
            # the embedded store's lock is held: whatever is staged is a dead run's
            sweep_staging(collection.root, lambda ids: collection.catalog.lookup(ids).keys())

    def write(self, result: BatchResult) -> None:
        """Vector upsert, then ONE catalog transaction (captions done + reference rows);
        then the failures, each with its error (retried by a later claim up to the limit).
        A full disk met on the way raises :class:`~fossil.db.space.DiskFullError`."""
        try:
            with self.lock:
                self._write(result)
        except Exception as error:
            if self.collection.root is None or not is_disk_full(error):
                raise
            raise disk_full(self.collection.root, "ingest") from error

    def _write(self, result: BatchResult) -> None:
        if result.points:
            self.collection.refs.upsert(result.points)
        self.kill.hit("after-upsert")
        if result.done:
            self.collection.catalog.complete(self.owner, result.done, result.rows)
            if self.collection.root is not None:
                publish_thumbnails(self.collection.root, [row.thumbnail for row in result.rows])
        self.kill.hit("after-complete")
        for caption_id, error in result.failed:
            self.collection.catalog.fail(self.owner, caption_id, error)
        self._account(result)

    def _account(self, result: BatchResult) -> None:
        stats = result.stats
        self.stats += stats
        logger.info(
            "batch: %d captions (%d without nouns, %d failed), %d references; mask area "
            "mean %.3f min %.3f max %.3f; %d empty masks, %d nouns not located",
            len(result.jobs),
            stats.without_nouns,
            stats.failures,
            stats.references,
            stats.mask_area_mean,
            stats.mask_area_min if stats.references else 0.0,
            stats.mask_area_max,
            stats.empty_masks,
            stats.not_located,
        )
        elapsed = max(time.monotonic() - self.started, 1e-9)
        new = {job.id for job in result.jobs} - self._seen
        self._seen |= new
        if self.bar.total is not None and self.bar.n + len(new) > self.bar.total:
            self.bar.total = self.bar.n + len(new)  # captions that became claimable meanwhile
        self.bar.update(len(new))
        rate = self.stats.references / elapsed
        self.bar.set_postfix(refs=self.stats.references, refs_s=f"{rate:.1f}")
        if self.on_batch is not None:
            self.on_batch(self.stats)

    def close(self) -> None:
        self.bar.close()


class Claimer:
    """Leases batches for ``owner`` until the catalog has nothing claimable or ``limit``
    captions were handed out; ``corpora``: only captions of these corpora.  Before each
    batch, a collection with a store directory must have room for it on that disk
    (:data:`~fossil.db.space.WRITE_MARGIN` plus :func:`~fossil.db.space.batch_bytes`;
    ``free``: how free space is read), else :class:`~fossil.db.space.DiskFullError`."""

    def __init__(
        self,
        collection: Collection,
        owner: str,
        batch_size: int,
        lease_seconds: float,
        limit: int | None = None,
        corpora: Sequence[str] | None = None,
        free: FreeBytes = free_bytes,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size ({batch_size}) must be >= 1")
        if lease_seconds <= 0:
            raise ValueError(f"lease_seconds ({lease_seconds}) must be > 0")
        if limit is not None and limit < 0:
            raise ValueError(f"limit ({limit}) must be >= 0")
        self.catalog = collection.catalog
        self.root, self.meta, self.free = collection.root, collection.meta, free
        self.owner, self.batch_size, self.lease_seconds = owner, batch_size, lease_seconds
        self.remaining = limit
        self.corpora = None if corpora is None else tuple(corpora)
        self.exhausted = False

    def claim(self) -> list[CaptionJob]:
        size = self.batch_size if self.remaining is None else min(self.batch_size, self.remaining)
        if size > 0 and self.root is not None:
            needed = WRITE_MARGIN + batch_bytes(size, self.meta.text_dim, self.meta.visual_dim)
            require_free(self.root, needed, "ingest", self.free)
        jobs = (
            self.catalog.claim(self.owner, size, self.lease_seconds, corpora=self.corpora)
            if size > 0
            else []
        )
        if self.remaining is not None:
            self.remaining -= len(jobs)
        self.exhausted = not jobs
        return jobs

    def release(self, jobs: Sequence[CaptionJob]) -> None:
        if jobs:
            self.catalog.release(self.owner, [job.id for job in jobs])

    def release_after_error(self, jobs: Sequence[CaptionJob]) -> None:
        """:meth:`release` while another error unwinds (a full disk, say): a failure here is
        logged, not raised over it; the leases then return when the store is next opened
        (embedded) or when they expire."""
        try:
            self.release(jobs)
        except Exception as error:  # noqa: BLE001 - the error being raised matters more
            logger.warning("could not hand back %d leased captions: %s", len(jobs), error)


def run_ingest(
    models: IngestModels | None,
    claimer: Claimer,
    writer: BatchWriter,
    *,
    template_weight: float = TEMPLATE_WEIGHT,
    thumbnail_root: str | Path | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    process: Process | None = None,
) -> IngestStats:
    """Single-process loop until nothing is claimable, the limit is reached or
    ``should_stop()``; an exception (Ctrl-C included) releases the current batch.
    ``thumbnail_root``: the store directory (thumbnails are staged under it until written).
    ``process``: what turns a batch into references (default: :func:`process_batch` with
    ``models``; labelled photos pass theirs)."""
    staged = None if thumbnail_root is None else staging_root(thumbnail_root)
    while not should_stop():
        jobs = claimer.claim()
        if not jobs:
            break
        try:
            if process is not None:
                result = process(jobs, template_weight, staged)
            else:
                assert models is not None, "run_ingest needs models or process"
                result = process_batch(
                    models, jobs, template_weight=template_weight, thumbnail_root=staged
                )
            writer.kill.hit("generate")
            writer.write(result)
        except BaseException:
            claimer.release_after_error(jobs)  # done captions stay done; the rest: pending
            raise
    return writer.stats
