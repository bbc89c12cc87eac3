"""Pixels from annotation files: images decoded to RGB, shapes rasterised, COCO RLE decoded.

Shapes are drawn as labelme's ``shape_to_mask`` draws them (Pillow's ``ImageDraw`` with
``outline=1, fill=1``).  A point is outside the image when it lies beyond
``[0, W] × [0, H]``: labelme's editor keeps points in that box (annotators put points on the
far edge, ``x = W``, which clips nothing worth a note).  COCO
run-length encodings are decoded here (uncompressed ``counts`` lists and the compressed
``counts`` string of the COCO API's ``rleToString``), without pycocotools.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageOps, UnidentifiedImageError

from .records import LabelledError

# a coordinate beyond this many pixels is a broken file, not a shape (Pillow draws in C ints)
MAX_COORDINATE = 1e7
_IMAGE_ERRORS = (
    OSError,
    ValueError,
    SyntaxError,
    UnidentifiedImageError,
    Image.DecompressionBombError,
)


def _rgb(image: Image.Image, *, exif: bool) -> np.ndarray:
    if exif:
        image = ImageOps.exif_transpose(image)
    return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()


def read_image(path: Path, file: str, item: str, *, exif: bool) -> np.ndarray:
    """(H, W, 3) uint8 RGB of the image at ``path``; ``exif`` applies its EXIF orientation."""
    if not path.is_file():
        raise LabelledError(file, item, f"image not found at {path}")
    try:
        with Image.open(path) as image:
            image.load()
            return _rgb(image, exif=exif)
    except _IMAGE_ERRORS as error:
        raise LabelledError(file, item, f"cannot read image {path} ({error})") from error


def decode_image_data(data: object, file: str, item: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB of a base64-encoded image file (labelme's ``imageData``)."""
    if not isinstance(data, str):
        raise LabelledError(file, item, f"expected a base64 string, got {type(data).__name__}")
    try:
        raw = base64.b64decode(data, validate=False)
        with Image.open(io.BytesIO(raw)) as image:
            image.load()
            return _rgb(image, exif=True)
    except (binascii.Error, *_IMAGE_ERRORS) as error:
        raise LabelledError(file, item, f"not a readable base64 image ({error})") from error


def read_label_png(path: Path, file: str, item: str) -> np.ndarray:
    """(H, W) int64 class ids of a class-id PNG: palette indices (never colours) or grey values."""
    try:
        with Image.open(path) as image:
            image.load()
            mode = image.mode
            if mode not in ("P", "L", "I", "I;16", "I;16B", "I;16L", "1"):
                raise LabelledError(
                    file, item, f"a {mode} image; class-id PNGs are palette or grayscale"
                )
            return np.asarray(image).astype(np.int64)
    except _IMAGE_ERRORS as error:
        raise LabelledError(file, item, f"cannot read class-id PNG {path} ({error})") from error


def points(value: object, file: str, item: str) -> np.ndarray:
    """(n, 2) float64 of a list of [x, y] pairs (labelme ``points``)."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise LabelledError(file, item, f"points are not [x, y] number pairs ({error})") from None
    if array.ndim != 2 or array.shape[1] != 2:
        raise LabelledError(file, item, "points are not a list of [x, y] pairs")
    check_coordinates(array, file, item)
    return array


def check_coordinates(array: np.ndarray, file: str, item: str) -> None:
    if not np.isfinite(array).all():
        raise LabelledError(file, item, "a coordinate is not a finite number")
    if array.size and np.abs(array).max() > MAX_COORDINATE:
        raise LabelledError(file, item, f"a coordinate beyond ±{MAX_COORDINATE:g} pixels")


def outside(xy: np.ndarray, size: tuple[int, int]) -> bool:
    """Whether any of the (n, 2) points lies outside an image of ``size`` (H, W)."""
    height, width = size
    x, y = xy[:, 0], xy[:, 1]
    return bool(((x < 0) | (x > width) | (y < 0) | (y > height)).any())


def _canvas(size: tuple[int, int]) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    image = Image.new("L", (size[1], size[0]), 0)
    return image, ImageDraw.Draw(image)


def polygon_mask(xy: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W) bool: the polygon through the (n ≥ 3, 2) points, outline included."""
    image, draw = _canvas(size)
    draw.polygon([(float(x), float(y)) for x, y in xy], outline=1, fill=1)
    return np.asarray(image, dtype=bool)


def rectangle_mask(xy: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W) bool: the box between two opposite corners (in either order), edges included."""
    (x0, x1), (y0, y1) = sorted(xy[:, 0]), sorted(xy[:, 1])
    image, draw = _canvas(size)
    draw.rectangle([float(x0), float(y0), float(x1), float(y1)], outline=1, fill=1)
    return np.asarray(image, dtype=bool)


def circle_mask(xy: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) bool disc of centre ``xy[0]`` through ``xy[1]``, and its bounding box's corners
    (2, 2) (for the outside-the-image check)."""
    (cx, cy), (px, py) = xy
    radius = math.hypot(cx - px, cy - py)
    box = np.array([[cx - radius, cy - radius], [cx + radius, cy + radius]])
    image, draw = _canvas(size)
    draw.ellipse([float(v) for v in box.ravel()], outline=1, fill=1)
    return np.asarray(image, dtype=bool), box


def rle_counts(counts: object, file: str, item: str) -> np.ndarray:
    """Run lengths of a COCO RLE ``counts``: a list of ints or the compressed string."""
    if isinstance(counts, str):
        return _counts_from_string(counts, file, item)
    if isinstance(counts, list) and all(
        isinstance(c, int) and not isinstance(c, bool) for c in counts
    ):
        array = np.asarray(counts, dtype=np.int64)
        if (array < 0).any():
            raise LabelledError(file, item, "RLE counts must not be negative")
        return array
    raise LabelledError(file, item, "RLE counts must be a list of integers or a COCO string")


def _counts_from_string(text: str, file: str, item: str) -> np.ndarray:
    """The COCO API's ``rleFrString``: 6 bits a character (offset 48), 5 of them value and
    one 'more' flag; the sign bit of a value's last character extends it; each count after
    the second is stored as its difference to the count two before."""
    counts: list[int] = []
    position = 0
    data = text.encode("ascii", errors="replace")
    while position < len(data):
        value = shift = 0
        more = True
        while more:
            if position >= len(data):
                raise LabelledError(file, item, "compressed RLE counts end mid-value")
            char = data[position] - 48
            if not 0 <= char < 64:
                raise LabelledError(file, item, f"compressed RLE has a bad character at {position}")
            value |= (char & 0x1F) << (5 * shift)
            more = bool(char & 0x20)
            position += 1
            shift += 1
            if not more and char & 0x10:
                value |= -1 << (5 * shift)
        if len(counts) > 2:
            value += counts[-2]
        counts.append(value)
    array = np.asarray(counts, dtype=np.int64)
    if (array < 0).any():
        raise LabelledError(file, item, "compressed RLE decodes to a negative count")
    return array


def rle_mask(counts: np.ndarray, size: tuple[int, int], file: str, item: str) -> np.ndarray:
    """(H, W) bool of COCO run lengths (column-major, starting with a run of zeros)."""
    height, width = size
    if int(counts.sum()) != height * width:
        raise LabelledError(
            file, item, f"RLE counts add up to {int(counts.sum())}, not {height}×{width}"
        )
    values = np.arange(len(counts)) % 2 == 1
    flat = np.repeat(values, counts)
    return flat.reshape(width, height).T.copy()
