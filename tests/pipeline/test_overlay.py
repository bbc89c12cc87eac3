import numpy as np
import pytest

from fossil.pipeline.overlay import colorize, overlay, palette


def test_palette_is_distinct_and_deterministic():
    colors = palette(60)
    assert colors.shape == (60, 3) and colors.dtype == np.uint8
    assert len({tuple(c) for c in colors}) == 60
    np.testing.assert_array_equal(colors, palette(60))


def test_colorize_and_ignore():
    labels = np.array([[0, 1], [255, 1]])
    out = colorize(labels, palette(2))
    assert (out[1, 0] == 0).all()
    np.testing.assert_array_equal(out[0, 1], palette(2)[1])


def test_overlay_adds_a_legend_of_present_concepts():
    image = np.zeros((40, 50, 3), np.uint8)
    labels = np.zeros((40, 50), np.int64)
    labels[:, 25:] = 2
    picture = overlay(image, labels, ["sky", "dog", "grass"])
    assert picture.height >= 40 and picture.width > 50  # legend may add height
    blended = np.asarray(picture)[:40, :50]
    assert (blended[5, 5] != blended[5, 45]).any()  # two concepts, two colours
    with pytest.raises(ValueError, match="differ in size"):
        overlay(image, labels[:10], ["a"])
