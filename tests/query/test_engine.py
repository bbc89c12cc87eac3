"""fossil/query/engine.py on the numpy fake stores: planted prototypes, cache, bad input."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from fossil.config import FossilConfig, RetrievalConfig, apply_preset, get_preset
from fossil.numerics import l2_normalise
from fossil.query import NoReferencesError, QueryEngine, query
from tests.query.conftest import KeywordEncoder, PlantedWorld


def engine(world: PlantedWorld, **config: object) -> QueryEngine:
    return QueryEngine(world.collection, world.encoder, RetrievalConfig(**config))  # type: ignore[arg-type]


def test_prototypes_recover_planted_centres(planted_world: PlantedWorld) -> None:
    w = planted_world
    results = engine(w, N=60, K=4).query(w.concepts)
    for concept, result in zip(w.concepts, results, strict=True):
        assert result.concept == concept
        assert len(result.references) == 60 and result.visual.shape == (60, 48)
        assert result.prototypes.shape == (4, 48)
        distance = 1.0 - l2_normalise(w.centres[concept]) @ result.prototypes.T
        assert distance.min(axis=1).max() < 0.05


def test_one_search_for_all_concepts_and_results_in_given_order(planted_world: PlantedWorld):
    w = planted_world
    results = engine(w, N=20, K=2).query([" tree", "dog"])
    assert [r.concept for r in results] == ["tree", "dog"]
    assert w.store.calls == {"search": 1, "fetch_visual": 1}
    assert w.store.queries_per_search == [2]
    # one rule for every entry point (fossil.concepts): a concept given twice is refused
    with pytest.raises(ValueError, match="duplicate concepts: 'tree'"):
        engine(w, N=20, K=2).query(["tree", "dog", "Tree "])
    assert w.store.calls == {"search": 1, "fetch_visual": 1}


def test_cache_hits_then_invalidates_on_new_revision(planted_world: PlantedWorld) -> None:
    w = planted_world
    e = engine(w, N=30, K=3)
    first = e.query(["dog", "car"])
    second = e.query(["car", "dog"])
    assert w.store.calls["search"] == 1 and w.encoder.calls == 1
    assert second[0] is first[1] and second[1] is first[0]
    assert e.cache_stats().memory_hits == 2
    e.query(["dog", "tree"])  # only "tree" is new
    assert w.store.calls["search"] == 2 and w.store.queries_per_search[-1] == 1
    w.catalog.bump()  # a new ingest
    again = e.query(["dog"])
    assert w.store.calls["search"] == 3
    assert again[0] is not first[0] and again[0].revision == first[0].revision + 1
    assert e.cache_stats().entries == 1  # entries of the old revision dropped


def test_cache_key_includes_options(planted_world: PlantedWorld) -> None:
    w = planted_world
    e = engine(w, N=30, K=3)
    e.query(["dog"])
    e.config = replace(e.config, K=2)
    assert e.query(["dog"])[0].prototypes.shape == (2, 48)
    e.config = replace(e.config, prototype_mean=True)
    assert e.query(["dog"])[0].prototypes.shape == (1, 48)
    assert w.store.calls["search"] == 3


def test_disk_cache_shared_between_engines_and_pruned(planted_world: PlantedWorld, tmp_path: Path):
    w = planted_world
    config = RetrievalConfig(N=30, K=3)
    a = QueryEngine(w.collection, w.encoder, config, disk_cache=tmp_path)
    first = a.query(["dog", "car"])
    b = QueryEngine(w.collection, w.encoder, config, disk_cache=tmp_path)
    loaded = b.query(["dog", "car"])
    assert w.store.calls["search"] == 1 and b.cache_stats().disk_hits == 2
    for x, y in zip(first, loaded, strict=True):
        assert x.references == y.references
        np.testing.assert_array_equal(x.prototypes, y.prototypes)
        np.testing.assert_array_equal(x.visual, y.visual)
    old = {p.name for p in tmp_path.iterdir()}
    w.catalog.bump()
    b.query(["dog"])
    assert w.store.calls["search"] == 2
    assert {p.name for p in tmp_path.iterdir()}.isdisjoint(old)  # older revision deleted


def test_corrupt_disk_cache_file_is_a_miss(planted_world: PlantedWorld, tmp_path: Path) -> None:
    w = planted_world
    config = RetrievalConfig(N=10, K=2)
    QueryEngine(w.collection, w.encoder, config, disk_cache=tmp_path).query(["dog"])
    [file] = tmp_path.rglob("*.npz")
    file.write_bytes(b"not an npz")
    QueryEngine(w.collection, w.encoder, config, disk_cache=tmp_path).query(["dog"])
    assert w.store.calls["search"] == 2


def test_fewer_references_than_n_lowers_k_with_a_warning(
    planted_world: PlantedWorld, caplog: pytest.LogCaptureFixture
) -> None:
    w = planted_world
    scores = sorted(r.score for r in engine(w, N=60, K=4).query(["dog"])[0].references)
    threshold = scores[-3]
    with caplog.at_level(logging.WARNING, logger="fossil.query.engine"):
        [r] = engine(w, N=60, K=25, retrieval_threshold=threshold).query(["dog"])
    assert len(r.references) == 3 and r.prototypes.shape == (3, 48)
    assert "'dog': 3 references, K=3" in caplog.text


def test_one_shot_query_and_preset(planted_world: PlantedWorld) -> None:
    w = planted_world
    config = apply_preset(FossilConfig(), "cocostuff").retrieval
    assert (config.N, config.K) == (get_preset("cocostuff").N, 25)
    [r] = query(w.collection, ["car"], w.encoder, config)
    assert len(r.references) == 95 and r.prototypes.shape == (25, 48)


@pytest.mark.parametrize(
    ("concepts", "message"),
    [
        ([], "concepts is empty"),
        (["dog", "   "], r"concepts\[1\] \('   '\) is empty"),
        (["dog", ""], r"concepts\[1\] \(''\) is empty"),
        ("dog", "must be a list of strings"),
        (["dog", 3], r"concepts\[1\] must be a string"),
    ],
)
def test_bad_concepts(planted_world: PlantedWorld, concepts: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        engine(planted_world).query(concepts)  # type: ignore[arg-type]
    assert planted_world.store.calls["search"] == 0


def test_bad_n_k_and_preset() -> None:
    with pytest.raises(ValueError, match=r"K \(30\) must be <= N \(10\)"):
        RetrievalConfig(N=10, K=30)
    with pytest.raises(ValueError, match=r"N \(0\) must be >= 1"):
        RetrievalConfig(N=0, K=1)
    with pytest.raises(ValueError, match="unknown preset 'coco'.*context, cocostuff, ade"):
        get_preset("coco")


def test_other_text_encoder_is_refused(planted_world: PlantedWorld) -> None:
    w = planted_world
    other = KeywordEncoder(w.text, name="other-encoder")
    with pytest.raises(ValueError, match="'other-encoder'.*'fake-keyword'"):
        QueryEngine(w.collection, other)
    wide = KeywordEncoder({"dog": np.ones(64)})
    with pytest.raises(ValueError, match=r"dim 64.*dim 32"):
        QueryEngine(w.collection, wide)


def test_concept_without_references_names_it(planted_world: PlantedWorld) -> None:
    w = planted_world
    e = QueryEngine(w.collection, w.encoder, RetrievalConfig(exclude_corpora=("coco",)))
    with pytest.raises(NoReferencesError, match="'dog', 'car'.*ingest captions that mention it"):
        e.query(["dog", "car"])


def test_cached_arrays_are_read_only(planted_world: PlantedWorld) -> None:
    [result] = engine(planted_world, N=10, K=2).query(["dog"])
    with pytest.raises(ValueError, match="read-only"):
        result.prototypes[0, 0] = 1.0
    with pytest.raises(ValueError, match="read-only"):
        result.visual[0, 0] = 1.0
