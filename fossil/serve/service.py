"""The model side of ``fossil serve``: a :class:`~fossil.pipeline.session.ReadSession` (one
opened collection, the models loaded once, the query engines with their prototype cache, the
analysers) and the calls the HTTP API makes.

Nothing here knows about HTTP; :mod:`fossil.serve.app` maps these calls to routes.  Every call
that touches the models is meant to run one at a time (the app queues them on one thread).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fossil.concepts import Concepts
from fossil.config import FossilConfig, RetrievalConfig, with_overrides
from fossil.pipeline.session import ReadSession

if TYPE_CHECKING:
    from fossil.db.protocols import Collection
    from fossil.pipeline.session import SegmentationResult
    from fossil.query.coverage import Coverage

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SegmentOptions:
    """Per-request overrides of the server's settings (the flags of ``fossil segment``)."""

    preset: str | None = None  # Table 3 preset: N, K and γ
    n: int | None = None  # references per concept, N
    k: int | None = None  # prototypes per concept, K ≤ N
    gamma: float | None = None  # γ of eq. 5
    no_opencut: bool = False  # label every patch on its own (Fig. 3 ablation)
    regions: str | None = None  # region proposer (fossil.config.REGION_PROPOSERS)


def request_config(base: FossilConfig, options: SegmentOptions) -> FossilConfig:
    """``base`` (the server's config), then the request's preset, then its N, K, γ and
    region proposer (``no_opencut``: ``patches``).  Invalid values raise the configs' own
    ``ValueError`` (e.g. K > N; an unknown region proposer names the known ones)."""
    regions = options.regions
    if options.no_opencut:
        if regions not in (None, "patches"):
            raise ValueError(f"no_opencut is regions=patches; it contradicts regions={regions!r}")
        regions = "patches"
    return with_overrides(
        base, options.preset, N=options.n, K=options.k, gamma=options.gamma, regions=regions
    )


@dataclass(frozen=True)
class Segmentation:
    """A segmentation with what the API shows of it."""

    result: SegmentationResult
    regions: np.ndarray  # (H, W) int32 region index per pixel, -1: none
    working: tuple[int, int]  # (h, w) of the resized image the regions' boxes refer to
    coverage: list[Coverage]
    seconds: float  # model time (retrieval, features, OpenCut, scoring)


class Service:
    """The read session of a running server, and what the API asks of it.  Its messages
    name the API's fields (``concepts``), not the CLI's flags."""

    def __init__(self, session: ReadSession, *, explain: int = 3) -> None:
        self.session = session
        self.explain = explain

    @property
    def collection(self) -> Collection:
        return self.session.collection

    @property
    def config(self) -> FossilConfig:
        """The server's default config (requests override parts of it)."""
        return self.session.config

    def concepts(self, text: str) -> Concepts:
        """A request's comma-separated ``concepts`` field, checked (once)."""
        return Concepts.parse(text, "concepts")

    def describe(self) -> dict[str, Any]:
        """What ``fossil info --json`` says about the collection."""
        return self.session.describe()

    def segment(self, image: np.ndarray, concepts: Concepts, config: FossilConfig) -> Segmentation:
        """Label ``image`` with ``concepts`` (model work: run one at a time)."""
        start = time.perf_counter()
        result = self.session.segment(image, concepts, config, explain=self.explain)
        covered = self.session.coverage(concepts, config.retrieval)
        regions = result.region_map()
        return Segmentation(result, regions, result.working, covered, time.perf_counter() - start)

    def query(self, concepts: Concepts, retrieval: RetrievalConfig) -> list[dict[str, Any]]:
        """Per concept: its references, prototype count and coverage (model work)."""
        results = self.session.query(concepts, retrieval)
        covered = self.session.coverage(concepts, retrieval)
        return [
            {
                "concept": result.concept,
                "references": [r.as_dict() for r in result.references],
                "prototypes": int(len(result.prototypes)),
                "coverage": coverage.as_dict(),
            }
            for result, coverage in zip(results, covered, strict=True)
        ]

    def thumbnail(self, point_id: str) -> Path:
        """The stored thumbnail file of reference ``point_id``; ``LookupError`` when the
        reference is unknown or has none."""
        row = self.collection.catalog.lookup([point_id]).get(point_id)
        if row is None:
            raise LookupError(f"no reference {point_id!r} in the collection")
        stored = row.get("thumbnail")
        if not stored:
            raise LookupError(f"reference {point_id!r} has no thumbnail (none was kept)")
        path = Path(stored)
        if not path.is_absolute():
            if self.collection.root is None:
                raise LookupError(
                    f"thumbnail of {point_id!r} is relative ({stored!r}) and this server "
                    "collection has no store directory: start with --store DIR"
                )
            path = Path(self.collection.root) / path
        if not path.is_file():  # the path is for the server's log, never for the answer
            logger.warning("thumbnail file of %r is missing: %s", point_id, os.fspath(path))
            raise LookupError(
                f"thumbnail file of {point_id!r} is missing from the store (the server's log "
                "names it)"
            )
        return path
