"""Reading user images into (H, W, 3) uint8 RGB arrays, with clear errors (§8)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

MAX_PIXELS = 16384 * 16384  # larger images are refused (they are resized to 448 px anyway)


def load_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Read ``path`` as RGB uint8.  Grayscale, palette, RGBA (composited on white) and
    16-bit images are converted; unreadable/corrupt files raise ``ValueError`` naming the
    file; images over :data:`MAX_PIXELS` pixels are refused."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image {str(path)!r} does not exist")
    previous = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None  # our own, explicit limit below
    try:
        with Image.open(path) as image:
            if image.width * image.height > MAX_PIXELS:
                raise ValueError(
                    f"image {str(path)!r} is {image.width}x{image.height}; at most "
                    f"{MAX_PIXELS} pixels are accepted — downscale it first"
                )
            image.load()
            return to_rgb(image)
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise ValueError(f"image {str(path)!r} cannot be read ({error})") from error
    finally:
        Image.MAX_IMAGE_PIXELS = previous


def to_rgb(image: Image.Image) -> np.ndarray:
    """Any PIL mode → (H, W, 3) uint8 RGB."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float64)
        high = array.max() if array.size else 0.0
        scaled = array * (255.0 / high) if high > 255 else array
        gray = np.clip(scaled, 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if image.mode == "F":
        array = np.nan_to_num(np.asarray(image, dtype=np.float64))
        lo, hi = (float(array.min()), float(array.max())) if array.size else (0.0, 0.0)
        gray = ((array - lo) / (hi - lo) * 255 if hi > lo else np.zeros_like(array)).astype(
            np.uint8
        )
        return np.repeat(gray[..., None], 3, axis=2)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(background, rgba).convert("RGB"))
    return np.asarray(image.convert("RGB"))
