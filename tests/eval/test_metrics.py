import numpy as np
import pytest
import torch
from torchmetrics.classification import MulticlassJaccardIndex

from fossil.eval.datasets import reduce_zero_label
from fossil.eval.metrics import IoUAccumulator, intersect_and_union

C = 7


def random_maps(rng: np.random.Generator, shape=(23, 31)) -> tuple[np.ndarray, np.ndarray]:
    """Predictions never use class 4 and labels never use 4 or 6 (absent classes); class 6
    is only predicted (IoU 0); ~15% of the labels are ignored."""
    pred = rng.choice([0, 1, 2, 3, 5, 6], size=shape)
    label = rng.choice([0, 1, 2, 3, 5], size=shape)
    label[rng.random(shape) < 0.15] = 255
    agree = rng.random(shape) < 0.5
    pred[agree & (label != 255)] = label[agree & (label != 255)]
    return pred, label.astype(np.uint8)


def confusion_reference(pairs, num_classes: int) -> tuple[np.ndarray, float, float]:
    """Dataset confusion matrix by np.add.at → IoU per class (NaN without union), mIoU, aAcc."""
    confusion = np.zeros((num_classes, num_classes), np.int64)
    for pred, label in pairs:
        valid = label != 255
        np.add.at(confusion, (label[valid].astype(int), pred[valid].astype(int)), 1)
    tp = np.diag(confusion).astype(float)
    union = confusion.sum(0) + confusion.sum(1) - tp
    iou = np.full(num_classes, np.nan)
    iou[union > 0] = tp[union > 0] / union[union > 0]
    return iou, float(np.nanmean(iou)), tp.sum() / confusion.sum()


def torchmetrics_miou(pairs, num_classes: int) -> tuple[float, np.ndarray]:
    macro = MulticlassJaccardIndex(num_classes, average="macro", ignore_index=255)
    per_class = MulticlassJaccardIndex(num_classes, average="none", ignore_index=255)
    for pred, label in pairs:
        p, t = torch.from_numpy(pred.astype(np.int64)), torch.from_numpy(label.astype(np.int64))
        macro.update(p, t)
        per_class.update(p, t)
    return float(macro.compute()), per_class.compute().numpy()


@pytest.fixture
def pairs():
    rng = np.random.default_rng(0)
    return [random_maps(rng) for _ in range(4)]


def test_accumulator_matches_confusion_matrix_reference(pairs):
    accumulator = IoUAccumulator(C)
    for pred, label in pairs:
        accumulator.update(pred, label)
    iou, miou, aacc = confusion_reference(pairs, C)
    assert np.isnan(accumulator.iou()[4]) and np.isnan(iou[4])  # absent everywhere
    assert accumulator.iou()[6] == 0.0  # predicted only
    np.testing.assert_allclose(accumulator.iou(), iou, equal_nan=True)
    assert accumulator.miou() == pytest.approx(miou, abs=1e-12)
    assert accumulator.aacc() == pytest.approx(aacc, abs=1e-12)
    assert accumulator.images == 4


def test_accumulator_matches_torchmetrics_macro_jaccard(pairs):
    accumulator = IoUAccumulator(C)
    for pred, label in pairs:
        accumulator.update(pred, label)
    macro, per_class = torchmetrics_miou(pairs, C)
    # torchmetrics 1.x gives classes with an empty union weight 0 in the macro average, which
    # is mmseg's nanmean; its per-class output holds 0 for them, so compare per class only
    # where the class has a union (class 4 here).
    present = ~np.isnan(accumulator.iou())
    assert not present.all()
    np.testing.assert_allclose(accumulator.iou()[present], per_class[present], rtol=1e-6)
    assert accumulator.miou() == pytest.approx(macro, rel=1e-6)
    assert accumulator.miou() == pytest.approx(np.mean(per_class[present]), rel=1e-6)


def test_reduce_zero_label_by_hand_and_against_torchmetrics():
    raw = np.array([[0, 1, 2, 255], [3, 0, 1, 2]], np.uint8)
    np.testing.assert_array_equal(reduce_zero_label(raw), [[255, 0, 1, 255], [2, 255, 0, 1]])
    rng = np.random.default_rng(1)
    pairs = []
    for _ in range(3):
        raw = rng.integers(0, C + 1, size=(17, 19)).astype(np.uint8)  # 0 = "other", ignored
        label = reduce_zero_label(raw).astype(np.uint8)
        pred = np.where(rng.random(raw.shape) < 0.6, np.maximum(raw.astype(int) - 1, 0), 3)
        pairs.append((pred, label))
    accumulator = IoUAccumulator(C)
    for pred, label in pairs:
        accumulator.update(pred, label)
    macro, _ = torchmetrics_miou(pairs, C)
    assert accumulator.miou() == pytest.approx(macro, rel=1e-6)
    assert accumulator.miou() == pytest.approx(confusion_reference(pairs, C)[1], rel=1e-12)


def test_intersect_and_union_by_hand():
    pred = np.array([[0, 0, 1], [1, 2, 2]])
    label = np.array([[0, 1, 1], [255, 2, 0]], np.uint8)
    counts = intersect_and_union(pred, label, 3)
    np.testing.assert_array_equal(counts.intersection, [1, 1, 1])
    np.testing.assert_array_equal(counts.pred_area, [2, 1, 2])  # pixel under 255 not counted
    np.testing.assert_array_equal(counts.label_area, [2, 2, 1])
    np.testing.assert_array_equal(counts.union, [3, 2, 2])


def test_empty_accumulator_and_bad_input():
    accumulator = IoUAccumulator(3)
    assert np.isnan(accumulator.miou()) and np.isnan(accumulator.aacc())
    with pytest.raises(ValueError, match=r"label values \[3\] outside \[0, 3\)"):
        accumulator.update(np.zeros((2, 2), int), np.full((2, 2), 3, np.uint8))
    with pytest.raises(ValueError, match="differ in shape"):
        accumulator.update(np.zeros((2, 2), int), np.zeros((2, 3), np.uint8))
    with pytest.raises(ValueError, match="num_classes"):
        IoUAccumulator(0)
