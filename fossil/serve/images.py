"""Uploaded images in, PNG data URLs out, for ``fossil serve``.

Uploads are read with :func:`fossil.pipeline.images.load_image`, so they meet the same pixel
limit and get the same messages as ``fossil segment`` (naming the uploaded file's name).
"""

from __future__ import annotations

import base64
import io
import re
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from fossil.pipeline.images import load_image

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def upload_name(filename: str | None) -> str:
    """A plain file name for an upload's (untrusted) name: no directories, no odd characters."""
    name = _UNSAFE.sub("_", Path(filename or "").name).lstrip(".")
    return name[:100] or "upload"


def decode_upload(
    data: bytes, filename: str | None, max_side: int | None = None
) -> tuple[np.ndarray, tuple[int, int]]:
    """(H, W, 3) uint8 RGB of an uploaded file, its long side shrunk to ``max_side`` when it
    is longer (:func:`~fossil.pipeline.images.shrink`, before any array is made), and the
    upload's own (width, height); ``ValueError`` as :func:`load_image` gives it (unreadable,
    over the pixel limit), with the upload's name in the message."""
    name = upload_name(filename)
    with tempfile.TemporaryDirectory(prefix="fossil-upload-") as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        try:
            pixels = load_image(path, max_side=max_side)
            with Image.open(path) as header:  # the header only: nothing more is decoded
                return pixels, header.size
        except ValueError as error:
            raise ValueError(str(error).replace(str(path), name)) from None


def png_bytes(image: Image.Image | np.ndarray) -> bytes:
    """PNG file bytes of a PIL image or a uint8/uint16 array (fast compression)."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def png_data_url(image: Image.Image | np.ndarray) -> str:
    """``data:image/png;base64,…`` of a PIL image or a uint8/uint16 array."""
    return "data:image/png;base64," + base64.b64encode(png_bytes(image)).decode("ascii")


def label_png(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """The label map as ``fossil segment`` writes it: uint8, or uint16 past 256 concepts."""
    return labels.astype(np.uint8 if num_classes <= 256 else np.uint16)


def region_png(regions: np.ndarray) -> np.ndarray:
    """(H, W) region index (-1: none) → (H, W, 3) uint8 with ``index + 1`` in red (low byte)
    and green (high byte), 0 where no region lies: a map a browser canvas reads exactly."""
    code = (regions.astype(np.int64) + 1).clip(0, 65535)
    out = np.zeros((*regions.shape, 3), np.uint8)
    out[..., 0] = code & 0xFF
    out[..., 1] = code >> 8
    return out


def highlight(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """A thumbnail's image with the area outside its noun ``mask`` (h, w) in [0, 1] dimmed."""
    weight = 0.3 + 0.7 * mask[..., None]
    return (image.astype(np.float32) * weight).round().clip(0, 255).astype(np.uint8)
