"""The readers' instance mode (``read_labelled(..., unit="instance")``, issue 23): one region
per labelme shape or group_id, per COCO annotation, per VOC SegmentationObject object."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fossil.ingest.labelled import LabelledError, read_labelled
from tests.ingest.labelled_files import (
    H,
    W,
    box,
    coco_json,
    labelme_json,
    photo,
    polygon,
    rectangle,
    rle_encode,
    save_image,
    voc_folder,
)


def regions_of(labelled_photo) -> dict[tuple[str, str], np.ndarray]:
    _, regions, _ = labelled_photo.load()
    return {(region.name, region.instance): region.mask for region in regions}


def test_labelme_each_shape_or_group_is_an_instance(tmp_path: Path) -> None:
    shapes = [
        rectangle("person", 0, 0, 9, 9),  # shape 0: alone
        {**rectangle("person", 20, 0, 29, 9), "group_id": 4},  # shapes 1, 2: one person
        {**rectangle("person", 20, 20, 29, 29), "group_id": 4},
        {**rectangle("car", 40, 0, 49, 9), "group_id": 4},  # group 4 of another label
        rectangle("person", 5, 5, 14, 14),  # shape 4: over shape 0
        rectangle("car", 40, 0, 49, 9),  # shape 5: hides the group-4 car entirely
        polygon("__ignore__", [[0, 30], [59, 30], [59, 39], [0, 39]]),
    ]
    path = labelme_json(tmp_path / "set" / "a.json", shapes, image=photo(H, W))
    (by_class,) = read_labelled(path).photos
    assert by_class.classes == ("person", "car") and by_class.instances == ("", "")
    labelled = read_labelled(path, unit="instance")
    assert labelled.unit == "instance"
    (only,) = labelled.photos
    assert only.classes == ("person", "person", "person", "car")
    assert only.instances == ("shape 0", "group 4", "shape 4", "shape 5")
    masks = regions_of(only)
    # later shapes over earlier ones, as in class mode; the ignore polygon removed
    np.testing.assert_array_equal(masks["person", "shape 0"], box(0, 9, 0, 9) & ~box(5, 14, 5, 14))
    group = (box(0, 9, 20, 29) | box(20, 29, 20, 29)) & ~box(30, 39, 0, 59)
    np.testing.assert_array_equal(masks["person", "group 4"], group)
    np.testing.assert_array_equal(masks["person", "shape 4"], box(5, 14, 5, 14))
    np.testing.assert_array_equal(masks["car", "shape 5"], box(0, 9, 40, 49))
    assert any("group 4 ('car'): hidden by later shapes: skipped" in n for n in only.notes)
    # the instances' union is the class's region
    person = masks["person", "shape 0"] | masks["person", "group 4"] | masks["person", "shape 4"]
    np.testing.assert_array_equal(person, regions_of(by_class)["person", ""])
    (with_back,) = read_labelled(path, unit="instance", with_background=True).photos
    assert with_back.classes[0] == "_background_" and with_back.instances[0] == ""


def test_labelme_group_id_must_be_a_number_or_text(tmp_path: Path) -> None:
    shapes = [{**rectangle("person", 0, 0, 9, 9), "group_id": [1]}]
    path = labelme_json(tmp_path / "a.json", shapes, image=photo(H, W))
    with pytest.raises(LabelledError, match=r"shapes\[0\]: group_id \[1\] is not an integer"):
        read_labelled(path, unit="instance")


def test_coco_each_annotation_is_an_instance(tmp_path: Path) -> None:
    save_image(tmp_path / "p.png", photo(H, W))
    annotations = [
        {"image_id": 1, "category_id": 1, "segmentation": [[0, 0, 9, 0, 9, 9, 0, 9]], "id": 11},
        {  # overlaps the first person: COCO instances keep their own pixels
            "image_id": 1,
            "category_id": 1,
            "segmentation": {"size": [H, W], "counts": rle_encode(box(5, 14, 5, 14))},
            "id": 12,
        },
        {"image_id": 1, "category_id": 2, "segmentation": [[30, 0, 39, 0, 39, 9, 30, 9]], "id": 3},
        {"image_id": 1, "category_id": 3, "segmentation": [[0, 0, 59, 0, 59, 2, 0, 2]], "id": 4},
    ]
    images = [{"id": 1, "file_name": "p.png", "height": H, "width": W}]
    path = coco_json(tmp_path / "c.json", images, annotations, ["person", "car", "__ignore__"])
    (only,) = read_labelled(path, unit="instance").photos
    assert only.classes == ("person", "person", "car")
    assert only.instances == ("annotation 11", "annotation 12", "annotation 3")
    masks = regions_of(only)
    np.testing.assert_array_equal(masks["person", "annotation 11"], box(3, 9, 0, 9))
    np.testing.assert_array_equal(masks["person", "annotation 12"], box(5, 14, 5, 14))
    np.testing.assert_array_equal(masks["car", "annotation 3"], box(3, 9, 30, 39))
    annotations[1]["id"] = 11
    twice = coco_json(tmp_path / "d.json", images, annotations, ["person", "car", "__ignore__"])
    with pytest.raises(LabelledError, match="annotation 11: given twice for this image"):
        read_labelled(twice, unit="instance")


def _objects(root: Path, objects: np.ndarray, folder: str = "SegmentationObjectPNG") -> None:
    (root / folder).mkdir(parents=True, exist_ok=True)
    Image.fromarray(objects.astype(np.uint8)).save(root / folder / "x.png")


def test_voc_objects_are_the_instances(tmp_path: Path) -> None:
    label = np.zeros((H, W), np.uint8)
    objects = np.zeros((H, W), np.uint8)
    label[0:10, 0:10], objects[0:10, 0:10] = 1, 1  # cat, object 1
    label[0:10, 20:30], objects[0:10, 20:30] = 1, 2  # cat, object 2
    label[20:30, 0:10], objects[20:30, 0:10] = 2, 3  # dog, object 3
    label[9, :], objects[9, :] = 255, 255  # a VOC-style ignore border
    root = voc_folder(tmp_path / "voc", {"x": (photo(H, W), label)}, ["bg", "cat", "dog"])
    without = read_labelled(root, unit="instance")  # no SegmentationObject*/ yet
    assert without.unit == "class" and without.photos[0].classes == ("cat", "dog")
    assert any("VOC class PNGs carry no instances" in note for note in without.notes)
    _objects(root, objects)
    labelled = read_labelled(root, unit="instance")
    assert labelled.unit == "instance"
    (only,) = labelled.photos
    assert only.classes == ("cat", "cat", "dog")
    assert only.instances == ("object 1", "object 2", "object 3")
    masks = regions_of(only)
    np.testing.assert_array_equal(masks["cat", "object 1"], box(0, 8, 0, 9))
    np.testing.assert_array_equal(masks["cat", "object 2"], box(0, 8, 20, 29))
    np.testing.assert_array_equal(masks["dog", "object 3"], box(20, 29, 0, 9))
    assert read_labelled(root).photos[0].classes == ("cat", "dog")  # class mode ignores them
    objects[20:30, 0:10] = 2  # object 2 now spans a cat and a dog
    _objects(root, objects)
    with pytest.raises(LabelledError, match="object 2: its pixels have classes cat, dog"):
        read_labelled(root, unit="instance")


def test_voc_fallback_is_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    label = np.zeros((H, W), np.uint8)
    label[0:10, 0:10] = 1
    root = voc_folder(tmp_path / "voc", {"x": (photo(H, W), label)}, ["bg", "cat"])
    with caplog.at_level(logging.WARNING, logger="fossil.ingest.labelled"):
        read_labelled(root, unit="instance")
    assert "carry no instances" in caplog.text


def test_unknown_unit_is_refused(tmp_path: Path) -> None:
    path = labelme_json(tmp_path / "a.json", [rectangle("a", 0, 0, 9, 9)], image=photo(H, W))
    with pytest.raises(ValueError, match=r"unit \('object'\) must be one of class, instance"):
        read_labelled(path, unit="object")
