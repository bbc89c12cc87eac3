"""fossil.ingest.labelled on small files with known answers: the rasterisation rules of each
format, keys, background and ignore, captions, COCO RLE, and load()."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fossil.ingest.labelled import LabelledError, detect_format, read_labelled
from fossil.ingest.labelled.raster import rle_counts, rle_mask
from tests.ingest.labelled_files import (
    H,
    W,
    box,
    coco_json,
    labelme_json,
    mask_shape,
    photo,
    polygon,
    rectangle,
    rle_encode,
    rle_string,
    save_image,
    voc_folder,
)


def regions_of(labelled_photo) -> dict[str, np.ndarray]:
    _, regions, _ = labelled_photo.load()
    return {region.name: region.mask for region in regions}


def test_labelme_later_shapes_over_earlier_ignore_and_background(tmp_path: Path) -> None:
    save_image(tmp_path / "a.png", photo(H, W))
    shapes = [
        rectangle("cat", 10, 5, 29, 24),  # columns 10..29, rows 5..24
        rectangle(" dog ", 50, 30, 20, 15),  # corners in reverse order; over the cat
        rectangle("__ignore__", 0, 0, 4, 4),
        rectangle("_background_", 10, 5, 12, 24),  # paints the background over the cat
    ]
    labelme_json(tmp_path / "a.json", shapes, image_path="a.png", size=(H, W))
    cat = box(5, 24, 10, 29) & ~box(15, 30, 20, 50) & ~box(5, 24, 10, 12)
    dog = box(15, 30, 20, 50)
    ignore = box(0, 4, 0, 4)
    (only,) = read_labelled(tmp_path / "a.json").photos
    assert only.classes == ("cat", "dog")  # stripped, first-seen order, no background
    image, regions, got_ignore = only.load()
    assert image.shape == (H, W, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(regions[0].mask, cat)
    np.testing.assert_array_equal(regions[1].mask, dog)
    np.testing.assert_array_equal(got_ignore, ignore)
    (with_back,) = read_labelled(tmp_path / "a.json", with_background=True).photos
    assert with_back.classes == ("_background_", "cat", "dog")
    np.testing.assert_array_equal(regions_of(with_back)["_background_"], ~(cat | dog | ignore))


def test_labelme_circle_mask_shape_strokes_and_clipping(tmp_path: Path) -> None:
    disc = np.hypot(*np.mgrid[:H, :W][::-1] - np.array([30, 20])[:, None, None]) <= 8
    blob = box(2, 6, 40, 55) & ~box(4, 4, 45, 45)
    shapes = [
        {"label": "ball", "points": [[30, 20], [38, 20]], "shape_type": "circle"},
        mask_shape("blob", blob),
        {"label": "wire", "points": [[0, 0], [10, 10]], "shape_type": "line"},
        {"label": "dot", "points": [[5, 5]], "shape_type": "point"},
        polygon("edge", [[-20, 30], [10, 30], [10, 39], [-20, 39]]),  # partly left of the image
    ]
    labelme_json(tmp_path / "b.json", shapes, image=photo(H, W))
    (only,) = read_labelled(tmp_path / "b.json").photos
    assert only.classes == ("ball", "blob", "edge") and only.image_path is None
    masks = regions_of(only)
    ball = masks["ball"]  # filled, inside the box [22, 38] × [12, 28] Pillow draws it in
    assert (ball & disc).sum() / (ball | disc).sum() > 0.85 and not (
        ball & ~box(12, 28, 22, 38)
    ).any()
    np.testing.assert_array_equal(masks["blob"], blob)
    np.testing.assert_array_equal(masks["edge"], box(30, 39, 0, 10))
    assert only.notes == (
        "shapes[2] ('wire'): a line is not a region: skipped",
        "shapes[3] ('dot'): a point is not a region: skipped",
        "shapes[4] ('edge'): polygon clipped to the image",
    )
    notes = read_labelled(tmp_path / "b.json").notes
    assert "1 shapes clipped to the image in 1 photos (see their notes)" in notes
    assert "2 shapes skipped in 1 photos (see their notes)" in notes


def test_labelme_points_on_the_far_edge_are_not_clipping(tmp_path: Path) -> None:
    """Annotators put points on x = W, y = H (labelme's editor allows it): no note."""
    shapes = [polygon("wall", [[40, 0], [W, 0], [W, H], [40, H]])]
    labelme_json(tmp_path / "c.json", shapes, image=photo(H, W))
    (only,) = read_labelled(tmp_path / "c.json").photos
    assert only.notes == ()
    np.testing.assert_array_equal(regions_of(only)["wall"], box(0, H - 1, 40, W - 1))


def test_labelme_keys_captions_and_skipped_files(tmp_path: Path) -> None:
    folder = tmp_path / "annotated"
    labelme_json(
        folder / "a.json", [rectangle("cat", 1, 1, 9, 9)], image=photo(H, W), caption=" a cat "
    )
    labelme_json(
        folder / "b.json",
        [rectangle("dog", 1, 1, 9, 9)],
        image=photo(H, W),
        flags={"caption": "a dog"},
    )
    labelme_json(folder / "c.json", [], image=photo(H, W), flags={"cat": True})
    labelme_json(folder / "deeper" / "d.json", [rectangle("cow", 1, 1, 9, 9)], image=photo(H, W))
    labelled = read_labelled(folder)
    assert labelled.format == "labelme" and labelled.root == str(folder)
    assert [p.key for p in labelled.photos] == ["annotated/a.json", "annotated/b.json"]
    assert [p.caption for p in labelled.photos] == ["a cat", "a dog"]
    assert labelled.notes == (
        f"{folder / 'c.json'}: annotated/c.json: no labelled region: skipped",
    )
    assert read_labelled(folder / "a.json").photos[0].key == "annotated/a.json"


def test_labelme_image_at_image_path_with_exif_orientation(tmp_path: Path) -> None:
    """labelme shows (and its points refer to) the EXIF-rotated photo."""
    rgb = photo(20, 30)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    (tmp_path / "img").mkdir()
    Image.fromarray(rgb).save(tmp_path / "img" / "r.jpg", exif=exif, quality=100)
    labelme_json(
        tmp_path / "r.json", [rectangle("x", 0, 0, 5, 5)], image_path="img/r.jpg", size=(30, 20)
    )
    (only,) = read_labelled(tmp_path / "r.json").photos
    assert only.size == (30, 20) and only.image_path == str(tmp_path / "img" / "r.jpg")


def test_coco_union_of_instances_polygons_and_rle(tmp_path: Path) -> None:
    rgb = photo(H, W)
    save_image(tmp_path / "pics" / "p.png", rgb)
    save_image(tmp_path / "pics" / "empty.png", rgb)
    crowd = box(20, 35, 30, 59)
    annotations = [
        {"image_id": 7, "category_id": 2, "segmentation": [[0, 0, 9, 0, 9, 9, 0, 9]]},
        {"image_id": 7, "category_id": 1, "segmentation": [[20, 0, 29, 0, 29, 9, 20, 9]]},
        {  # a second car, compressed RLE, iscrowd
            "image_id": 7,
            "category_id": 2,
            "segmentation": {"size": [H, W], "counts": rle_string(rle_encode(crowd))},
            "iscrowd": 1,
        },
        {  # a person overlapping the first car, uncompressed RLE
            "image_id": 7,
            "category_id": 1,
            "segmentation": {"size": [H, W], "counts": rle_encode(box(5, 14, 5, 14))},
        },
    ]
    images = [
        {"id": 7, "file_name": "p.png", "height": H, "width": W, "caption": "two cars"},
        {"id": 8, "file_name": "empty.png", "height": H, "width": W},
    ]
    path = coco_json(tmp_path / "coco" / "instances.json", images, annotations, ["person", "car"])
    labelled = read_labelled(path, images=tmp_path / "pics")
    assert labelled.format == "coco" and len(labelled.photos) == 1
    (only,) = labelled.photos
    assert only.key == "coco/instances.json#p.png" and only.caption == "two cars"
    assert only.classes == ("car", "person") and only.source == str(path)
    masks = regions_of(only)
    np.testing.assert_array_equal(masks["car"], box(0, 9, 0, 9) | crowd)
    np.testing.assert_array_equal(masks["person"], box(0, 9, 20, 29) | box(5, 14, 5, 14))
    assert any("1 images without annotations: skipped" in note for note in labelled.notes)
    (with_back,) = read_labelled(path, images=tmp_path / "pics", with_background=True).photos
    back = regions_of(with_back)["_background_"]
    np.testing.assert_array_equal(back, ~(masks["car"] | masks["person"]))


def test_coco_rle_string_as_the_coco_api_writes_it() -> None:
    """A string written by pycocotools 2.0.11 (``mask.encode``) for this mask."""
    mask = np.zeros((37, 53), bool)
    mask[5:30, 7:40] = True
    mask[10:12, :] = False
    mask[::7, ::5] ^= True
    mask[0, 0] = mask[-1, -1] = True
    written = (
        "016000000000_40aK000000000U14gN=:CF=:CF=5_OM1M010O4000K4014L=:CF=:CF=:CF=5_OM1M010O"
        "4000K4014L=:CF=:CF=:CF=5_OM1M010O4000K4014L=:CF=:CF=:CF=5_OM1M010O4000K4014L=:CF=:CF="
        ":CF=5_OM1M010O4000K4014L=:CF=:CF=:CF=5_OM1M010O4000K4014L=:CF=:CF=:CF=5_OO000000000_40"
        "aK000000000_40aK000000000T20"
    )
    np.testing.assert_array_equal(rle_mask(rle_counts(written, "f", "i"), (37, 53), "f", "i"), mask)
    assert rle_string(rle_encode(mask)) == written


@pytest.mark.parametrize("seed", range(5))
def test_coco_rle_round_trip(seed: int) -> None:
    rng = np.random.default_rng(seed)
    mask = rng.random((23, 31)) < rng.random()
    counts = rle_encode(mask)
    for encoded in (counts, rle_string(counts)):
        np.testing.assert_array_equal(
            rle_mask(rle_counts(encoded, "f", "i"), (23, 31), "f", "i"), mask
        )


@pytest.mark.parametrize("palette", [True, False])
def test_voc_reads_indices_not_colours(tmp_path: Path, palette: bool) -> None:
    label = np.zeros((H, W), np.uint8)
    label[0:10, 0:10] = 3
    label[20:30, 20:30] = 1
    label[35:, :] = 255
    root = voc_folder(
        tmp_path / "voc", {"x": (photo(H, W), label)}, ["bg", "cat", "dog", "cow"], palette=palette
    )
    assert detect_format(root) == "voc"
    (only,) = read_labelled(root).photos
    assert only.key == "SegmentationClassPNG/x.png" and only.classes == ("cat", "cow")
    assert only.image_path == str(root / "JPEGImages" / "x.png")
    image, regions, ignore = only.load()
    np.testing.assert_array_equal(regions[0].mask, label == 1)
    np.testing.assert_array_equal(regions[1].mask, label == 3)
    np.testing.assert_array_equal(ignore, label == 255)
    (with_back,) = read_labelled(root, with_background=True).photos
    assert with_back.classes == ("bg", "cat", "cow")
    np.testing.assert_array_equal(regions_of(with_back)["bg"], label == 0)


def test_voc_ignore_line_first_shifts_the_ids(tmp_path: Path) -> None:
    """labelme's labels file starts with __ignore__: the ids count from the line after it."""
    label = np.zeros((H, W), np.uint8)
    label[:5] = 1
    root = voc_folder(tmp_path, {"x": (photo(H, W), label)}, ["__ignore__", "_background_", "car"])
    assert read_labelled(root).photos[0].classes == ("car",)


def test_voc_segmentation_class_preferred_when_it_holds_the_pngs(tmp_path: Path) -> None:
    label = np.ones((H, W), np.uint8)
    root = voc_folder(
        tmp_path, {"x": (photo(H, W), label)}, ["bg", "car"], masks="SegmentationClass"
    )
    (root / "SegmentationClassPNG").mkdir()
    assert read_labelled(root).photos[0].key == "SegmentationClass/x.png"
    Image.fromarray(label).save(root / "SegmentationClassPNG" / "x.png")
    with pytest.raises(LabelledError, match="both SegmentationClass and SegmentationClassPNG"):
        read_labelled(root)


def test_detect_format(tmp_path: Path) -> None:
    labelme_json(tmp_path / "l" / "a.json", [rectangle("x", 0, 0, 3, 3)], image=photo(H, W))
    coco = coco_json(tmp_path / "c.json", [], [], [])
    assert detect_format(tmp_path / "l") == "labelme"
    assert detect_format(tmp_path / "l" / "a.json") == "labelme"
    assert detect_format(coco) == "coco"
    (tmp_path / "empty").mkdir()
    for path in (tmp_path / "empty", tmp_path / "nowhere", save_image(tmp_path / "i.png", photo())):
        with pytest.raises(LabelledError, match="expected a labelme JSON file") as error:
            detect_format(path)
        assert str(error.value).startswith(f"{path}: ")
    (tmp_path / "other.json").write_text(json.dumps({"a": 1}))
    with pytest.raises(LabelledError, match="neither labelme"):
        detect_format(tmp_path / "other.json")


def test_images_folder_only_for_coco(tmp_path: Path) -> None:
    labelme_json(tmp_path / "a.json", [rectangle("x", 0, 0, 3, 3)], image=photo(H, W))
    with pytest.raises(LabelledError, match="only a COCO file takes an images folder"):
        read_labelled(tmp_path / "a.json", images=tmp_path)


def test_photos_pickle_and_load_notices_changed_files(tmp_path: Path) -> None:
    path = labelme_json(tmp_path / "a.json", [rectangle("cat", 1, 1, 9, 9)], image=photo(H, W))
    (only,) = read_labelled(path).photos
    again = pickle.loads(pickle.dumps(only))
    assert again == only
    np.testing.assert_array_equal(again.load()[1][0].mask, box(1, 9, 1, 9))
    labelme_json(path, [rectangle("dog", 1, 1, 9, 9)], image=photo(H, W))
    with pytest.raises(LabelledError, match="changed since it was read"):
        only.load()
