"""The VRE row file (fossil.db.rowfile) and how the embedded store reads VREs through it:
exact values, torn tails, stores written without it, payloads without its bookkeeping."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fossil.db.edge import ROW_KEY, EdgeStore, visual_file
from fossil.db.points import VISUAL, gather_vectors
from fossil.db.rowfile import RowFile
from tests.db.conftest import TEXT_DIM, VISUAL_DIM, make_points


def test_append_gather_and_a_torn_tail(tmp_path: Path) -> None:
    path = tmp_path / "rows.f32"
    rows = RowFile(path, 3)
    first = rows.append(np.arange(6, dtype=np.float32).reshape(2, 3))
    second = rows.append(np.full((1, 3), 7.5, np.float32))
    assert (list(first), list(second), rows.rows) == ([0, 1], [2], 3)
    np.testing.assert_array_equal(
        rows.gather(np.array([2, 0, 0])), [[7.5] * 3, [0, 1, 2], [0, 1, 2]]
    )
    with pytest.raises(IndexError):
        rows.gather(np.array([3]))
    with pytest.raises(ValueError, match=r"shape \(n, 3\)"):
        rows.append(np.zeros((1, 4), np.float32))
    rows.close()
    rows.close()  # idempotent
    with path.open("ab") as handle:  # a crash in the middle of the next row
        handle.write(b"\x00" * 5)
    reopened = RowFile(path, 3)
    assert reopened.rows == 3 and path.stat().st_size == 64 + 3 * 3 * 4
    assert reopened.uid == rows.uid and len(rows.uid) == 32
    np.testing.assert_array_equal(reopened.gather(np.array([1])), [[3, 4, 5]])
    assert reopened.gather(np.array([], np.int64)).shape == (0, 3)
    reopened.close()


def _edge(tmp_path: Path) -> EdgeStore:
    return EdgeStore(tmp_path / "qdrant", text_dim=TEXT_DIM, visual_dim=VISUAL_DIM, create=True)


def test_embedded_store_reads_vres_from_the_row_file_exactly(tmp_path: Path) -> None:
    store = _edge(tmp_path)
    points = make_points(40, np.random.default_rng(0))
    store.upsert(points)
    store.upsert(points[:10])  # a rerun after a crash: rows appended again, still exact
    ids = [p.id for p in points][::-1] + [points[3].id]
    from_edge = gather_vectors(ids, VISUAL_DIM, store._vectors(VISUAL), 7)
    fetched = store.fetch_visual(ids)
    np.testing.assert_array_equal(fetched, from_edge)
    np.testing.assert_array_equal(fetched[0], points[-1].visual)
    assert visual_file(store.path).stat().st_size == 64 + 50 * VISUAL_DIM * 4
    hits = store.search(np.stack([points[0].text]), 5)[0]
    assert all(ROW_KEY not in h.payload for h in hits)
    assert all(ROW_KEY not in p.payload for p in store.iter_points())
    with pytest.raises(KeyError):
        store.fetch_visual(["00000000-0000-0000-0000-000000000000"])
    store.close()


def test_a_store_without_its_row_file_falls_back_to_edge(tmp_path: Path) -> None:
    store = _edge(tmp_path)
    points = make_points(12, np.random.default_rng(1))
    store.upsert(points)
    expected = store.fetch_visual([p.id for p in points])
    store.close()
    visual_file(tmp_path / "qdrant").unlink()  # a store written before the row file existed
    reopened = EdgeStore(tmp_path / "qdrant")
    np.testing.assert_array_equal(reopened.fetch_visual([p.id for p in points]), expected)
    more = make_points(3, np.random.default_rng(2), start=100)
    reopened.upsert(more)  # new points get rows; old ones keep coming from Edge
    mixed = [points[0].id, more[0].id]
    np.testing.assert_array_equal(
        reopened.fetch_visual(mixed), np.stack([points[0].visual, more[0].visual])
    )
    reopened.close()


def test_a_foreign_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "rows.f32"
    path.write_bytes(b"x" * 100)
    with pytest.raises(ValueError, match="not a fossil VRE row file"):
        RowFile(path, 3)
    path.write_bytes(b"fossil")  # a header torn while the file was created: started afresh
    assert RowFile(path, 3).rows == 0 and path.stat().st_size == 64


def test_rows_of_the_last_search_need_no_payload_read(tmp_path: Path) -> None:
    store = _edge(tmp_path)
    points = make_points(30, np.random.default_rng(3))
    store.upsert(points)
    visual = {p.id: p.visual for p in points}
    real, reads = store._shard, []

    class Spy:
        def __getattr__(self, name: str) -> object:
            return getattr(real, name)

        def retrieve(self, ids: list, **kwargs: object) -> object:
            reads.append(list(ids))
            return real.retrieve(ids, **kwargs)

    store._shard = Spy()
    try:
        hits = [h.id for h in store.search(np.stack([points[0].text]), 6)[0]]
        np.testing.assert_array_equal(store.fetch_visual(hits), [visual[i] for i in hits])
        assert reads == []
        other = next(p.id for p in points if p.id not in hits)
        np.testing.assert_array_equal(store.fetch_visual([hits[0], other]), [visual[hits[0]],
                                      visual[other]])  # fmt: skip
        assert reads == [[other]]
        store.upsert(points[:1])  # any write forgets what the last search saw
        store.fetch_visual(hits[:2])
        assert reads[-1] == hits[:2]
    finally:
        store._shard = real
        store.close()
