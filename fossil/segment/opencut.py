"""OpenCut (paper §3.4, design §5.7): MaskCut over a threshold schedule, CRF and refinement.

For each ``tau`` of ``config.taus`` (foreground phase, then background phase) MaskCut proposes
up to ``t`` raw masks (eqs. 1–3 in :mod:`fossil.segment.ncut`).  Each raw mask is upsampled to
the output size, passed through the CRF (when an image is given and the CRF is enabled) and
refined against the masks accepted so far (:mod:`fossil.segment.refine`): split into all its
connected components, components under ``eta`` pixels dropped, each remaining one merged
(IoU > ``mu``), discarded (more than ``rho`` covered) or accepted minus the covered pixels.

``config.variant`` says which graph each ``tau`` cuts:

- ``"paper"`` (default): every ``tau`` is one MaskCut run on the **full** patch graph, and each
  cut keeps its whole side (all components).  A later ``tau`` re-finds, merges or discards
  what an earlier one accepted: that is how the paper's OpenCut "refines these masks during
  iterations".
- ``"shrinking-graph"`` (fossil's first OpenCut, kept to measure against): each ``tau`` runs on
  the patches no accepted mask covers yet and each cut keeps only its seed's component
  (MaskCut's rule), so a new mask never overlaps an accepted one and ``mu``/``rho`` never fire.

Within one MaskCut run the masks found leave the graph (in both variants), so they are
disjoint and MaskCut's IoU-with-the-previous-mask rejection has nothing to reject
(:mod:`fossil.segment.maskcut`).  ``config.tau_space`` says what ``tau`` is: eq. 1's cosine
``threshold`` for each ``tau`` comes from :func:`fossil.segment.ncut.thresholds`.  When the
graph left is coherent (every pair linked) and ``accept_coherent_remainder`` is on (in the
cosine tau spaces only at a threshold ``≥ coherent_min_cosine``), that remainder is refined
like a mask instead of staying uncovered.  ``subdivide_depth > 0``
splits each final mask again (:mod:`fossil.segment.subdivide`, fossil's departure).  With
``config.crf.multi_label`` the per-mask CRF is replaced by one multi-label CRF over the final
masks (measured in ``benchmarks/opencut_bench.py``).

The raw masks' CRFs do not depend on each other or on the accepted masks, so they run before
the refinement, in ``config.crf.workers`` processes (:func:`fossil.segment.crf.crf_masks`):
all of them at the end in the ``"paper"`` variant (its MaskCut runs never look at the accepted
masks), after each ``tau`` in ``"shrinking-graph"``.  The refinement takes the masks in the
order they were found, so the result does not depend on the number of workers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from fossil.config import OpenCutConfig
from fossil.segment.crf import crf_labels, crf_masks
from fossil.segment.maskcut import maskcut
from fossil.segment.ncut import cosines, prepare_keys, thresholds
from fossil.segment.refine import Outcome, Regions, majority_iou, refine
from fossil.segment.subdivide import Split, subdivide

ETA_REFERENCE_PIXELS = 480 * 480  # design §5.7: eta in pixels of a 480² crop; scaled to the output


@dataclass(frozen=True)
class VariantRules:
    """The three rules that tell OpenCut's variants apart (``OpenCutConfig.variant``)."""

    full_graph: bool  # every tau cuts the full patch graph (else the patches no mask covers)
    whole_side: bool  # a cut keeps its whole side, all components (else the seed's component)
    refine_at_end: bool  # raw masks are refined after the last tau (else after each tau)

    def __post_init__(self) -> None:
        if self.refine_at_end and not self.full_graph:
            raise ValueError("refine_at_end needs full_graph: a shrinking graph needs the masks")


VARIANT_RULES: MappingProxyType[str, VariantRules] = MappingProxyType(
    {
        # the paper's: its MaskCut runs never look at the accepted masks, so the refinement
        # (and the CRFs before it) can wait for the last tau
        "paper": VariantRules(full_graph=True, whole_side=True, refine_at_end=True),
        # fossil's first OpenCut: the graph shrinks by the masks accepted so far, so they
        # must be refined before the next tau
        "shrinking-graph": VariantRules(full_graph=False, whole_side=False, refine_at_end=False),
    }
)


@dataclass
class OpenCutResult:
    """Masks plus the trace of how they were found."""

    masks: np.ndarray  # (L, H, W) bool, mutually exclusive
    taus: list[float]  # tau at which each mask was first accepted
    eigensolves: int = 0
    raw_masks: int = 0  # NCut masks proposed by MaskCut
    crf_dropped: int = 0  # raw masks dropped by the CRF IoU check
    crf_skipped: int = 0  # raw masks dropped before their CRF (``CRFConfig.survivors_only``)
    speckle_dropped: int = 0  # raw masks no CRF refined, dropped as speckle (majority_iou)
    outcomes: dict[str, int] = field(default_factory=dict)  # refinement outcome counts


def _resize(masks: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(L, h, w) → (L, H, W) float32 soft masks (bilinear up, area down)."""
    from fossil.segment.pooling import resize_masks  # imports torch

    return resize_masks(masks.astype(np.float32), size)


def _check_inputs(keys: np.ndarray, image: np.ndarray | None) -> None:
    if not isinstance(keys, np.ndarray) or keys.ndim != 3 or min(keys.shape) < 1:
        raise ValueError(f"keys must be an (h, w, dim) array, got {getattr(keys, 'shape', keys)}")
    if not np.isfinite(keys).all():
        raise ValueError("keys contain NaN or infinite values")
    if image is not None:
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
            raise ValueError(f"image must be a uint8 array, got {getattr(image, 'dtype', image)}")
        if image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) < 1:
            raise ValueError(f"image must be (H, W, 3) uint8, got shape {image.shape}")


class _Accumulator:
    """Accepted regions of one call and the bookkeeping of :class:`OpenCutResult`."""

    def __init__(self, grid: tuple[int, int], image: np.ndarray | None, config: OpenCutConfig):
        self.grid, self.image, self.config = grid, image, config
        shape = grid if image is None else image.shape[:2]
        self.regions = Regions(shape)
        pixels = shape[0] * shape[1]
        # eta never falls below one patch of the key grid: scaled to a 60² grid it is a
        # quarter patch, and every fragment of a cut would become a region
        self.eta = max(config.eta * pixels / ETA_REFERENCE_PIXELS, pixels / (grid[0] * grid[1]))
        # a mask no CRF refines is still the cut on the patch grid: a component of it under
        # min_area (the smallest mask MaskCut accepts) is a fragment of the cut, not a region
        self.eta_uncleaned = max(self.eta, config.min_area * pixels)
        self.use_crf = image is not None and config.crf.enabled and not config.crf.multi_label
        self.taus: list[float] = []
        self.crf_dropped = 0
        self.crf_skipped = 0
        self.speckle_dropped = 0
        self.outcomes: dict[str, int] = {}

    def active(self) -> np.ndarray:
        """(h, w) bool: patches not (mostly) covered by an accepted mask."""
        covered = self.regions.covered
        if covered.shape != self.grid:
            covered = _resize(covered[None], self.grid)[0] >= 0.5
        return ~covered

    def add(self, pending: list[tuple[np.ndarray, float, bool]]) -> None:
        """Upsample, CRF and refine raw (h, w) masks, given as ``(raw, tau, crf)`` in the
        order they were found.  Their CRFs are independent of each other and of the accepted
        masks, so they run first (in parallel, :func:`fossil.segment.crf.crf_masks`); the
        refinement then takes the masks in order.

        A raw mask no CRF will refine (no image, CRF off or multi-label, a coherent remainder)
        gets a drop rule on the grid instead: dropped when its 3×3 majority keeps less than
        ``speckle_iou`` of it (speckle, a cut of noise links), and its components must reach
        ``eta_uncleaned``."""
        cleaned = [crf and self.use_crf for _, _, crf in pending]
        kept = []
        for (raw, tau, _), crf in zip(pending, cleaned, strict=True):
            if not crf and majority_iou(raw) < self.config.speckle_iou:
                self.speckle_dropped += 1
            else:
                kept.append((raw, tau, crf))
        if not kept:
            return
        crf_ran: set[int] = set()  # masks whose CRF ran (a None from it: dropped by its IoU)
        if self.image is None:
            masks: list[np.ndarray | None] = [raw for raw, _, _ in kept]
        else:
            soft = _resize(np.stack([raw for raw, _, _ in kept]), self.image.shape[:2])
            masks = list(soft >= 0.5)
            wanted = [i for i, (_, _, crf) in enumerate(kept) if crf]
            if wanted and self.config.crf.survivors_only:
                survivors = self._survivors(list(soft >= 0.5))
                for i in wanted:
                    if not survivors[i]:
                        masks[i] = None
                        self.crf_skipped += 1
                wanted = [i for i in wanted if survivors[i]]
            refined = crf_masks(self.image, [soft[i] for i in wanted], self.config.crf)
            for i, mask in zip(wanted, refined, strict=True):
                masks[i] = mask
            crf_ran = set(wanted)
        for i, (mask, (_, tau, crf)) in enumerate(zip(masks, kept, strict=True)):
            if mask is not None:
                self._refine(mask, tau, self.eta if crf else self.eta_uncleaned)
            elif i in crf_ran:
                self.crf_dropped += 1

    def _survivors(self, masks: list[np.ndarray]) -> list[bool]:
        """For each raw mask (H, W) bool, in order: whether the refinement, run on the raw
        masks on top of the regions accepted so far, accepts any of its components as a new
        region (a mask whose components would all be merged, discarded or too small gets no
        CRF: a merge adds only the pixels no region owns; measured in docs/opencut-speed.md)."""
        regions = Regions(self.regions.shape, [mask.copy() for mask in self.regions.masks])
        mu, rho = self.config.mu, self.config.rho
        return ["accepted" in refine(regions, mask, self.eta, mu, rho) for mask in masks]

    def _refine(self, mask: np.ndarray, tau: float, eta: float) -> None:
        before = len(self.regions.masks)
        outcomes: list[Outcome] = refine(self.regions, mask, eta, self.config.mu, self.config.rho)
        for outcome in outcomes:
            self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
        self.taus += [tau] * (len(self.regions.masks) - before)


def run_opencut(
    keys: np.ndarray, image: np.ndarray | None = None, config: OpenCutConfig | None = None
) -> OpenCutResult:
    """OpenCut with its trace; ``keys`` (h, w, dim), ``image`` (H, W, 3) uint8 or ``None``.

    Masks come back at the image size (with CRF) or, without an image, on the patch grid."""
    config = OpenCutConfig() if config is None else config
    _check_inputs(keys, image)
    features = prepare_keys(keys, config.tau_space)
    h, w, _ = features.shape
    rules = VARIANT_RULES[config.variant]
    acc = _Accumulator((h, w), image, config)
    eigensolves = raw_masks = 0
    schedule = [(tau, True) for tau in config.tau_foreground]
    schedule += [(tau, False) for tau in config.tau_background]
    W = cosines(features)  # once for the whole schedule: every tau and cut slices it
    # eq. 1's cosine threshold for each tau of the schedule (tau is in tau_space units)
    cosine_thresholds = thresholds(features, config.taus, config.tau_space, W)
    pending: list[tuple[np.ndarray, float, bool]] = []  # raw masks not refined yet
    for (tau, foreground), threshold in zip(schedule, cosine_thresholds, strict=True):
        result = maskcut(
            features,
            threshold,
            config.t,
            active=None if rules.full_graph else acc.active(),
            min_area=config.min_area,
            corner_flip=config.corner_flip and foreground,
            solver=config.solver,
            seed_component_only=not rules.whole_side,
            W=W,
        )
        eigensolves += result.eigensolves
        raw_masks += len(result.masks)
        pending += [(raw, tau, True) for raw in result.masks]
        remainder = result.remaining
        if (
            result.stop == "coherent"
            and config.accept_coherent_remainder
            and (config.tau_space == "quantile" or threshold >= config.coherent_min_cosine)
            and remainder is not None
            and remainder.any()
        ):
            pending.append((remainder, tau, False))
        if not rules.refine_at_end:
            acc.add(pending)
            pending = []
    acc.add(pending)
    masks, taus = acc.regions.stack(), acc.taus
    if config.subdivide_depth:
        split = Split(
            threshold=cosine_thresholds[-1],
            depth=config.subdivide_depth,
            t=config.t,
            min_area=config.min_area,
            solver=config.solver,
            seed_component_only=not rules.whole_side,
        )
        masks, parents = subdivide(masks, features, split)
        taus = [taus[p] for p in parents]
    if image is not None and config.crf.enabled and config.crf.multi_label and len(masks):
        masks = crf_labels(image, masks, config.crf)
        kept = [bool(m.any()) for m in masks]
        acc.crf_dropped = kept.count(False)
        masks, taus = masks[kept], [tau for tau, k in zip(taus, kept, strict=True) if k]
    return OpenCutResult(
        masks=masks,
        taus=taus,
        eigensolves=eigensolves,
        raw_masks=raw_masks,
        crf_dropped=acc.crf_dropped,
        crf_skipped=acc.crf_skipped,
        speckle_dropped=acc.speckle_dropped,
        outcomes=acc.outcomes,
    )


def opencut(
    keys: np.ndarray, image: np.ndarray | None = None, config: OpenCutConfig | None = None
) -> np.ndarray:
    """OpenCut masks: ``keys`` (h, w, dim) patch features (DINO keys, design §5.7) → (L, H, W) bool.

    With ``image`` (H, W, 3) uint8 the masks are at the image resolution and the CRF runs (if
    ``config.crf.enabled``); without it they stay on the (h, w) patch grid and no CRF runs.
    The L masks are mutually exclusive; pixels no mask covers are left uncovered."""
    return run_opencut(keys, image, config).masks
