"""Normalized Cut bipartition of a patch graph, paper eqs. 1–3 (design §5.7).

One NCut step on ``num_patches`` L2-normalised patch features ``F``, numbered as the paper:

- eq. 1, the threshold: ``W = cos(F)``; ``W̄ = 1 where W > threshold`` (strict) ``else
  EPSILON_WEIGHT``;
- eq. 2, the eigensystem: ``D = diag(rowsum W̄)``; ``x`` = second-smallest generalised
  eigenvector of ``(D − W̄) x = λ D x``;
- eq. 3, the mask: the bipartition ``x > mean(x)``.

The fast solvers work on the symmetric form ``M = D^-½ W̄ D^-½``: its eigenvalues are
``1 − λ``, so the second-*largest* eigenvector ``v`` of ``M`` gives ``x = D^-½ v``.  The
dense ``scipy.linalg.eigh(D − W̄, D)`` solver is the reference used in tests and benchmarks.
The largest eigenvector of ``M`` is known, ``D^½ 1`` (eigenvalue 1), so the ``lanczos`` solver
(the CPU default) runs plain Lanczos on ``M`` restricted to its orthogonal complement, from
the same start vector as ``eigsh``, and stops at a residual of ``1e-12``: the spectra of these
graphs (a few large eigenvalues, the rest near 0) converge in 10–20 products, each one a
BLAS ``symv`` that reads one triangle of ``W̄`` (measured in ``docs/opencut-speed.md``).
The cosines of a grid are computed once and shared by every threshold and cut
(:func:`cosines`; a sub-block of them equals the Gram matrix of the sub-grid bit for bit).

The seed is ``argmax |x|`` and the partition is flipped when the seed lies outside it
(optionally also when ≥ 3 of the 4 grid corners lie inside, as in MaskCut).  MaskCut keeps only
the 4-connected component of the seed; the paper's OpenCut keeps the whole side (all its
components, which the refinement then splits, design §5.7): ``seed_component_only``.

Two numbers are kept apart: ``tau``, a value of OpenCut's schedule in its ``tau_space``, and
``threshold``, eq. 1's cosine, which :func:`thresholds` derives from a ``tau``; every function
that builds a graph takes the ``threshold``.  What ``tau`` means is the ``tau_space``
(:func:`prepare_keys`, :func:`thresholds`):

- ``"absolute"``: a cosine of the L2-normalised keys (the paper's; its values were set on DINO
  ViT-B/8 keys, MaskCut's tau = 0.15 too);
- ``"centred"``: a cosine of the keys minus their per-image mean ("more alike than the
  image's average patch");
- ``"quantile"``: a fraction of the image's patch pairs: the cosine threshold is the
  ``tau``-quantile of the off-diagonal cosines of the whole image, so ``W̄`` links the
  ``1 − tau`` most similar pairs whatever the backbone's cosine range (DINOv2's last-layer
  keys of one photo all have cosines 0.75–0.96: every absolute tau ≤ 0.7 links every pair).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
import scipy.linalg
import scipy.ndimage
import scipy.sparse.linalg

from fossil.config import SOLVERS, TAU_SPACES, Solver, TauSpace
from fossil.numerics import l2_normalise

EPSILON_WEIGHT = 1e-5  # eq. 1: weight of an edge whose cosine is at most the threshold
_MIN_EIGSH_NODES = 64  # below this a dense solve of the symmetric form is cheaper than ARPACK
_EIGSH_NCV = 20  # ARPACK's Krylov space (default 2k + 1 = 5)
_EIGSH_MAXITER = 60  # ARPACK restarts before falling back to the dense solve
_LANCZOS_TOL = 1e-12  # stop at this residual ‖M y − θ y‖ of the Ritz pair (‖M‖ = 1)
# Lanczos steps before falling back to ARPACK: planted and real graphs converge in 10-35 (more
# than 40 for the real ARC keys at the last quantile tau, 0.9); an unstructured random graph
# (a flat spectrum) does not converge in 80
_LANCZOS_MAX_STEPS = 80
_FOUR_CONNECTED = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], bool)


def prepare_keys(keys: np.ndarray, tau_space: TauSpace = "absolute") -> np.ndarray:
    """The features the graph is built on: ``keys`` (h, w, dim) → L2-normalised (h, w, dim).

    ``"centred"``: the per-image mean of the L2-normalised keys subtracted, then L2-normalised
    again, so the cosines are spread around 0; otherwise the keys L2-normalised."""
    if tau_space not in TAU_SPACES:
        raise ValueError(f"tau_space {tau_space!r} unknown; choose one of {TAU_SPACES}")
    features = l2_normalise(keys)
    if tau_space == "centred":
        flat = features.reshape(-1, features.shape[-1])
        features = l2_normalise(features - flat.mean(axis=0))
    return features


def cosines(features: np.ndarray) -> np.ndarray:
    """``W = cos(F)`` of eq. 1 for a whole grid: ``features`` (h, w, dim) L2-normalised →
    (h·w, h·w) float32, patches in row-major order."""
    F = features.reshape(-1, features.shape[-1])
    return F @ F.T


def thresholds(
    features: np.ndarray,
    taus: Sequence[float],
    tau_space: TauSpace = "absolute",
    W: np.ndarray | None = None,
) -> list[float]:
    """The cosine threshold of eq. 1 for each ``tau``, given the prepared ``features``
    (h, w, dim).  ``"quantile"``: the ``tau``-quantile of the image's off-diagonal cosines
    (``tau`` in [0, 1]); other spaces: ``tau`` itself.  ``W``: :func:`cosines` of ``features``
    when the caller has them."""
    if tau_space != "quantile":
        return [float(tau) for tau in taus]
    if any(not 0.0 <= tau <= 1.0 for tau in taus):
        raise ValueError(f"quantile taus must be in [0, 1], got {tuple(taus)}")
    return _off_diagonal_quantiles(cosines(features) if W is None else W, list(taus))


def _off_diagonal_quantiles(W: np.ndarray, taus: list[float]) -> list[float]:
    """``np.quantile(W[~eye], taus)`` of a symmetric ``W`` (n, n), bit for bit, from its upper
    triangle only (half the values to partition, no boolean mask of n² entries).

    The off-diagonal values are the upper triangle's ``m`` values twice, so the sorted
    ``2m`` values are ``u[k // 2]`` at rank ``k``; numpy's linear method interpolates between
    the ranks around ``(2m − 1) · tau``, which ``np.quantile`` of those two values repeats
    (``[gamma]`` as a list, as numpy computes a list of taus, in float64)."""
    n = len(W)
    upper = np.concatenate([W[i, i + 1 :] for i in range(n - 1)])
    last = 2 * len(upper) - 1  # rank of the largest of the 2m values
    ranks = [(math.floor(last * tau), last * tau) for tau in taus]
    ranks_needed = {k // 2 for k, _ in ranks} | {min(k + 1, last) // 2 for k, _ in ranks}
    ordered = np.partition(upper, sorted(ranks_needed))
    out = []
    for k, virtual in ranks:
        pair = np.array([ordered[k // 2], ordered[min(k + 1, last) // 2]], dtype=W.dtype)
        out.append(float(np.quantile(pair, [virtual - k])[0]))
    return out


def weights(linked: np.ndarray) -> np.ndarray:
    """Eq. 1 from ``linked`` (n, n) bool, ``cos > threshold``: ``W̄`` (n, n) float64, 1 or ε."""
    W_bar = np.multiply(linked, 1.0 - EPSILON_WEIGHT)  # (1 − ε) + ε == 1.0 exactly
    W_bar += EPSILON_WEIGHT
    return W_bar


def sub_graph(matrix: np.ndarray, nodes: np.ndarray) -> np.ndarray:
    """``matrix[nodes][:, nodes]`` of a square matrix, ``nodes`` (k,) int (faster than ix_)."""
    return matrix.take(nodes, axis=0).take(nodes, axis=1)


def affinity(F: np.ndarray, threshold: float) -> np.ndarray:
    """Eq. 1: ``F`` (num_patches, dim) L2-normalised → ``W̄`` (num_patches, num_patches) float64."""
    return weights(F @ F.T > threshold)


def graph_state(W_bar: np.ndarray) -> Literal["coherent", "incoherent", "mixed"]:
    """``coherent`` when every off-diagonal weight is 1, ``incoherent`` when every one is ε.

    The diagonal (cos(f, f) = 1) is ignored: it is 1 for every threshold < 1, so a graph with no
    similar pair would otherwise never read as "all ε"."""
    return link_state(W_bar == 1.0)


def link_state(linked: np.ndarray) -> Literal["coherent", "incoherent", "mixed"]:
    """:func:`graph_state` from ``linked`` (n, n) bool, ``cos > threshold``."""
    num_patches = len(linked)
    diagonal_ones = np.count_nonzero(np.diagonal(linked))
    off_diagonal_ones = np.count_nonzero(linked) - diagonal_ones
    if off_diagonal_ones == num_patches * (num_patches - 1):
        return "coherent"
    if off_diagonal_ones == 0:
        return "incoherent"
    return "mixed"


def second_eigenvector(W_bar: np.ndarray, solver: Solver = "auto") -> np.ndarray:
    """Eq. 2: ``W̄`` (num_patches, num_patches) → ``x`` (num_patches,) with ``xᵀ D x = 1``.

    ``x`` is the generalised eigenvector of ``(D − W̄) x = λ D x`` with the second-smallest
    eigenvalue.  Its sign is arbitrary; :func:`bipartition` does not depend on it.
    ``solver``: ``lanczos`` (Lanczos on the symmetric form deflated of its known top
    eigenvector; ARPACK when it has not converged in ``_LANCZOS_MAX_STEPS``), ``eigsh`` (ARPACK
    on the symmetric form: fossil's solver until issue 26), ``torch`` (``torch.linalg.eigh`` on
    the symmetric form, on the GPU when one is present), ``dense`` (``scipy.linalg.eigh`` of the
    generalised problem: the reference), ``auto`` (``torch`` with CUDA, else ``lanczos``).
    """
    num_patches = len(W_bar)
    if W_bar.ndim != 2 or W_bar.shape[1] != num_patches or num_patches < 2:
        raise ValueError(f"W_bar must be square with at least 2 nodes, got shape {W_bar.shape}")
    if solver not in SOLVERS:
        raise ValueError(f"solver {solver!r} unknown; choose one of {SOLVERS}")
    if solver == "auto":
        solver = "torch" if _cuda_available() else "lanczos"
    d = W_bar.sum(axis=1)  # degrees, D = diag(d)
    if solver == "dense":
        _, vectors = scipy.linalg.eigh(np.diag(d) - W_bar, np.diag(d), subset_by_index=[1, 1])
        return vectors[:, 0]
    d_inv_sqrt = 1.0 / np.sqrt(d)
    lanczos = None
    if solver == "lanczos" and num_patches >= _MIN_EIGSH_NODES:
        lanczos = _second_largest_lanczos(W_bar, d, d_inv_sqrt)
    if lanczos is not None:
        v = lanczos
    elif solver in ("eigsh", "lanczos") and num_patches >= _MIN_EIGSH_NODES:
        v = _second_largest_eigsh(W_bar, d_inv_sqrt)
    else:
        M = _symmetric_form(W_bar, d_inv_sqrt)
        if solver == "torch":
            v = _second_largest_torch(M)
        else:
            v = scipy.linalg.eigh(M, subset_by_index=[num_patches - 2] * 2)[1][:, 0]
    return v * d_inv_sqrt


def _symmetric_form(W_bar: np.ndarray, d_inv_sqrt: np.ndarray) -> np.ndarray:
    M = W_bar * d_inv_sqrt[:, None]
    M *= d_inv_sqrt[None, :]
    return M  # D^-½ W̄ D^-½


def _second_largest_eigsh(W_bar: np.ndarray, d_inv_sqrt: np.ndarray) -> np.ndarray:
    """ARPACK on ``D^-½ W̄ D^-½`` as an operator (the scaled matrix is never formed)."""
    num_patches = len(W_bar)
    M = scipy.sparse.linalg.LinearOperator(
        (num_patches, num_patches),
        matvec=lambda v: d_inv_sqrt * (W_bar @ (d_inv_sqrt * v.ravel())),
        dtype=np.float64,
    )
    v0 = _start_vector(num_patches)
    try:
        # near-degenerate spectra (a graph of several disconnected cliques, as quantile taus
        # give) made ARPACK's defaults run thousands of matvecs (62 s at 1024 nodes): a wider
        # Krylov space converges there, and the iterations are bounded, the dense solve after
        values, vectors = scipy.sparse.linalg.eigsh(
            M, k=2, which="LA", v0=v0, ncv=min(num_patches - 1, _EIGSH_NCV), maxiter=_EIGSH_MAXITER
        )
    except scipy.sparse.linalg.ArpackNoConvergence:  # the dense solve is exact
        M_dense = _symmetric_form(W_bar, d_inv_sqrt)
        return scipy.linalg.eigh(M_dense, subset_by_index=[num_patches - 2] * 2)[1][:, 0]
    return vectors[:, np.argsort(values)[0]]


def _start_vector(num_patches: int) -> np.ndarray:
    return np.random.default_rng(0).uniform(0.5, 1.5, num_patches)  # deterministic start


def _second_largest_lanczos(
    W_bar: np.ndarray, d: np.ndarray, d_inv_sqrt: np.ndarray
) -> np.ndarray | None:
    """Lanczos with full reorthogonalisation on ``M = D^-½ W̄ D^-½`` in the complement of its
    top eigenvector ``D^½ 1``, so the largest Ritz pair is the second of ``M``.  Returns ``v``
    (unit norm), or ``None`` when the residual is above ``_LANCZOS_TOL`` after
    ``_LANCZOS_MAX_STEPS`` products.  ``W̄`` is symmetric: its transpose is a Fortran-ordered
    view of the same matrix, which BLAS ``symv`` reads without a copy, one triangle only."""
    num_patches = len(W_bar)
    steps = min(num_patches - 2, _LANCZOS_MAX_STEPS)
    W_f = W_bar.T  # == W̄, Fortran-contiguous when W̄ is C-contiguous
    (symv,) = scipy.linalg.blas.get_blas_funcs(("symv",), (W_f,))
    basis = np.empty((steps + 2, num_patches))  # rows: D^½ 1, then the Lanczos vectors
    top = np.sqrt(d)
    basis[0] = top / np.linalg.norm(top)
    q = _start_vector(num_patches)
    q -= basis[0] * (basis[0] @ q)
    basis[1] = q / np.linalg.norm(q)
    alpha: list[float] = []
    beta: list[float] = []
    for j in range(1, steps + 1):
        w = d_inv_sqrt * symv(1.0, W_f, d_inv_sqrt * basis[j])
        alpha.append(float(basis[j] @ w))
        for _ in range(2):  # full reorthogonalisation, twice, against D^½ 1 and all q
            w -= basis[: j + 1].T @ (basis[: j + 1] @ w)
        b = float(np.linalg.norm(w))
        _, ritz = scipy.linalg.eigh_tridiagonal(
            np.array(alpha), np.array(beta), select="i", select_range=(j - 1, j - 1)
        )
        if b * abs(ritz[-1, 0]) <= _LANCZOS_TOL:  # ‖M y − θ y‖ of the largest Ritz pair
            return basis[1 : j + 1].T @ ritz[:, 0]
        beta.append(b)
        basis[j + 1] = w / b
    return None


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return False
    return bool(torch.cuda.is_available())


def _second_largest_torch(M: np.ndarray) -> np.ndarray:
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    _, vectors = torch.linalg.eigh(torch.from_numpy(M).to(device))  # ascending eigenvalues
    return vectors[:, -2].cpu().numpy()


def _corners_inside(partition: np.ndarray) -> int:
    return int(partition[0, 0]) + partition[0, -1] + partition[-1, 0] + partition[-1, -1]


def bipartition(
    x: np.ndarray,
    active: np.ndarray,
    corner_flip: bool = False,
    seed_component_only: bool = True,
) -> tuple[np.ndarray, int]:
    """Eq. 3: split the graph on ``x > mean(x)``, the seed's side.

    ``x`` (num_patches,) is the NCut vector over the active nodes, in row-major order of
    ``active`` (h, w) bool.  Returns the mask (h, w) bool (inactive patches never belong to
    it) and the seed's flat grid index.  The seed is ``argmax |x|``; the partition is flipped
    when the seed lies outside it, or (``corner_flip``) when ≥ 3 grid corners lie inside it,
    in which case the seed becomes the extreme node of the flipped side.  With
    ``seed_component_only`` (MaskCut) only the seed's 4-connected component is kept; without
    it (the paper's OpenCut) the whole side, all its components."""
    if x.shape != (int(active.sum()),):
        raise ValueError(f"x has shape {x.shape}, expected ({int(active.sum())},)")
    nodes = np.flatnonzero(active)
    inside = x > x.mean()
    seed = int(np.argmax(np.abs(x)))
    if not inside[seed]:
        x, inside = -x, ~inside
    partition = np.zeros(active.shape, bool)
    partition.flat[nodes[inside]] = True
    if corner_flip and _corners_inside(partition) >= 3:
        x, inside = -x, ~inside
        seed = int(np.argmax(x))
        partition[:] = False
        partition.flat[nodes[inside]] = True
    seed_cell = int(nodes[seed])
    if not seed_component_only:
        return partition, seed_cell
    labels, _ = scipy.ndimage.label(partition, structure=_FOUR_CONNECTED)
    return labels == labels.flat[seed_cell], seed_cell


def ncut(
    features: np.ndarray,
    active: np.ndarray,
    threshold: float,
    solver: Solver = "auto",
    corner_flip: bool = False,
    seed_component_only: bool = True,
    linked: np.ndarray | None = None,
) -> np.ndarray | str:
    """One NCut step (eqs. 1–3) on the active patches of a grid.

    ``features`` (h, w, dim) L2-normalised, ``active`` (h, w) bool.  Returns the seed's side
    (h, w) bool (see :func:`bipartition`), or the graph state (``"coherent"`` /
    ``"incoherent"``) when ``W̄`` has no structure to cut (eq. 1 gives all 1 or all ε off the
    diagonal).  ``linked`` (num_active, num_active) bool: ``cos > threshold`` between the active
    patches, when the caller has it (:func:`maskcut`); computed here otherwise."""
    if linked is None:
        F = features[active]  # (num_patches, dim)
        linked = F @ F.T > threshold
    state = link_state(linked)
    if state != "mixed":
        return state
    x = second_eigenvector(weights(linked), solver)
    mask, _ = bipartition(x, active, corner_flip, seed_component_only)
    return mask
