import numpy as np
import pytest

from fossil.config import SuperpixelConfig
from fossil.segment.superpixels import superpixels


def _blocks(rng: np.random.Generator, noise: int) -> tuple[np.ndarray, np.ndarray]:
    """A 192×256 image of 6 flat coloured blocks (plus ``noise`` grey levels) and its labels."""
    labels = np.zeros((192, 256), int)
    labels[:, 80:] = 1
    labels[:, 180:] = 2
    labels[100:] += 3  # 2 rows × 3 columns of unequal blocks
    colours = np.array(
        [[200, 30, 30], [30, 200, 30], [30, 30, 200], [220, 220, 40], [40, 220, 220], [90, 90, 90]]
    )
    image = colours[labels] + rng.integers(-noise, noise + 1, size=(*labels.shape, 3))
    return np.clip(image, 0, 255).astype(np.uint8), labels


def _best_iou(masks: np.ndarray, region: np.ndarray) -> float:
    return float(((masks & region).sum((1, 2)) / (masks | region).sum((1, 2))).max())


@pytest.mark.parametrize("scale", [100.0, 600.0])
def test_flat_coloured_blocks_come_back_exactly_without_smoothing(scale):
    image, labels = _blocks(np.random.default_rng(0), noise=0)
    masks = superpixels(image, SuperpixelConfig(scale=scale, sigma=0.0))
    assert masks.dtype == bool and masks.shape == (6, *labels.shape)
    for k in range(6):
        assert any(np.array_equal(mask, labels == k) for mask in masks), f"block {k} lost"


def test_freedas_values_find_the_blocks():
    """FreeDA's smoothing (sigma 0.8) blends colours across a border into thin strips,
    which min_size merges into a neighbour: the blocks come back, borders within a pixel
    or two."""
    image, labels = _blocks(np.random.default_rng(0), noise=0)
    masks = superpixels(image)
    assert masks.shape[1:] == labels.shape
    assert (masks.sum(0) == 1).all()  # mutually exclusive, covering the image
    assert len(masks) == 6
    for k in range(6):
        assert _best_iou(masks, labels == k) >= 0.9, f"block {k} lost"


def test_min_size_merges_small_segments():
    image, _ = _blocks(np.random.default_rng(1), noise=0)
    image[10:14, 10:14] = 255  # a 16-pixel speck inside block 0
    assert len(superpixels(image, SuperpixelConfig(sigma=0.0, min_size=1))) == 7
    masks = superpixels(image, SuperpixelConfig(sigma=0.0, min_size=100))
    assert len(masks) == 6 and (masks.sum(0) == 1).all()


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="uint8"):
        superpixels(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        superpixels(np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError, match="scale"):
        SuperpixelConfig(scale=0)
    with pytest.raises(ValueError, match="min_size"):
        SuperpixelConfig(min_size=-1)
