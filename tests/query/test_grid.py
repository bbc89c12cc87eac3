"""fossil/query/grid.py: mask highlighting and the explanation grid with missing thumbnails."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fossil.query.grid import draw_grid, highlight_mask, load_cell
from fossil.query.retrieval import ConceptResult, Reference


def test_highlight_keeps_the_mask_and_dims_the_rest() -> None:
    image = np.full((4, 4, 3), 200, np.uint8)
    mask = np.zeros((4, 4), np.float32)
    mask[:2] = 1.0
    out = highlight_mask(image, mask)
    assert (out[:2] == 200).all() and (out[2:] == 60).all()
    with pytest.raises(ValueError, match="mask shape"):
        highlight_mask(image, mask[:3])


def write_rgba(path: Path, colour: tuple[int, int, int], mask: np.ndarray) -> None:
    rgba = np.zeros((*mask.shape, 4), np.uint8)
    rgba[..., :3] = colour
    rgba[..., 3] = mask.astype(np.uint8) * 255
    Image.fromarray(rgba).save(path, format="WEBP", lossless=True, exact=True)


def test_load_cell_reads_mask_from_alpha(tmp_path: Path) -> None:
    mask = np.zeros((16, 16), bool)
    mask[4:12, 4:12] = True
    write_rgba(tmp_path / "a.webp", (10, 20, 30), mask)
    cell = load_cell(str(tmp_path / "a.webp"))
    assert cell is not None
    image, alpha = cell
    assert (image[8, 8] == (10, 20, 30)).all() and image[0, 0].tolist() == [10, 20, 30]
    np.testing.assert_array_equal(alpha > 0.5, mask)
    assert load_cell(str(tmp_path / "missing.webp")) is None
    (tmp_path / "bad.webp").write_bytes(b"not an image")
    assert load_cell(str(tmp_path / "bad.webp")) is None


def test_grid_draws_rows_with_placeholders(tmp_path: Path) -> None:
    mask = np.ones((32, 32), bool)
    write_rgba(tmp_path / "dog.webp", (200, 100, 50), mask)

    def ref(i: int, thumbnail: str | None) -> Reference:
        return Reference(
            f"id{i}", 0.9 - i / 10, f"a dog number {i} " * 5, "dog", "dog", "c", thumbnail
        )

    dog = ConceptResult(
        "dog",
        (ref(0, str(tmp_path / "dog.webp")), ref(1, None), ref(2, str(tmp_path / "gone.webp"))),
        np.zeros((3, 4), np.float32),
        np.zeros((1, 4), np.float32),
        1,
    )
    car = ConceptResult("car", (ref(3, None),), np.zeros((1, 4)), np.zeros((1, 4)), 1)
    out = tmp_path / "grid.png"
    draw_grid([dog, car], out, top=2)
    with Image.open(out) as png:
        width, height = png.size
    assert height > width * 0.8  # two rows of two cells
    with pytest.raises(ValueError, match="results is empty"):
        draw_grid([], out)
