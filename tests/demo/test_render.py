"""Renderer: determinism, label coverage, layouts, errors."""

from __future__ import annotations

import numpy as np
import pytest

from fossil.demo.render import (
    LAYOUTS,
    MIN_REGION_FRACTION,
    lattice_noise,
    partition,
    render_scene,
    texture,
)
from fossil.demo.vocabulary import VOCABULARY


def test_same_generator_state_gives_the_same_scene() -> None:
    a = render_scene([0, 4, 9], np.random.default_rng(7), (96, 128))
    b = render_scene([0, 4, 9], np.random.default_rng(7), (96, 128))
    c = render_scene([0, 4, 9], np.random.default_rng(8), (96, 128))
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert not np.array_equal(a.image, c.image)
    assert a.image.shape == (96, 128, 3) and a.image.dtype == np.uint8
    assert a.labels.shape == (96, 128)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("count", [2, 3, 4])
def test_every_material_covers_its_minimum_share(layout: str, count: int) -> None:
    rng = np.random.default_rng(count)
    for _ in range(3):
        materials = [int(m) for m in rng.choice(len(VOCABULARY), count, replace=False)]
        scene = render_scene(materials, rng, (64, 64), layout=layout)
        assert set(np.unique(scene.labels)) == set(materials)
        shares = [scene.mask(m).mean() for m in materials]
        assert min(shares) >= MIN_REGION_FRACTION
        assert scene.materials == tuple(materials)


def test_partition_regions_are_contiguous_enough() -> None:
    """Smooth partitions: most pixels share their region with their right neighbour."""
    rng = np.random.default_rng(0)
    for layout in LAYOUTS:
        regions = partition(rng, (128, 128), 3, layout)
        same = (regions[:, 1:] == regions[:, :-1]).mean()
        assert same > 0.95, layout


def test_textures_differ_between_materials_and_stay_in_range() -> None:
    rng = np.random.default_rng(1)
    means = []
    for material in VOCABULARY:
        image = texture(material.texture, (48, 48), rng)
        assert image.shape == (48, 48, 3)
        assert image.min() >= 0 and image.max() <= 255
        means.append(image.reshape(-1, 3).mean(axis=0))
    means = np.array(means)
    distances = np.linalg.norm(means[:, None] - means[None], axis=-1)
    np.fill_diagonal(distances, np.inf)
    assert distances.min() > 3  # no two materials share a mean colour


def test_lattice_noise_is_standardised() -> None:
    y, x = np.mgrid[0:200, 0:200].astype(np.float32) / 9.0
    noise = lattice_noise(np.random.default_rng(0), x, y)
    assert abs(float(noise.mean())) < 0.15
    assert 0.8 < float(noise.std()) < 1.2


def test_bad_inputs_are_refused() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="distinct"):
        render_scene([1, 1], rng)
    with pytest.raises(ValueError, match="out of range"):
        render_scene([0, len(VOCABULARY)], rng)
    with pytest.raises(ValueError, match="layout"):
        partition(rng, (32, 32), 2, "spiral")
    with pytest.raises(ValueError, match="num_regions"):
        partition(rng, (32, 32), 0)
