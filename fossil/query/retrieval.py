"""Batched retrieval of references for concepts (design §5.6): one vector search for all concepts,
one fetch of their Visual Reference Embeddings, one catalog look-up for their provenance."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fossil.db.protocols import CatalogStore, ReferenceStore
from fossil.records import SOURCE_GENERATED, Hit, reference_source


@dataclass(frozen=True)
class Reference:
    """One retrieved reference with its provenance: why a concept looks the way it does."""

    id: str  # point id (design §4)
    score: float  # cosine similarity of its TRE to the concept embedding
    caption: str | None  # the caption its image was generated from (None: not catalogued)
    noun: str  # the noun of the caption the reference is a mask of
    lemma: str
    corpus: str | None
    thumbnail: str | None = None  # path of the kept thumbnail, None when not kept
    source: str = SOURCE_GENERATED  # "generated" or "labelled" (a labelled photo, design §5.10)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Retrieved:
    """References of one concept, in descending score order, and their VREs (n, visual_dim)."""

    references: tuple[Reference, ...]
    visual: np.ndarray


@dataclass(frozen=True)
class ConceptResult:
    """What a concept retrieves: its references, their VREs and its prototypes (design §5.6)."""

    concept: str
    references: tuple[Reference, ...]  # descending score
    visual: np.ndarray  # (n, visual_dim) raw VREs, row i ↔ references[i]
    prototypes: np.ndarray  # (K_c, visual_dim) unit norm, K_c ≤ K (fewer references than K)
    revision: int  # collection revision the result was computed at

    def __post_init__(self) -> None:
        # Results are shared through the prototype cache: make the arrays read-only.
        for array in (self.visual, self.prototypes):
            if isinstance(array, np.ndarray):
                array.setflags(write=False)


def retrieve(
    refs: ReferenceStore,
    catalog: CatalogStore,
    queries: np.ndarray,
    N: int,
    *,
    retrieval_threshold: float | None = None,
    exclude_corpora: Sequence[str] = (),
    root: str | os.PathLike[str] | None = None,
    lemmas: Sequence[Sequence[str]] | None = None,
) -> list[Retrieved]:
    """Top-``N`` references per row of ``queries`` (Q, text_dim) → Q :class:`Retrieved`.

    References scoring below ``retrieval_threshold`` and those of ``exclude_corpora`` are
    dropped by the store.  A concept may get fewer than ``N`` (or no) references.  Relative
    thumbnail paths are resolved against ``root`` (the store directory).  ``lemmas``: per
    query, search only the references of these noun lemmas (see :mod:`fossil.query.routing`).
    """
    if queries.ndim != 2 or len(queries) == 0:
        raise ValueError(f"queries must be a non-empty (Q, dim) array, got shape {queries.shape}")
    if N < 1:
        raise ValueError(f"N ({N}) must be >= 1")
    hits = refs.search(
        np.ascontiguousarray(queries, dtype=np.float32),
        N,
        exclude_corpora=tuple(exclude_corpora),
        min_score=retrieval_threshold,
        **({} if lemmas is None else {"lemmas": lemmas}),
    )
    if len(hits) != len(queries):
        raise RuntimeError(f"the store answered {len(hits)} hit lists for {len(queries)} queries")
    unique = list(dict.fromkeys(hit.id for row in hits for hit in row))
    if not unique:
        return [Retrieved((), np.zeros((0, 0), np.float32)) for _ in hits]
    visual = np.asarray(refs.fetch_visual(unique), dtype=np.float32)  # (U, visual_dim)
    if visual.shape[0] != len(unique):
        raise RuntimeError(f"fetch_visual returned {visual.shape[0]} rows for {len(unique)} ids")
    row_of = {point: i for i, point in enumerate(unique)}
    provenance = catalog.lookup(unique)
    out = []
    for row in hits:
        references = tuple(_reference(hit, provenance.get(hit.id), root) for hit in row)
        rows = np.fromiter((row_of[hit.id] for hit in row), dtype=np.int64, count=len(row))
        out.append(Retrieved(references, visual[rows]))
    return out


def _reference(
    hit: Hit, info: dict[str, Any] | None, root: str | os.PathLike[str] | None
) -> Reference:
    """Provenance from the catalog; the vector payload fills in for points not catalogued
    yet (a crash between the vector upsert and the SQL commit, design §4 write order)."""
    info = info or {}
    payload = hit.payload
    thumbnail = info.get("thumbnail")
    if thumbnail and root is not None and not os.path.isabs(thumbnail):
        thumbnail = os.path.join(os.fspath(root), thumbnail)
    return Reference(
        id=hit.id,
        score=float(hit.score),
        caption=info.get("caption"),
        noun=str(info.get("noun") or payload.get("noun", "")),
        lemma=str(info.get("lemma") or payload.get("noun_lemma", "")),
        corpus=info.get("corpus") or payload.get("corpus"),
        thumbnail=thumbnail or None,
        source=reference_source(payload.get("source"), info.get("corpus") or payload.get("corpus")),
    )
