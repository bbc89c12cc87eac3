"""Reading user images into (H, W, 3) uint8 RGB arrays, with clear errors (design §8).

An image is measured from its header before anything is decoded, and refused when it would
cost far more than it looks: over :data:`MAX_PIXELS` pixels; over a budget of decoded memory
(the decoded pixels plus the RGB copies made from them, :func:`decode_bytes`: a 31 KB 1-bit
PNG of 16000×16000 px decodes to gigabytes), :data:`MAX_DECODE_MB` megabytes unless the
``FOSSIL_MAX_IMAGE_MB`` environment variable raises it; or with sides more than
:data:`MAX_ASPECT` to 1 apart (the segmenter scales the short side up, so a 20000×1 strip
becomes millions of pixels wide and runs for minutes before failing).

``max_side`` (``fossil serve``: answers at most that large) shrinks a larger image while it
is still PIL's, before any array is made of it (:func:`shrink`): a JPEG is decoded at a
reduced scale to begin with, and no full-size RGB or float copy exists.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from fossil.errors import naming
from fossil.pipeline.image_limits import (  # noqa: F401  (part of this module's interface)
    BUDGET_VARIABLE,
    MAX_ASPECT,
    MAX_DECODE_MB,
    MAX_PIXELS,
)

# bytes per pixel of the decoded image, by PIL mode (RGB and friends are stored as 4 bytes)
_DECODED = {"1": 1, "L": 1, "P": 1, "LA": 4, "PA": 4, "RGB": 4, "RGBA": 4, "CMYK": 4}
_DECODED |= {"YCbCr": 4, "LAB": 4, "HSV": 4, "I": 4, "F": 4, "I;16": 2, "I;16B": 2, "I;16L": 2}


def decode_bytes(width: int, height: int, mode: str) -> int:
    """Bytes :func:`load_image` holds at its peak for a ``width`` × ``height`` image of PIL
    ``mode``: the decoded image, its RGB(A) conversion (float64 for 16-bit and float
    modes) and the returned array."""
    decoded = _DECODED.get(mode, 4)
    convert = 9 if mode in ("I", "F") or mode.startswith("I;16") else 4
    if mode in ("RGBA", "LA", "PA", "P"):
        convert = 12  # RGBA, a white background, the composite
    return width * height * (decoded + convert + 3)


def decode_budget(max_mb: float | None = None) -> int:
    """The decoded-memory budget in bytes: ``max_mb`` megabytes when given (``fossil segment
    --max-image-mb``), else ``$FOSSIL_MAX_IMAGE_MB``, else :data:`MAX_DECODE_MB`."""
    if max_mb is not None:
        if not max_mb > 0:
            raise naming(ValueError(f"max_mb ({max_mb}) must be > 0"), "max_mb")
        return int(max_mb * 2**20)
    raw = os.environ.get(BUDGET_VARIABLE, "").strip()
    if not raw:
        return MAX_DECODE_MB * 2**20
    try:
        megabytes = float(raw)
    except ValueError:
        raise ValueError(f"{BUDGET_VARIABLE} ({raw!r}) must be a number of megabytes") from None
    if megabytes <= 0:
        raise ValueError(f"{BUDGET_VARIABLE} ({raw!r}) must be > 0")
    return int(megabytes * 2**20)


def check_size(name: str, width: int, height: int, mode: str, max_mb: float | None = None) -> None:
    """Refuse an image (before decoding it) that is too large, too costly to decode, or too
    elongated; see the module docstring."""
    if width * height > MAX_PIXELS:
        raise ValueError(
            f"image {name!r} is {width}x{height}; at most {MAX_PIXELS} pixels are accepted — "
            "downscale it first"
        )
    needed, budget = decode_bytes(width, height, mode), decode_budget(max_mb)
    if needed > budget:
        message = (
            f"image {name!r} is {width}x{height} ({mode}): decoding it takes ~{needed / 2**20:.0f}"
            f" MB, over the {budget / 2**20:.0f} MB limit — downscale it first, or raise the "
            f"limit (max_mb, or the environment variable {BUDGET_VARIABLE}=MB)"
        )
        raise naming(ValueError(message), "max_mb")
    if max(width, height) > MAX_ASPECT * max(1, min(width, height)):
        raise ValueError(
            f"image {name!r} is {width}x{height}: its sides are more than {MAX_ASPECT}:1 apart "
            "(the short side is scaled up for segmentation, so the work grows with the ratio)"
            " — crop it into less elongated pieces first"
        )


def load_image(
    path: str | os.PathLike[str], max_mb: float | None = None, max_side: int | None = None
) -> np.ndarray:
    """Read ``path`` as RGB uint8.  Grayscale, palette, RGBA (composited on white) and
    16-bit images are converted; unreadable/corrupt files raise ``ValueError`` naming the
    file; images too large, too costly to decode or too elongated are refused before they
    are decoded (:func:`check_size`; ``max_mb``: the decoded-memory budget, see
    :func:`decode_budget`).  ``max_side``: a longer side is shrunk to it first
    (:func:`shrink`)."""
    if max_side is not None and max_side < 1:
        raise naming(ValueError(f"max_side ({max_side}) must be >= 1"), "max_side")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image {str(path)!r} does not exist")
    previous = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None  # our own, explicit limit below
    try:
        with Image.open(path) as image:
            check_size(str(path), image.width, image.height, image.mode, max_mb)
            if max_side is None:
                image.load()
                return to_rgb(image)
            image.draft(image.mode, shrunk_size(image.width, image.height, max_side))  # JPEG
            image.load()
            return to_rgb(shrink(image, max_side))
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise ValueError(f"image {str(path)!r} cannot be read ({error})") from error
    finally:
        Image.MAX_IMAGE_PIXELS = previous


# modes PIL resamples with any filter (RGBA and LA premultiplied by their alpha)
_RESAMPLED = {"L", "LA", "RGB", "RGBA", "CMYK", "YCbCr", "I", "F"}


def shrunk_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """(width, height) with the long side at most ``max_side``, the aspect ratio kept
    (rounded as the protocol's resize rounds, design §9)."""
    scale = min(1.0, max_side / max(width, height, 1))
    return max(1, int(width * scale + 0.5)), max(1, int(height * scale + 0.5))


def shrink(image: Image.Image, max_side: int) -> Image.Image:
    """``image`` with its long side at most ``max_side`` pixels (:func:`shrunk_size`;
    ``image`` itself when it is that small), resampled by PIL in 8-bit or 32-bit integer
    form (bilinear, antialiased): the full-size image never becomes an array, nor a float
    copy.  Bilevel and palette images become L and RGB(A) first (PIL resamples them by
    nearest neighbour only), 16-bit ones 32-bit."""
    size = shrunk_size(image.width, image.height, max_side)
    if size == image.size:
        return image
    if image.mode == "1":
        image = image.convert("L")
    elif image.mode in ("P", "PA"):
        alpha = image.mode == "PA" or "transparency" in image.info
        image = image.convert("RGBA" if alpha else "RGB")
    elif image.mode.startswith("I;16"):
        image = image.convert("I")
    elif image.mode not in _RESAMPLED:
        image = image.convert("RGB")
    return image.resize(size, Image.Resampling.BILINEAR, reducing_gap=3.0)


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
