"""Fakes every test suite shares: :func:`make_meta` (a ``collection_meta``) and
:class:`MemoryStore` (an in-memory :class:`~fossil.db.protocols.ReferenceStore` that counts
its calls).  Each suite's conftest builds its own values from them."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from fossil.db.protocols import CollectionMeta
from fossil.records import Hit, ReferencePoint

# tiny models' collection_meta: 16-d text, 8-d visual
TINY_META = {
    "text_encoder": "tiny-text",
    "text_dim": 16,
    "dense_encoder": "tiny-dino",
    "visual_dim": 8,
    "generator": "tiny-sd",
    "generation_fingerprint": "fp",
    "schema_version": 1,
}


def make_meta(**changes: object) -> CollectionMeta:
    """A ``collection_meta``: :data:`TINY_META` with ``changes``."""
    return CollectionMeta(**{**TINY_META, **changes})  # type: ignore[arg-type]


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


class MemoryStore:
    """Exact cosine search over numpy arrays; counts upserts, searches (and the queries in
    each) and visual fetches."""

    def __init__(self) -> None:
        self.points: dict[str, ReferencePoint] = {}
        self.upserts = 0
        self.calls = {"search": 0, "fetch_visual": 0}
        self.queries_per_search: list[int] = []

    def upsert(self, points: Sequence[ReferencePoint]) -> None:
        self.upserts += 1
        for p in points:
            self.points[p.id] = p

    def search(
        self,
        vectors: np.ndarray,
        n: int,
        *,
        exclude_corpora: Sequence[str] = (),
        min_score: float | None = None,
    ) -> list[list[Hit]]:
        self.calls["search"] += 1
        self.queries_per_search.append(len(vectors))
        ids = [i for i, p in self.points.items() if p.payload.get("corpus") not in exclude_corpora]
        if not ids:
            return [[] for _ in vectors]
        scores = _unit(vectors) @ _unit(np.stack([self.points[i].text for i in ids])).T
        out = []
        for row in scores:
            order = np.argsort(-row, kind="stable")[:n]
            hits = [Hit(ids[j], float(row[j]), dict(self.points[ids[j]].payload)) for j in order]
            out.append([h for h in hits if min_score is None or h.score >= min_score])
        return out

    def fetch_visual(self, ids: Sequence[str]) -> np.ndarray:
        self.calls["fetch_visual"] += 1
        return np.stack([self.points[i].visual for i in ids]).astype(np.float32)

    def delete(self, ids: Sequence[str]) -> None:
        for i in ids:
            self.points.pop(i, None)

    def count(self) -> int:
        return len(self.points)

    def iter_points(self, batch_size: int = 1024) -> Iterator[ReferencePoint]:
        yield from self.points.values()

    def close(self) -> None:
        pass
