"""Embedded reference store on Qdrant Edge (``qdrant-edge-py`` 0.9, Qdrant's in-process
engine; design §4, §7, §10).

One shard per store directory (``DIR/qdrant/``) with the server's segment layout: named
vectors ``text`` (cosine, searched) and ``visual`` (Dot, raw, on disk, never searched).
Searches are exact and batched — Edge scores all the queries of a batch in one pass over the
segments, and needs no index build (building HNSW at 1M references took ~19 min and ~22 GB
here, design §10), so results equal exact numpy cosine order.  One process per store: Edge locks its
WAL, and :class:`~fossil.db.lock.StoreLock` turns that into a message naming the server.
Updates go through Edge's write-ahead log, so an acknowledged upsert survives a crash.

Measured (``benchmarks/store_bench.py``, 2 cores, 768-d text + 1024-d visual): at 1M
references ~3.5k upserts/s, reopen ~3 s, 171 × top-150 exact ~9.3 s; restricted to the
concepts' nearest noun lemmas (``lemmas=``) ~0.8 s at recall@150 0.999 on clustered data;
fetching the ~25k VREs ~1 s (Edge returns vectors as Python lists).  VREs are read from the
row file (:mod:`fossil.db.rowfile`), each checked against its point (~0.1 s per 16k 1024-d
rows); a row that fails falls back to Edge's copy, counted in :attr:`EdgeStore.row_fallbacks`
and logged.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import qdrant_edge as qe

from fossil.db.lock import StoreLock, StoreLockedError, locked_message
from fossil.db.points import (
    INDEXED_KEYS,
    TEXT,
    VISUAL,
    check_dims,
    check_lemmas,
    check_query,
    gather_vectors,
    point_payload,
    point_vectors,
    query_filter,
)
from fossil.db.rowfile import RowFile
from fossil.db.space import OPEN_MARGIN, disk_full, is_disk_full, require_free
from fossil.records import Hit, ReferencePoint

logger = logging.getLogger(__name__)

UPSERT_CHUNK = 256  # points per Edge update operation
RETRIEVE_CHUNK = 2048  # ids per retrieve call
CONFIG_FILE = "edge_config.json"  # written by Edge in the shard directory
ROW_KEY = "vre_row"  # payload key: "<row file id>/<row>" in the VRE row file (fossil.db.rowfile)
# how Edge's errors name a file it may not write: "Permission denied (os error 13)",
# "Read-only file system (os error 30)"
_DENIED = re.compile(
    r"(Permission denied|Read-only file system|Operation not permitted)"
    r"( \(os error \d+\))?"
)


def _config(text_dim: int, visual_dim: int) -> qe.EdgeConfig:
    return qe.EdgeConfig(
        vectors={
            TEXT: qe.EdgeVectorParams(size=text_dim, distance=qe.Distance.Cosine),
            VISUAL: qe.EdgeVectorParams(  # never searched: no graph even if optimised
                size=visual_dim,
                distance=qe.Distance.Dot,
                memory=qe.Memory.Cold,
                hnsw_config=qe.HnswIndexConfig(m=0, ef_construct=100, full_scan_threshold=10_000),
            ),
        },
        payload_memory=qe.Memory.Cold,
    )


def stored_dims(path: Path | str) -> tuple[int, int] | None:
    """``(text_dim, visual_dim)`` of the shard at ``path``, or None when there is none."""
    config = Path(path) / CONFIG_FILE
    if not config.is_file():
        return None
    vectors = json.loads(config.read_text())["vectors"]
    return int(vectors[TEXT]["size"]), int(vectors[VISUAL]["size"])


class EdgeStore:
    """:class:`~fossil.db.protocols.ReferenceStore` on a Qdrant Edge shard at ``path``.

    Opens the shard there, or creates it when ``create`` (then ``text_dim``/``visual_dim`` are
    required).  ``lock``: a held :class:`StoreLock` this store releases on :meth:`close`.
    ``row_file``: False opens the store without its VRE row file (every VRE read from Edge,
    none appended: ``fossil store check`` on a store whose row file is damaged).
    """

    def __init__(
        self,
        path: Path | str,
        *,
        text_dim: int | None = None,
        visual_dim: int | None = None,
        create: bool = False,
        lock: StoreLock | None = None,
        row_file: bool = True,
    ) -> None:
        self.path = Path(path)
        self._lock = lock
        self.row_fallbacks = 0  # VREs whose row failed its check and came from Edge instead
        self._rows: RowFile | None = None
        try:
            self.text_dim, self.visual_dim = self._open(text_dim, visual_dim, create)
            if row_file:
                self._rows = RowFile(visual_file(self.path), self.visual_dim)
            # rows named by the hits of the last search: fetch_visual, which follows it in a
            # query, then needs no payload read (forgotten on any write)
            self._searched_rows: dict[str, int] = {}
        except BaseException:
            if lock is not None:
                lock.release()
            raise

    def _open(self, text_dim: int | None, visual_dim: int | None, create: bool) -> tuple[int, int]:
        # Edge writes while opening, into memory-mapped files: on a full disk, a SIGBUS
        require_free(self.path, OPEN_MARGIN, "open the store")
        dims = stored_dims(self.path)
        if dims is None:
            if not create:
                raise FileNotFoundError(f"no embedded reference store at {self.path}")
            if text_dim is None or visual_dim is None:
                raise ValueError("creating a store needs text_dim and visual_dim")
            check_dims(text_dim, visual_dim)
            self._shard = self._call(
                qe.EdgeShard.create, str(self.path), _config(text_dim, visual_dim)
            )
            self._ensure_indexes()
            logger.info(
                "created embedded store %s (text %d, visual %d)", self.path, text_dim, visual_dim
            )
            return text_dim, visual_dim
        wanted = (text_dim or dims[0], visual_dim or dims[1])
        if wanted != dims:
            raise ValueError(f"store {self.path} holds text/visual dims {dims}; asked for {wanted}")
        self._shard = self._call(qe.EdgeShard.load, str(self.path))
        self._ensure_indexes()
        return dims

    def _ensure_indexes(self) -> None:
        """Payload indexes, also on a shard whose creation was interrupted before them."""
        present = set(self._shard.info().payload_schema)
        for key in INDEXED_KEYS:
            if key not in present:
                self._shard.update(
                    qe.UpdateOperation.create_field_index(key, qe.PayloadSchemaType.Keyword)
                )

    def _call(self, opener: Any, *args: Any) -> Any:
        try:
            return opener(*args)
        except Exception as error:  # Edge raises a bare Exception, its cause in the text
            text = str(error)
            denied = _DENIED.search(text)
            if denied:  # Edge writes to its shard even to read it
                raise PermissionError(
                    f"cannot open the vector store at {self.path} ({denied.group()}): Qdrant "
                    "Edge writes to its shard files even to read them; make the store "
                    "writable, or copy it to a writable place"
                ) from error
            if is_disk_full(error):
                raise disk_full(self.path.parent, "opening the store") from error
            if "WouldBlock" in text or "lock" in text.lower():
                raise StoreLockedError(locked_message(self.path)) from error
            raise

    # -- writes ---------------------------------------------------------------------------
    def upsert(self, points: Sequence[ReferencePoint]) -> None:
        """Points in chunks; each chunk's VREs go to the row file (durably) first."""
        for start in range(0, len(points), UPSERT_CHUNK):
            chunk = points[start : start + UPSERT_CHUNK]
            text, visual = point_vectors(chunk, self.text_dim, self.visual_dim)
            self._searched_rows = {}
            payloads = [point_payload(p) for p in chunk]
            if self._rows is not None:
                rows, uid = self._rows.append(visual, [p.id for p in chunk]), self._rows.uid
                for payload, row in zip(payloads, rows, strict=True):
                    payload[ROW_KEY] = f"{uid}/{row}"
            batch = [
                qe.Point(p.id, {TEXT: t, VISUAL: v}, payload)
                for p, t, v, payload in zip(
                    chunk, text.tolist(), visual.tolist(), payloads, strict=True
                )
            ]
            self._shard.update(qe.UpdateOperation.upsert_points(batch))

    def set_corpus(self, ids: Sequence[str], corpus: str) -> None:
        """Set the ``corpus`` payload of the points ``ids`` (a shared caption passing to
        another corpus when the one that registered it is removed)."""
        for start in range(0, len(ids), RETRIEVE_CHUNK):
            chunk: list[Any] = [str(i) for i in ids[start : start + RETRIEVE_CHUNK]]
            self._shard.update(qe.UpdateOperation.set_payload(chunk, {"corpus": corpus}))

    def delete(self, ids: Sequence[str]) -> None:
        self._searched_rows = {}
        for start in range(0, len(ids), RETRIEVE_CHUNK):
            chunk: list[Any] = [str(i) for i in ids[start : start + RETRIEVE_CHUNK]]
            self._shard.update(qe.UpdateOperation.delete_points(chunk))

    # -- reads ----------------------------------------------------------------------------
    def search(
        self,
        vectors: np.ndarray,
        n: int,
        *,
        exclude_corpora: Sequence[str] = (),
        min_score: float | None = None,
        lemmas: Sequence[Sequence[str]] | None = None,
    ) -> list[list[Hit]]:
        """Exact top-``n`` cosine on ``text`` for every row of ``vectors`` (Q, text_dim) in one
        batched call (Edge scores a batch in one pass); hits in descending score order.

        ``exclude_corpora``: skip references of these corpora; ``min_score``: drop hits below;
        ``lemmas``: per query, search only references whose ``noun_lemma`` is in its list
        (routing by noun: an empty list gives no hits).
        """
        queries = check_query(vectors, n, self.text_dim)
        routes = check_lemmas(lemmas, len(queries))
        requests: dict[int, qe.QueryRequest] = {}
        for row, q in enumerate(queries.tolist()):
            where = query_filter(qe, exclude_corpora, None if routes is None else routes[row])
            if where is False:
                continue
            requests[row] = qe.QueryRequest(
                limit=int(n),
                query=qe.Query.Nearest(q, using=TEXT),
                filter=where,
                score_threshold=min_score,
                with_payload=True,
                with_vector=False,
                params=qe.SearchParams(exact=True),
            )
        out: list[list[Hit]] = [[] for _ in range(len(queries))]
        if routes is None and requests:
            results = self._shard.query_batch(qe.QueryBatchRequest(list(requests.values())))
        else:  # different filters per query: one by one is ~5x faster than a batch plan here
            results = [self._shard.query(request) for request in requests.values()]
        searched: dict[str, int] = {}
        for row, points in zip(requests, results, strict=True):
            for p in points:
                payload = dict(p.payload or {})
                at = self._row(payload.pop(ROW_KEY, None))
                if at is not None:
                    searched[str(p.id)] = at
                out[row].append(Hit(str(p.id), float(p.score), payload))
        self._searched_rows = searched
        return out

    def _row(self, ref: Any) -> int | None:
        """The row of a ``vre_row`` payload value when it names a row of this row file."""
        uid, _, row = str(ref or "").partition("/")
        rows = self._rows
        if rows is not None and uid == rows.uid and row.isdigit() and int(row) < rows.rows:
            return int(row)
        return None

    def fetch_visual(self, ids: Sequence[str]) -> np.ndarray:
        """(len(ids), visual_dim) float32 raw VREs in the order of ``ids`` (repeats allowed):
        from the row file for points that name a valid row (known from the last search's
        hits, else read from their payload) which passes its check, from Edge for the others
        (points of a store written before the row file existed, rows that fail their check:
        counted in :attr:`row_fallbacks` and logged).  Unknown ids raise."""
        keys = [str(i) for i in ids]
        searched = self._searched_rows
        row_of = {k: searched[k] for k in keys if k in searched}
        unread: list[Any] = [k for k in dict.fromkeys(keys) if k not in row_of]
        selector = qe.PayloadSelector.Include([ROW_KEY])
        for start in range(0, len(unread), RETRIEVE_CHUNK):
            chunk = unread[start : start + RETRIEVE_CHUNK]
            for record in self._shard.retrieve(chunk, with_payload=selector, with_vector=False):
                at = self._row((record.payload or {}).get(ROW_KEY))
                if at is not None:
                    row_of[str(record.id)] = at
        rows = np.fromiter((row_of.get(k, -1) for k in keys), np.int64, count=len(keys))
        have = rows >= 0
        out = np.empty((len(keys), self.visual_dim), np.float32)
        if have.any() and self._rows is not None:
            named = [k for k, h in zip(keys, have, strict=True) if h]
            out[have], passed = self._rows.gather(rows[have], named)
            if not passed.all():
                failed = int((~passed).sum())
                self.row_fallbacks += failed
                logger.warning(
                    "%d VREs failed their check in the row file %s and were read from Qdrant "
                    "instead (%d so far): rebuild it with `fossil store check --repair`",
                    failed,
                    self._rows.path,
                    self.row_fallbacks,
                )
                have[np.flatnonzero(have)[~passed]] = False
        if not have.all():
            others = [k for k, h in zip(keys, have, strict=True) if not h]
            out[~have] = gather_vectors(
                others, self.visual_dim, self._vectors(VISUAL), RETRIEVE_CHUNK
            )
        return out

    def fetch_text(self, ids: Sequence[str]) -> np.ndarray:
        """(len(ids), text_dim) float32 TREs in the order of ``ids`` (repeats allowed)."""
        return gather_vectors(ids, self.text_dim, self._vectors(TEXT), RETRIEVE_CHUNK)

    def _vectors(self, name: str) -> Any:
        def retrieve(chunk: list[str]) -> Iterator[tuple[str, Any]]:
            for record in self._shard.retrieve(chunk, with_payload=False, with_vector=[name]):
                yield str(record.id), record.vector[name]

        return retrieve

    def present(self, ids: Sequence[str]) -> set[str]:
        """The ids of ``ids`` that the shard holds."""
        return set(self.payloads(ids))

    def count(self) -> int:
        return int(self._shard.count(qe.CountRequest(exact=True)))

    def iter_points(self, batch_size: int = 1024) -> Iterator[ReferencePoint]:
        """Every point with both vectors and payload (in id order), ``batch_size`` per scroll."""
        if batch_size < 1:
            raise ValueError(f"batch_size ({batch_size}) must be >= 1")
        offset: Any = None
        while True:
            records, offset = self._shard.scroll(
                qe.ScrollRequest(
                    offset=offset, limit=batch_size, with_payload=True, with_vector=True
                )
            )
            for r in records:
                vector = r.vector or {}
                yield ReferencePoint(
                    id=str(r.id),
                    text=np.asarray(vector[TEXT], np.float32),
                    visual=np.asarray(vector[VISUAL], np.float32),
                    payload=_payload(r.payload),
                )
            if offset is None:
                return

    def iter_payloads(self, batch_size: int = 1024) -> Iterator[tuple[str, dict[str, Any]]]:
        """``(id, payload)`` of every point (in id order), without vectors."""
        for records in self._scroll(batch_size, with_vector=False):
            for r in records:
                yield str(r.id), _payload(r.payload)

    def _scroll(self, batch_size: int, with_vector: bool) -> Iterator[list[Any]]:
        """Every point record (with payload, row-file bookkeeping included), in id order."""
        offset: Any = None
        while True:
            records, offset = self._shard.scroll(
                qe.ScrollRequest(
                    offset=offset, limit=batch_size, with_payload=True, with_vector=with_vector
                )
            )
            if records:
                yield records
            if offset is None:
                return

    def payloads(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Payload per id of ``ids`` that the store holds (the others are absent)."""
        out: dict[str, dict[str, Any]] = {}
        keys: list[Any] = [str(i) for i in ids]
        for start in range(0, len(keys), RETRIEVE_CHUNK):
            chunk = keys[start : start + RETRIEVE_CHUNK]
            for record in self._shard.retrieve(chunk, with_payload=True, with_vector=False):
                out[str(record.id)] = _payload(record.payload)
        return out

    def point_ids(self) -> set[str]:
        """The ids of every point."""
        ids: set[str] = set()
        for records in self._scroll(RETRIEVE_CHUNK, with_vector=False):
            ids.update(str(r.id) for r in records)
        return ids

    def check_rows(self, batch_size: int = 1024) -> dict[str, int]:
        """Every point's VRE in the row file against Edge's copy: ``ok`` (its row passes its
        check and equals Edge's vector), ``failed`` (it names a row that does not),
        ``unnamed`` (it names no row of this file: lost, replaced, or older than it)."""
        counts = {"ok": 0, "failed": 0, "unnamed": 0}
        for records in self._scroll(batch_size, with_vector=True):
            named = [(r, self._row((r.payload or {}).get(ROW_KEY))) for r in records]
            counts["unnamed"] += sum(at is None for _, at in named)
            named = [(r, at) for r, at in named if at is not None]
            if not named or self._rows is None:
                continue
            rows = np.array([at for _, at in named], np.int64)
            vectors, passed = self._rows.gather(rows, [str(r.id) for r, _ in named])
            truth = np.array([r.vector[VISUAL] for r, _ in named], np.float32)
            good = passed & (vectors == truth).all(axis=1)
            counts["ok"] += int(good.sum())
            counts["failed"] += int((~good).sum())
        return counts

    def rebuild_rows(self, batch_size: int = UPSERT_CHUNK) -> int:
        """Write a new row file from Edge's vectors and point every point at its new row;
        returns the rows written.  The new file replaces the old one only when complete;
        interrupted, every point reads from Edge (the ids differ) until it is run again."""
        target = visual_file(self.path)
        partial = target.with_name(f"{target.name}.rebuild")
        partial.unlink(missing_ok=True)
        fresh = RowFile(partial, self.visual_dim)
        written = 0
        try:
            for records in self._scroll(batch_size, with_vector=True):
                ids = [str(r.id) for r in records]
                visual = np.array([r.vector[VISUAL] for r in records], np.float32)
                rows = fresh.append(visual, ids)
                batch = [
                    qe.Point(r.id, r.vector, {**(r.payload or {}), ROW_KEY: f"{fresh.uid}/{row}"})
                    for r, row in zip(records, rows, strict=True)
                ]
                self._shard.update(qe.UpdateOperation.upsert_points(batch))
                written += len(batch)
            self._shard.flush()
        finally:
            fresh.close()
        if self._rows is not None:
            self._rows.close()
        os.replace(partial, target)
        self._rows = RowFile(target, self.visual_dim)
        self._searched_rows = {}
        logger.info("rebuilt the VRE row file %s from Qdrant: %d rows", target, written)
        return written

    def flush(self) -> None:
        self._shard.flush()

    def close(self) -> None:
        shard = getattr(self, "_shard", None)
        if shard is not None:
            shard.flush()
            shard.close()
            self._shard = None
        if self._rows is not None:
            self._rows.close()  # idempotent
        if self._lock is not None:
            self._lock.release()
            self._lock = None


def visual_file(path: Path | str) -> Path:
    """The VRE row file of the shard at ``path``: beside it, ``<shard>-visual.f32``."""
    path = Path(path)
    return path.with_name(f"{path.name}-visual.f32")


def _payload(payload: Any) -> dict[str, Any]:
    """A point's payload as fossil records it (the row-file bookkeeping left out)."""
    out = dict(payload or {})
    out.pop(ROW_KEY, None)
    return out
