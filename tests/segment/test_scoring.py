import math

import numpy as np
import pytest

from fossil.segment.pooling import region_pool
from fossil.segment.scoring import label_map, score_map, score_regions
from tests.segment.planted import planted_scene


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


# One region along x; concept 0 has prototypes at 0° and 90° (cos 1 and 0), concept 1 a single
# prototype at 120° (cos −0.5).  Prototype norms must not matter.
REGION = np.array([[2.0, 0.0]])
PROTOTYPES = [np.array([[3.0, 0.0], [0.0, 0.5]]), np.array([[-1.0, math.sqrt(3.0)]])]


def test_eq5_by_hand_sigmoid_first():
    gamma = 0.3
    s = [_sigmoid(1.0), _sigmoid(0.0)]
    concept0 = (1 - gamma) * (s[0] + s[1]) / 2 + gamma * max(s)
    concept1 = _sigmoid(-0.5)  # K = 1: mean = max
    got = score_regions(REGION, PROTOTYPES, gamma)
    np.testing.assert_allclose(got, [[concept0, concept1]], rtol=1e-6)


def test_eq5_by_hand_sigmoid_after_ensemble():
    gamma = 0.3
    concept0 = _sigmoid((1 - gamma) * 0.5 + gamma * 1.0)
    got = score_regions(REGION, PROTOTYPES, gamma, sigmoid_after_ensemble=True)
    np.testing.assert_allclose(got, [[concept0, _sigmoid(-0.5)]], rtol=1e-6)
    assert got[0, 0] != pytest.approx(score_regions(REGION, PROTOTYPES, gamma)[0, 0])


def test_gamma_extremes_are_mean_and_max():
    mean = score_regions(REGION, PROTOTYPES, 0.0)[0, 0]
    top = score_regions(REGION, PROTOTYPES, 1.0)[0, 0]
    assert mean == pytest.approx((_sigmoid(1.0) + 0.5) / 2) and top == pytest.approx(_sigmoid(1))


def _planted_inputs(rng):
    scene = planted_scene(rng, h=12, w=12, dim=32, objects=1)
    centres = [scene.keys[scene.labels == k].mean(0) for k in range(scene.labels.max() + 1)]
    prototypes = [np.stack([c, c + rng.normal(scale=0.05, size=c.shape)]) for c in centres]
    return scene, prototypes


def test_score_map_labels_planted_regions():
    rng = np.random.default_rng(0)
    scene, prototypes = _planted_inputs(rng)
    size = 48  # image resolution: 4 pixels per patch
    labels = np.repeat(np.repeat(scene.labels, 4, axis=0), 4, axis=1)
    masks = np.stack([labels == k for k in range(len(prototypes))])
    masks[0, :, :8] = False  # a band left uncovered: scored by its own patches
    scored = score_map(scene.keys, masks, prototypes, gamma=0.5)
    scores = scored.scores
    assert scores.shape == (len(prototypes), size, size) and scores.dtype == np.float32
    np.testing.assert_array_equal(label_map(scores), labels)
    inside = masks[1]  # every pixel of a mask carries the region's scores
    assert np.ptp(scores[:, inside], axis=1).max() == 0.0
    assert np.ptp(scores[:, ~masks.any(0)], axis=1).max() > 0.0  # per-patch, varies
    # the regions come back with their embeddings (eq. 4) and scores, as they were painted
    np.testing.assert_array_equal(scored.embeddings, region_pool(scene.keys, masks))
    np.testing.assert_array_equal(
        scored.region_scores, score_regions(scored.embeddings, prototypes, 0.5)
    )
    for k, mask in enumerate(masks):
        np.testing.assert_array_equal(scores[:, mask][:, 0], scored.region_scores[k])


def test_score_map_without_masks_is_per_patch_labelling():
    rng = np.random.default_rng(1)
    scene, prototypes = _planted_inputs(rng)
    scored = score_map(scene.keys, np.zeros((0, 12, 12), bool), prototypes, gamma=0.5)
    scores = scored.scores
    assert scored.embeddings.shape == (0, scene.keys.shape[-1])
    assert scored.region_scores.shape == (0, len(prototypes))
    patch = score_regions(scene.keys.reshape(144, -1), prototypes, 0.5)
    np.testing.assert_allclose(scores, patch.T.reshape(-1, 12, 12), rtol=1e-6)
    np.testing.assert_array_equal(label_map(scores), scene.labels)


def test_prototype_counts_may_differ_and_bad_inputs_are_rejected():
    regions = np.eye(3)
    prototypes = [np.eye(3)[:1], np.eye(3)[1:]]  # K = 1 and K = 2
    assert score_regions(regions, prototypes, 0.5).shape == (3, 2)
    with pytest.raises(ValueError, match="gamma"):
        score_regions(regions, prototypes, 1.5)
    with pytest.raises(ValueError, match=r"prototypes\[1\]"):
        score_regions(regions, [np.eye(3), np.eye(2)], 0.5)
    with pytest.raises(ValueError, match="at least one concept"):
        score_regions(regions, [], 0.5)
    overlapping = np.ones((2, 4, 4), bool)
    with pytest.raises(ValueError, match="mutually exclusive"):
        score_map(np.ones((2, 2, 3)), overlapping, prototypes, 0.5)
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        label_map(np.zeros((4, 4)))
