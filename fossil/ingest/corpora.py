"""Caption corpus readers (design §1, §2): COCO captions JSON, JSONL, CSV and plain text.

Every reader returns a :class:`CorpusFile`: the cleaned captions in file order plus what was
skipped and why.  Control and bidi-override characters are removed from every caption
(:func:`fossil.invisible.strip_invisible`) and a UTF-8 byte-order mark is accepted in every
format.  Bad *items* are skipped and counted (empty lines and lines that are not UTF-8); a
bad *file* (missing, unreadable, wrong JSON shape, JSON nested too deeply to parse, missing
CSV column, no caption at all, more lines that are not UTF-8 than captions: binary data)
raises :class:`CorpusError` naming the file (and line) and what was expected.  Files are
read completely before anything is registered, so a bad file leaves the store untouched.
Gzip is detected from the magic bytes, whatever the file is called.

Deduplication and the length limit are the catalog's (:mod:`fossil.db.catalog`): it
normalises, skips over-long captions (counted) and deduplicates by the hash of the normalised
text across all corpora (design §4).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import re
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from fossil.errors import naming
from fossil.invisible import strip_invisible

FORMATS: tuple[str, ...] = ("coco", "jsonl", "csv", "text")
EXTENSIONS: dict[str, str] = {
    ".json": "coco",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".txt": "text",
}
_GZIP_MAGIC = b"\x1f\x8b"
# Bytes that are not UTF-8 decode (errors="surrogateescape") to lone surrogates U+DC80–U+DCFF.
_UNDECODABLE = re.compile("[\udc80-\udcff]")
# json raises RecursionError (a RuntimeError naming nothing) past ~1000 nested [ or {
_TOO_DEEP = "nested deeper than Python's JSON reader can follow (thousands of [ or {)"


class CorpusError(ValueError):
    """A corpus file that cannot be read as the expected format."""


@dataclass(frozen=True)
class CorpusFile:
    """The captions of one corpus file, cleaned, in file order (duplicates kept)."""

    name: str
    source: str  # absolute path of the file
    format: str
    captions: tuple[str, ...]
    skipped_empty: int = 0
    skipped_encoding: int = 0  # lines / captions with bytes that are not UTF-8
    phrase: str | None = None  # concept corpora: the noun span every caption is about
    # labelled photos: per caption its own (key, phrase) (fossil.ingest.labelled_refs)
    items: tuple[tuple[str, str], ...] | None = None
    named_after_file: bool = False  # the name is the file's (corpus_name), not one given

    @property
    def skipped(self) -> int:
        return self.skipped_empty + self.skipped_encoding


def merge_corpora(files: Sequence[CorpusFile], name: str) -> CorpusFile:
    """``files`` as one corpus ``name``: their captions in order, sources and formats listed,
    skips summed."""
    return CorpusFile(
        name=name,
        source=", ".join(f.source for f in files),
        format=",".join(sorted({f.format for f in files})),
        captions=tuple(c for f in files for c in f.captions),
        skipped_empty=sum(f.skipped_empty for f in files),
        skipped_encoding=sum(f.skipped_encoding for f in files),
    )


def corpus_name(path: str | Path) -> str:
    """Default corpus name: the file name without ``.gz`` and its format extension."""
    name = Path(path).name
    if name.endswith(".gz"):
        name = name[: -len(".gz")]
    stem, dot, ext = name.rpartition(".")
    return stem if dot and f".{ext.lower()}" in EXTENSIONS else name


def detect_format(path: str | Path, format: str | None = None) -> str:
    """The explicit ``format`` if given (validated), else from the extension (``.gz`` ignored)."""
    if format is not None:
        if format not in FORMATS:
            raise ValueError(f"format {format!r} unknown; choose one of {', '.join(FORMATS)}")
        return format
    name = Path(path).name.lower()
    if name.endswith(".gz"):
        name = name[: -len(".gz")]
    ext = Path(name).suffix
    if ext not in EXTENSIONS:
        known = ", ".join(f"{e} ({f})" for e, f in EXTENSIONS.items())
        message = (
            f"cannot tell the format of corpus file {path} from its extension {ext or '(none)'!r};"
            f" known extensions: {known}; or give the format explicitly"
        )
        raise naming(CorpusError(message), "format")
    return EXTENSIONS[ext]


def read_corpus(
    path: str | Path,
    *,
    format: str | None = None,
    csv_column: str = "caption",
    name: str | None = None,
) -> CorpusFile:
    """Read one corpus file.  ``format`` is one of :data:`FORMATS` (default: from the
    extension); ``csv_column`` names the caption column of a CSV file; ``name`` defaults to
    :func:`corpus_name`."""
    path = Path(path)
    fmt = detect_format(path, format)
    if not path.exists():
        raise FileNotFoundError(f"corpus file {path} does not exist")
    if not path.is_file():
        raise CorpusError(f"cannot read corpus file {path}: not a regular file")
    tally = _Tally()
    try:
        with _open_text(path) as stream:
            if fmt == "coco":
                raw: Iterable[str | None] = _coco_captions(stream, path)
            elif fmt == "jsonl":
                raw = _jsonl_captions(stream, path)
            elif fmt == "csv":
                raw = _csv_captions(stream, path, csv_column)
            else:
                raw = stream
            captions = tuple(tally.clean_all(raw))
    except (OSError, EOFError, zlib.error) as error:  # permissions, corrupt gzip, truncated file
        raise CorpusError(f"cannot read corpus file {path}: {error}") from error
    if not captions or tally.encoding > len(captions):
        raise CorpusError(
            f"corpus file {path} does not look like {fmt} captions: {len(captions)} captions "
            f"read, {tally.encoding} lines not UTF-8, {tally.empty} empty (is it binary or "
            "empty?); nothing was registered"
        )
    return CorpusFile(
        name=name or corpus_name(path),
        source=str(path.resolve()),
        format=fmt,
        captions=captions,
        skipped_empty=tally.empty,
        skipped_encoding=tally.encoding,
        named_after_file=name is None,
    )


def check_corpus_names(
    corpora: Sequence[CorpusFile], registered: Mapping[str, str] | None = None
) -> None:
    """Refuse a corpus named after its file (:func:`corpus_name`) that would silently share
    its name, and so become one corpus, with another file: another of ``corpora``
    (``a/x.jsonl`` and ``b/x.txt`` are both ``x``), or the source a corpus of that name was
    registered from (``registered``: name → source; each file of a corpus merged from
    several is one of its sources, and a source that is not a path, such as a corpus
    rebuilt by ``fossil store check --repair``, matches any file).  Naming corpora by their
    stem keeps the names users type (``fossil corpus remove x``) short and stable when a
    file moves; so the clash is refused, naming both files, rather than resolved by a
    longer name.  Corpora given a name on purpose are never refused: giving one name to
    several files is how they become one."""
    seen: dict[str, CorpusFile] = {}
    for corpus in corpora:
        first = seen.setdefault(corpus.name, corpus)
        if first is not corpus and (first.named_after_file or corpus.named_after_file):
            message = (
                f"corpus files {first.source} and {corpus.source} would both be corpus "
                f"{corpus.name!r} (a corpus is named after its file): rename one, or ingest "
                "each in its own run under a corpus name of its own; to make them one corpus "
                "on purpose, give them one corpus name"
            )
            raise naming(CorpusError(message), "corpus_name")
    for corpus in corpora:
        source = (registered or {}).get(corpus.name, "")
        # compared only with a source that names files: a corpus rebuilt by a repair, or a
        # generated one, says where it came from in words
        files = source.split(", ") if os.path.isabs(source) else [corpus.source]
        if corpus.named_after_file and corpus.source not in files:
            message = (
                f"corpus {corpus.name!r} is already registered from {source}; "
                f"{corpus.source} would add its captions to it: give it a corpus name of its "
                f"own, or name it {corpus.name!r} explicitly to add to that corpus on purpose"
            )
            raise naming(CorpusError(message), "corpus_name")


class _Tally:
    """Cleans raw captions (whitespace collapsed) and counts the ones it drops."""

    def __init__(self) -> None:
        self.empty = self.encoding = 0

    def clean_all(self, raw: Iterable[str | None]) -> Iterator[str]:
        for text in raw:
            caption = " ".join(strip_invisible(text).split()) if text else ""
            if not caption:
                self.empty += 1
            elif _UNDECODABLE.search(caption):
                self.encoding += 1
            else:
                yield caption


def _open_text(path: Path) -> IO[str]:
    """Text stream over the (possibly gzipped) file; undecodable bytes become lone
    surrogates (``surrogateescape``) so the caption that holds them can be skipped alone."""
    with path.open("rb") as probe:
        gzipped = probe.read(2) == _GZIP_MAGIC
    binary = gzip.GzipFile(path, "rb") if gzipped else path.open("rb")
    # utf-8-sig: a byte-order mark at the start is dropped, whatever the format
    return io.TextIOWrapper(binary, encoding="utf-8-sig", errors="surrogateescape", newline="")


def _describe(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _coco_captions(stream: IO[str], path: Path) -> Iterator[str | None]:
    expected = (
        "expected COCO captions JSON (as captions_train2017.json): an object with an "
        "'annotations' list of objects with a 'caption' string"
    )
    try:
        data = json.load(stream)
    except json.JSONDecodeError as error:
        raise CorpusError(f"{path}: not valid JSON ({error}); {expected}") from error
    except RecursionError:
        raise CorpusError(f"{path}: {_TOO_DEEP}; {expected}") from None
    if not isinstance(data, dict) or not isinstance(data.get("annotations"), list):
        got = _describe(data) if not isinstance(data, dict) else f"keys {sorted(data)[:8]}"
        raise CorpusError(f"{path}: {expected}; got {got}")
    for i, item in enumerate(data["annotations"]):
        if not isinstance(item, dict) or "caption" not in item:
            raise CorpusError(f"{path}: annotations[{i}] is {_describe(item)}; {expected}")
        yield _caption_value(item["caption"], f"{path}: annotations[{i}].caption", expected)


def _jsonl_captions(stream: IO[str], path: Path) -> Iterator[str | None]:
    expected = 'expected JSON Lines: one object per line like {"caption": "...", "id": ...}'
    for number, line in enumerate(stream, start=1):
        if not line.strip() or _UNDECODABLE.search(line):
            yield line  # counted as empty / not UTF-8 by the tally
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as error:
            message = f"{path} line {number}: not valid JSON ({error}); {expected}"
            raise CorpusError(message) from None
        except RecursionError:
            raise CorpusError(f"{path} line {number}: {_TOO_DEEP}; {expected}") from None
        if not isinstance(item, dict) or "caption" not in item:
            raise CorpusError(f"{path} line {number}: got {_describe(item)}; {expected}")
        if "id" in item and not isinstance(item["id"], str | int):
            raise CorpusError(
                f"{path} line {number}: 'id' is {_describe(item['id'])}; must be a string or an"
                " integer"
            )
        yield _caption_value(item["caption"], f"{path} line {number}: 'caption'", expected)


def _csv_captions(stream: IO[str], path: Path, column: str) -> Iterator[str | None]:
    reader = csv.DictReader(stream)
    try:
        header = reader.fieldnames
    except csv.Error as error:
        raise CorpusError(f"{path}: not a readable CSV file ({error})") from error
    if not header or column not in header:
        message = (
            f"{path}: CSV has no column {column!r}; its columns are {list(header or [])}"
            " (choose the caption column)"
        )
        raise naming(CorpusError(message), "csv_column")
    try:
        for row in reader:
            yield row[column]
    except csv.Error as error:
        raise CorpusError(f"{path} line {reader.line_num}: malformed CSV ({error})") from error


def _caption_value(value: Any, where: str, expected: str) -> str | None:
    """A caption field: a string, or null (counted as empty); anything else is an error."""
    if value is None or isinstance(value, str):
        return value
    raise CorpusError(f"{where} is {_describe(value)}; {expected}")
