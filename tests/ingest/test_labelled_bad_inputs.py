"""Every bad input of issue 23 item 4: one LabelledError, one line naming the file and the item.

Each row builds a small set in a temporary folder with one fault and says which file and
item the message must name.  read_labelled validates the whole set before returning, so a
fault anywhere raises and nothing is returned (the caller writes nothing)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fossil.ingest.labelled import LabelledError, read_labelled
from tests.ingest.labelled_files import (
    H,
    W,
    coco_json,
    labelme_json,
    photo,
    polygon,
    rectangle,
    rle_encode,
    save_image,
    voc_folder,
)

# (what to read, read_labelled's keyword arguments, the file named, the item named, problem)
Case = tuple[Path, dict[str, Any], Path, str, str]


def _labelme_folder(tmp: Path, bad: list[dict[str, Any]], **extra: Any) -> tuple[Path, Path]:
    """A folder of a good labelme file and a bad one (sorted after it)."""
    save_image(tmp / "set" / "a.png", photo(H, W))
    labelme_json(
        tmp / "set" / "a.json", [rectangle("cat", 1, 1, 9, 9)], image_path="a.png", size=(H, W)
    )
    save_image(tmp / "set" / "b.png", photo(H, W, seed=1))
    extra = {"image_path": "b.png", "size": (H, W)} | extra
    return tmp / "set", labelme_json(tmp / "set" / "b.json", bad, **extra)


def _voc(tmp: Path, label: np.ndarray, rgb: np.ndarray | None = None) -> Path:
    good = np.ones((H, W), np.uint8)
    return voc_folder(
        tmp / "voc",
        {"a": (photo(H, W), good), "b": (photo(H, W) if rgb is None else rgb, label)},
        ["background", "cat", "dog"],
    )


def _coco(
    tmp: Path, annotations: list[dict[str, Any]], images: list[dict[str, Any]] | None = None
) -> Path:
    save_image(tmp / "coco" / "p.png", photo(H, W))
    images = images or [{"id": 1, "file_name": "p.png", "height": H, "width": W}]
    return coco_json(tmp / "coco" / "instances.json", images, annotations, ["cat", "dog"])


SQUARE = [[1, 1, 9, 1, 9, 9, 1, 9]]


def missing_image_labelme(tmp: Path) -> Case:
    folder, bad = _labelme_folder(tmp, [rectangle("dog", 1, 1, 9, 9)], image_path="gone.jpg")
    return folder, {}, bad, "imagePath 'gone.jpg'", "image not found"


def unreadable_image_labelme(tmp: Path) -> Case:
    folder, bad = _labelme_folder(tmp, [rectangle("dog", 1, 1, 9, 9)], image_path="broken.jpg")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    return folder, {}, bad, "imagePath 'broken.jpg'", "cannot read image"


def unreadable_image_data_labelme(tmp: Path) -> Case:
    folder, bad = _labelme_folder(tmp, [rectangle("dog", 1, 1, 9, 9)], imageData="bm90IGFuIGltYWdl")
    return folder, {}, bad, "imageData", "not a readable base64 image"


def missing_image_voc(tmp: Path) -> Case:
    root = _voc(tmp, np.ones((H, W), np.uint8))
    (root / "JPEGImages" / "b.png").unlink()
    return root, {}, root / "SegmentationClassPNG" / "b.png", "image", "no JPEGImages/b.jpg"


def missing_image_coco(tmp: Path) -> Case:
    images = [{"id": 1, "file_name": "gone.jpg", "height": H, "width": W}]
    path = _coco(tmp, [{"image_id": 1, "category_id": 1, "segmentation": SQUARE}], images)
    return path, {}, path, "images[0] ('gone.jpg')", "image not found"


def size_labelme(tmp: Path) -> Case:
    folder, bad = _labelme_folder(tmp, [rectangle("dog", 1, 1, 9, 9)], size=(H, W + 1))
    return folder, {}, bad, "imageHeight/imageWidth", f"{H}×{W + 1} but the image is {H}×{W}"


def size_voc(tmp: Path) -> Case:
    root = _voc(tmp, np.ones((H, W), np.uint8), rgb=photo(H + 2, W))
    return root, {}, root / "SegmentationClassPNG" / "b.png", "size", f"the mask is {H}×{W}"


def size_coco(tmp: Path) -> Case:
    images = [{"id": 1, "file_name": "p.png", "height": H, "width": W - 1}]
    path = _coco(tmp, [{"image_id": 1, "category_id": 1, "segmentation": SQUARE}], images)
    return path, {}, path, "images[0] ('p.png')", f"height/width {H}×{W - 1}"


def size_coco_rle(tmp: Path) -> Case:
    rle = {"size": [H, W + 3], "counts": rle_encode(np.ones((H, W + 3), bool))}
    path = _coco(tmp, [{"image_id": 1, "category_id": 2, "segmentation": rle}])
    return path, {}, path, "annotations[0] (id 1, 'dog')", f"RLE size [{H}, {W + 3}]"


def class_id_without_name_voc(tmp: Path) -> Case:
    label = np.ones((H, W), np.uint8)
    label[:3] = 7
    root = _voc(tmp, label)
    return root, {}, root / "SegmentationClassPNG" / "b.png", "class id 7", "has no name"


def empty_shape_labelme(tmp: Path) -> Case:
    """A polygon wholly outside the image: clipped to nothing."""
    shape = polygon("dog", [[100, 100], [120, 100], [120, 120]])
    folder, bad = _labelme_folder(tmp, [rectangle("cat", 1, 1, 9, 9), shape])
    return folder, {}, bad, "shapes[1] ('dog')", "covers no pixel (empty mask) (it lies outside"


def empty_class_labelme(tmp: Path) -> Case:
    """A class whose every pixel a later shape covers."""
    shapes = [rectangle("dog", 2, 2, 5, 5), rectangle("cat", 0, 0, 9, 9)]
    folder, bad = _labelme_folder(tmp, shapes)
    return folder, {}, bad, "class 'dog'", "covers no pixel (empty mask)"


def empty_rle_coco(tmp: Path) -> Case:
    rle = {"size": [H, W], "counts": [H * W]}
    path = _coco(tmp, [{"image_id": 1, "category_id": 1, "segmentation": rle}])
    return path, {}, path, "annotations[0] (id 1, 'cat')", "covers no pixel (empty mask)"


def corrupt_json_labelme(tmp: Path) -> Case:
    folder, bad = _labelme_folder(tmp, [rectangle("dog", 1, 1, 9, 9)])
    bad.write_text(bad.read_text()[:-20])
    return folder, {}, bad, "line 1 column", "not valid JSON"


def corrupt_json_coco(tmp: Path) -> Case:
    path = tmp / "instances.json"
    path.write_text('{"images": [], "annotations": [,]}')
    return path, {}, path, "line 1 column 32", "not valid JSON"


def annotation_without_image_coco(tmp: Path) -> Case:
    annotations = [
        {"image_id": 1, "category_id": 1, "segmentation": SQUARE},
        {"image_id": 42, "category_id": 1, "segmentation": SQUARE, "id": 9},
    ]
    path = _coco(tmp, annotations)
    return path, {}, path, "annotations[1] (id 9)", "image_id 42 points to no image"


def annotation_without_category_coco(tmp: Path) -> Case:
    path = _coco(tmp, [{"image_id": 1, "category_id": 5, "segmentation": SQUARE}])
    return path, {}, path, "annotations[0] (id 1)", "category_id 5 names no category"


def duplicate_image_labelme(tmp: Path) -> Case:
    folder, bad = _labelme_folder(tmp, [rectangle("dog", 1, 1, 9, 9)], image_path="./a.png")
    return folder, {}, bad, "set/b.json", "duplicate file name"


def duplicate_image_coco(tmp: Path) -> Case:
    images = [
        {"id": 1, "file_name": "p.png", "height": H, "width": W},
        {"id": 2, "file_name": "sub/../p.png", "height": H, "width": W},
    ]
    path = _coco(tmp, [{"image_id": 1, "category_id": 1, "segmentation": SQUARE}], images)
    return path, {}, path, "images[1] ('sub/../p.png')", "duplicate file name"


def duplicate_image_voc(tmp: Path) -> Case:
    root = _voc(tmp, np.ones((H, W), np.uint8))
    save_image(root / "JPEGImages" / "b.jpg", photo(H, W))
    return (
        root,
        {},
        root / "SegmentationClassPNG" / "b.png",
        "image",
        "duplicate file name: b.jpg, b.png",
    )


CASES: dict[str, Callable[[Path], Case]] = {
    "missing image (labelme)": missing_image_labelme,
    "unreadable image (labelme)": unreadable_image_labelme,
    "unreadable imageData (labelme)": unreadable_image_data_labelme,
    "missing image (VOC)": missing_image_voc,
    "missing image (COCO)": missing_image_coco,
    "mask size differs (labelme imageHeight/imageWidth)": size_labelme,
    "mask size differs (VOC PNG vs JPEG)": size_voc,
    "mask size differs (COCO height/width)": size_coco,
    "mask size differs (COCO RLE size)": size_coco_rle,
    "class id without a name (VOC)": class_id_without_name_voc,
    "empty mask: polygon wholly outside (labelme)": empty_shape_labelme,
    "empty mask: class covered by later shapes (labelme)": empty_class_labelme,
    "empty mask (COCO RLE)": empty_rle_coco,
    "corrupt JSON (labelme)": corrupt_json_labelme,
    "corrupt JSON (COCO)": corrupt_json_coco,
    "annotation pointing to no image (COCO)": annotation_without_image_coco,
    "annotation pointing to no category (COCO)": annotation_without_category_coco,
    "duplicate file name (labelme)": duplicate_image_labelme,
    "duplicate file name (COCO)": duplicate_image_coco,
    "duplicate file name (VOC)": duplicate_image_voc,
}


@pytest.mark.parametrize("build", CASES.values(), ids=CASES.keys())
def test_bad_input_is_one_line_naming_the_file_and_the_item(
    tmp_path: Path, build: Callable[[Path], Case]
) -> None:
    path, kwargs, file, item, problem = build(tmp_path)
    with pytest.raises(LabelledError) as caught:
        read_labelled(path, **kwargs)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{file}: {item}"), message
    assert problem in message, message


def test_a_polygon_partly_outside_is_clipped_with_a_note_not_an_error(tmp_path: Path) -> None:
    folder, bad = _labelme_folder(
        tmp_path, [polygon("dog", [[50, 30], [90, 30], [90, 50], [50, 50]])]
    )
    photos = {p.key: p for p in read_labelled(folder).photos}
    assert photos["set/b.json"].notes == ("shapes[0] ('dog'): polygon clipped to the image",)
    _, (dog,), _ = photos["set/b.json"].load()
    assert dog.mask.sum() == (W - 50) * (H - 30)


def test_corrupt_json_in_detect_format_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text("{")
    with pytest.raises(LabelledError, match=f"^{path}: line 1 column 2: not valid JSON"):
        read_labelled(path)


def test_the_fault_is_found_whatever_its_place_in_the_set(tmp_path: Path) -> None:
    """The bad file sorts first here: the good ones after it are not returned either."""
    folder, bad = _labelme_folder(tmp_path, [rectangle("dog", 1, 1, 9, 9)], image_path="gone.jpg")
    bad.rename(folder / "0.json")
    with pytest.raises(LabelledError, match=f"^{folder / '0.json'}: "):
        read_labelled(folder)
