"""fossil/query/retrieval.py on the numpy fake store: batching, mapping, filters, provenance."""

from __future__ import annotations

import numpy as np

from fossil.query.retrieval import retrieve
from tests.query.conftest import PlantedWorld, unit


def exact_order(world: PlantedWorld, query: np.ndarray, N: int) -> list[str]:
    ids = list(world.store.points)
    text = unit(np.stack([world.store.points[i].text for i in ids]))
    scores = text @ unit(query)
    return [ids[j] for j in np.argsort(-scores, kind="stable")[:N]]


def test_one_call_per_store_for_all_concepts(planted_world: PlantedWorld) -> None:
    w = planted_world
    queries = np.stack([w.text[c] for c in w.concepts])
    out = retrieve(w.store, w.catalog, queries, 25)
    assert w.store.calls == {"search": 1, "fetch_visual": 1}
    assert w.store.queries_per_search == [3]
    assert w.catalog.calls["lookup"] == 1
    for concept, query, r in zip(w.concepts, queries, out, strict=True):
        assert [ref.id for ref in r.references] == exact_order(w, query, 25)
        assert all(ref.noun == concept for ref in r.references)
        scores = [ref.score for ref in r.references]
        assert scores == sorted(scores, reverse=True)


def test_visual_rows_follow_references(planted_world: PlantedWorld) -> None:
    w = planted_world
    # Two concepts share references (same query twice): rows are still right.
    queries = np.stack([w.text["dog"], w.text["dog"], w.text["car"]])
    out = retrieve(w.store, w.catalog, queries, 10)
    for r in out:
        assert r.visual.shape == (10, w.collection.meta.visual_dim)
        expected = np.stack([w.store.points[ref.id].visual for ref in r.references])
        np.testing.assert_array_equal(r.visual, expected)


def test_threshold_and_excluded_corpora(planted_world: PlantedWorld) -> None:
    w = planted_world
    query = w.text["dog"][None]
    [all_hits] = retrieve(w.store, w.catalog, query, 200)
    threshold = float(np.median([r.score for r in all_hits.references]))
    [kept] = retrieve(w.store, w.catalog, query, 200, retrieval_threshold=threshold)
    assert 0 < len(kept.references) < len(all_hits.references)
    assert all(r.score >= threshold for r in kept.references)
    [none] = retrieve(w.store, w.catalog, query, 200, exclude_corpora=["coco"])
    assert none.references == () and none.visual.shape[0] == 0


def test_provenance_from_catalog_and_payload_fallback(planted_world: PlantedWorld) -> None:
    w = planted_world
    [r] = retrieve(w.store, w.catalog, w.text["tree"][None], 3, root=w.collection.root)
    first = r.references[0]
    assert first.caption == f"a photo of a tree number {first.id}"
    assert first.thumbnail == f"/store/thumbnails/{first.id}.webp"
    assert first.corpus == "coco" and first.lemma == "tree"
    del w.catalog.rows[first.id]  # upserted, not yet catalogued (design §4 write order)
    [r] = retrieve(w.store, w.catalog, w.text["tree"][None], 3, root=w.collection.root)
    assert r.references[0].caption is None and r.references[0].thumbnail is None
    assert r.references[0].noun == "tree" and r.references[0].corpus == "coco"
