"""Pictures of segmentation results: a label map blended over the image with a legend.

Pure PIL/numpy; no model or store is touched here.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont


def palette(num_classes: int) -> np.ndarray:
    """(num_classes, 3) uint8 colours, distinct and deterministic (golden-angle hues)."""
    if num_classes < 0:
        raise ValueError(f"num_classes ({num_classes}) must be >= 0")
    hues = (np.arange(num_classes) * 0.618033988749895) % 1.0
    sats = np.where(np.arange(num_classes) % 2 == 0, 0.75, 0.55)
    vals = np.where(np.arange(num_classes) % 3 == 2, 0.75, 0.95)
    return _hsv_to_rgb(hues, sats, vals)


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    i = np.floor(h * 6).astype(int) % 6
    f = h * 6 - np.floor(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    table = np.stack(
        [
            np.stack([v, t, p], -1),
            np.stack([q, v, p], -1),
            np.stack([p, v, t], -1),
            np.stack([p, q, v], -1),
            np.stack([t, p, v], -1),
            np.stack([v, p, q], -1),
        ]
    )  # (6, C, 3)
    rgb = table[i, np.arange(len(h))]
    return np.round(rgb * 255).astype(np.uint8)


def colorize(labels: np.ndarray, colors: np.ndarray, ignore_index: int = 255) -> np.ndarray:
    """(H, W) int label map → (H, W, 3) uint8; ``ignore_index`` pixels are black."""
    out = np.zeros((*labels.shape, 3), np.uint8)
    valid = (labels >= 0) & (labels < len(colors)) & (labels != ignore_index)
    out[valid] = colors[labels[valid]]
    return out


def overlay(
    image: np.ndarray,
    labels: np.ndarray,
    names: Sequence[str],
    *,
    alpha: float = 0.55,
    boundaries: bool = True,
) -> Image.Image:
    """Blend the label map over ``image`` (H, W, 3) uint8 and add a legend of the concepts
    present (colour swatch, name, share of pixels) on the right."""
    if image.shape[:2] != labels.shape:
        raise ValueError(f"image {image.shape[:2]} and labels {labels.shape} differ in size")
    colors = palette(len(names))
    # PIL blends in uint8: a 10000² image needs ~1 GB here instead of several float copies
    base = Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8))
    picture = Image.blend(base, Image.fromarray(colorize(labels, colors)), alpha)
    if boundaries:
        edge = np.zeros(labels.shape, bool)
        edge[:-1] |= labels[:-1] != labels[1:]
        edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
        blended = np.array(picture)
        blended[edge] = 255
        picture = Image.fromarray(blended)
    return _with_legend(picture, labels, names, colors)


def _with_legend(
    picture: Image.Image, labels: np.ndarray, names: Sequence[str], colors: np.ndarray
) -> Image.Image:
    counts = np.bincount(
        labels[(labels >= 0) & (labels < len(names))].ravel(), minlength=len(names)
    )
    present = [c for c in np.argsort(-counts) if counts[c] > 0]
    font = ImageFont.load_default(size=14)
    row, pad = 22, 8
    width = max([_text_width(font, f"{names[c]}  100.0%") for c in present] + [60]) + 3 * pad + 16
    height = max(picture.height, pad * 2 + row * len(present))
    canvas = Image.new("RGB", (picture.width + width, height), (255, 255, 255))
    canvas.paste(picture, (0, 0))
    draw = ImageDraw.Draw(canvas)
    total = max(int(counts.sum()), 1)
    for i, c in enumerate(present):
        x, y = picture.width + pad, pad + i * row
        draw.rectangle([x, y + 2, x + 14, y + 16], fill=tuple(int(v) for v in colors[c]))
        draw.text(
            (x + 16 + pad, y),
            f"{names[c]}  {100 * counts[c] / total:.1f}%",
            fill=(0, 0, 0),
            font=font,
        )
    return canvas


def _text_width(font: ImageFont.ImageFont | ImageFont.FreeTypeFont, text: str) -> int:
    left, _, right, _ = font.getbbox(text)
    return int(right - left)
