"""fossil/query/prototypes.py: spherical K-Means prototypes on planted clusters."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from fossil.config import RetrievalConfig
from fossil.numerics import l2_normalise
from fossil.query.prototypes import (
    KMeansParams,
    concept_prototypes,
    effective_k,
    faiss_threads,
    kmeans_prototypes,
    mean_prototype,
)


def planted(rng: np.random.Generator, K: int, per: int, dim: int, noise: float = 0.3):
    """K unit centres, ``per`` points each at distance ≈ ``noise`` (any dim), random norms."""
    centres = l2_normalise(rng.normal(size=(K, dim)))
    labels = np.arange(K * per) % K
    visual = centres[labels] + noise / np.sqrt(dim) * rng.normal(size=(K * per, dim))
    visual *= rng.uniform(0.2, 50.0, size=(K * per, 1))  # raw VREs: norms vary a lot
    return centres, visual.astype(np.float32)


def cosine_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return 1.0 - l2_normalise(a) @ l2_normalise(b).T


@pytest.mark.parametrize(("K", "per", "dim"), [(5, 20, 64), (10, 15, 1024), (25, 4, 384)])
def test_each_planted_centre_has_a_close_prototype(K: int, per: int, dim: int) -> None:
    centres, visual = planted(np.random.default_rng(K), K, per, dim)
    prototypes = kmeans_prototypes(visual, K, KMeansParams(niter=20, seed=1234))
    assert prototypes.shape == (K, dim) and prototypes.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(prototypes, axis=1), 1.0, atol=1e-5)
    distances = cosine_distance(centres, prototypes)  # (K centres, K prototypes)
    assert distances.min(axis=1).max() < 0.05


def test_same_seed_same_prototypes_other_seed_may_differ() -> None:
    rng = np.random.default_rng(3)
    visual = rng.normal(size=(150, 64)).astype(np.float32)  # no structure: seed matters
    a = kmeans_prototypes(visual, 10, KMeansParams(seed=7))
    b = kmeans_prototypes(visual, 10, KMeansParams(seed=7))
    c = kmeans_prototypes(visual, 10, KMeansParams(seed=8))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_clusters_by_cosine_not_by_norm() -> None:
    """Two directions, one point of each with a huge norm: spherical K-Means still finds
    the two directions (plain K-Means on raw vectors would split by norm)."""
    rng = np.random.default_rng(5)
    dirs = l2_normalise(rng.normal(size=(2, 16)))
    visual = np.repeat(dirs, 10, axis=0) + 0.01 * rng.normal(size=(20, 16))
    visual[0] *= 1000.0
    visual[10] *= 1000.0
    prototypes = kmeans_prototypes(visual.astype(np.float32), 2)
    assert cosine_distance(dirs, prototypes).min(axis=1).max() < 0.01


def test_k_equal_to_n_returns_the_references_normalised() -> None:
    visual = np.random.default_rng(0).normal(size=(4, 8)).astype(np.float32) * 3
    np.testing.assert_allclose(kmeans_prototypes(visual, 4), l2_normalise(visual), rtol=1e-6)


def test_mean_prototype_is_normalised_mean_of_normalised_rows() -> None:
    visual = np.array([[3.0, 0.0], [0.0, 0.5]], dtype=np.float32)
    np.testing.assert_allclose(mean_prototype(visual), [[2**-0.5, 2**-0.5]], rtol=1e-6)
    assert concept_prototypes(visual, 2, prototype_mean=True).shape == (1, 2)


def test_fewer_references_than_k_lowers_k() -> None:
    visual = np.random.default_rng(1).normal(size=(3, 8)).astype(np.float32)
    assert effective_k(3, 25) == 3 and effective_k(100, 25) == 25
    assert concept_prototypes(visual, 25).shape == (3, 8)


@pytest.mark.parametrize(
    ("visual", "K", "message"),
    [
        (np.zeros((5, 4), np.float32), 6, r"K \(6\) must be between 1 and .* \(5\)"),
        (np.zeros((5, 4), np.float32), 0, r"K \(0\)"),
        (np.zeros((0, 4), np.float32), 1, "no rows"),
        (np.zeros(4, np.float32), 1, r"\(n, dim\)"),
        (np.full((3, 4), np.nan, np.float32), 1, "NaN"),
    ],
)
def test_bad_input_is_refused(visual: np.ndarray, K: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        kmeans_prototypes(visual, K)


def test_faiss_thread_count_is_restored() -> None:
    before = faiss.omp_get_max_threads()
    with faiss_threads(1):
        assert faiss.omp_get_max_threads() == 1
    assert faiss.omp_get_max_threads() == before
    visual = np.random.default_rng(2).normal(size=(40, 16)).astype(np.float32)
    kmeans_prototypes(visual, 4)
    assert faiss.omp_get_max_threads() == before


def test_gpu_request_without_gpu_is_refused() -> None:
    if faiss.get_num_gpus() > 0 and hasattr(faiss, "StandardGpuResources"):
        pytest.skip("a GPU is available")
    visual = np.random.default_rng(2).normal(size=(40, 16)).astype(np.float32)
    with pytest.raises(ValueError, match="use_gpu=True but faiss sees no GPU") as raised:
        kmeans_prototypes(visual, 4, KMeansParams(use_gpu=True))
    assert "pip install 'fossil-ovss[gpu]'" in str(raised.value)  # the extra that brings it


def test_the_gpu_extra_brings_faiss_gpu() -> None:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    from pathlib import Path

    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    extras = tomllib.loads(pyproject.read_text())["project"]["optional-dependencies"]
    assert any(r.startswith("faiss-gpu") for r in extras["gpu"])


def test_kmeans_params_default_to_the_retrieval_config_and_follow_it() -> None:
    assert KMeansParams() == KMeansParams.from_config(RetrievalConfig())
    config = RetrievalConfig(niter=7, nredo=3, seed=5)
    assert KMeansParams.from_config(config, use_gpu=False) == KMeansParams(7, 3, 5, False)
