"""One suite for every ReferenceStore backend (embedded Qdrant Edge, qdrant-client :memory:)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fossil.db.protocols import ReferenceStore
from fossil.records import ReferencePoint
from tests.db.conftest import TEXT_DIM, VISUAL_DIM, make_points, open_backend


def exact_order(points: list[ReferencePoint], query: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Ids and scores of ``points`` in descending exact cosine order to ``query``."""
    text = np.stack([p.text for p in points]).astype(np.float64)
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    scores = text @ (query / np.linalg.norm(query))
    order = np.argsort(-scores, kind="stable")
    return [points[i].id for i in order], scores[order]


def test_satisfies_protocol(store: ReferenceStore) -> None:
    assert isinstance(store, ReferenceStore)


def test_present_names_the_held_ids_only(store: ReferenceStore, rng: np.random.Generator) -> None:
    points = make_points(10, rng)
    store.upsert(points[:6])
    asked = [p.id for p in points[3:]]  # 3 held, 4 not
    assert store.present(asked) == {p.id for p in points[3:6]}
    assert store.present([]) == set()


def test_search_order_equals_exact_numpy_cosine(
    store: ReferenceStore, rng: np.random.Generator
) -> None:
    points = make_points(200, rng)
    store.upsert(points)
    queries = rng.normal(size=(5, TEXT_DIM)).astype(np.float32) * 3.0  # not unit norm
    results = store.search(queries, 20)
    assert len(results) == 5
    for query, hits in zip(queries, results, strict=True):
        ids, scores = exact_order(points, query.astype(np.float64))
        assert [h.id for h in hits] == ids[:20]
        np.testing.assert_allclose([h.score for h in hits], scores[:20], atol=1e-5)
        assert {"caption_id", "noun", "noun_lemma", "corpus", "mask_area"} <= hits[0].payload.keys()


def test_upsert_is_idempotent_by_id(store: ReferenceStore, rng: np.random.Generator) -> None:
    points = make_points(30, rng)
    store.upsert(points)
    store.upsert(points)
    assert store.count() == 30
    moved = ReferencePoint(points[0].id, points[1].text, points[1].visual, points[0].payload)
    store.upsert([moved])
    assert store.count() == 30
    np.testing.assert_allclose(store.fetch_visual([points[0].id])[0], points[1].visual, rtol=1e-6)


def test_exclude_corpora_and_min_score(store: ReferenceStore, rng: np.random.Generator) -> None:
    points = make_points(60, rng, corpora=("coco", "web", "ade"))
    store.upsert(points)
    query = points[0].text[None, :]
    hits = store.search(query, 60, exclude_corpora=["coco", "ade"])[0]
    assert len(hits) == 20 and {h.payload["corpus"] for h in hits} == {"web"}
    all_hits = store.search(query, 60)[0]
    threshold = (all_hits[10].score + all_hits[11].score) / 2
    above = store.search(query, 60, min_score=threshold)[0]
    assert [h.id for h in above] == [h.id for h in all_hits[:11]]
    assert store.search(query, 5, min_score=1.5) == [[]]


def test_set_corpus_relabels_points_for_the_corpus_filter(
    store: ReferenceStore, rng: np.random.Generator
) -> None:
    points = make_points(20, rng, corpora=("coco", "web"))
    store.upsert(points)
    moved = [p.id for p in points if p.payload["corpus"] == "coco"][:4]
    store.set_corpus(moved, "web")  # a shared caption passing on when "coco" is removed
    hits = store.search(points[0].text[None, :], 20, exclude_corpora=["coco"])[0]
    assert set(moved) <= {h.id for h in hits} and len(hits) == 14
    relabelled = {p.id: p.payload["corpus"] for p in store.iter_points() if p.id in moved}
    assert relabelled == dict.fromkeys(moved, "web")


def test_fetch_visual_keeps_raw_values_in_id_order(
    store: ReferenceStore, rng: np.random.Generator
) -> None:
    points = make_points(40, rng)
    store.upsert(points)
    picked = [points[i] for i in (7, 3, 31, 3)]
    visual = store.fetch_visual([p.id for p in picked])
    assert visual.shape == (4, VISUAL_DIM) and visual.dtype == np.float32
    np.testing.assert_allclose(visual, np.stack([p.visual for p in picked]), rtol=1e-6)
    assert np.linalg.norm(visual, axis=1).min() > 2.0  # not normalised
    with pytest.raises(KeyError, match="not in the store"):
        store.fetch_visual([make_points(1, rng, start=999)[0].id])


def test_fetch_text_gives_the_stored_direction_in_id_order(
    store: ReferenceStore, rng: np.random.Generator
) -> None:
    points = make_points(20, rng)
    store.upsert(points)
    picked = [points[i] for i in (5, 0, 5)]
    text = store.fetch_text([p.id for p in picked])
    assert text.shape == (3, points[0].text.shape[0]) and text.dtype == np.float32
    unit = np.stack([p.text / np.linalg.norm(p.text) for p in picked])  # cosine: may normalise
    np.testing.assert_allclose(text / np.linalg.norm(text, axis=1, keepdims=True), unit, atol=1e-6)
    with pytest.raises(KeyError, match="not in the store"):
        store.fetch_text([make_points(1, rng, start=999)[0].id])


def test_delete_and_count(store: ReferenceStore, rng: np.random.Generator) -> None:
    points = make_points(25, rng)
    store.upsert(points)
    gone = [p.id for p in points[:10]]
    store.delete(gone)
    assert store.count() == 15
    hits = store.search(np.stack([p.text for p in points[:10]]), 25)
    assert all(h.id not in gone for row in hits for h in row)
    store.delete(gone)  # deleting absent ids is a no-op
    assert store.count() == 15


def test_iter_points_round_trip(store: ReferenceStore, rng: np.random.Generator) -> None:
    points = {p.id: p for p in make_points(53, rng)}
    store.upsert(list(points.values()))
    seen = list(store.iter_points(batch_size=10))
    assert sorted(p.id for p in seen) == sorted(points)
    for p in seen:
        np.testing.assert_allclose(p.text, points[p.id].text, atol=1e-6)
        np.testing.assert_allclose(p.visual, points[p.id].visual, rtol=1e-6)
        assert p.payload == points[p.id].payload


def test_boundary_errors_name_the_argument(store: ReferenceStore, rng: np.random.Generator) -> None:
    with pytest.raises(ValueError, match="shape"):
        store.search(np.zeros((2, TEXT_DIM + 1)), 3)
    with pytest.raises(ValueError, match="n "):
        store.search(np.ones((1, TEXT_DIM)), 0)
    bad = make_points(1, rng)[0]
    with pytest.raises(ValueError, match="visual vectors have dim"):
        store.upsert([ReferencePoint(bad.id, bad.text, np.zeros(3), bad.payload)])
    with pytest.raises(ValueError, match="zero text vector"):
        store.upsert([ReferencePoint(bad.id, np.zeros(TEXT_DIM), bad.visual, bad.payload)])
    assert store.count() == 0


def test_lemma_routing_restricts_each_query(
    store: ReferenceStore, rng: np.random.Generator
) -> None:
    points = make_points(80, rng)
    store.upsert(points)
    queries = np.stack([points[0].text, points[1].text, points[2].text])
    routed = store.search(queries, 80, lemmas=[["lemma1"], ["lemma1", "lemma2"], []])
    assert {h.payload["noun_lemma"] for h in routed[0]} == {"lemma1"} and len(routed[0]) == 20
    assert len(routed[1]) == 40 and routed[2] == []
    expected, _ = exact_order(
        [p for p in points if p.payload["noun_lemma"] == "lemma1"], queries[0]
    )
    assert [h.id for h in routed[0]] == expected
    both = store.search(queries[:1], 80, lemmas=[["lemma1"]], exclude_corpora=["coco"])[0]
    assert {(h.payload["noun_lemma"], h.payload["corpus"]) for h in both} == {("lemma1", "web")}
    with pytest.raises(ValueError, match="one list of noun lemmas per query"):
        store.search(queries, 5, lemmas=[["lemma1"]])


def test_export_embedded_to_server_gives_the_same_answers(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    edge, server = open_backend("edge", tmp_path), open_backend("server", tmp_path)
    try:
        edge.upsert(make_points(120, rng))
        server.upsert(list(edge.iter_points(batch_size=50)))
        assert server.count() == edge.count() == 120
        queries = rng.normal(size=(4, TEXT_DIM)).astype(np.float32)
        for a, b in zip(edge.search(queries, 30), server.search(queries, 30), strict=True):
            assert [h.id for h in a] == [h.id for h in b]
            np.testing.assert_allclose([h.score for h in a], [h.score for h in b], atol=1e-5)
            assert [h.payload for h in a] == [h.payload for h in b]
    finally:
        edge.close()
        server.close()


def test_server_collection_config_of_section_7(tmp_path: Path) -> None:
    from qdrant_client import models as qm

    from fossil.db.server import ServerStore

    store = open_backend("server", tmp_path)
    assert isinstance(store, ServerStore)
    try:
        vectors = store.client.get_collection("refs").config.params.vectors
        assert isinstance(vectors, dict)
        text, visual = vectors["text"], vectors["visual"]
        assert (text.size, text.distance) == (TEXT_DIM, qm.Distance.COSINE)
        assert isinstance(text.quantization_config, qm.ScalarQuantization)
        assert text.quantization_config.scalar.type == qm.ScalarType.INT8
        assert (visual.size, visual.distance) == (VISUAL_DIM, qm.Distance.DOT)
        assert visual.on_disk and visual.hnsw_config is not None and visual.hnsw_config.m == 0
        again = ServerStore(store.client, "refs", text_dim=TEXT_DIM, visual_dim=VISUAL_DIM)
        assert again.count() == 0  # reopened, not recreated
        with pytest.raises(ValueError, match="holds vectors"):
            ServerStore(store.client, "refs", text_dim=TEXT_DIM + 1, visual_dim=VISUAL_DIM)
    finally:
        store.close()
