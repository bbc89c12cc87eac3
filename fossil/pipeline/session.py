"""The read side as one object: a collection opened with the models it was built with and a
config, what ``fossil segment``, ``query``, ``eval``, ``serve`` and ``demo`` run on.

:class:`ReadSession` is to reading a collection what :func:`fossil.pipeline.ingest.ingest_corpora`
is to growing one: the one place that composes the read-side layers.  It checks both encoders
against the collection when it starts (the text encoder through the query engine, the dense
encoder when the models include one), keeps the query engines (one per retrieval setting,
sharing one bounded prototype cache and the store's on-disk caches) and the image analysers
(per region-proposer setting, sharing the crop cache), and offers coverage, ``--extend``,
segmentation and the evaluation's crop predictor.  Commands, the server and the demo call
it; none of them builds a query engine or an analyser.

Concepts reach it as :class:`~fossil.concepts.Concepts` (checked once, where they are parsed)
or as plain lists (checked here, once).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from fossil.concepts import Concepts
from fossil.config import CollectionSettings, FossilConfig, RetrievalConfig
from fossil.pipeline.crop_cache import CropCache
from fossil.pipeline.models import check_dense_encoder, collection_models
from fossil.pipeline.segmenter import (
    CropScorer,
    ImageAnalyser,
    SegmentationResult,
    segment_image,
)
from fossil.query.cache import MemoryCache
from fossil.query.engine import QueryEngine

if TYPE_CHECKING:
    import numpy as np

    from fossil.db.protocols import Collection
    from fossil.models.loading import ModelBundle
    from fossil.pipeline.extend import Extension
    from fossil.pipeline.ingest import IngestProgress
    from fossil.pipeline.ingest_config import ModelChoice, StoreAddress
    from fossil.query.coverage import Coverage
    from fossil.query.retrieval import ConceptResult

logger = logging.getLogger(__name__)

MAX_ENGINES = 8  # query engines kept, one per retrieval setting (N, K, options) requested

# a config, or how to make one from the settings the collection records
ConfigSource = FossilConfig | Callable[[CollectionSettings | None], FossilConfig]


@dataclass(frozen=True)
class ReadCaches:
    """What a session keeps between calls besides the in-memory prototype cache (always
    kept, bounded in bytes): the concepts' query embeddings and the prototypes on disk under
    the store directory (a server collection without one keeps neither), and per-crop
    features + masks in ``crops`` (a directory or a :class:`CropCache`; None: none)."""

    embeddings: bool = False  # <store>/cache/embeddings
    prototypes: bool = False  # <store>/cache/prototypes
    crops: CropCache | str | Path | None = None


class ReadSession:
    """A collection, its models and a config, ready to answer queries and segment images.

    ``models`` must hold the roles the calls made need (``fossil.models.loading.COMMAND_ROLES``;
    a lazy :class:`~fossil.models.loading.ModelBundle` builds each on first use).  The
    constructor refuses a text encoder, and a dense encoder when ``models`` can segment (the
    dense and keys roles), other than the ones the collection was built with.  ``settings``:
    what the collection records (``fossil info``), shown by :meth:`describe`.
    ``owns_collection``: :meth:`close` closes it (what :meth:`open` returns)."""

    def __init__(
        self,
        collection: Collection,
        models: ModelBundle,
        config: FossilConfig,
        *,
        caches: ReadCaches = ReadCaches(),
        settings: CollectionSettings | None = None,
        owns_collection: bool = False,
    ) -> None:
        self.collection = collection
        self.models = models
        self.config = config
        self.settings = settings
        self.owns_collection = owns_collection
        self.store: StoreAddress | None = None  # where open() found the collection
        on_disk = collection.root is not None
        self._embeddings_on_disk = caches.embeddings and on_disk
        self._prototypes_on_disk = caches.prototypes and on_disk
        crops = caches.crops
        self.crop_cache = CropCache(crops) if isinstance(crops, (str, Path)) else crops
        self._memory = MemoryCache()  # one bounded prototype cache for every engine
        self._engines: OrderedDict[RetrievalConfig, QueryEngine] = OrderedDict()
        self._analysers: OrderedDict[FossilConfig, ImageAnalyser] = OrderedDict()
        self.engine()  # refuses a text encoder the collection was not built with
        if {"dense", "keys"} <= models.roles:  # models that segment (not --extend's alone)
            check_dense_encoder(collection, models)

    @classmethod
    def open(
        cls,
        store: StoreAddress,
        config: ConfigSource,
        models: ModelChoice | ModelBundle | Callable[[Collection, FossilConfig], ModelBundle],
        *,
        command: str = "segment",
        extend: bool = False,
        caches: ReadCaches = ReadCaches(),
        settings: Callable[[Collection], CollectionSettings | None] | None = None,
        release_stale_leases: bool = False,
    ) -> ReadSession:
        """Open the existing collection at ``store`` and start a session on it (close it, or
        use it as a context manager).  ``config``: a config, or a function of the settings
        the collection records (to start from them); ``models``: a
        :class:`~fossil.pipeline.ingest_config.ModelChoice` (its profile, else the models
        the collection records, on its first device; the roles ``command`` needs, plus
        ``extend``'s), a bundle, or a function of the collection and the config.
        ``settings``: how to read the collection's settings (default: what it records).
        ``release_stale_leases``: this session will extend the collection."""
        collection = store.open(release_stale_leases=release_stale_leases)
        try:
            recorded = settings(collection) if settings else collection.catalog.get_settings()
            chosen = config(recorded) if callable(config) else config
            bundle = _models(models, collection, chosen, command, extend)
            session = cls(
                collection, bundle, chosen, caches=caches, settings=recorded, owns_collection=True
            )
        except BaseException:
            collection.close()
            raise
        session.store = store
        return session

    def close(self) -> None:
        """Close the collection when the session opened it."""
        if self.owns_collection:
            self.collection.close()

    def __enter__(self) -> ReadSession:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    # ---- retrieval ---------------------------------------------------------------------------

    def engine(self, retrieval: RetrievalConfig | None = None) -> QueryEngine:
        """The query engine of one retrieval setting (default: the session's); the
        :data:`MAX_ENGINES` most recently used are kept.  They share one in-memory prototype
        cache (its keys carry N, K and the options) and the store's on-disk ones."""
        retrieval = retrieval if retrieval is not None else self.config.retrieval
        return _recent(
            self._engines,
            retrieval,
            lambda: QueryEngine(
                self.collection,
                self.models.text,
                retrieval,
                memory_cache=self._memory,
                disk_cache=True if self._prototypes_on_disk else None,
                embedding_cache=True if self._embeddings_on_disk else None,
            ),
        )

    def query(
        self, concepts: Sequence[str], retrieval: RetrievalConfig | None = None
    ) -> list[ConceptResult]:
        """Per concept: its N references and K prototypes (:meth:`QueryEngine.query`)."""
        return self.engine(retrieval).query(Concepts.check(concepts))

    def coverage(
        self, concepts: Sequence[str], retrieval: RetrievalConfig | None = None
    ) -> list[Coverage]:
        """How well the collection covers each concept (:mod:`fossil.query.coverage`), with
        the concepts' own noun lemmas from the noun parser and the config's thresholds."""
        checked = Concepts.check(concepts)
        return self.engine(retrieval).coverage(checked, self._lemmas(checked), self.config.coverage)

    def extend(
        self,
        concepts: Sequence[str],
        per_concept: int,
        *,
        on_progress: Callable[[IngestProgress], None] | None = None,
    ) -> Extension:
        """Generate ``per_concept`` references for each concept the collection does not cover
        (:func:`fossil.pipeline.extend.extend`; the models need the generator's roles, and
        the session should be opened with ``release_stale_leases``).  ``after`` is the
        coverage once they are written."""
        from fossil.pipeline.extend import extend

        checked = Concepts.check(concepts)
        return extend(
            self.engine(),
            checked,
            self.models,
            per_concept=per_concept,
            lemmas=self._lemmas(checked),
            coverage=self.config.coverage,
            on_progress=on_progress,
        )

    def _lemmas(self, concepts: Concepts) -> list[frozenset[str]]:
        from fossil.models.nouns import concept_lemmas

        return concept_lemmas(self.models.nouns, concepts)

    # ---- images ------------------------------------------------------------------------------

    def analyser(self, config: FossilConfig | None = None) -> ImageAnalyser:
        """The analyser (features + region masks per crop, through the crop cache) of
        ``config`` (default: the session's); the :data:`MAX_ENGINES` most recent are kept."""
        config = config if config is not None else self.config
        return _recent(
            self._analysers,
            config,
            lambda: ImageAnalyser(self.models.dense, self.models.keys, config, self.crop_cache),
        )

    def segment(
        self,
        image: np.ndarray,
        concepts: Sequence[str],
        config: FossilConfig | None = None,
        *,
        explain: int = 3,
        progress: bool = False,
    ) -> SegmentationResult:
        """Label every pixel of ``image`` with one of ``concepts``
        (:func:`fossil.pipeline.segment_image`) under ``config`` (default: the session's);
        with ``explain`` > 0 the result keeps the regions, their masks and references."""
        config = config if config is not None else self.config
        return segment_image(
            image,
            Concepts.check(concepts),
            config,
            engine=self.engine(config.retrieval),
            analyser=self.analyser(config),
            explain=explain,
            progress=progress,
        )

    def predictor(
        self, prototypes: Sequence[np.ndarray], config: FossilConfig | None = None
    ) -> CropScorer:
        """The crop predictor the evaluation runner drives (design §9): per crop features + region
        masks (through the crop cache) scored against ``prototypes`` (one (K, dim) array per
        class, e.g. from :meth:`query`) under ``config`` (default: the session's)."""
        config = config if config is not None else self.config
        return CropScorer(self.analyser(config), prototypes, config)

    # ---- the collection ----------------------------------------------------------------------

    def describe(self, top: int = 20) -> dict[str, Any]:
        """What ``fossil info --json`` says about the collection
        (:func:`fossil.pipeline.info.describe`)."""
        from fossil.pipeline.info import describe

        url = self.store.qdrant_url if self.store is not None else None
        return describe(self.collection, self.settings, top, qdrant_url=url)


K = TypeVar("K")
V = TypeVar("V")


def _recent(kept: OrderedDict[K, V], key: K, make: Callable[[], V]) -> V:
    """``kept[key]``, made on first use; the :data:`MAX_ENGINES` most recently used stay."""
    value = kept.get(key)
    if value is None:
        value = kept[key] = make()
        while len(kept) > MAX_ENGINES:
            kept.popitem(last=False)
    kept.move_to_end(key)
    return value


def _models(
    source: ModelChoice | ModelBundle | Callable[[Collection, FossilConfig], ModelBundle],
    collection: Collection,
    config: FossilConfig,
    command: str,
    extend: bool,
) -> ModelBundle:
    from fossil.models.loading import ModelBundle
    from fossil.pipeline.ingest_config import ModelChoice

    if isinstance(source, ModelBundle):
        return source
    if isinstance(source, ModelChoice):
        return collection_models(
            command,
            collection,
            profile=source.profile,
            device=source.devices[0],
            extend=extend,
            sizes=config.eval,
        )
    return source(collection, config)


__all__ = ["MAX_ENGINES", "ReadCaches", "ReadSession", "SegmentationResult"]
