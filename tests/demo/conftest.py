"""Shared fixtures of the synthetic-world tests: held-out scenes and their encoder features."""

from __future__ import annotations

import numpy as np
import pytest

from fossil.demo.corpus import caption_corpus
from fossil.demo.encoder import SyntheticDenseEncoder
from fossil.demo.render import Scene
from fossil.demo.scenes import held_out_scenes
from fossil.records import Noun


@pytest.fixture(scope="session")
def corpus() -> list[str]:
    return caption_corpus(200, seed=4)


@pytest.fixture(scope="session")
def parsed(corpus: list[str]) -> list[list[Noun]]:
    """The corpus parsed by the real spaCy noun parser."""
    from fossil.models.nouns import SpacyNounParser

    return SpacyNounParser().parse(corpus)


@pytest.fixture(scope="session")
def scenes() -> list[Scene]:
    return held_out_scenes(12, seed=3)


@pytest.fixture(scope="session")
def region_encoder() -> SyntheticDenseEncoder:
    return SyntheticDenseEncoder()


@pytest.fixture(scope="session")
def key_encoder() -> SyntheticDenseEncoder:
    return SyntheticDenseEncoder(keys=True)


def patch_labels(scene: Scene, grid: int) -> np.ndarray:
    """(grid, grid) material of each patch, −1 where the patch is not pure (a boundary)."""
    side = scene.labels.shape[0] // grid
    blocks = scene.labels.reshape(grid, side, grid, side).transpose(0, 2, 1, 3)
    blocks = blocks.reshape(grid, grid, side * side)
    pure = (blocks == blocks[..., :1]).all(axis=-1)
    return np.where(pure, blocks[..., 0], -1)
