"""Stale-lease release happens where the embedded store's lock proves exclusive access:
``open_collection(release_stale_leases=True)`` (issue 17, item 4)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from fossil.db.open import open_collection, store_catalog_url
from fossil.ingest.corpora import CorpusFile
from fossil.pipeline.ingest import ingest_corpora, register_corpora
from fossil.pipeline.ingest_config import StoreAddress
from tests.ingest.conftest import FakeModels


@pytest.fixture
def dead_run(tmp_path: Path) -> Path:
    """A store with 3 pending captions, 2 of them leased by a run that died."""
    store = StoreAddress(tmp_path / "store")
    corpus = CorpusFile(name="done", source="memory", format="txt", captions=("A dog",))
    ingest_corpora(store, [corpus], FakeModels())
    waiting = ("A cat", "A tree", "A car")
    register_corpora(store, [CorpusFile("waiting", "memory", "txt", waiting)])
    collection = open_collection(store.root)
    try:
        assert len(collection.catalog.claim("dead-host:1", 2, 3600.0)) == 2
    finally:
        collection.close()
    return tmp_path / "store"


def _counts(collection) -> tuple[int, int]:  # noqa: ANN001
    counts = collection.catalog.status_counts()
    return counts["pending"], counts["leased"]


def test_a_reader_sees_the_leases(dead_run: Path) -> None:
    collection = open_collection(dead_run)
    try:
        assert _counts(collection) == (1, 2)
    finally:
        collection.close()


def test_a_writer_of_the_locked_store_takes_them_back(
    dead_run: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="fossil.db.open"):
        collection = open_collection(dead_run, release_stale_leases=True)
    try:
        assert _counts(collection) == (3, 0)
    finally:
        collection.close()
    assert "2 captions were leased by a run that did not finish" in caplog.text


def test_a_catalog_given_by_url_may_be_shared_and_keeps_them(dead_run: Path) -> None:
    url = store_catalog_url(dead_run)
    collection = open_collection(dead_run, catalog_url=url, release_stale_leases=True)
    try:
        assert _counts(collection) == (1, 2)
    finally:
        collection.close()


def test_ingest_takes_a_dead_runs_batches_back(dead_run: Path) -> None:
    summary = ingest_corpora(StoreAddress(dead_run), (), FakeModels())
    assert summary.stats.captions == 3
    assert summary.store_captions == {"pending": 0, "leased": 0, "done": 4, "failed": 0}
