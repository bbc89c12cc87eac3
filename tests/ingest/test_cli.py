"""``fossil ingest`` / ``fossil info`` in-process on the real embedded store, fake models."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import fossil.commands.ingest as ingest_command
import fossil.pipeline.ingest as ingest_run
from fossil.cli import main
from fossil.db.catalog import SqlCatalog
from tests.ingest.conftest import FakeModels, FakeText, load_fake_models


def _captions_200() -> list[str]:
    """200 captions: every 20th without a noun, the others with two (380 references)."""
    first, second = ("dog", "cat", "car", "ball"), ("tree", "sky", "house")
    return [
        f"Nothing number {i}"
        if i % 20 == 0
        else f"A {first[i % 4]} number {i} near a {second[i % 3]}"
        for i in range(200)
    ]


@pytest.fixture
def fake_models(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        ingest_run, "model_loaders", lambda profile, devices, workers: [load_fake_models] * workers
    )


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict | None, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == 0 and "--json" in argv else None), err


def _ingest(capsys, store: Path, *sources: Path, extra: tuple[str, ...] = ()):
    files = [str(s) for s in sources]
    return _run(capsys, "ingest", *files, "--store", str(store), "--no-progress", "--json", *extra)


@pytest.mark.usefixtures("fake_models")
def test_ingest_200_rerun_new_corpus_and_info(tmp_path: Path, capsys) -> None:
    captions = _captions_200()
    first, second = tmp_path / "captions_train2017.json", tmp_path / "second.jsonl"
    annotations = [{"id": i, "image_id": i // 5, "caption": c} for i, c in enumerate(captions)]
    first.write_text(json.dumps({"images": [], "annotations": annotations}))
    new = [f"A dog number {i} near a tree" for i in range(1000, 1020)]
    second.write_text("\n".join(json.dumps({"caption": c}) for c in captions[:50] + new))
    store = tmp_path / "store"
    code, summary, _ = _ingest(
        capsys, store, first, extra=("--batch-size", "16", "--no-thumbnails")
    )
    assert code == 0 and summary["captions_processed"] == 200
    assert summary["captions_without_nouns"] == 10 and summary["references_written"] == 380
    assert summary["store_references"] == 380
    code, again, _ = _ingest(capsys, store, first)
    assert again["references_written"] == again["captions_processed"] == 0
    assert again["corpora"][0]["duplicates"] == 200 and again["store_references"] == 380
    code, more, _ = _ingest(capsys, store, second)
    assert more["corpora"] == [
        {"name": "second", "read": 70, "skipped": 0, "added": 20, "duplicates": 50}
    ]
    assert more["captions_processed"] == 20 and more["references_written"] == 40
    code, info, _ = _run(capsys, "info", "--store", str(store), "--json")
    assert code == 0 and info["references"] == info["catalog_references"] == 420
    assert info["captions"] == {"pending": 0, "leased": 0, "done": 220, "failed": 0}
    assert [(c["name"], c["captions"]) for c in info["corpora"]] == [
        ("captions_train2017", 200),
        ("second", 70),  # its 50 captions the first corpus registered are second's too
    ]
    assert [(t["lemma"], t["references"]) for t in info["top_lemmas"][:3]] == [
        ("tree", 83),
        ("sky", 64),
        ("house", 63),
    ]
    assert info["meta"]["text_encoder"] == "fake-text" and info["disk_bytes"]["total"] > 0
    thumbnails = {p.stem for p in (store / "thumbnails").rglob("*.webp")}
    assert len(thumbnails) == 40  # the second corpus's references only (--no-thumbnails first)
    code, _, _ = _run(capsys, "info", "--store", str(store))
    assert code == 0


@pytest.mark.usefixtures("fake_models")
def test_bad_lines_are_counted_skips(tmp_path: Path, capsys) -> None:
    corpus = tmp_path / "mixed.txt"
    corpus.write_bytes(
        b"A dog\n\n  \nbad \xff bytes\n" + b"a dog " * 1700 + b"\nA cat\n" + b"A dog\n"
    )
    code, summary, _ = _ingest(capsys, tmp_path / "s", corpus, extra=("--no-thumbnails",))
    assert code == 0
    # 2 empty + 1 not UTF-8 (reader) + 1 over 1000 characters (catalog); "A dog" twice
    assert summary["corpora"] == [
        {"name": "mixed", "read": 4, "skipped": 4, "added": 2, "duplicates": 1}
    ]
    assert summary["references_written"] == 2 and not (tmp_path / "s/thumbnails/00").exists()


@pytest.mark.usefixtures("fake_models")
@pytest.mark.parametrize(
    "name, content, match",
    [
        ("bad.json", '{"images": []}', r"bad\.json: expected COCO captions JSON"),
        ("gone.txt", None, r"corpus file .*gone\.txt does not exist"),
        ("table.csv", "a,b\n1,2\n", r"CSV has no column 'caption'"),
    ],
)
def test_bad_files_fail_before_anything_is_written(
    tmp_path: Path, capsys, name: str, content: str | None, match: str
) -> None:
    good, bad = tmp_path / "good.txt", tmp_path / name
    good.write_text("A dog\n")
    if content is not None:
        bad.write_text(content)
    code, _, err = _ingest(capsys, tmp_path / "store", good, bad)
    assert code == 1 and re.search(match, err)
    assert not (tmp_path / "store").exists()


def test_store_built_with_other_encoders_refuses(
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus, store = tmp_path / "c.txt", tmp_path / "store"
    corpus.write_text("A dog\n")
    monkeypatch.setattr(ingest_run, "model_loaders", lambda *_: [load_fake_models])
    assert _ingest(capsys, store, corpus)[0] == 0
    other = tmp_path / "other.txt"
    other.write_text("A cat\n")
    swapped = FakeModels(text=FakeText(name="other-text", dim=32))
    monkeypatch.setattr(ingest_run, "model_loaders", lambda *_: [lambda: swapped])
    code, _, err = _ingest(capsys, store, other)
    assert code == 1
    assert "text_encoder: store has 'fake-text', asked for 'other-text'" in err
    assert "text_dim: store has 16, asked for 32" in err
    code, info, _ = _run(capsys, "info", "--store", str(store), "--json")
    assert [c["name"] for c in info["corpora"]] == ["c"] and info["references"] == 1


@pytest.mark.usefixtures("fake_models")
def test_locked_store_says_use_the_server(tmp_path: Path, capsys) -> None:
    corpus, store = tmp_path / "c.txt", tmp_path / "store"
    corpus.write_text("A dog\n")
    assert _ingest(capsys, store, corpus)[0] == 0
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
            import sys, time
            from fossil.db.open import open_collection
            collection = open_collection({str(store)!r})
            print("open", flush=True)
            time.sleep(60)
        """),
        ],  # fmt: skip
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "open"
        corpus.write_text("A cat\n")
        code, _, err = _ingest(capsys, store, corpus)
        assert code == 1 and "open in another process" in err and "--qdrant-url" in err
        code, info, _ = _run(capsys, "info", "--store", str(store), "--json")
        assert code == 0 and info["references"] == 1 and "locked" in info["vector_store"]
        assert info["captions"]["pending"] == 0  # "A cat" was not registered
    finally:
        holder.kill()
        holder.wait()
    assert _ingest(capsys, store, corpus)[0] == 0  # the lock died with its process


@pytest.mark.usefixtures("fake_models")
def test_server_backend(tmp_path: Path, capsys) -> None:
    """``--qdrant-url``: vectors in a Qdrant server (here qdrant-client's in-process
    ``:memory:``, same API), catalog and thumbnails in DIR."""
    corpus, store = tmp_path / "c.txt", tmp_path / "store"
    corpus.write_text("A dog near a tree\nA cat\n")
    code, summary, _ = _ingest(capsys, store, corpus, extra=("--qdrant-url", ":memory:"))
    assert code == 0 and summary["references_written"] == summary["store_references"] == 3
    assert not (store / "qdrant").exists() and (store / "catalog.sqlite").is_file()
    assert len(list((store / "thumbnails").rglob("*.webp"))) == 3


@pytest.mark.usefixtures("fake_models")
def test_bad_flags(tmp_path: Path, capsys) -> None:
    corpus = tmp_path / "c.txt"
    corpus.write_text("A dog\n")
    code, _, err = _ingest(capsys, tmp_path / "s", corpus, extra=("--batch-size", "0"))
    assert code == 1 and "--batch-size (0) must be >= 1" in err
    with pytest.raises(SystemExit):
        main(["ingest", str(corpus), "--store", str(tmp_path / "s"), "--format", "yaml"])
    code, _, err = _ingest(capsys, tmp_path / "s", corpus, extra=("--shards", "2"))
    assert code == 1 and "--shards (2) must be >= 1 and needs --qdrant-url" in err


@pytest.mark.usefixtures("fake_models")
@pytest.mark.parametrize(
    "flags, message",
    [
        (("--limit", "-1"), "--limit (-1) must be >= 0"),
        (("--lease-seconds", "0"), "--lease-seconds (0.0) must be > 0"),
        (("--workers", "0"), "--workers (0) must be >= 1"),
        (("--replicas", "0", "--qdrant-url", ":memory:"), "--replicas (0) must be >= 1 and needs"),
    ],
)
def test_library_refusals_name_the_flags(tmp_path: Path, capsys, flags, message) -> None:
    """IngestOptions / ModelChoice / StoreAddress refuse in their field names; the command
    says the flag instead, before anything is read or written."""
    corpus = tmp_path / "c.txt"
    corpus.write_text("A dog\n")
    code, _, err = _ingest(capsys, tmp_path / "s", corpus, extra=flags)
    assert code == 1 and message in err and "_" not in err.split("error: ")[1].split(" (")[0]
    assert not (tmp_path / "s").exists()


@pytest.mark.usefixtures("fake_models")
def test_shards_and_replicas_reach_the_server_collection(
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fossil.db.open as db_open

    seen: dict[str, object] = {}
    original = db_open.open_collection

    def spy(*args, **kwargs):
        seen.update(shard_number=kwargs.get("shard_number"),
                    replication_factor=kwargs.get("replication_factor"))  # fmt: skip
        return original(*args, **kwargs)

    monkeypatch.setattr(db_open, "open_collection", spy)
    corpus = tmp_path / "c.txt"
    corpus.write_text("A dog\n")
    extra = ("--qdrant-url", ":memory:", "--shards", "3", "--replicas", "2")
    code, summary, _ = _ingest(capsys, tmp_path / "s", corpus, extra=extra)
    assert code == 0 and summary["store_references"] == 1
    assert seen == {"shard_number": 3, "replication_factor": 2}


def test_first_ctrl_c_finishes_the_batch_second_stops_now() -> None:
    with ingest_command.GracefulInterrupt() as interrupt:
        assert not interrupt()
        os.kill(os.getpid(), signal.SIGINT)
        assert interrupt()  # first: a request to stop after the current batch
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_ctrl_c_during_a_batch_prints_the_summary(
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus = tmp_path / "c.txt"
    corpus.write_text("A dog\nA cat\nA tree\n")
    models = FakeModels()
    real = models.generator.generate

    def interrupt_on_cat(captions, nouns):
        if any("cat" in c for c in captions):
            raise KeyboardInterrupt
        return real(captions, nouns)

    models.generator.generate = interrupt_on_cat  # type: ignore[method-assign]
    monkeypatch.setattr(ingest_run, "model_loaders", lambda *_: [lambda: models])
    code = main(
        [
            "ingest",
            str(corpus),
            "--store",
            str(tmp_path / "s"),
            "--batch-size",
            "1",
            "--no-progress",
            "--json",
        ]
    )
    summary = json.loads(capsys.readouterr().out)
    assert code == 130 and summary["interrupted"] and summary["captions_processed"] == 1
    assert summary["store_captions"] == {"pending": 2, "leased": 0, "done": 1, "failed": 0}


def test_info_on_a_missing_store(tmp_path: Path, capsys) -> None:
    code, _, err = _run(capsys, "info", "--store", str(tmp_path / "nothing"), "--json")
    assert code == 1 and "no fossil store at" in err and "fossil ingest" in err


@pytest.mark.usefixtures("fake_models")
def test_corpus_name_merges_sources_and_limit_leaves_the_rest_pending(
    tmp_path: Path, capsys
) -> None:
    a, b = tmp_path / "a.txt", tmp_path / "b.csv"
    a.write_text("A dog\nA cat\n")
    b.write_text("text\nA tree\nA dog\n")
    extra = ("--corpus-name", "mine", "--csv-column", "text", "--limit", "1", "--no-thumbnails")
    code, summary, _ = _ingest(capsys, tmp_path / "s", a, b, extra=extra)
    assert code == 0 and summary["corpora"] == [
        {"name": "mine", "read": 4, "skipped": 0, "added": 3, "duplicates": 1}
    ]
    assert summary["captions_processed"] == 1
    assert summary["store_captions"] == {"pending": 2, "leased": 0, "done": 1, "failed": 0}


def _no_models(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_):
        raise AssertionError("models were loaded")

    monkeypatch.setattr(ingest_run, "model_loaders", refuse)


def test_register_only_then_workers_with_no_source(
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus, store = tmp_path / "c.txt", tmp_path / "store"
    corpus.write_text("A dog near a tree\nA cat\nA dog near a tree\n")
    _no_models(monkeypatch)  # registering needs no model, and no vector store
    code, summary, _ = _run(
        capsys, "ingest", "--register-only", str(corpus), "--store", str(store), "--json"
    )
    assert code == 0 and summary["corpora"] == [
        {"name": "c", "read": 3, "skipped": 0, "added": 2, "duplicates": 1}
    ]
    assert summary["store_captions"]["pending"] == 2
    assert (store / "catalog.sqlite").is_file() and not (store / "qdrant").exists()
    code, _, _ = _run(capsys, "ingest", "--register-only", str(corpus), "--store", str(store))
    assert code == 0  # idempotent; the plain summary names the next step
    monkeypatch.setattr(ingest_run, "model_loaders", lambda *_: [load_fake_models])
    code, summary, _ = _ingest(capsys, store, extra=("--no-thumbnails",))
    assert code == 0 and summary["corpora"] == [] and summary["captions_processed"] == 2
    assert summary["references_written"] == summary["store_references"] == 3
    _no_models(monkeypatch)  # nothing pending: said so, no model loaded
    code = main(["ingest", "--store", str(store)])
    assert code == 0 and "nothing pending: all 2 captions" in capsys.readouterr().out
    code, idle, _ = _ingest(capsys, store)
    assert code == 0 and idle["pending"] == 0 and idle["store_captions"]["done"] == 2


def test_server_workers_need_no_store_directory(
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What docker-compose.yml runs: register once, then workers with only URLs."""
    corpus = tmp_path / "c.txt"
    corpus.write_text("A dog near a tree\nA cat\n")
    server = ("--qdrant-url", ":memory:", "--catalog", f"sqlite:///{tmp_path / 'shared.sqlite'}")
    _no_models(monkeypatch)
    code, _, _ = _run(capsys, "ingest", "--register-only", *server, str(corpus), "--json")
    assert code == 0
    monkeypatch.setattr(ingest_run, "model_loaders", lambda *_: [load_fake_models])
    code, summary, _ = _run(capsys, "ingest", *server, "--no-progress", "--json")
    assert code == 0 and summary["references_written"] == summary["store_references"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.txt", "shared.sqlite"]
    catalog = SqlCatalog(server[3])  # (`fossil info` cannot reach another :memory: Qdrant)
    try:
        assert catalog.status_counts()["done"] == 2 and catalog.reference_count() == 3
    finally:
        catalog.close()


def test_no_source_bad_input(tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    _no_models(monkeypatch)
    missing = tmp_path / "missing"
    code, _, err = _run(capsys, "ingest", "--register-only", "--store", str(missing))
    assert code == 1 and "--register-only needs SOURCE caption files" in err
    code, _, err = _run(capsys, "ingest", "--store", str(missing))
    assert code == 1 and f"no fossil store at {missing}" in err and "give SOURCE" in err
    assert not missing.exists()
    empty = f"sqlite:///{tmp_path / 'empty.sqlite'}"
    code, _, err = _run(capsys, "ingest", "--qdrant-url", ":memory:", "--catalog", empty)
    assert code == 1 and "holds no corpus yet" in err and "--register-only" in err
    code, _, err = _run(capsys, "ingest", "--qdrant-url", ":memory:")
    assert code == 1 and "give --store DIR, or --catalog URL" in err
    code, _, err = _run(capsys, "ingest", "--catalog", empty)
    assert code == 1 and "--store DIR is required unless both --qdrant-url and --catalog" in err
    code, _, err = _run(capsys, "info", "--qdrant-url", ":memory:")
    assert code == 1 and "give --store DIR, or both --qdrant-url and --catalog" in err
