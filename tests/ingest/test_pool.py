"""Several worker processes feeding one writer give the same references as one process."""

from __future__ import annotations

import json
import queue
import signal
from pathlib import Path

import pytest

import fossil.pipeline.ingest as ingest_run
from fossil.cli import main
from fossil.db.open import open_collection
from fossil.ingest.pool import _worker_main
from fossil.ingest.references import process_batch
from tests.ingest.conftest import (
    CAPTIONS,
    FAKE_META,
    load_broken_models,
    load_fake_models,
    make_jobs,
)

MORE = [f"A dog number {i} and a cat near a tree" for i in range(12)]


def test_two_worker_processes_feed_one_writer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        ingest_run, "model_loaders", lambda profile, devices, workers: [load_fake_models] * workers
    )
    corpus, store = tmp_path / "c.txt", tmp_path / "store"
    corpus.write_text("\n".join([*CAPTIONS, *MORE, "A boom"]) + "\n")
    argv = ["ingest", str(corpus), "--store", str(store), "--workers", "2", "--batch-size", "3"]
    assert main([*argv, "--no-progress", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    expected = process_batch(load_fake_models(), make_jobs(CAPTIONS + MORE))
    assert summary["captions_processed"] == 17 and summary["failures"] == 3
    assert summary["references_written"] == len(expected.points)
    assert summary["store_captions"] == {"pending": 0, "leased": 0, "done": 17, "failed": 1}
    collection = open_collection(store)
    try:
        ids = [p.id for p in collection.refs.iter_points()]
        assert sorted(ids) == sorted(p.id for p in expected.points)
        rows = collection.catalog.lookup(ids).values()
        assert all((store / row["thumbnail"]).is_file() for row in rows)
    finally:
        collection.close()


def _run_worker_in_process(load, tasks: list) -> list:
    """``_worker_main`` on plain queues in this process (restoring its SIGINT handler)."""
    inbox, outbox = queue.Queue(), queue.Queue()
    for task in [*tasks, None]:
        inbox.put(task)
    previous = signal.getsignal(signal.SIGINT)
    try:
        _worker_main(load, 1, inbox, outbox, 0.9, None)
    finally:
        signal.signal(signal.SIGINT, previous)
    return [outbox.get_nowait() for _ in range(outbox.qsize())]


def test_worker_reports_ready_then_results() -> None:
    messages = _run_worker_in_process(load_fake_models, [(7, make_jobs(CAPTIONS[:2]))])
    assert [(kind, seq) for kind, seq, _ in messages] == [("ready", -1), ("done", 7)]
    assert messages[0][2] == FAKE_META and messages[1][2].done == [1, 2]


def test_a_worker_that_cannot_load_its_models_is_reported() -> None:
    ((kind, seq, payload),) = _run_worker_in_process(load_broken_models, [])
    assert (kind, seq) == ("error", -1) and "OSError: no weights at /nowhere" in payload
