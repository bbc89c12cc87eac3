"""design §5.2 aggregation and §5.3 binarisation against hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fossil.models.heatmaps import aggregate_heatmaps, binarize, token_positions


def cubic_matrix(n_in: int, n_out: int, a: float = -0.75) -> np.ndarray:
    """(n_out, n_in) 1-D bicubic resampling by hand: Keys kernel, half-pixel centres,
    borders replicated (what align_corners=False bicubic does)."""

    def kernel(x: float) -> float:
        x = abs(x)
        if x <= 1:
            return (a + 2) * x**3 - (a + 3) * x**2 + 1
        if x < 2:
            return a * x**3 - 5 * a * x**2 + 8 * a * x - 4 * a
        return 0.0

    m = np.zeros((n_out, n_in))
    for i in range(n_out):
        src = (i + 0.5) * n_in / n_out - 0.5
        base = math.floor(src)
        for k in range(base - 1, base + 3):
            m[i, min(max(k, 0), n_in - 1)] += kernel(src - k)
    return m


def test_aggregation_matches_hand_computation() -> None:
    rng = np.random.default_rng(0)
    size, tokens = 4, 5
    # layer A: 2 heads at the output size (bicubic to the same size is the identity)
    a = rng.random((2, 4, 4, tokens)).astype(np.float32)
    a[1, 0, 0, 2] = -3.0  # a negative value must be clamped to 0 per (layer, head)
    # layer B: 1 head at 2×2, upsampled bicubic to 4×4 (overshoots below 0 at the spike)
    b = np.zeros((1, 2, 2, tokens), np.float32)
    b[0, :, :, 1] = [[1.0, 0.0], [0.0, 0.0]]
    b[0, :, :, 2] = 0.25
    b[0, :, :, 3] = [[0.0, 2.0], [1.0, 0.5]]
    positions = [[1, 2], [3], [2]]

    up = cubic_matrix(2, 4)
    expected_tokens = {}
    for t in (1, 2, 3):
        heads = [np.clip(a[h, :, :, t], 0, None) for h in range(2)]
        heads.append(np.clip(up @ b[0, :, :, t] @ up.T, 0, None))
        expected_tokens[t] = sum(heads) / 3  # mean over the 3 (layer, head) pairs
    expected = np.stack([np.mean([expected_tokens[t] for t in word], axis=0) for word in positions])

    got = aggregate_heatmaps([torch.from_numpy(a), torch.from_numpy(b)], positions, size=size)
    assert got.shape == (3, size, size) and got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-6)
    # both clamps matter: the negative input value and the bicubic overshoot of layer B
    unclamped_2 = (a[0, :, :, 2] + a[1, :, :, 2] + 0.25) / 3
    assert got[2, 0, 0] > unclamped_2[0, 0] + 0.9
    assert (up @ b[0, :, :, 1] @ up.T).min() < 0


def test_aggregation_weighs_layers_by_heads_and_uses_all_positions() -> None:
    ones = torch.ones(1, 2, 2, 3)
    fives = torch.full((3, 4, 4, 3), 5.0)
    got = aggregate_heatmaps([ones, fives], [[0], [1, 2]], size=4)
    # constant maps survive bicubic exactly; 1 head of 1s and 3 heads of 5s → (1 + 15) / 4
    np.testing.assert_allclose(got.numpy(), 4.0, rtol=1e-6)


def test_aggregation_rejects_bad_input() -> None:
    layer = torch.zeros(1, 2, 2, 3)
    with pytest.raises(ValueError, match="positions\\[0\\] is empty"):
        aggregate_heatmaps([layer], [[]])
    with pytest.raises(ValueError, match="must lie in"):
        aggregate_heatmaps([layer], [[3]])
    with pytest.raises(ValueError, match="layer_maps is empty"):
        aggregate_heatmaps([], [[1]])
    with pytest.raises(ValueError, match="each layer map"):
        aggregate_heatmaps([layer, torch.zeros(1, 2, 2, 4)], [[1]])
    assert aggregate_heatmaps([layer], [], size=8).shape == (0, 8, 8)


def test_token_positions_all_occurrences_with_start_offset() -> None:
    caption = [320, 1929, 530, 320, 3399, 1395, 537, 1929]  # a dog in a traffic light and dog
    assert token_positions(caption, [1929]) == [2, 8]
    assert token_positions(caption, [3399, 1395]) == [5, 6]
    assert token_positions(caption, [1395, 3399]) == []
    assert token_positions(caption, []) == []
    assert token_positions(caption, [1929], offset=0) == [1, 7]


def test_binarize_modes_on_known_map() -> None:
    raw = np.zeros((4, 4), np.float32)
    raw[0, 0], raw[0, 1], raw[1, 1] = 4.0, 2.0, 0.5
    # minmax: (x − 0) / 4 > 0.45 ⇔ x > 1.8
    np.testing.assert_array_equal(binarize(raw, "minmax", 0.45, (4, 4)), raw > 1.8)
    # raw-sigmoid-minmax: sigmoid(0) = 0.5 is the minimum, sigmoid(4) the maximum
    s = 1 / (1 + np.exp(-raw.astype(np.float64)))
    expected = (s - s.min()) / (s.max() - s.min()) > 0.45
    np.testing.assert_array_equal(binarize(raw, "raw-sigmoid-minmax", 0.45, (4, 4)), expected)
    assert expected.sum() == 2  # the sigmoid flattens the peak: 2.0 joins 4.0
    # zscore-sigmoid: sigmoid(z) > 0.45 ⇔ z > logit(0.45)
    z = (raw - raw.mean()) / raw.std()
    np.testing.assert_array_equal(
        binarize(raw, "zscore-sigmoid", 0.45, (4, 4)), z > math.log(0.45 / 0.55)
    )


def test_binarize_resizes_and_handles_flat_maps() -> None:
    raw = np.zeros((2, 2), np.float32)
    raw[0, 0] = 1.0
    mask = binarize(raw, "minmax", 0.45, (8, 6))
    assert mask.shape == (8, 6) and mask.dtype == bool
    assert mask[0, 0] and not mask[-1, -1] and mask[:4, :3].sum() > mask[4:, 3:].sum()
    for mode in ("raw-sigmoid-minmax", "minmax", "zscore-sigmoid"):
        assert not binarize(np.ones((4, 4), np.float32), mode, 0.45, (4, 4)).any()
    with pytest.raises(ValueError, match="mask mode 'otsu' unknown"):
        binarize(raw, "otsu", 0.45, (2, 2))
    with pytest.raises(ValueError, match="threshold"):
        binarize(raw, "minmax", 1.5, (2, 2))
