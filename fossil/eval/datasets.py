"""Readers for the four benchmarks in mmsegmentation 0.27's converted directory layouts (design §9).

Layouts (paths relative to ``--data``; see :mod:`fossil.eval.layouts`):

- ``pascal_context59`` (``VOCdevkit/VOC2010``): ``JPEGImages/<id>.jpg`` →
  ``SegmentationClassContext/<id>.png``, ids from ``ImageSets/SegmentationContext/val.txt``;
  reduce_zero_label.
- ``coco_stuff171`` (``coco_stuff164k``): ``images/val2017/<id>.jpg`` →
  ``annotations/val2017/<id>_labelTrainIds.png``.
- ``ade20k`` (``ADEChallengeData2016``): ``images/validation/<id>.jpg`` →
  ``annotations/validation/<id>.png``; reduce_zero_label.
- ``cityscapes``: ``leftImg8bit/val/<city>/<id>_leftImg8bit.png`` →
  ``gtFine/val/<city>/<id>_gtFine_labelTrainIds.png``.

As in mmseg (``mmcv.scandir(..., recursive=True)``), image folders are scanned recursively
and sorted; the ground truth path is the image path with the image suffix replaced.

Label conventions: 255 is ignored.  ``reduce_zero_label`` maps 0 → 255 and every other
label ``l`` → ``l − 1`` (255 stays 255), exactly as mmseg's ``LoadAnnotations``.  A label
outside ``[0, C)`` after that (other than 255) is an error naming the file: it almost always
means unconverted annotations (raw COCO-Stuff ids up to 182, Cityscapes ``labelIds`` up to
33) rather than the converted ``*_labelTrainIds.png``.  mmseg would silently drop such pixels
from every count; we refuse instead, so a wrong folder cannot produce a plausible number.

Images listed (or found) without a ground truth file are skipped and reported in
:attr:`SegmentationDataset.skipped`; a dataset left with no evaluable image is an error.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image

from fossil.errors import naming
from fossil.eval.layouts import DatasetSpec, get_spec

IGNORE_INDEX = 255


def load_class_names(spec: DatasetSpec) -> tuple[str, ...]:
    """The mmseg 0.27 class names of ``spec``, verbatim (ADE's ``"bed "`` keeps its space)."""
    text = resources.files("fossil").joinpath("data/benchmark_classes.json").read_text("utf-8")
    return tuple(json.loads(text)[spec.classes_key]["classes"])


@dataclass(frozen=True)
class Sample:
    """One evaluable image; ``name`` is its path under the image folder without suffix."""

    name: str
    image_path: Path
    label_path: Path


@dataclass(frozen=True)
class SegmentationDataset:
    """A benchmark split on disk: evaluable samples, class names and what was skipped."""

    spec: DatasetSpec
    root: Path
    class_names: tuple[str, ...]
    samples: tuple[Sample, ...]
    skipped: tuple[tuple[str, str], ...]  # (image name, reason)
    title: str = ""  # what reports call it, when not the benchmark of its layout

    @property
    def name(self) -> str:
        return self.title or self.spec.name

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return len(self.samples)

    def __iter__(self) -> Iterator[Sample]:
        return iter(self.samples)

    def load_image(self, sample: Sample) -> np.ndarray:
        """(H, W, 3) uint8 RGB (grey or palette images are converted)."""
        try:
            with Image.open(sample.image_path) as image:
                return np.asarray(image.convert("RGB"))
        except OSError as error:
            raise ValueError(f"cannot read image {sample.image_path}: {error}") from error

    def load_label(self, sample: Sample) -> np.ndarray:
        """(H, W) uint8 labels in ``[0, C)`` or 255, after ``reduce_zero_label``."""
        try:
            with Image.open(sample.label_path) as image:
                raw = np.asarray(image)  # palette PNGs give their indices, as mmseg's pillow
        except OSError as error:
            raise ValueError(f"cannot read label map {sample.label_path}: {error}") from error
        if raw.ndim != 2:
            raise ValueError(
                f"label map {sample.label_path} has shape {raw.shape}; expected a "
                "single-channel (H, W) PNG of class ids (the converted annotations)"
            )
        label = reduce_zero_label(raw) if self.spec.reduce_zero_label else raw
        check_label_range(label, self.num_classes, sample.label_path)
        return label.astype(np.uint8)


def reduce_zero_label(raw: np.ndarray) -> np.ndarray:
    """mmseg's ``reduce_zero_label``: 0 → 255, ``l`` → ``l − 1``, 255 stays 255 (int32)."""
    label = raw.astype(np.int32) - 1
    label[raw == 0] = IGNORE_INDEX
    label[raw == IGNORE_INDEX] = IGNORE_INDEX
    return label


def check_label_range(label: np.ndarray, num_classes: int, source: object) -> None:
    """Raise when ``label`` holds a value outside ``[0, num_classes)`` other than 255."""
    values = np.unique(label)
    bad = values[((values < 0) | (values >= num_classes)) & (values != IGNORE_INDEX)]
    if bad.size:
        shown = ", ".join(str(int(v)) for v in bad[:10]) + (" …" if bad.size > 10 else "")
        raise ValueError(
            f"label map {source} holds labels {shown} outside [0, {num_classes}) and not "
            f"{IGNORE_INDEX} (ignored); are these the converted annotations (mmseg's "
            "*_labelTrainIds.png for COCO-Stuff and Cityscapes)?"
        )


def open_dataset(
    name: str, root: Path | str, class_names: Sequence[str] | None = None, title: str = ""
) -> SegmentationDataset:
    """Check ``root`` has the layout of dataset ``name`` and list its evaluable samples.

    ``class_names``: the concepts to evaluate with instead of the benchmark's own (label
    ``i`` after ``reduce_zero_label`` is ``class_names[i]``), for datasets that share a
    benchmark's layout but not its classes; ``title``: what reports then call the dataset
    (default: the benchmark's name)."""
    spec = get_spec(name)
    names = load_class_names(spec) if class_names is None else _check_names(class_names)
    root = Path(root)
    if not root.is_dir():
        message = f"{spec.name}: the dataset root {root} is not a folder; expected {spec.layout()}"
        raise naming(FileNotFoundError(message), "root")
    for part in (spec.image_dir, spec.label_dir):
        _require(root, part, spec, is_dir=True)
    if spec.split_file:
        _require(root, spec.split_file, spec, is_dir=False)
        candidates = _split_images(root, spec)
    else:
        candidates = _scan_images(root, spec)
    samples: list[Sample] = []
    skipped: list[tuple[str, str]] = []
    for image_name, image_path in candidates:
        label_path = root / spec.label_dir / f"{image_name}{spec.label_suffix}"
        if not image_path.is_file():
            skipped.append((image_name, f"image {image_path} not found"))
        elif not label_path.is_file():
            skipped.append((image_name, f"ground truth {label_path} not found"))
        else:
            samples.append(Sample(image_name, image_path, label_path))
    if not samples:
        found = f"; {len(skipped)} skipped, first: {skipped[0][1]}" if skipped else ""
        raise ValueError(
            f"{spec.name}: no image with ground truth under {root} (expected "
            f"{spec.layout()}{found})"
        )
    return SegmentationDataset(spec, root, names, tuple(samples), tuple(skipped), title)


def _check_names(class_names: Sequence[str]) -> tuple[str, ...]:
    names = tuple(class_names)
    if not names or any(not isinstance(c, str) or not c.strip() for c in names):
        raise ValueError(f"class names must be non-empty strings, got {list(names)[:5]}")
    duplicates = sorted({c for c in names if names.count(c) > 1})
    if duplicates:
        raise ValueError(f"class names hold duplicates: {duplicates}")
    return names


def _split_images(root: Path, spec: DatasetSpec) -> list[tuple[str, Path]]:
    assert spec.split_file is not None
    ids = (root / spec.split_file).read_text("utf-8").split()
    return [(i, root / spec.image_dir / f"{i}{spec.image_suffix}") for i in ids]


def _scan_images(root: Path, spec: DatasetSpec) -> list[tuple[str, Path]]:
    folder = root / spec.image_dir
    paths = sorted(p for p in folder.rglob(f"*{spec.image_suffix}") if p.is_file())
    return [(p.relative_to(folder).as_posix()[: -len(spec.image_suffix)], p) for p in paths]


def _require(root: Path, part: str, spec: DatasetSpec, *, is_dir: bool) -> None:
    path = root / part
    if path.is_dir() if is_dir else path.is_file():
        return
    kind = "folder" if is_dir else "file"
    hint = ""
    nested = sorted(d for d in root.iterdir() if d.is_dir() and (d / part).exists())
    if nested:
        hint = f"; found it under {nested[0]}: give the dataset root {nested[0]}"
    message = (
        f"{spec.name}: {kind} {path} not found; expected the mmseg layout {spec.layout()}{hint}"
    )
    raise naming(FileNotFoundError(message), "root")
