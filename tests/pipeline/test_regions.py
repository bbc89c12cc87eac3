"""ImageAnalyser dispatches on FossilConfig.regions: each proposer's masks reach the crop."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from fossil.config import FossilConfig, SuperpixelConfig
from fossil.pipeline.segmenter import ImageAnalyser
from fossil.segment.superpixels import superpixels


class _Encoder:
    """A DenseEncoder whose features are the crop's colour per patch plus a little noise."""

    def __init__(self, input_size: int, patch: int) -> None:
        self.input_size, self.patch, self.name, self.dim = input_size, patch, "mean-colour", 3

    def features(self, images: list[np.ndarray]) -> np.ndarray:
        out = []
        for image in images:
            side = self.input_size // self.patch
            h, w = image.shape[:2]
            rows = (np.arange(side) * h // side)[:, None]
            cols = (np.arange(side) * w // side)[None, :]
            noise = np.random.default_rng(0).normal(scale=0.02, size=(side, side, 3))
            out.append(image[rows, cols].astype(np.float32) / 255 + noise.astype(np.float32))
        return np.stack(out)


def _crop() -> np.ndarray:
    crop = np.full((64, 64, 3), 40, np.uint8)
    crop[16:48, 16:48] = (220, 60, 60)
    return crop


def _analyser(regions: str) -> ImageAnalyser:
    config = replace(
        FossilConfig(), regions=regions, superpixels=SuperpixelConfig(sigma=0.0, min_size=50)
    )
    return ImageAnalyser(_Encoder(64, 8), _Encoder(64, 8), config)


def test_patches_give_no_masks():
    analysis = _analyser("patches").analyse(_crop())
    assert analysis.masks.shape == (0, 64, 64) and analysis.features.shape == (8, 8, 3)


def test_superpixels_are_the_crops_segments():
    crop = _crop()
    analysis = _analyser("superpixels").analyse(crop)
    expected = superpixels(crop, SuperpixelConfig(sigma=0.0, min_size=50))
    assert np.array_equal(analysis.masks, expected) and len(expected) == 2


@pytest.mark.parametrize("regions", ["opencut-nocrf", "shrinking-graph", "subdivide-1"])
def test_opencut_names_give_opencut_masks(regions):
    masks = _analyser(regions).analyse(_crop()).masks
    assert masks.shape[1:] == (64, 64) and masks.sum(0).max() <= 1 and len(masks) >= 1
    square = np.zeros((64, 64), bool)
    square[16:48, 16:48] = True
    union = masks.any(0)
    assert (union & square).sum() / (union | square).sum() >= 0.9  # the square, maybe split


def test_unknown_proposer_is_refused():
    with pytest.raises(ValueError, match="regions 'slic' unknown; choose one of opencut"):
        replace(FossilConfig(), regions="slic")
