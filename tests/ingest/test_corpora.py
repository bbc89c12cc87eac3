"""Corpus readers: each format, gzip by magic bytes, counted skips, clear errors."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from fossil.ingest.corpora import CorpusError, corpus_name, detect_format, read_corpus

CAPTIONS = ["A dog on the grass.", "Two cats  near a\ttree", "A red car."]
CLEAN = ("A dog on the grass.", "Two cats near a tree", "A red car.")


def _coco(captions: list[str]) -> dict:
    return {
        "info": {},
        "images": [],
        "annotations": [
            {"id": i, "image_id": 100 + i, "caption": c} for i, c in enumerate(captions)
        ],
    }


def test_coco_json(tmp_path: Path) -> None:
    path = tmp_path / "captions_train2017.json"
    path.write_text(json.dumps(_coco(CAPTIONS + ["  ", "A\n red car. "])))
    corpus = read_corpus(path)
    assert corpus.format == "coco" and corpus.name == "captions_train2017"
    assert corpus.captions == CLEAN + ("A red car.",)  # duplicates are the catalog's business
    assert corpus.skipped_empty == 1 and corpus.source == str(path.resolve())


def test_jsonl_with_and_without_ids(tmp_path: Path) -> None:
    path = tmp_path / "mine.jsonl"
    lines = [json.dumps({"caption": c, "id": i}) for i, c in enumerate(CAPTIONS)]
    lines.insert(1, "")
    lines.append(json.dumps({"caption": "no id here"}))
    path.write_text("\n".join(lines) + "\n")
    corpus = read_corpus(path)
    assert corpus.captions == CLEAN + ("no id here",) and corpus.skipped_empty == 1


def test_csv_column_choice(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text('id,text,caption\n1,"A dog, running",ignored\n2,,x\n3,"multi\nline",y\n')
    assert read_corpus(path, csv_column="text").captions == ("A dog, running", "multi line")
    assert read_corpus(path, csv_column="text").skipped_empty == 1
    assert read_corpus(path).captions == ("ignored", "x", "y")
    with pytest.raises(CorpusError, match=r"no column 'nope'.*\['id', 'text', 'caption'\]"):
        read_corpus(path, csv_column="nope")


def test_text_gzip_by_magic_and_counted_skips(tmp_path: Path) -> None:
    payload = b"A dog.\n\n   \nbad \xff\xfe bytes\nA cat.\r\n" + b"x" * 10_000 + b"\n"
    path = tmp_path / "captions.txt"  # gzipped although not named .gz
    path.write_bytes(gzip.compress(payload))
    corpus = read_corpus(path)
    # the 10k-character line is read; the catalog skips over-long captions (counted there)
    assert corpus.captions == ("A dog.", "A cat.", "x" * 10_000)
    assert (corpus.skipped_empty, corpus.skipped_encoding) == (2, 1)
    named = tmp_path / "other.txt.gz"
    named.write_bytes(gzip.compress(payload))
    assert read_corpus(named).captions == corpus.captions and corpus_name(named) == "other"


def test_non_utf8_inside_json_skips_only_that_caption(tmp_path: Path) -> None:
    coco = tmp_path / "c.json"
    coco.write_bytes(json.dumps(_coco(["good one", "BAD"])).encode().replace(b"BAD", b"B\xffD"))
    corpus = read_corpus(coco)
    assert corpus.captions == ("good one",) and corpus.skipped_encoding == 1
    jsonl = tmp_path / "c.jsonl"
    jsonl.write_bytes(b'{"caption": "ok"}\n{"caption": "b\xe9d"}\n')
    corpus = read_corpus(jsonl)
    assert corpus.captions == ("ok",) and corpus.skipped_encoding == 1


@pytest.mark.parametrize(
    "content, match",
    [
        ("[1, 2]", r"bad\.json: expected COCO captions JSON.*got list"),
        ('{"images": []}', r"bad\.json: expected COCO.*'annotations'.*got keys \['images'\]"),
        ('{"annotations": [{"id": 1}]}', r"annotations\[0\] is dict"),
        ('{"annotations": [{"caption": 5}]}', r"annotations\[0\]\.caption is int"),
        ('{"annotations": [', r"bad\.json: not valid JSON"),
        ("[" * 100_000, r"bad\.json: nested deeper than Python's JSON reader can follow"),
    ],
)
def test_wrong_coco_shape_names_file_and_expectation(
    tmp_path: Path, content: str, match: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(CorpusError, match=match):
        read_corpus(path)


@pytest.mark.parametrize(
    "line, match",
    [
        ("not json", r"bad\.jsonl line 2: not valid JSON"),
        ('["a list"]', r"bad\.jsonl line 2: got list; expected JSON Lines"),
        ('{"text": "no caption key"}', r"line 2: got dict; expected JSON Lines"),
        ('{"caption": "x", "id": [1]}', r"line 2: 'id' is list"),
        ("[" * 100_000, r"bad\.jsonl line 2: nested deeper than Python's JSON reader"),
        ('{"caption": ' + "[" * 100_000, r"bad\.jsonl line 2: nested deeper"),
    ],
)
def test_wrong_jsonl_shape(tmp_path: Path, line: str, match: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"caption": "fine"}\n' + line + "\n")
    with pytest.raises(CorpusError, match=match) as error:
        read_corpus(path)
    assert "\n" not in str(error.value) and len(str(error.value)) < 400


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"corpus file .*missing\.txt does not exist"):
        read_corpus(tmp_path / "missing.txt")
    folder = tmp_path / "folder.txt"
    folder.mkdir()
    with pytest.raises(CorpusError, match="not a regular file"):
        read_corpus(folder)
    broken = tmp_path / "broken.jsonl"
    broken.write_bytes(gzip.compress(b'{"caption": "a"}\n' * 100)[:-20])  # truncated gzip
    with pytest.raises(CorpusError, match=r"cannot read corpus file .*broken\.jsonl"):
        read_corpus(broken)


def test_format_detection(tmp_path: Path) -> None:
    assert detect_format("a/b.NDJSON") == "jsonl" and detect_format("x.csv.gz") == "csv"
    assert detect_format("weird.dat", "text") == "text"
    with pytest.raises(CorpusError, match=r"weird\.dat.*'\.dat'.*give the format explicitly"):
        detect_format("weird.dat")
    with pytest.raises(ValueError, match=r"format 'yaml' unknown; choose one of coco, jsonl"):
        detect_format("a.txt", "yaml")
    path = tmp_path / "list.dat"
    path.write_text("one\ntwo\n")
    assert read_corpus(path, format="text", name="mine").captions == ("one", "two")
    assert read_corpus(path, format="text", name="mine").name == "mine"


def test_files_named_alike_are_refused_not_merged(tmp_path: Path) -> None:
    """Issue 25: a/x.jsonl and b/x.txt would both be corpus 'x' and silently become one."""
    from fossil.errors import option_of
    from fossil.ingest.corpora import check_corpus_names

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "x.jsonl").write_text('{"caption": "a dog"}\n')
    (tmp_path / "b" / "x.txt").write_text("a cat\n")
    first, second = read_corpus(tmp_path / "a" / "x.jsonl"), read_corpus(tmp_path / "b" / "x.txt")
    with pytest.raises(CorpusError) as error:
        check_corpus_names([first, second])
    message = str(error.value)
    assert f"{tmp_path / 'a' / 'x.jsonl'} and {tmp_path / 'b' / 'x.txt'}" in message
    assert "would both be corpus 'x'" in message and option_of(error.value) == "corpus_name"
    # named on purpose: one corpus of both files, or each its own name
    check_corpus_names([read_corpus(first.source, name="x"), read_corpus(second.source, name="x")])
    check_corpus_names([first, read_corpus(second.source, name="x2")])
    # across runs: 'x' already registered from another file
    with pytest.raises(CorpusError, match=r"corpus 'x' is already registered from /elsewhere/x"):
        check_corpus_names([second], {"x": "/elsewhere/x.txt"})
    check_corpus_names([second], {"x": second.source})  # the same file again: resumes
    check_corpus_names([second], {"x": f"/elsewhere/x.txt, {second.source}"})  # one of its files
    check_corpus_names([second], {"x": "rebuilt by `fossil store check --repair` from ..."})
    check_corpus_names([read_corpus(second.source, name="x")], {"x": "/elsewhere/x.txt"})
