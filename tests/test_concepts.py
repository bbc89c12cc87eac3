"""fossil.concepts: the one set of concept rules, as a table of inputs and what each entry
point (the comma parser, the list check) makes of them; and every entry point uses it."""

from __future__ import annotations

import pytest

from fossil.concepts import (
    MAX_CONCEPT_CHARS,
    check_concept,
    check_concepts,
    concept_key,
    parse_concepts,
)

LONG = "x" * (MAX_CONCEPT_CHARS + 1)
LIMIT = "x" * MAX_CONCEPT_CHARS

# (comma text, the concepts it gives, or the message it is refused with)
PARSED = [
    ("dog", ["dog"]),
    ("dog, grass", ["dog", "grass"]),
    ("  solar   panel ,sky", ["solar panel", "sky"]),
    ("Golden Retriever", ["Golden Retriever"]),  # spelling kept
    ("dog,", "has an empty concept at position 2"),
    (LIMIT, [LIMIT]),
    ("", "concepts is empty: give comma-separated concepts"),
    (" , ", "concepts is empty"),
    ("dog,,car", "'dog,,car' has an empty concept at position 2"),
    ("dog, Dog", "duplicate concepts: 'dog'; give each concept once"),
    ("sky, solar panel, Solar  Panel", "duplicate concepts: 'solar panel'"),
    (f"dog, {LONG}", "entry 2 ('xxx"),
    (f"dog, {LONG}", f"has {MAX_CONCEPT_CHARS + 1} characters"),
    (f"dog, {LONG}", f"at most {MAX_CONCEPT_CHARS} characters"),
    # invisible characters (issue 25): refused, shown escaped, named by code point
    ("dog\x1b[31m", r"entry 1 ('dog\x1b[31m') contains U+001B (a control character)"),
    ("cat, \u202edog", r"entry 2 ('\u202edog') contains U+202E (a bidi control)"),
    ("\ufeffdog", r"('\ufeffdog') contains U+FEFF (a byte-order mark"),
    ("dog\x00", "contains U+0000 (a control character)"),
    ("dog\x9b31m", "contains U+009B (a control character)"),
    ("\u2066dog\u2069", "contains U+2066 (a bidi control)"),
    ("dog\u200f", "contains U+200F (a bidi control)"),
    ("dog\tcat\n", ["dog cat"]),  # whitespace controls are whitespace: collapsed
]

# (list, the concepts it gives, or the message it is refused with)
CHECKED = [
    (["dog"], ["dog"]),
    ([" tree", "dog "], ["tree", "dog"]),
    (("solar \t panel",), ["solar panel"]),
    (["Dog", "cat"], ["Dog", "cat"]),
    ([LIMIT], [LIMIT]),
    ([], "concepts is empty: give at least one concept"),
    ("dog", "concepts must be a list of strings, got the string 'dog'"),
    (["dog", 3], "concepts[1] must be a string, got int"),
    (["dog", "   "], "concepts[1] ('   ') is empty"),
    (["dog", ""], "concepts[1] ('') is empty"),
    (["a, b"], "concepts[0] ('a, b') contains a comma"),
    (["dog", LONG], f"concepts[1] ('{'x' * 40}'...) has {MAX_CONCEPT_CHARS + 1} characters"),
    (["dog", "DOG"], "duplicate concepts: 'dog'"),
    (["a b", "A  B", "c", "c"], "duplicate concepts: 'a b', 'c'"),
    (["dog", "\x1b]0;owned\x07cat"], r"concepts[1] ('\x1b]0;owned\x07cat') contains U+001B"),
    (["\u202ecat"], "concepts[0] ('\\u202ecat') contains U+202E"),
    (["solar\r\npanel"], ["solar panel"]),
]


@pytest.mark.parametrize(("text", "expected"), PARSED)
def test_parse_concepts(text: str, expected: list[str] | str) -> None:
    if isinstance(expected, list):
        assert parse_concepts(text) == expected
    else:
        with pytest.raises(ValueError) as error:
            parse_concepts(text)
        assert expected in str(error.value)
        assert "\n" not in str(error.value)


@pytest.mark.parametrize(("concepts", "expected"), CHECKED)
def test_check_concepts(concepts: object, expected: list[str] | str) -> None:
    if isinstance(expected, list):
        assert check_concepts(concepts) == expected  # type: ignore[arg-type]
    else:
        with pytest.raises(ValueError) as error:
            check_concepts(concepts)  # type: ignore[arg-type]
        assert expected in str(error.value)
        assert "\n" not in str(error.value)


def test_the_messages_name_the_argument_they_are_given() -> None:
    """A command passes its flag, so its user reads the flag; the library says 'concepts'."""
    with pytest.raises(ValueError, match="^--concepts is empty"):
        parse_concepts("", "--concepts")
    with pytest.raises(ValueError, match=r"^--concepts 'a,,b' has an empty concept"):
        parse_concepts("a,,b", "--concepts")
    with pytest.raises(ValueError, match=r"^classes\[0\] must be a string"):
        check_concepts([1], "classes")  # type: ignore[list-item]
    with pytest.raises(ValueError, match="^concepts is empty"):
        parse_concepts("")


def test_identity_is_the_lowercased_normal_form() -> None:
    assert (
        concept_key("Solar  Panel ") == "solar panel" == concept_key(check_concept("solar panel"))
    )
    assert check_concept("  Solar   Panel ") == "Solar Panel"
    # the comma parser and the list check agree on every accepted input
    for text, expected in PARSED:
        if isinstance(expected, list):
            assert check_concepts(text.split(",")) == expected


def test_every_entry_point_refuses_what_the_module_refuses() -> None:
    """The duplicate rule (one the four old validators disagreed on) reaches the CLI parser,
    ingest's concept corpora and segment_image; QueryEngine.query: tests/query/test_engine.py."""
    from types import SimpleNamespace

    import numpy as np

    from fossil.commands._options import parse_concepts as cli_parse
    from fossil.config import FossilConfig
    from fossil.ingest.concepts import concept_corpora
    from fossil.pipeline.segmenter import segment_image

    with pytest.raises(ValueError, match="^duplicate concepts: 'dog'"):
        cli_parse("dog, DOG")
    with pytest.raises(ValueError, match="^--concepts entry 1 .* at most 80 characters"):
        cli_parse(LONG)
    with pytest.raises(ValueError, match="duplicate concepts: 'dog'"):
        concept_corpora(["dog", "Dog"], 3)
    engine = SimpleNamespace()  # refused before it is asked anything
    image = np.zeros((8, 8, 3), np.uint8)
    for concepts, message in [(["dog", " Dog"], "duplicate concepts"), ([LONG], "at most 80")]:
        with pytest.raises(ValueError, match=message):
            segment_image(image, concepts, FossilConfig(), engine=engine, analyser=None)  # type: ignore[arg-type]
