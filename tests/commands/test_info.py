"""``fossil info``'s description of an open collection (:func:`fossil.pipeline.info.describe`,
also ``fossil serve``'s /info) reads its stores through their protocols only (no
``SqlCatalog`` assumed), on an embedded and on a server store."""

from __future__ import annotations

from pathlib import Path

import pytest

from fossil.db.open import open_collection
from fossil.db.protocols import CatalogStore, Collection, ReferenceStore
from fossil.pipeline.info import describe
from tests.db.conftest import ProtocolOnly
from tests.fakes import make_meta


@pytest.mark.parametrize("qdrant_url", [None, ":memory:"])
def test_describe_needs_nothing_beyond_the_protocols(
    tmp_path: Path, qdrant_url: str | None
) -> None:
    opened = open_collection(tmp_path, qdrant_url=qdrant_url, meta=make_meta(), create=True)
    try:
        opened.catalog.add_corpus("coco", "coco.txt", ["a dog", "a cat", "a red bus"])
        jobs = opened.catalog.claim("test", 3, 60.0)
        opened.catalog.fail("test", jobs[1].id, "boom")
        protocol_only = Collection(
            refs=ProtocolOnly(opened.refs, ReferenceStore),  # type: ignore[arg-type]
            catalog=ProtocolOnly(opened.catalog, CatalogStore),  # type: ignore[arg-type]
            meta=opened.meta,
            root=opened.root,
        )
        info = describe(protocol_only, None, top=5, qdrant_url=qdrant_url)
    finally:
        opened.close()
    assert [(f["id"], f["text"], f["error"]) for f in info["failures"]] == [
        (jobs[1].id, jobs[1].text, "boom")
    ]
    assert info["captions"]["failed"] == 1 and info["captions"]["leased"] == 2
    assert info["references"] == info["catalog_references"] == 0
    assert info["meta"] == make_meta().as_dict() and info["corpora"][0]["name"] == "coco"
