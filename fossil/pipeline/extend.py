"""``--extend``: generate references for the concepts a collection does not cover, then
answer from the grown collection (``fossil query --extend``, ``fossil segment --extend``).

The uncovered concepts (:meth:`fossil.query.QueryEngine.coverage`) get concept corpora
(:mod:`fossil.ingest.concepts`), processed through the normal ingest path — leases, §4 write
order, deduplication — restricted to those corpora.  The references stay: every later
query reuses them (OVDiff generates support images per query and throws them away).  A
concept extended before is not generated again (its captions are already registered); if it
is still uncovered, that is reported.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fossil.config import CoverageConfig
from fossil.db.open import meta_mismatch
from fossil.db.protocols import CatalogStore
from fossil.db.schema import SCHEMA_VERSION
from fossil.ingest.concepts import concept_corpora
from fossil.ingest.references import IngestModels, IngestStats, collection_meta
from fossil.ingest.worker import BatchWriter, Claimer, run_ingest
from fossil.query.coverage import Coverage
from fossil.query.engine import QueryEngine

logger = logging.getLogger(__name__)


@dataclass
class Extension:
    """What ``--extend`` did: coverage before and after, the concept corpora it generated
    into and the ingest counters."""

    before: list[Coverage]
    after: list[Coverage]
    extended: list[str] = field(default_factory=list)  # concept corpora generated into
    stats: IngestStats = field(default_factory=IngestStats)
    elapsed_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "extended": self.extended,
            "captions_generated": self.stats.captions,
            "references_written": self.stats.references,
            "elapsed_s": round(self.elapsed_s, 2),
            "still_uncovered": [c.concept for c in self.after if not c.covered],
        }


def extend(
    engine: QueryEngine,
    concepts: Sequence[str],
    models: IngestModels,
    *,
    per_concept: int,
    lemmas: Sequence[AbstractSet[str]] | None = None,
    coverage: CoverageConfig | None = None,
    thumbnail_root: str | os.PathLike[str] | None = None,
    batch_size: int = 4,
    lease_seconds: float = 1800.0,
    progress: bool = True,
) -> Extension:
    """Generate ``per_concept`` references for each concept ``engine``'s collection does
    not cover, with ``models`` (the ones the collection was built with), and return the
    coverage before and after."""
    started = time.monotonic()
    before = engine.coverage(concepts, lemmas, coverage)
    uncovered = [c.concept for c in before if not c.covered]
    if not uncovered:
        return Extension(before, before)
    collection = engine.collection
    mismatch = meta_mismatch(collection.meta, collection_meta(models, SCHEMA_VERSION))
    if mismatch:
        raise ValueError(f"--extend must generate with the collection's models: {mismatch}")
    corpora = concept_corpora(uncovered, per_concept)
    names = [c.name for c in corpora]
    for corpus in corpora:
        collection.catalog.add_corpus(
            corpus.name, corpus.source, corpus.captions, phrase=corpus.phrase
        )
    pending = _pending(collection.catalog, names)
    if pending == 0:
        logger.warning(
            "no references to generate: %s were extended before and are still uncovered (%s)",
            ", ".join(repr(c) for c in uncovered),
            "; ".join(c.reason for c in before if not c.covered),
        )
        return Extension(before, before, elapsed_s=time.monotonic() - started)
    print(_estimate(uncovered, pending, models), file=sys.stderr)
    owner = f"{socket.gethostname()}:{os.getpid()}:extend"
    claimer = Claimer(collection, owner, batch_size, lease_seconds, corpora=names)
    writer = BatchWriter(collection, owner, total=pending, progress=progress)
    try:
        run_ingest(
            models,
            claimer,
            writer,
            thumbnail_root=None if thumbnail_root is None else Path(thumbnail_root),
        )
    finally:
        writer.close()
    after = engine.coverage(concepts, lemmas, coverage)
    extension = Extension(before, after, names, writer.stats, time.monotonic() - started)
    for still in (c for c in after if not c.covered and c.concept in uncovered):
        logger.warning("%r is still uncovered after --extend: %s", still.concept, still.reason)
    return extension


def _pending(catalog: CatalogStore, names: Sequence[str]) -> int:
    """Captions of the corpora ``names`` still to process."""
    counts = catalog.status_counts(corpora=names)
    return counts["pending"] + counts["leased"] + counts["failed"]


def _estimate(concepts: Sequence[str], pending: int, models: IngestModels) -> str:
    """What --extend is about to cost, in generator runs (the progress bar then shows the
    rate and the time left)."""
    config = getattr(models.generator, "config", None)
    steps = getattr(config, "steps", None)
    side = getattr(config, "height", None)
    detail = f", {steps} denoising steps at {side} px each" if steps and side else ""
    return (
        f"--extend: {len(concepts)} uncovered concept(s) ({', '.join(map(repr, concepts))}): "
        f"generating {pending} images{detail}; the collection keeps them for later queries"
    )
