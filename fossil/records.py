"""Record types shared by the layers (design §4).

Plain frozen dataclasses with no behaviour beyond validation: the model layer produces
:class:`Noun` and :class:`GeneratedImage`; ingest turns them into :class:`ReferencePoint`
which the stores persist; retrieval returns :class:`Hit`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# Namespace for deterministic point ids (design §4): uuid5(namespace, "hash:index:fingerprint").
POINT_NAMESPACE = uuid.UUID("6f1d3c1e-5f0b-4b8e-9d6a-f0551f0551f0")


# Where a reference comes from (design §5.10): a generated image and its heat map, or a
# labelled photo and its ground-truth mask (corpus "labelled:<name>", payload source).
SOURCE_GENERATED = "generated"
SOURCE_LABELLED = "labelled"
LABELLED_PREFIX = "labelled:"
SOURCES = ("all", SOURCE_GENERATED, SOURCE_LABELLED)  # what retrieval may be restricted to


def is_labelled(corpus: str | None) -> bool:
    """Whether ``corpus`` names a labelled set (``labelled:<name>``)."""
    return bool(corpus) and str(corpus).startswith(LABELLED_PREFIX)


def reference_source(payload_source: Any, corpus: str | None) -> str:
    """``"labelled"`` or ``"generated"``: a point's ``source`` payload, else its corpus's."""
    if payload_source in (SOURCE_LABELLED, SOURCE_GENERATED):
        return str(payload_source)
    return SOURCE_LABELLED if is_labelled(corpus) else SOURCE_GENERATED


def point_id(caption_hash: str, noun_index: int, generation_fingerprint: str) -> str:
    """Deterministic point id of one (caption, noun) reference (design §4)."""
    return str(uuid.uuid5(POINT_NAMESPACE, f"{caption_hash}:{noun_index}:{generation_fingerprint}"))


@dataclass(frozen=True)
class Noun:
    """A noun (or compound noun) found in a caption.

    ``start``/``end`` are character offsets into the caption (``caption[start:end] == text``);
    ``token_start``/``token_end`` are spaCy token indices (end exclusive).
    """

    text: str
    lemma: str
    start: int
    end: int
    token_start: int = 0
    token_end: int = 0


@dataclass(frozen=True)
class GeneratedImage:
    """One generated image with a heat map and a mask per located noun (design §5.1–§5.3).

    ``nouns[i]`` ↔ ``heatmaps[i]`` (h, w) float32 ≥ 0 ↔ ``masks[i]`` (H, W) bool.
    ``skipped`` lists nouns that could not be located in the tokenised caption
    (truncated or not matched) and have no heat map.
    """

    caption: str
    seed: int
    image: np.ndarray  # (H, W, 3) uint8
    nouns: tuple[Noun, ...]
    heatmaps: np.ndarray  # (n, h, w) float32, soft, ≥ 0
    masks: np.ndarray  # (n, H, W) bool
    skipped: tuple[Noun, ...] = ()


@dataclass(frozen=True)
class ReferencePoint:
    """One reference as stored in the vector store: a (caption, noun) pair (design §4)."""

    id: str
    text: np.ndarray  # (dim_text,) Textual Retrieval Embedding, unit norm
    visual: np.ndarray  # (dim_visual,) Visual Reference Embedding, raw
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Hit:
    """One retrieved reference: point id, cosine similarity and payload."""

    id: str
    score: float
    payload: dict[str, Any] = field(default_factory=dict)
