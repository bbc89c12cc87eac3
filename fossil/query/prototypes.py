"""Prototypes of a concept: K-Means on its references' Visual Reference Embeddings (design §5.6).

Decision (the paper is silent): the VREs are L2-normalised and clustered with *spherical*
K-Means (faiss ``spherical=True``: assignment by cosine, centroids re-normalised after each
step).  Everything downstream compares by cosine (scoring, eq. 5), so clustering by cosine
groups references the way they will be used, and a few VREs with a large norm (big masks,
saturated features) cannot pull centroids towards themselves.  Prototypes are returned with
unit norm.  ``prototype_mean`` is the K=1 case: the normalised mean of the normalised VREs.

Pure functions over arrays; faiss's OpenMP thread count is set for the duration of a call
and restored (small problems run far faster on one thread, design §10).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import numpy as np

from fossil.config import RetrievalConfig
from fossil.numerics import l2_normalise

# Below this many multiply-adds per iteration (n · K · dim) K-Means runs on one thread:
# OpenMP start-up and oversubscription cost more than the work (design §10).
_SMALL_PROBLEM = 1 << 26


@dataclass(frozen=True)
class KMeansParams:
    """How faiss K-Means runs (design §5.6); the defaults are :class:`RetrievalConfig`'s."""

    niter: int = 20  # iterations
    nredo: int = 1  # restarts, the best kept
    seed: int = 1234  # seeds the k-means++ start and faiss (same inputs: same prototypes)
    use_gpu: bool | None = None  # None: a GPU when faiss-gpu sees one

    @classmethod
    def from_config(cls, config: RetrievalConfig, use_gpu: bool | None = None) -> KMeansParams:
        return cls(niter=config.niter, nredo=config.nredo, seed=config.seed, use_gpu=use_gpu)


def effective_k(n: int, K: int) -> int:
    """Prototypes for a concept with ``n`` references when ``K`` were asked: ``min(K, n)``."""
    if K < 1:
        raise ValueError(f"K ({K}) must be >= 1")
    return max(1, min(K, n))


def gpu_available() -> bool:
    """True when faiss was built with GPU support and sees a CUDA device."""
    import faiss

    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


@contextmanager
def faiss_threads(num_threads: int) -> Iterator[None]:
    """Run the block with faiss's OpenMP pool at ``num_threads``, then restore it."""
    import faiss

    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(num_threads)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(previous)


@contextmanager
def single_threaded() -> Iterator[None]:
    """Run the block with every BLAS/OpenMP pool at one thread, then restore them.

    Many small (N × dim) products are 10× slower with two BLAS threads on a busy 2-core
    machine (oversubscription, design §10); entering costs ~1 ms, so wrap a batch."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1), faiss_threads(1):
        yield


def mean_prototype(visual: np.ndarray) -> np.ndarray:
    """``visual`` (n, dim) → (1, dim): the unit-norm mean of the unit-norm VREs."""
    _check_visual(visual)
    return l2_normalise(l2_normalise(visual).mean(axis=0, keepdims=True))


def kmeanspp_init(x: np.ndarray, K: int, rng: np.random.Generator) -> np.ndarray:
    """Greedy k-means++ seeding (as scikit-learn's): ``x`` (n, dim) unit rows → (K, dim) rows
    of ``x``.  Each step draws ``2 + ⌊ln K⌋`` candidates with probability ∝ the squared
    distance to the nearest seed so far and keeps the one that lowers the total most."""
    n = len(x)
    trials = 2 + int(np.log(K))
    squared = np.maximum(2.0 - 2.0 * (x @ x.T), 0.0)  # (n, n) ‖a−b‖² of unit vectors
    chosen = [int(rng.integers(n))]
    nearest = squared[chosen[0]]
    for _ in range(1, K):
        cumulative = np.cumsum(nearest)
        total = float(cumulative[-1])
        if total <= 0.0:  # fewer distinct points than K: take any not chosen yet
            candidates = rng.choice(np.setdiff1d(np.arange(n), chosen), size=1)
        else:  # inverse CDF: P(i) ∝ nearest[i]
            draws = np.searchsorted(cumulative, rng.random(trials) * total, side="right")
            candidates = np.minimum(draws, n - 1)
        updated = np.minimum(nearest[:, None], squared[:, candidates])  # (n, trials)
        best = int(np.argmin(updated.sum(axis=0)))
        chosen.append(int(candidates[best]))
        nearest = updated[:, best]
    return x[chosen].copy()


def kmeans_prototypes(visual: np.ndarray, K: int, params: KMeansParams | None = None) -> np.ndarray:
    """Spherical K-Means: ``visual`` (n, dim) VREs → (K, dim) unit-norm prototypes.

    faiss K-Means (``params.niter`` iterations, ``min_points_per_centroid=1``, no
    subsampling) started from greedy k-means++ seeds drawn with ``params.seed`` — faiss's own
    start (K random points) often puts two seeds in one cluster and misses another, which
    planted clusters show.  ``params.nredo`` restarts keep the best (highest total cosine to
    the nearest prototype).  ``K`` must be ≤ n (see :func:`effective_k`).  The same inputs
    and seed give the same prototypes.
    """
    import faiss

    params = KMeansParams() if params is None else params
    niter, nredo, seed, use_gpu = params.niter, params.nredo, params.seed, params.use_gpu
    _check_visual(visual)
    n, dim = visual.shape
    if not 1 <= K <= n:
        raise ValueError(f"K ({K}) must be between 1 and the number of references ({n})")
    x = np.ascontiguousarray(l2_normalise(visual))
    if K == n:  # every reference is its own prototype
        return x.copy()
    gpu = gpu_available() if use_gpu is None else use_gpu
    if gpu and not gpu_available():
        raise ValueError(
            "use_gpu=True but faiss sees no GPU (faiss-cpu installed, or no CUDA device); "
            "install the GPU build (`pip install 'fossil-ovss[gpu]'`, see README) or pass "
            "use_gpu=None"
        )
    rng = np.random.default_rng(seed)
    threads = 1 if n * K * dim < _SMALL_PROBLEM else faiss.omp_get_max_threads()
    best, best_fit = x[:K], -np.inf
    with faiss_threads(threads):
        for _ in range(nredo):
            kmeans = faiss.Kmeans(
                dim,
                K,
                niter=niter,
                seed=int(rng.integers(2**31)),
                spherical=True,
                min_points_per_centroid=1,
                max_points_per_centroid=n,  # never subsample: n is small (N references)
                gpu=gpu,
                verbose=False,
            )
            kmeans.train(x, init_centroids=kmeanspp_init(x, K, rng))
            centroids = l2_normalise(np.asarray(kmeans.centroids).reshape(K, dim))
            if nredo == 1:
                return centroids
            fit = float((x @ centroids.T).max(axis=1).sum())
            if fit > best_fit:
                best, best_fit = centroids, fit
    return best


def concept_prototypes(
    visual: np.ndarray,
    K: int,
    *,
    prototype_mean: bool = False,
    params: KMeansParams | None = None,
) -> np.ndarray:
    """Prototypes of one concept: ``visual`` (n, dim) → (K_c, dim), ``K_c = effective_k(n, K)``,
    or (1, dim) with ``prototype_mean``."""
    if prototype_mean:
        return mean_prototype(visual)
    _check_visual(visual)
    return kmeans_prototypes(visual, effective_k(len(visual), K), params)


def batch_prototypes(
    visuals: Sequence[np.ndarray],
    K: int,
    *,
    prototype_mean: bool = False,
    params: KMeansParams | None = None,
) -> list[np.ndarray]:
    """:func:`concept_prototypes` for many concepts: ``visuals`` [(n_c, dim)] → [(K_c, dim)].
    Small problems run single-threaded (see :func:`single_threaded`)."""
    small = all(len(v) * K * v.shape[-1] < _SMALL_PROBLEM for v in visuals)
    with single_threaded() if small else nullcontext():
        return [
            concept_prototypes(v, K, prototype_mean=prototype_mean, params=params) for v in visuals
        ]


def _check_visual(visual: np.ndarray) -> None:
    if not isinstance(visual, np.ndarray) or visual.ndim != 2:
        shape = getattr(visual, "shape", type(visual).__name__)
        raise ValueError(f"visual must be an (n, dim) array, got {shape}")
    if len(visual) == 0:
        raise ValueError("visual has no rows: a concept needs at least one reference")
    if not np.isfinite(visual).all():
        raise ValueError("visual contains NaN or infinite values")
