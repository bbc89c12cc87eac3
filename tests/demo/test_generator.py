"""SyntheticGenerator: protocol, seeding, noun matching, imperfect but useful heat maps."""

from __future__ import annotations

import numpy as np
import pytest

from fossil.config import GenerationConfig
from fossil.demo.generator import HeatmapNoise, SyntheticGenerator, imperfect_heatmap
from fossil.demo.vocabulary import match_noun, material_index
from fossil.models.heatmaps import binarize
from fossil.models.protocols import Generator
from fossil.records import Noun


def noun(caption: str, text: str, lemma: str | None = None) -> Noun:
    start = caption.index(text)
    return Noun(text, lemma or text, start, start + len(text))


@pytest.fixture(scope="module")
def generator() -> SyntheticGenerator:
    return SyntheticGenerator(size=128)


def test_implements_the_generator_protocol(generator: SyntheticGenerator) -> None:
    assert isinstance(generator, Generator)
    assert generator.fingerprint == SyntheticGenerator(size=128).fingerprint
    assert generator.fingerprint != SyntheticGenerator(size=96).fingerprint
    noisier = SyntheticGenerator(size=128, noise=HeatmapNoise(spurious_probability=1.0))
    assert generator.fingerprint != noisier.fingerprint


def test_same_caption_same_image_other_caption_other_image(generator: SyntheticGenerator) -> None:
    caption = "Green grass next to a road."
    nouns = [noun(caption, "grass"), noun(caption, "road")]
    a, b = generator.generate([caption, caption], [nouns, nouns])
    (c,) = generator.generate(["Tall grass next to a road."], [[noun("Tall grass", "grass")]])
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.masks, b.masks)
    np.testing.assert_array_equal(a.heatmaps, b.heatmaps)
    assert not np.array_equal(a.image, c.image)
    assert a.seed == b.seed != c.seed


def test_nouns_are_matched_by_lemma_synonym_and_multiword(generator: SyntheticGenerator) -> None:
    caption = "A photo of the lawn, leaves and an old brick wall."
    nouns = [
        noun(caption, "photo"),
        noun(caption, "lawn"),
        noun(caption, "leaves", "leaf"),
        noun(caption, "brick wall"),
    ]
    (image,) = generator.generate([caption], [nouns])
    assert [n.text for n in image.nouns] == ["lawn", "leaves", "brick wall"]
    assert [n.text for n in image.skipped] == ["photo"]
    assert image.heatmaps.shape == (3, 64, 64) and image.heatmaps.min() >= 0
    assert image.masks.shape == (3, 128, 128) and image.masks.dtype == bool
    scene, drawn = generator.scene_for(caption, nouns)
    expected = [material_index(m) for m in ("grass", "leaves", "brick wall")]
    assert drawn == [None, *expected]
    assert set(expected) <= set(scene.materials)
    np.testing.assert_array_equal(scene.image, image.image)


def test_masks_are_the_section_5_3_binarisation_of_the_heat_maps(
    generator: SyntheticGenerator,
) -> None:
    caption = "Calm water under a clear sky."
    (image,) = generator.generate([caption], [[noun(caption, "water"), noun(caption, "sky")]])
    config = GenerationConfig()
    for heat, mask in zip(image.heatmaps, image.masks, strict=True):
        expected = binarize(heat, config.mask_mode, config.heatmap_threshold, mask.shape)
        np.testing.assert_array_equal(mask, expected)


def test_a_caption_without_known_nouns_still_gives_an_image(generator: SyntheticGenerator) -> None:
    caption = "A photo of a cat."
    (image,) = generator.generate([caption], [[noun(caption, "photo"), noun(caption, "cat")]])
    assert image.image.shape == (128, 128, 3)
    assert image.masks.shape == (0, 128, 128) and image.heatmaps.shape == (0, 64, 64)
    assert len(image.skipped) == 2


def test_heat_map_masks_overlap_the_truth_imperfectly(
    generator: SyntheticGenerator, corpus: list[str], parsed: list[list[Noun]]
) -> None:
    """Masks follow the ground truth (IoU well above a random region) without copying it."""
    ious = []
    for caption, nouns in list(zip(corpus, parsed, strict=True))[:40]:
        (image,) = generator.generate([caption], [nouns])
        scene, _ = generator.scene_for(caption, nouns)
        for n, mask in zip(image.nouns, image.masks, strict=True):
            truth = scene.mask(match_noun(n))
            ious.append((truth & mask).sum() / max((truth | mask).sum(), 1))
    ious = np.array(ious)
    assert len(ious) >= 60
    assert 0.6 < ious.mean() < 0.9  # measured 0.74 over the 500-caption corpus at 256²
    assert (ious < 0.6).mean() > 0.05  # some masks are clearly wrong, as DAAM's are
    assert (ious > 0.8).mean() > 0.3  # and many are good


def test_imperfect_heatmap_peaks_inside_the_truth() -> None:
    truth = np.zeros((64, 64), np.float32)
    truth[16:48, 8:40] = 1.0
    noise = HeatmapNoise(spurious_probability=0.0)
    rng = np.random.default_rng(0)
    maps = np.stack([imperfect_heatmap(truth, rng, noise) for _ in range(20)])
    inside = maps[:, truth > 0].mean()
    outside = maps[:, truth == 0].mean()
    assert inside > 2 * outside
    assert (maps >= 0).all()
    assert not np.allclose(maps[0], maps[1])


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="background_probability"):
        SyntheticGenerator(background_probability=1.5)
    with pytest.raises(ValueError, match="dropout"):
        HeatmapNoise(dropout=2.0)
    with pytest.raises(ValueError, match="noun lists"):
        SyntheticGenerator(size=64).generate(["grass"], [])
