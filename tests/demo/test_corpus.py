"""Caption corpus: determinism, variety, and the real spaCy parser finds its materials."""

from __future__ import annotations

import pytest

from fossil.demo.corpus import caption_corpus
from fossil.demo.vocabulary import VOCABULARY, match_noun
from fossil.records import Noun


def test_deterministic_distinct_and_varied() -> None:
    captions = caption_corpus(300, seed=2)
    assert captions == caption_corpus(300, seed=2)
    assert captions != caption_corpus(300, seed=3)
    assert len(set(captions)) == 300
    assert all(c[0].isupper() and c.endswith(".") for c in captions)
    mentioned = {
        i for c in captions for i, m in enumerate(VOCABULARY) for p in m.phrases if p in c.lower()
    }
    assert mentioned == set(range(len(VOCABULARY)))


def test_synonyms_never_appear_in_captions() -> None:
    words = {w.strip(".,").lower() for c in caption_corpus(500) for w in c.split()}
    synonyms = {w for m in VOCABULARY for s in m.synonyms for w in s.split()}
    assert not words & synonyms


def test_real_parser_finds_the_materials_of_each_caption(
    corpus: list[str], parsed: list[list[Noun]]
) -> None:
    wrong = []
    for caption, nouns in zip(corpus, parsed, strict=True):
        found = {match_noun(n) for n in nouns} - {None}
        expected = {
            i for i, m in enumerate(VOCABULARY) if any(p in caption.lower() for p in m.phrases)
        }
        if found != expected:
            wrong.append((caption, [n.text for n in nouns]))
    assert not wrong


def test_bad_count() -> None:
    with pytest.raises(ValueError, match="count"):
        caption_corpus(0)
