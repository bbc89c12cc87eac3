import numpy as np

from fossil.numerics import l2_normalise, mask_iou
from fossil.segment.maskcut import maskcut
from fossil.segment.ncut import cosines
from tests.segment.planted import planted_scene


def _scene(objects=2, side=30):
    scene = planted_scene(np.random.default_rng(objects), h=side, w=side, objects=objects)
    return scene, l2_normalise(scene.keys)


def test_objects_come_out_one_per_step_and_leave_the_graph():
    scene, features = _scene(objects=2)
    result = maskcut(features, threshold=0.15, t=3)
    assert len(result.masks) == 2 and result.stop == "coherent"  # background is all 1 at 0.15
    assert result.eigensolves == 2
    found = sorted(int(np.unique(scene.labels[m])[0]) for m in result.masks)
    assert found == sorted(scene.foreground)
    for m in result.masks:
        assert mask_iou(m, np.isin(scene.labels, scene.foreground) & m) == 1.0
    assert not (result.masks[0] & result.masks[1]).any()
    np.testing.assert_array_equal(result.remaining, np.isin(scene.labels, scene.background))


def test_t_bounds_the_masks_per_tau():
    _, features = _scene(objects=2)  # at 0.15 two objects come out, then all is coherent
    result = maskcut(features, threshold=0.15, t=1)
    assert len(result.masks) == 1 and result.stop == "t_reached" and result.eigensolves == 1


def test_inactive_patches_never_return():
    scene, features = _scene(objects=2)
    active = ~np.isin(scene.labels, scene.foreground)
    result = maskcut(features, threshold=0.6, t=3, active=active)
    assert all(not (m & ~active).any() for m in result.masks)
    assert result.masks
    for m in result.masks:  # cuts follow the planted regions: each is wholly in or out
        for k in np.unique(scene.labels[m]):
            assert k in scene.background and m[scene.labels == k].all()


def test_small_mask_is_rejected_and_ends_the_tau():
    scene, features = _scene(objects=2)
    area = min(np.count_nonzero(scene.labels == k) for k in scene.foreground)
    fraction = area / scene.labels.size
    result = maskcut(features, threshold=0.15, t=3, min_area=fraction)  # "≤ min_area" rejects
    assert result.stop == "rejected" and result.eigensolves >= 1
    assert all(np.count_nonzero(m) > area for m in result.masks)


def test_stops_when_graph_has_no_structure():
    _, features = _scene(objects=0)
    assert maskcut(features, threshold=-1.0, t=3).stop == "coherent"
    assert maskcut(features, threshold=0.9999, t=3).stop == "incoherent"
    one = np.zeros(features.shape[:2], bool)
    one[0, 0] = True
    assert maskcut(features, threshold=0.5, t=3, active=one).stop == "exhausted"


def test_given_cosines_give_the_same_masks_as_computing_them():
    scene, features = _scene()
    active = np.ones(scene.labels.shape, bool)
    active[:, :5] = False
    W = cosines(features)
    for tau in (0.15, 0.6):
        here = maskcut(features, tau, t=3, active=active, seed_component_only=False)
        given = maskcut(features, tau, t=3, active=active, seed_component_only=False, W=W)
        assert len(here.masks) == len(given.masks) and here.stop == given.stop
        for a, b in zip(here.masks, given.masks, strict=True):
            np.testing.assert_array_equal(a, b)
