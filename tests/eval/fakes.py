"""Tiny benchmarks written on the fly in each mmseg layout, and a colour-based predictor.

Every image is 48×36 with three vertical stripes of 16 columns, one class colour each.  The
ground truth ignores a band of 6 columns around each stripe boundary (columns 13–18 and
29–34), where JPEG and bilinear resizing mix colours; so the valid columns per stripe are
13, 10 and 13.  The predictor labels each pixel with the class of the nearest known colour.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

WIDTH, HEIGHT = 48, 36
BANDS = (range(13, 19), range(29, 35))  # ignored columns around the boundaries at 16, 32
VALID_COLUMNS = (13, 10, 13)  # per stripe, after removing the bands
COLOURS = ((230, 30, 30), (30, 200, 30), (30, 30, 230), (230, 230, 30))  # stripe kinds 0–3


def stripes_image(kinds: tuple[int, int, int]) -> np.ndarray:
    image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    for index, kind in enumerate(kinds):
        image[:, 16 * index : 16 * (index + 1)] = COLOURS[kind]
    return image


def stripes_label(kinds: tuple[int, int, int], class_ids: tuple[int, ...]) -> np.ndarray:
    """(H, W) dataset labels (after reduce_zero_label), 255 in the bands."""
    label = np.zeros((HEIGHT, WIDTH), np.uint8)
    for index, kind in enumerate(kinds):
        label[:, 16 * index : 16 * (index + 1)] = class_ids[kind]
    for band in BANDS:
        label[:, band.start : band.stop] = 255
    return label


def encode_label(label: np.ndarray, reduce_zero_label: bool) -> np.ndarray:
    """Inverse of reduce_zero_label: what the PNG on disk holds."""
    if not reduce_zero_label:
        return label
    return np.where(label == 255, 0, label.astype(np.int32) + 1).astype(np.uint8)


LAYOUTS = {
    # name: (image path, label path) patterns for an image id; split file or None
    "pascal_context59": ("JPEGImages/{}.jpg", "SegmentationClassContext/{}.png"),
    "coco_stuff171": ("images/val2017/{}.jpg", "annotations/val2017/{}_labelTrainIds.png"),
    "ade20k": ("images/validation/{}.jpg", "annotations/validation/{}.png"),
    "cityscapes": (
        "leftImg8bit/val/{}_leftImg8bit.png",
        "gtFine/val/{}_gtFine_labelTrainIds.png",
    ),
}
REDUCE = {"pascal_context59": True, "coco_stuff171": False, "ade20k": True, "cityscapes": False}
NUM_CLASSES = {"pascal_context59": 59, "coco_stuff171": 171, "ade20k": 150, "cityscapes": 19}
# The three images of every fake benchmark (stripe kinds left to right).
IMAGES = ((0, 1, 2), (1, 2, 3), (0, 3, 3))


def image_ids(name: str, count: int) -> list[str]:
    if name == "cityscapes":
        cities = ("aachen", "bremen")
        return [f"{cities[i % 2]}/{cities[i % 2]}_000000_{i:06d}" for i in range(count)]
    return [f"2008_{i:06d}" for i in range(count)]


def class_ids(name: str) -> tuple[int, ...]:
    """Dataset class of each stripe kind; the last is the dataset's last class."""
    return (0, 5, 7, NUM_CLASSES[name] - 1)


def write_dataset(
    root: Path,
    name: str,
    images: tuple[tuple[int, int, int], ...] = IMAGES,
    *,
    without_label: tuple[int, ...] = (),
) -> list[str]:
    """Write a fake ``name`` benchmark under ``root``; returns the image ids."""
    image_pattern, label_pattern = LAYOUTS[name]
    ids = image_ids(name, len(images))
    for index, (image_id, kinds) in enumerate(zip(ids, images, strict=True)):
        image_path = root / image_pattern.format(image_id)
        image_path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(stripes_image(kinds)).save(image_path, quality=95)
        if index in without_label:
            continue
        label = encode_label(stripes_label(kinds, class_ids(name)), REDUCE[name])
        label_path = root / label_pattern.format(image_id)
        label_path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(label).save(label_path)
    for folder in (image_pattern, label_pattern):
        (root / folder.split("{}")[0]).mkdir(parents=True, exist_ok=True)
    if name == "pascal_context59":
        split = root / "ImageSets/SegmentationContext/val.txt"
        split.parent.mkdir(parents=True, exist_ok=True)
        split.write_text("".join(f"{i}\n" for i in ids))
    return ids


class ColourPredictor:
    """Scores each class by closeness to its colour; ``confuse`` maps stripe kinds to the
    kind predicted instead (kind 2 is predicted as kind 1 by default)."""

    def __init__(self, name: str, confuse: dict[int, int] | None = None) -> None:
        self.num_classes = NUM_CLASSES[name]
        self.ids = class_ids(name)
        self.confuse = {2: 1} if confuse is None else confuse
        self.calls = 0

    def scores(self, crop: np.ndarray) -> np.ndarray:
        self.calls += 1
        out = np.full((self.num_classes, *crop.shape[:2]), -1e6, np.float32)
        pixels = crop.astype(np.float32)
        for kind, colour in enumerate(COLOURS):
            target = self.ids[self.confuse.get(kind, kind)]
            closeness = -np.square(pixels - np.array(colour, np.float32)).sum(-1)
            out[target] = np.maximum(out[target], closeness)
        return out


def expected_counts() -> dict[int, tuple[int, int, int]]:
    """By hand, per stripe kind: (intersection, predicted area, labelled area) over IMAGES
    with kind 2 predicted as kind 1, in pixels."""
    a, b, c = (n * HEIGHT for n in VALID_COLUMNS)
    # image (0,1,2): 0 → 0; 1 → 1; 2 → predicted 1
    # image (1,2,3): 1 → 1; 2 → predicted 1; 3 → 3
    # image (0,3,3): 0 → 0; 3 → 3; 3 → 3
    return {
        0: (a + a, a + a, a + a),
        1: (b + a, b + c + a + b, b + a),
        2: (0, 0, c + b),
        3: (c + b + c, c + b + c, c + b + c),
    }


EXPECTED_IOU = {0: 1.0, 1: 0.5, 2: 0.0, 3: 1.0}  # from expected_counts
EXPECTED_MIOU = 0.625
EXPECTED_AACC = 85 / 108  # (26 + 23 + 0 + 36) / (26 + 23 + 23 + 36) valid columns
