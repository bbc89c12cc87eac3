"""The region map of ``fossil serve`` on hand-made regions (no model)."""

from __future__ import annotations

import numpy as np

from fossil.pipeline.segmenter import Region, region_map
from fossil.serve.images import region_png
from fossil.serve.responses import region_points


def region(box: tuple[int, int, int, int], index: int) -> Region:
    return Region(box, index, 0, 0, 0.5, np.zeros(2, np.float32))


def test_regions_are_painted_in_their_windows_and_later_windows_win() -> None:
    left, right = (0, 4, 0, 4), (0, 4, 2, 6)  # two 4×4 windows overlapping on columns 2-3
    left_masks = np.zeros((2, 4, 4), bool)
    left_masks[0, :, :2] = True  # columns 0-1
    left_masks[1, :, 2:] = True  # columns 2-3, painted over by the right window
    right_masks = np.zeros((1, 4, 4), bool)
    right_masks[0, :2] = True  # rows 0-1, columns 2-5
    regions = [region(left, 0), region(left, 1), region(right, 0)]
    painted = region_map(regions, [left_masks, right_masks], (4, 6), (4, 6))
    expected = np.array(
        [
            [0, 0, 2, 2, 2, 2],
            [0, 0, 2, 2, 2, 2],
            [0, 0, 1, 1, -1, -1],
            [0, 0, 1, 1, -1, -1],
        ]
    )
    np.testing.assert_array_equal(painted, expected)


def test_the_map_is_upsampled_to_the_image_size_by_nearest_pixel() -> None:
    masks = np.zeros((1, 2, 2), bool)
    masks[0, 0, 0] = True
    painted = region_map([region((0, 2, 0, 2), 0)], [masks], (2, 2), (4, 6))
    assert painted.shape == (4, 6)
    np.testing.assert_array_equal(painted[:2, :3], 0)
    assert (painted == 0).sum() == 6 and (painted == -1).sum() == 18


def test_mismatched_masks_give_an_empty_map() -> None:
    painted = region_map([region((0, 2, 0, 2), 0)], [], (2, 2), (2, 2))
    np.testing.assert_array_equal(painted, -1)


def test_region_points_lie_inside_and_the_png_codes_index_plus_one() -> None:
    painted = np.full((3, 300), -1, np.int32)
    painted[1, 10:20] = 0
    painted[:, 299] = 299  # an index past 255 needs the green byte
    points = region_points(painted, 301)
    assert points[0] == [14, 1] and points[299] == [299, 1]
    assert all(p is None for p in points[1:299]) and points[300] is None
    rgb = region_png(painted).astype(int)
    code = rgb[..., 0] + 256 * rgb[..., 1]
    np.testing.assert_array_equal(code, painted + 1)
