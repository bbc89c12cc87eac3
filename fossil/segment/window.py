"""The sliding-window protocol of TCL / mmsegmentation 0.27 as FOSSIL used it (design §9): how a
whole image is cut into crops and their class scores put back together.  ``fossil segment``
(:mod:`fossil.pipeline.segmenter`) and the benchmark runner (:mod:`fossil.eval.runner`) both
follow it.  Pure array code.

1. Resize (mmcv ``imrescale`` with ``img_scale=(2048, 448)``, ``keep_ratio=True``):
   ``s = min(2048 / long, 448 / short)``, new size ``(int(w·s + 0.5), int(h·s + 0.5))``,
   bilinear.
2. Slide (mmseg 0.27 ``EncoderDecoder.slide_inference``): crop 448, stride 224,
   ``grids = max(H − crop + stride − 1, 0) // stride + 1`` per axis; a window running past
   the border is shifted back to end on it, so windows stay full size; along an axis shorter
   than the crop there is one window spanning that whole axis (no padding).  Per-crop class
   scores are summed and divided by the number of windows covering each pixel.
3. The averaged scores are resized bilinearly (``align_corners=False``) to the original
   image size and the label is their argmax.

The model is injected as a :class:`CropPredictor`: class scores for one crop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F

from fossil.config import EvalConfig

Window = tuple[int, int, int, int]  # (y1, y2, x1, x2)


@runtime_checkable
class CropPredictor(Protocol):
    """Class scores for one crop; higher means more likely."""

    @property
    def num_classes(self) -> int:
        """C, the number of classes scored."""
        ...

    def scores(self, crop: np.ndarray) -> np.ndarray:
        """``crop`` (h, w, 3) uint8 RGB → (C, h, w) float32 class scores.

        A ``torch.Tensor`` (on any device) is accepted too: the protocol then averages and
        resizes the scores on that device."""
        ...


def resize_scale(width: int, height: int, long_side: int = 2048, short_side: int = 448) -> float:
    """mmcv's keep-ratio scale factor: ``min(long_side / long, short_side / short)``."""
    if width < 1 or height < 1:
        raise ValueError(f"image size ({width}x{height}) must be at least 1x1")
    return min(long_side / max(width, height), short_side / min(width, height))


def resized_size(
    width: int, height: int, long_side: int = 2048, short_side: int = 448
) -> tuple[int, int]:
    """(width, height) after the protocol's resize: ``(int(w·s + 0.5), int(h·s + 0.5))``."""
    s = resize_scale(width, height, long_side, short_side)
    return int(width * s + 0.5), int(height * s + 0.5)


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) uint8 → (height, width, 3) uint8 for ``size = (width, height)``, bilinear.

    Half-pixel centres without antialiasing, the sampling of OpenCV's ``INTER_LINEAR``
    that mmcv uses (OpenCV's fixed-point arithmetic may differ by one grey level)."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
    width, height = size
    if (height, width) == image.shape[:2]:
        return image
    x = torch.tensor(image).permute(2, 0, 1)[None].float()
    y = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False)
    return y[0].permute(1, 2, 0).round_().clamp_(0, 255).to(torch.uint8).numpy()


def window_spans(length: int, crop: int, stride: int) -> list[tuple[int, int]]:
    """Start/end of each window along one axis of ``length`` pixels (mmseg 0.27)."""
    if length < 1 or crop < 1 or stride < 1:
        raise ValueError(f"length ({length}), crop ({crop}) and stride ({stride}) must be >= 1")
    grids = max(length - crop + stride - 1, 0) // stride + 1
    spans = []
    for index in range(grids):
        end = min(index * stride + crop, length)
        spans.append((max(end - crop, 0), end))
    return spans


def sliding_windows(height: int, width: int, crop: int = 448, stride: int = 224) -> list[Window]:
    """Windows ``(y1, y2, x1, x2)`` over an (height, width) image, rows first."""
    return [
        (y1, y2, x1, x2)
        for y1, y2 in window_spans(height, crop, stride)
        for x1, x2 in window_spans(width, crop, stride)
    ]


def slide_inference(
    image: np.ndarray,
    predictor: CropPredictor,
    crop: int = 448,
    stride: int = 224,
    on_window: Callable[[Window], None] | None = None,
) -> np.ndarray:
    """``image`` (H, W, 3) uint8 → (C, H, W) float32: crop scores averaged over overlaps.

    ``on_window`` is told each window ``(y1, y2, x1, x2)`` before its crop is scored."""
    return _slide(image, predictor, crop, stride, on_window).cpu().numpy()


def _slide(
    image: np.ndarray,
    predictor: CropPredictor,
    crop: int,
    stride: int,
    on_window: Callable[[Window], None] | None = None,
) -> torch.Tensor:
    """:func:`slide_inference` as a tensor on the device of the predictor's scores."""
    height, width = image.shape[:2]
    num_classes = predictor.num_classes
    total: torch.Tensor | None = None
    count: torch.Tensor | None = None
    for window in sliding_windows(height, width, crop, stride):
        y1, y2, x1, x2 = window
        if on_window is not None:
            on_window(window)
        scores = torch.as_tensor(predictor.scores(image[y1:y2, x1:x2]))
        expected = (num_classes, y2 - y1, x2 - x1)
        if tuple(scores.shape) != expected:
            raise ValueError(
                f"predictor returned scores of shape {tuple(scores.shape)} for a crop of "
                f"{y2 - y1}x{x2 - x1}; expected (C, h, w) = {expected}"
            )
        if total is None or count is None:
            total = torch.zeros((num_classes, height, width), device=scores.device)
            count = torch.zeros((height, width), device=scores.device)
        total[:, y1:y2, x1:x2] += scores
        count[y1:y2, x1:x2] += 1.0
    assert total is not None and count is not None and bool(count.min() > 0)
    return total.div_(count)


def _upsample(scores: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(scores.shape[1:]) == tuple(size):
        return scores
    return F.interpolate(scores[None], size=size, mode="bilinear", align_corners=False)[0]


def upsample_argmax(scores: torch.Tensor, size: tuple[int, int], chunk: int = 8) -> torch.Tensor:
    """``argmax`` over classes of the bilinear upsampling of ``scores`` (C, h, w) to ``size``,
    ``chunk`` classes at a time: the same labels as upsampling everything at once (ties go to
    the lower class) with memory for ``chunk`` + 2 maps instead of C — a 10000² image with
    150 concepts would otherwise need 60 GB."""
    best_score: torch.Tensor | None = None
    best = torch.zeros(size, dtype=torch.int64, device=scores.device)
    for start in range(0, scores.shape[0], chunk):
        part = _upsample(scores[start : start + chunk], size)
        score, index = part.max(dim=0)
        if best_score is None:
            best_score, best = score, index
        else:
            better = score > best_score
            best_score = torch.where(better, score, best_score)
            best = torch.where(better, index + start, best)
    return best


def predict_label_map(
    image: np.ndarray, predictor: CropPredictor, config: EvalConfig | None = None
) -> np.ndarray:
    """The whole protocol: ``image`` (H, W, 3) uint8 → (H, W) int64 labels in [0, C).

    The averaging, resizing and argmax run where the predictor's scores live: a predictor
    returning CUDA tensors keeps this work on the GPU."""
    config = config or EvalConfig()
    height, width = image.shape[:2]
    size = resized_size(width, height, config.long_side, config.short_side)
    resized = resize_image(image, size)
    scores = _slide(resized, predictor, config.crop, config.stride)
    return upsample_argmax(scores, (height, width)).cpu().numpy()
