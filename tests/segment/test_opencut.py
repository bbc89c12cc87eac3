from dataclasses import replace

import numpy as np
import pytest

from fossil.config import CRFConfig, OpenCutConfig
from fossil.segment import opencut
from fossil.segment.opencut import run_opencut
from tests.segment.planted import planted_scene


def _best_iou(masks: np.ndarray, region: np.ndarray) -> float:
    inter = (masks & region).sum(axis=(1, 2))
    union = (masks | region).sum(axis=(1, 2))
    return float((inter / union).max())


def _check_regions_recovered(masks: np.ndarray, labels: np.ndarray) -> None:
    assert masks.dtype == bool and masks.shape[1:] == labels.shape
    assert masks.sum(0).max() <= 1  # mutually exclusive
    assert masks.any(0).mean() >= 0.95
    for k in np.unique(labels):
        assert _best_iou(masks, labels == k) >= 0.9, f"region {k} not recovered"


@pytest.mark.parametrize("objects", [0, 1, 2])  # 3, 4 and 5 planted regions
def test_planted_regions_come_back_on_the_patch_grid(objects):
    scene = planted_scene(np.random.default_rng(10 + objects), objects=objects)
    masks = opencut(scene.keys)
    assert len(masks) == objects + len(scene.background)
    _check_regions_recovered(masks, scene.labels)


@pytest.mark.parametrize("multi_label", [False, True])
def test_planted_regions_come_back_at_image_resolution_with_crf(multi_label):
    scene = planted_scene(np.random.default_rng(3), objects=2)
    config = OpenCutConfig(crf=CRFConfig(multi_label=multi_label))
    result = run_opencut(scene.keys, scene.image, config)
    labels = np.repeat(np.repeat(scene.labels, 8, axis=0), 8, axis=1)
    assert result.masks.shape == (5, 480, 480) and result.crf_dropped == 0
    _check_regions_recovered(result.masks, labels)


def test_foreground_first_background_last():
    scene = planted_scene(np.random.default_rng(4), objects=2)
    config = OpenCutConfig()
    result = run_opencut(scene.keys, config=config)
    region_of = [int(np.bincount(scene.labels[m]).argmax()) for m in result.masks]
    # objects are cut out at a low tau, where the whole background is one coherent block ...
    assert sorted(region_of[:2]) == sorted(scene.foreground)
    assert all(tau in config.tau_foreground for tau in result.taus[:2])
    # ... and the background parts only split at a high tau of the background phase
    assert sorted(region_of[2:]) == sorted(scene.background)
    assert all(tau in config.tau_background for tau in result.taus[2:])
    # without the foreground phase the 2-way cuts at 0.6 lump objects with the background
    # part they touch: no mask matches an object any more
    only_background = opencut(scene.keys, config=replace(config, tau_foreground=()))
    for k in scene.foreground:
        assert _best_iou(only_background, scene.labels == k) < 0.5


def test_coherent_remainder_is_optional():
    scene = planted_scene(np.random.default_rng(5), objects=1)
    config = OpenCutConfig(accept_coherent_remainder=False)
    masks = opencut(scene.keys, config=config)
    assert len(masks) == 3  # the last background part stays uncovered
    uncovered = ~masks.any(0)
    assert any((uncovered == (scene.labels == k)).all() for k in scene.background)


def test_accepted_masks_carry_over_between_taus():
    scene = planted_scene(np.random.default_rng(6), objects=2)
    config = OpenCutConfig(tau_foreground=(0.15, 0.15), tau_background=())
    result = run_opencut(scene.keys, config=config)
    assert len(result.masks) == 2 and result.eigensolves == 2  # the second 0.15 finds nothing


def test_without_crf_masks_are_the_upsampled_cut():
    scene = planted_scene(np.random.default_rng(7), objects=1)
    config = OpenCutConfig(crf=CRFConfig(enabled=False))
    masks = opencut(scene.keys, scene.image, config)
    labels = np.repeat(np.repeat(scene.labels, 8, axis=0), 8, axis=1)
    _check_regions_recovered(masks, labels)


def test_bad_inputs_are_rejected():
    keys = np.zeros((4, 4, 8), np.float32)
    with pytest.raises(ValueError, match=r"\(h, w, dim\)"):
        opencut(keys[0])
    with pytest.raises(ValueError, match="NaN"):
        opencut(np.full((4, 4, 8), np.nan, np.float32))
    with pytest.raises(ValueError, match="uint8"):
        opencut(keys, np.zeros((32, 32, 3), np.float32))
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        opencut(keys, np.zeros((32, 32), np.uint8))
    with pytest.raises(ValueError, match="solver"):
        OpenCutConfig(solver="lobpcg")
