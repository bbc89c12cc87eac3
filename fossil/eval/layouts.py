"""Where each benchmark keeps its files: mmsegmentation 0.27's converted layouts (design §9).

Paths, suffixes and ``reduce_zero_label`` follow mmseg 0.27's ``configs/_base_/datasets``
(``pascal_context_59.py``, ``coco-stuff164k.py``, ``ade20k.py``, ``cityscapes.py``) and its
dataset classes (``PascalContextDataset59``, ``COCOStuffDataset``, ``ADE20KDataset``,
``CityscapesDataset``).  Kept free of numpy/PIL so the CLI can list datasets cheaply; the
readers are in :mod:`fossil.eval.datasets`.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True)
class DatasetSpec:
    """Where one benchmark keeps its files, relative to the dataset root."""

    name: str  # CLI name
    classes_key: str  # key in fossil/data/benchmark_classes.json
    image_dir: str
    label_dir: str
    image_suffix: str
    label_suffix: str
    split_file: str | None  # list of image ids (Pascal Context); None: scan image_dir
    reduce_zero_label: bool
    preset: str  # Table 3 preset (fossil.config.PRESETS)
    root_hint: str  # what --data should point at

    def layout(self) -> str:
        """One line describing the expected layout, for error messages."""
        parts = [
            f"{self.image_dir}/**/*{self.image_suffix}",
            f"{self.label_dir}/**/*{self.label_suffix}",
        ]
        if self.split_file:
            parts.append(self.split_file)
        return f"{self.root_hint} containing " + ", ".join(parts)


SPECS: MappingProxyType[str, DatasetSpec] = MappingProxyType(
    {
        "pascal_context59": DatasetSpec(
            name="pascal_context59",
            classes_key="pascal_context59",
            image_dir="JPEGImages",
            label_dir="SegmentationClassContext",
            image_suffix=".jpg",
            label_suffix=".png",
            split_file="ImageSets/SegmentationContext/val.txt",
            reduce_zero_label=True,
            preset="context",
            root_hint="VOCdevkit/VOC2010",
        ),
        "coco_stuff171": DatasetSpec(
            name="coco_stuff171",
            classes_key="coco_stuff171",
            image_dir="images/val2017",
            label_dir="annotations/val2017",
            image_suffix=".jpg",
            label_suffix="_labelTrainIds.png",
            split_file=None,
            reduce_zero_label=False,
            preset="cocostuff",
            root_hint="coco_stuff164k",
        ),
        "ade20k": DatasetSpec(
            name="ade20k",
            classes_key="ade20k150",
            image_dir="images/validation",
            label_dir="annotations/validation",
            image_suffix=".jpg",
            label_suffix=".png",
            split_file=None,
            reduce_zero_label=True,
            preset="ade",
            root_hint="ADEChallengeData2016",
        ),
        "cityscapes": DatasetSpec(
            name="cityscapes",
            classes_key="cityscapes19",
            image_dir="leftImg8bit/val",
            label_dir="gtFine/val",
            image_suffix="_leftImg8bit.png",
            label_suffix="_gtFine_labelTrainIds.png",
            split_file=None,
            reduce_zero_label=False,
            preset="cityscapes",
            root_hint="cityscapes",
        ),
    }
)


def get_spec(name: str) -> DatasetSpec:
    try:
        return SPECS[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; valid datasets: {', '.join(SPECS)}") from None
