"""Fixtures for the store tests: one suite parametrised over every ReferenceStore backend,
and the PostgreSQL test server (``FOSSIL_TEST_POSTGRES_URL``) for the catalog."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import create_engine, text

from fossil.db import schema
from fossil.db.catalog import SqlCatalog
from fossil.db.protocols import ReferenceStore
from fossil.records import ReferencePoint, point_id

TEXT_DIM = 16  # make_meta's
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


class ProtocolOnly:
    """Forwards to ``inner`` only the methods ``protocol`` declares: a caller that needs
    anything else of the store fails with AttributeError naming it."""

    def __init__(self, inner: Any, protocol: type) -> None:
        self._inner, self._protocol = inner, protocol
        self._names = {n for n, v in vars(protocol).items() if callable(v) and n[0] != "_"}

    def __getattr__(self, name: str) -> Any:
        if name not in self._names:
            raise AttributeError(f"{name!r} is not in {self._protocol.__name__}")
        return getattr(self._inner, name)


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


POSTGRES_ENV = "FOSSIL_TEST_POSTGRES_URL"
POSTGRES_EXAMPLE = "postgresql+psycopg2://postgres@/fossil_test?host=/tmp&port=5433"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1")


def _postgres_unavailable(reason: str) -> None:
    """Skip, except in CI (``CI=true``), where a missing server is a failure: .ci/run starts
    one, and CI must not pass by silently skipping the PostgreSQL tests."""
    if in_ci():
        pytest.fail(f"{reason}; CI=true, so the PostgreSQL tests must run", pytrace=False)
    pytest.skip(f"{reason} (set {POSTGRES_ENV}, e.g. {POSTGRES_EXAMPLE})")


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The test server's SQLAlchemy URL.  Its catalog tables are dropped before each test
    that uses :func:`postgres_url`: point it at a throwaway database."""
    url = os.environ.get(POSTGRES_ENV, "").strip()
    if not url:
        _postgres_unavailable(f"{POSTGRES_ENV} is not set: no PostgreSQL server to test on")
    try:
        engine = create_engine(url)
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        finally:
            engine.dispose()
    except Exception as exc:  # noqa: BLE001  (missing driver, refused connection, bad URL...)
        _postgres_unavailable(
            f"PostgreSQL at {POSTGRES_ENV}={url!r} is unreachable: {type(exc).__name__}: "
            f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        )
    return url


def reset_postgres(url: str) -> None:
    """Drop every catalog table (and what migrations added to them)."""
    engine = create_engine(url)
    try:
        schema.metadata.drop_all(engine)
    finally:
        engine.dispose()


@pytest.fixture
def postgres_url(postgres_server: str) -> str:
    """The test server's URL with an empty database (no catalog tables)."""
    reset_postgres(postgres_server)
    return postgres_server


# -- catalog fixtures (test_catalog.py, test_corpus_lifecycle.py) ---------------------------
class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def catalog_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new, empty catalog's URL on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def catalog(catalog_url: str, clock: Clock) -> Iterator[SqlCatalog]:
    opened = SqlCatalog(catalog_url, clock=clock, max_attempts=3)
    yield opened
    opened.close()
