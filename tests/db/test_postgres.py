"""The catalog on PostgreSQL with concurrent processes (design §7 scale-out).

Needs a server: ``FOSSIL_TEST_POSTGRES_URL`` (a throwaway database: its catalog tables are
dropped before each test), e.g.
``postgresql+psycopg2://postgres@/fossil_test?host=/tmp&port=5433``.  Without one the tests
skip, except under ``CI=true`` where they fail (tests/db/conftest.py); ``.ci/run`` starts a
server.  The shared catalog behaviour runs on PostgreSQL too: tests/db/test_catalog.py is
parametrised over both backends.

Worker processes are ``fossil ingest --store OWN_DIR --catalog URL`` with the fake models
(:mod:`tests.db.pg_worker`): one PostgreSQL catalog hands out the captions, each worker writes
its vectors into its own embedded store (a Qdrant server cannot run here; the embedded store
is single-process), so the union of the stores is what a shared server would hold.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import event, func, select

import fossil.pipeline.ingest as ingest_run
from fossil.cli import main
from fossil.db.catalog import SqlCatalog
from fossil.db.open import open_collection
from fossil.db.protocols import ReferenceRow
from fossil.db.schema import caption, catalog_state, reference, schema_version
from tests.db.pg_worker import DELAY_ENV
from tests.fakes import make_meta
from tests.ingest.conftest import load_fake_models

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CAPTIONS = [f"A dog number {i} near a tree and a car" for i in range(120)]  # 3 refs each
BATCH = 4
WORKERS = 4
BATCH_SECONDS = 0.08  # per generator call: workers overlap instead of one taking everything
LEASE_SECONDS = 2.0


def _corpus(tmp: Path, captions: list[str]) -> Path:
    path = tmp / "captions.txt"
    path.write_text("\n".join(captions) + "\n")
    return path


def _store_ids(store: Path, url: str) -> set[str]:
    collection = open_collection(store, catalog_url=url)
    try:
        return {p.id for p in collection.refs.iter_points()}
    finally:
        collection.close()


def _catalog_state(url: str) -> dict:
    catalog = SqlCatalog(url)
    try:
        with catalog._engine.connect() as conn:
            attempts = dict(conn.execute(select(caption.c.text, caption.c.attempts)).all())
            points = set(conn.execute(select(reference.c.point_id)).scalars())
        return {"captions": catalog.status_counts(), "attempts": attempts, "points": points}
    finally:
        catalog.close()


def _start_worker(
    corpus: Path, store: Path, url: str, lease: float, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "tests.db.pg_worker", "ingest", str(corpus)]
    argv += ["--store", str(store), "--catalog", url, "--batch-size", str(BATCH)]
    argv += ["--lease-seconds", str(lease), "--no-progress", "--no-thumbnails", "--json"]
    return subprocess.Popen(
        argv,
        cwd=ROOT,
        env={**os.environ, DELAY_ENV: str(BATCH_SECONDS), **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=60)
    return process.returncode, out, err


@pytest.fixture(scope="module")
def single_worker(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """Point ids of an uninterrupted single-process run (embedded store, SQLite catalog)."""
    tmp = tmp_path_factory.mktemp("single")
    corpus, store = _corpus(tmp, CAPTIONS), tmp / "store"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ingest_run, "model_loaders", lambda *_: [load_fake_models])
        argv = ["ingest", str(corpus), "--store", str(store), "--batch-size", str(BATCH)]
        assert main([*argv, "--no-progress", "--no-thumbnails"]) == 0
    collection = open_collection(store)
    try:
        ids = {p.id for p in collection.refs.iter_points()}
        assert collection.catalog.reference_count() == len(ids) == 3 * len(CAPTIONS)
    finally:
        collection.close()
    return ids


def test_processes_opening_a_new_catalog_at_once(postgres_url: str) -> None:
    """Migration, corpus registration and collection_meta are check-then-write steps: run
    at once on an empty database they must neither fail on a key nor register twice."""
    barrier = threading.Barrier(6)
    added: list[int] = []
    errors: list[BaseException] = []
    captions = [f"caption {i}" for i in range(300)]

    def open_and_register(k: int) -> None:
        try:
            barrier.wait()
            catalog = SqlCatalog(postgres_url)  # its own engine: like another process
            try:
                barrier.wait()
                added.append(catalog.add_corpus("c", "s", captions[k * 20 :]).added)
                barrier.wait()
                if catalog.get_meta() is None:
                    catalog.set_meta(make_meta())
            finally:
                catalog.close()
        except BaseException as exc:  # noqa: BLE001  (reported by the assertion below)
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=open_and_register, args=(k,)) for k in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    catalog = SqlCatalog(postgres_url)
    try:
        assert sum(added) == 300 and catalog.status_counts()["pending"] == 300
        assert [(c["name"], c["captions"]) for c in catalog.corpora()] == [("c", 300)]
        assert catalog.get_meta() == make_meta()
        with catalog._engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(schema_version)).scalar() == 1
            assert conn.execute(select(func.count()).select_from(catalog_state)).scalar() == 1
    finally:
        catalog.close()


def test_two_completions_of_the_same_captions_write_the_rows_once(postgres_url: str) -> None:
    """A lease expires while its worker still finishes; the retrying worker completes the same
    captions at the same moment: both succeed, the rows are written once."""
    setup = SqlCatalog(postgres_url)
    setup.add_corpus("c", "s", ["one", "two"])
    ids = [job.id for job in setup.claim("slow", 2, 60)]
    rows = [ReferenceRow(f"p{i}", i, "noun", "lemma", 0.5) for i in ids]
    slow, fast = SqlCatalog(postgres_url), SqlCatalog(postgres_url)

    def pause_before_commit(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        if statement.lstrip().upper().startswith("UPDATE CATALOG_STATE"):
            time.sleep(0.5)  # rows inserted, not yet committed

    event.listen(slow._engine, "before_cursor_execute", pause_before_commit)
    first = threading.Thread(target=slow.complete, args=("slow", ids, rows))
    first.start()
    time.sleep(0.2)
    fast.complete("fast", ids, rows)  # waits for the first, then finds the rows catalogued
    first.join()
    assert setup.reference_count() == 2 and setup.revision() == 1
    assert setup.status_counts()["done"] == 2
    for catalog in (setup, slow, fast):
        catalog.close()


def test_four_worker_processes_process_each_caption_once(
    postgres_url: str, single_worker: set[str], tmp_path: Path
) -> None:
    corpus = _corpus(tmp_path, [*CAPTIONS, "A boom"])  # "boom": the generator fails on it
    stores = [tmp_path / f"worker{k}" for k in range(WORKERS)]
    processes = [_start_worker(corpus, store, postgres_url, 60.0) for store in stores]
    results = [_finish(p) for p in processes]
    assert [rc for rc, _, _ in results] == [0] * WORKERS, [err for _, _, err in results]
    summaries = [json.loads(out) for _, out, _ in results]

    per_store = [_store_ids(store, postgres_url) for store in stores]
    assert sum(len(ids) for ids in per_store) == len(set().union(*per_store))  # disjoint
    assert set().union(*per_store) == single_worker
    assert sum(s["captions_processed"] for s in summaries) == len(CAPTIONS)
    assert sum(s["references_written"] for s in summaries) == len(single_worker)
    assert sum(s["failures"] for s in summaries) == 3  # "A boom": tried max_attempts times
    assert sum(1 for ids in per_store if ids) >= 2  # the workers really shared the work

    state = _catalog_state(postgres_url)
    assert state["captions"] == {"pending": 0, "leased": 0, "done": len(CAPTIONS), "failed": 1}
    assert state["points"] == single_worker
    attempts = state["attempts"]
    assert attempts.pop("A boom") == 3 and set(attempts.values()) == {1}  # each claimed once


def test_a_killed_workers_batch_is_retried_once_its_lease_expires(
    postgres_url: str, single_worker: set[str], tmp_path: Path
) -> None:
    corpus = _corpus(tmp_path, CAPTIONS)
    stores = [tmp_path / f"worker{k}" for k in range(WORKERS + 1)]
    kill = {"FOSSIL_TEST_KILL_AT": "after-upsert:2"}  # 2nd batch: vectors written, not catalogued
    doomed = _start_worker(corpus, stores[0], postgres_url, LEASE_SECONDS, kill)
    deadline = time.monotonic() + 60
    while _catalog_state_or_none(postgres_url) is None and doomed.poll() is None:
        assert time.monotonic() < deadline, "the first worker never claimed a batch"
        time.sleep(0.05)
    others = [_start_worker(corpus, s, postgres_url, LEASE_SECONDS) for s in stores[1:WORKERS]]
    killed_rc, _, killed_err = _finish(doomed)
    assert killed_rc == -signal.SIGKILL, killed_err
    results = [_finish(p) for p in others]
    assert [rc for rc, _, _ in results] == [0] * (WORKERS - 1), [err for _, _, err in results]

    # The others stop when nothing is claimable: they took the dead worker's batch if its
    # lease had expired by then, else a rerun takes it once it has.
    if _catalog_state(postgres_url)["captions"]["leased"]:
        time.sleep(LEASE_SECONDS + 0.2)
        rerun = _finish(_start_worker(corpus, stores[WORKERS], postgres_url, LEASE_SECONDS))
        assert rerun[0] == 0, rerun[2]

    state = _catalog_state(postgres_url)
    assert state["captions"] == {"pending": 0, "leased": 0, "done": len(CAPTIONS), "failed": 0}
    assert state["points"] == single_worker
    retried = [text for text, n in state["attempts"].items() if n == 2]
    assert len(retried) == BATCH and set(state["attempts"].values()) == {1, 2}
    per_store = [_store_ids(store, postgres_url) for store in stores if store.exists()]
    assert set().union(*per_store) == single_worker
    # Only the killed batch was written twice (its vectors by the dead worker, uncatalogued).
    overlap = sum(len(ids) for ids in per_store) - len(single_worker)
    assert overlap == 3 * BATCH


def _catalog_state_or_none(url: str) -> dict | None:
    """The catalog once some batch was claimed (None before: no tables yet, or none claimed)."""
    try:
        state = _catalog_state(url)
    except Exception:  # noqa: BLE001  (tables not created yet)
        return None
    counts = state["captions"]
    return state if counts["leased"] or counts["done"] else None
