"""Fakes for query tests: a CatalogStore that counts its calls (beside the shared
:class:`tests.fakes.MemoryStore`), a keyword text encoder, and a planted world (concepts →
references → clustered VREs)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from fossil.config import CollectionSettings
from fossil.db.protocols import AddResult, CaptionJob, Collection, CollectionMeta, ReferenceRow
from fossil.records import Hit, ReferencePoint
from tests.fakes import MemoryStore, make_meta

TEXT_DIM = 32
VISUAL_DIM = 48


def unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


class FakeCatalog:
    """Just what queries use: revision, lookup, meta."""

    def __init__(self, meta: CollectionMeta) -> None:
        self.meta = meta
        self.rows: dict[str, dict[str, Any]] = {}
        self._revision = 0
        self.calls = {"lookup": 0, "revision": 0}

    def bump(self) -> None:
        self._revision += 1

    def revision(self) -> int:
        self.calls["revision"] += 1
        return self._revision

    def lookup(self, point_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        self.calls["lookup"] += 1
        return {i: dict(self.rows[i]) for i in point_ids if i in self.rows}

    def get_meta(self) -> CollectionMeta | None:
        return self.meta

    def set_meta(self, meta: CollectionMeta) -> None:
        self.meta = meta

    def get_settings(self) -> CollectionSettings | None:
        return None

    def set_settings(self, settings: CollectionSettings) -> None:
        raise NotImplementedError

    def add_corpus(self, name: str, source: str, captions: Sequence[str]) -> AddResult:
        raise NotImplementedError

    def claim(self, owner: str, batch_size: int, lease_seconds: float) -> list[CaptionJob]:
        raise NotImplementedError

    def complete(self, owner: str, caption_ids: Sequence[int], rows: Sequence[ReferenceRow]):
        raise NotImplementedError

    def fail(self, owner: str, caption_id: int, error: str) -> None:
        raise NotImplementedError

    def release(self, owner: str, caption_ids: Sequence[int]) -> None:
        raise NotImplementedError

    def status_counts(self) -> dict[str, int]:
        return {}


class KeywordEncoder:
    """Text encoder mapping a text to the vector of the (longest) keyword it contains, so the
    7-template concept embedding of a keyword is exactly its vector."""

    def __init__(self, vectors: dict[str, np.ndarray], name: str = "fake-keyword") -> None:
        self.vectors = {k: unit(v) for k, v in vectors.items()}
        self.name = name
        self.dim = len(next(iter(vectors.values())))
        self.calls = 0

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        out = []
        for text in texts:
            keys = [k for k in self.vectors if k in text]
            if not keys:
                raise KeyError(f"no keyword in {text!r}")
            out.append(self.vectors[max(keys, key=len)])
        return np.stack(out)


@dataclass
class PlantedWorld:
    """``concepts[c]`` has ``per_concept`` references whose TREs lie near its text vector
    and whose VREs come from ``centres[c]`` (n_centres, VISUAL_DIM) with random norms."""

    collection: Collection
    store: MemoryStore
    catalog: FakeCatalog
    encoder: KeywordEncoder
    concepts: list[str]
    text: dict[str, np.ndarray]
    centres: dict[str, np.ndarray]


META = make_meta(
    text_encoder="fake-keyword",
    text_dim=TEXT_DIM,
    dense_encoder="fake-dense",
    visual_dim=VISUAL_DIM,
    generator="fake-generator",
)  # KeywordEncoder's name and TEXT_DIM, VISUAL_DIM


def planted_points(
    rng: np.random.Generator,
    concepts: Sequence[str],
    per_concept: int,
    n_centres: int,
    corpus: str = "coco",
) -> tuple[list[ReferencePoint], dict[str, np.ndarray], dict[str, np.ndarray]]:
    text = {c: unit(rng.normal(size=TEXT_DIM)) for c in concepts}
    centres = {c: unit(rng.normal(size=(n_centres, VISUAL_DIM))) for c in concepts}
    points = []
    for c in concepts:
        tre = unit(text[c] + 0.15 * rng.normal(size=(per_concept, TEXT_DIM)))
        labels = np.arange(per_concept) % n_centres
        vre = centres[c][labels] + 0.03 * rng.normal(size=(per_concept, VISUAL_DIM))
        vre *= rng.uniform(0.5, 20.0, size=(per_concept, 1))  # raw VREs: arbitrary norms
        vre = vre.astype(np.float32)
        for i in range(per_concept):
            payload = {"caption_id": 0, "noun": c, "noun_lemma": c, "corpus": corpus}
            points.append(ReferencePoint(f"{c}-{corpus}-{i}", tre[i], vre[i], payload))
    return points, text, centres


@pytest.fixture
def planted_world() -> PlantedWorld:
    """3 concepts × 60 references around 4 visual centres each."""
    rng = np.random.default_rng(0)
    concepts = ["dog", "car", "tree"]
    points, text, centres = planted_points(rng, concepts, per_concept=60, n_centres=4)
    store = MemoryStore()
    store.upsert(points)
    meta = META
    catalog = FakeCatalog(meta)
    for p in points:
        catalog.rows[p.id] = {
            "caption": f"a photo of a {p.payload['noun']} number {p.id}",
            "noun": p.payload["noun"],
            "lemma": p.payload["noun_lemma"],
            "corpus": p.payload["corpus"],
            "thumbnail": f"thumbnails/{p.id}.webp",
        }
    catalog.bump()
    collection = Collection(refs=store, catalog=catalog, meta=meta, root="/store")
    return PlantedWorld(collection, store, catalog, KeywordEncoder(text), concepts, text, centres)


class CountingStore:
    """Wraps a real ReferenceStore and counts its search / fetch_visual calls."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls = {"search": 0, "fetch_visual": 0}

    def search(self, *args: Any, **kwargs: Any) -> list[list[Hit]]:
        self.calls["search"] += 1
        return self.inner.search(*args, **kwargs)

    def fetch_visual(self, ids: Sequence[str]) -> np.ndarray:
        self.calls["fetch_visual"] += 1
        return self.inner.fetch_visual(ids)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def fill_collection(
    collection: Collection,
    corpus: str,
    items: Sequence[tuple[str, str, np.ndarray, np.ndarray]],
) -> list[str]:
    """Catalogue and store references the way ingest does (vectors first, then one SQL
    transaction): ``items`` are (caption, noun, TRE, VRE), one reference per caption.
    Returns the point ids in the order of ``items``."""
    from fossil.records import point_id

    catalog = collection.catalog
    captions = [caption for caption, *_ in items]
    catalog.add_corpus(corpus, f"test:{corpus}", captions)
    jobs = {job.text: job for job in catalog.claim("test", len(items), 60.0)}
    points, rows = [], []
    for caption, noun, tre, vre in items:
        job = jobs[caption]
        pid = point_id(job.text_hash, 0, collection.meta.generation_fingerprint)
        payload = {
            "caption_id": job.id,
            "noun": noun,
            "noun_lemma": noun,
            "corpus": corpus,
            "mask_area": 0.5,
        }
        points.append(ReferencePoint(pid, tre, vre, payload))
        rows.append(ReferenceRow(pid, job.id, noun, noun, 0.5))
    collection.refs.upsert(points)
    catalog.complete("test", [job.id for job in jobs.values()], rows)
    return [p.id for p in points]
