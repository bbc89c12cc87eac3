"""``fossil ingest --concepts`` and ``fossil corpus list|remove`` end to end (fake models, the
embedded store): removal restores the previous collection exactly, also after a SIGKILL in
the middle of it and a rerun."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import fossil.pipeline.ingest as ingest_run
from fossil.cli import main
from fossil.config import RetrievalConfig
from fossil.db.open import open_collection
from tests.ingest.conftest import load_fake_models
from tests.ingest.test_crash import ROOT, _state

CAPTIONS = [f"A dog number {i} near a tree" for i in range(6)] + ["A cat on a car"]
CONCEPT = "concept:solar panel"


@pytest.fixture(autouse=True)
def fake_models(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ingest_run, "model_loaders", lambda *_: [load_fake_models])


def _run(capsys, *argv: str) -> dict:
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``before``: a store from a caption file; ``after``: the same plus the concept corpus."""
    root = tmp_path_factory.mktemp("removal")
    corpus = root / "captions.txt"
    corpus.write_text("\n".join(CAPTIONS) + "\n")
    before, after = root / "before", root / "after"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ingest_run, "model_loaders", lambda *_: [load_fake_models])
        argv = ["--batch-size", "3", "--no-progress"]
        assert main(["ingest", str(corpus), "--store", str(before), *argv]) == 0
        shutil.copytree(before, after)
        concepts = ["--concepts", "solar panel", "--per-concept", "5"]
        assert main(["ingest", "--store", str(after), *concepts, *argv]) == 0
    return {"before": before, "after": after}


def test_concepts_make_a_named_corpus_and_a_rerun_generates_nothing(
    stores: dict[str, Path], tmp_path: Path, capsys
) -> None:
    store = tmp_path / "store"
    shutil.copytree(stores["after"], store)
    listed = {c["name"]: c for c in _run(capsys, "corpus", "list", "--store", str(store))}
    assert listed[CONCEPT]["captions"] == 5 and listed[CONCEPT]["references"] == 5
    assert listed["captions"]["references"] == _state(stores["before"])["vectors"]
    rerun = _run(
        capsys,
        "ingest", "--store", str(store), "--concepts", "solar panel", "--per-concept", "5",
        "--no-progress",
    )  # fmt: skip
    assert rerun["captions_processed"] == 0 and rerun["corpora"][0]["added"] == 0
    # the default --per-concept (N) keeps the 5 captions and adds only the rest
    more = _run(
        capsys, "ingest", "--store", str(store), "--concepts", "Solar Panel", "--no-progress"
    )
    N = RetrievalConfig().N
    assert (more["corpora"][0]["duplicates"], more["corpora"][0]["added"]) == (5, N - 5)
    assert more["captions_processed"] == N - 5


def test_remove_restores_the_previous_collection_exactly(
    stores: dict[str, Path], tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fossil.query.routing as routing

    monkeypatch.setattr(routing, "ROUTE_MIN_REFERENCES", 1)  # refresh the index on writes
    store = tmp_path / "store"
    shutil.copytree(stores["after"], store)
    before = _state(stores["before"])
    assert _state(store)["vectors"] == before["vectors"] + 5
    report = _run(capsys, "corpus", "remove", CONCEPT, "--store", str(store), "--no-progress")
    assert report["references"] == 5 and report["captions"] == 5 and report["thumbnails"] == 5
    assert report["store_references"] == before["vectors"] and not report["resumed"]
    assert _state(store) == before
    index = routing.load_lemma_index(store / routing.LEMMA_INDEX_FILE, "fake-text")
    assert index is not None and "solar panel" not in index[0].lemmas  # routing forgot it
    assert main(["corpus", "remove", CONCEPT, "--store", str(store)]) == 1  # gone
    assert "no corpus named" in capsys.readouterr().err


def test_remove_killed_midway_then_rerun(stores: dict[str, Path], tmp_path: Path, capsys) -> None:
    store = tmp_path / "store"
    shutil.copytree(stores["after"], store)
    env = {**os.environ, "FOSSIL_TEST_KILL_AT": "delete-batch:1", "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-m", "fossil.cli", "corpus", "remove", CONCEPT, "--store", str(store)]
    killed = subprocess.run([*argv, "--batch-size", "2", "--no-progress"], env=env, check=False)
    assert killed.returncode == -signal.SIGKILL
    half = _state(store)
    assert half["catalogued"] == _state(stores["after"])["catalogued"]  # catalog untouched
    assert half["vectors"] == _state(stores["after"])["vectors"] - 2  # one batch deleted
    [marked] = [c for c in _run(capsys, "corpus", "list", "--store", str(store)) if c["removing"]]
    assert marked["name"] == CONCEPT
    # nothing of a corpus being removed is claimed, and it cannot be added to meanwhile
    assert main(["ingest", "--store", str(store), "--concepts", "solar panel"]) == 1
    assert "being removed" in capsys.readouterr().err
    report = _run(capsys, "corpus", "remove", CONCEPT, "--store", str(store), "--no-progress")
    assert report["resumed"] and report["references"] == 5
    assert _state(store) == _state(stores["before"])


def test_bad_input(stores: dict[str, Path], capsys) -> None:
    store = str(stores["after"])
    for concepts, message in [
        ("", "--concepts is empty"),
        ("dog, , cat", "empty concept at position 2"),
        ("x" * 300, "at most 80 characters"),
    ]:
        assert main(["ingest", "--store", store, "--concepts", concepts]) == 1
        assert message in capsys.readouterr().err
    argv = ["ingest", "--store", store, "--concepts", "axolotl", "--per-concept", "0"]
    assert main(argv) == 1
    assert "--per-concept (0) must be >= 1" in capsys.readouterr().err
    assert _state(stores["after"])["vectors"] == _state(stores["before"])["vectors"] + 5


def test_a_concept_without_a_noun_is_ingested_as_a_phrase_with_a_warning(
    stores: dict[str, Path], tmp_path: Path, capsys, caplog
) -> None:
    store = tmp_path / "store"
    shutil.copytree(stores["before"], store)
    argv = ["ingest", "--store", str(store), "--concepts", "running", "--per-concept", "3"]
    with caplog.at_level(logging.WARNING, logger="fossil.ingest.concepts"):
        summary = _run(capsys, *argv, "--no-progress")
    assert "concept 'running' parses to no noun: ingested as the phrase" in caplog.text
    assert summary["references_written"] == 3
    collection = open_collection(store)
    try:
        assert ("running", 3) in collection.catalog.top_lemmas(None)
    finally:
        collection.close()


def test_ingest_brings_the_saved_lemma_index_up_to_date(
    stores: dict[str, Path], tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fossil.query.routing as routing

    monkeypatch.setattr(routing, "ROUTE_MIN_REFERENCES", 1)  # as if the store were large
    store = tmp_path / "store"
    shutil.copytree(stores["before"], store)
    argv = ["ingest", "--store", str(store), "--concepts", "axolotl", "--per-concept", "2"]
    _run(capsys, *argv, "--no-progress")
    saved = routing.load_lemma_index(store / routing.LEMMA_INDEX_FILE, "fake-text")
    collection = open_collection(store)
    try:
        assert saved is not None and saved[1] == collection.catalog.revision()
        assert dict(zip(saved[0].lemmas, saved[0].counts.tolist(), strict=True))["axolotl"] == 2
    finally:
        collection.close()
