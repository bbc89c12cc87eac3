"""Mask refinement (design §5.7): turn each new OpenCut mask into mutually exclusive regions.

For each new mask: split it into 4-connected components and drop those smaller than ``eta``
pixels.  For each remaining component, in order:

1. if its IoU with an accepted mask exceeds ``mu``, merge it into the first such mask
   (only its pixels not owned by another accepted mask are added);
2. else if more than ``rho`` of it is already covered by accepted masks, discard it;
3. else remove the covered pixels and accept the rest as a new mask (dropped if fewer than
   ``eta`` pixels are left).

The accepted masks stay mutually exclusive; pixels no mask claims stay uncovered.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import scipy.ndimage

from fossil.numerics import mask_iou

Outcome = Literal["merged", "discarded", "accepted", "too_small"]
_FOUR_CONNECTED = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], bool)


@dataclass
class Regions:
    """Accepted, mutually exclusive masks of one image, each (H, W) bool."""

    shape: tuple[int, int]
    masks: list[np.ndarray] = field(default_factory=list)
    covered: np.ndarray = field(init=False)  # (H, W) bool: union of ``masks``
    owner: np.ndarray = field(init=False)  # (H, W) int: index of the mask holding a pixel, -1
    areas: list[int] = field(init=False)  # pixels per mask

    def __post_init__(self) -> None:
        self.covered = np.zeros(self.shape, bool)
        self.owner = np.full(self.shape, -1, np.int32)
        self.areas = []
        for index, mask in enumerate(self.masks):
            if (mask & self.covered).any():
                raise ValueError("initial masks must be mutually exclusive")
            self.covered |= mask
            self.owner[mask] = index
            self.areas.append(int(np.count_nonzero(mask)))

    def stack(self) -> np.ndarray:
        """(L, H, W) bool."""
        if not self.masks:
            return np.zeros((0, *self.shape), bool)
        return np.stack(self.masks)


def components(mask: np.ndarray, eta: float) -> list[np.ndarray]:
    """4-connected components of ``mask`` (H, W) with at least ``eta`` pixels, largest first."""
    labels, count = scipy.ndimage.label(mask, structure=_FOUR_CONNECTED)
    sizes = np.bincount(labels.ravel(), minlength=count + 1)[1:]
    order = [i for i in np.argsort(-sizes, kind="stable") if sizes[i] >= eta]
    return [labels == i + 1 for i in order]


def add_component(
    regions: Regions, component: np.ndarray, eta: float, mu: float, rho: float
) -> Outcome:
    """Apply the merge / discard / accept rules to one component (H, W) bool, in place.

    The overlaps with every accepted mask come from one count over the component's pixels of
    ``regions.owner``, so a component costs its own size, not the image's times the masks."""
    size = np.count_nonzero(component)
    owners = regions.owner[component]
    overlap = np.bincount(owners + 1, minlength=len(regions.masks) + 1)  # [uncovered, mask 0, ...]
    for index, intersection in enumerate(overlap[1:]):
        union = size + regions.areas[index] - intersection
        if union and intersection / union > mu:
            addition = component & (regions.owner < 0)  # pixels no other mask owns
            regions.masks[index] = regions.masks[index] | addition
            regions.covered |= addition
            regions.owner[addition] = index
            regions.areas[index] += int(np.count_nonzero(addition))
            return "merged"
    if size - overlap[0] > rho * size:
        return "discarded"
    fresh = component & ~regions.covered
    area = int(np.count_nonzero(fresh))
    if area < max(eta, 1):
        return "too_small"
    regions.owner[fresh] = len(regions.masks)
    regions.masks.append(fresh)
    regions.areas.append(area)
    regions.covered |= fresh
    return "accepted"


def majority_iou(mask: np.ndarray) -> float:
    """IoU of a patch-grid mask (h, w) bool with its 3×3 majority (5 of 9, edges repeated).

    About 1 for a region, about 0.5 or less for speckle (a cut of noise links): what decides,
    for a mask no CRF refines, whether it is a region at all (``OpenCutConfig.speckle_iou``)."""
    majority = scipy.ndimage.uniform_filter(mask.astype(np.float32), 3, mode="nearest") > 0.5
    return mask_iou(mask, majority, empty=1.0)


def refine(regions: Regions, mask: np.ndarray, eta: float, mu: float, rho: float) -> list[Outcome]:
    """Refine one new mask (H, W) bool into ``regions`` in place; one outcome per component
    that survived the ``eta`` filter."""
    if mask.shape != regions.shape:
        raise ValueError(f"mask has shape {mask.shape}, expected {regions.shape}")
    return [add_component(regions, c, eta, mu, rho) for c in components(mask, eta)]
