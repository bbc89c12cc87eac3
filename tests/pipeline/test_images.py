import numpy as np
import pytest
from PIL import Image

from fossil.pipeline.images import load_image, to_rgb


def test_modes_are_converted_to_rgb_uint8(tmp_path):
    gray = Image.fromarray(np.full((5, 7), 200, np.uint8), "L")
    rgba = Image.new("RGBA", (4, 3), (255, 0, 0, 0))  # fully transparent red → white
    deep = Image.fromarray(np.full((3, 3), 65535, np.uint16))  # 16-bit
    for image in (gray, rgba, deep):
        path = tmp_path / f"{image.mode}.png"
        image.save(path)
        array = load_image(path)
        assert array.dtype == np.uint8 and array.ndim == 3 and array.shape[2] == 3
        assert array.shape[:2] == (image.height, image.width)
    assert (load_image(tmp_path / "L.png") == 200).all()
    assert (load_image(tmp_path / "RGBA.png") == 255).all()
    assert (load_image(tmp_path / f"{deep.mode}.png") == 255).all()


def test_one_pixel_image(tmp_path):
    Image.new("RGB", (1, 1), (1, 2, 3)).save(tmp_path / "one.png")
    assert load_image(tmp_path / "one.png").tolist() == [[[1, 2, 3]]]


def test_corrupt_and_missing_images_name_the_file(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(ValueError, match="bad.jpg.*cannot be read"):
        load_image(bad)
    with pytest.raises(FileNotFoundError, match="nope.png"):
        load_image(tmp_path / "nope.png")


def test_float_image_is_rescaled():
    image = Image.fromarray(np.array([[0.0, 2.0]], np.float32), "F")
    assert to_rgb(image)[0, :, 0].tolist() == [0, 255]


def _halves(mode: str, width: int, height: int) -> Image.Image:
    """Left half dark, right half light, in PIL ``mode``."""
    left, right = {"I;16": (1000, 60000), "P": (1, 2)}.get(mode, (40, 220))
    values = np.full((height, width), left, np.uint16 if mode == "I;16" else np.uint8)
    values[:, width // 2 :] = right
    if mode == "I;16":
        return Image.fromarray(values)
    image = Image.fromarray(values.astype(np.uint8), "L")
    if mode == "P":
        image = image.convert("P")
        image.putpalette([0, 0, 0, 40, 40, 40, 220, 220, 220] + [0] * 759)
        return image
    return image.convert(mode)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "P", "I;16", "1"])
def test_a_large_image_is_downscaled_before_any_array_is_made_of_it(tmp_path, mode):
    import tracemalloc

    width, height = 2400, 1600
    path = tmp_path / "large.png"
    _halves(mode, width, height).save(path)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        image = load_image(path, max_side=300)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert image.shape == (200, 300, 3) and image.dtype == np.uint8
    # less than one full-size uint8 plane (3.8 MB; the full-size RGB array is 11.5 MB, to_rgb's
    # float64 copy of a 16-bit image 31 MB): the image is shrunk while it is still PIL's
    assert peak < width * height, f"{peak / 1e6:.1f} MB traced"
    if mode != "1":
        assert image[:, :140].mean() < image[:, 160:].mean()  # the halves are where they were


def test_max_side_keeps_small_images_and_is_checked(tmp_path):
    path = tmp_path / "small.png"
    Image.new("RGB", (30, 20), (1, 2, 3)).save(path)
    assert load_image(path, max_side=30).shape == (20, 30, 3)
    assert load_image(path, max_side=20).shape == (13, 20, 3)
    with pytest.raises(ValueError, match=r"max_side \(0\) must be >= 1"):
        load_image(path, max_side=0)
