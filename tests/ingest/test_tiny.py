"""End to end with the real tiny models (``--models tiny``): spaCy nouns, the tiny SD
generator with heat-map masks, tiny DINOv2 and CLIP text, the embedded store."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

import fossil.models.loading as loading
from fossil.cli import main
from fossil.db.catalog import caption_hash
from fossil.db.open import open_collection
from fossil.records import point_id
from tests.conftest import models_loaded_once as loaded_once

CAPTIONS = [
    "A red dog running on the grass",
    "Two cats sleeping on a sofa",
    "A man riding a horse near a river",
    "Nothing at all",
    "An old car parked on a street",
]


@pytest.fixture(scope="module", autouse=True)
def tiny_models_loaded_once() -> Iterator[None]:
    with loaded_once():
        yield


def _ingest(capsys, corpus: Path, store: Path) -> dict:
    argv = ["ingest", str(corpus), "--store", str(store), "--models", "tiny", "--batch-size", "4"]
    assert main([*argv, "--no-progress", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_tiny_models_end_to_end(tmp_path: Path, capsys) -> None:
    corpus, store = tmp_path / "captions.txt", tmp_path / "store"
    corpus.write_text("\n".join(CAPTIONS) + "\n")
    summary = _ingest(capsys, corpus, store)
    assert summary["captions_processed"] == 5 and summary["captions_without_nouns"] == 1
    written = summary["references_written"]
    assert written == summary["store_references"] >= 6  # dog grass cats sofa man horse river car…
    bundle = loading.load_models("tiny")
    collection = open_collection(store)
    try:
        assert collection.meta.text_encoder == bundle.text.name
        assert collection.meta.generation_fingerprint == bundle.generator.fingerprint
        points = list(collection.refs.iter_points())
        rows = collection.catalog.lookup([p.id for p in points])
        for p in points:
            row = rows[p.id]
            assert row["noun"] in row["caption"] and 0 < row["mask_area"] <= 1
            assert p.text.shape == (bundle.text.dim,) and p.visual.shape == (bundle.dense.dim,)
            assert (store / row["thumbnail"]).is_file()
            nouns = bundle.nouns.parse([row["caption"]])[0]
            index = [n.text for n in nouns].index(row["noun"])
            assert p.id == point_id(
                caption_hash(row["caption"]), index, bundle.generator.fingerprint
            )
    finally:
        collection.close()
    assert _ingest(capsys, corpus, store)["references_written"] == 0
    more = tmp_path / "more.txt"
    more.write_text(CAPTIONS[0] + "\nA yellow bus\n")
    again = _ingest(capsys, more, store)
    assert again["captions_processed"] == 1 and again["store_references"] == written + 1
