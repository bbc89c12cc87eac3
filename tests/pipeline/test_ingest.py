"""``fossil.pipeline.ingest``: one library call runs an ingest (issue 17, item 1).

With the tiny random models (``--models tiny``) on a temporary embedded store, and with the
fake ingest models where only the bookkeeping matters."""

from __future__ import annotations

from pathlib import Path

import pytest

import fossil.pipeline.ingest as ingest_run
from fossil.db.catalog import SqlCatalog
from fossil.db.open import MetaMismatchError, open_collection
from fossil.ingest.corpora import CorpusFile
from fossil.pipeline.ingest import (
    IngestAborted,
    IngestProgress,
    NothingToIngest,
    Registered,
    ingest_corpora,
    register_corpora,
)
from fossil.pipeline.ingest_config import IngestOptions, ModelChoice, StoreAddress
from tests.conftest import TINY_CAPTIONS
from tests.ingest.conftest import FakeModels, FakeText


def _corpus(name: str, captions: list[str]) -> CorpusFile:
    return CorpusFile(name=name, source="memory", format="txt", captions=tuple(captions))


def _refuse_loading(*_: object) -> None:
    raise AssertionError("models were loaded")


def test_tiny_models_progress_and_a_rerun_generates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fossil.models.loading import command_roles, load_models

    models = load_models("tiny", device="cpu", roles=command_roles("ingest"))
    store = StoreAddress(tmp_path / "store")
    corpus = _corpus("tiny", TINY_CAPTIONS)
    options = IngestOptions(batch_size=2)
    events: list[IngestProgress] = []
    first = ingest_corpora(store, [corpus], models, options, on_progress=events.append)
    assert first.corpora == (Registered("tiny", read=3, skipped=0, added=3, duplicates=0),)
    assert first.total == 3 and first.stats.captions == 3 and not first.interrupted
    assert first.stats.references > 0
    assert first.store_references == first.stats.references
    assert first.store_captions == {"pending": 0, "leased": 0, "done": 3, "failed": 0}
    assert [e.stage for e in events] == ["start", "batch", "batch", "end"]  # 3 captions, B=2
    assert events[0].total == 3 and [e.captions for e in events[1:]] == [2, 3, 3]
    assert events[-1].references == first.stats.references
    assert all(e.message is None for e in events)
    thumbnails = list((tmp_path / "store" / "thumbnails").rglob("*.webp"))
    assert len(thumbnails) == first.stats.references

    events.clear()
    again = ingest_corpora(store, [corpus], models, options, on_progress=events.append)
    assert again.corpora == (Registered("tiny", read=3, skipped=0, added=0, duplicates=3),)
    assert again.total == 0 and again.stats.captions == again.stats.references == 0
    assert again.store_references == first.store_references
    assert [(e.stage, e.total) for e in events] == [("start", 0), ("end", 0)]

    monkeypatch.setattr(ingest_run, "model_loaders", _refuse_loading)
    idle = ingest_corpora(store)  # no corpora, nothing pending: no model is loaded
    assert idle.idle and idle.store_captions["done"] == 3 and idle.store_references is None


def test_model_choice_loads_through_model_loaders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store's recorded profile is resolved and handed to the public loader seam."""
    asked: list[tuple[object, tuple[str | None, ...], int]] = []

    def loaders(profile: object, devices: tuple[str | None, ...], workers: int) -> list:
        asked.append((profile, devices, workers))
        return [FakeModels] * workers

    monkeypatch.setattr(ingest_run, "model_loaders", loaders)
    store = StoreAddress(tmp_path / "store")
    choice = ModelChoice("some-profile.toml", devices=("cpu",))
    summary = ingest_corpora(store, [_corpus("c", ["A dog", "A cat"])], choice)
    assert summary.stats.captions == 2 and asked == [("some-profile.toml", ("cpu",), 1)]
    register_corpora(store, [_corpus("d", ["A tree"])])
    summary = ingest_corpora(store, models=ModelChoice())  # no profile: the store's own
    profile = asked[-1][0]
    assert summary.stats.captions == 1 and summary.corpora == ()
    assert profile.ids["text"] == "fake-text" and profile.name == "collection"  # type: ignore[attr-defined]


def test_an_open_collection_and_only_the_given_corpora(tmp_path: Path) -> None:
    store = StoreAddress(tmp_path / "store")
    ingest_corpora(store, [_corpus("first", ["A dog"])], FakeModels())
    register_corpora(store, [_corpus("waiting", ["A cat", "A tree"])])
    collection = open_collection(tmp_path / "store")
    try:
        only = IngestOptions(only_given=True)
        summary = ingest_corpora(collection, [_corpus("mine", ["A car"])], FakeModels(), only)
        assert summary.total == 1 and summary.stats.captions == 1
        assert collection.catalog.status_counts()["pending"] == 2  # "waiting" untouched
        with pytest.raises(MetaMismatchError, match="generated with the collection's models"):
            ingest_corpora(collection, [_corpus("x", ["A sky"])], FakeModels(text=FakeText("t")))
        assert collection.refs.count() == 2  # still open, nothing written by the refusal
    finally:
        collection.close()


def test_stop_and_abort_leave_the_rest_pending(tmp_path: Path) -> None:
    store = StoreAddress(tmp_path / "store")
    corpus = _corpus("c", ["A dog", "A cat", "A tree", "A car"])
    events: list[IngestProgress] = []
    stopped = ingest_corpora(
        store,
        [corpus],
        FakeModels(),
        IngestOptions(batch_size=1),
        on_progress=events.append,
        should_stop=lambda: any(e.stage == "batch" for e in events),
    )
    assert stopped.interrupted and stopped.stats.captions == 1
    assert stopped.store_captions["pending"] == 3
    models = FakeModels()
    real = models.generator.generate

    def interrupt_on_car(captions, nouns):  # noqa: ANN001, ANN202
        if any("car" in c for c in captions):
            raise KeyboardInterrupt
        return real(captions, nouns)

    models.generator.generate = interrupt_on_car  # type: ignore[method-assign]
    with pytest.raises(IngestAborted) as aborted:
        ingest_corpora(store, (), models, IngestOptions(batch_size=1))
    summary = aborted.value.summary
    assert summary.interrupted and summary.stats.captions == 2  # cat, tree; car handed back
    assert summary.store_captions == {"pending": 1, "leased": 0, "done": 3, "failed": 0}


def test_nothing_to_ingest_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ingest_run, "model_loaders", _refuse_loading)
    with pytest.raises(NothingToIngest, match="no fossil store at") as missing:
        ingest_corpora(StoreAddress(tmp_path / "none"))
    assert not missing.value.store_exists and not (tmp_path / "none").exists()
    url = f"sqlite:///{tmp_path / 'empty.sqlite'}"
    SqlCatalog(url).close()
    with pytest.raises(NothingToIngest, match="holds no corpus yet") as empty:
        ingest_corpora(StoreAddress(qdrant_url=":memory:", catalog_url=url))
    assert empty.value.store_exists


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: IngestOptions(batch_size=0), r"batch_size \(0\) must be >= 1"),
        (lambda: IngestOptions(limit=-1), r"limit \(-1\) must be >= 0"),
        (lambda: IngestOptions(lease_seconds=0), r"lease_seconds \(0\) must be > 0"),
        (lambda: ModelChoice(workers=0), r"workers \(0\) must be >= 1"),
        (lambda: StoreAddress("d", shards=2), r"shards \(2\) must be >= 1 and needs qdrant_url"),
        (lambda: StoreAddress(), r"a store needs a directory \(root\) or a catalog_url"),
    ],
)
def test_settings_refuse_bad_values(make, match: str) -> None:  # noqa: ANN001
    with pytest.raises(ValueError, match=match):
        make()


def test_the_catalog_is_read_once_before_the_models_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Names checked against the registered corpora, nothing-pending check and the store's
    recorded models: one opening of the catalog, then the collection's own (issue 28)."""
    store = StoreAddress(tmp_path / "store")
    ingest_corpora(store, [_corpus("first", ["A dog"])], FakeModels())
    register_corpora(store, [_corpus("waiting", ["A cat"])])
    opened: list[str] = []
    original = SqlCatalog.__init__

    def counted(self: SqlCatalog, url: str, *args: object, **kwargs: object) -> None:
        opened.append(url)
        original(self, url, *args, **kwargs)

    monkeypatch.setattr(SqlCatalog, "__init__", counted)
    monkeypatch.setattr(ingest_run, "model_loaders", lambda *_: [FakeModels])
    named = CorpusFile("other", "other.txt", "txt", ("A tree",), named_after_file=True)
    summary = ingest_corpora(store, [named], ModelChoice())  # profile: the store's
    assert summary.stats.captions == 2 and len(opened) == 2  # the checks, the collection
    opened.clear()
    assert ingest_corpora(store).idle and len(opened) == 1  # nothing pending: checks only


def test_one_lease_owner_names_this_process(monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import socket

    from fossil.pipeline.ingest_config import lease_owner

    host = socket.gethostname()
    assert lease_owner() == f"{host}:{os.getpid()}"
    assert lease_owner("extend") == f"{host}:{os.getpid()}:extend"
