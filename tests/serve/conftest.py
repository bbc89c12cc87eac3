"""Fixtures for the ``fossil serve`` tests: a store built by ``fossil ingest --models tiny``
(random tiny models: labels mean nothing, but shapes, provenance and errors must hold) and
sample images."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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


@contextmanager
def queued_behind_first(send: Callable[[], int], first: Any, count: int = 3) -> Iterator[list[int]]:
    """``count`` requests sent at once from threads (``send`` returns a status code) while
    ``first`` (``Service.segment`` replaced by a ``Blocking``) holds the first of them on the
    model thread.  Inside, the first has arrived and the others have had 0.3 s to queue;
    leaving releases it and joins every thread, and the list holds their status codes."""
    answers: list[int] = []
    threads = [threading.Thread(target=lambda: answers.append(send())) for _ in range(count)]
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + 10
        while first.calls < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)  # the others arrive meanwhile
        yield answers
    finally:
        first.release.set()
        for thread in threads:
            thread.join(30)
