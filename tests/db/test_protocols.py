"""The store protocols cover what their callers use: every store satisfies its protocol, and
export's point copy runs on stores that expose nothing but :class:`ReferenceStore`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fossil.db.catalog import SqlCatalog
from fossil.db.empty import EmptyStore
from fossil.db.export import copy_points
from fossil.db.protocols import CatalogStore, ReferenceStore
from tests.db.conftest import ProtocolOnly, make_points, open_backend


def test_every_store_satisfies_its_protocol(tmp_path: Path) -> None:
    stores = [open_backend("edge", tmp_path), open_backend("server", tmp_path), EmptyStore()]
    try:
        assert all(isinstance(s, ReferenceStore) for s in stores)
    finally:
        for s in stores:
            s.close()
    catalog = SqlCatalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    try:
        assert isinstance(catalog, CatalogStore)
        assert catalog.failures() == []  # `fossil info` reads it through the protocol
    finally:
        catalog.close()
    assert EmptyStore().present(["a", "b"]) == set()


@pytest.mark.parametrize("source_kind, target_kind", [("edge", "server"), ("server", "edge")])
def test_copy_points_needs_nothing_beyond_the_protocol(
    tmp_path: Path, rng: np.random.Generator, source_kind: str, target_kind: str
) -> None:
    source = open_backend(source_kind, tmp_path / "a")
    target = open_backend(target_kind, tmp_path / "b")
    try:
        points = make_points(7, rng)
        source.upsert(points)
        target.upsert(points[:2])  # already there: skipped
        only_source = ProtocolOnly(source, ReferenceStore)
        only_target = ProtocolOnly(target, ReferenceStore)
        with pytest.raises(AttributeError, match="'client' is not in ReferenceStore"):
            _ = only_target.client  # what export reached into before
        assert copy_points(only_source, only_target, batch_size=3) == (5, 2)  # type: ignore[arg-type]
        assert target.count() == 7
        assert {p.id for p in target.iter_points()} == {p.id for p in points}
        assert copy_points(only_source, only_target, batch_size=3) == (0, 7)  # type: ignore[arg-type]
        assert copy_points(only_source, only_target, overwrite=True) == (7, 0)  # type: ignore[arg-type]
    finally:
        source.close()
        target.close()
