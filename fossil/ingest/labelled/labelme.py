"""labelme JSON files: shapes rasterised in file order, later shapes over earlier ones."""

from __future__ import annotations

import base64
import binascii
import io
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .common import BACKGROUND, IGNORE, assemble, load_json
from .raster import (
    circle_mask,
    decode_image_data,
    outside,
    points,
    polygon_mask,
    read_image,
    rectangle_mask,
)
from .records import Decoded, LabelledError, LabelledRegion

# labelme shape types that draw a stroke, not a region (labelme paints them 10 px wide)
STROKES = ("line", "linestrip", "point", "points")
CAPTION_KEYS = ("caption", "description")


def json_files(root: Path) -> list[Path]:
    """The labelme files of ``root``: itself, or the ``*.json`` directly in the folder."""
    if root.is_file():
        return [root]
    return sorted(path for path in root.glob("*.json") if path.is_file())


def decode(path_text: str, with_background: bool, unit: str = "class") -> Decoded:
    """Reads one labelme file whole (see the package docstring for the rules); ``unit``
    ``"instance"``: one region per shape, or per (label, ``group_id``) for grouped shapes."""
    path = Path(path_text)
    file = str(path)
    doc = load_json(path)
    if not isinstance(doc, dict) or not isinstance(doc.get("shapes"), list):
        raise LabelledError(file, "shapes", "not a labelme file (no 'shapes' list)")
    image, image_path = _image(doc, path)
    size = (int(image.shape[0]), int(image.shape[1]))
    _check_size(doc, size, file)
    label = np.zeros(size, np.int32)  # 0 background, -1 ignore, k ≥ 1 the k-th class seen
    ids: dict[str, int] = {}
    owners: dict[tuple[str, str], int] = {}  # unit "instance": (name, instance id) → k
    notes: list[str] = []
    for index, shape in enumerate(doc["shapes"]):
        drawn = _shape(shape, index, size, file, notes)
        if drawn is None:
            continue
        name, mask = drawn
        if name == IGNORE:
            label[mask] = -1
        elif name == BACKGROUND:
            label[mask] = 0
        elif unit == "instance":
            owner = (name, _instance_id(shape, index, file))
            label[mask] = owners.setdefault(owner, len(owners) + 1)
        else:
            label[mask] = ids.setdefault(name, len(ids) + 1)
    if unit == "instance":
        regions = _instances(owners, label, with_background, notes)
    else:
        masks = {name: label == value for name, value in ids.items()}
        regions = assemble(
            ids,
            masks,
            label == -1,
            file=file,
            with_background=with_background,
            background=BACKGROUND,
        )
    return Decoded(image, image_path, regions, label == -1, caption(doc), tuple(notes))


def _instance_id(shape: dict[str, Any], index: int, file: str) -> str:
    """``"group <group_id>"`` (labelme's instance: shapes of one label sharing a group id),
    else ``"shape <index>"`` (a shape without a group id is an instance alone)."""
    group = shape.get("group_id")
    if group is None:
        return f"shape {index}"
    if isinstance(group, bool) or not isinstance(group, (int, str)):
        raise LabelledError(
            file, f"shapes[{index}]", f"group_id {group!r} is not an integer, text or null"
        )
    return f"group {group}"


def _instances(
    owners: dict[tuple[str, str], int],
    label: np.ndarray,
    with_background: bool,
    notes: list[str],
) -> tuple[LabelledRegion, ...]:
    """One region per instance (the background first, as one region, ``with_background``);
    an instance later shapes paint over entirely is skipped with a note."""
    regions = []
    if with_background and (label == 0).any():
        regions.append(LabelledRegion(BACKGROUND, label == 0))
    for (name, instance), value in owners.items():
        mask = label == value
        if not mask.any():
            notes.append(f"{instance} ({name!r}): hidden by later shapes: skipped")
            continue
        regions.append(LabelledRegion(name, mask, instance))
    return tuple(regions)


def caption(doc: dict[str, Any]) -> str | None:
    """A top-level ``caption`` or ``description`` string, else a string under ``flags``'s
    ``caption`` key (labelme's flags are booleans; some tools keep text there)."""
    flags = doc.get("flags")
    places = [doc.get(key) for key in CAPTION_KEYS]
    if isinstance(flags, dict):
        places += [flags.get(key) for key in CAPTION_KEYS]
    for value in places:
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _image(doc: dict[str, Any], path: Path) -> tuple[np.ndarray, str | None]:
    """The embedded ``imageData`` (as labelme, it wins), else the file at ``imagePath``."""
    file = str(path)
    if doc.get("imageData"):
        return decode_image_data(doc["imageData"], file, "imageData"), None
    relative = doc.get("imagePath")
    if not isinstance(relative, str) or not relative:
        raise LabelledError(file, "imagePath", "no imageData and no imagePath")
    item = f"imagePath {relative!r}"
    candidate = path.parent / relative
    if not candidate.exists() and "\\" in relative:  # written on Windows
        candidate = path.parent / relative.replace("\\", "/")
    image_path = candidate.resolve()
    return read_image(image_path, file, item, exif=True), str(image_path)


def _check_size(doc: dict[str, Any], size: tuple[int, int], file: str) -> None:
    height, width = doc.get("imageHeight"), doc.get("imageWidth")
    if height is None and width is None:
        return
    if (height, width) != size:
        raise LabelledError(
            file,
            "imageHeight/imageWidth",
            f"{height}×{width} but the image is {size[0]}×{size[1]}",
        )


def _shape(
    shape: object, index: int, size: tuple[int, int], file: str, notes: list[str]
) -> tuple[str, np.ndarray] | None:
    """(label, mask) of ``shapes[index]``, or None when skipped (with a note)."""
    if not isinstance(shape, dict):
        raise LabelledError(file, f"shapes[{index}]", "not a JSON object")
    label = shape.get("label")
    if not isinstance(label, str) or not label.strip():
        raise LabelledError(file, f"shapes[{index}]", f"label {label!r} is not a non-empty text")
    name = label.strip()
    kind = shape.get("shape_type") or "polygon"
    item = f"shapes[{index}] ({name!r})"
    if kind in STROKES:
        notes.append(f"{item}: a {kind} is not a region: skipped")
        return None
    if kind not in ("polygon", "rectangle", "circle", "mask"):
        notes.append(f"{item}: shape_type {kind!r} unknown: skipped")
        return None
    xy = points(shape.get("points"), file, item)
    needed = 3 if kind == "polygon" else 2
    if len(xy) < needed or (kind != "polygon" and len(xy) != 2):
        raise LabelledError(file, item, f"a {kind} needs {needed} points, got {len(xy)}")
    if kind == "polygon":
        mask, corners = polygon_mask(xy, size), xy
    elif kind == "rectangle":
        mask, corners = rectangle_mask(xy, size), xy
    elif kind == "circle":
        mask, corners = circle_mask(xy, size)
    else:
        mask, corners = _bitmap(shape.get("mask"), xy, size, file, item), xy
    clipped = outside(corners, size)
    if clipped:
        notes.append(f"{item}: {kind} clipped to the image")
    if not mask.any():
        where = " (it lies outside the image)" if clipped else ""
        raise LabelledError(file, item, f"covers no pixel (empty mask){where}")
    return name, mask


def _bitmap(
    data: object, xy: np.ndarray, size: tuple[int, int], file: str, item: str
) -> np.ndarray:
    """labelme ≥ 5.3's ``mask`` shape: a base64 PNG of the box between its two points."""
    if not isinstance(data, str):
        raise LabelledError(file, item, "a mask shape without its base64 'mask' PNG")
    try:
        with Image.open(io.BytesIO(base64.b64decode(data))) as image:
            bitmap = np.asarray(image).astype(bool)
    except (binascii.Error, OSError, ValueError) as error:
        raise LabelledError(file, item, f"its 'mask' is not a base64 PNG ({error})") from error
    if bitmap.ndim == 3:
        bitmap = np.asarray(bitmap.any(axis=2))
    (x1, y1), (x2, y2) = xy.astype(int)  # as labelme: truncated to ints
    if bitmap.shape != (y2 - y1 + 1, x2 - x1 + 1):
        raise LabelledError(
            file,
            item,
            f"its mask is {bitmap.shape[0]}×{bitmap.shape[1]} but its box is "
            f"{y2 - y1 + 1}×{x2 - x1 + 1}",
        )
    mask = np.zeros(size, dtype=bool)
    top, left = max(y1, 0), max(x1, 0)
    bottom, right = min(y2 + 1, size[0]), min(x2 + 1, size[1])
    if bottom > top and right > left:
        mask[top:bottom, left:right] = bitmap[top - y1 : bottom - y1, left - x1 : right - x1]
    return mask
