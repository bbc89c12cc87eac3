"""Queries on a store filled by ``fossil ingest --models tiny`` (random tiny models: the
vectors mean nothing, but retrieval order, provenance, prototypes and the cache must hold)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fossil.cli import main
from fossil.config import RetrievalConfig
from fossil.db.open import open_collection
from fossil.db.protocols import Collection
from fossil.query import QueryEngine
from fossil.query.prototypes import concept_prototypes
from tests.query.conftest import CountingStore

FIRST = ["A dog running on the beach", "A red car parked near a tree", "A cat on a couch"]
SECOND = ["A dog and a car on the street"]


def ingest(store: Path, tmp: Path, name: str, captions: list[str]) -> None:
    source = tmp / f"{name}.txt"
    source.write_text("\n".join(captions) + "\n")
    argv = ["ingest", str(source), "--store", str(store), "--models", "tiny", "--no-progress"]
    assert main(argv) == 0


def opened(store: Path) -> Collection:
    collection = open_collection(store)
    return Collection(
        CountingStore(collection.refs), collection.catalog, collection.meta, str(store)
    )


@pytest.fixture(scope="module")
def tiny_encoder():
    from fossil.models.loading import load_text_encoder

    return load_text_encoder("tiny", device="cpu")


def test_tiny_store_order_provenance_prototypes_and_cache(
    tmp_path: Path, tiny_encoder, capsys: pytest.CaptureFixture
) -> None:
    from fossil.models.text import concept_embeddings

    store = tmp_path / "store"
    ingest(store, tmp_path, "first", FIRST)
    config = RetrievalConfig(N=5, K=2)
    collection = opened(store)
    try:
        engine = QueryEngine(collection, tiny_encoder, config, disk_cache=True)
        [dog, car] = engine.query(["dog", "car"])
        points = {p.id: p.text for p in collection.refs.iter_points()}
    finally:
        collection.close()
    # Retrieval order is the exact cosine order of the stored TREs.
    ids = list(points)
    text = np.stack([points[i] for i in ids])
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    query = concept_embeddings(tiny_encoder, ["dog"])[0]
    assert [r.id for r in dog.references] == [ids[j] for j in np.argsort(-(text @ query))[:5]]
    # Provenance: captions of the corpus, thumbnails written by ingest.
    assert {r.caption for r in dog.references} <= set(FIRST)
    assert all(r.thumbnail and Path(r.thumbnail).is_file() for r in dog.references)
    # Prototypes are the K-Means of the retrieved VREs.
    assert car.prototypes.shape == (2, collection.meta.visual_dim)
    np.testing.assert_array_equal(car.prototypes, concept_prototypes(car.visual, 2))

    again = opened(store)  # a new process would do this: the disk cache answers
    try:
        assert (
            QueryEngine(again, tiny_encoder, config, disk_cache=True).query(["car"])[0].references
            == car.references
        )
        assert again.refs.calls["search"] == 0
    finally:
        again.close()

    ingest(store, tmp_path, "second", SECOND)  # bumps the revision
    later = opened(store)
    try:
        [dog2] = QueryEngine(later, tiny_encoder, config, disk_cache=True).query(["dog"])
        assert later.refs.calls["search"] == 1 and dog2.revision > dog.revision
    finally:
        later.close()
    cache_root = store / "cache" / "prototypes"
    # entries of the old revision pruned (directories: <revision>.<collection instance id>)
    assert [d.name.split(".")[0] for d in cache_root.iterdir()] == [str(dog2.revision)]

    capsys.readouterr()
    assert (
        main(
            [
                "query",
                "dog",
                "--store",
                str(store),
                "--models",
                "tiny",
                "--n",
                "3",
                "--k",
                "1",
                "--json",
            ]
        )
        == 0
    )
    printed = json.loads(capsys.readouterr().out)["concepts"][0]
    assert [r["id"] for r in printed["references"]] == [r.id for r in dog2.references[:3]]
