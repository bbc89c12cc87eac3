"""Concept texts: the one set of rules every entry point applies to them.

A *concept* is a short noun phrase a user names ("dog", "solar panel").  Every place that
takes concepts — ``fossil query``, ``fossil segment``, ``fossil ingest --concepts``, eval's
class lists (through :class:`fossil.query.QueryEngine`), the server's ``concepts`` field,
:func:`fossil.pipeline.segment_image` — checks them here, so they all accept and refuse the
same things with the same one-line messages:

- **Parsing** (:func:`parse_concepts`): a comma-separated text is split at commas; an empty
  text and an empty entry (``"dog,,car"``) are refused, the latter by its position.
- **Form** (:func:`check_concept`): a concept is a string; surrounding whitespace is removed
  and inner runs collapse to one space (``" solar   panel "`` → ``"solar panel"``).  The
  user's spelling is otherwise kept: it is what results and reports show.  A concept that is
  empty after this, contains a comma (a comma list could not express it) or is longer than
  :data:`MAX_CONCEPT_CHARS` characters (a concept is a short noun phrase; CLIP reads 77
  tokens) is refused.  So is one holding an invisible character (:mod:`fossil.invisible`:
  a control character such as ESC, a bidi control, a byte-order mark; tabs and line breaks
  are whitespace and collapse as above).  Captions have these replaced by spaces, but a
  concept is typed by a user who is there to fix it, and its spelling is what results
  show: stripping would silently keep ``"[31m"`` of ``"dog\x1b[31m"``.  Every message shows
  the concept escaped (``repr``), so nothing reaches a terminal raw.
- **Identity** (:func:`concept_key`): two concepts are the same when their forms are equal
  ignoring case (``"Dog"`` is ``"dog"``; the text encoders lowercase anyway).  What is stored
  per concept — the concept corpora of ``fossil ingest --concepts`` — is named by this key,
  so registering ``"Axolotl"`` again adds nothing.
- **Duplicates** (:func:`check_concepts`): one list naming the same concept twice is refused
  everywhere.  In a segmentation two copies would split every pixel's vote between
  identical labels, and in a query or an ingest the repeat is almost always a typo: refusing
  says so instead of silently computing it once.

``name`` is what the messages call the argument: ``"concepts"`` in the library and the
server's form field, the flag (``"--concepts"``) when a command passes it, so a command's
error names its flag.

The checks run once: :func:`parse_concepts` and :func:`check_concepts` return a
:class:`Concepts`, a frozen, already checked list that every library call
(:class:`fossil.query.QueryEngine`, :func:`fossil.pipeline.segment_image`, the read session)
takes as it is instead of checking it again.

This module imports only :mod:`fossil.invisible` (which imports nothing of fossil's), so
every layer may use it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import overload

from fossil.invisible import first_invisible

MAX_CONCEPT_CHARS = 80  # a concept is a short noun phrase; CLIP reads 77 tokens of caption


def check_concept(concept: object, label: str = "concept") -> str:
    """``concept`` in its normal form (whitespace collapsed, spelling kept), or ``ValueError``
    naming it as ``label`` when it is not a string, is empty, contains a comma or an
    invisible character, or is longer than :data:`MAX_CONCEPT_CHARS`."""
    if not isinstance(concept, str):
        raise ValueError(f"{label} must be a string, got {type(concept).__name__}")
    text = " ".join(concept.split())
    if not text:
        raise ValueError(f"{label} ({concept!r}) is empty; give a noun phrase, e.g. 'solar panel'")
    if "," in text:
        raise ValueError(f"{label} ({text!r}) contains a comma: give one concept per entry")
    invisible = first_invisible(text)
    if invisible is not None:
        raise ValueError(
            f"{label} ({text[:60]!r}) contains {invisible}: type the concept as plain text"
        )
    if len(text) > MAX_CONCEPT_CHARS:
        raise ValueError(
            f"{label} ({text[:40]!r}...) has {len(text)} characters; a concept is a short noun "
            f"phrase of at most {MAX_CONCEPT_CHARS} characters"
        )
    return text


def concept_key(concept: str) -> str:
    """The identity of a (checked) concept: its normal form, lowercased."""
    return " ".join(concept.split()).lower()


@dataclass(frozen=True, eq=False)
class Concepts(Sequence[str]):
    """A checked list of concepts: each in its normal form (:func:`check_concept`), at least
    one, none twice.  Made by :meth:`parse` (a comma-separated text) or :meth:`check` (a
    list), whose messages name the argument as ``name``; constructing one directly checks
    too.  It is a sequence of its names and equals any list or tuple of the same names."""

    names: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", tuple(_checked(self.names, "concepts")))

    @classmethod
    def parse(cls, text: str, name: str = "concepts") -> Concepts:
        """A comma-separated text (``"dog, grass"``) → its concepts; refuses an empty text
        and an empty entry, naming its position, then as :meth:`check`."""
        if not isinstance(text, str):
            raise ValueError(f"{name} must be a comma-separated string, got {type(text).__name__}")
        entries = [entry.strip() for entry in text.split(",")]
        if not any(entries):
            raise ValueError(f'{name} is empty: give comma-separated concepts, e.g. "dog, grass"')
        empty = [i for i, entry in enumerate(entries) if not entry]
        if empty:
            raise ValueError(f"{name} {text!r} has an empty concept at position {empty[0] + 1}")
        cleaned = [check_concept(e, f"{name} entry {i + 1}") for i, e in enumerate(entries)]
        _refuse_duplicates(cleaned)
        return cls._trusted(cleaned)

    @classmethod
    def check(cls, concepts: Sequence[str], name: str = "concepts") -> Concepts:
        """``concepts`` checked (a :class:`Concepts` is returned as it is); refuses one
        string instead of a list, an empty list, a bad concept (named ``name[i]``) and a
        concept given twice."""
        if isinstance(concepts, Concepts):
            return concepts
        return cls._trusted(_checked(concepts, name))

    @classmethod
    def _trusted(cls, names: Sequence[str]) -> Concepts:
        """A value of names this module has just checked (no second check)."""
        value = object.__new__(cls)
        object.__setattr__(value, "names", tuple(names))
        return value

    def __len__(self) -> int:
        return len(self.names)

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[str]: ...
    def __getitem__(self, index: int | slice) -> str | Sequence[str]:
        return self.names[index]

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Concepts):
            return self.names == other.names
        if isinstance(other, (list, tuple)):
            return self.names == tuple(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.names)

    def __str__(self) -> str:
        return ", ".join(self.names)


def check_concepts(concepts: Sequence[str], name: str = "concepts") -> Concepts:
    """:meth:`Concepts.check`: the concepts in their normal form, in the order given."""
    return Concepts.check(concepts, name)


def parse_concepts(text: str, name: str = "concepts") -> Concepts:
    """:meth:`Concepts.parse`: a comma-separated text → its concepts."""
    return Concepts.parse(text, name)


def _checked(concepts: Sequence[str], name: str) -> list[str]:
    if isinstance(concepts, str):
        raise ValueError(f"{name} must be a list of strings, got the string {concepts!r}")
    items = list(concepts)
    if not items:
        raise ValueError(f"{name} is empty: give at least one concept")
    cleaned = [check_concept(c, f"{name}[{i}]") for i, c in enumerate(items)]
    _refuse_duplicates(cleaned)
    return cleaned


def _refuse_duplicates(concepts: list[str]) -> None:
    keys = [concept_key(c) for c in concepts]
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    if duplicates:
        raise ValueError(
            f"duplicate concepts: {', '.join(map(repr, duplicates))}; give each concept once"
        )
