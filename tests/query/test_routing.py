"""Routing retrieval by noun lemma (fossil.query.routing) on the real stores."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fossil.config import RetrievalConfig
from fossil.db.open import open_collection
from fossil.db.protocols import Collection
from fossil.query import QueryEngine
from fossil.query.routing import (
    LEMMA_INDEX_FILE,
    LemmaIndex,
    build_lemma_index,
    load_lemma_index,
    refresh_lemma_index,
    route,
    save_lemma_index,
)
from tests.query.conftest import (
    META,
    TEXT_DIM,
    VISUAL_DIM,
    KeywordEncoder,
    fill_collection,
    planted_points,
    unit,
)

LEMMAS = [f"noun{chr(97 + i)}{chr(97 + j)}" for i in range(6) for j in range(5)]  # 30 lemmas
PER_LEMMA = 25


class SpyStore:
    """Records the keyword arguments of every search and the ids of every fetch_text."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.searches: list[dict[str, Any]] = []
        self.fetched: list[str] = []

    def search(self, vectors: np.ndarray, n: int, **kwargs: Any) -> Any:
        self.searches.append(kwargs)
        return self.inner.search(vectors, n, **kwargs)

    def fetch_text(self, ids: Sequence[str]) -> np.ndarray:
        self.fetched.extend(ids)
        return self.inner.fetch_text(ids)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture(params=["edge", "memory"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Collection, Any]]:
    url = ":memory:" if request.param == "memory" else None
    opened = open_collection(tmp_path / "store", qdrant_url=url, meta=META, create=True)
    rng = np.random.default_rng(5)
    points, text, _ = planted_points(rng, LEMMAS, PER_LEMMA, 2)
    # neighbouring lemmas: pairs of lemmas share most of their direction, as "dog"/"puppy"
    for a, b in zip(LEMMAS[::2], LEMMAS[1::2], strict=True):
        text[b] = unit(text[a] + 0.6 * unit(rng.normal(size=text[a].shape)))
    items = []
    for i, p in enumerate(points):
        noun = p.payload["noun"]
        tre = unit(text[noun] + 0.15 * rng.normal(size=text[noun].shape))
        items.append((f"a photo of a {noun} number {i}", noun, tre, p.visual))
    fill_collection(opened, "coco", items)
    spy = SpyStore(opened.refs)
    yield Collection(spy, opened.catalog, opened.meta, opened.root), KeywordEncoder(text)
    opened.close()


def test_route_takes_the_nearest_lemmas_until_they_cover_enough() -> None:
    centres = np.eye(4, dtype=np.float32)
    index = LemmaIndex(("a", "b", "c", "d"), np.array([5, 30, 10, 100]), centres)
    query = np.array([[0.1, 1.0, 0.5, 0.2]], np.float32)  # b, then c, then d, then a
    assert route(index, query, N=10, cover=5, min_lemmas=1) == [["b", "c", "d"]]  # 30+10 < 50
    assert route(index, query, N=10, cover=4, min_lemmas=1) == [["b", "c"]]  # 30+10 >= 40
    assert route(index, query, N=10, cover=3, min_lemmas=1) == [["b"]]
    assert route(index, query, N=10, cover=3, min_lemmas=2) == [["b", "c"]]
    assert route(index, query, N=1000, cover=1, min_lemmas=1) == [["b", "c", "d", "a"]]
    empty = LemmaIndex((), np.zeros(0, np.int64), np.zeros((0, 0), np.float32))
    assert route(empty, query, N=10) == [[]]
    with pytest.raises(ValueError, match="cover"):
        route(index, query, N=10, cover=0)


def test_routed_retrieval_equals_exact_search(world) -> None:
    collection, encoder = world
    concepts = LEMMAS[::3]
    exact = QueryEngine(collection, encoder, RetrievalConfig(N=20, K=2, route=False))
    routed = QueryEngine(collection, encoder, RetrievalConfig(N=20, K=2, route=True, route_cover=2))
    expected = exact.query(concepts)
    assert "lemmas" not in collection.refs.searches[-1]
    got = routed.query(concepts)
    lemmas = collection.refs.searches[-1]["lemmas"]
    assert all(2 <= len(row) < len(LEMMAS) // 3 for row in lemmas)  # a few lemmas, not all
    for e, g in zip(expected, got, strict=True):
        assert [r.id for r in g.references] == [r.id for r in e.references]
        np.testing.assert_allclose(g.prototypes, e.prototypes, atol=1e-5)


def test_auto_routing_stays_off_on_small_collections(world) -> None:
    collection, encoder = world
    QueryEngine(collection, encoder, RetrievalConfig(N=10, K=1)).query([LEMMAS[0]])
    assert "lemmas" not in collection.refs.searches[-1]
    assert collection.refs.fetched == []


def test_index_reads_only_new_lemmas_when_the_collection_grows(world) -> None:
    collection, encoder = world
    first = build_lemma_index(collection.refs, collection.catalog)
    assert first.lemmas == tuple(sorted(LEMMAS))
    assert first.counts.tolist() == [PER_LEMMA] * len(LEMMAS)
    assert len(collection.refs.fetched) == 2 * len(LEMMAS)  # two samples per lemma
    # each centre is nearest to its own lemma's direction
    directions = np.stack([encoder.vectors[w] for w in first.lemmas])
    assert ((first.centres @ directions.T).argmax(axis=1) == np.arange(len(LEMMAS))).all()
    rng = np.random.default_rng(9)
    extra = unit(rng.normal(size=first.centres.shape[1]))
    fill_collection(
        collection,
        "web",
        [
            (f"a zebra number {i}", "zebra", extra, np.ones(VISUAL_DIM, np.float32))
            for i in range(2)
        ],
    )
    collection.refs.fetched.clear()
    second = build_lemma_index(collection.refs, collection.catalog, previous=first)
    assert "zebra" in second.lemmas and len(collection.refs.fetched) == 2
    assert dict(zip(second.lemmas, second.counts.tolist(), strict=True))["zebra"] == 2


def test_a_new_engine_routes_with_the_saved_index(world) -> None:
    collection, encoder = world
    config = RetrievalConfig(N=20, K=2, route=True, route_cover=2)
    path = Path(collection.root) / "cache" / "lemma_index.npz"
    first = QueryEngine(collection, encoder, config).query(LEMMAS[:3])
    assert path.is_file() and len(collection.refs.fetched) == 2 * len(LEMMAS)
    collection.refs.fetched.clear()
    again = QueryEngine(collection, encoder, config).query(LEMMAS[:3])  # a new process, say
    assert collection.refs.fetched == []  # nothing re-read: the saved index is of this revision
    assert [[r.id for r in a.references] for a in again] == [
        [r.id for r in f.references] for f in first
    ]
    saved = load_lemma_index(path, collection.meta.text_encoder)
    assert saved is not None and saved[1] == collection.catalog.revision()
    assert load_lemma_index(path, "another-encoder") is None
    fill_collection(
        collection,
        "web",
        [
            (f"a zebra number {i}", "zebra", unit(np.ones(TEXT_DIM)), np.ones(VISUAL_DIM))
            for i in range(2)
        ],
    )
    encoder.vectors["zebra"] = unit(np.ones(TEXT_DIM))
    QueryEngine(collection, encoder, config).query(["zebra"])  # a newer revision
    assert len(collection.refs.fetched) == 2  # only the new lemma's samples
    saved = load_lemma_index(path, collection.meta.text_encoder)
    assert saved is not None and "zebra" in saved[0].lemmas
    assert saved[1] == collection.catalog.revision()


def test_an_unreadable_saved_index_is_ignored(tmp_path: Path, caplog) -> None:
    path = tmp_path / "lemma_index.npz"
    assert load_lemma_index(path, "enc") is None  # none saved
    path.write_bytes(b"not an npz")
    assert load_lemma_index(path, "enc") is None
    assert "ignoring the saved lemma index" in caplog.text
    index = LemmaIndex(("a", "b"), np.array([3, 4]), np.eye(2, dtype=np.float32))
    save_lemma_index(index, path, 7, "enc")
    loaded, revision = load_lemma_index(path, "enc")  # type: ignore[misc]
    assert revision == 7 and loaded.lemmas == ("a", "b") and loaded.counts.tolist() == [3, 4]
    np.testing.assert_array_equal(loaded.centres, index.centres)


def test_refresh_after_a_write_saves_the_current_index(world, monkeypatch) -> None:
    import fossil.query.routing as routing

    collection, _ = world
    path = Path(collection.root) / LEMMA_INDEX_FILE
    assert not refresh_lemma_index(collection) and not path.exists()  # too small to route
    monkeypatch.setattr(routing, "ROUTE_MIN_REFERENCES", 1)
    assert refresh_lemma_index(collection)
    saved = load_lemma_index(path, collection.meta.text_encoder)
    assert saved is not None and saved[1] == collection.catalog.revision()
    assert saved[0].lemmas == tuple(sorted(LEMMAS))
