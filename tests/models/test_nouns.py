"""spaCy noun parsing on COCO-style captions with known nouns."""

from __future__ import annotations

from typing import Any

import pytest

# caption → expected noun lemmas, in order (compounds as one noun, pronouns never)
COCO = {
    "A man eating a hot dog next to a fire hydrant.": ["man", "hot dog", "fire hydrant"],
    "A traffic light over a busy city street.": ["traffic light", "city street"],
    "Two teddy bears sitting on a dining table.": ["teddy bear", "dining table"],
    "She holds a cell phone and a wine glass.": ["cell phone", "wine glass"],
    "A potted plant beside the tennis racket.": ["potted plant", "tennis racket"],
    "A stop sign near a parking meter.": ["stop sign", "parking meter"],
    "It is a dog.": ["dog"],
    "Traffic lights are red.": ["traffic light"],
    "A giraffe standing next to a tree in a zoo.": ["giraffe", "tree", "zoo"],
    "Several people flying kites on a beach.": ["people", "kite", "beach"],
    "A kitchen with a stove, a sink and a refrigerator.": [
        "kitchen",
        "stove",
        "sink",
        "refrigerator",
    ],
    "A cat sleeping on a laptop keyboard.": ["cat", "laptop keyboard"],
    "A person riding a surfboard on a large wave.": ["person", "surfboard", "wave"],
    "Two zebras grazing in a grassy field.": ["zebra", "field"],
    "A plate with a sandwich and some fries.": ["plate", "sandwich", "fry"],
    "A group of elephants walking through the water.": ["group", "elephant", "water"],
    "A red bus parked at a bus stop.": ["bus", "bus stop"],
    "A woman holding an umbrella in the rain.": ["woman", "umbrella", "rain"],
    "A baseball player swinging a baseball bat.": ["baseball player", "baseball bat"],
    "An airplane flying over the mountains.": ["airplane", "mountain"],
}


@pytest.mark.parametrize("caption", list(COCO))
def test_coco_captions(noun_parser: Any, caption: str) -> None:
    (nouns,) = noun_parser.parse([caption])
    assert [n.lemma for n in nouns] == COCO[caption]
    for noun in nouns:
        assert caption[noun.start : noun.end] == noun.text
        assert noun.token_end > noun.token_start


def test_batched_parse_equals_single(noun_parser: Any) -> None:
    captions = list(COCO)
    batched = noun_parser.parse(captions)
    assert batched == [noun_parser.parse([c])[0] for c in captions[:3]] + batched[3:]
    assert len(batched) == len(captions)


def test_captions_without_nouns(noun_parser: Any) -> None:
    assert noun_parser.parse(["", "Running fast!", "She is happy."]) == [[], [], []]
    assert noun_parser.parse([]) == []


def test_bad_input(noun_parser: Any) -> None:
    with pytest.raises(TypeError, match="not one string"):
        noun_parser.parse("a dog")
    with pytest.raises(ValueError, match=r"captions\[1\] is int"):
        noun_parser.parse(["a dog", 3])


def test_unknown_spacy_model_names_the_role() -> None:
    from fossil.models.nouns import load_spacy

    with pytest.raises(OSError, match="nouns model .*no_such_pipeline"):
        load_spacy("no_such_pipeline")


@pytest.mark.parametrize(
    ("concept", "lemmas"),
    [
        ("puppy", {"puppy"}),
        ("Solar  Panels", {"solar panel", "panel"}),
        ("wooden benches", {"wooden bench", "bench"}),
        ("traffic lights", {"traffic light"}),
        ("running", {"running"}),  # no noun: the phrase itself
    ],
)
def test_concept_lemmas(noun_parser: Any, concept: str, lemmas: set[str]) -> None:
    from fossil.models.nouns import concept_lemmas

    assert concept_lemmas(noun_parser, [concept]) == [frozenset(lemmas)]


def test_phrase_noun_spans_the_whole_phrase() -> None:
    from fossil.models.nouns import phrase_noun

    caption = "a close-up photo of the Solar Panel on a rooftop"
    noun = phrase_noun(caption, "solar  panel", "solar panel")
    assert noun is not None
    assert caption[noun.start : noun.end] == noun.text == "Solar Panel"
    assert noun.lemma == "solar panel"
    assert phrase_noun("a photo of the solar panels", "solar panel", "x") is None  # whole words
    assert phrase_noun("a cat", "dog", "dog") is None
