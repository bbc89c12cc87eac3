"""``fossil corpus remove`` keeps captions another corpus holds, and deletes thumbnails only
under DIR/thumbnails, whatever the catalog says (issue 16, defects 10 and 11)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

import fossil.pipeline.ingest as ingest_run
from fossil.cli import main
from fossil.db.edge import EdgeStore
from tests.ingest.conftest import load_fake_models

SHARED = [f"A dog number {i} near a tree" for i in range(6)]
FIRST = SHARED + [f"A cat number {i} on a car" for i in range(4)]
SECOND = SHARED + [f"A ball number {i} in the grass" for i in range(3)]


@pytest.fixture(autouse=True)
def fake_models(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ingest_run, "model_loaders", lambda *_: [load_fake_models])


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def build(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    store = tmp_path / "store"
    for name, captions in (("first", FIRST), ("second", SECOND)):
        source = tmp_path / f"{name}.txt"
        source.write_text("\n".join(captions) + "\n")
        run(capsys, "ingest", str(source), "--store", str(store), "--no-progress")
    return store


def payload_corpora(store: Path) -> dict[str, int]:
    refs = EdgeStore(store / "qdrant")
    try:
        counts: dict[str, int] = {}
        for point in refs.iter_points():
            counts[point.payload["corpus"]] = counts.get(point.payload["corpus"], 0) + 1
        return counts
    finally:
        refs.close()


def test_removal_keeps_the_captions_another_corpus_holds(tmp_path: Path, capsys) -> None:
    store = build(tmp_path, capsys)
    listed = {c["name"]: c for c in run(capsys, "corpus", "list", "--store", str(store))}
    assert listed["first"]["captions"] == len(FIRST) and listed["second"]["captions"] == len(SECOND)
    removal = run(capsys, "corpus", "remove", "first", "--store", str(store), "--no-progress")
    # only the 4 cat captions were first's alone: 2 references each (cat, car)
    assert (removal["captions"], removal["references"], removal["kept"]) == (4, 8, len(SHARED))
    [second] = run(capsys, "corpus", "list", "--store", str(store))
    assert second["name"] == "second" and second["captions"] == len(SECOND)
    # 6 shared captions × (dog, tree) + 3 × (ball, grass): every point now second's
    assert second["references"] == removal["store_references"] == 18
    assert payload_corpora(store) == {"second": 18}
    again = run(capsys, "corpus", "remove", "second", "--store", str(store), "--no-progress")
    assert (again["captions"], again["kept"], again["store_references"]) == (len(SECOND), 0, 0)


def test_corpus_remove_help_says_captions_of_other_corpora_stay(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["corpus", "remove", "--help"])
    assert "no remaining corpus holds" in " ".join(capsys.readouterr().out.split())


def test_removal_never_deletes_a_file_outside_the_store(tmp_path: Path, capsys) -> None:
    store = build(tmp_path, capsys)
    victim = tmp_path / "precious.txt"
    victim.write_text("keep me")
    catalog = sqlite3.connect(store / "catalog.sqlite")
    with catalog:  # an edited catalog pointing a thumbnail at a file outside the store
        catalog.execute("UPDATE reference SET thumbnail = ?", (str(victim),))
        catalog.execute("UPDATE reference SET thumbnail = '../precious.txt' WHERE rowid % 2 = 0")
    catalog.close()
    thumbs = len(list((store / "thumbnails").rglob("*.webp")))
    removal = run(capsys, "corpus", "remove", "first", "--store", str(store), "--no-progress")
    assert victim.read_text() == "keep me"
    assert removal["thumbnails"] == 8  # its own, found from the point ids
    assert len(list((store / "thumbnails").rglob("*.webp"))) == thumbs - 8
