"""Reference thumbnails: the generated image and a noun's mask in one small file (design §4).

One RGBA WebP per reference under ``STORE/thumbnails/``: the colour channels hold the
generated image at 128 px (long side), the alpha channel the noun mask, so any image viewer
shows the noun cut out of its image and :func:`read_thumbnail` gives both back.  WebP keeps
the colour under transparent pixels (``exact=True``).  Paths are stored relative to the
store directory in ``ReferenceRow.thumbnail``; files are named by point id, so a rerun
rewrites the same file.

Thumbnails of work not yet committed never sit among the others: ingest writes them under
``STORE/thumbnails/.staging/`` (:func:`staging_root`) and moves them into place once the
catalog lists their references (:func:`publish_thumbnails`).  What a killed run left staged
is swept at the start of the next (:func:`sweep_staging`): published when its reference was
committed after all, deleted otherwise.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

logger = logging.getLogger(__name__)

THUMBNAIL_SIDE = 128  # pixels, long side
THUMBNAIL_DIR = "thumbnails"
STAGING = ".staging"  # under THUMBNAIL_DIR: thumbnails of uncommitted references
_QUALITY = 80


def staging_root(root: str | Path) -> Path:
    """The root under which ingest writes thumbnails before their references are committed
    (same relative paths as under ``root``)."""
    return Path(root) / THUMBNAIL_DIR / STAGING


def publish_thumbnails(root: str | Path, relative: Iterable[str | None]) -> int:
    """Move the staged thumbnails at the store-relative paths ``relative`` into place under
    ``root`` (their references are committed); returns how many moved."""
    moved = 0
    for path in relative:
        if not path:
            continue
        staged, target = staging_root(root) / path, Path(root) / path
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staged, target)
            moved += 1
        except FileNotFoundError:
            pass
    return moved


def sweep_staging(
    root: str | Path, committed: Callable[[Sequence[str]], Iterable[str]]
) -> tuple[int, int]:
    """What a killed run left staged: thumbnails whose point ``committed(ids)`` names are
    published, the others deleted.  Returns ``(published, deleted)``."""
    staged = {p.stem: p for p in staging_root(root).rglob("*.webp")}
    if not staged:
        return 0, 0
    keep = set(committed(sorted(staged)))
    published = publish_thumbnails(root, [thumbnail_path(i) for i in sorted(keep & set(staged))])
    deleted = 0
    for point, path in staged.items():
        if point not in keep:
            path.unlink(missing_ok=True)
            deleted += 1
    for leftover in staging_root(root).rglob("*.tmp"):
        leftover.unlink(missing_ok=True)
    if published or deleted:
        logger.info(
            "staged thumbnails of an interrupted run: %d published, %d deleted", published, deleted
        )
    return published, deleted


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
