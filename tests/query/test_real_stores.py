"""The query engine on the real stores (Qdrant Edge in a tmp directory, qdrant-client
``:memory:``) with a SQLite catalog, filled directly with planted vectors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from fossil.config import RetrievalConfig
from fossil.db.open import open_collection
from fossil.db.protocols import Collection
from fossil.numerics import l2_normalise
from fossil.query import QueryEngine
from tests.query.conftest import (
    META,
    VISUAL_DIM,
    CountingStore,
    KeywordEncoder,
    fill_collection,
    planted_points,
    unit,
)

CONCEPTS = ["dog", "car", "tree"]
PER_CONCEPT = 40
CENTRES = 4


@pytest.fixture(params=["edge", "memory"])
def collection(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Collection]:
    url = ":memory:" if request.param == "memory" else None
    opened = open_collection(tmp_path / "store", qdrant_url=url, meta=META, create=True)
    yield Collection(CountingStore(opened.refs), opened.catalog, opened.meta, opened.root)
    opened.close()


@pytest.fixture
def planted(collection: Collection) -> tuple[Collection, KeywordEncoder, dict, list[str]]:
    rng = np.random.default_rng(11)
    points, text, centres = planted_points(rng, CONCEPTS, PER_CONCEPT, CENTRES)
    items = [
        (f"a photo of a {p.payload['noun']} number {i}", p.payload["noun"], p.text, p.visual)
        for i, p in enumerate(points)
    ]
    ids = fill_collection(collection, "coco", items)
    return collection, KeywordEncoder(text), centres, ids


def test_order_is_exact_cosine_order(planted) -> None:
    collection, encoder, _, _ = planted
    text = {p.id: p.text for p in collection.refs.iter_points()}
    ids = list(text)
    matrix = unit(np.stack([text[i] for i in ids]))
    [result] = QueryEngine(collection, encoder, RetrievalConfig(N=50, K=4)).query(["car"])
    scores = matrix @ encoder.vectors["car"]
    expected = [ids[j] for j in np.argsort(-scores)[:50]]
    assert [r.id for r in result.references] == expected
    np.testing.assert_allclose(
        [r.score for r in result.references], np.sort(scores)[::-1][:50], atol=1e-5
    )
    top = result.references[0]
    assert top.caption.startswith("a photo of a car") and top.corpus == "coco"


def test_prototypes_recover_planted_centres(planted) -> None:
    collection, encoder, centres, _ = planted
    results = QueryEngine(collection, encoder, RetrievalConfig(N=PER_CONCEPT, K=CENTRES)).query(
        CONCEPTS
    )
    assert collection.refs.calls == {"search": 1, "fetch_visual": 1}
    for concept, result in zip(CONCEPTS, results, strict=True):
        assert {r.noun for r in result.references} == {concept}
        assert result.visual.shape == (PER_CONCEPT, VISUAL_DIM)
        distance = 1.0 - l2_normalise(centres[concept]) @ result.prototypes.T
        assert distance.min(axis=1).max() < 0.05


def test_cache_hits_and_invalidates_after_ingest(planted) -> None:
    collection, encoder, _, _ = planted
    engine = QueryEngine(collection, encoder, RetrievalConfig(N=20, K=2))
    first = engine.query(["dog", "tree"])
    assert engine.query(["tree", "dog"]) == first[::-1]
    assert collection.refs.calls["search"] == 1
    # A new corpus arrives: closer "dog" references; the revision changes, the cache misses.
    rng = np.random.default_rng(5)
    closer = [
        (f"my dog number {i}", "dog", encoder.vectors["dog"], rng.normal(size=VISUAL_DIM))
        for i in range(3)
    ]
    new_ids = fill_collection(collection, "extra", closer)
    [dog] = engine.query(["dog"])
    assert collection.refs.calls["search"] == 2
    assert {r.id for r in dog.references[:3]} == set(new_ids)
    assert dog.revision > first[0].revision
    excluded = QueryEngine(
        collection, encoder, RetrievalConfig(N=20, K=2, exclude_corpora=("extra",))
    )
    assert not {r.id for r in excluded.query(["dog"])[0].references} & set(new_ids)


def test_threshold_on_real_store(planted) -> None:
    collection, encoder, _, _ = planted
    config = RetrievalConfig(N=100, K=2, retrieval_threshold=0.5)
    [result] = QueryEngine(collection, encoder, config).query(["tree"])
    assert 0 < len(result.references) < 100
    assert min(r.score for r in result.references) >= 0.5
