"""mIoU as mmseg 0.27 computes it (design §9): per-class intersection and union summed over the
whole dataset, IoU per class, mIoU = nanmean over classes (a class neither predicted nor
present has no union and is left out), aAcc = correct pixels / labelled pixels.

Pixels labelled ``ignore_index`` (255) count nowhere, neither in the prediction's areas.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class ImageCounts:
    """Per-class pixel counts of one image (or a sum of images), each (C,) int64."""

    intersection: np.ndarray  # predicted c where the label is c
    pred_area: np.ndarray  # predicted c on labelled pixels
    label_area: np.ndarray  # labelled c

    @property
    def union(self) -> np.ndarray:
        return self.pred_area + self.label_area - self.intersection


@dataclass(frozen=True)
class EvalResult:
    """Dataset-level numbers of one evaluation (what :mod:`fossil.eval.runner` returns and
    :mod:`fossil.eval.report` writes)."""

    dataset: str
    class_names: tuple[str, ...]
    iou: np.ndarray  # (C,) fractions, NaN for classes with no union
    miou: float
    aacc: float
    num_images: int
    skipped: tuple[tuple[str, str], ...]  # (image name, reason)
    counts: ImageCounts  # summed over the dataset
    resumed: int = 0  # images whose results were read back from an earlier run
    reports: dict[str, Path] = field(default_factory=dict)


def intersect_and_union(
    pred: np.ndarray, label: np.ndarray, num_classes: int, ignore_index: int = 255
) -> ImageCounts:
    """``pred`` and ``label`` (H, W) int → per-class counts over pixels not ``ignore_index``.

    Labels must lie in ``[0, num_classes)`` or equal ``ignore_index``; predictions in
    ``[0, num_classes)``."""
    if pred.shape != label.shape:
        raise ValueError(f"prediction {pred.shape} and label {label.shape} differ in shape")
    valid = label != ignore_index
    pred_v = pred[valid].astype(np.int64, copy=False)
    label_v = label[valid].astype(np.int64, copy=False)
    _check_range("label", label_v, num_classes)
    _check_range("prediction", pred_v, num_classes)
    hit = pred_v[pred_v == label_v]
    return ImageCounts(
        intersection=np.bincount(hit, minlength=num_classes),
        pred_area=np.bincount(pred_v, minlength=num_classes),
        label_area=np.bincount(label_v, minlength=num_classes),
    )


def _check_range(what: str, values: np.ndarray, num_classes: int) -> None:
    if values.size and (values.min() < 0 or values.max() >= num_classes):
        bad = np.unique(values[(values < 0) | (values >= num_classes)])[:10].tolist()
        raise ValueError(f"{what} values {bad} outside [0, {num_classes}) and not ignored")


@dataclass
class IoUAccumulator:
    """Streaming dataset-level counts: ``update`` per image, read IoU/mIoU/aAcc any time."""

    num_classes: int
    ignore_index: int = 255
    total: ImageCounts = field(init=False)
    images: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        if self.num_classes < 1:
            raise ValueError(f"num_classes ({self.num_classes}) must be >= 1")
        zeros = np.zeros(self.num_classes, np.int64)
        self.total = ImageCounts(zeros, zeros.copy(), zeros.copy())

    def update(self, pred: np.ndarray, label: np.ndarray) -> ImageCounts:
        """Add one image; returns its own counts (what a resumable run stores)."""
        counts = intersect_and_union(pred, label, self.num_classes, self.ignore_index)
        self.add(counts)
        return counts

    def add(self, counts: ImageCounts) -> None:
        """Add counts computed earlier (for instance read back from a resumed run)."""
        if counts.intersection.shape != (self.num_classes,):
            raise ValueError(
                f"counts have {counts.intersection.shape[0]} classes, expected {self.num_classes}"
            )
        self.total = ImageCounts(
            self.total.intersection + counts.intersection,
            self.total.pred_area + counts.pred_area,
            self.total.label_area + counts.label_area,
        )
        self.images += 1

    def iou(self) -> np.ndarray:
        """(C,) float64 IoU per class; NaN where the class has no union."""
        union = self.total.union
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(union > 0, self.total.intersection / union, np.nan)

    def miou(self) -> float:
        """nanmean of :meth:`iou`; NaN before any labelled pixel."""
        iou = self.iou()
        return float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan")

    def aacc(self) -> float:
        """Correct labelled pixels / labelled pixels; NaN before any labelled pixel."""
        labelled = int(self.total.label_area.sum())
        return int(self.total.intersection.sum()) / labelled if labelled else float("nan")
