"""Odd caption files and captions-only stores (issue 16, defect 12): binary data is refused
and creates nothing, invisible characters are stripped, a byte-order mark is accepted in
every format, and ``--register-only`` stores work with ``info`` and ``corpus``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fossil.cli import main
from fossil.db.catalog import normalise_caption
from fossil.ingest.corpora import CorpusError, read_corpus


@pytest.mark.parametrize("suffix", [".jsonl", ".txt", ".csv"])
def test_random_bytes_are_refused_and_create_no_store(tmp_path: Path, capsys, suffix) -> None:
    source = tmp_path / f"noise{suffix}"
    source.write_bytes(np.random.default_rng(0).integers(0, 256, 20_000, np.uint8).tobytes())
    store = tmp_path / "store"
    code = main(["ingest", str(source), "--store", str(store), "--register-only"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err and not store.exists()
    assert str(source) in err


def test_an_empty_file_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "empty.txt"
    source.write_text("\n\n  \n")
    with pytest.raises(CorpusError, match="0 captions read"):
        read_corpus(source)


def test_control_and_bidi_characters_are_stripped(tmp_path: Path) -> None:
    source = tmp_path / "odd.txt"
    source.write_text("dog\x00\nA \u202ecat\u202c on a mat\nA\x1b[31m red\x07 car\n")
    assert read_corpus(source).captions == ("dog", "A cat on a mat", "A [31m red car")
    assert normalise_caption("dog\x00") == normalise_caption("\ufeffdog\u2066") == "dog"


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("bom.jsonl", '{"caption": "A dog"}\n{"caption": "A cat"}\n'),
        ("bom.txt", "A dog\nA cat\n"),
        ("bom.csv", "caption,id\nA dog,1\nA cat,2\n"),
        ("bom.json", '{"annotations": [{"caption": "A dog"}, {"caption": "A cat"}]}'),
    ],
)
def test_a_byte_order_mark_is_accepted_in_every_format(tmp_path: Path, name, body) -> None:
    source = tmp_path / name
    source.write_bytes(b"\xef\xbb\xbf" + body.encode("utf-8"))
    assert read_corpus(source).captions == ("A dog", "A cat")


def test_register_only_stores_work_with_info_and_corpus(tmp_path: Path, capsys) -> None:
    source, store = tmp_path / "first.txt", tmp_path / "store"
    source.write_text("A dog on a mat\nA cat on a car\n")
    assert main(["ingest", str(source), "--store", str(store), "--register-only"]) == 0
    capsys.readouterr()
    assert main(["info", "--store", str(store), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["references"] == 0 and info["captions"]["pending"] == 2
    assert main(["corpus", "list", "--store", str(store), "--json"]) == 0
    [listed] = json.loads(capsys.readouterr().out)
    assert (listed["name"], listed["captions"]) == ("first", 2)
    assert main(["corpus", "remove", "first", "--store", str(store), "--json"]) == 0
    removal = json.loads(capsys.readouterr().out)
    assert removal["captions"] == 2 and removal["store_references"] == 0


def test_an_emptied_captions_only_catalog_is_not_given_a_fresh_schema(
    tmp_path: Path, capsys
) -> None:
    source, store = tmp_path / "first.txt", tmp_path / "store"
    source.write_text("A dog on a mat\n")
    assert main(["ingest", str(source), "--store", str(store), "--register-only"]) == 0
    (store / "catalog.sqlite").write_bytes(b"")
    capsys.readouterr()
    assert main(["info", "--store", str(store)]) == 1
    assert "is not a fossil catalog or is damaged" in capsys.readouterr().err
    assert (store / "catalog.sqlite").stat().st_size == 0
