"""Fixtures for the store tests: one suite parametrised over every ReferenceStore backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from fossil.db.protocols import CollectionMeta, ReferenceStore
from fossil.records import ReferencePoint, point_id

TEXT_DIM = 16
VISUAL_DIM = 8


def make_points(
    count: int, rng: np.random.Generator, corpora: tuple[str, ...] = ("coco", "web"), start: int = 0
) -> list[ReferencePoint]:
    """``count`` points with clustered unit text vectors and raw (large, signed) visual ones."""
    centres = rng.normal(size=(4, TEXT_DIM))
    points = []
    for i in range(start, start + count):
        text = centres[i % 4] + 0.5 * rng.normal(size=TEXT_DIM)
        points.append(
            ReferencePoint(
                id=point_id(f"h{i}", 0, "fp"),
                text=(text / np.linalg.norm(text)).astype(np.float32),
                visual=(rng.normal(size=VISUAL_DIM) * 7.0).astype(np.float32),
                payload={
                    "caption_id": i,
                    "noun": f"noun{i % 4}",
                    "noun_lemma": f"lemma{i % 4}",
                    "corpus": corpora[i % len(corpora)],
                    "mask_area": 0.25,
                },
            )
        )
    return points


def make_meta(**changes: object) -> CollectionMeta:
    values: dict = dict(
        text_encoder="tiny-text",
        text_dim=TEXT_DIM,
        dense_encoder="tiny-dino",
        visual_dim=VISUAL_DIM,
        generator="tiny-sd",
        generation_fingerprint="fp",
        schema_version=1,
    )
    values.update(changes)
    return CollectionMeta(**values)


def open_backend(kind: str, tmp_path: Path) -> ReferenceStore:
    if kind == "edge":
        from fossil.db.edge import EdgeStore

        return EdgeStore(tmp_path / "qdrant", text_dim=TEXT_DIM, visual_dim=VISUAL_DIM, create=True)
    from fossil.db.server import ServerStore

    return ServerStore.connect(":memory:", "refs", text_dim=TEXT_DIM, visual_dim=VISUAL_DIM)


@pytest.fixture(params=["edge", "server"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ReferenceStore]:
    backend = open_backend(request.param, tmp_path)
    yield backend
    backend.close()


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
