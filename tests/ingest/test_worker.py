"""The worker loop on fake models, the real SQL catalog and an in-memory vector store."""

from __future__ import annotations

import pytest

from fossil.db.protocols import Collection
from fossil.ingest.references import process_batch
from fossil.ingest.worker import BatchWriter, Claimer, KillSwitch, run_ingest
from tests.ingest.conftest import CAPTIONS, FakeModels, make_jobs


def _ingest(collection: Collection, models: FakeModels, batch_size: int = 2, **kw):
    claimer = Claimer(collection, "me", batch_size, 60.0, kw.pop("limit", None))
    writer = BatchWriter(collection, "me")
    return run_ingest(models, claimer, writer, **kw)


def test_run_ingest_is_incremental_and_records_failures(
    models: FakeModels, collection: Collection
) -> None:
    catalog = collection.catalog
    catalog.add_corpus("first", "mem", CAPTIONS + ["A boom and a dog"])
    stats = _ingest(collection, models)
    counts = catalog.status_counts()
    assert counts["done"] == 5 and counts["failed"] == 1 and counts["leased"] == 0
    assert stats.failures == 3  # retried until the catalog's limit (3 attempts)
    assert "generator exploded" in catalog.failures()[0]["error"]
    assert collection.refs.count() == 8 == catalog.reference_count() == stats.references
    ids = set(collection.refs.points)
    assert _ingest(collection, models).references == 0  # nothing left to claim
    added = catalog.add_corpus("second", "mem", [CAPTIONS[0], "A tree"])
    assert (added.added, added.duplicates) == (1, 1)
    assert _ingest(collection, models).references == 1
    assert ids < set(collection.refs.points) and collection.refs.count() == 9


def test_limit_and_stop(models: FakeModels, collection: Collection) -> None:
    collection.catalog.add_corpus("c", "mem", CAPTIONS)
    assert _ingest(collection, models, limit=3).captions == 3
    assert collection.catalog.status_counts()["pending"] == 2
    assert _ingest(collection, models, should_stop=lambda: True).captions == 0
    assert _ingest(collection, models).captions == 2


class _Boom(Exception):
    pass


def test_crash_between_upsert_and_commit_reruns_to_the_same_points(
    models: FakeModels, collection: Collection, tmp_path
) -> None:
    """design §4 write order: a failure after the upsert leaves vectors without catalog rows; the
    batch is released and the rerun re-upserts the same ids (no duplicates, no loss)."""
    collection.catalog.add_corpus("c", "mem", CAPTIONS)
    real_complete = collection.catalog.complete
    calls = {"n": 0}

    def complete_failing_second(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise _Boom("disk full")
        return real_complete(*args, **kwargs)

    collection.catalog.complete = complete_failing_second  # type: ignore[method-assign]
    with pytest.raises(_Boom):
        _ingest(collection, models)
    assert collection.catalog.status_counts()["leased"] == 0  # the batch went back
    assert collection.refs.count() > collection.catalog.reference_count()
    _ingest(collection, models)
    assert collection.refs.count() == collection.catalog.reference_count() == 8
    fresh = process_batch(models, make_jobs(CAPTIONS))
    assert set(collection.refs.points) == {p.id for p in fresh.points}


def test_kill_switch_parsing() -> None:
    assert KillSwitch.from_env({}).point is None
    switch = KillSwitch.from_env({"FOSSIL_TEST_KILL_AT": "after-upsert:2"})
    assert (switch.point, switch.nth) == ("after-upsert", 2)
    switch.hit("generate")
    switch.hit("after-upsert")  # first hit: not yet
    assert switch.seen == 1
    with pytest.raises(ValueError, match="expected POINT:N with POINT in"):
        KillSwitch.from_env({"FOSSIL_TEST_KILL_AT": "sometime"})


def test_interrupt_releases_the_current_batch(models: FakeModels, collection: Collection) -> None:
    collection.catalog.add_corpus("c", "mem", CAPTIONS)
    real = models.generator.generate
    calls = {"n": 0}

    def interrupted_second_batch(captions, nouns):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # Ctrl-C pressed twice during generation
        return real(captions, nouns)

    models.generator.generate = interrupted_second_batch  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        _ingest(collection, models)
    counts = collection.catalog.status_counts()
    assert (counts["done"], counts["leased"], counts["pending"]) == (2, 0, 3)
    models.generator.generate = real  # type: ignore[method-assign]
    assert _ingest(collection, models).captions == 3
    assert collection.catalog.failures() == []  # a release does not count as a failure
