"""SqlCatalog: dedup, leases (with an injected clock), retries, one-transaction completion.

Every test runs on SQLite and on PostgreSQL (``[postgresql]``, marked ``integration``: needs
``FOSSIL_TEST_POSTGRES_URL``, see tests/db/conftest.py); the PostgreSQL-only behaviour
(concurrent processes) is in test_postgres.py."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import Connection, event, inspect

from fossil.db import schema
from fossil.db.catalog import MAX_CAPTION_CHARS, SqlCatalog, caption_hash
from fossil.db.protocols import AddResult, CatalogStore, ReferenceRow
from fossil.db.schema import SCHEMA_VERSION
from tests.db.conftest import Clock
from tests.fakes import make_meta


def rows_for(job_id: int, count: int = 2) -> list[ReferenceRow]:
    return [
        ReferenceRow(f"p-{job_id}-{k}", job_id, f"noun{k}", f"lemma{k}", 0.1 * (k + 1))
        for k in range(count)
    ]


def test_satisfies_protocol_and_wal(catalog: SqlCatalog) -> None:
    assert isinstance(catalog, CatalogStore)
    assert catalog.schema_version() == SCHEMA_VERSION
    assert set(inspect(catalog._engine).get_table_names()) == set(schema.metadata.tables)
    if catalog._engine.dialect.name == "sqlite":
        with catalog._engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_normalised_dedup_across_corpora_and_skips(catalog: SqlCatalog) -> None:
    first = catalog.add_corpus(
        "coco",
        "captions.json",
        [
            "A dog  on\tgrass ",
            "A dog on grass",
            "Cafe\u0301 sign",
            "",
            "   ",
            None,
            7,
            "x" * (MAX_CAPTION_CHARS + 1),
            "y" * MAX_CAPTION_CHARS,
        ],
    )
    assert first == AddResult(added=3, duplicates=1, skipped=5)
    again = catalog.add_corpus("coco", "captions.json", ["A dog on grass", "Café sign"])
    assert again == AddResult(added=0, duplicates=2, skipped=0)  # NFC: é == e + U+0301
    other = catalog.add_corpus("web", "web.txt", ["a dog on grass", "A dog on grass"])
    assert other == AddResult(added=1, duplicates=1, skipped=0)  # case is kept: 1 new
    assert catalog.status_counts() == {"pending": 4, "leased": 0, "done": 0, "failed": 0}
    # a caption belongs to every corpus holding it: "A dog on grass" is web's too
    assert [(c["name"], c["captions"]) for c in catalog.corpora()] == [("coco", 3), ("web", 2)]
    jobs = catalog.claim("w", 10, 60)
    assert jobs[0].text == "A dog on grass" and jobs[0].text_hash == caption_hash("A dog on grass")
    assert [j.corpus for j in jobs] == ["coco", "coco", "coco", "web"]


def test_claim_lease_expiry_and_reclaim(catalog: SqlCatalog, clock: Clock) -> None:
    catalog.add_corpus("c", "s", [f"caption {i}" for i in range(5)])
    a = catalog.claim("a", 3, lease_seconds=60)
    b = catalog.claim("b", 3, lease_seconds=60)
    assert len(a) == 3 and len(b) == 2 and not {j.id for j in a} & {j.id for j in b}
    assert catalog.claim("c", 3, 60) == []
    assert catalog.status_counts()["leased"] == 5
    clock.now += 61  # both leases expire: a dead worker's batch comes back
    c = catalog.claim("c", 10, 60)
    assert sorted(j.id for j in c) == sorted(j.id for j in a + b)
    assert {j.attempts for j in c} == {2}


def test_fail_retries_up_to_the_limit(catalog: SqlCatalog) -> None:
    catalog.add_corpus("c", "s", ["bad caption", "good caption"])
    for attempt in (1, 2, 3):
        jobs = {j.text: j for j in catalog.claim("w", 10, 60)}
        assert jobs["bad caption"].attempts == attempt
        catalog.fail("w", jobs["bad caption"].id, f"boom {attempt}")
        if "good caption" in jobs:
            catalog.complete("w", [jobs["good caption"].id], rows_for(jobs["good caption"].id))
    assert catalog.claim("w", 10, 60) == []  # attempts exhausted: stays failed
    assert catalog.status_counts() == {"pending": 0, "leased": 0, "done": 1, "failed": 1}
    assert catalog.failures()[0]["error"] == "boom 3" and catalog.failures()[0]["attempts"] == 3


def test_release_returns_without_counting_an_attempt(catalog: SqlCatalog) -> None:
    catalog.add_corpus("c", "s", ["one", "two"])
    jobs = catalog.claim("w", 2, 60)
    catalog.release("other", [j.id for j in jobs])  # not its lease: nothing happens
    assert catalog.status_counts()["leased"] == 2
    catalog.release("w", [j.id for j in jobs])
    assert catalog.status_counts()["pending"] == 2
    assert {j.attempts for j in catalog.claim("w", 2, 60)} == {1}
    assert catalog.release_all() == 2


def test_complete_is_one_transaction(catalog: SqlCatalog) -> None:
    catalog.add_corpus("c", "s", ["one", "two"])
    jobs = catalog.claim("w", 2, 60)
    rows = rows_for(jobs[0].id) + rows_for(jobs[1].id, 1)

    def explode(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        if statement.lstrip().upper().startswith("UPDATE CATALOG_STATE"):
            raise RuntimeError("crash before commit")

    event.listen(catalog._engine, "before_cursor_execute", explode)
    with pytest.raises(RuntimeError, match="crash before commit"):
        catalog.complete("w", [j.id for j in jobs], rows)
    event.remove(catalog._engine, "before_cursor_execute", explode)
    assert catalog.reference_count() == 0 and catalog.revision() == 0  # nothing half-written
    assert catalog.status_counts()["leased"] == 2

    catalog.complete("w", [j.id for j in jobs], rows)
    assert catalog.reference_count() == 3 and catalog.revision() == 1
    assert catalog.status_counts()["done"] == 2
    catalog.complete("w", [j.id for j in jobs], rows)  # a rerun after a crash: idempotent
    assert catalog.reference_count() == 3 and catalog.revision() == 1


def test_complete_rejects_rows_of_other_captions(catalog: SqlCatalog) -> None:
    catalog.add_corpus("c", "s", ["one"])
    job = catalog.claim("w", 1, 60)[0]
    with pytest.raises(ValueError, match="not in caption_ids"):
        catalog.complete("w", [job.id], rows_for(job.id + 1))
    with pytest.raises(ValueError, match="unknown caption ids"):
        catalog.complete("w", [job.id, 999], [])


def test_lookup_remove_and_revision(catalog: SqlCatalog) -> None:
    catalog.add_corpus("coco", "s", ["a cat on a mat"])
    job = catalog.claim("w", 1, 60)[0]
    catalog.complete("w", [job.id], rows_for(job.id))
    found = catalog.lookup([f"p-{job.id}-1", "absent"])
    assert list(found) == [f"p-{job.id}-1"]
    assert found[f"p-{job.id}-1"] == {
        "caption_id": job.id,
        "noun": "noun1",
        "lemma": "lemma1",
        "mask_area": pytest.approx(0.2),
        "thumbnail": None,
        "caption": "a cat on a mat",
        "corpus": "coco",
    }
    assert catalog.top_lemmas(1) in ([("lemma0", 1)], [("lemma1", 1)])
    assert catalog.remove_references([f"p-{job.id}-0", "absent"]) == 1
    assert catalog.revision() == 2 and catalog.reference_count() == 1
    assert catalog.remove_references(["absent"]) == 0 and catalog.revision() == 2


def test_lemma_samples_count_and_sample_each_lemma(catalog: SqlCatalog) -> None:
    catalog.add_corpus("coco", "s", ["a dog", "two dogs", "a dog and a cat"])
    jobs = catalog.claim("w", 3, 60)
    rows = [
        ReferenceRow(f"p-{job.id}-{k}", job.id, noun, lemma, 0.1)
        for job in jobs
        for k, (noun, lemma) in enumerate([("dog", "dog"), ("cat", "cat")][: 1 + (job.id % 2)])
    ]
    catalog.complete("w", [job.id for job in jobs], rows)
    dogs = sorted(r.point_id for r in rows if r.lemma == "dog")
    cats = sorted(r.point_id for r in rows if r.lemma == "cat")
    expected = {
        "dog": (3, [dogs[0], dogs[-1]]),
        "cat": (len(cats), list(dict.fromkeys([cats[0], cats[-1]]))),
    }
    assert {lemma: (n, ids) for lemma, n, ids in catalog.lemma_samples()} == expected


def test_meta_round_trip_and_reopen(catalog_url: str, clock: Clock) -> None:
    url = catalog_url
    first = SqlCatalog(url, clock=clock)
    assert first.get_meta() is None
    first.set_meta(make_meta())
    first.close()
    assert SqlCatalog(url).get_meta() == make_meta()


def test_newer_schema_is_refused(catalog_url: str) -> None:
    url = catalog_url
    catalog = SqlCatalog(url)
    with catalog._engine.begin() as conn:
        conn.exec_driver_sql(f"UPDATE schema_version SET version = {SCHEMA_VERSION + 1}")
    with pytest.raises(RuntimeError, match="newer than this fossil"):
        SqlCatalog(url)


def test_concurrent_claims_are_disjoint(catalog_url: str) -> None:
    url = catalog_url
    SqlCatalog(url).add_corpus("c", "s", [f"caption {i}" for i in range(200)])
    claimed: dict[str, list[int]] = {"a": [], "b": []}

    def work(owner: str) -> None:
        catalog = SqlCatalog(url)  # its own engine and connections, like another process
        while jobs := catalog.claim(owner, 7, 60):
            claimed[owner].extend(j.id for j in jobs)

    threads = [threading.Thread(target=work, args=(owner,)) for owner in claimed]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    everything = claimed["a"] + claimed["b"]
    assert len(everything) == 200 and len(set(everything)) == 200


def test_migration_steps_run_once_in_order(
    catalog_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = catalog_url
    SqlCatalog(url).add_corpus("c", "s", ["kept across the migration"])
    ran: list[int] = []

    def step(conn: Connection) -> None:
        ran.append(SCHEMA_VERSION + 1)
        conn.exec_driver_sql("ALTER TABLE reference ADD COLUMN score FLOAT")

    monkeypatch.setitem(schema.MIGRATIONS, SCHEMA_VERSION + 1, step)
    migrated = SqlCatalog(url)
    assert migrated.schema_version() == SCHEMA_VERSION + 1 and ran == [SCHEMA_VERSION + 1]
    columns = [column["name"] for column in inspect(migrated._engine).get_columns("reference")]
    assert "score" in columns
    SqlCatalog(url)  # already at the latest version: the step does not run again
    assert ran == [SCHEMA_VERSION + 1] and migrated.status_counts()["pending"] == 1
