"""``--extend``: generate references for the concepts a collection does not cover, then
answer from the grown collection (``fossil query --extend``, ``fossil segment --extend``).

The uncovered concepts (:meth:`fossil.query.QueryEngine.coverage`) get concept corpora
(:mod:`fossil.ingest.concepts`), processed by the one ingest call
(:func:`fossil.pipeline.ingest.ingest_corpora`: leases, design §4 write order, deduplication, the
lemma index) restricted to those corpora.  The references stay: every later
query reuses them (OVDiff generates support images per query and throws them away).  A
concept extended before is not generated again (its captions are already registered); if it
is still uncovered, that is reported.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace
from typing import Any

from fossil.config import CoverageConfig
from fossil.ingest.concepts import concept_corpora
from fossil.ingest.references import IngestModels, IngestStats
from fossil.pipeline.ingest import IngestProgress, ingest_corpora
from fossil.pipeline.ingest_config import IngestOptions, lease_owner
from fossil.query.coverage import Coverage
from fossil.query.engine import QueryEngine

logger = logging.getLogger(__name__)

EXTEND_OPTIONS = IngestOptions(batch_size=4, progress=True)  # only_given and owner: set below


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
    options: IngestOptions = EXTEND_OPTIONS,
    on_progress: Callable[[IngestProgress], None] | None = None,
) -> Extension:
    """Generate ``per_concept`` references for each concept ``engine``'s collection does
    not cover, with ``models`` (the ones the collection was built with; others raise
    :class:`~fossil.db.open.MetaMismatchError`), through
    :func:`~fossil.pipeline.ingest.ingest_corpora` restricted to their concept corpora, and
    return the coverage before and after.  Before generating, ``on_progress`` gets a
    ``"start"`` report whose ``message`` says what it will cost (logged when there is no
    callback), then the ingest's reports."""
    started = time.monotonic()
    before = engine.coverage(concepts, lemmas, coverage)
    uncovered = [c.concept for c in before if not c.covered]
    if not uncovered:
        return Extension(before, before)
    corpora = concept_corpora(uncovered, per_concept)
    owner = options.owner or lease_owner("extend")

    def report(progress: IngestProgress) -> None:
        if progress.stage == "start" and progress.total:
            progress = replace(progress, message=_estimate(uncovered, progress.total, models))
            if on_progress is None:
                logger.info("%s", progress.message)
        if on_progress is not None:
            on_progress(progress)

    summary = ingest_corpora(
        engine.collection,
        corpora,
        models,
        replace(options, only_given=True, owner=owner),
        on_progress=report,
    )
    if summary.total == 0:
        logger.warning(
            "no references to generate: %s were extended before and are still uncovered (%s)",
            ", ".join(repr(c) for c in uncovered),
            "; ".join(c.reason for c in before if not c.covered),
        )
        return Extension(before, before, elapsed_s=time.monotonic() - started)
    after = engine.coverage(concepts, lemmas, coverage)
    names = [c.name for c in corpora]
    extension = Extension(before, after, names, summary.stats, time.monotonic() - started)
    for still in (c for c in after if not c.covered and c.concept in uncovered):
        logger.warning("%r is still uncovered after extending: %s", still.concept, still.reason)
    return extension


def _estimate(concepts: Sequence[str], pending: int, models: IngestModels) -> str:
    """What extending is about to cost, in generator runs (the progress bar then shows the
    rate and the time left)."""
    config = getattr(models.generator, "config", None)
    steps = getattr(config, "steps", None)
    side = getattr(config, "height", None)
    detail = f", {steps} denoising steps at {side} px each" if steps and side else ""
    return (
        f"{len(concepts)} uncovered concept(s) ({', '.join(map(repr, concepts))}): "
        f"generating {pending} images{detail}; the collection keeps them for later queries"
    )
