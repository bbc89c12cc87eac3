"""Composition of the layers into user-facing operations: build or grow a reference
collection from caption corpora (``ingest_corpora``, ``register_corpora``); read one — a
``ReadSession`` opens it with its models and a config and answers queries, coverage,
``--extend``, segmentations and the evaluation's crop predictor (what every read-side command,
the server and the demo run on), ``segment_image`` and ``build_predictor`` being the calls it
composes; the models a command runs with for a collection (``collection_models``); what a
collection holds (``collect``, ``describe``).  Names are imported on first use."""

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
    "ingest_corpora": "fossil.pipeline.ingest",
    "register_corpora": "fossil.pipeline.ingest",
    "IngestProgress": "fossil.pipeline.ingest",
    "IngestSummary": "fossil.pipeline.ingest",
    "IngestOptions": "fossil.pipeline.ingest_config",
    "ModelChoice": "fossil.pipeline.ingest_config",
    "StoreAddress": "fossil.pipeline.ingest_config",
    "ReadCaches": "fossil.pipeline.session",
    "ReadSession": "fossil.pipeline.session",
    "collect": "fossil.pipeline.info",
    "describe": "fossil.pipeline.info",
    "collection_models": "fossil.pipeline.models",
    "check_dense_encoder": "fossil.pipeline.models",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'fossil.pipeline' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
