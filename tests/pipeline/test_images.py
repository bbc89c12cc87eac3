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
