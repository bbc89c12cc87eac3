"""The two array formulas several layers share: unit rows for cosines, and the IoU of masks.

``l2_normalise`` is what every cosine in fossil goes through (design §5.5 text embeddings,
§5.6 prototypes, §5.7 NCut's patch graph, eq. 5's scores); ``mask_iou`` is the overlap that
MaskCut's CRF check and the speckle rule compare (design §5.7).  This module imports nothing of
fossil's, so every layer may use it.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import DTypeLike


def l2_normalise(x: np.ndarray, eps: float = 1e-12, dtype: DTypeLike = np.float32) -> np.ndarray:
    """``x`` (..., dim) → (..., dim) of ``dtype``: the last axis scaled to unit L2 norm, in
    ``dtype`` (a norm below ``eps`` divides by ``eps``, so zero rows stay zero)."""
    x = np.asarray(x, dtype=dtype)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), eps)


def mask_iou(a: np.ndarray, b: np.ndarray, empty: float = 0.0) -> float:
    """IoU of two boolean masks of the same shape; ``empty`` when both are empty."""
    union = np.count_nonzero(a | b)
    return np.count_nonzero(a & b) / union if union else empty
