"""Store protocols (§4).  Implementations: :mod:`fossil.db.edge` (embedded Qdrant Edge,
default), :mod:`fossil.db.server` (qdrant-client against a server, or ``:memory:``),
:mod:`fossil.db.catalog` (SQLAlchemy)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from fossil.records import Hit, ReferencePoint


@dataclass(frozen=True)
class CollectionMeta:
    """What a collection was built with; checked on open (§4 ``collection_meta``)."""

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
    ) -> list[list[Hit]]:
        """Top-``n`` by cosine on ``text`` for each row of ``vectors`` (Q, dim), one batch call;
        hits in descending score order."""
        ...

    def fetch_visual(self, ids: Sequence[str]) -> np.ndarray:
        """(len(ids), visual_dim) float32 raw VREs, in the order of ``ids``."""
        ...

    def delete(self, ids: Sequence[str]) -> None: ...

    def count(self) -> int: ...

    def iter_points(self, batch_size: int = 1024) -> Iterator[ReferencePoint]: ...

    def close(self) -> None: ...
