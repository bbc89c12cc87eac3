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
from sqlalchemy import create_engine, text

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
        for folder, content in (("a", '{"caption": "a dog"}\n'), ("b", "a cat\n")):
            (root / folder).mkdir()
            files[f"stem_{folder}"] = root / folder / ("x.jsonl" if folder == "a" else "x.txt")
            files[f"stem_{folder}"].write_text(content)
        files["other_captions"] = root / "b" / "captions.txt"  # the store has 'captions'
        files["other_captions"].write_text("a cat on a mat\n")
        files["deep"] = root / "deep.jsonl"
        files["deep"].write_text('{"caption": "a dog"}\n' + "[" * 100_000 + "\n")
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
        # the catalog's tables without their rows beside a shard of points (issue 25)
        files["emptied"] = root / "emptied"
        shutil.copytree(store, files["emptied"])
        _delete_catalog_rows(files["emptied"])
        files["unknown_toml"] = root / "unknown.toml"
        files["unknown_toml"].write_text('[models]\nfrobnicator = "tiny"\n')
        yield files


def _delete_catalog_rows(store: Path) -> None:
    engine = create_engine(f"sqlite:///{store / 'catalog.sqlite'}")
    with engine.begin() as conn:
        for table in ("reference", "caption_corpus", "caption", "corpus"):
            conn.execute(text(f"DELETE FROM {table}"))
    engine.dispose()


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
    ("ingest-jsonl-nested-100k", ("ingest", "{deep}", "--store", "{store}", *TINY)),
    ("ingest-two-files-one-name", ("ingest", "{stem_a}", "{stem_b}", "--store", "{store}", *TINY)),
    ("ingest-name-taken-by-a-file", ("ingest", "{other_captions}", "--store", "{store}", *TINY)),
    (
        "ingest-register-two-files-one-name",
        ("ingest", "--register-only", "{stem_a}", "{stem_b}", "--store", "{store}"),
    ),
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
    ("query-escape-in-concept", ("query", "dog\x1b[2J\x1b[31m", "--store", "{store}", *TINY)),
    ("query-bidi-in-concept", ("query", "\u202egod", "--store", "{store}", *TINY)),
    (
        "segment-bom-in-concepts",
        ("segment", "{photo}", "--concepts", "\ufeffdog", "--store", "{store}", *TINY),
    ),
    ("ingest-escape-in-concepts", ("ingest", "--concepts", "a\x07xolotl", "--store", "{store}")),
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
    ("query-catalog-emptied", ("query", "dog", "--store", "{emptied}", *TINY)),
    (
        "segment-catalog-emptied",
        ("segment", "{photo}", "--concepts", "dog", "--store", "{emptied}", *TINY),
    ),
    ("info-catalog-emptied", ("info", "--store", "{emptied}")),
    ("corpus-list-catalog-emptied", ("corpus", "list", "--store", "{emptied}")),
    ("ingest-catalog-emptied", ("ingest", "{source}", "--store", "{emptied}", *TINY)),
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
    assert "\x1b" not in err and "\u202e" not in err, f"{name}: raw terminal escapes: {err!r}"
    errors = [line for line in err.splitlines() if "error:" in line]  # argparse adds usage
    assert len(errors) == 1, f"{name}: {err}"
    if "unlockable" in name:
        assert "cannot lock the store" in err, f"{name}: {err}"
    if "emptied" in name:
        assert "store check --repair" in err, f"{name}: {err}"
    if name in ("ingest-two-files-one-name", "ingest-register-two-files-one-name"):
        assert "x.jsonl and " in err and "would both be corpus 'x'" in err, err
        assert "--corpus-name" in err, err
    if name == "ingest-name-taken-by-a-file":
        assert "corpus 'captions' is already registered from" in err, err
    if name == "ingest-jsonl-nested-100k":  # names the file and the line, not the recursion
        assert "deep.jsonl line 2: nested deeper" in err, err
    assert _snapshot(world["store"]) == before, f"{name} changed the store"


# -- a full disk, and parts of a store that cannot be written (issue 25) --------------------
# The tests run as root, where chmod does not stop writes, and must not fill a real disk: free
# space comes from a patched ``shutil.disk_usage`` (what fossil.db.space reads), ENOSPC and
# EACCES are raised by patched writers, and Qdrant Edge's refusal is its own message (seen on
# a read-only shard as a non-root user).  A cache folder that cannot be written is a regular
# file where the folder goes: that fails for root too.
MB = 1 << 20


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    with models_loaded_once():
        code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _one_line_error(code: int, err: str) -> str:
    assert code not in (0, None), err
    assert "Traceback" not in err and "During handling" not in err, err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1, err
    return errors[0]


def _free(monkeypatch: pytest.MonkeyPatch, free: int | list[int]) -> list[int]:
    """``shutil.disk_usage`` reports ``free`` bytes (a list: one value per call, the last
    one repeated); returns the list of values it handed out."""
    import collections

    values = collections.deque([free] if isinstance(free, int) else free)
    given: list[int] = []

    def usage(path: object) -> object:
        value = values.popleft() if len(values) > 1 else values[0]
        given.append(value)
        return shutil._ntuple_diskusage(100 * MB * 1024, 0, value)  # type: ignore[attr-defined]

    monkeypatch.setattr(shutil, "disk_usage", usage)
    return given


@pytest.fixture
def store_copy(world: dict[str, Path], tmp_path: Path) -> Path:
    copy = tmp_path / "store"
    shutil.copytree(world["store"], copy)
    return copy


def test_ingest_on_a_full_disk_is_one_line_naming_the_disk_and_the_space(
    world: dict[str, Path], store_copy: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    source = tmp_path / "more.txt"
    source.write_text("A horse in a field\nA boat on a lake\n")
    before = _snapshot(store_copy)
    _free(monkeypatch, 10 * MB)
    code, _, err = _cli(["ingest", str(source), "--store", str(store_copy), *TINY], capsys)
    line = _one_line_error(code, err)
    assert f"the disk holding {store_copy}" in line and "10.0 MB free" in line, line
    assert "at least 64.0 MB are needed" in line, line
    assert _snapshot(store_copy) == before  # refused before anything was written


def test_ingest_stops_between_batches_when_the_disk_fills_and_resumes_once_freed(
    world: dict[str, Path], store_copy: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    source = tmp_path / "more.txt"
    source.write_text("A horse in a field\nA boat on a lake\nA bird on a wire\n")
    given = _free(monkeypatch, [10_000 * MB] * 4 + [5 * MB])  # full after the first batch
    argv = ["ingest", str(source), "--store", str(store_copy), *TINY, "--batch-size", "1"]
    code, _, err = _cli(argv, capsys)
    assert len(given) >= 5, given
    line = _one_line_error(code, err)
    assert "5.0 MB free" in line and "ingest" in line, line
    # the store still opens while the disk is that full: reads need only a small margin
    code, out, err = _cli(["info", "--store", str(store_copy)], capsys)
    assert code == 0, err
    _free(monkeypatch, 10_000 * MB)  # space freed: the same command finishes the work
    code, out, err = _cli(argv + ["--no-progress"], capsys)
    assert code == 0, err
    assert "pending 0" in out, out


def test_a_disk_too_full_to_open_the_store_is_one_line_not_a_sigbus(
    store_copy: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Qdrant Edge memory-maps its shard files: opening one on a full disk dies of SIGBUS,
    so the store is not opened (measured: a loop-mounted ext4 with 0 bytes free)."""
    import qdrant_edge

    def never(*args: object) -> None:
        raise AssertionError("the shard was opened on a full disk")

    monkeypatch.setattr(qdrant_edge.EdgeShard, "load", never)
    _free(monkeypatch, 0)
    for argv in (["info"], ["store", "check"], ["query", "dog", *TINY]):
        code, _, err = _cli([*argv, "--store", str(store_copy)], capsys)
        line = _one_line_error(code, err)
        assert f"the disk holding {store_copy}" in line and "0 bytes free" in line, line


def test_enospc_inside_a_write_is_one_line_and_a_rerun_recovers(
    world: dict[str, Path], store_copy: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    import errno

    from fossil.db.rowfile import RowFile

    source = tmp_path / "more.txt"
    source.write_text("A horse in a field\nA boat on a lake\n")

    def full(self: RowFile, vectors: object, ids: object) -> range:
        raise OSError(errno.ENOSPC, "No space left on device", str(self.path))

    with monkeypatch.context() as patch:
        patch.setattr(RowFile, "append", full)
        argv = ["ingest", str(source), "--store", str(store_copy), *TINY, "--no-progress"]
        code, _, err = _cli(argv, capsys)
    line = _one_line_error(code, err)
    assert f"no space left on the disk holding {store_copy}" in line, line
    assert "store check --repair" in line, line
    # what the message says: repair (the failed batch's staged thumbnails), rerun
    code, out, err = _cli(["store", "check", "--repair", "--store", str(store_copy)], capsys)
    assert code == 0 and "after repair: healthy" in out, out + err
    code, out, err = _cli(argv, capsys)
    assert code == 0 and "pending 0" in out, out + err
    code, out, err = _cli(["store", "check", "--store", str(store_copy)], capsys)
    assert code == 0, out + err


def test_a_cache_folder_that_cannot_be_written_still_answers(
    store_copy: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    shutil.rmtree(store_copy / "cache", ignore_errors=True)
    (store_copy / "cache").write_text("in the way")  # mkdir fails, for root too
    code, out, err = _cli(["query", "dog", "--store", str(store_copy), *TINY], capsys)
    assert code == 0, err
    assert "dog:" in out and "references" in out
    assert (store_copy / "cache").read_text() == "in the way"


def test_a_row_file_that_cannot_be_written_still_answers(
    store_copy: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """As on a row file owned by another user: it opens for reading only."""
    import builtins

    import fossil.db.rowfile as rowfile

    def read_only(path: object, mode: str = "r", *args: object, **kwargs: object) -> object:
        if str(path).endswith(".f32") and any(c in mode for c in "wa+"):
            raise PermissionError(13, "Permission denied", str(path))
        return builtins.open(path, mode, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(rowfile, "open", read_only, raising=False)
    code, out, err = _cli(["query", "dog", "--store", str(store_copy), *TINY], capsys)
    assert code == 0, err
    assert "dog:" in out
    # writing to it is refused in one line naming the file
    source = store_copy.parent / "more.txt"
    source.write_text("A horse in a field\n")
    argv = ["ingest", str(source), "--store", str(store_copy), *TINY, "--no-progress"]
    line = _one_line_error(*_cli(argv, capsys)[::2])
    assert "qdrant-visual.f32" in line and "cannot be written" in line, line


def test_a_shard_that_cannot_be_written_is_one_line_saying_why(
    store_copy: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Qdrant Edge writes to its shard even to read it; its error on a read-only shard (as
    a non-root user, chmod -R a-w DIR/qdrant) is this text."""
    import qdrant_edge

    def refused(path: str, *args: object) -> None:
        raise Exception(  # noqa: TRY002 - what Edge raises
            f"Service runtime error: failed to load segment {path}/segments/x: Service runtime"
            " error: Failed to open mmap payload storage: Permission denied (os error 13)"
        )

    monkeypatch.setattr(qdrant_edge.EdgeShard, "load", refused)
    for argv in (["query", "dog", *TINY], ["info"]):
        code, _, err = _cli([*argv, "--store", str(store_copy)], capsys)
        line = _one_line_error(code, err)
        assert f"cannot open the vector store at {store_copy / 'qdrant'}" in line, line
        assert "Permission denied" in line and "writable" in line, line
