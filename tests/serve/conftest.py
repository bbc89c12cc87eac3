"""Fixtures for the ``fossil serve`` tests: a store built by ``fossil ingest --models tiny``
(random tiny models: labels mean nothing, but shapes, provenance and errors must hold) and
sample images."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import build_tiny_store


def park(width: int = 130, height: int = 90) -> np.ndarray:
    """A two-part picture (green left, pale right) with a little noise."""
    rng = np.random.default_rng(0)
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[:, : width // 2] = (30, 160, 40)
    pixels[:, width // 2 :] = (200, 200, 230)
    return np.clip(pixels + rng.integers(-10, 11, pixels.shape), 0, 255).astype(np.uint8)


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_store(tmp_path_factory.mktemp("serve"))
