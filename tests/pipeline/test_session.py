"""The read session (:mod:`fossil.pipeline.session`) on a ``--models tiny`` store: what it
opens and checks, what it shares between calls, and that it segments as the library call it
composes."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

import fossil.concepts
from fossil.cli import main
from fossil.concepts import Concepts
from fossil.config import FossilConfig
from fossil.db.open import open_collection
from fossil.pipeline.ingest_config import ModelChoice, StoreAddress
from fossil.pipeline.segmenter import segment_image
from fossil.pipeline.session import MAX_ENGINES, ReadCaches, ReadSession
from tests.conftest import build_tiny_store, models_loaded_once

CONFIG = FossilConfig()
CONFIG = replace(
    CONFIG,
    retrieval=replace(CONFIG.retrieval, N=4, K=2),
    opencut=replace(CONFIG.opencut, crf=replace(CONFIG.opencut.crf, enabled=False)),
)


def picture() -> np.ndarray:
    rng = np.random.default_rng(0)
    pixels = np.zeros((60, 80, 3), np.uint8)
    pixels[:, :40] = (30, 160, 40)
    pixels[:, 40:] = (200, 200, 230)
    return np.clip(pixels + rng.integers(-10, 11, pixels.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_store(tmp_path_factory.mktemp("session"))


@pytest.fixture(scope="module")
def held(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store of its own for :func:`session`, which holds it open (an embedded store is
    locked to one opener)."""
    return build_tiny_store(tmp_path_factory.mktemp("held"))


@pytest.fixture(scope="module")
def session(held: Path) -> Iterator[ReadSession]:
    with models_loaded_once():
        opened = ReadSession.open(StoreAddress(held), CONFIG, ModelChoice())
    with opened:
        yield opened


def test_open_takes_the_models_the_collection_records_and_checks_both_encoders(
    session: ReadSession, held: Path
) -> None:
    assert session.models.ids["text"] == session.collection.meta.text_encoder == "fossil-tiny/text"
    assert session.store == StoreAddress(held)
    # the dense encoder was built (and checked) when the session started: it can segment
    assert {"text", "dense"} <= set(session.models.loaded)
    assert session.config is CONFIG


def test_a_query_only_session_never_builds_the_dense_encoder(store: Path) -> None:
    with models_loaded_once():
        with ReadSession.open(StoreAddress(store), CONFIG, ModelChoice(), command="query") as s:
            [dog] = s.query(["dog"])
            [coverage] = s.coverage(["dog"])
            assert "dense" not in s.models.loaded
    assert len(dog.references) == 4 and coverage.concept == "dog"


def test_a_dense_encoder_other_than_the_collections_is_refused(session: ReadSession) -> None:
    other = SimpleNamespace(name="another/dense", dim=7, input_size=32)
    roles = frozenset({"text", "dense", "keys"})
    models = SimpleNamespace(text=session.models.text, dense=other, keys=other, roles=roles)
    with pytest.raises(ValueError, match=r"dense encoder 'another/dense' \(dim 7\) does not"):
        ReadSession(session.collection, models, CONFIG)  # type: ignore[arg-type]


def test_a_text_encoder_other_than_the_collections_is_refused(session: ReadSession) -> None:
    other = SimpleNamespace(name="another/text", dim=5)
    models = SimpleNamespace(text=other, roles=frozenset({"text"}))
    with pytest.raises(ValueError, match=r"text encoder 'another/text' \(dim 5\) does not"):
        ReadSession(session.collection, models, CONFIG)  # type: ignore[arg-type]


def test_a_failed_start_closes_the_store_it_opened(store: Path) -> None:
    def broken(collection: Any) -> FossilConfig:
        raise ValueError("bad flag")

    with pytest.raises(ValueError, match="bad flag"):
        ReadSession.open(StoreAddress(store), broken, ModelChoice())
    open_collection(store).close()  # not left locked


def test_segment_is_segment_image_with_the_sessions_engine_and_analyser(
    session: ReadSession,
) -> None:
    image = picture()
    result = session.segment(image, ["dog", "car"])
    engine, analyser = session.engine(), session.analyser()
    expected = segment_image(image, ["dog", "car"], CONFIG, engine=engine, analyser=analyser)
    assert result.concepts == ["dog", "car"]
    assert np.array_equal(result.labels, expected.labels)
    assert np.allclose(result.scores, expected.scores)
    # the regions and their masks come back with the result: a map of the image
    regions = result.region_map()
    assert regions.shape == image.shape[:2] and result.explanations
    assert set(np.unique(regions)) <= {-1, *range(len(result.explanations))}
    assert len(result.masks) == len({e.region.box for e in result.explanations})


def test_engines_and_analysers_are_kept_per_setting_and_share_one_cache(
    session: ReadSession,
) -> None:
    base = session.config.retrieval
    engines = [session.engine(replace(base, N=n, K=1)) for n in range(1, 2 * MAX_ENGINES)]
    assert len(session._engines) == MAX_ENGINES
    assert len({id(e._memory) for e in engines}) == 1
    assert session.engine() is session.engine(base)
    patches = replace(CONFIG, regions="patches")
    assert session.analyser(patches) is session.analyser(patches)
    assert session.analyser(patches) is not session.analyser()


def test_the_predictor_scores_crops_against_the_given_prototypes(session: ReadSession) -> None:
    results = session.query(["dog", "car", "cat"])
    predictor = session.predictor([r.prototypes for r in results])
    scores = predictor.scores(picture()[:, :60])
    assert predictor.num_classes == 3 and scores.shape == (3, 60, 60)


def test_caches_on_disk_live_under_the_store(store: Path, tmp_path: Path) -> None:
    caches = ReadCaches(embeddings=True, prototypes=True, crops=tmp_path / "crops")
    with models_loaded_once():
        with ReadSession.open(StoreAddress(store), CONFIG, ModelChoice(), caches=caches) as s:
            s.segment(picture(), ["dog"])
    assert any((store / "cache" / "prototypes").iterdir())
    assert any((store / "cache" / "embeddings").iterdir())
    assert any((tmp_path / "crops").rglob("*"))


def test_describe_says_what_fossil_info_says(session: ReadSession, held: Path) -> None:
    described = session.describe(top=3)
    assert described["references"] == described["catalog_references"] == 6
    assert described["store"] == str(held.resolve()) and len(described["top_lemmas"]) <= 3


def test_fossil_segment_checks_its_concepts_once(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 28: the concept list was checked 5 times per run; parsed once into a
    :class:`Concepts`, the library takes it as it is."""
    from PIL import Image

    Image.fromarray(picture()).save(tmp_path / "park.png")
    checked: list[str] = []
    real = fossil.concepts.check_concept

    def counting(concept: object, label: str = "concept") -> str:
        checked.append(label)
        return real(concept, label)

    monkeypatch.setattr(fossil.concepts, "check_concept", counting)
    argv = ["segment", str(tmp_path / "park.png"), "--concepts", "dog, car", "--store", str(store)]
    with models_loaded_once():
        assert main([*argv, "--out", str(tmp_path / "out"), "--no-crf"]) == 0
    assert checked == ["--concepts entry 1", "--concepts entry 2"]


def test_concepts_are_a_checked_frozen_value() -> None:
    concepts = Concepts.parse(" dog ,  solar   panel", "--concepts")
    assert concepts == ["dog", "solar panel"] and concepts == ("dog", "solar panel")
    assert Concepts.check(concepts) is concepts  # taken as it is
    assert str(concepts) == "dog, solar panel" and list(concepts[1:]) == ["solar panel"]
    with pytest.raises(AttributeError):
        concepts.names = ("cat",)  # type: ignore[misc]
    with pytest.raises(ValueError, match="duplicate concepts: 'dog'"):
        Concepts(("dog", "Dog"))  # constructing one directly checks too
    with pytest.raises(ValueError, match=r"concepts entry 2 \('a\\x1bb'\) contains"):
        Concepts.parse("dog, a\x1bb")
