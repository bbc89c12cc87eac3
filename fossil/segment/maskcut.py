"""MaskCut at one threshold of eq. 1 (design §5.7): up to ``t`` NCut masks, each leaving the graph.

After each mask its patches are dropped from the graph (their nodes are removed; zeroing the
features instead would make them similar to everything once ``threshold ≤ 0``).  A mask covering at
most ``min_area`` of the grid is rejected, ending the threshold.  The loop stops early when
``W̄`` has nothing left to cut (all 1 or all ε off the diagonal).

Because the nodes of each mask leave the graph, the masks of one run are disjoint, so
MaskCut's other rejection (IoU > 0.5 with the previous mask: CutLER zeroes the features,
which lets a mask come back) cannot fire here and is not implemented.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from fossil.config import Solver
from fossil.segment.ncut import ncut, sub_graph

StopReason = Literal["t_reached", "coherent", "incoherent", "rejected", "exhausted"]


@dataclass
class MaskCutResult:
    """Raw masks of one threshold and why the loop ended."""

    masks: list[np.ndarray] = field(default_factory=list)  # each (h, w) bool
    stop: StopReason = "t_reached"
    eigensolves: int = 0
    remaining: np.ndarray | None = None  # (h, w) bool: active patches when the loop ended


def maskcut(
    features: np.ndarray,
    threshold: float,
    t: int,
    active: np.ndarray | None = None,
    min_area: float = 0.01,
    corner_flip: bool = False,
    solver: Solver = "auto",
    seed_component_only: bool = True,
    W: np.ndarray | None = None,
) -> MaskCutResult:
    """Up to ``t`` masks at eq. 1's cosine ``threshold``.

    ``features`` (h, w, dim) L2-normalised patch features; ``active`` (h, w) bool: patches still
    in the graph (default all); ``seed_component_only``: MaskCut's rule (keep the seed's
    connected component) or the paper's OpenCut (the whole side of the cut, see
    :func:`fossil.segment.ncut.bipartition`); ``W`` (h·w, h·w): the grid's cosines
    (:func:`fossil.segment.ncut.cosines`) when the caller has them, else those of the active
    patches are computed once here.  Returns the raw masks (h, w) bool in discovery order; the
    patches of each mask leave the graph before the next NCut."""
    h, w, _ = features.shape
    if t < 1:
        raise ValueError(f"t ({t}) must be >= 1")
    active = np.ones((h, w), bool) if active is None else active.copy()
    if active.shape != (h, w):
        raise ValueError(f"active has shape {active.shape}, expected {(h, w)}")
    result = MaskCutResult()
    nodes = np.flatnonzero(active)  # the graph of this run: cos > threshold between its nodes, once
    if W is None:
        F = features.reshape(-1, features.shape[-1])[nodes]
        linked = F @ F.T > threshold
    else:
        linked = (W if len(nodes) == len(W) else sub_graph(W, nodes)) > threshold
    for _ in range(t):
        if np.count_nonzero(active) < 2:
            result.stop = "exhausted"
            break
        kept = np.flatnonzero(active.ravel()[nodes])  # active nodes among the run's
        cut = ncut(
            features,
            active,
            threshold,
            solver=solver,
            corner_flip=corner_flip,
            seed_component_only=seed_component_only,
            linked=linked if len(kept) == len(nodes) else sub_graph(linked, kept),
        )
        if isinstance(cut, str):
            result.stop = cut  # type: ignore[assignment]
            break
        result.eigensolves += 1
        if np.count_nonzero(cut) <= min_area * h * w:
            result.stop = "rejected"
            break
        result.masks.append(cut)
        active &= ~cut
    result.remaining = active
    return result
