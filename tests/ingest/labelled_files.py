"""Writers of small labelled sets (labelme JSON, COCO JSON, VOC folder) for the reader tests,
and a COCO RLE encoder (the COCO API's ``rleEncode`` and ``rleToString``) to write RLEs."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

H, W = 40, 60  # the tests' photo size


def box(y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    """(H, W) bool, rows y0..y1 and columns x0..x1 inclusive."""
    mask = np.zeros((H, W), dtype=bool)
    mask[y0 : y1 + 1, x0 : x1 + 1] = True
    return mask


def photo(height: int = H, width: int = W, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def save_image(path: Path, rgb: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path)
    return path


def png_base64(array: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def polygon(label: str, points: list[list[float]], **extra: Any) -> dict[str, Any]:
    return {"label": label, "points": points, "shape_type": "polygon", "group_id": None} | extra


def rectangle(label: str, x0: float, y0: float, x1: float, y1: float) -> dict[str, Any]:
    return {"label": label, "points": [[x0, y0], [x1, y1]], "shape_type": "rectangle"}


def mask_shape(label: str, mask: np.ndarray) -> dict[str, Any]:
    """labelme ≥ 5.3's ``mask`` shape: the mask's bounding box and its crop as a PNG."""
    ys, xs = np.nonzero(mask)
    y0, y1, x0, x1 = int(ys.min()), int(ys.max()), int(xs.min()), int(xs.max())
    crop = (mask[y0 : y1 + 1, x0 : x1 + 1] * 255).astype(np.uint8)
    return {
        "label": label,
        "points": [[x0, y0], [x1, y1]],
        "shape_type": "mask",
        "mask": png_base64(crop),
    }


def labelme_json(
    path: Path,
    shapes: list[dict[str, Any]],
    *,
    image_path: str | None = None,
    image: np.ndarray | None = None,
    size: tuple[int, int] | None = None,
    **extra: Any,
) -> Path:
    """A labelme file; ``image`` embeds the picture as imageData, else ``image_path``."""
    if image is not None:
        size = size or image.shape[:2]
    doc: dict[str, Any] = {
        "version": "5.1.1",
        "flags": {},
        "shapes": shapes,
        "imagePath": image_path or path.with_suffix(".jpg").name,
        "imageData": None if image is None else png_base64(image),
    }
    if size is not None:
        doc["imageHeight"], doc["imageWidth"] = size
    doc.update(extra)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


def rle_encode(mask: np.ndarray) -> list[int]:
    """Uncompressed COCO RLE counts: column-major runs, starting with a run of zeros."""
    flat = np.asarray(mask, dtype=bool).T.ravel()
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    counts = np.diff(np.concatenate([[0], changes, [flat.size]])).tolist()
    return ([0] + counts) if flat[0] else counts


def rle_string(counts: list[int]) -> str:
    """The COCO API's ``rleToString``: each count after the second as its difference to the
    count two before, 5 bits a character plus a 'more' flag, offset 48."""
    out = []
    for i, count in enumerate(counts):
        value = count - counts[i - 2] if i > 2 else count
        more = True
        while more:
            char = value & 0x1F
            value >>= 5
            more = value != -1 if char & 0x10 else value != 0
            if more:
                char |= 0x20
            out.append(chr(char + 48))
    return "".join(out)


def coco_json(
    path: Path,
    images: list[dict[str, Any]],
    annotations: list[dict[str, Any]],
    categories: list[str],
) -> Path:
    """A COCO instances file; categories get ids 1, 2, ... in order."""
    for number, annotation in enumerate(annotations):
        annotation.setdefault("id", number + 1)
        annotation.setdefault("iscrowd", 0)
    doc = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i + 1, "name": name} for i, name in enumerate(categories)],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


def voc_folder(
    root: Path,
    photos: dict[str, tuple[np.ndarray, np.ndarray]],
    names: list[str],
    *,
    palette: bool = True,
    masks: str = "SegmentationClassPNG",
) -> Path:
    """A VOC-style folder: per stem, ``JPEGImages/<stem>.png`` (lossless, so tests compare
    pixels) and a class-id PNG (palette or grayscale)."""
    for stem, (rgb, label) in photos.items():
        save_image(root / "JPEGImages" / f"{stem}.png", rgb)
        image = Image.fromarray(label.astype(np.uint8))
        if palette:  # a shuffled palette: reading colours instead of indices gives nonsense
            image.putpalette(np.random.default_rng(1).integers(0, 256, 768).tolist())
        (root / masks).mkdir(parents=True, exist_ok=True)
        image.save(root / masks / f"{stem}.png")
    (root / "class_names.txt").write_text("\n".join(names) + "\n")
    return root
