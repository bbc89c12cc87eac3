"""Explanation grid (``fossil query --grid OUT.png``): per concept, one row with the
thumbnails of its top references, each noun mask highlighted, with noun, score and caption.

Thumbnails are RGBA images whose alpha channel is the noun mask (written by ingest under
``STORE/thumbnails/``); a missing or unreadable one is drawn as a grey placeholder.
"""

from __future__ import annotations

import logging
import os
import textwrap
from collections.abc import Sequence

import numpy as np

from fossil.query.retrieval import ConceptResult, Reference

logger = logging.getLogger(__name__)

CELL_SIDE = 128  # pixels of a cell's image
_DIM = 0.3  # brightness kept outside the noun mask
_PLACEHOLDER_GREY = 200


def highlight_mask(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``image`` (h, w, 3) uint8, ``mask`` (h, w) in [0, 1] → (h, w, 3) uint8 with the pixels
    outside the mask dimmed to ``_DIM`` of their brightness."""
    if image.shape[:2] != mask.shape:
        raise ValueError(f"mask shape {mask.shape} must equal the image's {image.shape[:2]}")
    weight = _DIM + (1.0 - _DIM) * np.clip(mask, 0.0, 1.0)[..., None]
    return (image.astype(np.float32) * weight).round().clip(0, 255).astype(np.uint8)


def load_cell(thumbnail: str | None) -> tuple[np.ndarray, np.ndarray] | None:
    """``(image (h, w, 3) uint8, mask (h, w) float32)`` from an RGBA thumbnail, or None when
    it is missing or unreadable."""
    from PIL import Image, UnidentifiedImageError

    if not thumbnail or not os.path.isfile(thumbnail):
        return None
    try:
        with Image.open(thumbnail) as loaded:
            rgba = np.asarray(loaded.convert("RGBA"))
    except (OSError, UnidentifiedImageError) as error:
        logger.warning("cannot read thumbnail %s: %s", thumbnail, error)
        return None
    return np.ascontiguousarray(rgba[..., :3]), rgba[..., 3].astype(np.float32) / 255.0


DIMMING_NOTE = (
    "Each row: a concept's nearest references (noun · cosine similarity of the texts).  "
    "Bright: the noun's mask in its generated image; dimmed: the rest of that image."
)


def _cell_label(reference: Reference, width: int = 26, lines: int = 3) -> str:
    caption = textwrap.wrap(reference.caption or "(caption not catalogued)", width)
    if len(caption) > lines:
        caption = caption[:lines]
        caption[-1] = caption[-1][: width - 1] + "…"
    return "\n".join(caption)


def draw_grid(
    results: Sequence[ConceptResult],
    out_path: str | os.PathLike[str],
    *,
    top: int = 8,
    cell: tuple[float, float] = (1.9, 2.5),
    caption_lines: int = 3,
) -> None:
    """Write a PNG grid: one row per concept, its ``top`` best references as columns, under
    a line saying what the dimming means (:data:`DIMMING_NOTE`).  ``cell``: (width, height)
    of a cell in inches at 100 dpi, caption included; ``caption_lines``: lines of caption
    kept under each thumbnail (0: none)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not results:
        raise ValueError("results is empty: nothing to draw")
    if top < 1:
        raise ValueError(f"top ({top}) must be >= 1")
    columns = min(top, max(len(r.references) for r in results))
    width, height = cell[0] * columns + 0.6, cell[1] * len(results) + 0.5
    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(results), columns, squeeze=False)
    placeholder = np.full((CELL_SIDE, CELL_SIDE, 3), _PLACEHOLDER_GREY, np.uint8)
    for row, result in enumerate(results):
        for column in range(columns):
            ax = axes[row, column]
            ax.set_xticks([])
            ax.set_yticks([])
            if column == 0:
                ax.set_ylabel(result.concept, fontsize=11, fontweight="bold")
            if column >= len(result.references):
                ax.axis("off")
                continue
            reference = result.references[column]
            loaded = load_cell(reference.thumbnail)
            if loaded is None:
                ax.imshow(placeholder)
                ax.text(CELL_SIDE / 2, CELL_SIDE / 2, "no thumbnail", ha="center", fontsize=8)
            else:
                ax.imshow(highlight_mask(*loaded))
            ax.set_title(f"{reference.noun} · {reference.score:.3f}", fontsize=8)
            if caption_lines:
                ax.set_xlabel(_cell_label(reference, lines=caption_lines), fontsize=6)
    note = "\n".join(textwrap.wrap(DIMMING_NOTE, max(40, int(width * 14))))
    figure.text(0.5, 1 - 0.06 / height, note, ha="center", va="top", fontsize=8)
    figure.tight_layout(rect=(0, 0, 1, 1 - 0.45 / height))
    figure.savefig(os.fspath(out_path), format="png")
