"""The VRE row file (fossil.db.rowfile) and how the embedded store reads VREs through it:
exact values, torn tails, stores written without it, payloads without its bookkeeping."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from fossil.db.edge import ROW_KEY, EdgeStore, visual_file
from fossil.db.points import VISUAL, gather_vectors
from fossil.db.rowfile import RowFile
from tests.db.conftest import TEXT_DIM, VISUAL_DIM, make_points

ROW = 3 * 4 + 16  # bytes per row of width 3: the floats and their check


def test_append_gather_and_a_torn_tail(tmp_path: Path) -> None:
    path = tmp_path / "rows.f32"
    rows = RowFile(path, 3)
    first = rows.append(np.arange(6, dtype=np.float32).reshape(2, 3), ["a", "b"])
    second = rows.append(np.full((1, 3), 7.5, np.float32), ["c"])
    assert (list(first), list(second), rows.rows) == ([0, 1], [2], 3)
    vectors, ok = rows.gather(np.array([2, 0, 0]), ["c", "a", "a"])
    np.testing.assert_array_equal(vectors, [[7.5] * 3, [0, 1, 2], [0, 1, 2]])
    assert ok.all()
    vectors, ok = rows.gather(np.array([3, 1, 1]), ["d", "a", "b"])  # outside; another's row
    assert ok.tolist() == [False, False, True]
    with pytest.raises(ValueError, match=r"shape \(n, 3\)"):
        rows.append(np.zeros((1, 4), np.float32), ["x"])
    rows.close()
    rows.close()  # idempotent
    with path.open("ab") as handle:  # a crash in the middle of the next row
        handle.write(b"\x00" * 5)
    reopened = RowFile(path, 3)
    assert reopened.rows == 3 and path.stat().st_size == 64 + 3 * ROW
    assert reopened.uid == rows.uid and len(rows.uid) == 32
    np.testing.assert_array_equal(reopened.gather(np.array([1]), ["b"])[0], [[3, 4, 5]])
    assert reopened.gather(np.array([], np.int64), [])[0].shape == (0, 3)
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
    assert visual_file(store.path).stat().st_size == 64 + 50 * (VISUAL_DIM * 4 + 16)
    assert store.row_fallbacks == 0
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
    with pytest.raises(ValueError, match=r"not a fossil VRE row file.*store check --repair"):
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


def _visual(points: list) -> np.ndarray:
    return np.stack([p.visual for p in points]).astype(np.float32)


def test_a_truncated_row_file_appended_to_never_hands_out_another_points_row(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = _edge(tmp_path)
    old = make_points(40, np.random.default_rng(4))
    store.upsert(old)
    store.close()
    path = visual_file(tmp_path / "qdrant")
    with path.open("r+b") as handle:  # a partial restore: only the first 10 rows survive
        handle.truncate(64 + 10 * (VISUAL_DIM * 4 + 16))
    reopened = EdgeStore(tmp_path / "qdrant")
    new = make_points(20, np.random.default_rng(5), start=100)
    reopened.upsert(new)  # rows 10..29 now hold the new points' VREs
    with caplog.at_level(logging.WARNING, logger="fossil.db.edge"):
        fetched = reopened.fetch_visual([p.id for p in old + new])
    np.testing.assert_array_equal(fetched, _visual(old + new))
    assert reopened.row_fallbacks == 20  # old rows 10..19 named rows now holding new points
    assert "failed their check" in caplog.text and "store check --repair" in caplog.text
    reopened.close()


def test_flipped_bytes_in_a_row_fall_back_to_edge(tmp_path: Path) -> None:
    store = _edge(tmp_path)
    points = make_points(12, np.random.default_rng(6))
    store.upsert(points)
    store.close()
    path = visual_file(tmp_path / "qdrant")
    data = bytearray(path.read_bytes())
    at = 64 + 5 * (VISUAL_DIM * 4 + 16) + 8  # inside row 5's floats
    data[at : at + 4] = bytes(b ^ 0x5A for b in data[at : at + 4])
    path.write_bytes(bytes(data))
    reopened = EdgeStore(tmp_path / "qdrant")
    np.testing.assert_array_equal(reopened.fetch_visual([p.id for p in points]), _visual(points))
    assert reopened.row_fallbacks == 1
    assert reopened.check_rows() == {"ok": 11, "failed": 1, "unnamed": 0}
    assert reopened.rebuild_rows() == 12  # from Edge's copies: every row good again
    assert reopened.check_rows() == {"ok": 12, "failed": 0, "unnamed": 0}
    np.testing.assert_array_equal(reopened.fetch_visual([p.id for p in points]), _visual(points))
    assert reopened.row_fallbacks == 1 and not path.with_name(path.name + ".rebuild").exists()
    reopened.close()


def test_a_row_file_without_checks_is_started_afresh(tmp_path: Path) -> None:
    store = _edge(tmp_path)
    points = make_points(6, np.random.default_rng(7))
    store.upsert(points)
    store.close()
    path = visual_file(tmp_path / "qdrant")
    head = b"fossil-vre-rows\n" + b"0" * 32  # the first format: rows without checks
    path.write_bytes(head.ljust(64, b"\0") + _visual(points).tobytes())
    reopened = EdgeStore(tmp_path / "qdrant")
    assert reopened.check_rows() == {"ok": 0, "failed": 0, "unnamed": 6}
    np.testing.assert_array_equal(reopened.fetch_visual([p.id for p in points]), _visual(points))
    reopened.close()
