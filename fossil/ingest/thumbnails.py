"""Reference thumbnails: the generated image and a noun's mask in one small file (§4).

One RGBA WebP per reference under ``STORE/thumbnails/``: the colour channels hold the
generated image at 128 px (long side), the alpha channel the noun mask, so any image viewer
shows the noun cut out of its image and :func:`read_thumbnail` gives both back.  WebP keeps
the colour under transparent pixels (``exact=True``).  Paths are stored relative to the
store directory in ``ReferenceRow.thumbnail``; files are named by point id, so a rerun
rewrites the same file.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

THUMBNAIL_SIDE = 128  # pixels, long side
THUMBNAIL_DIR = "thumbnails"
_QUALITY = 80


def thumbnail_path(point_id: str) -> str:
    """Store-relative path of a reference's thumbnail (sharded by the id's first 2 chars)."""
    return f"{THUMBNAIL_DIR}/{point_id[:2]}/{point_id}.webp"


def write_thumbnail(root: str | Path, point_id: str, image: np.ndarray, mask: np.ndarray) -> str:
    """Write the thumbnail of ``image`` (H, W, 3) uint8 with ``mask`` (H, W) bool as alpha;
    returns the store-relative path.  Written to a temporary file and renamed, so a crash
    never leaves a truncated thumbnail."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
    if mask.shape != image.shape[:2]:
        raise ValueError(f"mask shape {mask.shape} must equal the image's {image.shape[:2]}")
    height, width = image.shape[:2]
    scale = THUMBNAIL_SIDE / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    rgb = Image.fromarray(image).resize(size, Image.Resampling.LANCZOS)
    alpha = Image.fromarray(mask.astype(np.uint8) * 255).resize(size, Image.Resampling.BILINEAR)
    rgba = rgb.convert("RGBA")
    rgba.putalpha(alpha)
    relative = thumbnail_path(point_id)
    target = Path(root) / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    rgba.save(partial, format="WEBP", quality=_QUALITY, exact=True)
    os.replace(partial, target)
    return relative


def read_thumbnail(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """``(image (h, w, 3) uint8, mask (h, w) float32 in [0, 1])`` from a thumbnail file."""
    with Image.open(path) as loaded:
        rgba = np.asarray(loaded.convert("RGBA"))
    return np.ascontiguousarray(rgba[..., :3]), rgba[..., 3].astype(np.float32) / 255.0
