"""Region scoring, paper eq. 5 (design §5.8), and the pixel label map.

``s_k = sigmoid(cos(region, prototype_k))`` and
``score = (1 − γ)·mean_k s_k + γ·max_k s_k``.  With ``sigmoid_after_ensemble`` (FreeDA's
order) the mean/max mix is taken over the cosines and the sigmoid applied last.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fossil.numerics import l2_normalise


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _check_prototypes(prototypes: Sequence[np.ndarray], dim: int) -> None:
    if len(prototypes) == 0:
        raise ValueError("prototypes must hold at least one concept, got none")
    for c, p in enumerate(prototypes):
        if p.ndim != 2 or p.shape[0] < 1 or p.shape[1] != dim:
            raise ValueError(f"prototypes[{c}] must be (K, {dim}) with K >= 1, got {p.shape}")


def score_regions(
    regions: np.ndarray,
    prototypes: Sequence[np.ndarray],
    gamma: float,
    sigmoid_after_ensemble: bool = False,
) -> np.ndarray:
    """Eq. 5: ``regions`` (L, dim), ``prototypes`` one (K_c, dim) array per concept → (L, C).

    K_c may differ per concept.  A zero region (empty mask) has cosine 0 with everything."""
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma ({gamma}) must be in [0, 1]")
    if regions.ndim != 2:
        raise ValueError(f"regions must be (L, dim), got shape {regions.shape}")
    _check_prototypes(prototypes, regions.shape[1])
    r = l2_normalise(regions, dtype=np.float64)
    scores = np.empty((len(regions), len(prototypes)), np.float64)
    for c, p in enumerate(prototypes):
        cos = r @ l2_normalise(p, dtype=np.float64).T  # (L, K_c)
        if sigmoid_after_ensemble:
            scores[:, c] = _sigmoid((1.0 - gamma) * cos.mean(1) + gamma * cos.max(1))
        else:
            s = _sigmoid(cos)
            scores[:, c] = (1.0 - gamma) * s.mean(1) + gamma * s.max(1)
    return scores.astype(np.float32)


@dataclass(frozen=True)
class ScoreMap:
    """A crop's scores: per pixel, and per region with the region embeddings they came from."""

    scores: np.ndarray  # (C, H, W) float32 eq. 5 scores per pixel
    embeddings: np.ndarray  # (L, dim) float32 region embeddings (eq. 4), one per mask
    region_scores: np.ndarray  # (L, C) float32 eq. 5 scores of the regions


def score_map(
    features: np.ndarray,
    masks: np.ndarray,
    prototypes: Sequence[np.ndarray],
    gamma: float,
    sigmoid_after_ensemble: bool = False,
) -> ScoreMap:
    """Per-pixel concept scores (C, H, W) float32, with the regions' embeddings and scores.

    ``features`` (h, w, dim) dense features; ``masks`` (L, H, W) bool, mutually exclusive (L
    may be 0).  Pixels inside a mask get the scores of the mask's region embedding (eq. 4);
    uncovered pixels get the scores of their own patch, upsampled bilinearly to (H, W).  With
    no mask this is the per-patch labelling (the paper's Fig. 3 ablation)."""
    from fossil.segment.pooling import region_pool, resize_masks  # imports torch

    if features.ndim != 3:
        raise ValueError(f"features must be (h, w, dim), got shape {features.shape}")
    if masks.ndim != 3 or masks.dtype != bool:
        raise ValueError(f"masks must be (L, H, W) bool, got {masks.shape} {masks.dtype}")
    if masks.sum(axis=0).max(initial=0) > 1:
        raise ValueError("masks must be mutually exclusive")
    h, w, dim = features.shape
    size = masks.shape[1:]
    patch = score_regions(features.reshape(h * w, dim), prototypes, gamma, sigmoid_after_ensemble)
    patch = patch.T.reshape(-1, h, w)  # (C, h, w)
    out = resize_masks(patch, size) if (h, w) != size else patch.copy()
    embeddings = np.zeros((0, dim), np.float32)
    region = np.zeros((0, len(prototypes)), np.float32)
    if len(masks):
        embeddings = region_pool(features, masks)  # (L, dim)
        region = score_regions(embeddings, prototypes, gamma, sigmoid_after_ensemble)  # (L, C)
        owner = np.where(masks.any(0), masks.argmax(0), -1)  # (H, W): mask index or -1
        inside = owner >= 0
        out[:, inside] = region[owner[inside]].T
    return ScoreMap(out.astype(np.float32), embeddings, region)


def label_map(scores: np.ndarray) -> np.ndarray:
    """(C, H, W) scores → (H, W) int64 concept index (argmax)."""
    if scores.ndim != 3 or scores.shape[0] < 1:
        raise ValueError(f"scores must be (C, H, W) with C >= 1, got shape {scores.shape}")
    return scores.argmax(axis=0)
