from dataclasses import replace

import numpy as np
import pytest

from fossil.config import OpenCutConfig
from fossil.numerics import l2_normalise
from fossil.segment.opencut import run_opencut
from fossil.segment.subdivide import Split, split_patches, subdivide
from tests.segment.planted import planted_scene


def _two_clusters(rng: np.random.Generator, h: int = 20, w: int = 20, dim: int = 32):
    """Keys: left half one direction, right half an orthogonal one, small noise."""
    basis = np.linalg.qr(rng.normal(size=(dim, 2)))[0].T
    labels = np.zeros((h, w), int)
    labels[:, w // 2 :] = 1
    keys = basis[labels] + rng.normal(scale=0.05 / np.sqrt(dim), size=(h, w, dim))
    return l2_normalise(keys.astype(np.float32)), labels


def test_a_region_of_two_clusters_splits_into_them():
    features, labels = _two_clusters(np.random.default_rng(0))
    region = np.ones(labels.shape, bool)
    leaves = split_patches(features, region, Split(threshold=0.5, depth=2))
    assert len(leaves) == 2
    for k in (0, 1):
        assert any(np.array_equal(leaf, labels == k) for leaf in leaves)


def test_a_coherent_region_stays_whole():
    features, labels = _two_clusters(np.random.default_rng(1))
    left = labels == 0  # one cluster: every pair's cosine is above tau
    assert len(split_patches(features, left, Split(threshold=0.5, depth=3))) == 1
    whole = np.ones(labels.shape, bool)
    assert len(split_patches(features, whole, Split(threshold=0.5, depth=0))) == 1


def test_children_partition_their_parent_at_image_size():
    features, labels = _two_clusters(np.random.default_rng(2))
    image_labels = np.repeat(np.repeat(labels, 8, axis=0), 8, axis=1)
    parent = np.zeros(image_labels.shape, bool)
    parent[8:-8, 8:-8] = True  # straddles both clusters
    other = ~parent
    masks, parents = subdivide(np.stack([parent, other]), features, Split(threshold=0.5, depth=2))
    assert masks.sum(0).max() == 1  # mutually exclusive and everything still covered
    for index, mask in enumerate((parent, other)):
        children = masks[[p == index for p in parents]]
        assert np.array_equal(children.any(0), mask)
    # the parent's children follow the clusters
    children = masks[[p == 0 for p in parents]]
    for k in (0, 1):
        truth = parent & (image_labels == k)
        best = max((c & truth).sum() / (c | truth).sum() for c in children)
        assert best > 0.9


@pytest.mark.parametrize("variant", ["paper", "shrinking-graph"])
def test_subdividing_keeps_planted_regions_whole(variant):
    """Planted regions are coherent at the schedule's last tau: subdivision leaves them."""
    scene = planted_scene(np.random.default_rng(10), objects=2)
    config = OpenCutConfig.paper_absolute(variant=variant)
    plain = run_opencut(scene.keys, config=config)
    split = run_opencut(scene.keys, config=replace(config, subdivide_depth=2))
    assert np.array_equal(plain.masks, split.masks)
    assert split.taus == plain.taus


def test_subdividing_splits_what_the_schedule_left_merged():
    """The real-photo failure in miniature: the first tau sees one coherent block and accepts
    it whole; the second finds each cluster, but each is fully covered, so rho discards it.
    Subdivision at the last tau splits the block into the two clusters."""
    features, labels = _two_clusters(np.random.default_rng(3))
    base = OpenCutConfig(
        tau_space="absolute",
        tau_foreground=(),
        tau_background=(-0.5, 0.5),
        coherent_min_cosine=-1.0,
    )
    plain = run_opencut(features, config=base)
    assert len(plain.masks) == 1 and plain.masks[0].all()
    assert plain.outcomes.get("discarded", 0) >= 1
    split = run_opencut(features, config=replace(base, subdivide_depth=1))
    assert len(split.masks) == 2
    assert split.taus == [-0.5, -0.5]  # children keep the tau their parent was accepted at
    for k in (0, 1):
        assert any(np.array_equal(m, labels == k) for m in split.masks)


def test_negative_depth_is_refused():
    with pytest.raises(ValueError, match="subdivide_depth"):
        OpenCutConfig(subdivide_depth=-1)
