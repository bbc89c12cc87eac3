"""The query engine: concept texts → references, their VREs and K prototypes (design §5.5–§5.6).

``QueryEngine`` binds an opened collection to the text encoder it was built with and keeps
the prototype cache; :func:`query` is the one-shot form.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

import numpy as np

from fossil.concepts import check_concepts
from fossil.config import CoverageConfig, RetrievalConfig
from fossil.db.protocols import CatalogStore, Collection
from fossil.models.protocols import TextEncoder
from fossil.query.cache import (
    CacheKey,
    DiskCache,
    MemoryCache,
    collection_instance,
    retrieval_options,
)
from fossil.query.coverage import Coverage, assess_coverage
from fossil.query.embeddings import EMBEDDING_CACHE_DIR, EmbeddingCache
from fossil.query.prototypes import KMeansParams, batch_prototypes, effective_k
from fossil.query.retrieval import ConceptResult, Retrieved, retrieve
from fossil.query.routing import (
    ROUTE_MIN_REFERENCES,
    LemmaIndex,
    current_lemma_index,
    route,
)
from fossil.records import SOURCE_LABELLED, is_labelled

logger = logging.getLogger(__name__)

DISK_CACHE_DIR = os.path.join("cache", "prototypes")  # under the store directory


class NoReferencesError(ValueError):
    """A concept retrieved no references (none ingested, or all filtered out)."""

    def __init__(self, concepts: Sequence[str], config: RetrievalConfig) -> None:
        self.concepts = tuple(concepts)
        names = ", ".join(repr(c) for c in concepts)
        hint = (
            "ingest captions that mention it, or generate references for it with "
            f'`fossil ingest --concepts "{", ".join(concepts)}"`'
        )
        if config.retrieval_threshold is not None:
            hint += f", or lower retrieval_threshold ({config.retrieval_threshold})"
        if config.exclude_corpora:
            hint += f", or exclude fewer corpora ({', '.join(config.exclude_corpora)})"
        super().__init__(f"no references for {names}: {hint}")


@dataclass(frozen=True)
class CacheStats:
    memory_hits: int
    memory_misses: int
    disk_hits: int
    disk_misses: int
    entries: int
    embedding_hits: int = 0  # concepts whose query embedding was cached (memory or disk)
    embedding_misses: int = 0  # concepts encoded


def check_text_encoder(collection: Collection, text_encoder: TextEncoder) -> None:
    """Refuse an encoder other than the one the collection's TREs were computed with."""
    meta = collection.meta
    if text_encoder.name != meta.text_encoder or int(text_encoder.dim) != meta.text_dim:
        raise ValueError(
            f"text encoder {text_encoder.name!r} (dim {text_encoder.dim}) does not match the "
            f"collection, built with {meta.text_encoder!r} (dim {meta.text_dim}); query it "
            "with the encoder it was built with"
        )


class QueryEngine:
    """Retrieval + prototypes for one collection, with a prototype cache.

    ``cache_size``: entries of the in-memory LRU (0 disables it; it also holds at most
    :data:`~fossil.query.cache.MEMORY_CACHE_BYTES`).  ``memory_cache``: an LRU to use
    instead, e.g. one shared by the engines of several retrieval settings (its keys carry
    them) so that one bound holds for all.  ``disk_cache``: a directory for the on-disk
    cache, ``True`` for ``<store>/cache/prototypes`` (needs ``collection.root``), or
    ``False``/``None`` for none.  ``embedding_cache``: where the concepts' query embeddings
    are kept on disk (:mod:`fossil.query.embeddings`; they outlive every ingest): the same
    choices, ``True`` meaning ``<store>/cache/embeddings``; they are kept in memory too (up
    to ``cache_size``).  ``use_gpu``: faiss on GPU (``None``: when available).
    """

    def __init__(
        self,
        collection: Collection,
        text_encoder: TextEncoder,
        config: RetrievalConfig | None = None,
        *,
        cache_size: int = 1024,
        memory_cache: MemoryCache | None = None,
        disk_cache: bool | str | os.PathLike[str] | None = None,
        embedding_cache: bool | str | os.PathLike[str] | None = None,
        use_gpu: bool | None = None,
    ) -> None:
        check_text_encoder(collection, text_encoder)
        self.collection = collection
        self.text_encoder = text_encoder
        self.config = config if config is not None else RetrievalConfig()
        self.use_gpu = use_gpu
        self._memory = memory_cache if memory_cache is not None else MemoryCache(cache_size)
        self._disk = _disk_cache(collection, disk_cache)
        embedding_dir = _cache_dir(
            collection, embedding_cache, EMBEDDING_CACHE_DIR, "embedding_cache"
        )
        self._embeddings = EmbeddingCache(
            text_encoder.name, text_encoder.dim, directory=embedding_dir, maxsize=cache_size
        )
        self._instance = collection_instance(collection)  # cache keys: which collection
        self._revision: int | None = None
        self._lemma_index: LemmaIndex | None = None
        self._lemma_revision: int | None = None

    def query(self, concepts: Sequence[str]) -> list[ConceptResult]:
        """One :class:`ConceptResult` per concept, in the order given; the concepts are
        checked by :func:`fossil.concepts.check_concepts` (a concept given twice is refused)."""
        cleaned = check_concepts(concepts)
        revision = int(self.collection.catalog.revision())
        if revision != self._revision:  # entries of other revisions can never hit again
            self._memory.clear()
            self._revision = revision
        keys = {c: self._key(c, revision) for c in cleaned}
        found = {c: r for c, r in ((c, self._cached(k)) for c, k in keys.items()) if r is not None}
        missing = [c for c in keys if c not in found]
        if missing:
            for concept, result in zip(missing, self._compute(missing, revision), strict=True):
                self._memory.put(keys[concept], result)
                if self._disk is not None:
                    self._disk.put(keys[concept], result)
                found[concept] = result
        return [found[c] for c in cleaned]

    def coverage(
        self,
        concepts: Sequence[str],
        lemmas: Sequence[AbstractSet[str]] | None = None,
        config: CoverageConfig | None = None,
    ) -> list[Coverage]:
        """How well the collection covers each concept (:mod:`fossil.query.coverage`), from
        the same (cached) retrieval as :meth:`query`.  ``lemmas``: per concept, its own noun
        lemmas (:func:`fossil.models.nouns.concept_lemmas`; default: the lowercased concept).
        A concept with no references at all is uncovered (no error)."""
        cleaned = check_concepts(concepts)
        if lemmas is None:
            lemmas = [frozenset({" ".join(c.lower().split())}) for c in cleaned]
        if len(lemmas) != len(cleaned):
            raise ValueError(f"got {len(lemmas)} lemma sets for {len(cleaned)} concepts")
        try:
            results = {r.concept: r.references for r in self.query(cleaned)}
        except NoReferencesError as error:
            empty = set(error.concepts)
            found = [c for c in cleaned if c not in empty]
            results = {r.concept: r.references for r in self.query(found)} if found else {}
        config = config if config is not None else CoverageConfig()
        return [
            assess_coverage(
                concept,
                results.get(concept, ()),
                own,
                self.config.N,
                config,
                self.text_encoder.name,
            )
            for concept, own in zip(cleaned, lemmas, strict=True)
        ]

    def cache_stats(self) -> CacheStats:
        disk = self._disk
        return CacheStats(
            memory_hits=self._memory.hits,
            memory_misses=self._memory.misses,
            disk_hits=disk.hits if disk else 0,
            disk_misses=disk.misses if disk else 0,
            entries=len(self._memory),
            embedding_hits=self._embeddings.hits,
            embedding_misses=self._embeddings.misses,
        )

    def _key(self, concept: str, revision: int) -> CacheKey:
        c = self.config
        options = retrieval_options(c)  # every field of RetrievalConfig (fossil.query.cache)
        return CacheKey(
            concept, c.N, c.K, options, self.text_encoder.name, revision, self._instance
        )

    def _cached(self, key: CacheKey) -> ConceptResult | None:
        result = self._memory.get(key)
        if result is None and self._disk is not None:
            result = self._disk.get(key)
            if result is not None:
                self._memory.put(key, result)
        return result

    def _compute(self, concepts: list[str], revision: int) -> list[ConceptResult]:
        c = self.config
        queries = self._embeddings.embed(self.text_encoder, concepts)
        retrieved = retrieve(
            self.collection.refs,
            self.collection.catalog,
            queries,
            c.N,
            retrieval_threshold=c.retrieval_threshold,
            exclude_corpora=excluded_corpora(self.collection.catalog, c),
            root=self.collection.root,
            lemmas=self._route(queries, revision),
        )
        empty = [
            concept for concept, r in zip(concepts, retrieved, strict=True) if not r.references
        ]
        if empty:
            raise NoReferencesError(empty, c)
        _warn_short(concepts, retrieved, c)
        prototypes = batch_prototypes(
            [r.visual for r in retrieved],
            c.K,
            prototype_mean=c.prototype_mean,
            params=KMeansParams.from_config(c, use_gpu=self.use_gpu),
        )
        return [
            ConceptResult(concept, r.references, r.visual, p, revision)
            for concept, r, p in zip(concepts, retrieved, prototypes, strict=True)
        ]

    def _route(self, queries: np.ndarray, revision: int) -> list[list[str]] | None:
        """Per query, the lemmas to search (None: search everything); see ``route``."""
        c = self.config
        routed = c.route
        if routed is None:
            routed = self.collection.refs.count() >= ROUTE_MIN_REFERENCES
        if not routed:
            return None
        if self._lemma_revision != revision:
            # saved in the store for this revision, else built (new lemmas only) and saved
            self._lemma_index = current_lemma_index(
                self.collection, revision, previous=self._lemma_index
            )
            self._lemma_revision = revision
        assert self._lemma_index is not None
        return route(self._lemma_index, queries, c.N, cover=c.route_cover)


def excluded_corpora(catalog: CatalogStore, config: RetrievalConfig) -> tuple[str, ...]:
    """The corpora a search skips: ``exclude_corpora``, and with ``references`` naming one
    source, every corpus of the other (labelled sets are the ``labelled:`` corpora)."""
    excluded = set(config.exclude_corpora)
    if config.references != "all":
        keep_labelled = config.references == SOURCE_LABELLED
        excluded |= {
            c["name"] for c in catalog.corpora() if is_labelled(c["name"]) != keep_labelled
        }
    return tuple(sorted(excluded))


def query(
    collection: Collection,
    concepts: Sequence[str],
    text_encoder: TextEncoder,
    config: RetrievalConfig | None = None,
) -> list[ConceptResult]:
    """One-shot :meth:`QueryEngine.query` (no cache kept)."""
    return QueryEngine(collection, text_encoder, config, cache_size=0).query(concepts)


def _warn_short(concepts: list[str], retrieved: list[Retrieved], config: RetrievalConfig) -> None:
    """One warning listing the concepts that got fewer than N references (and lower K)."""
    K = 1 if config.prototype_mean else config.K
    short = [
        f"{concept!r}: {len(r.references)} references, K={effective_k(len(r.references), K)}"
        for concept, r in zip(concepts, retrieved, strict=True)
        if len(r.references) < config.N
    ]
    if short:
        logger.warning(
            "fewer than N=%d references (K=%d lowered where needed): %s",
            config.N,
            K,
            "; ".join(short),
        )


def _disk_cache(
    collection: Collection, disk_cache: bool | str | os.PathLike[str] | None
) -> DiskCache | None:
    directory = _cache_dir(collection, disk_cache, DISK_CACHE_DIR, "disk_cache")
    return None if directory is None else DiskCache(directory)


def _cache_dir(
    collection: Collection,
    choice: bool | str | os.PathLike[str] | None,
    under_store: str,
    name: str,
) -> str | os.PathLike[str] | None:
    """The directory of cache ``name``: ``choice`` itself, ``<store>/<under_store>`` for
    True, or None."""
    if choice is None or choice is False:
        return None
    if choice is True:
        if collection.root is None:
            raise ValueError(
                f"{name}=True needs a store directory (collection.root is None for a server "
                "collection); pass a directory instead"
            )
        return os.path.join(os.fspath(collection.root), under_store)
    return choice
