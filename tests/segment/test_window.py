import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fossil.config import EvalConfig
from fossil.segment.window import (
    CropPredictor,
    predict_label_map,
    resize_image,
    resized_size,
    slide_inference,
    sliding_windows,
    upsample_argmax,
    window_spans,
)


class Pointwise:
    """Scores as a per-pixel function of the crop: channel c of the crop, for C = 3.  Any
    correct overlap averaging must give back exactly that function of the whole image."""

    num_classes = 3

    def __init__(self) -> None:
        self.shapes: list[tuple[int, int]] = []

    def scores(self, crop: np.ndarray) -> np.ndarray:
        self.shapes.append(crop.shape[:2])
        return crop.transpose(2, 0, 1).astype(np.float32)


class Constant:
    num_classes = 2

    def scores(self, crop: np.ndarray) -> np.ndarray:
        out = np.empty((2, *crop.shape[:2]), np.float32)
        out[0], out[1] = 0.25, -3.5
        return out


# Windows derived by hand from grids = max(L − 448 + 224 − 1, 0) // 224 + 1 and the shift
# back: 448 → 1 window; 597 → (149 + 223) // 224 + 1 = 2, the second [224, 672) shifted to
# [149, 597); 896 → 671 // 224 + 1 = 3; 300 < 448 → 1 window [0, 300);
# 1000 → 775 // 224 + 1 = 4, the last [672, 1120) shifted to [552, 1000).
SPANS = {
    448: [(0, 448)],
    597: [(0, 448), (149, 597)],
    896: [(0, 448), (224, 672), (448, 896)],
    300: [(0, 300)],
    1000: [(0, 448), (224, 672), (448, 896), (552, 1000)],
}


@pytest.mark.parametrize("length", sorted(SPANS))
def test_window_spans_by_hand(length):
    assert window_spans(length, 448, 224) == SPANS[length]


@pytest.mark.parametrize("size", [(448, 448), (448, 597), (896, 448), (448, 896), (300, 1000)])
def test_sliding_windows_counts_and_positions(size):
    height, width = size
    windows = sliding_windows(height, width, 448, 224)
    assert windows == [(*ys, *xs) for ys in SPANS[height] for xs in SPANS[width]]
    assert len(windows) == len(SPANS[height]) * len(SPANS[width])
    for y1, y2, x1, x2 in windows:  # full size, or the whole axis when shorter than the crop
        assert y2 - y1 == min(448, height) and x2 - x1 == min(448, width)
        assert 0 <= y1 and y2 <= height and 0 <= x1 and x2 <= width


def test_slide_inference_averages_overlaps_exactly():
    scores = slide_inference(np.zeros((896, 597, 3), np.uint8), Constant())
    assert scores.shape == (2, 896, 597)
    assert np.all(scores[0] == 0.25) and np.all(scores[1] == -3.5)  # summed would be 0.5 …

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(300, 1000, 3), dtype=np.uint8)
    predictor = Pointwise()
    seen = []
    out = slide_inference(image, predictor, 448, 224, on_window=seen.append)
    np.testing.assert_allclose(out, image.transpose(2, 0, 1), rtol=0, atol=1e-4)
    assert predictor.shapes == [(300, 448)] * 4  # 1 × 4 windows, each 300 × 448
    assert seen == sliding_windows(300, 1000)


def test_slide_inference_rejects_bad_scores():
    class Wrong:
        num_classes = 3

        def scores(self, crop):
            return np.zeros((3, 5, 5), np.float32)

    assert isinstance(Wrong(), CropPredictor)
    with pytest.raises(
        ValueError, match=r"shape \(3, 5, 5\).*expected \(C, h, w\) = \(3, 64, 64\)"
    ):
        slide_inference(np.zeros((64, 64, 3), np.uint8), Wrong(), 448, 224)


# (w, h) → resized (w, h), by hand from s = min(2048/long, 448/short),
# size = (int(w·s + 0.5), int(h·s + 0.5)):
# Pascal Context 500×375: s = 448/375 = 1.19467; w = int(597.33 + .5) = 597; h = int(448 + .5) = 448
# COCO 640×480: s = 448/480 = 0.93333; w = int(597.33 + .5) = 597; h = 448
# ADE 683×512: s = 448/512 = 0.875; w = int(597.625 + .5) = 598; h = 448
# Cityscapes 2048×1024: s = min(1, 0.4375) = 0.4375; (896, 448)
# a 3000×100 strip: s = min(2048/3000, 4.48) = 0.68267; (2048, int(68.27 + .5) = 68)
RESIZE = {
    (500, 375): (597, 448),
    (640, 480): (597, 448),
    (683, 512): (598, 448),
    (2048, 1024): (896, 448),
    (3000, 100): (2048, 68),
}


@pytest.mark.parametrize("size", sorted(RESIZE))
def test_resize_rule_by_hand(size):
    assert resized_size(*size) == RESIZE[size]


def test_resize_image_shape_and_constant_regions():
    image = np.zeros((375, 500, 3), np.uint8)
    image[:, :250] = (10, 200, 30)
    out = resize_image(image, (597, 448))
    assert out.shape == (448, 597, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[:, :290], np.broadcast_to([10, 200, 30], (448, 290, 3)))
    np.testing.assert_array_equal(out[:, 310:], 0)


def test_predict_label_map_small_config_recovers_pointwise_argmax():
    rng = np.random.default_rng(3)
    small = rng.integers(0, 3, size=(9, 12))  # which channel is bright, on 4×4 blocks
    image = np.zeros((36, 48, 3), np.uint8)
    block = np.kron(small, np.ones((4, 4), int))
    for c in range(3):
        image[..., c] = np.where(block == c, 200, 20)
    labels = predict_label_map(image, Pointwise(), EvalConfig(short_side=72, crop=64, stride=32))
    assert labels.shape == (36, 48)
    interior = np.kron(np.ones_like(small), np.pad(np.ones((2, 2), int), 1)).astype(bool)
    np.testing.assert_array_equal(labels[interior], block[interior])


def test_tensor_scores_give_the_same_labels():
    import torch

    class TensorPointwise(Pointwise):
        def scores(self, crop):
            return torch.from_numpy(super().scores(crop))

    rng = np.random.default_rng(4)
    image = rng.integers(0, 256, size=(50, 70, 3), dtype=np.uint8)
    config = EvalConfig(short_side=64, crop=48, stride=24)
    np.testing.assert_array_equal(
        predict_label_map(image, TensorPointwise(), config),
        predict_label_map(image, Pointwise(), config),
    )


@pytest.mark.parametrize("chunk", [1, 3, 8, 50])
def test_chunked_upsample_argmax_equals_the_full_argmax(chunk: int) -> None:
    rng = np.random.default_rng(chunk)
    scores = torch.from_numpy(rng.random((17, 9, 13), dtype=np.float32))
    scores[5] = scores[2]  # exact ties go to the lower class, as torch.argmax does
    full = F.interpolate(scores[None], size=(40, 31), mode="bilinear", align_corners=False)[0]
    assert torch.equal(upsample_argmax(scores, (40, 31), chunk=chunk), full.argmax(dim=0))
