import numpy as np
import pytest

from fossil.segment.pooling import region_pool, resize_masks


def test_region_pool_hard_masks_equal_masked_mean():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(4, 4, 3)).astype(np.float32)
    masks = np.zeros((2, 4, 4), bool)
    masks[0, :2, :2] = True
    masks[1, 3, :] = True
    pooled = region_pool(features, masks)
    np.testing.assert_allclose(pooled[0], features[:2, :2].reshape(-1, 3).mean(0), rtol=1e-5)
    np.testing.assert_allclose(pooled[1], features[3].mean(0), rtol=1e-5)


def test_region_pool_soft_weights_by_hand():
    features = np.array([[[1.0, 0.0], [0.0, 1.0]], [[2.0, 2.0], [4.0, 0.0]]], np.float32)
    masks = np.array([[[1.0, 0.5], [0.0, 0.25]]], np.float32)
    expected = (1.0 * features[0, 0] + 0.5 * features[0, 1] + 0.25 * features[1, 1]) / 1.75
    np.testing.assert_allclose(region_pool(features, masks)[0], expected, rtol=1e-6)


def test_region_pool_downsamples_image_resolution_masks():
    features = np.zeros((2, 2, 1), np.float32)
    features[:, 1] = 1.0  # right column of patches is 1
    mask = np.zeros((1, 8, 8), bool)
    mask[:, :, 4:] = True  # right half of the image
    assert region_pool(features, mask)[0, 0] == pytest.approx(1.0)
    weights = resize_masks(mask, (2, 2))
    np.testing.assert_allclose(weights[0], [[0, 1], [0, 1]])


def test_empty_mask_gives_zero_row_and_shapes_are_checked():
    features = np.ones((3, 3, 5), np.float32)
    assert not region_pool(features, np.zeros((1, 9, 9), bool)).any()
    with pytest.raises(ValueError, match=r"\(h, w, dim\)"):
        region_pool(features[0], np.zeros((1, 9, 9), bool))
