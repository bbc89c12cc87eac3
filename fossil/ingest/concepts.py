"""Concept corpora: captions written for a concept no corpus mentions (``fossil ingest
--concepts``, ``--extend``).

A concept corpus is named ``concept:<concept>`` and holds ``M`` captions that put the
concept in varied framings and contexts ("a close-up photo of the solar panel in a park").
Every caption is registered with the concept as its *phrase*: the worker locates that phrase
as one noun span (the heat map covers "solar panel", not just "panel") and makes one
reference of it per caption (:func:`fossil.ingest.references.job_nouns`).  The captions are
deterministic, so registering the same concept again adds nothing (the catalog deduplicates
them) and a larger ``M`` adds only the new ones.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from fossil.concepts import check_concepts, concept_key
from fossil.ingest.corpora import CorpusFile
from fossil.models.protocols import NounParser

logger = logging.getLogger(__name__)

CORPUS_PREFIX = "concept:"

# "the" fits singular, plural and mass nouns alike ("the sky", "the solar panels").
FRAMINGS: tuple[str, ...] = (
    "a photo of the {c} {x}",
    "the {c} {x}",
    "a close-up photo of the {c} {x}",
    "a wide shot of the {c} {x}",
    "a picture of the {c} {x}",
    "a bright photo of the {c} {x}",
    "a dark photo of the {c} {x}",
    "a blurry photo of the {c} {x}",
    "a cropped photo of the {c} {x}",
    "a good photo of the {c} {x}",
)
CONTEXTS: tuple[str, ...] = (
    "in a city street",
    "in a park",
    "on a wooden table",
    "in a living room",
    "at the beach",
    "in a forest",
    "in a kitchen",
    "next to a window",
    "on a country road",
    "in the snow",
    "at night",
    "in the rain",
    "on a sunny day",
    "in a garden",
    "in front of a building",
    "near a river",
    "in a field",
    "on a rooftop",
    "in an office",
    "in the mountains",
)
MAX_PER_CONCEPT = len(FRAMINGS) * len(CONTEXTS)  # distinct captions available: 200


def concept_captions(concept: str, M: int) -> list[str]:
    """``M`` distinct captions for ``concept`` (already validated), the same every time.

    Caption ``i`` uses framing ``i mod F`` and context ``(i + i // F) mod C``: consecutive
    captions change both, and all ``F × C`` pairs are distinct (11 and 20 are coprime)."""
    if not 1 <= M <= MAX_PER_CONCEPT:
        raise ValueError(f"per-concept M ({M}) must be in [1, {MAX_PER_CONCEPT}]")
    n_framings, n_contexts = len(FRAMINGS), len(CONTEXTS)
    return [
        FRAMINGS[i % n_framings].format(c=concept, x=CONTEXTS[(i + i // n_framings) % n_contexts])
        for i in range(M)
    ]


def corpus_name(concept: str) -> str:
    return f"{CORPUS_PREFIX}{concept}"


def concept_corpora(concepts: Sequence[str], M: int) -> list[CorpusFile]:
    """One concept corpus per concept (:func:`fossil.concepts.check_concepts`: a concept
    given twice is refused), each with ``M`` captions and the concept as phrase.  Corpora,
    captions and phrases use the concept's identity (:func:`fossil.concepts.concept_key`,
    lowercased), so the same concept spelt otherwise adds nothing."""
    cleaned = [concept_key(c) for c in check_concepts(concepts)]
    return [
        CorpusFile(
            name=corpus_name(concept),
            source=f"generated: {M} templated captions for {concept!r}",
            format="concept",
            captions=tuple(concept_captions(concept, M)),
            phrase=concept,
        )
        for concept in cleaned
    ]


def warn_without_nouns(parser: NounParser, concepts: Sequence[str]) -> list[str]:
    """Log (and return) the concepts in which ``parser`` finds no noun: they are still
    ingested, as phrases ("running", "blue")."""
    bare = [c for c, nouns in zip(concepts, parser.parse(list(concepts)), strict=True) if not nouns]
    for concept in bare:
        logger.warning(
            "concept %r parses to no noun: ingested as the phrase %r (its heat map covers the "
            "whole phrase)",
            concept,
            concept,
        )
    return bare
