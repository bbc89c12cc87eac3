"""The vector side of a store that holds captions only (``fossil ingest --register-only``):
no shard yet, so no points.  ``info`` and ``corpus list/remove`` work on it; commands that
need references are told to run ``fossil ingest``."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from fossil.db.protocols import CollectionMeta
from fossil.records import Hit, ReferencePoint

# what a captions-only catalog (no collection_meta yet) reports it was built with
UNBUILT = "(none yet: captions registered only; build references with `fossil ingest`)"
UNBUILT_META = CollectionMeta(
    text_encoder=UNBUILT,
    text_dim=0,
    dense_encoder=UNBUILT,
    visual_dim=0,
    generator=UNBUILT,
    generation_fingerprint="",
    schema_version=0,
)


class EmptyStore:
    """A :class:`~fossil.db.protocols.ReferenceStore` with no points that accepts none."""

    def upsert(self, points: Sequence[ReferencePoint]) -> None:
        raise ValueError(f"this store has no vector store yet {UNBUILT}")

    def search(self, vectors: np.ndarray, n: int, **_: object) -> list[list[Hit]]:
        return [[] for _ in range(len(vectors))]

    def fetch_visual(self, ids: Sequence[str]) -> np.ndarray:
        if ids:
            raise KeyError(f"{len(ids)} point ids not in the store, e.g. {ids[0]}")
        return np.zeros((0, 0), np.float32)

    def fetch_text(self, ids: Sequence[str]) -> np.ndarray:
        return self.fetch_visual(ids)

    def present(self, ids: Sequence[str]) -> set[str]:
        return set()

    def delete(self, ids: Sequence[str]) -> None:
        return None

    def set_corpus(self, ids: Sequence[str], corpus: str) -> None:
        return None

    def count(self) -> int:
        return 0

    def iter_points(self, batch_size: int = 1024) -> Iterator[ReferencePoint]:
        return iter(())

    def close(self) -> None:
        return None
