"""The prototype cache and the saved lemma index never give a wrong answer: they are keyed by
the collection's identity (a store rebuilt from scratch does not meet the old cache), and an
unreadable file is dropped with a warning and recomputed (issue 16, defects 1 and 3)."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from fossil.config import RetrievalConfig
from fossil.db.open import open_collection
from fossil.query import QueryEngine
from fossil.query.routing import LEMMA_INDEX_FILE, current_lemma_index, load_lemma_index
from tests.query.conftest import META, KeywordEncoder, fill_collection, planted_points

CONFIG = RetrievalConfig(N=5, K=2)


def build(root: Path, seed: int, word: str) -> KeywordEncoder:
    """A store at ``root`` holding 2 × 8 planted references whose captions contain ``word``."""
    rng = np.random.default_rng(seed)
    points, text, _ = planted_points(rng, ["dog", "car"], per_concept=8, n_centres=2)
    collection = open_collection(root, meta=META, create=True)
    try:
        items = [
            (f"a {p.payload['noun']} {word} {i}", p.payload["noun"], p.text, p.visual)
            for i, p in enumerate(points)
        ]
        fill_collection(collection, "coco", items)
    finally:
        collection.close()
    return KeywordEncoder(text)


def ask(root: Path, encoder: KeywordEncoder, concept: str = "dog") -> tuple[set[str], set[str]]:
    """(ids of the references a disk-cached query returns, ids the store holds)."""
    collection = open_collection(root)
    try:
        [result] = QueryEngine(collection, encoder, CONFIG, disk_cache=True).query([concept])
        held = {p.id for p in collection.refs.iter_points()}
    finally:
        collection.close()
    return {r.id for r in result.references}, held


def test_a_rebuilt_store_never_answers_from_the_old_cache(tmp_path: Path) -> None:
    root = tmp_path / "store"
    first = build(root, seed=1, word="old")
    returned, held = ask(root, first)
    assert returned <= held and list((root / "cache").rglob("*.npz"))
    # rebuilt from scratch, cache/ kept: the new catalog counts revisions from 0 again
    shutil.rmtree(root / "qdrant")
    (root / "catalog.sqlite").unlink()
    (root / "qdrant-visual.f32").unlink()
    second = build(root, seed=2, word="new")
    returned, held = ask(root, second)
    assert returned and returned <= held  # only references the store holds now


def test_a_corrupt_prototype_cache_file_is_dropped_and_recomputed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "store"
    encoder = build(root, seed=3, word="x")
    clean, _ = ask(root, encoder)
    [entry] = (root / "cache" / "prototypes").rglob("*.npz")
    data = bytearray(entry.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 8] = bytes(b ^ 0xFF for b in data[middle : middle + 8])
    entry.write_bytes(bytes(data))
    for _ in range(2):  # the bad file is gone after the first run: both runs answer
        with caplog.at_level(logging.WARNING, logger="fossil.query.cache"):
            again, _ = ask(root, encoder)
        assert again == clean
    assert "dropping unreadable prototype cache file" in caplog.text


def test_lemma_index_is_per_collection_and_a_corrupt_one_is_rebuilt(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "store"
    build(root, seed=4, word="y")
    collection = open_collection(root)
    try:
        revision = collection.catalog.revision()
        index = current_lemma_index(collection, revision)
        path = root / LEMMA_INDEX_FILE
        assert load_lemma_index(path, "fake-keyword", "another-collection") is None
        path.write_bytes(path.read_bytes()[:-40])  # truncated
        with caplog.at_level(logging.WARNING, logger="fossil.query.routing"):
            rebuilt = current_lemma_index(collection, revision)
        assert "unreadable: dropped" in caplog.text
        assert rebuilt.lemmas == index.lemmas
        np.testing.assert_allclose(rebuilt.centres, index.centres)
        assert load_lemma_index(path, "fake-keyword") is not None  # saved again, whole
    finally:
        collection.close()
