"""COCO instances JSON: each image's classes are the unions of their instances."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .common import BACKGROUND, IGNORE, assemble, key_of, load_json
from .raster import check_coordinates, outside, polygon_mask, read_image, rle_counts, rle_mask
from .records import Decoded, LabelledError, LabelledRegion


@dataclass(frozen=True)
class CocoImage:
    """One image record with its annotations, validated against the file's structure."""

    key: str
    index: int  # position in ``images``
    record: dict[str, Any]
    annotations: tuple[tuple[int, dict[str, Any]], ...]  # (position in ``annotations``, record)
    path: Path  # the image file (resolved)


def images_of(
    path: Path, root: Path, images: Path | None, doc: Any | None = None
) -> tuple[list[CocoImage], list[str], dict[int, str]]:
    """The annotated images of the COCO file at ``path`` (structure checked: ids, references,
    duplicate files), the set notes, and the category names by id."""
    file = str(path)
    doc = load_json(path) if doc is None else doc
    if not isinstance(doc, dict):
        raise LabelledError(file, "document", "not a COCO instances file (not a JSON object)")
    for part in ("images", "annotations", "categories"):
        if not isinstance(doc.get(part), list):
            raise LabelledError(file, part, "not a COCO instances file (no list here)")
    names = _categories(doc["categories"], file)
    folder = path.parent if images is None else images
    records: dict[object, int] = {}
    files: dict[Path, int] = {}
    for index, record in enumerate(doc["images"]):
        item = f"images[{index}]"
        if not isinstance(record, dict) or not isinstance(record.get("file_name"), str):
            raise LabelledError(file, item, "an image record needs a 'file_name' text")
        item = f"images[{index}] ({record['file_name']!r})"
        image_id = record.get("id")
        if not isinstance(image_id, (int, str)) or isinstance(image_id, bool):
            raise LabelledError(file, item, f"id {image_id!r} is not an integer or text")
        if image_id in records:
            raise LabelledError(
                file, item, f"id {image_id!r} also names images[{records[image_id]}]"
            )
        resolved = (folder / record["file_name"]).resolve()
        if resolved in files:
            other = doc["images"][files[resolved]]["file_name"]
            raise LabelledError(
                file,
                item,
                f"duplicate file name: the same image file as images[{files[resolved]}] "
                f"({other!r}), {resolved}",
            )
        records[image_id] = index
        files[resolved] = index
    grouped: dict[int, list[tuple[int, dict[str, Any]]]] = {}
    for index, annotation in enumerate(doc["annotations"]):
        item = f"annotations[{index}]"
        if not isinstance(annotation, dict):
            raise LabelledError(file, item, "not a JSON object")
        item = f"annotations[{index}] (id {annotation.get('id')!r})"
        image_id = annotation.get("image_id")
        if isinstance(image_id, bool) or image_id not in records:
            raise LabelledError(file, item, f"image_id {image_id!r} points to no image")
        category = annotation.get("category_id")
        if isinstance(category, bool) or category not in names:
            raise LabelledError(file, item, f"category_id {category!r} names no category")
        grouped.setdefault(records[image_id], []).append((index, annotation))
    prefix = key_of(path, root)
    found = [
        CocoImage(
            f"{prefix}#{doc['images'][index]['file_name']}",
            index,
            doc["images"][index],
            tuple(annotations),
            (folder / doc["images"][index]["file_name"]).resolve(),
        )
        for index, annotations in sorted(grouped.items())
    ]
    notes = []
    if len(found) < len(doc["images"]):
        notes.append(
            f"{file}: {len(doc['images']) - len(found)} images without annotations: skipped"
        )
    return found, notes, names


def _categories(categories: list[Any], file: str) -> dict[int, str]:
    names: dict[int, str] = {}
    for index, category in enumerate(categories):
        item = f"categories[{index}]"
        if not isinstance(category, dict):
            raise LabelledError(file, item, "not a JSON object")
        identifier, name = category.get("id"), category.get("name")
        if not isinstance(identifier, int) or isinstance(identifier, bool):
            raise LabelledError(file, item, f"id {identifier!r} is not an integer")
        if not isinstance(name, str) or not name.strip():
            raise LabelledError(file, item, f"name {name!r} is not a non-empty text")
        if identifier in names:
            raise LabelledError(file, item, f"id {identifier} is given twice")
        names[identifier] = name.strip()
    return names


def decode(
    file: str,
    image: CocoImage,
    names: dict[int, str],
    with_background: bool,
    unit: str = "class",
) -> Decoded:
    """Reads one image of a COCO file and rasterises its annotations; ``unit``
    ``"instance"``: one region per annotation (``"annotation <id>"``)."""
    item = f"images[{image.index}] ({image.record['file_name']!r})"
    rgb = read_image(image.path, file, item, exif=False)
    size = (int(rgb.shape[0]), int(rgb.shape[1]))
    declared = (image.record.get("height"), image.record.get("width"))
    if declared != (None, None) and declared != size:
        raise LabelledError(
            file,
            item,
            f"height/width {declared[0]}×{declared[1]} but the image is {size[0]}×{size[1]}",
        )
    masks: dict[str, np.ndarray] = {}
    instances: list[tuple[str, str, np.ndarray]] = []  # (name, instance id, mask)
    notes: list[str] = []
    for index, annotation in image.annotations:
        name = names[annotation["category_id"]]
        where = f"annotations[{index}] (id {annotation.get('id')!r}, {name!r})"
        mask = _segmentation(annotation.get("segmentation"), size, file, where, notes)
        if not mask.any():
            raise LabelledError(file, where, "covers no pixel (empty mask)")
        if name in masks:
            masks[name] |= mask
        else:
            masks[name] = mask.copy()  # |= below must not change the instance's own mask
        if name not in (IGNORE, BACKGROUND):
            instances.append((name, _instance_id(annotation, index, file, where), mask))
    ignore = masks.pop(IGNORE, np.zeros(size, dtype=bool))
    regions = assemble(
        list(masks),
        masks,
        ignore,
        file=file,
        with_background=with_background,
        background=BACKGROUND,
    )
    if unit == "instance":
        regions = _instances(regions, instances, ignore, file)
    caption = image.record.get("caption")
    caption = caption.strip() if isinstance(caption, str) and caption.strip() else None
    return Decoded(rgb, str(image.path), regions, ignore, caption, tuple(notes))


def _instance_id(annotation: dict[str, Any], index: int, file: str, where: str) -> str:
    """``"annotation <id>"``; an annotation without an id is named by its position."""
    identifier = annotation.get("id")
    if identifier is None:
        return f"annotation at {index}"
    if isinstance(identifier, bool) or not isinstance(identifier, (int, str)):
        raise LabelledError(file, where, f"id {identifier!r} is not an integer or text")
    return f"annotation {identifier}"


def _instances(
    classes: tuple[LabelledRegion, ...],
    instances: list[tuple[str, str, np.ndarray]],
    ignore: np.ndarray,
    file: str,
) -> tuple[LabelledRegion, ...]:
    """One region per annotation, ignore pixels removed (COCO instances may overlap: each
    keeps its own pixels); the background region, if any, stays first."""
    regions = [region for region in classes if region.name == BACKGROUND]
    seen: set[str] = set()
    for name, instance, mask in instances:
        if instance in seen:
            raise LabelledError(file, instance, "given twice for this image: ids must differ")
        seen.add(instance)
        own = mask & ~ignore
        if not own.any():
            raise LabelledError(file, f"{instance} ({name!r})", "covers only ignored pixels")
        regions.append(LabelledRegion(name, own, instance))
    return tuple(regions)


def _segmentation(
    value: object, size: tuple[int, int], file: str, item: str, notes: list[str]
) -> np.ndarray:
    """(H, W) bool of a COCO ``segmentation``: a list of polygons or an RLE object."""
    if isinstance(value, dict):
        declared = value.get("size")
        if not isinstance(declared, list) or tuple(declared) != size:
            raise LabelledError(
                file, item, f"RLE size {declared!r} but the image is {size[0]}×{size[1]}"
            )
        return rle_mask(rle_counts(value.get("counts"), file, item), size, file, item)
    if not isinstance(value, list) or not value:
        raise LabelledError(file, item, "no segmentation (a polygon list or an RLE object)")
    mask = np.zeros(size, dtype=bool)
    clipped = False
    for polygon in value:
        if not isinstance(polygon, list) or len(polygon) < 6 or len(polygon) % 2:
            raise LabelledError(file, item, "a polygon must be a flat list of 3 or more x, y pairs")
        try:
            xy = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
        except (TypeError, ValueError):
            raise LabelledError(file, item, "a polygon coordinate is not a number") from None
        check_coordinates(xy, file, item)
        mask |= polygon_mask(xy, size)
        clipped |= outside(xy, size)
    if clipped:
        notes.append(f"{item}: polygon clipped to the image")
    return mask
