"""Store protocols (design §4).  Implementations: :mod:`fossil.db.edge` (embedded Qdrant Edge,
default), :mod:`fossil.db.server` (qdrant-client against a server, or ``:memory:``),
:mod:`fossil.db.catalog` (SQLAlchemy)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from fossil.config import CollectionSettings
from fossil.records import Hit, ReferencePoint


@dataclass(frozen=True)
class CollectionMeta:
    """What a collection was built with; checked on open (design §4 ``collection_meta``)."""

    text_encoder: str
    text_dim: int
    dense_encoder: str
    visual_dim: int
    generator: str
    generation_fingerprint: str
    schema_version: int

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@runtime_checkable
class ReferenceStore(Protocol):
    """Vector store of references: named vectors ``text`` (searched, cosine) and ``visual``
    (stored, never searched), payload ``{caption_id, noun, noun_lemma, corpus, mask_area}``."""

    def upsert(self, points: Sequence[ReferencePoint]) -> None: ...

    def search(
        self,
        vectors: np.ndarray,
        n: int,
        *,
        exclude_corpora: Sequence[str] = (),
        min_score: float | None = None,
        lemmas: Sequence[Sequence[str]] | None = None,
    ) -> list[list[Hit]]:
        """Top-``n`` by cosine on ``text`` for each row of ``vectors`` (Q, dim), one batch call;
        hits in descending score order.  ``lemmas``: per query, only references whose
        ``noun_lemma`` is in its list (routing by noun; an empty list gives no hits)."""
        ...

    def fetch_visual(self, ids: Sequence[str]) -> np.ndarray:
        """(len(ids), visual_dim) float32 raw VREs, in the order of ``ids``."""
        ...

    def fetch_text(self, ids: Sequence[str]) -> np.ndarray:
        """(len(ids), text_dim) float32 TREs, in the order of ``ids``."""
        ...

    def present(self, ids: Sequence[str]) -> set[str]:
        """The ids of ``ids`` that the store holds (an export skips those)."""
        ...

    def delete(self, ids: Sequence[str]) -> None: ...

    def set_corpus(self, ids: Sequence[str], corpus: str) -> None:
        """Set the ``corpus`` payload of points ``ids`` (a shared caption changing hands)."""
        ...

    def count(self) -> int: ...

    def iter_points(self, batch_size: int = 1024) -> Iterator[ReferencePoint]: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class CaptionJob:
    """A caption claimed for processing (design §4 ``caption`` row, status ``leased``)."""

    id: int
    text: str
    text_hash: str
    corpus: str
    attempts: int
    phrase: str | None = None  # the noun span to locate (concept corpora); None: parse nouns


@dataclass(frozen=True)
class ReferenceRow:
    """A reference as catalogued in SQL (design §4 ``reference`` row)."""

    point_id: str
    caption_id: int
    noun: str
    lemma: str
    mask_area: float
    thumbnail: str | None = None


@dataclass(frozen=True)
class AddResult:
    added: int  # new captions registered
    duplicates: int  # captions already present (in this or any corpus)
    skipped: int  # empty / invalid captions, counted not stored


@runtime_checkable
class CatalogStore(Protocol):
    """SQL catalog of corpora, captions (with job state) and references (design §4)."""

    def add_corpus(
        self,
        name: str,
        source: str,
        captions: Sequence[str],
        *,
        phrase: str | None = None,
        items: Sequence[tuple[str, str]] | None = None,
    ) -> AddResult:
        """Register a corpus (idempotent by name) and its captions, deduplicated by the hash
        of the normalised text across all corpora.  ``phrase``: the noun span every caption
        of this corpus is about (concept corpora); its references are of that phrase only.
        ``items``: per caption its own ``(key, phrase)``, the key replacing the text's hash
        (labelled photos: :mod:`fossil.ingest.labelled_refs`)."""
        ...

    def claim(
        self,
        owner: str,
        batch_size: int,
        lease_seconds: float,
        *,
        corpora: Sequence[str] | None = None,
    ) -> list[CaptionJob]:
        """Lease up to ``batch_size`` pending captions (or ones whose lease expired, or failed
        ones below the retry limit) to ``owner``; only captions of ``corpora`` when given."""
        ...

    def complete(
        self, owner: str, caption_ids: Sequence[int], rows: Sequence[ReferenceRow]
    ) -> None:
        """One transaction: mark captions done, insert their reference rows, bump the
        revision.  Called after the vector upsert (design §4 write order)."""
        ...

    def fail(self, owner: str, caption_id: int, error: str) -> None: ...

    def failures(self, limit: int = 20) -> list[dict[str, Any]]:
        """Failed captions (most attempts first): ``id``, ``text``, ``attempts``, ``error``."""
        ...

    def release(self, owner: str, caption_ids: Sequence[int]) -> None:
        """Give leased captions back (clean shutdown)."""
        ...

    def status_counts(self, corpora: Sequence[str] | None = None) -> dict[str, int]:
        """Captions per status (``pending``, ``leased``, ``done``, ``failed``), of
        ``corpora`` only when given."""
        ...

    def revision(self) -> int:
        """Increases whenever references are added or removed (prototype cache key)."""
        ...

    def lookup(self, point_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Per point id: ``caption``, ``noun``, ``lemma``, ``corpus``, ``thumbnail``."""
        ...

    def release_all(self) -> int:
        """Hand back every lease (only safe when no worker can be running); how many."""
        ...

    def remove_references(self, point_ids: Sequence[str]) -> int:
        """Delete reference rows (after the vector store delete); how many existed."""
        ...

    def reference_count(self) -> int: ...

    def latest_references(self, limit: int = 8) -> list[dict[str, Any]]:
        """The references of the captions completed last, oldest first: ``point_id``,
        ``noun``, ``caption``."""
        ...

    def corpora(self) -> list[dict[str, Any]]:
        """Per corpus: ``name``, ``source``, ``added_at``, ``captions``, ``references``,
        ``removing``."""
        ...

    def begin_removal(self, name: str, *, force: bool = False) -> bool:
        """Mark corpus ``name`` as being removed (its captions are no longer claimed);
        returns whether it was marked already."""
        ...

    def corpus_references(self, name: str) -> list[tuple[str, str | None]]:
        """``(point_id, thumbnail)`` of every reference of the captions only corpus
        ``name`` holds (a caption belongs to every corpus that contains it)."""
        ...

    def shared_references(self, name: str) -> dict[str, list[str]]:
        """Point ids of the captions ``name`` registered first that other corpora also hold,
        by the corpus they pass to when ``name`` is removed."""
        ...

    def finish_removal(self, name: str) -> dict[str, int]:
        """One transaction: delete the corpus, the captions only it holds and their
        reference rows; its shared captions pass to another holder."""
        ...

    def top_lemmas(self, limit: int | None = 20) -> list[tuple[str, int]]:
        """Most frequent noun lemmas with their reference counts (None: all)."""
        ...

    def lemma_samples(self) -> list[tuple[str, int, list[str]]]:
        """Per noun lemma: its reference count and one or two of its point ids (the same
        ones every time)."""
        ...

    def get_meta(self) -> CollectionMeta | None: ...

    def set_meta(self, meta: CollectionMeta) -> None: ...

    def get_settings(self) -> CollectionSettings | None:
        """The N, K, γ and sides the collection was built for, and what it is (None: none
        recorded); commands use them unless told otherwise."""
        ...

    def set_settings(self, settings: CollectionSettings) -> None: ...


@dataclass
class Collection:
    """An opened reference collection: vector store + catalog + what it was built with."""

    refs: ReferenceStore
    catalog: CatalogStore
    meta: CollectionMeta
    root: str | None = None  # store directory (thumbnails live under it), None for servers

    def close(self) -> None:
        self.refs.close()
        close_catalog = getattr(self.catalog, "close", None)  # SqlCatalog disposes its engine
        if close_catalog is not None:
            close_catalog()
