"""Routing retrieval by noun lemma: search only the references of a concept's nearest lemmas.

Exact search over every Textual Retrieval Embedding costs ~10 s for 171 concepts at 1M
references on 2 cores.  TREs cluster tightly by noun (0.9 of a TRE is the template
embedding of its noun, design §5.5), so a concept's top-N references sit under the few lemmas whose
TREs are nearest to it.  A :class:`LemmaIndex` keeps one centre per lemma — the normalised
mean of the TREs of two of its references, fetched once and reused across
revisions (new lemmas are added, vanished ones dropped) — and :func:`route` gives each
concept its nearest lemmas until they hold ``cover × N`` references.  The store then
searches exactly within those lemmas (a payload-indexed filter).  Measured recall@150 vs
exact search: see ``benchmarks/query_bench.py``.

Pure functions over arrays, plus :func:`build_lemma_index` which reads the stores and
:func:`save_lemma_index` / :func:`load_lemma_index`, which keep the index of one collection
revision on disk (``DIR/cache/lemma_index.npz``): a new process routes at once instead of
re-reading the lemma counts and sample vectors (~2.4 s at 1M references cold).
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fossil.db.protocols import CatalogStore, Collection, ReferenceStore
from fossil.numerics import l2_normalise
from fossil.query.cache import collection_instance

logger = logging.getLogger(__name__)

ROUTE_MIN_REFERENCES = 200_000  # below this, exact search over everything is fast enough
LEMMA_INDEX_FILE = os.path.join("cache", "lemma_index.npz")  # under the store directory


@dataclass(frozen=True)
class LemmaIndex:
    """Per noun lemma: its reference count and a unit-norm TRE centre."""

    lemmas: tuple[str, ...]
    counts: np.ndarray  # (L,) int64
    centres: np.ndarray  # (L, text_dim) float32, unit rows

    def __post_init__(self) -> None:
        if len(self.lemmas) != len(self.counts) or len(self.lemmas) != len(self.centres):
            raise ValueError("lemmas, counts and centres must have one row per lemma")


def build_lemma_index(
    refs: ReferenceStore, catalog: CatalogStore, *, previous: LemmaIndex | None = None
) -> LemmaIndex:
    """The index of the collection now: counts from the catalog; centres of lemmas already in
    ``previous`` are kept, the others are the mean of the TREs of their sample references
    (:meth:`~fossil.db.protocols.CatalogStore.lemma_samples`)."""
    samples = {lemma: (count, ids) for lemma, count, ids in catalog.lemma_samples() if ids}
    lemmas = tuple(sorted(samples))
    known = {} if previous is None else dict(zip(previous.lemmas, previous.centres, strict=True))
    new = [lemma for lemma in lemmas if lemma not in known]
    if new:
        ids = [point for lemma in new for point in samples[lemma][1]]
        vectors = l2_normalise(refs.fetch_text(ids))
        start = 0
        for lemma in new:
            taken = len(samples[lemma][1])
            known[lemma] = l2_normalise(vectors[start : start + taken].mean(axis=0))
            start += taken
        logger.info("lemma index: %d new lemmas (%d references read)", len(new), len(ids))
    if not lemmas:
        return LemmaIndex((), np.zeros(0, np.int64), np.zeros((0, 0), np.float32))
    return LemmaIndex(
        lemmas,
        np.array([samples[lemma][0] for lemma in lemmas], np.int64),
        np.stack([known[lemma] for lemma in lemmas]).astype(np.float32),
    )


def route(
    index: LemmaIndex,
    queries: np.ndarray,
    N: int,
    *,
    cover: int = 10,
    min_lemmas: int = 4,
) -> list[list[str]]:
    """Per row of ``queries`` (Q, dim), its nearest lemmas (cosine to the centres) until they
    hold at least ``cover × N`` references, and at least ``min_lemmas`` of them."""
    if N < 1 or cover < 1 or min_lemmas < 1:
        raise ValueError(f"N ({N}), cover ({cover}) and min_lemmas ({min_lemmas}) must be >= 1")
    if not index.lemmas:
        return [[] for _ in queries]
    order = np.argsort(-(l2_normalise(queries) @ index.centres.T), axis=1, kind="stable")
    held = np.cumsum(index.counts[order], axis=1)  # (Q, L) references in the first j+1
    enough = held >= cover * N
    # first position where enough references are held (the last when never)
    first = np.where(enough.any(axis=1), enough.argmax(axis=1), len(index.lemmas) - 1)
    take = np.maximum(first + 1, min(min_lemmas, len(index.lemmas)))
    return [[index.lemmas[j] for j in row[:k]] for row, k in zip(order, take, strict=True)]


def save_lemma_index(
    index: LemmaIndex,
    path: str | os.PathLike[str],
    revision: int,
    encoder: str,
    collection: str = "",
) -> None:
    """Write ``index`` of collection ``revision`` (TREs of text encoder ``encoder``; the
    collection's instance id ``collection``) to ``path`` atomically (a temporary file renamed
    over it)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".lemma_index.", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez(
                handle,
                lemmas=np.array(index.lemmas, dtype=np.str_),
                counts=index.counts,
                centres=index.centres,
                revision=np.int64(revision),
                encoder=np.str_(encoder),
                collection=np.str_(collection),
            )
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_lemma_index(
    path: str | os.PathLike[str], encoder: str, collection: str | None = None
) -> tuple[LemmaIndex, int] | None:
    """``(index, revision)`` saved at ``path`` for text encoder ``encoder`` and (unless None)
    the collection whose instance id is ``collection``; None when there is none or it was
    saved for another encoder or collection.  An unreadable file (truncated, flipped bytes) is
    deleted with a warning, so it is rebuilt."""
    try:
        with np.load(path, allow_pickle=False) as data:
            saved_for = str(data["collection"]) if "collection" in data.files else ""
            if str(data["encoder"]) != encoder or collection not in (None, saved_for):
                return None
            lemmas = tuple(str(lemma) for lemma in data["lemmas"])
            index = LemmaIndex(lemmas, data["counts"].astype(np.int64), data["centres"])
            return index, int(data["revision"])
    except FileNotFoundError:
        return None
    except Exception as error:  # noqa: BLE001 - any unreadable file: BadZipFile, zlib.error…
        logger.warning(
            "ignoring the saved lemma index %s (unreadable: dropped, rebuilt): %s", path, error
        )
        Path(path).unlink(missing_ok=True)
        return None


def current_lemma_index(
    collection: Collection, revision: int, *, previous: LemmaIndex | None = None
) -> LemmaIndex:
    """The lemma index of ``collection`` at ``revision``: the one saved in its store
    directory when it is of this revision; else built — from ``previous`` or the saved one,
    so only new lemmas are read — and saved for the next process.  Collections without a
    directory (``root`` None) keep it in memory only."""
    path = None
    encoder, instance = collection.meta.text_encoder, collection_instance(collection)
    if collection.root is not None:
        path = os.path.join(os.fspath(collection.root), LEMMA_INDEX_FILE)
    if previous is None and path is not None:
        saved = load_lemma_index(path, encoder, instance)
        if saved is not None and saved[1] == revision:
            return saved[0]
        previous = None if saved is None else saved[0]
    index = build_lemma_index(collection.refs, collection.catalog, previous=previous)
    if path is not None:
        try:
            save_lemma_index(index, path, revision, encoder, instance)
        except OSError as error:  # a read-only store still answers
            logger.warning("cannot save the lemma index to %s: %s", path, error)
    return index


def refresh_lemma_index(collection: Collection) -> bool:
    """After a write (ingest, corpus removal): bring the saved lemma index of a collection
    large enough to be routed up to date, so the next query process routes at once.
    Returns whether it did (False: no store directory, or too small to be routed)."""
    if collection.root is None or collection.refs.count() < ROUTE_MIN_REFERENCES:
        return False
    current_lemma_index(collection, int(collection.catalog.revision()))
    return True
