import json
from importlib import resources

import numpy as np
import pytest
from PIL import Image

from fossil.eval.datasets import open_dataset
from fossil.eval.layouts import SPECS, get_spec
from tests.eval.fakes import (
    LAYOUTS,
    NUM_CLASSES,
    class_ids,
    image_ids,
    stripes_label,
    write_dataset,
)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_reads_each_layout(tmp_path, name):
    ids = write_dataset(tmp_path, name)
    dataset = open_dataset(name, tmp_path)
    assert [s.name for s in dataset] == sorted(ids)
    assert dataset.num_classes == NUM_CLASSES[name] and not dataset.skipped
    sample = dataset.samples[0]
    image, label = dataset.load_image(sample), dataset.load_label(sample)
    assert image.shape == (36, 48, 3) and image.dtype == np.uint8
    kinds = {"2008_000000": (0, 1, 2), "aachen/aachen_000000_000000": (0, 1, 2)}[sample.name]
    np.testing.assert_array_equal(label, stripes_label(kinds, class_ids(name)))


def test_class_names_verbatim_from_package_data():
    text = resources.files("fossil").joinpath("data/benchmark_classes.json").read_text("utf-8")
    data = json.loads(text)
    assert {s.classes_key for s in SPECS.values()} == set(data)
    names = {s.name: data[s.classes_key]["classes"] for s in SPECS.values()}
    assert "bed " in names["ade20k"]  # the trailing space of mmseg 0.27's list is kept
    for spec in SPECS.values():
        assert data[spec.classes_key]["reduce_zero_label"] == spec.reduce_zero_label
        assert len(names[spec.name]) == NUM_CLASSES[spec.name]


def test_unknown_dataset_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown dataset 'voc'.*pascal_context59, coco_stuff171"):
        get_spec("voc")


def test_missing_ground_truth_is_skipped_and_reported(tmp_path):
    ids = write_dataset(tmp_path, "ade20k", without_label=(1,))
    dataset = open_dataset("ade20k", tmp_path)
    assert [s.name for s in dataset] == [ids[0], ids[2]]
    ((name, reason),) = dataset.skipped
    assert name == ids[1] and "annotations/validation" in reason and "not found" in reason


def test_split_listing_a_missing_image_is_skipped(tmp_path):
    write_dataset(tmp_path, "pascal_context59")
    split = tmp_path / "ImageSets/SegmentationContext/val.txt"
    split.write_text(split.read_text() + "2010_999999\n")
    dataset = open_dataset("pascal_context59", tmp_path)
    assert len(dataset) == 3
    assert dataset.skipped[0][0] == "2010_999999" and "image" in dataset.skipped[0][1]


@pytest.mark.parametrize(
    ("name", "bad", "shown"),
    [("coco_stuff171", 182, "182"), ("cityscapes", 33, "33"), ("ade20k", 151, "150")],
)
def test_labels_outside_the_class_range_are_an_error(tmp_path, name, bad, shown):
    write_dataset(tmp_path, name)
    dataset = open_dataset(name, tmp_path)
    label = np.zeros((36, 48), np.uint8)
    label[0, 0] = bad  # ADE: raw 151 → 150 after reduce_zero_label, one past the last class
    Image.fromarray(label).save(dataset.samples[0].label_path)
    with pytest.raises(ValueError, match=rf"{dataset.samples[0].label_path}.*labels {shown} "):
        dataset.load_label(dataset.samples[0])


def test_colour_label_map_is_an_error(tmp_path):
    write_dataset(tmp_path, "cityscapes")
    dataset = open_dataset("cityscapes", tmp_path)
    Image.new("RGB", (48, 36)).save(dataset.samples[0].label_path)
    with pytest.raises(ValueError, match="single-channel"):
        dataset.load_label(dataset.samples[0])


def test_wrong_layout_names_the_missing_folder(tmp_path):
    write_dataset(tmp_path / "ADEChallengeData2016", "ade20k")
    with pytest.raises(FileNotFoundError) as error:
        open_dataset("ade20k", tmp_path)
    message = str(error.value)
    assert f"folder {tmp_path / 'images/validation'} not found" in message
    assert "ADEChallengeData2016 containing images/validation/**/*.jpg" in message
    assert f"give the dataset root {tmp_path / 'ADEChallengeData2016'}" in message

    write_dataset(tmp_path / "voc", "pascal_context59")
    (tmp_path / "voc/ImageSets/SegmentationContext/val.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"file .*SegmentationContext/val.txt not found"):
        open_dataset("pascal_context59", tmp_path / "voc")
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        open_dataset("cityscapes", tmp_path / "nowhere")


def test_empty_dataset_is_an_error(tmp_path):
    image_pattern, label_pattern = LAYOUTS["coco_stuff171"]
    for pattern in (image_pattern, label_pattern):
        (tmp_path / pattern.split("{}")[0]).mkdir(parents=True)
    with pytest.raises(ValueError, match="no image with ground truth"):
        open_dataset("coco_stuff171", tmp_path)
    # only images without ground truth: still nothing to evaluate, and the reason is shown
    write_dataset(tmp_path, "coco_stuff171", without_label=(0, 1, 2))
    with pytest.raises(ValueError, match=r"3 skipped, first: ground truth .* not found"):
        open_dataset("coco_stuff171", tmp_path)


def test_cityscapes_names_keep_the_city(tmp_path):
    write_dataset(tmp_path, "cityscapes")
    names = [s.name for s in open_dataset("cityscapes", tmp_path)]
    assert names == sorted(image_ids("cityscapes", 3))
    assert all(n.split("/")[0] in ("aachen", "bremen") for n in names)
