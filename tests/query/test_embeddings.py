"""fossil/query/embeddings.py: concept query embeddings cached by encoder and templates,
in memory and in the store, across revisions, settings and processes (issue 26, item 3)."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from fossil.config import RetrievalConfig
from fossil.models.text import TEMPLATES, concept_embeddings
from fossil.query import QueryEngine
from fossil.query.embeddings import EmbeddingCache, encoder_key
from tests.query.conftest import KeywordEncoder, PlantedWorld

CONFIG = RetrievalConfig(N=30, K=3)


def test_other_settings_and_revisions_encode_nothing_again(planted_world: PlantedWorld) -> None:
    """The prototypes depend on N, K and the revision; the query embedding does not."""
    w = planted_world
    e = QueryEngine(w.collection, w.encoder, CONFIG)
    first = e.query(["dog", "car"])
    assert w.encoder.calls == 1
    e.config = replace(CONFIG, K=2)  # a prototype-cache miss...
    e.query(["dog", "car"])
    w.catalog.bump()  # ...and a new ingest
    again = e.query(["car", "dog", "tree"])
    assert w.store.calls["search"] == 3
    assert w.encoder.calls == 2  # only "tree" was encoded, once
    assert e.cache_stats().embedding_hits == 4 and e.cache_stats().embedding_misses == 3
    assert [r.concept for r in again] == ["car", "dog", "tree"]
    assert [r.references for r in again[:2]] == [first[1].references, first[0].references]


def test_store_cache_is_shared_between_processes(planted_world: PlantedWorld, tmp_path: Path):
    w = planted_world
    a = QueryEngine(w.collection, w.encoder, CONFIG, cache_size=0, embedding_cache=tmp_path)
    first = a.query(["dog", "car"])
    other_process = KeywordEncoder(w.text)  # same name and vectors, its own call count
    b = QueryEngine(w.collection, other_process, CONFIG, embedding_cache=tmp_path)
    loaded = b.query(["car", "dog"])
    assert other_process.calls == 0 and b.cache_stats().embedding_hits == 2
    for x, y in zip(first, loaded[::-1], strict=True):
        assert x.references == y.references
        np.testing.assert_array_equal(x.prototypes, y.prototypes)
    [key_dir] = tmp_path.iterdir()
    assert key_dir.name == encoder_key(w.encoder.name, w.encoder.dim, TEMPLATES)
    assert len(list(key_dir.glob("*.npz"))) == 2 and not list(key_dir.glob("*.tmp"))


def test_cached_vectors_equal_the_encoders(planted_world: PlantedWorld, tmp_path: Path) -> None:
    w = planted_world
    concepts = ["tree", "dog", "tree"]  # a repeat is encoded once, returned twice
    expected = concept_embeddings(w.encoder, concepts)
    calls = w.encoder.calls
    for _ in range(2):  # encoded and written, then read back from disk by a new cache
        cache = EmbeddingCache(w.encoder.name, w.encoder.dim, directory=tmp_path)
        got = cache.embed(w.encoder, concepts)
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, expected)
    assert w.encoder.calls == calls + 1
    assert cache.hits == 2 and cache.misses == 0  # distinct concepts
    assert cache.embed(w.encoder, []).shape == (0, w.encoder.dim)


def test_key_is_the_encoder_and_the_templates(planted_world: PlantedWorld, tmp_path: Path):
    w = planted_world
    EmbeddingCache(w.encoder.name, w.encoder.dim, directory=tmp_path).embed(w.encoder, ["dog"])
    renamed = KeywordEncoder(w.text, name="other-encoder")
    cache = EmbeddingCache(renamed.name, renamed.dim, directory=tmp_path)
    cache.embed(renamed, ["dog"])
    assert renamed.calls == 1
    three = EmbeddingCache(
        w.encoder.name, w.encoder.dim, templates=TEMPLATES[:3], directory=tmp_path
    )
    assert three.get("dog") is None
    assert len(list(tmp_path.iterdir())) == 2  # one folder per (encoder, dim, templates)
    with pytest.raises(ValueError, match="is not this cache's"):
        cache.embed(w.encoder, ["dog"])


def test_unreadable_or_mismatching_file_is_a_miss(
    planted_world: PlantedWorld, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    w = planted_world
    expected = concept_embeddings(w.encoder, ["dog", "car"])
    cache = EmbeddingCache(w.encoder.name, w.encoder.dim, directory=tmp_path)
    cache.embed(w.encoder, ["dog", "car"])
    [folder] = tmp_path.iterdir()
    files = {str(np.load(f)["concept"]): f for f in folder.glob("*.npz")}
    car_bytes = files["car"].read_bytes()
    files["dog"].write_bytes(car_bytes)  # holds another concept
    files["car"].write_bytes(car_bytes[:-20])  # truncated
    cache = EmbeddingCache(w.encoder.name, w.encoder.dim, directory=tmp_path)
    calls = w.encoder.calls
    with caplog.at_level(logging.WARNING, logger="fossil.query.embeddings"):
        got = cache.embed(w.encoder, ["dog", "car"])
    np.testing.assert_array_equal(got, expected)
    assert w.encoder.calls == calls + 1 and cache.misses == 2
    assert caplog.text.count("dropping unreadable embedding cache file") == 2
    fresh = EmbeddingCache(w.encoder.name, w.encoder.dim, directory=tmp_path)
    np.testing.assert_array_equal(fresh.embed(w.encoder, ["dog", "car"]), expected)
    assert fresh.hits == 2  # rewritten whole


def test_unwritable_store_cache_warns_and_answers(
    planted_world: PlantedWorld, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    w = planted_world
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache's folder should be")
    e = QueryEngine(w.collection, w.encoder, CONFIG, embedding_cache=blocker)
    with caplog.at_level(logging.WARNING, logger="fossil.query.embeddings"):
        results = e.query(["dog", "car"])
    assert len(results) == 2 and caplog.text.count("cannot write the embedding cache") == 1


def test_embedding_cache_in_the_store(planted_world: PlantedWorld, tmp_path: Path) -> None:
    w = planted_world
    server = replace(w.collection, root=None)
    with pytest.raises(ValueError, match=r"embedding_cache=True needs a store directory"):
        QueryEngine(server, w.encoder, CONFIG, embedding_cache=True)
    in_store = replace(w.collection, root=str(tmp_path))
    QueryEngine(in_store, w.encoder, CONFIG, embedding_cache=True).query(["dog"])
    assert len(list((tmp_path / "cache" / "embeddings").rglob("*.npz"))) == 1
