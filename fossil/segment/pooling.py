"""Region pooling, paper eq. 4: the mean of dense features weighted by a (soft) mask.

Used by ingest (Visual Reference Embedding of a noun mask, design §5.4) and by scoring
(region embedding of an OpenCut mask, design §5.8).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def resize_masks(masks: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(L, H, W) bool/float masks → (L, h, w) float32 soft masks in [0, 1], ``size = (h, w)``
    smaller or larger than (H, W).

    Shrinking (to a patch grid) uses area averaging, so each weight is the fraction of the
    patch the mask covers (thin regions keep their weight, which plain bilinear sampling would
    drop); enlarging (a patch-grid mask to the image) uses bilinear interpolation
    (``align_corners=False``)."""
    if masks.ndim != 3:
        raise ValueError(f"masks must be (L, H, W), got shape {masks.shape}")
    m = torch.from_numpy(np.ascontiguousarray(masks, dtype=np.float32))[:, None]
    if m.shape[-2:] == size:
        return m[:, 0].numpy()
    if m.shape[-2] >= size[0] and m.shape[-1] >= size[1]:
        out = F.interpolate(m, size=size, mode="area")
    else:
        out = F.interpolate(m, size=size, mode="bilinear", align_corners=False)
    return out[:, 0].clamp_(0.0, 1.0).numpy()


def region_pool(features: np.ndarray, masks: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Eq. 4: ``features`` (h, w, dim), ``masks`` (L, H, W) → (L, dim).

    Each mask is downsampled to (h, w) as soft weights ``m``; the region embedding is
    ``Σ m·f / Σ m``.  A mask with no weight on the grid gives a zero row.
    """
    if features.ndim != 3:
        raise ValueError(f"features must be (h, w, dim), got shape {features.shape}")
    h, w, dim = features.shape
    weights = resize_masks(masks, (h, w)).reshape(len(masks), h * w)  # (L, h·w)
    pooled = weights @ features.reshape(h * w, dim).astype(np.float32)  # (L, dim)
    total = weights.sum(axis=1, keepdims=True)
    return np.where(total > eps, pooled / np.maximum(total, eps), 0.0).astype(np.float32)
