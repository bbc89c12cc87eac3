"""Crash safety (design §8): SIGKILL the ingest process at several points, rerun, and get exactly
the references of an uninterrupted run — no duplicates, no loss."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import fossil.pipeline.ingest as ingest_run
from fossil.cli import main
from fossil.db.open import open_collection
from tests.ingest.conftest import load_fake_models

ROOT = Path(__file__).resolve().parents[2]
CAPTIONS = [f"A dog number {i} near a tree and a car" for i in range(14)] + ["Nothing here"]


def _state(store: Path) -> dict:
    collection = open_collection(store)
    try:
        ids = sorted(p.id for p in collection.refs.iter_points())
        return {
            "ids": ids,
            "vectors": len(ids),
            "catalogued": collection.catalog.reference_count(),
            "captions": collection.catalog.status_counts(),
            "thumbnails": sorted(p.name for p in (store / "thumbnails").rglob("*") if p.is_file()),
        }
    finally:
        collection.close()


def _argv(corpus: Path, store: Path) -> list[str]:
    return ["ingest", str(corpus), "--store", str(store), "--batch-size", "3", "--no-progress"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("crash") / "captions.txt"
    path.write_text("\n".join(CAPTIONS) + "\n")
    return path


@pytest.fixture
def fake_models(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        ingest_run, "model_loaders", lambda profile, devices, workers: [load_fake_models] * workers
    )


@pytest.fixture(scope="module")
def uninterrupted(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    store = tmp_path_factory.mktemp("whole") / "store"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ingest_run, "model_loaders", lambda *_: [load_fake_models])
        assert main(_argv(corpus, store)) == 0
    return _state(store)


@pytest.mark.usefixtures("fake_models")
@pytest.mark.parametrize("kill_at", ["generate:2", "after-upsert:2", "after-complete:2"])
def test_sigkill_then_rerun_equals_an_uninterrupted_run(
    corpus: Path, uninterrupted: dict, tmp_path: Path, kill_at: str
) -> None:
    store = tmp_path / "store"
    killed = subprocess.run(
        [sys.executable, "-m", "tests.ingest.fake_cli", *_argv(corpus, store)],
        cwd=ROOT,
        env={**os.environ, "FOSSIL_TEST_KILL_AT": kill_at},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    after = _state(store)
    assert after["captions"]["done"] == (3 if kill_at != "after-complete:2" else 6)
    if kill_at != "after-complete:2":
        assert after["captions"]["leased"] == 3  # the batch being written
    if kill_at == "generate:2":  # generated: thumbnails on disk, nothing stored
        assert len(after["thumbnails"]) == 2 * after["vectors"] == 18
    if kill_at == "after-upsert:2":
        assert after["vectors"] > after["catalogued"]  # vectors written, catalog not
    else:
        assert after["vectors"] == after["catalogued"]
    assert main(_argv(corpus, store)) == 0
    rerun = _state(store)
    assert rerun == uninterrupted
    assert rerun["vectors"] == rerun["catalogued"] == 42
    assert rerun["captions"] == {"pending": 0, "leased": 0, "done": 15, "failed": 0}
