"""Small fake models for the ingest unit tests (the vector store: tests.fakes.MemoryStore).

The fakes are deterministic and simple enough to predict by hand: the noun parser knows a
fixed vocabulary, the generator draws a seeded random image and one rectangle mask per noun
(with a few planted special cases), the encoders are hashing / pooling functions.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from fossil.db.catalog import SqlCatalog, caption_hash
from fossil.db.protocols import CaptionJob, Collection
from fossil.records import GeneratedImage, Noun
from tests.fakes import MemoryStore, make_meta

# Nouns the fake parser finds.  Planted behaviours in the fake generator:
#   "ghost"   → located but its mask is empty (no reference, counted)
#   "distant" → not located (GeneratedImage.skipped, counted)
#   "boom"    → the generator raises for any caption containing it
VOCAB = ("dog", "cat", "car", "tree", "sky", "grass", "ball", "house", "ghost", "distant", "boom")
IMAGE_SIDE = 32
_WORD = re.compile(r"[a-z]+")


def _seed(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


class FakeNouns:
    name = "fake-nouns"

    def parse(self, captions: Sequence[str]) -> list[list[Noun]]:
        out = []
        for caption in captions:
            nouns = []
            for k, match in enumerate(_WORD.finditer(caption.lower())):
                word = match.group()
                lemma = word[:-1] if word.endswith("s") and word[:-1] in VOCAB else word
                if lemma in VOCAB:
                    nouns.append(Noun(word, lemma, match.start(), match.end(), k, k + 1))
            out.append(nouns)
        return out


def noun_mask(lemma: str, side: int = IMAGE_SIDE) -> np.ndarray:
    """The fake generator's mask for a noun: a rectangle placed by the lemma's hash."""
    mask = np.zeros((side, side), bool)
    if lemma == "ghost":
        return mask
    seed = _seed(lemma)
    top, left = seed % (side // 2), (seed // 7) % (side // 2)
    mask[top : top + side // 4 + 1, left : left + side // 3 + 1] = True
    return mask


class FakeGenerator:
    name = "fake-generator"
    fingerprint = "fake-generator-v1"

    def __init__(self) -> None:
        self.calls: list[int] = []  # batch sizes seen

    def generate(
        self, captions: Sequence[str], nouns: Sequence[Sequence[Noun]]
    ) -> list[GeneratedImage]:
        self.calls.append(len(captions))
        images = []
        for caption, caption_nouns in zip(captions, nouns, strict=True):
            if "boom" in caption:
                raise RuntimeError(f"generator exploded on {caption!r}")
            rng = np.random.default_rng(_seed(caption))
            image = rng.integers(0, 256, (IMAGE_SIDE, IMAGE_SIDE, 3), dtype=np.uint8)
            located = [n for n in caption_nouns if n.lemma != "distant"]
            skipped = tuple(n for n in caption_nouns if n.lemma == "distant")
            masks = np.stack([noun_mask(n.lemma) for n in located]) if located else None
            images.append(
                GeneratedImage(
                    caption=caption,
                    seed=_seed(caption),
                    image=image,
                    nouns=tuple(located),
                    heatmaps=np.zeros((len(located), 8, 8), np.float32),
                    masks=masks
                    if masks is not None
                    else np.zeros((0, IMAGE_SIDE, IMAGE_SIDE), bool),
                    skipped=skipped,
                )
            )
        return images


class FakeText:
    """Hashing bag-of-words text encoder, rows L2-normalised."""

    def __init__(self, name: str = "fake-text", dim: int = 16) -> None:
        self.name, self.dim = name, dim

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), np.float32)
        for row, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                out[row, _seed(word) % self.dim] += 1.0
            out[row, 0] += 0.01  # never a zero row
        return out / np.linalg.norm(out, axis=1, keepdims=True)


class FakeDense:
    """Patch features: per 8×8 block the mean colour and its square (4×4 grid, dim 6)."""

    name = "fake-dense"
    dim = 6
    input_size = IMAGE_SIDE

    def features(self, images: Sequence[np.ndarray]) -> np.ndarray:
        batch = np.stack([np.asarray(i, np.float32) / 255.0 for i in images])  # (B, 32, 32, 3)
        blocks = batch.reshape(len(images), 4, 8, 4, 8, 3).mean(axis=(2, 4))  # (B, 4, 4, 3)
        return np.concatenate([blocks, blocks**2], axis=-1).astype(np.float32)


@dataclass
class FakeModels:
    generator: FakeGenerator = field(default_factory=FakeGenerator)
    nouns: FakeNouns = field(default_factory=FakeNouns)
    text: FakeText = field(default_factory=FakeText)
    dense: FakeDense = field(default_factory=FakeDense)


def load_fake_models() -> FakeModels:
    """Module-level (picklable) loader for worker-process tests."""
    return FakeModels()


FAKE_META = make_meta(
    text_encoder="fake-text",
    text_dim=16,
    dense_encoder="fake-dense",
    visual_dim=6,
    generator="fake-generator",
    generation_fingerprint="fake-generator-v1",
)  # what FakeModels record


# One caption per planted case, with their expected reference counts in the comments.
CAPTIONS = [
    "A dog chasing a ball on the grass",  # 3 references
    "Nothing to see here",  # no nouns: done, zero references
    "A ghost and a cat",  # ghost: empty mask (counted); cat: 1 reference
    "A distant house under the sky",  # distant: not located (counted); 2 references
    "A dog and another dog near a car",  # repeated dog: 2 references
]


def make_jobs(captions: list[str], corpus: str = "c") -> list[CaptionJob]:
    return [CaptionJob(i + 1, c, caption_hash(c), corpus, 1) for i, c in enumerate(captions)]


@pytest.fixture
def models() -> FakeModels:
    return FakeModels()


@pytest.fixture
def collection(tmp_path: Path) -> Iterator[Collection]:
    catalog = SqlCatalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    opened = Collection(refs=MemoryStore(), catalog=catalog, meta=FAKE_META, root=str(tmp_path))
    yield opened
    opened.close()  # closes the catalog too


def load_broken_models() -> FakeModels:
    """A loader that fails like a missing checkpoint would."""
    raise OSError("no weights at /nowhere")
