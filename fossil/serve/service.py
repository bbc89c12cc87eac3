"""The model side of ``fossil serve``: one opened collection, the models loaded once, a query
engine (with its prototype cache) per retrieval setting, and the calls the HTTP API makes.

Nothing here knows about HTTP; :mod:`fossil.serve.app` maps these calls to routes.  Every call
that touches the models is meant to run one at a time (the app queues them on one thread).
"""

from __future__ import annotations

import logging
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from fossil.config import FossilConfig, RetrievalConfig, with_overrides
from fossil.pipeline.segmenter import CropAnalysis, ImageAnalyser, Region, segment_image
from fossil.query.cache import MemoryCache
from fossil.query.engine import QueryEngine

if TYPE_CHECKING:
    from fossil.db.protocols import Collection
    from fossil.models.protocols import DenseEncoder, NounParser, TextEncoder
    from fossil.pipeline.segmenter import SegmentationResult
    from fossil.query.coverage import Coverage

logger = logging.getLogger(__name__)

MAX_ENGINES = 8  # query engines kept, one per retrieval setting (N, K, preset) requested


class ServeModels(Protocol):
    """The model roles a server uses (a :class:`~fossil.models.loading.ModelBundle`, or the
    synthetic world's :class:`~fossil.demo.world.DemoModels`)."""

    @property
    def text(self) -> TextEncoder: ...

    @property
    def nouns(self) -> NounParser: ...

    @property
    def dense(self) -> DenseEncoder: ...

    @property
    def keys(self) -> DenseEncoder: ...


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
    ``ValueError`` (e.g. K > N)."""
    return with_overrides(
        base,
        options.preset,
        N=options.n,
        K=options.k,
        gamma=options.gamma,
        regions="patches" if options.no_opencut else options.regions,
    )


class MaskRecorder(ImageAnalyser):
    """An :class:`ImageAnalyser` that also keeps the OpenCut masks of the crops that had
    any, in the order the crops were analysed (the order :class:`CropScorer` records their
    regions in), so regions can be drawn as a map."""

    def __init__(self, base: ImageAnalyser) -> None:
        super().__init__(base.dense, base.keys, base.config, base.cache)
        self.masks: list[np.ndarray] = []

    def analyse(self, crop: np.ndarray) -> CropAnalysis:
        analysis = super().analyse(crop)
        if len(analysis.masks):
            self.masks.append(analysis.masks)
        return analysis


def region_map(
    regions: Sequence[Region],
    masks: Sequence[np.ndarray],
    working: tuple[int, int],
    size: tuple[int, int],
) -> np.ndarray:
    """(H, W) int32 region index per pixel of the original ``size`` (H, W), -1 where no
    region lies.  ``regions`` in record order, ``masks``: per crop with regions, its (L, h, w)
    masks; ``working``: (h, w) of the resized image the crops were cut from.  Later windows
    paint over earlier ones where they overlap."""
    boxes = list(dict.fromkeys(region.box for region in regions))
    if len(boxes) != len(masks):
        logger.warning(
            "%d crops with regions but %d mask sets: no region map", len(boxes), len(masks)
        )
        return np.full(size, -1, np.int32)
    crop_masks = dict(zip(boxes, masks, strict=True))
    painted = np.full(working, -1, np.int32)
    for number, region in enumerate(regions):
        y1, y2, x1, x2 = region.box
        mask = crop_masks[region.box][region.index]
        painted[y1:y2, x1:x2][mask] = number
    rows = np.minimum((np.arange(size[0]) + 0.5) * working[0] / size[0], working[0] - 1)
    cols = np.minimum((np.arange(size[1]) + 0.5) * working[1] / size[1], working[1] - 1)
    return painted[rows.astype(np.int64)[:, None], cols.astype(np.int64)[None, :]]


@dataclass(frozen=True)
class Segmentation:
    """A segmentation with what the API shows of it."""

    result: SegmentationResult
    regions: np.ndarray  # (H, W) int32 region index per pixel, -1: none
    working: tuple[int, int]  # (h, w) of the resized image the regions' boxes refer to
    coverage: list[Coverage]
    seconds: float  # model time (retrieval, features, OpenCut, scoring)


class Service:
    """The collection and models of a running server.

    ``parse_concepts``: the CLI's ``--concepts`` parser (same messages as ``fossil
    segment``); ``describe``: what ``fossil info --json`` says about the collection."""

    def __init__(
        self,
        collection: Collection,
        models: ServeModels,
        config: FossilConfig,
        *,
        parse_concepts: Callable[[str], list[str]],
        describe: Callable[[], dict[str, Any]],
        explain: int = 3,
    ) -> None:
        self.collection = collection
        self.models = models
        self.config = config
        self.parse_concepts = parse_concepts
        self.describe = describe
        self.explain = explain
        self._memory = MemoryCache()  # one bounded prototype cache for every engine
        self._engines: OrderedDict[RetrievalConfig, QueryEngine] = OrderedDict()
        self.engine(config.retrieval)  # refuses a text encoder the collection was not built with

    def engine(self, retrieval: RetrievalConfig) -> QueryEngine:
        """The query engine of one retrieval setting; the :data:`MAX_ENGINES` most recently
        used are kept.  They share one in-memory prototype cache (its keys carry N, K and
        the options) and the store's on-disk one, each bounded in bytes."""
        engine = self._engines.get(retrieval)
        if engine is None:
            disk = True if self.collection.root is not None else None
            engine = QueryEngine(
                self.collection,
                self.models.text,
                retrieval,
                memory_cache=self._memory,
                disk_cache=disk,
                embedding_cache=disk,
            )
            self._engines[retrieval] = engine
            while len(self._engines) > MAX_ENGINES:
                self._engines.popitem(last=False)
        self._engines.move_to_end(retrieval)
        return engine

    def coverage(self, engine: QueryEngine, concepts: list[str]) -> list[Coverage]:
        from fossil.models.nouns import concept_lemmas

        lemmas = concept_lemmas(self.models.nouns, concepts)
        return engine.coverage(concepts, lemmas, self.config.coverage)

    def segment(self, image: np.ndarray, concepts: list[str], config: FossilConfig) -> Segmentation:
        """Label ``image`` with ``concepts`` (model work: run one at a time)."""
        from fossil.segment.window import resized_size

        start = time.perf_counter()
        engine = self.engine(config.retrieval)
        recorder = MaskRecorder(ImageAnalyser(self.models.dense, self.models.keys, config))
        result = segment_image(
            image,
            concepts,
            self.collection,
            config,
            engine=engine,
            analyser=recorder,
            explain=self.explain,
        )
        covered = self.coverage(engine, result.concepts)
        height, width = image.shape[:2]
        ev = config.eval
        w, h = resized_size(width, height, ev.long_side, ev.short_side)
        regions = region_map(
            [e.region for e in result.explanations], recorder.masks, (h, w), (height, width)
        )
        return Segmentation(result, regions, (h, w), covered, time.perf_counter() - start)

    def query(self, concepts: list[str], retrieval: RetrievalConfig) -> list[dict[str, Any]]:
        """Per concept: its references, prototype count and coverage (model work)."""
        engine = self.engine(retrieval)
        results = engine.query(concepts)
        covered = self.coverage(engine, concepts)
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
