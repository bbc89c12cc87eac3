"""Labelled photos as references (issue 23, design §5.10): ``fossil ingest --labelled``.

A small VOC-style folder of drawn photos (flat-coloured shapes on a background) is ingested
with the fake ingest models (bookkeeping: ids, resume, corpus, payload, sources) and with
the tiny random models through the CLI (a kill at a random point, then a rerun)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fossil.cli import main
from fossil.config import RetrievalConfig
from fossil.db.open import open_collection
from fossil.ingest.labelled_refs import class_concept, item_key, photo_caption, set_concepts
from fossil.ingest.worker import KILL_POINTS
from fossil.pipeline.ingest import ingest_corpora
from fossil.pipeline.ingest_config import IngestOptions, StoreAddress
from fossil.pipeline.labelled import ingest_labelled, read_labelled_corpus
from fossil.query.engine import QueryEngine
from fossil.records import SOURCE_GENERATED, SOURCE_LABELLED
from tests.ingest.conftest import FakeModels

ROOT = Path(__file__).resolve().parents[2]
CLASSES = ["background", "diningtable", "dog", "pottedplant"]  # VOC spellings
COLOURS = {1: (150, 90, 40), 2: (230, 230, 230), 3: (40, 160, 40)}


def write_voc(root: Path, photos: int = 4, side: int = 32) -> Path:
    """A VOC-style folder of ``photos`` drawn photos: class-id PNGs (palette), 255 borders."""
    for sub in ("JPEGImages", "SegmentationClass"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "class_names.txt").write_text("\n".join(CLASSES) + "\n")
    rng = np.random.default_rng(0)
    for i in range(photos):
        label = np.zeros((side, side), np.uint8)
        for cls in (1, 2, 3):
            if (i + cls) % 3 == 0 and cls != 1:
                continue  # not every photo holds every class
            y, x = rng.integers(0, side // 2, size=2)
            label[y : y + side // 3, x : x + side // 3] = cls
        label[0, :] = 255  # ignore
        image = np.full((side, side, 3), 60, np.uint8)
        for cls, colour in COLOURS.items():
            image[label == cls] = colour
        Image.fromarray(image).save(root / "JPEGImages" / f"photo{i}.png")
        png = Image.fromarray(label, mode="L").convert("P")
        png.putpalette([v for c in range(256) for v in (c, c, c)])
        png.save(root / "SegmentationClass" / f"photo{i}.png")
    return root


def _state(store: Path) -> dict:
    collection = open_collection(store)
    try:
        points = sorted(collection.refs.iter_points(), key=lambda p: p.id)
        return {
            "ids": [p.id for p in points],
            "catalogued": collection.catalog.reference_count(),
            "captions": collection.catalog.status_counts(),
            "corpora": [c["name"] for c in collection.catalog.corpora()],
            "payloads": {p.id: p.payload for p in points},
            "thumbnails": sorted(
                p.name for p in (store / "thumbnails").glob("*/*.webp") if p.is_file()
            ),
        }
    finally:
        collection.close()


# -- names, keys, captions -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "concept"),
    [
        ("diningtable", "dining table"),  # COCO-Stuff spells it with a space
        ("dining table", "dining table"),
        ("Dining_Table", "dining table"),
        ("pottedPlant", "potted plant"),
        ("pottedplant", "potted plant"),
        ("tvmonitor", "tvmonitor"),  # no benchmark says "tv monitor": kept
        ("  Person ", "person"),
    ],
)
def test_class_names_meet_as_concepts(name: str, concept: str) -> None:
    assert class_concept(name) == concept


def test_a_set_spells_joined_names_as_its_spaced_siblings() -> None:
    assert set_concepts(["redcar", "red car", "dog"]) == {
        "redcar": "red car",
        "red car": "red car",
        "dog": "dog",
    }
    with pytest.raises(ValueError, match="comma"):
        class_concept("cat, dog")


def test_keys_and_captions() -> None:
    key = item_key("labelled:x", "a.json", "dog")
    assert len(key) == 64 and key == item_key("labelled:x", "a.json", "Dog")
    assert key != item_key("labelled:y", "a.json", "dog") != item_key("labelled:x", "b", "dog")
    assert photo_caption(["dog"]) == "a photo of a dog"
    assert photo_caption(["dog", "cat", "sofa"]) == "a photo of a dog, a cat and a sofa"


# -- ingest ----------------------------------------------------------------------------------
def test_labelled_ingest_writes_one_reference_per_photo_class_and_reruns_add_nothing(
    tmp_path: Path,
) -> None:
    voc = write_voc(tmp_path / "voc")
    labelled = read_labelled_corpus(voc, name="mine")
    assert labelled.corpus.name == "labelled:mine"
    expected = len(labelled.items)
    store = StoreAddress(tmp_path / "store")
    summary = ingest_labelled(store, labelled, FakeModels(), IngestOptions(batch_size=3))
    assert summary.stats.references == expected == summary.store_references
    first = _state(tmp_path / "store")
    assert first["corpora"] == ["labelled:mine"]
    assert len(first["thumbnails"]) == expected
    nouns = {p["noun"] for p in first["payloads"].values()}
    assert nouns <= {"dining table", "dog", "potted plant"} and "background" not in nouns
    for payload in first["payloads"].values():
        assert payload["source"] == SOURCE_LABELLED
        assert payload["corpus"] == "labelled:mine"
        assert payload["labelled_file"].startswith("SegmentationClass/photo")
        assert len(payload["caption_hash"]) == 64
        assert payload["caption"].startswith("a photo of a ")
        assert 0 < payload["mask_area"] < 1
    again = ingest_labelled(store, read_labelled_corpus(voc, name="mine"), FakeModels())
    assert again.stats.references == 0
    assert _state(tmp_path / "store") == first


def test_labelled_vre_is_eq4_on_the_ground_truth_mask(tmp_path: Path) -> None:
    from fossil.segment.pooling import region_pool

    voc = write_voc(tmp_path / "voc", photos=1)
    labelled = read_labelled_corpus(voc)
    ingest_labelled(StoreAddress(tmp_path / "store"), labelled, FakeModels())
    item = next(iter(labelled.items.values()))
    image, regions, _ = item.photo.load()
    mask = next(r.mask for r in regions if r.name == item.class_name)
    expected = region_pool(FakeModels().dense.features([image])[0], mask[None])[0]
    collection = open_collection(tmp_path / "store")
    try:
        point = next(
            p for p in collection.refs.iter_points() if p.payload["caption_hash"] == item.key
        )
        np.testing.assert_allclose(point.visual, expected, rtol=1e-5, atol=1e-6)
    finally:
        collection.close()


def test_background_only_when_asked(tmp_path: Path) -> None:
    voc = write_voc(tmp_path / "voc", photos=2)
    plain = read_labelled_corpus(voc)
    with_background = read_labelled_corpus(voc, with_background=True)
    concepts = {i.concept for i in with_background.items.values()}
    assert "background" in concepts
    assert "background" not in {i.concept for i in plain.items.values()}
    assert len(with_background.items) == len(plain.items) + 2


def test_labelled_and_generated_share_a_collection_and_retrieval_picks_a_source(
    tmp_path: Path,
) -> None:
    """A labelled-only store records no generator; generated references join it later; a
    query sees both, or one source (``RetrievalConfig.references``)."""
    from fossil.ingest.corpora import CorpusFile

    store = StoreAddress(tmp_path / "store")
    labelled = read_labelled_corpus(write_voc(tmp_path / "voc"), name="v")
    ingest_labelled(store, labelled, FakeModels())
    collection = open_collection(tmp_path / "store")
    assert collection.meta.generator == "" and collection.meta.dense_encoder == "fake-dense"
    collection.close()
    captions = CorpusFile("dogs", "memory", "text", ("a dog on a table", "a dog near a plant"))
    ingest_corpora(store, [captions], FakeModels())
    collection = open_collection(tmp_path / "store")
    try:
        assert collection.meta.generator == FakeModels().generator.name
        counts = {}
        for source in ("all", SOURCE_GENERATED, SOURCE_LABELLED):
            engine = QueryEngine(
                collection, FakeModels().text, RetrievalConfig(N=50, K=1, references=source)
            )
            refs = engine.query(["dog"])[0].references
            counts[source] = len(refs)
            if source != "all":
                assert {r.source for r in refs} == {source}
                labelled = source == SOURCE_LABELLED
                assert all(str(r.corpus).startswith("labelled:") == labelled for r in refs)
        assert counts["all"] == counts[SOURCE_GENERATED] + counts[SOURCE_LABELLED]
        assert counts[SOURCE_GENERATED] > 0 and counts[SOURCE_LABELLED] > 0
    finally:
        collection.close()


# -- the CLI: corpus list/remove, store check, a kill at a random point ------------------------
def _argv(voc: Path, store: Path) -> list[str]:
    return [
        "ingest", "--labelled", str(voc), "--name", "drawn", "--store", str(store),
        "--models", "tiny", "--batch-size", "2", "--no-progress",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def voc_and_whole(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("labelled-cli")
    voc = write_voc(root / "voc", photos=5)
    assert main(_argv(voc, root / "store")) == 0
    return voc, _state(root / "store")


def test_cli_corpus_list_check_and_remove(
    voc_and_whole: tuple[Path, dict], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    voc, whole = voc_and_whole
    store = tmp_path / "store"
    assert main(_argv(voc, store)) == 0
    assert _state(store)["ids"] == whole["ids"]
    capsys.readouterr()
    assert main(["corpus", "list", "--store", str(store)]) == 0
    assert "labelled:drawn" in capsys.readouterr().out
    assert main(["store", "check", "--store", str(store)]) == 0
    assert main(["corpus", "remove", "labelled:drawn", "--store", str(store)]) == 0
    after = _state(store)
    assert after["ids"] == [] and after["corpora"] == [] and after["thumbnails"] == []


def test_repair_rebuilds_an_emptied_catalog_of_labelled_references(
    voc_and_whole: tuple[Path, dict], tmp_path: Path
) -> None:
    """The caption keys come back from the payloads (``caption_hash``): a rerun after the
    repair adds nothing."""
    import sqlite3

    voc, whole = voc_and_whole
    store = tmp_path / "store"
    assert main(_argv(voc, store)) == 0
    with sqlite3.connect(store / "catalog.sqlite") as conn:
        for table in ("reference", "caption_corpus", "caption", "corpus"):
            conn.execute(f"delete from {table}")
    conn.close()
    assert main(["store", "check", "--repair", "--store", str(store)]) == 0
    repaired = _state(store)
    assert repaired["ids"] == whole["ids"] and repaired["catalogued"] == len(whole["ids"])
    assert repaired["corpora"] == ["labelled:drawn"]
    assert main(_argv(voc, store)) == 0
    assert _state(store)["ids"] == whole["ids"]
    assert _state(store)["captions"]["done"] == len(whole["ids"])


@pytest.mark.parametrize("seed", [0, 1])
def test_a_kill_at_a_random_point_resumes_with_the_same_ids(
    voc_and_whole: tuple[Path, dict], tmp_path: Path, seed: int
) -> None:
    """SIGKILL at a write point and batch drawn at random (``FOSSIL_TEST_KILL_AT``); the
    rerun ends with exactly the uninterrupted run's points, catalog and thumbnails."""
    voc, whole = voc_and_whole
    store = tmp_path / "store"
    rng = random.Random(seed)
    point = rng.choice([p for p in KILL_POINTS if p != "delete-batch"])
    env = {**os.environ, "FOSSIL_TEST_KILL_AT": f"{point}:{rng.randint(1, 3)}"}
    argv = [sys.executable, "-m", "fossil.cli", *_argv(voc, store)]
    killed = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert _state(store)["captions"]["done"] < len(whole["ids"])
    assert main(_argv(voc, store)) == 0
    rerun = _state(store)
    assert rerun == whole
    assert rerun["captions"]["done"] == len(whole["ids"])


def test_cli_refuses_clashing_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = str(tmp_path / "store")
    assert main(["ingest", "x.txt", "--labelled", "voc", "--store", store]) == 1
    assert "drop SOURCE" in capsys.readouterr().err
    assert main(["ingest", "x.txt", "--with-background", "--store", store]) == 1
    assert "only apply to --labelled" in capsys.readouterr().err
    assert not (tmp_path / "store").exists()
