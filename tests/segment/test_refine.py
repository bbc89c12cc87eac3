import numpy as np
import pytest

from fossil.segment.refine import Regions, components, refine

ETA, MU, RHO = 16, 0.8, 0.7


def _box(y0, y1, x0, x1, shape=(40, 40)):
    m = np.zeros(shape, bool)
    m[y0:y1, x0:x1] = True
    return m


def _exclusive(regions: Regions) -> bool:
    stack = regions.stack()
    return stack.sum(0).max(initial=0) <= 1 and (stack.any(0) == regions.covered).all()


def test_components_below_eta_are_dropped():
    mask = _box(0, 4, 0, 4) | _box(10, 13, 10, 15)  # 16 and 15 pixels
    assert [c.sum() for c in components(mask, ETA)] == [16]
    regions = Regions((40, 40))
    assert refine(regions, mask, ETA, MU, RHO) == ["accepted"]
    np.testing.assert_array_equal(regions.masks[0], _box(0, 4, 0, 4))


def test_components_are_split_and_4_connected():
    mask = _box(0, 5, 0, 5) | _box(5, 10, 5, 10)  # touching only diagonally
    regions = Regions((40, 40))
    assert refine(regions, mask, ETA, MU, RHO) == ["accepted", "accepted"]
    assert len(regions.masks) == 2 and _exclusive(regions)


def test_merge_when_iou_above_mu_is_checked_first():
    regions = Regions((40, 40), [_box(0, 20, 0, 20)])
    new = _box(0, 20, 0, 22)  # IoU 400/440 = 0.91 > mu, and 91% covered (> rho)
    assert refine(regions, new, ETA, MU, RHO) == ["merged"]
    assert len(regions.masks) == 1
    np.testing.assert_array_equal(regions.masks[0], new)


def test_merge_goes_to_the_first_match_and_keeps_other_masks_pixels():
    a, b = _box(0, 20, 0, 20), _box(0, 20, 20, 22)
    regions = Regions((40, 40), [a, b])
    assert refine(regions, _box(0, 20, 0, 22), ETA, MU, RHO) == ["merged"]
    np.testing.assert_array_equal(regions.masks[0], a)  # b's pixels stay b's
    np.testing.assert_array_equal(regions.masks[1], b)
    assert _exclusive(regions)


def test_discard_when_more_than_rho_is_covered():
    regions = Regions((40, 40), [_box(0, 20, 0, 20)])
    new = _box(0, 20, 10, 24)  # 280 px, 200 covered (0.71 > rho), IoU 200/480 < mu
    assert refine(regions, new, ETA, MU, RHO) == ["discarded"]
    assert len(regions.masks) == 1


def test_accept_removes_covered_pixels():
    regions = Regions((40, 40), [_box(0, 20, 0, 20)])
    new = _box(0, 20, 10, 30)  # 50% covered: keep the uncovered half
    assert refine(regions, new, ETA, MU, RHO) == ["accepted"]
    np.testing.assert_array_equal(regions.masks[1], _box(0, 20, 20, 30))
    assert _exclusive(regions)


def test_leftover_below_eta_after_removing_covered_pixels_is_dropped():
    new = _box(0, 20, 16, 21)  # 100 px, 80 covered (0.8 ≤ rho = 0.9), 20 px left
    regions = Regions((40, 40), [_box(0, 20, 0, 20)])
    assert refine(regions, new, 25, MU, 0.9) == ["too_small"]
    assert len(regions.masks) == 1
    regions = Regions((40, 40), [_box(0, 20, 0, 20)])
    assert refine(regions, new, 20, MU, 0.9) == ["accepted"]
    assert regions.masks[1].sum() == 20


def test_exclusivity_over_a_random_sequence():
    rng = np.random.default_rng(0)
    regions = Regions((40, 40))
    for _ in range(30):
        y, x = rng.integers(0, 30, 2)
        refine(regions, _box(y, y + rng.integers(4, 12), x, x + rng.integers(4, 12)), 4, MU, RHO)
        assert _exclusive(regions)
    assert len(regions.masks) > 3


def test_shape_mismatch_and_overlapping_initial_masks_are_rejected():
    with pytest.raises(ValueError, match="expected"):
        refine(Regions((40, 40)), np.zeros((10, 10), bool), ETA, MU, RHO)
    with pytest.raises(ValueError, match="mutually exclusive"):
        Regions((40, 40), [_box(0, 5, 0, 5), _box(0, 5, 0, 5)])
