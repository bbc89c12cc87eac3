import numpy as np
import pytest

from fossil.numerics import l2_normalise
from fossil.segment import ncut as ncut_module
from fossil.segment.ncut import (
    EPSILON_WEIGHT,
    affinity,
    bipartition,
    cosines,
    graph_state,
    ncut,
    prepare_keys,
    second_eigenvector,
    thresholds,
)
from tests.segment.planted import planted_scene, random_graph


def _partition(x: np.ndarray) -> np.ndarray:
    """x > mean(x), oriented so that argmax |x| is inside (sign-free comparison)."""
    inside = x > x.mean()
    return inside if inside[np.argmax(np.abs(x))] else ~inside


def _check_generalised_eigenvector(W_bar: np.ndarray, x: np.ndarray) -> None:
    d = W_bar.sum(1)
    lam = x @ (d * x - W_bar @ x)  # Rayleigh quotient with xᵀDx = 1
    np.testing.assert_allclose(x @ (d * x), 1.0, rtol=1e-6)
    np.testing.assert_allclose(d * x - W_bar @ x, lam * d * x, atol=1e-7)
    assert abs(x @ d) < 1e-6  # D-orthogonal to the trivial eigenvector 1


@pytest.mark.parametrize(("num_patches", "density"), [(360, 0.3), (1369, 0.08)])
def test_fast_solver_matches_dense_on_random_graphs(num_patches, density):
    W_bar = random_graph(np.random.default_rng(num_patches), num_patches, density)
    dense = second_eigenvector(W_bar, "dense")
    fast = second_eigenvector(W_bar, "eigsh")
    _check_generalised_eigenvector(W_bar, fast)
    np.testing.assert_allclose(np.abs(fast), np.abs(dense), atol=1e-8)
    np.testing.assert_array_equal(_partition(fast), _partition(dense))


def test_torch_solver_matches_dense():
    W_bar = random_graph(np.random.default_rng(7), 360, 0.2)
    torch_x, dense = second_eigenvector(W_bar, "torch"), second_eigenvector(W_bar, "dense")
    np.testing.assert_array_equal(_partition(torch_x), _partition(dense))


@pytest.mark.parametrize(("side", "tau"), [(30, 0.15), (40, 0.6)])
def test_fast_solver_matches_dense_on_planted_graphs(side, tau):
    scene = planted_scene(np.random.default_rng(side), h=side, w=side, objects=2)
    F = l2_normalise(scene.keys).reshape(side * side, -1)
    W_bar = affinity(F, tau)
    active = np.ones((side, side), bool)
    fast, _ = bipartition(second_eigenvector(W_bar, "eigsh"), active)
    dense, _ = bipartition(second_eigenvector(W_bar, "dense"), active)
    np.testing.assert_array_equal(fast, dense)
    for k in np.unique(scene.labels[fast]):  # the cut follows the planted regions
        assert fast[scene.labels == k].all()


def test_affinity_threshold_is_strict_and_graph_state():
    F = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])  # cosines 0.6, 0.8, 0.0
    W_bar = affinity(F, 0.6)
    assert W_bar[0, 1] == EPSILON_WEIGHT and W_bar[1, 2] == 1.0 and W_bar[0, 0] == 1.0
    assert graph_state(W_bar) == "mixed"
    assert graph_state(affinity(F, -0.5)) == "coherent"
    assert graph_state(affinity(F, 0.9)) == "incoherent"  # the diagonal does not count


def test_bipartition_flips_to_the_seed_side_and_keeps_its_component():
    active = np.ones((1, 6), bool)
    x = np.array([1.0, 1.0, -5.0, 1.0, 1.0, 1.0])  # seed = node 2, below the mean
    mask, seed = bipartition(x, active)
    assert seed == 2 and mask.tolist() == [[False, False, True, False, False, False]]
    x = np.array([3.0, 2.0, -1.0, -1.0, 2.0, -1.0])  # inside = {0, 1, 4}; seed 0
    mask, seed = bipartition(x, active)
    assert seed == 0 and mask.tolist() == [[True, True, False, False, False, False]]


def test_bipartition_is_sign_free_and_respects_inactive_nodes():
    active = np.ones((3, 3), bool)
    active[1, 1] = False
    x = np.array([4.0, 3.0, -1.0, 2.0, -1.0, -1.0, -1.0, -1.0])  # 8 active nodes
    a, _ = bipartition(x, active)
    b, _ = bipartition(-x, active)
    np.testing.assert_array_equal(a, b)
    assert not a[1, 1]
    assert a[0, :2].all() and a[1, 0] and a.sum() == 3


def test_corner_rule_flips_only_when_enabled():
    active = np.ones((3, 3), bool)
    x = -np.ones(9)
    x[[0, 2, 6, 8]] = 1.0  # the four corners ...
    x[0] = 3.0  # ... with the seed in one of them
    without, _ = bipartition(x, active)
    assert without.sum() == 1 and without[0, 0]  # corners are not 4-connected
    flipped, seed = bipartition(x, active, corner_flip=True)
    assert not flipped[0, 0] and flipped[1, 1] and flipped.sum() == 5 and seed != 0


def test_ncut_reports_structureless_graphs():
    features = l2_normalise(np.random.default_rng(0).normal(size=(4, 4, 8)))
    assert ncut(features, np.ones((4, 4), bool), threshold=-1.0) == "coherent"
    assert ncut(features, np.ones((4, 4), bool), threshold=0.999) == "incoherent"


def test_bad_solver_and_shapes_are_rejected():
    with pytest.raises(ValueError, match="solver 'lobpcg' unknown"):
        second_eigenvector(np.ones((3, 3)), "lobpcg")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="square"):
        second_eigenvector(np.ones((3, 2)))
    with pytest.raises(ValueError, match=r"expected \(4,\)"):
        bipartition(np.ones(3), np.ones((2, 2), bool))


def test_bipartition_keeps_every_component_without_the_seed_rule():
    active = np.ones((1, 7), bool)
    x = np.array([3.0, 2.0, -1.0, -1.0, 2.0, 2.0, -1.0])  # inside = {0, 1} and {4, 5}
    seed_only, _ = bipartition(x, active)
    whole, seed = bipartition(x, active, seed_component_only=False)
    assert seed == 0
    assert seed_only.tolist() == [[True, True, False, False, False, False, False]]
    assert whole.tolist() == [[True, True, False, False, True, True, False]]


def test_centred_keys_spread_cosines_around_zero():
    rng = np.random.default_rng(0)
    shared = rng.normal(size=64)  # every key shares one strong direction, as DINOv2 keys do
    keys = (5 * shared + rng.normal(size=(8, 8, 64))).astype(np.float32)
    absolute = prepare_keys(keys, "absolute").reshape(64, -1)
    centred = prepare_keys(keys, "centred").reshape(64, -1)
    off_diagonal = ~np.eye(64, dtype=bool)
    assert (absolute @ absolute.T)[off_diagonal].min() > 0.8  # all alike: any tau <= 0.8 is 1
    cos = (centred @ centred.T)[off_diagonal]
    assert abs(float(cos.mean())) < 0.05 and cos.min() < -0.2 and cos.max() > 0.2
    np.testing.assert_allclose(np.linalg.norm(centred, axis=-1), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="tau_space"):
        prepare_keys(keys, "relative")  # type: ignore[arg-type]


def test_quantile_taus_are_fractions_of_the_image_pairs():
    rng = np.random.default_rng(1)
    features = l2_normalise(rng.normal(size=(6, 5, 16)))
    F = features.reshape(30, 16)
    W = (F @ F.T)[~np.eye(30, dtype=bool)]
    low, high = thresholds(features, [0.25, 0.9], "quantile")
    assert np.mean(W <= low) == pytest.approx(0.25, abs=0.01)
    assert np.mean(W > high) == pytest.approx(0.1, abs=0.01)
    # a shared direction moves every cosine up; the fraction of linked pairs stays put
    shifted = l2_normalise(features.reshape(30, 16) + 2.0 * l2_normalise(rng.normal(size=16)))
    (tau,) = thresholds(shifted.reshape(6, 5, 16), [0.25], "quantile")
    Ws = (shifted @ shifted.T)[~np.eye(30, dtype=bool)]
    assert np.mean(Ws > tau) == pytest.approx(0.75, abs=0.01) and tau > low
    assert thresholds(features, [0.15, -0.1], "absolute") == [0.15, -0.1]
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        thresholds(features, [-0.1], "quantile")


@pytest.mark.parametrize(("num_patches", "density"), [(360, 0.3), (1369, 0.08), (900, 0.6)])
def test_lanczos_matches_dense_and_arpack(num_patches, density):
    W_bar = random_graph(np.random.default_rng(num_patches + 1), num_patches, density)
    dense = second_eigenvector(W_bar, "dense")
    lanczos = second_eigenvector(W_bar, "lanczos")
    _check_generalised_eigenvector(W_bar, lanczos)
    np.testing.assert_allclose(np.abs(lanczos), np.abs(dense), atol=1e-8)
    np.testing.assert_array_equal(
        _partition(lanczos), _partition(second_eigenvector(W_bar, "eigsh"))
    )


@pytest.mark.parametrize("tau", [0.5, 0.9])  # quantile taus: W̄ links half the pairs or more
def test_lanczos_matches_dense_on_planted_graphs_at_quantile_taus(tau):
    scene = planted_scene(np.random.default_rng(3), h=32, w=32, objects=2, noise=0.3)
    features = prepare_keys(scene.keys, "quantile")
    (cosine,) = thresholds(features, [tau], "quantile")
    W_bar = affinity(features.reshape(32 * 32, -1), cosine)
    active = np.ones((32, 32), bool)
    lanczos, _ = bipartition(second_eigenvector(W_bar, "lanczos"), active)
    dense, _ = bipartition(second_eigenvector(W_bar, "dense"), active)
    np.testing.assert_array_equal(lanczos, dense)


def test_lanczos_falls_back_to_arpack_when_it_has_not_converged(monkeypatch):
    scene = planted_scene(np.random.default_rng(4), h=20, w=20, objects=2, noise=0.3)
    W_bar = affinity(l2_normalise(scene.keys).reshape(400, -1), 0.3)
    assert ncut_module._second_largest_lanczos(W_bar, *_degrees(W_bar)) is not None
    monkeypatch.setattr(ncut_module, "_LANCZOS_MAX_STEPS", 3)
    assert ncut_module._second_largest_lanczos(W_bar, *_degrees(W_bar)) is None
    x = second_eigenvector(W_bar, "lanczos")  # ARPACK's vector instead
    np.testing.assert_array_equal(_partition(x), _partition(second_eigenvector(W_bar, "dense")))


def _degrees(W_bar: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d = W_bar.sum(1)
    return d, 1.0 / np.sqrt(d)


@pytest.mark.parametrize("size", [2, 3, 40, 101])
def test_quantiles_from_the_upper_triangle_equal_numpy_bit_for_bit(size):
    rng = np.random.default_rng(size)
    features = l2_normalise(rng.normal(size=(size, 1, 8)))
    W = cosines(features)
    off_diagonal = W[~np.eye(size, dtype=bool)]
    for taus in ([0.5, 0.6, 0.7, 0.8, 0.9], [0.0, 1.0], list(rng.random(4))):
        expected = [float(q) for q in np.quantile(off_diagonal, taus)]
        assert thresholds(features, taus, "quantile", W) == expected
        assert thresholds(features, taus, "quantile") == expected


def test_ncut_with_given_links_equals_ncut_computing_them():
    scene = planted_scene(np.random.default_rng(8), h=20, w=20, objects=2)
    features = l2_normalise(scene.keys)
    active = np.ones((20, 20), bool)
    active[:3] = False
    F = features[active]
    here = ncut(features, active, 0.3, solver="lanczos")
    given = ncut(features, active, 0.3, solver="lanczos", linked=F @ F.T > 0.3)
    np.testing.assert_array_equal(here, given)
