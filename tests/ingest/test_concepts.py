"""Concept corpora: the generated captions, validation, and how the worker turns a phrase
caption into one reference of the whole phrase."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from fossil.concepts import MAX_CONCEPT_CHARS, check_concept, concept_key
from fossil.db.catalog import caption_hash
from fossil.db.protocols import CaptionJob
from fossil.ingest.concepts import (
    MAX_PER_CONCEPT,
    concept_captions,
    concept_corpora,
    warn_without_nouns,
)
from fossil.ingest.references import job_nouns


@pytest.fixture(scope="module")
def parser() -> Any:
    from fossil.models.nouns import SpacyNounParser

    return SpacyNounParser()


def test_captions_are_distinct_deterministic_and_name_the_concept() -> None:
    captions = concept_captions("solar panel", MAX_PER_CONCEPT)
    assert len(set(captions)) == MAX_PER_CONCEPT == 200
    assert captions == concept_captions("solar panel", MAX_PER_CONCEPT)
    assert concept_captions("solar panel", 7) == captions[:7]  # a larger M only adds
    assert all("the solar panel " in c for c in captions)
    # consecutive captions change both the framing and the context
    assert len({c.split(" solar panel ")[1] for c in captions[:10]}) == 10
    for M in (0, MAX_PER_CONCEPT + 1):
        with pytest.raises(ValueError, match="per-concept"):
            concept_captions("x", M)


def test_validate_concept() -> None:
    assert concept_key(check_concept("  Solar   Panel ")) == "solar panel"
    for bad, match in [
        ("", "empty"),
        ("   ", "empty"),
        ("a, b", "comma"),
        ("x" * 300, f"at most {MAX_CONCEPT_CHARS}"),
    ]:
        with pytest.raises(ValueError, match=match):
            check_concept(bad)
    with pytest.raises(ValueError, match="string"):
        check_concept(3)


def test_concept_corpora_are_named_by_the_lowercased_concept() -> None:
    corpora = concept_corpora(["Axolotl", "solar  panel"], 5)
    assert [c.name for c in corpora] == ["concept:axolotl", "concept:solar panel"]
    assert all(c.phrase == c.name.removeprefix("concept:") for c in corpora)
    assert all(len(c.captions) == 5 for c in corpora)
    # fossil.concepts' one rule: a concept given twice (whatever its case) is refused
    with pytest.raises(ValueError, match="duplicate concepts: 'axolotl'"):
        concept_corpora(["Axolotl", "axolotl", "solar panel"], 5)
    with pytest.raises(ValueError, match="list of strings"):
        concept_corpora("axolotl", 5)  # type: ignore[arg-type]


def test_concepts_without_a_noun_are_warned_about(parser: Any, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="fossil.ingest.concepts"):
        assert warn_without_nouns(parser, ["running", "solar panel", "blue"]) == [
            "running",
            "blue",
        ]
    assert "'running' parses to no noun" in caplog.text


def _job(i: int, text: str, phrase: str | None) -> CaptionJob:
    return CaptionJob(i, text, caption_hash(text), "c", 1, phrase)


def test_phrase_jobs_locate_the_whole_phrase_and_nothing_else(parser: Any) -> None:
    jobs = [
        _job(1, "a photo of the solar panels in a park", "solar panels"),
        _job(2, "a dog on a sofa", None),
        _job(3, "the running in the rain", "running"),
        _job(4, "a caption that lost its phrase", "axolotl"),
    ]
    nouns = job_nouns(parser, jobs)
    assert [(n.text, n.lemma) for n in nouns[0]] == [("solar panels", "solar panel")]
    assert [n.lemma for n in nouns[1]] == ["dog", "sofa"]  # parsed as usual
    assert [(n.text, n.lemma) for n in nouns[2]] == [("running", "running")]
    assert nouns[3] == []
    text = jobs[0].text
    assert text[nouns[0][0].start : nouns[0][0].end] == "solar panels"
