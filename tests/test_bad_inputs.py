"""Every command against a table of bad inputs (issue 16, defect 7): each must exit non-zero
with a one-line error naming the problem — no traceback — and leave an existing store
unchanged byte for byte."""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fossil.cli import main
from tests.conftest import build_tiny_store, models_loaded_once


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """A tiny store and the files the bad inputs name."""
    root = tmp_path_factory.mktemp("bad")
    with models_loaded_once():
        store = build_tiny_store(root)
        source = root / "captions.txt"
        files = {"root": root, "store": store, "source": source}
        files["file"] = root / "plain-file"
        files["file"].write_text("not a directory")
        files["noise"] = root / "noise.txt"
        files["noise"].write_bytes(np.random.default_rng(0).bytes(4096))
        files["coco"] = root / "not_coco.json"
        files["coco"].write_text('{"images": []}')
        files["csv"] = root / "captions.csv"
        files["csv"].write_text("text\nA dog\n")
        files["jsonl"] = root / "bad.jsonl"
        files["jsonl"].write_text('{"caption": 7}\n')
        files["photo"] = root / "photo.png"
        Image.fromarray(np.full((40, 60, 3), 90, np.uint8)).save(files["photo"])
        files["corrupt"] = root / "corrupt.jpg"
        files["corrupt"].write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
        files["strip"] = root / "strip.png"
        Image.new("L", (4000, 2)).save(files["strip"])
        files["bomb"] = root / "bomb.png"
        files["bomb"].write_bytes(_bilevel_png(16000, 16000))
        files["toml"] = root / "wrong.toml"
        files["toml"].write_text('[models]\ntext = "tiny"\n[generation]\nsteps = "many"\n')
        # unwritable like a read-only mount (the tests run as root, where chmod does not
        # stop writes): the lock file cannot be opened for writing
        files["locked"] = root / "unlockable"
        shutil.copytree(store, files["locked"])
        (files["locked"] / "qdrant.lock").unlink()
        (files["locked"] / "qdrant.lock").mkdir()
        files["unknown_toml"] = root / "unknown.toml"
        files["unknown_toml"].write_text('[models]\nfrobnicator = "tiny"\n')
        yield files


def _bilevel_png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    rows = (b"\x00" * (1 + (width + 7) // 8)) * height
    head = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", head) + chunk(b"IDAT", zlib.compress(rows))


# (id, argv); {store}, {file}, ... are filled from the ``world`` fixture; {missing}: a path
# that does not exist; {under_file}: a path whose parent is a regular file (unwritable)
TINY = ("--models", "tiny")
CASES: list = [
    ("ingest-missing-source", ("ingest", "{missing}.txt", "--store", "{store}", *TINY)),
    ("ingest-random-bytes", ("ingest", "{noise}", "--store", "{store}", *TINY)),
    ("ingest-store-is-a-file", ("ingest", "{source}", "--store", "{file}", *TINY)),
    ("ingest-batch-size-0", ("ingest", "{source}", "--store", "{store}", "--batch-size", "0")),
    ("ingest-workers-0", ("ingest", "{source}", "--store", "{store}", "--workers", "0")),
    ("ingest-unknown-format", ("ingest", "{source}", "--store", "{store}", "--format", "xml")),
    ("ingest-csv-column", ("ingest", "{csv}", "--store", "{store}", *TINY)),
    ("ingest-not-coco", ("ingest", "{coco}", "--store", "{store}", *TINY)),
    ("ingest-jsonl-number", ("ingest", "{jsonl}", "--store", "{store}", *TINY)),
    ("ingest-unknown-extension", ("ingest", "{file}", "--store", "{store}", *TINY)),
    ("ingest-unknown-profile", ("ingest", "{source}", "--store", "{store}", "--models", "nope")),
    (
        "ingest-lease-negative",
        ("ingest", "{source}", "--store", "{store}", "--lease-seconds", "-1"),
    ),
    ("ingest-empty-concept", ("ingest", "--concepts", " ", "--store", "{store}", *TINY)),
    pytest.param(
        "ingest-toml-wrong-type",
        ("ingest", "{source}", "--store", "{root}/s2", "--models", "{toml}"),
        id="ingest-toml-wrong-type",
    ),
    (
        "ingest-toml-unknown-role",
        ("ingest", "{source}", "--store", "{root}/s3", "--models", "{unknown_toml}"),
    ),
    ("ingest-paper-models-offline", ("ingest", "{source}", "--store", "{root}/s4")),
    ("query-empty-concept", ("query", " ", "--store", "{store}", *TINY)),
    ("query-missing-store", ("query", "dog", "--store", "{missing}", *TINY)),
    ("query-store-is-a-file", ("query", "dog", "--store", "{file}", *TINY)),
    ("query-n-0", ("query", "dog", "--store", "{store}", *TINY, "--n", "0")),
    ("query-k-over-n", ("query", "dog", "--store", "{store}", *TINY, "--n", "5", "--k", "9")),
    ("query-unknown-preset", ("query", "dog", "--store", "{store}", *TINY, "--preset", "nope")),
    pytest.param(
        "query-grid-unwritable",
        ("query", "dog", "--store", "{store}", *TINY, "--grid", "{under_file}/g.png"),
        id="query-grid-unwritable",
    ),
    ("query-paper-models-offline", ("query", "dog", "--store", "{store}", "--models", "paper")),
    (
        "segment-missing-image",
        ("segment", "{missing}.jpg", "--concepts", "dog", "--store", "{store}", *TINY),
    ),
    (
        "segment-corrupt-image",
        ("segment", "{corrupt}", "--concepts", "dog", "--store", "{store}", *TINY),
    ),
    (
        "segment-elongated-image",
        ("segment", "{strip}", "--concepts", "dog", "--store", "{store}", *TINY),
    ),
    ("segment-image-bomb", ("segment", "{bomb}", "--concepts", "dog", "--store", "{store}", *TINY)),
    (
        "segment-empty-concepts",
        ("segment", "{photo}", "--concepts", " , ", "--store", "{store}", *TINY),
    ),
    (
        "segment-out-unwritable",
        (
            "segment",
            "{photo}",
            "--concepts",
            "dog",
            "--store",
            "{store}",
            *TINY,
            "--out",
            "{under_file}/out",
        ),
    ),
    (
        "segment-store-is-a-file",
        ("segment", "{photo}", "--concepts", "dog", "--store", "{file}", *TINY),
    ),
    ("info-missing-store", ("info", "--store", "{missing}")),
    ("info-store-is-a-file", ("info", "--store", "{file}")),
    ("info-top-negative", ("info", "--store", "{store}", "--top", "-1")),
    ("corpus-list-missing-store", ("corpus", "list", "--store", "{missing}")),
    ("corpus-remove-unknown", ("corpus", "remove", "nosuch", "--store", "{store}")),
    (
        "corpus-remove-batch-0",
        ("corpus", "remove", "captions", "--store", "{store}", "--batch-size", "0"),
    ),
    ("store-check-missing", ("store", "check", "--store", "{missing}")),
    ("store-check-a-file", ("store", "check", "--store", "{file}")),
    (
        "store-export-batch-0",
        ("store", "export", "--store", "{store}", "--to", ":memory:", "--batch-size", "0"),
    ),
    ("eval-unknown-benchmark", ("eval", "nosuch", "--data", "{root}", "--store", "{store}", *TINY)),
    (
        "eval-missing-data",
        ("eval", "pascal_context59", "--data", "{missing}", "--store", "{store}", *TINY),
    ),
    ("demo-out-is-a-file", ("demo", "--out", "{file}", "--captions", "4", "--scenes", "1")),
    ("unknown-command", ("frobnicate",)),
    ("serve-max-concepts-0", ("serve", "--store", "{store}", *TINY, "--max-concepts", "0")),
    ("serve-max-side-0", ("serve", "--store", "{store}", *TINY, "--max-side", "0")),
    (
        "serve-public-without-allowed-hosts",
        ("serve", "--store", "{store}", *TINY, "--host", "0.0.0.0", "--api-key", "k"),
    ),
    (
        "serve-allowed-host-with-scheme",
        ("serve", "--store", "{store}", *TINY, "--allowed-hosts", "http://fossil.example"),
    ),
    ("serve-allowed-hosts-empty-name", ("serve", "--store", "{store}", "--allowed-hosts", "a,,b")),
    ("ingest-unlockable-store", ("ingest", "{source}", "--store", "{locked}", *TINY)),
    ("query-unlockable-store", ("query", "dog", "--store", "{locked}", *TINY)),
    (
        "segment-unlockable-store",
        ("segment", "{photo}", "--concepts", "dog", "--store", "{locked}"),
    ),
    ("info-unlockable-store", ("info", "--store", "{locked}")),
    ("corpus-list-unlockable-store", ("corpus", "list", "--store", "{locked}")),
    ("store-check-unlockable-store", ("store", "check", "--store", "{locked}")),
]


CASES = [c if hasattr(c, "values") else pytest.param(*c, id=c[0]) for c in CASES]

# Qdrant Edge's own bookkeeping, rewritten or compacted whenever a shard is opened and closed
EDGE_BOOKKEEPING = {"tracker_journal.dat"}


def _snapshot(store: Path) -> dict[str, object]:
    """Every file's sha256; JSON files by content (Qdrant Edge rewrites its
    ``edge_config.json`` on every open, with its keys in another order)."""
    return {
        str(p.relative_to(store)): json.loads(p.read_text())
        if p.suffix == ".json"
        else hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(store.rglob("*"))
        if p.is_file() and p.name not in EDGE_BOOKKEEPING
    }


def test_the_table_is_large_enough() -> None:
    names = [case.values[0] for case in CASES]
    assert len(names) >= 30 and len(set(names)) == len(names)


@pytest.mark.parametrize(("name", "argv"), CASES)
def test_bad_input_is_one_line_nonzero_and_leaves_the_store_alone(
    world: dict[str, Path], capsys: pytest.CaptureFixture[str], name: str, argv: tuple[str, ...]
) -> None:
    values = {k: str(v) for k, v in world.items()}
    values["missing"] = str(world["root"] / "does-not-exist")
    values["under_file"] = str(world["file"])
    filled = [a.format(**values) for a in argv]
    before = _snapshot(world["store"])
    capsys.readouterr()
    with models_loaded_once():
        try:
            code = main(filled)
        except SystemExit as stop:  # argparse: usage error
            code = stop.code
    err = capsys.readouterr().err
    assert code not in (0, None), f"{name}: exit 0"
    assert "Traceback" not in err, f"{name}: {err}"
    errors = [line for line in err.splitlines() if "error:" in line]  # argparse adds usage
    assert len(errors) == 1, f"{name}: {err}"
    if "unlockable" in name:
        assert "cannot lock the store" in err, f"{name}: {err}"
    assert _snapshot(world["store"]) == before, f"{name} changed the store"
