"""Planted scenes with a known answer for the OpenCut tests and benchmark.

A scene is a label grid of connected regions; each region gets a feature cluster.  Background
regions share a common direction (cosine between their centres ``background_cos``, like parts
of a DINO background) while foreground objects are orthogonal to everything (cosine 0), so a
low threshold separates the objects and only a high one splits the background (design §5.7).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class PlantedScene:
    keys: np.ndarray  # (h, w, dim) float32
    labels: np.ndarray  # (h, w) int: region index per patch
    foreground: tuple[int, ...]  # region indices of the objects
    background: tuple[int, ...]  # region indices of the background parts
    image: np.ndarray  # (h·patch, w·patch, 3) uint8, one colour per region plus noise


def layout(h: int = 60, w: int = 60, objects: int = 2) -> tuple[np.ndarray, int, int]:
    """Labels (h, w): 3 background bands (sky, middle, ground) and up to 2 objects.

    Returns (labels, number of background regions, number of objects)."""
    if objects not in (0, 1, 2):
        raise ValueError(f"objects ({objects}) must be 0, 1 or 2")
    labels = np.zeros((h, w), int)
    labels[int(0.3 * h) :] = 1  # unequal bands: no symmetric tie between them
    labels[int(0.65 * h) :] = 2
    yy, xx = np.mgrid[:h, :w]
    if objects >= 1:  # a disc across the sky / middle boundary
        labels[(yy - 0.35 * h) ** 2 + (xx - 0.3 * w) ** 2 < (0.15 * h) ** 2] = 3
    if objects == 2:  # a box standing on the ground
        labels[int(0.5 * h) : int(0.85 * h), int(0.6 * w) : int(0.85 * w)] = 4
    return labels, 3, objects


def planted_scene(
    rng: np.random.Generator,
    h: int = 60,
    w: int = 60,
    dim: int = 128,
    objects: int = 2,
    noise: float = 0.2,
    background_cos: float = 0.5,
    patch: int = 8,
) -> PlantedScene:
    """Keys = region centre + Gaussian noise of total norm ≈ ``noise`` per patch."""
    labels, num_background, num_objects = layout(h, w, objects)
    regions = num_background + num_objects
    basis = np.linalg.qr(rng.normal(size=(dim, regions + 1)))[0].T  # orthonormal rows
    a = np.sqrt(background_cos)
    centres = [a * basis[0] + np.sqrt(1 - a * a) * basis[1 + i] for i in range(num_background)]
    centres += [basis[1 + num_background + k] for k in range(num_objects)]
    centres = np.stack(centres)  # (regions, dim), unit norm
    keys = centres[labels] + rng.normal(scale=noise / np.sqrt(dim), size=(h, w, dim))
    return _scene(rng, keys, labels, regions, num_background, patch)


def _scene(
    rng: np.random.Generator,
    keys: np.ndarray,
    labels: np.ndarray,
    regions: int,
    num_background: int,
    patch: int,
) -> PlantedScene:
    """The scene of ``keys`` (h, w, dim) and ``labels`` (h, w) in 0..regions-1, the first
    ``num_background`` of them background: its image is a random colour per region, ``patch``
    pixels per key, with a little pixel noise."""
    colours = rng.integers(30, 226, size=(regions, 3))
    image = np.repeat(np.repeat(colours[labels], patch, axis=0), patch, axis=1)
    image = image + rng.integers(-8, 9, size=image.shape)
    return PlantedScene(
        keys=keys.astype(np.float32),
        labels=labels,
        foreground=tuple(range(num_background, regions)),
        background=tuple(range(num_background)),
        image=np.clip(image, 0, 255).astype(np.uint8),
    )


def random_graph(rng: np.random.Generator, num_patches: int, density: float) -> np.ndarray:
    """Symmetric W̄ (num_patches, num_patches) with random edges of weight 1, else 1e-5."""
    upper = np.triu(rng.random((num_patches, num_patches)) < density, 1)
    adjacency = upper | upper.T | np.eye(num_patches, dtype=bool)
    return np.where(adjacency, 1.0, 1e-5)


def objects_grid(
    rng: np.random.Generator,
    side: int = 60,
    patch: int = 4,
    dim: int = 128,
    noise: float = 0.2,
    shared: float = 3.0,
) -> PlantedScene:
    """4 square objects (2 × 2) on one uniform background, on a ``side`` × ``side`` grid.

    Every key also carries one strong shared direction (norm ``shared``), so all pairs look
    alike as in DINOv2's keys: the quantile thresholds then fall inside the background's own
    similarities, whose links are noise, and a cut of the background is speckle."""
    labels = np.zeros((side, side), int)
    half = side // 6
    for k, (cy, cx) in enumerate([(0.27, 0.27), (0.27, 0.73), (0.73, 0.27), (0.73, 0.73)]):
        y, x = int(cy * side), int(cx * side)
        labels[y - half : y + half, x - half : x + half] = 1 + k
    basis = np.linalg.qr(rng.normal(size=(dim, 6)))[0].T  # orthonormal rows
    keys = basis[labels] + rng.normal(scale=noise / np.sqrt(dim), size=(side, side, dim))
    keys += shared * basis[5]
    return _scene(rng, keys, labels, 5, 1, patch)
