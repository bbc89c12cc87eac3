"""Dense CRF post-processing of OpenCut masks, as in MaskCut (design §5.7).

``crf_mask`` is MaskCut's per-mask CRF: a 2-label dense CRF whose unary is the softmax over
``[1 − m, m]`` of the soft mask, Gaussian and bilateral pairwise terms, holes filled after the
MAP; the mask is dropped when IoU(before, after) < ``min_iou``.  ``crf_labels`` is the cheaper
variant measured in ``benchmarks/opencut_bench.py``: one multi-label CRF over all masks plus
"uncovered" (label 0).  pydensecrf comes from the ``pydensecrf2`` distribution.

``crf_masks`` runs ``crf_mask`` on several masks of one image, in ``config.workers`` processes:
pydensecrf holds the GIL, so threads would not overlap, and a crop's CRFs are independent of
each other.  The processes are started once ("spawn", safe beside torch's threads and a
server's) and reused; a script that calls fossil with ``workers != 1`` needs the usual
``if __name__ == "__main__":`` guard, as any multiprocessing program does.  They end with
their parent however it ends (:func:`fossil.processes.exit_with_parent`, ``kill -9``
included), and :func:`shutdown_pools` ends them at once (``fossil serve`` calls it on its way
out, e.g. on SIGTERM).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from itertools import repeat

import numpy as np
import scipy.ndimage

from fossil.config import CRFConfig
from fossil.numerics import mask_iou
from fossil.processes import exit_with_parent

logger = logging.getLogger(__name__)
_POOLS: dict[int, ProcessPoolExecutor] = {}


def _check_image(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
    if image.shape[:2] != shape:
        raise ValueError(f"image is {image.shape[:2]} but the masks are {shape}")
    return np.ascontiguousarray(image)


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=0, keepdims=True))
    return e / e.sum(axis=0, keepdims=True)


def crf_inference(image: np.ndarray, probabilities: np.ndarray, config: CRFConfig) -> np.ndarray:
    """Dense CRF MAP labels (H, W) int from ``probabilities`` (labels, H, W) and ``image``."""
    import pydensecrf.densecrf as dcrf
    from pydensecrf.utils import unary_from_softmax

    labels, height, width = probabilities.shape
    image = _check_image(image, (height, width))
    crf = dcrf.DenseCRF2D(width, height, labels)
    crf.setUnaryEnergy(np.ascontiguousarray(unary_from_softmax(probabilities.astype(np.float32))))
    crf.addPairwiseGaussian(sxy=config.gaussian_sxy, compat=config.gaussian_compat)
    crf.addPairwiseBilateral(
        sxy=config.bilateral_sxy,
        srgb=config.bilateral_srgb,
        rgbim=np.require(image, np.uint8, ["C", "W"]),  # pydensecrf refuses read-only buffers
        compat=config.bilateral_compat,
    )
    Q = np.asarray(crf.inference(config.iterations)).reshape(labels, height, width)
    return Q.argmax(axis=0)


def crf_mask(image: np.ndarray, soft_mask: np.ndarray, config: CRFConfig) -> np.ndarray | None:
    """MaskCut's CRF on one mask.

    ``image`` (H, W, 3) uint8, ``soft_mask`` (H, W) in [0, 1] (the raw NCut mask upsampled).
    Returns the refined mask (H, W) bool with holes filled, or ``None`` when its IoU with
    ``soft_mask ≥ 0.5`` is below ``config.min_iou``."""
    m = np.clip(soft_mask.astype(np.float32), 0.0, 1.0)
    after = crf_inference(image, _softmax(np.stack([1.0 - m, m])), config) == 1
    after = scipy.ndimage.binary_fill_holes(after)
    before = m >= 0.5
    return after if mask_iou(before, after) >= config.min_iou else None


def crf_labels(image: np.ndarray, masks: np.ndarray, config: CRFConfig) -> np.ndarray:
    """One multi-label CRF over all masks: ``masks`` (L, H, W) soft or bool, mutually
    exclusive → refined (L, H, W) bool.  Label 0 is "uncovered" (the rest of the image); a
    refined mask whose IoU with its input (≥ 0.5) is below ``config.min_iou`` comes back empty.
    """
    masks = np.clip(masks.astype(np.float32), 0.0, 1.0)
    uncovered = np.clip(1.0 - masks.sum(axis=0, keepdims=True), 0.0, 1.0)
    probabilities = _softmax(np.concatenate([uncovered, masks]))  # one-hot logits → softmax
    labels = crf_inference(image, probabilities, config)
    refined = np.stack([labels == i + 1 for i in range(len(masks))]) if len(masks) else masks > 0
    for i in range(len(masks)):
        before = masks[i] >= 0.5
        after = scipy.ndimage.binary_fill_holes(refined[i]) & ~np.delete(refined, i, 0).any(0)
        refined[i] = after if mask_iou(before, after) >= config.min_iou else False
    return refined


def cpu_workers(workers: int) -> int:
    """``workers`` processes, ``0`` meaning one per CPU core this process may use."""
    if workers < 0:
        raise ValueError(f"workers ({workers}) must be >= 0")
    if workers:
        return workers
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity else os.cpu_count() or 1


def _pool(workers: int) -> ProcessPoolExecutor:
    pool = _POOLS.get(workers)
    if pool is None:
        context = multiprocessing.get_context("spawn")
        pool = ProcessPoolExecutor(workers, mp_context=context, initializer=exit_with_parent)
        _POOLS[workers] = pool
    return pool


def shutdown_pools() -> None:
    """End the CRF worker processes now (queued CRFs are cancelled); a later
    :func:`crf_masks` starts new ones."""
    while _POOLS:
        _, pool = _POOLS.popitem()
        pool.shutdown(wait=True, cancel_futures=True)


def crf_masks(
    image: np.ndarray, soft_masks: Sequence[np.ndarray], config: CRFConfig
) -> list[np.ndarray | None]:
    """:func:`crf_mask` on each of ``soft_masks`` (each (H, W), the same ``image``), in order.

    With ``config.workers != 1`` and more than one mask they run in a pool of
    :func:`cpu_workers` processes; the results are the same as in this process.  A pool whose
    process died is dropped and the masks run here."""
    workers = cpu_workers(config.workers)
    if min(workers, len(soft_masks)) > 1:
        try:
            return list(_pool(workers).map(crf_mask, repeat(image), soft_masks, repeat(config)))
        except BrokenProcessPool:
            _POOLS.pop(workers, None)
            logger.warning("a CRF worker process died; running the CRFs in this process")
    return [crf_mask(image, mask, config) for mask in soft_masks]
