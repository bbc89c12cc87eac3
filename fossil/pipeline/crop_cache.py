"""On-disk cache of per-crop arrays (DINOv2 features, OpenCut masks …) for the pipeline's
:class:`~fossil.pipeline.segmenter.ImageAnalyser` (``fossil eval`` gives it one), so sweeps
of N, K and γ (paper Fig. 2) reuse the expensive image-level work.

An entry is a set of named numpy arrays keyed by (image sha1, crop box, config fingerprint).
The fingerprint must cover everything the arrays depend on (model ids, input sizes, the
OpenCut configuration) and nothing they do not (N, K, γ), or sweeps stop hitting the cache.
A predictor that only sees the crop can key it by its own content:
``CropCache.crop_key(crop)`` gives ``(array_sha1(crop), (0, h, 0, w))``, a box in the
``(y1, y2, x1, x2)`` order of :data:`Box`.

Entries are ``.npz`` files written to a temporary name and renamed into place, so a killed
run never leaves a half-written entry; an unreadable entry is treated as a miss.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

Box = tuple[int, int, int, int]  # (y1, y2, x1, x2) in the image the sha1 names


def array_sha1(array: np.ndarray) -> str:
    """sha1 of an array's shape, dtype and bytes."""
    digest = hashlib.sha1(f"{array.shape}|{array.dtype.str}|".encode())
    digest.update(np.ascontiguousarray(array).data)
    return digest.hexdigest()


def config_fingerprint(config: Any) -> str:
    """sha1 of a dataclass or JSON-able mapping, stable across runs and key order."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        config = dataclasses.asdict(config)
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()


class CropCache:
    """Named arrays per (image sha1, crop box, fingerprint) under ``directory``."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.hits = 0
        self.misses = 0

    @staticmethod
    def crop_key(crop: np.ndarray) -> tuple[str, Box]:
        """Key a crop by its own content: ``(array_sha1(crop), (0, h, 0, w))``."""
        return array_sha1(crop), (0, crop.shape[0], 0, crop.shape[1])

    def path(self, image_sha1: str, box: Box, fingerprint: str) -> Path:
        if len(box) != 4:
            raise ValueError(f"box {box} must be (y1, y2, x1, x2)")
        text = f"{image_sha1}|{','.join(str(int(v)) for v in box)}|{fingerprint}"
        key = hashlib.sha1(text.encode()).hexdigest()
        return self.directory / key[:2] / f"{key}.npz"

    def get(self, image_sha1: str, box: Box, fingerprint: str) -> dict[str, np.ndarray] | None:
        """The stored arrays, or None when absent or unreadable."""
        path = self.path(image_sha1, box, fingerprint)
        if not path.is_file():
            self.misses += 1
            return None
        try:
            with np.load(path, allow_pickle=False) as stored:
                arrays = {name: stored[name] for name in stored.files}
        except (OSError, ValueError, zipfile.BadZipFile) as error:
            logger.warning("ignoring unreadable cache entry %s: %s", path, error)
            self.misses += 1
            return None
        self.hits += 1
        return arrays

    def put(
        self, image_sha1: str, box: Box, fingerprint: str, arrays: Mapping[str, np.ndarray]
    ) -> None:
        """Store ``arrays`` (names must be valid identifiers), replacing any older entry."""
        if not arrays:
            raise ValueError("arrays must not be empty")
        path = self.path(image_sha1, box, fingerprint)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload: dict[str, Any] = {name: np.asarray(a) for name, a in arrays.items()}
        handle, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as file:
                np.savez(file, **payload)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get_or_compute(
        self,
        image_sha1: str,
        box: Box,
        fingerprint: str,
        compute: Callable[[], Mapping[str, np.ndarray]],
    ) -> dict[str, np.ndarray]:
        """The stored arrays, or ``compute()``'s, stored for next time."""
        cached = self.get(image_sha1, box, fingerprint)
        if cached is not None:
            return cached
        arrays = {name: np.asarray(a) for name, a in compute().items()}
        self.put(image_sha1, box, fingerprint, arrays)
        return arrays
