"""Catalog schema v2: concept phrases on captions, corpus-filtered claims and counts, and the
steps of removing a corpus (SQLite and, with FOSSIL_TEST_POSTGRES_URL, PostgreSQL)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from fossil.db.catalog import SqlCatalog
from fossil.db.schema import SCHEMA_VERSION
from tests.db.conftest import Clock
from tests.db.test_catalog import rows_for


def test_phrase_travels_from_registration_to_the_claimed_job(catalog: SqlCatalog) -> None:
    catalog.add_corpus("concept:solar panel", "gen", ["the solar panel in a park"],
                       phrase="solar panel")  # fmt: skip
    catalog.add_corpus("coco", "file", ["a dog on a sofa"])
    jobs = {job.corpus: job for job in catalog.claim("w", 10, 60)}
    assert jobs["concept:solar panel"].phrase == "solar panel"
    assert jobs["coco"].phrase is None
    with pytest.raises(ValueError, match="phrase"):
        catalog.add_corpus("x", "s", ["text"], phrase="  ")


def test_claims_and_counts_restricted_to_corpora(catalog: SqlCatalog) -> None:
    catalog.add_corpus("a", "s", ["one", "two", "three"])
    catalog.add_corpus("b", "s", ["four", "five"])
    assert catalog.status_counts(corpora=["b"])["pending"] == 2
    jobs = catalog.claim("w", 10, 60, corpora=["b"])
    assert sorted(job.text for job in jobs) == ["five", "four"]
    assert catalog.claim("w", 10, 60, corpora=["b"]) == []
    assert catalog.status_counts(corpora=["a"]) == {"pending": 3, "leased": 0, "done": 0,
                                                    "failed": 0}  # fmt: skip
    assert catalog.status_counts()["leased"] == 2


def test_corpora_report_references_and_removal_steps(catalog: SqlCatalog, clock: Clock) -> None:
    catalog.add_corpus("keep", "s", ["a cat on a mat"])
    catalog.add_corpus("drop", "s", ["a dog in a park", "a bird on a wire"])
    jobs = catalog.claim("w", 10, 60)
    catalog.complete("w", [j.id for j in jobs], [r for j in jobs for r in rows_for(j.id)])
    listed = {c["name"]: c for c in catalog.corpora()}
    assert (listed["keep"]["references"], listed["drop"]["references"]) == (2, 4)
    assert listed["drop"]["captions"] == 2 and not listed["drop"]["removing"]
    drop_ids = {r.point_id for j in jobs if j.corpus == "drop" for r in rows_for(j.id)}
    revision = catalog.revision()

    assert not catalog.begin_removal("drop")
    assert {c["name"]: c["removing"] for c in catalog.corpora()} == {"keep": False, "drop": True}
    with pytest.raises(ValueError, match="being removed"):
        catalog.add_corpus("drop", "s", ["more"])
    assert {point for point, _ in catalog.corpus_references("drop")} == drop_ids
    assert catalog.begin_removal("drop")  # a rerun of an interrupted removal: allowed
    assert catalog.finish_removal("drop") == {"references": 4, "captions": 2, "kept": 0}
    assert [c["name"] for c in catalog.corpora()] == ["keep"]
    assert catalog.reference_count() == 2 and catalog.revision() == revision + 1
    assert catalog.lookup(sorted(drop_ids)) == {}
    with pytest.raises(ValueError, match="no corpus named 'drop'.*'keep'"):
        catalog.begin_removal("drop")


def test_removal_hides_pending_captions_and_waits_for_live_leases(
    catalog: SqlCatalog, clock: Clock
) -> None:
    catalog.add_corpus("c", "s", ["one", "two"])
    catalog.claim("w", 1, 60)  # a live worker holds "one"
    with pytest.raises(RuntimeError, match="leased by running workers"):
        catalog.begin_removal("c")
    clock.now += 61  # the lease expired: the worker is gone
    catalog.begin_removal("c")
    assert catalog.claim("w2", 10, 60) == []  # nothing of a corpus being removed is claimed
    catalog.add_corpus("d", "s", ["three"])
    catalog.claim("w3", 1, 600)
    catalog.begin_removal("d", force=True)  # forced despite the live lease


V1_DDL = """
CREATE TABLE schema_version (version INTEGER NOT NULL);
INSERT INTO schema_version VALUES (1);
CREATE TABLE corpus (id INTEGER PRIMARY KEY, name VARCHAR(255) NOT NULL UNIQUE,
    source TEXT NOT NULL, added_at FLOAT NOT NULL);
CREATE TABLE caption (id INTEGER PRIMARY KEY, corpus_id INTEGER NOT NULL REFERENCES corpus(id),
    text TEXT NOT NULL, text_hash VARCHAR(64) NOT NULL UNIQUE, status VARCHAR(16) NOT NULL,
    lease_owner VARCHAR(255), lease_expires FLOAT, attempts INTEGER NOT NULL, error TEXT);
CREATE TABLE reference (point_id VARCHAR(36) PRIMARY KEY,
    caption_id INTEGER NOT NULL REFERENCES caption(id), noun TEXT NOT NULL, lemma TEXT NOT NULL,
    mask_area FLOAT NOT NULL, thumbnail TEXT);
CREATE TABLE collection_meta (key VARCHAR(64) PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE catalog_state (id INTEGER PRIMARY KEY, revision INTEGER NOT NULL);
INSERT INTO catalog_state VALUES (1, 3);
INSERT INTO corpus VALUES (1, 'old', 'file', 1.0);
INSERT INTO caption VALUES (1, 1, 'a cat', 'h1', 'pending', NULL, NULL, 0, NULL);
"""


def test_version_1_catalog_migrates_in_place(tmp_path: Path) -> None:
    path = tmp_path / "catalog.sqlite"
    with sqlite3.connect(path) as conn:
        conn.executescript(V1_DDL)
    catalog = SqlCatalog(f"sqlite:///{path}")
    assert catalog.schema_version() == SCHEMA_VERSION == 3
    [old] = catalog.corpora()
    assert (old["name"], old["captions"], old["removing"]) == ("old", 1, False)
    [job] = catalog.claim("w", 1, 60)
    assert (job.text, job.phrase) == ("a cat", None)
    assert catalog.revision() == 3
