"""``fossil store export``: an embedded store into a server collection (qdrant-client's
in-process ``:memory:`` mode stands in for the server) and its catalog into another URL."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from qdrant_client import QdrantClient
from sqlalchemy import make_url

from fossil.cli import main
from fossil.db.catalog import SqlCatalog
from fossil.db.export import META_KEY, export_store
from fossil.db.open import open_collection
from fossil.db.points import TEXT, VISUAL
from fossil.db.protocols import ReferenceRow
from fossil.db.server import ServerStore
from fossil.records import ReferencePoint
from tests.db.conftest import TEXT_DIM, VISUAL_DIM, make_points
from tests.fakes import make_meta

DONE = 7  # captions with a reference; one more stays pending


def build_store(root: Path) -> list[ReferencePoint]:
    """An embedded store: DONE captions done with one reference each, one caption pending."""
    collection = open_collection(root, meta=make_meta(), create=True)
    try:
        captions = [f"a dog number {i}" for i in range(DONE)] + ["a cat still pending"]
        collection.catalog.add_corpus("coco", "coco.txt", captions)
        jobs = collection.catalog.claim("test", DONE, 60.0)
        points = [
            ReferencePoint(
                id=p.id,
                text=p.text,
                visual=p.visual,
                payload={**p.payload, "caption_id": job.id, "corpus": job.corpus},
            )
            for p, job in zip(make_points(DONE, np.random.default_rng(3)), jobs, strict=True)
        ]
        collection.refs.upsert(points)
        rows = [
            ReferenceRow(p.id, job.id, p.payload["noun"], p.payload["noun_lemma"], 0.25)
            for p, job in zip(points, jobs, strict=True)
        ]
        collection.catalog.complete("test", [j.id for j in jobs], rows)
    finally:
        collection.close()
    return points


def target_points(client: QdrantClient) -> dict[str, ReferencePoint]:
    store = ServerStore(client, "fossil_refs", text_dim=TEXT_DIM, visual_dim=VISUAL_DIM)
    return {p.id: p for p in store.iter_points(3)}


def test_export_preserves_points_and_catalog_and_reruns_as_a_no_op(tmp_path: Path) -> None:
    points = build_store(tmp_path / "store")
    client = QdrantClient(":memory:")
    target_catalog = f"sqlite:///{tmp_path / 'shared.sqlite'}"
    result = export_store(tmp_path / "store", client, catalog_url=target_catalog, batch_size=3)
    assert (result.points_copied, result.points_skipped, result.target_points) == (DONE, 0, DONE)
    assert result.catalog_copied and (result.captions_added, result.references_added) == (8, 7)

    copied = target_points(client)
    assert set(copied) == {p.id for p in points}
    for point in points:
        twin = copied[point.id]
        assert twin.payload == point.payload
        assert np.array_equal(twin.visual, point.visual)  # Dot: stored raw, bit for bit
        # cosine: both engines store the unit vector; renormalising may move the last bit
        np.testing.assert_allclose(twin.text, point.text, rtol=0, atol=1e-6)

    info = client.get_collection("fossil_refs").config
    vectors = info.params.vectors
    assert vectors[TEXT].quantization_config is not None  # the server schema (design §7)
    assert vectors[VISUAL].on_disk and vectors[VISUAL].hnsw_config.m == 0
    assert info.metadata[META_KEY] == make_meta().as_dict()

    catalog = SqlCatalog(target_catalog)
    source = SqlCatalog(f"sqlite:///{tmp_path / 'store' / 'catalog.sqlite'}")
    try:
        assert catalog.get_meta() == make_meta()
        assert catalog.status_counts() == {"pending": 1, "leased": 0, "done": 7, "failed": 0}
        ids = [p.id for p in points]
        assert catalog.lookup(ids) == source.lookup(ids)
        assert [c["name"] for c in catalog.corpora()] == ["coco"]
        revision = catalog.revision()
        assert revision > 0
    finally:
        catalog.close()
        source.close()

    again = export_store(tmp_path / "store", client, catalog_url=target_catalog)
    assert (again.points_copied, again.points_skipped, again.target_points) == (0, DONE, DONE)
    assert (again.corpora_added, again.captions_added, again.references_added) == (0, 0, 0)
    catalog = SqlCatalog(target_catalog)
    try:
        assert catalog.reference_count() == DONE and catalog.revision() == revision
    finally:
        catalog.close()


def test_interrupted_export_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    build_store(tmp_path / "store")
    client = QdrantClient(":memory:")
    real = ServerStore.upsert
    calls = []

    def upsert_then_die(self: ServerStore, batch: list) -> None:
        calls.append(len(batch))
        if len(calls) == 2:
            raise KeyboardInterrupt
        real(self, batch)

    monkeypatch.setattr(ServerStore, "upsert", upsert_then_die)
    with pytest.raises(KeyboardInterrupt):
        export_store(tmp_path / "store", client, batch_size=3)
    monkeypatch.setattr(ServerStore, "upsert", real)
    assert client.count("fossil_refs").count == 3
    result = export_store(tmp_path / "store", client, batch_size=3)
    assert (result.points_copied, result.points_skipped, result.target_points) == (4, 3, DONE)
    assert not result.catalog_copied and result.catalog.endswith("store/catalog.sqlite")
    overwritten = export_store(tmp_path / "store", client, batch_size=3, overwrite=True)
    assert (overwritten.points_copied, overwritten.target_points) == (DONE, DONE)


def test_a_target_built_otherwise_is_refused_naming_both_sides(tmp_path: Path) -> None:
    build_store(tmp_path / "store")
    client = QdrantClient(":memory:")
    export_store(tmp_path / "store", client)
    other = open_collection(
        tmp_path / "other", meta=make_meta(generation_fingerprint="fp2"), create=True
    )
    other.close()
    with pytest.raises(ValueError) as refused:
        export_store(tmp_path / "other", client)
    message = str(refused.value)
    assert "collection 'fossil_refs'" in message and str(tmp_path / "other") in message
    assert "generation_fingerprint:" in message and "'fp'" in message and "'fp2'" in message

    catalog_url = f"sqlite:///{tmp_path / 'shared.sqlite'}"
    catalog = SqlCatalog(catalog_url)
    catalog.set_meta(make_meta(text_encoder="another-text"))
    catalog.close()
    fresh = QdrantClient(":memory:")
    with pytest.raises(ValueError, match=r"text_encoder: the target catalog .* 'another-text'"):
        export_store(tmp_path / "store", fresh, catalog_url=catalog_url)
    assert not fresh.collection_exists("fossil_refs")  # refused before anything was written


def test_a_target_with_other_dims_is_refused(tmp_path: Path) -> None:
    build_store(tmp_path / "store")
    client = QdrantClient(":memory:")
    ServerStore(client, "fossil_refs", text_dim=TEXT_DIM + 1, visual_dim=VISUAL_DIM)
    with pytest.raises(ValueError, match="holds vectors"):
        export_store(tmp_path / "store", client)


def test_cli_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    build_store(tmp_path / "store")
    target = f"sqlite:///{tmp_path / 'shared.sqlite'}"
    argv = ["store", "export", "--store", str(tmp_path / "store"), "--to", ":memory:"]
    code = main([*argv, "--catalog", target, "--no-progress", "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0 and summary["points_copied"] == summary["target_points"] == DONE
    assert summary["catalog_copied"] and summary["references_added"] == DONE
    assert main([*argv, "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"{DONE} copied" in out and "catalog stays in" in out and "--qdrant-url" in out
    code = main(["store", "export", "--store", str(tmp_path / "none"), "--to", ":memory:"])
    assert code == 1 and "no fossil store at" in capsys.readouterr().err
    assert main([*argv, "--batch-size", "0"]) == 1
    assert "--batch-size (0) must be >= 1" in capsys.readouterr().err


@pytest.mark.integration
def test_export_catalog_to_postgresql(tmp_path: Path, postgres_url: str) -> None:
    """Ids kept in PostgreSQL, and its serial sequences moved past them: a corpus registered
    after the export gets fresh ids."""
    points = build_store(tmp_path / "store")
    client = QdrantClient(":memory:")
    result = export_store(tmp_path / "store", client, catalog_url=postgres_url)
    password = make_url(postgres_url).password
    assert result.references_added == DONE
    assert password is None or str(password) not in result.catalog  # hidden in the summary
    catalog = SqlCatalog(postgres_url)
    try:
        assert catalog.status_counts() == {"pending": 1, "leased": 0, "done": 7, "failed": 0}
        assert set(catalog.lookup([p.id for p in points])) == {p.id for p in points}
        added = catalog.add_corpus("later", "later.txt", ["a brand new caption"])
        assert added.added == 1 and [c["name"] for c in catalog.corpora()] == ["coco", "later"]
        jobs = catalog.claim("w", 10, 60.0)
        assert sorted(j.id for j in jobs)[-1] == DONE + 2  # after the copied ids 1..DONE+1
    finally:
        catalog.close()
    again = export_store(tmp_path / "store", client, catalog_url=postgres_url)
    assert (again.captions_added, again.references_added) == (0, 0)
