"""Composition of the layers into user-facing operations: segment an image for a list of
concepts against a reference collection (``segment_image``), and the per-crop predictor the
evaluation runner drives (``build_predictor``).  Names are imported on first use."""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "CropScorer": "fossil.pipeline.segmenter",
    "ImageAnalyser": "fossil.pipeline.segmenter",
    "SegmentationResult": "fossil.pipeline.segmenter",
    "build_predictor": "fossil.pipeline.segmenter",
    "segment_image": "fossil.pipeline.segmenter",
    "overlay": "fossil.pipeline.overlay",
    "load_image": "fossil.pipeline.images",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'fossil.pipeline' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
