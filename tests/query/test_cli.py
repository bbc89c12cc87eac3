"""``fossil query`` on an embedded store filled with planted vectors (text encoder injected)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import fossil.commands._session as command_session
from fossil.cli import main
from fossil.db.open import open_collection
from fossil.models.loading import load_noun_parser
from tests.query.conftest import META, KeywordEncoder, fill_collection, planted_points

CONCEPTS = ["dog", "car"]


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    rng = np.random.default_rng(2)
    points, text, _ = planted_points(rng, CONCEPTS, per_concept=12, n_centres=2)
    root = tmp_path / "store"
    collection = open_collection(root, meta=META, create=True)
    items = [
        (f"a {p.payload['noun']} picture {i}", p.payload["noun"], p.text, p.visual)
        for i, p in enumerate(points)
    ]
    fill_collection(collection, "coco", items)
    collection.close()
    models = SimpleNamespace(
        text=KeywordEncoder(text),
        nouns=load_noun_parser("en_core_web_sm"),
        roles=frozenset({"text", "nouns"}),  # fossil query's (COMMAND_ROLES)
    )
    monkeypatch.setattr(command_session, "load_command_models", lambda *args, **kwargs: models)
    return root


def test_json_prints_references_and_prototypes(store: Path, capsys: pytest.CaptureFixture) -> None:
    assert (
        main(["query", "dog", "car", "--store", str(store), "--n", "10", "--k", "2", "--json"]) == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert (out["N"], out["K"]) == (10, 2)
    for concept, entry in zip(CONCEPTS, out["concepts"], strict=True):
        assert entry["concept"] == concept
        assert len(entry["references"]) == 10
        first = entry["references"][0]
        assert set(first) == {
            "id",
            "score",
            "caption",
            "noun",
            "lemma",
            "corpus",
            "thumbnail",
            "source",
        }
        assert first["noun"] == concept and first["caption"].startswith(f"a {concept} picture")
        prototypes = np.array(entry["prototypes"])
        assert prototypes.shape == (2, 48)
        np.testing.assert_allclose(np.linalg.norm(prototypes, axis=1), 1.0, atol=1e-4)


def test_table_grid_and_disk_cache(store: Path, tmp_path: Path, capsys: pytest.CaptureFixture):
    grid = tmp_path / "grid.png"
    args = ["query", "dog", "--store", str(store), "--n", "5", "--k", "2", "--grid", str(grid)]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "dog: 5 references, 2 prototypes" in captured.out and grid.is_file()
    assert list((store / "cache" / "prototypes").rglob("*.npz"))


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--n", "5", "--k", "9"], r"K \(9\) must be <= N \(5\)"),
        (["--n", "0", "--k", "1"], r"N \(0\) must be >= 1"),
        (["--preset", "cocostuff", "--k", "100"], r"K \(100\) must be <= N \(95\)"),
    ],
)
def test_bad_numbers(store: Path, capsys: pytest.CaptureFixture, flags: list[str], message: str):
    assert main(["query", "dog", "--store", str(store), *flags]) == 1
    assert re.search(message, capsys.readouterr().err)


def test_unknown_preset_lists_valid_ones(store: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        main(["query", "dog", "--store", str(store), "--preset", "coco"])
    assert "cocostuff" in capsys.readouterr().err


def test_empty_concept_and_missing_store(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["query", " ", "--store", str(tmp_path)]) == 1
    assert "is empty" in capsys.readouterr().err
    assert main(["query", "dog", "--store", str(tmp_path / "nowhere")]) == 1
    assert "fossil ingest" in capsys.readouterr().err


def _delete_rows(store: Path, where: str = "") -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(f"sqlite:///{store / 'catalog.sqlite'}")
    with engine.begin() as conn:
        if where:  # these captions' rows only
            ids = f"SELECT id FROM caption WHERE {where}"
            conn.execute(text(f"DELETE FROM reference WHERE caption_id IN ({ids})"))
            conn.execute(text(f"DELETE FROM caption_corpus WHERE caption_id IN ({ids})"))
            conn.execute(text(f"DELETE FROM caption WHERE {where}"))
            return
        for table in ("reference", "caption_corpus", "caption", "corpus"):
            conn.execute(text(f"DELETE FROM {table}"))
    engine.dispose()


def test_a_catalog_emptied_of_its_rows_is_refused_naming_the_repair(
    store: Path, capsys: pytest.CaptureFixture
) -> None:
    """Issue 25: it used to answer every reference as "(not catalogued)", exit 0."""
    _delete_rows(store)
    assert main(["query", "dog", "--store", str(store), "--n", "5", "--k", "2"]) == 1
    captured = capsys.readouterr()
    assert "(not catalogued)" not in captured.out
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and f"fossil store check --repair --store {store}" in lines[0]


def test_references_the_catalog_lacks_are_answered_with_one_line_naming_the_repair(
    store: Path, capsys: pytest.CaptureFixture
) -> None:
    """Some rows lost (an older catalog restored): the answer stands — vectors and payloads
    are intact — and stderr says how many references lack their provenance and the fix."""
    _delete_rows(store, "text LIKE 'a dog picture 1%'")  # 1, 10, 11 of the 12 dogs
    argv = ["query", "dog", "--store", str(store), "--n", "12", "--k", "2", "--top", "12"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "(not catalogued)" in captured.out
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "3 of the 12 references retrieved are not in the catalog" in lines[0]
    assert f"fossil store check --repair --store {store}" in lines[0]
