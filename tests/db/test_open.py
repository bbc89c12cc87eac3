"""open_collection: layout, persistence, collection_meta checks, the single-process lock."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import create_engine, text

from fossil.db.catalog import SqlCatalog
from fossil.db.open import (
    CATALOG_FILE,
    MetaMismatchError,
    StoreDamagedError,
    meta_mismatch,
    open_collection,
    store_catalog_url,
)
from tests.db.conftest import make_points
from tests.fakes import make_meta


def test_create_layout_and_reopen_persists(tmp_path: Path, rng: np.random.Generator) -> None:
    root = tmp_path / "store"
    points = make_points(40, rng)
    collection = open_collection(root, meta=make_meta(), create=True)
    # (a store's catalog holds its captions: points beside a catalog without any are refused
    # as a catalog that lost its rows)
    collection.catalog.add_corpus("coco", "coco.txt", ["a caption"])
    collection.refs.upsert(points)
    collection.close()
    assert (root / "qdrant").is_dir() and (root / "catalog.sqlite").is_file()
    assert (root / "thumbnails").is_dir()

    reopened = open_collection(root)  # meta read back from the catalog
    try:
        assert reopened.meta == make_meta() and reopened.root == str(root)
        assert reopened.refs.count() == 40
        hits = reopened.refs.search(points[5].text[None, :], 1)[0]
        assert hits[0].id == points[5].id
        np.testing.assert_allclose(
            reopened.refs.fetch_visual([points[5].id])[0], points[5].visual, rtol=1e-6
        )
    finally:
        reopened.close()


def test_missing_store_without_create_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no fossil store .*fossil ingest"):
        open_collection(tmp_path / "nothing", meta=make_meta())
    with pytest.raises(ValueError, match="store directory"):
        open_collection()


def test_meta_mismatch_names_both_sides(tmp_path: Path) -> None:
    open_collection(tmp_path, meta=make_meta(), create=True).close()
    other = make_meta(text_encoder="openai/clip-vit-base-patch32", text_dim=512)
    with pytest.raises(MetaMismatchError) as error:
        open_collection(tmp_path, meta=other)
    message = str(error.value)
    assert "'tiny-text'" in message and "'openai/clip-vit-base-patch32'" in message
    assert "text_dim: store has 16, asked for 512" in message
    assert "dense_encoder" not in message  # only differing fields are named
    open_collection(tmp_path, meta=make_meta()).close()  # the lock was released on refusal


def test_meta_mismatch_labels_and_schema_version() -> None:
    stored, given = make_meta(), make_meta(schema_version=2, generator="other-sd")
    default = meta_mismatch(stored, given)
    assert default is not None and "schema_version" not in default  # migrations catch up
    assert "generator: store has 'tiny-sd', asked for 'other-sd'" in default
    assert meta_mismatch(stored, make_meta(schema_version=2)) is None
    labelled = meta_mismatch(
        stored,
        given,
        stored_has="A has",
        given_has="B has",
        subject="A differs",
        fix="fix it",
        schema=True,
    )
    assert labelled == (
        "A differs (generator: A has 'tiny-sd', B has 'other-sd'; "
        "schema_version: A has 1, B has 2): fix it"
    )


def test_store_catalog_url_is_the_catalog_a_store_opens(tmp_path: Path) -> None:
    open_collection(tmp_path / "store", meta=make_meta(), create=True).close()
    catalog = SqlCatalog(store_catalog_url(tmp_path / "store"))
    try:
        assert catalog.get_meta() == make_meta()
    finally:
        catalog.close()
    home = Path("~").expanduser()
    assert store_catalog_url("~/s") == f"sqlite:///{home / 's' / CATALOG_FILE}"


def test_second_process_is_refused_with_the_server_hint(tmp_path: Path) -> None:
    collection = open_collection(tmp_path, meta=make_meta(), create=True)
    script = textwrap.dedent(
        f"""
        from fossil.db.open import open_collection
        from fossil.db.edge import EdgeStore
        for attempt in (lambda: open_collection({str(tmp_path)!r}),
                        lambda: EdgeStore({str(tmp_path / "qdrant")!r})):
            try:
                attempt()
            except Exception as error:
                print(type(error).__name__, error)
        """
    )
    try:
        result = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
        )
    finally:
        collection.close()
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2, result.stderr
    for line in lines:
        assert line.startswith("StoreLockedError") and "Qdrant server" in line
    open_collection(tmp_path).close()  # free again once the first process closed it


def test_server_backend_with_catalog_in_root(tmp_path: Path, rng: np.random.Generator) -> None:
    collection = open_collection(tmp_path, qdrant_url=":memory:", meta=make_meta(), create=True)
    try:
        collection.refs.upsert(make_points(5, rng))
        assert collection.refs.count() == 5
        assert (tmp_path / "catalog.sqlite").is_file() and not (tmp_path / "qdrant").exists()
    finally:
        collection.close()
    with pytest.raises(MetaMismatchError, match="visual_dim"):
        open_collection(tmp_path, qdrant_url=":memory:", meta=make_meta(visual_dim=4))


def test_acknowledged_upserts_survive_sigkill(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import os, signal
        import numpy as np
        from fossil.db.open import open_collection
        from tests.db.conftest import make_points
        from tests.fakes import make_meta
        collection = open_collection({str(tmp_path)!r}, meta=make_meta(), create=True)
        collection.catalog.add_corpus("coco", "coco.txt", ["a caption"])
        collection.refs.upsert(make_points(50, np.random.default_rng(0)))
        os.kill(os.getpid(), signal.SIGKILL)  # no flush, no close
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert result.returncode == -9, result.stderr
    collection = open_collection(tmp_path)  # the kernel dropped the lock with the process
    try:
        assert collection.refs.count() == 50
        expected = make_points(50, np.random.default_rng(0))[7]
        assert collection.refs.search(expected.text[None, :], 1)[0][0].id == expected.id
    finally:
        collection.close()


def test_points_beside_a_catalog_without_rows_are_refused_naming_the_repair(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    """Issue 25: a catalog that lost its rows (or its collection_meta) beside a shard of
    points answered every reference as "(not catalogued)"."""
    collection = open_collection(tmp_path, meta=make_meta(), create=True)
    collection.refs.upsert(make_points(3, rng))
    collection.close()
    with pytest.raises(StoreDamagedError, match=r"no captions beside 3 points.*--repair"):
        open_collection(tmp_path)
    engine = create_engine(f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM collection_meta"))
    engine.dispose()
    with pytest.raises(StoreDamagedError, match=r"no collection_meta.*--repair"):
        open_collection(tmp_path, meta=make_meta(), create=True)  # ingest: refused too
    open_collection(tmp_path / "fresh", meta=make_meta(), create=True).close()
    open_collection(tmp_path / "fresh").close()  # no points, no captions: a new store


def test_server_collection_missing_without_create(tmp_path: Path) -> None:
    from fossil.db.catalog import SqlCatalog

    SqlCatalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}").set_meta(make_meta())
    with pytest.raises(FileNotFoundError, match="'fossil_refs' does not exist"):
        open_collection(tmp_path, qdrant_url=":memory:")
