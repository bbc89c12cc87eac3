"""Several generator processes feeding one writer (``fossil ingest --workers W``, design §7).

The embedded store is single-process, so only the parent opens it: it claims batches, sends
them to W worker processes (each loads its own models, e.g. one per GPU) and writes their
results in the design §4 order through the same :class:`~fossil.ingest.worker.BatchWriter` as the
single-process loop.  Workers are started with ``spawn`` (safe with CUDA and torch threads)
and ignore SIGINT: Ctrl-C is the parent's to handle.  A worker exits as soon as its parent
dies, however it dies (``kill -9`` included): :func:`fossil.processes.exit_with_parent`.
Workers write thumbnails staged; the writer moves them into place after each commit
(:mod:`fossil.ingest.thumbnails`).
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import queue
import signal
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from fossil.db.protocols import CaptionJob, CollectionMeta
from fossil.ingest.references import (
    TEMPLATE_WEIGHT,
    IngestModels,
    IngestStats,
    collection_meta,
    process_batch,
)
from fossil.ingest.thumbnails import staging_root
from fossil.ingest.worker import BatchWriter, Claimer
from fossil.processes import exit_with_parent

logger = logging.getLogger(__name__)

_POLL_SECONDS = 0.5
_JOIN_SECONDS = 10.0


def _worker_main(
    load: Callable[[], IngestModels],
    schema_version: int,
    tasks: Any,
    results: Any,
    template_weight: float,
    thumbnail_root: str | None,
) -> None:
    """Worker process: load models, report their meta, then process batches until None."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    exit_with_parent()
    try:
        models = load()
        results.put(("ready", -1, collection_meta(models, schema_version)))
    except BaseException:
        results.put(("error", -1, traceback.format_exc()))
        return
    while (task := tasks.get()) is not None:
        seq, jobs = task
        try:
            result = process_batch(
                models, jobs, template_weight=template_weight, thumbnail_root=thumbnail_root
            )
            results.put(("done", seq, result))
        except BaseException:
            results.put(("error", seq, traceback.format_exc()))


class WorkerPool:
    """W worker processes; ``loaders[i]`` (picklable, e.g. a ``functools.partial`` of
    :func:`fossil.models.loading.load_models`) builds worker i's models."""

    def __init__(
        self,
        loaders: Sequence[Callable[[], IngestModels]],
        *,
        schema_version: int,
        template_weight: float = TEMPLATE_WEIGHT,
        thumbnail_root: str | Path | None = None,
    ) -> None:
        if not loaders:
            raise ValueError("WorkerPool needs at least one loader (workers >= 1)")
        context = mp.get_context("spawn")
        self.tasks = context.Queue()
        self.results = context.Queue()
        root = None if thumbnail_root is None else str(staging_root(thumbnail_root))
        self.processes = [
            context.Process(
                target=_worker_main,
                args=(load, schema_version, self.tasks, self.results, template_weight, root),
                name=f"fossil-ingest-worker-{i}",
                daemon=True,
            )
            for i, load in enumerate(loaders)
        ]
        self.aborted = False
        for process in self.processes:
            process.start()

    def wait_ready(self) -> CollectionMeta:
        """Block until every worker loaded its models; their (identical) collection meta."""
        metas = [self._next("ready")[2] for _ in self.processes]
        if any(meta != metas[0] for meta in metas):
            raise RuntimeError(f"workers loaded different models: {sorted(set(map(str, metas)))}")
        return metas[0]

    def run(
        self, claimer: Claimer, writer: BatchWriter, should_stop: Callable[[], bool]
    ) -> IngestStats:
        """Keep two batches per worker in flight until nothing is claimable (or the limit, or
        ``should_stop()``); write each result as it arrives.  An exception (Ctrl-C included)
        releases every batch still in flight."""
        in_flight: dict[int, list[CaptionJob]] = {}
        seq = 0
        try:
            while True:
                while len(in_flight) < 2 * len(self.processes) and not claimer.exhausted:
                    if should_stop():
                        break
                    jobs = claimer.claim()
                    if jobs:
                        writer.kill.hit("generate")
                        in_flight[seq] = jobs
                        self.tasks.put((seq, jobs))
                        seq += 1
                if not in_flight:
                    return writer.stats
                _, done_seq, result = self._next("done")
                writer.write(result)
                del in_flight[done_seq]
                if result.failed:
                    claimer.exhausted = False  # failed captions are claimable again (retries)
        except BaseException:
            self.aborted = True  # queued batches are released: close() will not wait for them
            for jobs in in_flight.values():
                claimer.release_after_error(jobs)
            raise

    def _next(self, expected: str) -> tuple[str, int, Any]:
        """The next message from the workers; raises if one failed or died."""
        while True:
            try:
                kind, seq, payload = self.results.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                dead = [p for p in self.processes if not p.is_alive()]
                if dead:
                    codes = ", ".join(f"{p.name} exit code {p.exitcode}" for p in dead)
                    raise RuntimeError(f"ingest worker died ({codes})") from None
                continue
            if kind == "error":
                raise RuntimeError(f"ingest worker failed:\n{payload}")
            if kind != expected:
                raise RuntimeError(f"ingest worker sent {kind!r}, expected {expected!r}")
            return kind, seq, payload

    def close(self, *, abort: bool = False) -> None:
        """Stop the workers: after their queued batches (a sentinel each), or at once when
        ``abort`` (their batches were released); terminate whoever does not exit."""
        abort = abort or self.aborted
        if not abort:
            for _ in self.processes:
                self.tasks.put(None)
        for process in self.processes:
            process.join(timeout=0 if abort else _JOIN_SECONDS)
            if process.is_alive():
                process.terminate()
                process.join()
        self.tasks.close()
        self.results.close()

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        self.close(abort=exc_type is not None)
