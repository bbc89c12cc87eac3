"""Subdivision of OpenCut's final masks (fossil's departure from design §5.7, off by default).

On real DINOv2-S/14 keys the first ``tau`` of the schedule already cuts the whole image into
two or three balanced NCut masks; later ``tau`` values propose smaller masks inside them, and
the refinement's ``rho`` rule discards every one of them (a mask more than ``rho`` covered).
So OpenCut never splits a mask it has accepted, and a shelf of eight objects comes back as
four regions (``benchmarks/real_photos.py``, with the CRF).

:func:`subdivide` splits each final mask again with MaskCut restricted to that mask's patches,
at the schedule's last threshold, recursively up to ``depth`` levels.  A mask whose patches
form a coherent graph at that threshold (every pair above it) is left whole, so homogeneous
regions stop splitting by themselves.  The children partition their parent exactly: each of
the parent's pixels goes to the child whose upsampled patch mask is highest there, so the
parent's CRF border is kept and no second CRF runs.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from fossil.config import Solver
from fossil.segment.maskcut import maskcut


@dataclass(frozen=True)
class Split:
    """How a region is split: MaskCut at eq. 1's cosine ``threshold`` (up to ``t`` masks, each
    over ``min_area`` of the grid), recursively up to ``depth`` levels."""

    threshold: float
    depth: int
    t: int = 3
    min_area: float = 0.01
    solver: Solver = "auto"
    seed_component_only: bool = False


def split_patches(features: np.ndarray, region: np.ndarray, split: Split) -> list[np.ndarray]:
    """Leaves of the recursive MaskCut split of ``region`` (h, w) bool on ``features``.

    Each level runs one MaskCut on the region's patches; its masks and what is left of the
    region are the children, split again while ``split.depth`` allows.  A region under
    ``2 * min_area`` of the grid, or one MaskCut leaves whole, is a leaf."""
    h, w, _ = features.shape
    if split.depth <= 0 or np.count_nonzero(region) < 2 * split.min_area * h * w:
        return [region]
    result = maskcut(
        features,
        split.threshold,
        split.t,
        active=region,
        min_area=split.min_area,
        solver=split.solver,
        seed_component_only=split.seed_component_only,
    )
    parts = list(result.masks)  # MaskCut's masks are disjoint parts of ``active``
    if result.remaining is not None and result.remaining.any():
        parts.append(result.remaining)  # the rest of the region
    if len(parts) <= 1:
        return [region]
    deeper = replace(split, depth=split.depth - 1)
    return [leaf for part in parts for leaf in split_patches(features, part, deeper)]


def subdivide(
    masks: np.ndarray, features: np.ndarray, split: Split
) -> tuple[np.ndarray, list[int]]:
    """Split each of ``masks`` (L, H, W) bool (mutually exclusive, at the image or grid size)
    by :func:`split_patches` on ``features`` (h, w, dim).

    Returns the new masks (L', H, W) bool, still mutually exclusive and covering exactly the
    pixels ``masks`` covered, and for each the index of the mask it came from."""
    from fossil.segment.pooling import resize_masks  # imports torch

    h, w, _ = features.shape
    if split.depth <= 0 or len(masks) == 0:
        return masks, list(range(len(masks)))
    grid = resize_masks(masks.astype(np.float32), (h, w)) >= 0.5
    out: list[np.ndarray] = []
    parents: list[int] = []
    for index, (mask, patches) in enumerate(zip(masks, grid, strict=True)):
        leaves = split_patches(features, patches, split)
        if len(leaves) <= 1:
            out.append(mask)
            parents.append(index)
            continue
        soft = resize_masks(np.stack(leaves).astype(np.float32), mask.shape)
        owner = soft.argmax(0)
        for child in range(len(leaves)):
            piece = mask & (owner == child)
            if piece.any():
                out.append(piece)
                parents.append(index)
    return np.stack(out), parents
