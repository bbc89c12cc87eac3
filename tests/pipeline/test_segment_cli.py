"""`fossil segment` end to end on a store built by `fossil ingest --models tiny` (random tiny
models: the labels mean nothing, but files, shapes, provenance and errors must hold)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fossil.cli import main
from fossil.db.open import open_collection
from tests.conftest import build_tiny_store


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_store(tmp_path_factory.mktemp("segment"))


@pytest.fixture
def image(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    pixels = np.zeros((90, 130, 3), np.uint8)
    pixels[:, :60] = (30, 160, 40)
    pixels[:, 60:] = (200, 200, 230)
    pixels = np.clip(pixels + rng.integers(-10, 11, pixels.shape), 0, 255).astype(np.uint8)
    path = tmp_path / "park.png"
    Image.fromarray(pixels).save(path)
    return path


def segment(store: Path, *args: str) -> int:
    return main(["segment", *args, "--store", str(store), "--models", "tiny", "--no-crf"])


def test_writes_overlay_labels_and_explanations(
    store: Path, image: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "out"
    assert (
        segment(store, str(image), "--concepts", "dog, car, tree", "--out", str(out), "--json") == 0
    )
    report = json.loads(capsys.readouterr().out)
    labels = np.asarray(Image.open(out / "park.labels.png"))
    assert labels.shape == (90, 130) and labels.max() < 3
    with Image.open(out / "park.overlay.png") as overlay:
        assert overlay.height >= 90 and overlay.width > 130  # the legend sits on the right
    assert json.loads((out / "park.json").read_text()) == report
    assert report["size"] == [130, 90]
    assert [c["concept"] for c in report["concepts"]] == ["dog", "car", "tree"]
    shares = [c["pixels"] for c in report["concepts"]]
    assert sum(shares) == pytest.approx(1.0)
    assert np.allclose(shares, np.bincount(labels.ravel(), minlength=3) / labels.size)
    assert report["regions"], "OpenCut proposed no region"
    collection = open_collection(store)
    try:
        stored = {p.id for p in collection.refs.iter_points()}
    finally:
        collection.close()
    for region in report["regions"]:
        assert region["concept"] in {"dog", "car", "tree"}
        assert 0 < len(region["references"]) <= 3
        assert {r["id"] for r in region["references"]} <= stored


def test_no_opencut_labels_every_patch_without_regions(
    store: Path, image: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "out"
    argv = [str(image), "--concepts", "dog, car", "--out", str(out), "--json", "--no-opencut"]
    assert segment(store, *argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["regions"] == []
    assert np.asarray(Image.open(out / "park.labels.png")).shape == (90, 130)


@pytest.mark.parametrize(
    ("concepts", "message"),
    [
        ("", "--concepts is empty"),
        ("dog,,car", "empty concept at position 2"),
        ("dog, Dog", "duplicate concepts"),
    ],  # fmt: skip
)
def test_bad_concepts_are_refused_before_anything_is_written(
    store: Path, image: Path, tmp_path: Path, capsys: pytest.CaptureFixture, concepts, message
) -> None:
    out = tmp_path / "out"
    assert segment(store, str(image), "--concepts", concepts, "--out", str(out)) == 1
    assert message in capsys.readouterr().err
    assert not any(out.glob("*.png"))


def test_unreadable_image_is_refused_before_any_model_loads(
    store: Path, image: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    out = tmp_path / "out"
    assert segment(store, str(image), str(broken), "--concepts", "dog", "--out", str(out)) == 1
    assert "broken.jpg" in capsys.readouterr().err
    assert not out.exists() or not any(out.iterdir())


def test_a_long_image_shows_per_crop_progress(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """90×900 → resized to 2048 wide (long-side cap), 205 high: 9 crops, each counted on
    stderr (a 20000×20 image ran 314 s without a word)."""
    path = tmp_path / "long.png"
    Image.fromarray(np.full((90, 900, 3), 120, np.uint8)).save(path)
    argv = [str(path), "--concepts", "dog, car", "--out", str(tmp_path / "out"), "--no-opencut"]
    assert segment(store, *argv) == 0
    err = capsys.readouterr().err
    assert "crops" in err and "9/9" in err
    assert segment(store, *argv, "--no-progress") == 0
    assert "crops" not in capsys.readouterr().err
