"""``catalogue_payloads``: catalog rows rebuilt from points' payloads (issue 25) — into an
empty catalog or beside the rows it holds, with the caption key a labelled reference's
payload carries (``caption_hash``, not the hash of its text)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from fossil.db.catalog import SqlCatalog, caption_hash
from fossil.db.catalog_repair import Catalogued, caption_states, catalogue_payloads
from fossil.db.protocols import ReferenceRow
from fossil.db.schema import caption, caption_corpus, corpus
from tests.fakes import make_meta


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[SqlCatalog]:
    made = SqlCatalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    yield made
    made.close()


def payload(caption_id: int, text: str, corpus_name: str, noun: str, **extra: Any) -> dict:
    return {
        "caption_id": caption_id,
        "caption": text,
        "corpus": corpus_name,
        "noun": noun,
        "noun_lemma": noun,
        "mask_area": 0.25,
        **extra,
    }


def captions(catalog: SqlCatalog) -> dict[str, tuple[int, str, str]]:
    """text_hash → (id, text, corpus name) of every caption."""
    stmt = select(caption.c.text_hash, caption.c.id, caption.c.text, corpus.c.name).join(corpus)
    with catalog.engine.connect() as conn:
        return {h: (i, t, n) for h, i, t, n in conn.execute(stmt)}


def holders(catalog: SqlCatalog) -> set[tuple[int, str]]:
    stmt = select(caption_corpus.c.caption_id, corpus.c.name).join(corpus)
    with catalog.engine.connect() as conn:
        return {(i, n) for i, n in conn.execute(stmt)}


LABELLED = payload(
    7,
    "a photo of a dog",
    "labelled:voc",
    "dog",
    caption_hash="voc:2007_000123#dog",  # a key of the photo item, not sha256 of the text
    source="labelled",
)


def test_an_empty_catalog_gets_meta_corpora_captions_and_references(catalog) -> None:
    points = [
        ("p1", payload(3, "A  dog on grass", "coco", "dog")),
        ("p2", payload(3, "A  dog on grass", "coco", "grass")),
        ("p3", LABELLED),
        ("p4", {"caption_id": 9, "noun": "cat", "noun_lemma": "cat", "corpus": "coco"}),
    ]
    counts = catalogue_payloads(catalog, points, {"p1": "thumbnails/p1/p1.webp"}, meta=make_meta())
    # p4: no caption text, and no caption 9 in the catalog
    assert counts == Catalogued(corpora=2, captions=2, references=3, uncatalogued=("p4",))
    assert catalog.get_meta() == make_meta()
    text = "A dog on grass"
    assert captions(catalog) == {
        caption_hash(text): (3, text, "coco"),
        "voc:2007_000123#dog": (7, "a photo of a dog", "labelled:voc"),
    }
    assert holders(catalog) == {(3, "coco"), (7, "labelled:voc")}
    found = catalog.lookup(["p1", "p3"])
    assert found["p1"]["thumbnail"] == "thumbnails/p1/p1.webp" and found["p1"]["noun"] == "dog"
    assert found["p3"]["corpus"] == "labelled:voc" and found["p3"]["caption_id"] == 7


def test_points_join_the_rows_the_catalog_holds(catalog) -> None:
    """An older catalog: known captions (matched by their key) and corpora are reused, a
    caption id taken by another caption gets a new id, references already there are kept."""
    catalog.set_meta(make_meta())
    catalog.add_corpus("coco", "coco.txt", ["A dog on grass", "A cat on a mat"])
    jobs = catalog.claim("w", 10, 60.0)
    ids = {job.text: job.id for job in jobs}
    catalog.complete(
        "w", [j.id for j in jobs], [ReferenceRow("p1", ids["A dog on grass"], "dog", "dog", 0.2)]
    )
    taken = ids["A cat on a mat"]
    points = [
        ("p1", payload(ids["A dog on grass"], "A dog on grass", "coco", "dog")),
        ("p2", payload(99, "A dog on grass", "web", "grass")),  # known text, other id
        ("p2b", payload(taken + 1, "A boat on a lake", "web", "boat")),  # a free id: kept
        ("p3", payload(taken, "A car on a road", "web", "car")),  # id taken by another text
        ("p4", LABELLED),
        ("p5", {"caption_id": taken, "noun": "mat", "noun_lemma": "mat", "corpus": "coco"}),
    ]
    counts = catalogue_payloads(catalog, points, {})
    assert counts == Catalogued(corpora=2, captions=3, references=5, uncatalogued=())
    found = catalog.lookup(["p1", "p2", "p2b", "p3", "p4", "p5"])
    assert found["p2b"]["caption_id"] == taken + 1
    assert found["p2"]["caption_id"] == ids["A dog on grass"]  # by its key, not its id
    assert found["p3"]["caption"] == "A car on a road" and found["p3"]["caption_id"] != taken
    assert found["p5"]["caption_id"] == taken  # no text: the payload's id, which is known
    assert (ids["A dog on grass"], "web") in holders(catalog)
    assert captions(catalog)["voc:2007_000123#dog"][1:] == ("a photo of a dog", "labelled:voc")
    assert catalogue_payloads(catalog, points, {}).references == 0  # nothing twice


class _Payloads:
    """What ``caption_states`` reads of a vector store: payloads by point id."""

    def __init__(self, payloads: dict[str, dict]) -> None:
        self._payloads = payloads

    def payloads(self, ids: list[str]) -> dict[str, dict]:
        return {i: self._payloads[i] for i in ids if i in self._payloads}


def test_a_caption_of_the_payloads_id_but_another_text_is_not_its_caption(catalog) -> None:
    """An older catalog may give a caption id to another caption (ids are reused after a
    corpus removal): such a point is not "in progress" of that caption, it is uncatalogued."""
    catalog.add_corpus("coco", "coco.txt", ["A dog on grass"])
    (job,) = catalog.claim("w", 1, 60.0)  # leased: its points would be in progress
    refs = _Payloads(
        {
            "own": payload(job.id, "A dog on grass", "coco", "dog"),
            "other": payload(job.id, "A car on a road", "web", "car"),
            "old": {"caption_id": job.id, "noun_lemma": "grass", "corpus": "coco"},
            "lost": payload(42, "A cat", "coco", "cat"),
        }
    )
    states = caption_states(catalog, refs, ["own", "other", "old", "lost"])  # type: ignore[arg-type]
    assert states == {"own": "leased", "old": "leased"}
