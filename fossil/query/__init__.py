"""Query references for concepts: retrieval, prototypes, cache (design §5.5–§5.6)::

    from fossil.config import RetrievalConfig
    from fossil.query import QueryEngine

    engine = QueryEngine(collection, text_encoder, RetrievalConfig(N=95, K=25))
    [dog] = engine.query(["golden retriever"])
    dog.references[0].caption, dog.prototypes.shape  # (K, visual_dim)

Names are imported on first use, so ``import fossil.query`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "QueryEngine": "fossil.query.engine",
    "query": "fossil.query.engine",
    "NoReferencesError": "fossil.query.engine",
    "check_text_encoder": "fossil.query.engine",
    "Coverage": "fossil.query.coverage",
    "assess_coverage": "fossil.query.coverage",
    "ConceptResult": "fossil.query.retrieval",
    "Reference": "fossil.query.retrieval",
    "retrieve": "fossil.query.retrieval",
    "concept_prototypes": "fossil.query.prototypes",
    "kmeans_prototypes": "fossil.query.prototypes",
    "mean_prototype": "fossil.query.prototypes",
    "draw_grid": "fossil.query.grid",
}

__all__ = [
    "ConceptResult",
    "Coverage",
    "NoReferencesError",
    "QueryEngine",
    "Reference",
    "assess_coverage",
    "check_text_encoder",
    "concept_prototypes",
    "draw_grid",
    "kmeans_prototypes",
    "mean_prototype",
    "query",
    "retrieve",
]

if TYPE_CHECKING:
    from fossil.query.coverage import Coverage, assess_coverage
    from fossil.query.engine import (
        NoReferencesError,
        QueryEngine,
        check_text_encoder,
        query,
    )
    from fossil.query.grid import draw_grid
    from fossil.query.prototypes import concept_prototypes, kmeans_prototypes, mean_prototype
    from fossil.query.retrieval import ConceptResult, Reference, retrieve


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'fossil.query' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
