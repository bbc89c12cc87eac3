"""Small protocols through which models are injected (STYLE §5).

Production implementations wrap Hugging Face / spaCy models (see :mod:`fossil.models.loading`);
tests and the synthetic demo world pass their own objects with the same methods.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from fossil.records import GeneratedImage, Noun


@runtime_checkable
class TextEncoder(Protocol):
    """Embeds texts; rows are L2-normalised float32."""

    name: str  # model id or path, recorded in collection_meta
    dim: int

    def encode(self, texts: Sequence[str]) -> np.ndarray:  # (B, dim)
        ...


@runtime_checkable
class DenseEncoder(Protocol):
    """Dense patch features of RGB images: the VRE / region-feature extractor (design §5.4, §5.8),
    or the OpenCut key extractor (design §5.7)."""

    name: str
    dim: int
    input_size: int  # images are resized to input_size × input_size

    def features(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """(B, H, W, 3) uint8 images (any sizes) → (B, h, w, dim) float32 patch features."""
        ...


@runtime_checkable
class NounParser(Protocol):
    name: str

    def parse(self, captions: Sequence[str]) -> list[list[Noun]]:
        """Nouns (compounds merged) per caption, in order of appearance."""
        ...


@runtime_checkable
class Generator(Protocol):
    """Text-to-image generator that also locates nouns (SD + DAAM heat maps, design §5.1–§5.3)."""

    name: str
    fingerprint: str  # identifies everything that changes the images/masks (design §4 point ids)

    def generate(
        self, captions: Sequence[str], nouns: Sequence[Sequence[Noun]]
    ) -> list[GeneratedImage]:
        """One image per caption, seeded from the caption text, with a mask per noun."""
        ...
