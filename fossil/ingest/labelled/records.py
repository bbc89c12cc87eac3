"""The records the labelled-photo readers return, and their one error type."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np


class LabelledError(ValueError):
    """Bad labelled input. ``str(error)`` is ONE line: ``"<file>: <item>: <problem>"``."""

    def __init__(self, file: str, item: str, problem: str) -> None:
        self.file = file
        self.item = item
        self.problem = problem
        super().__init__(" ".join(f"{file}: {item}: {problem}".split()))


UNITS = ("class", "instance")  # what one region (one reference) is: see the package docstring


def check_unit(unit: str) -> str:
    if unit not in UNITS:
        raise ValueError(f"unit ({unit!r}) must be one of {', '.join(UNITS)}")
    return unit


@dataclass(frozen=True)
class LabelledRegion:
    name: str  # class name as written in the file (stripped; not otherwise normalised)
    mask: np.ndarray  # (H, W) bool, this class's (or instance's) pixels, ignore pixels removed
    # "" for a class's union (unit "class", and the background); else the instance's id in
    # its photo: "shape 3" / "group 0" (labelme), "annotation 12" (COCO), "object 2" (VOC)
    instance: str = ""


@dataclass(frozen=True)
class Decoded:
    """One photo fully read: what a reader's decode function returns."""

    image: np.ndarray  # (H, W, 3) uint8 RGB
    image_path: str | None  # absolute path of the image file, None when embedded
    regions: tuple[LabelledRegion, ...]  # one per class (or instance), in ``classes`` order
    ignore: np.ndarray  # (H, W) bool
    caption: str | None
    notes: tuple[str, ...]


@dataclass(frozen=True)
class LabelledPhoto:
    """One labelled photo, validated; its arrays are re-read by :meth:`load`."""

    key: str  # stable id within the set (see the package docstring)
    source: str  # absolute path of the annotation file (labelme JSON / COCO JSON / VOC PNG)
    image_path: str | None  # absolute path of the image file (None when embedded)
    size: tuple[int, int]  # (H, W)
    classes: tuple[str, ...]  # class names present, in the order of load()'s regions
    # (unit "instance": one per instance, so a name may repeat)
    caption: str | None  # a caption the file carries, else None
    notes: tuple[str, ...]  # warnings, e.g. "shape 3 ('car'): polygon clipped to the image"
    # re-reads the files (a picklable functools.partial of a reader's decode function)
    _reader: Callable[[], Decoded] | None = field(default=None, repr=False, compare=False)
    instances: tuple[str, ...] = ()  # the regions' instance ids ("" each for unit "class")

    def load(self) -> tuple[np.ndarray, tuple[LabelledRegion, ...], np.ndarray]:
        """(image (H, W, 3) uint8 RGB, regions (one per class, union of its shapes/instances,
        or one per instance, in ``classes`` order), ignore (H, W) bool).  Re-reads the files; raises
        :class:`LabelledError` when they no longer match what was read."""
        if self._reader is None:
            raise LabelledError(self.source, self.key, "this photo has no reader to load it with")
        decoded = self._reader()
        got = tuple(region.name for region in decoded.regions)
        instances = tuple(region.instance for region in decoded.regions)
        if (
            got != self.classes
            or instances != (self.instances or ("",) * len(got))
            or decoded.image.shape[:2] != self.size
        ):
            raise LabelledError(
                self.source,
                self.key,
                f"changed since it was read: now {decoded.image.shape[0]}×"
                f"{decoded.image.shape[1]} with classes {list(got)}, was {self.size[0]}×"
                f"{self.size[1]} with {list(self.classes)}",
            )
        return decoded.image, decoded.regions, decoded.ignore


@dataclass(frozen=True)
class LabelledSet:
    format: str  # "labelme" | "coco" | "voc"
    root: str  # absolute path given (file or folder)
    photos: tuple[LabelledPhoto, ...]  # sorted by key
    notes: tuple[str, ...]  # set-level warnings (skipped items, clipped shapes counted)
    unit: str = "class"  # what a region is (UNITS); "class" where instances were asked of
    # a format that carries none (a VOC folder without SegmentationObject/)


def photo_from(
    decoded: Decoded, *, key: str, source: str, reader: Callable[[], Decoded]
) -> LabelledPhoto:
    """The photo record of a decoded photo (its arrays dropped)."""
    return LabelledPhoto(
        key=key,
        source=source,
        image_path=decoded.image_path,
        size=(int(decoded.image.shape[0]), int(decoded.image.shape[1])),
        classes=tuple(region.name for region in decoded.regions),
        caption=decoded.caption,
        notes=decoded.notes,
        _reader=reader,
        instances=tuple(region.instance for region in decoded.regions),
    )
