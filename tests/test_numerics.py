"""fossil/numerics.py: the one l2_normalise and the one mask_iou every layer shares."""

from __future__ import annotations

import numpy as np

from fossil.numerics import l2_normalise, mask_iou


def test_l2_normalise_gives_unit_rows_and_keeps_zero_rows_zero() -> None:
    x = np.array([[3.0, 4.0], [0.0, 0.0], [0.0, -2.0]])
    out = l2_normalise(x)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0], [0.0, -1.0]], rtol=1e-7)


def test_l2_normalise_works_on_the_last_axis_of_any_shape_in_the_dtype_asked() -> None:
    x = np.random.default_rng(0).normal(size=(2, 3, 5))
    out = l2_normalise(x, dtype=np.float64)
    assert out.dtype == np.float64 and out.shape == (2, 3, 5)
    np.testing.assert_allclose(np.sqrt((out**2).sum(-1)), 1.0, rtol=1e-12)
    np.testing.assert_allclose(l2_normalise(x[0, 0]), out[0, 0], rtol=1e-6)  # one vector


def test_mask_iou_counts_intersection_over_union() -> None:
    a = np.zeros((4, 4), bool)
    b = np.zeros((4, 4), bool)
    a[:2] = True  # 8 pixels
    b[1:3] = True  # 8 pixels, 4 shared
    assert mask_iou(a, b) == 4 / 12
    assert mask_iou(a, a) == 1.0
    assert mask_iou(a, ~a) == 0.0


def test_mask_iou_of_two_empty_masks_is_the_value_asked() -> None:
    empty = np.zeros((3, 3), bool)
    assert mask_iou(empty, empty) == 0.0
    assert mask_iou(empty, empty, empty=1.0) == 1.0
