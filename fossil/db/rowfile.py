"""An append-only file of float32 rows, each checked on read: the embedded store's fast copy of
the Visual Reference Embeddings.

Qdrant Edge hands vectors to Python as lists of floats: fetching the 16k VREs of a
171-concept query (N=95) costs ~1 s of float-object conversion alone.  So
:class:`~fossil.db.edge.EdgeStore` also appends every upserted VRE here and records its row in
the point's payload (``vre_row``); reads gather the rows from a memory map in one numpy
indexing operation.  Edge keeps its own copy of every vector (the truth, used for export and
whenever a row cannot be used), so this file is an accelerator, never the only copy: a lost
or damaged file is rebuilt from Edge by ``fossil store check --repair``.

Every row carries a 16-byte check (:func:`row_checks`): an 8-byte BLAKE2b digest of its
point id, and an 8-byte position-weighted sum of its 32-bit words (odd weights, modulo 2^64:
a change to any one word always changes it; reordered words almost surely do).
:meth:`RowFile.gather` recomputes both, vectorised, and reports each row that does not belong
to the point that asked for it — flipped bytes, or a file truncated (a partial restore) and
appended to since, so that an older point's row number now holds a newer point's row — and
the store then reads that VRE from Edge instead.

Crash safety: rows are written and fsynced before the points that name them are upserted;
a torn last row (a crash mid-write) is cut off on open — no point names it.  Rows of deleted
or re-upserted points stay behind as unused bytes (a rerun after a crash re-upserts a batch:
its rows are appended again).

The file starts with a 64-byte header: :data:`MAGIC`, a random id (:attr:`RowFile.uid`),
zero padding.  Points name their row together with that id, so a replaced file never hands a
point another point's row.  A file of the first format (:data:`MAGIC_V1`: rows without
checks) cannot be verified: it is started afresh on open (its points read from Edge until
``fossil store check --repair`` rebuilds it).
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np

logger = logging.getLogger(__name__)

ITEM = np.dtype("<f4")
MAGIC = b"fossil-vre-row2\n"  # rows with a check (this format)
MAGIC_V1 = b"fossil-vre-rows\n"  # rows without a check: started afresh on open
HEADER = 64  # bytes: MAGIC, the file's id (32 hex digits), zero padding
CHECK = 16  # bytes per row: point id digest (8) + weighted word sum (8)
_CHUNK = 2048  # rows summed at a time (a uint64 copy of each word)
REPAIR_HINT = "it only copies vectors Qdrant holds: rebuild it with `fossil store check --repair`"


class RowFileError(ValueError):
    """A file at the row file's path that is not a fossil VRE row file."""


def _id_tags(ids: Sequence[str]) -> np.ndarray:
    """(n,) uint64: an 8-byte BLAKE2b digest of each point id."""
    digests = b"".join(hashlib.blake2b(str(i).encode("utf-8"), digest_size=8).digest() for i in ids)
    return np.frombuffer(digests, "<u8")


def _word_sums(vectors: np.ndarray) -> np.ndarray:
    """(n,) uint64: per row, the sum of its 32-bit words times odd, position-dependent
    weights, modulo 2^64."""
    words = np.ascontiguousarray(vectors, dtype=ITEM).view("<u4")
    weights = np.arange(words.shape[1], dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    weights *= np.uint64(0x9E3779B97F4A7C15)  # wraps modulo 2^64: stays odd
    out = np.empty(len(words), np.uint64)
    for start in range(0, len(words), _CHUNK):
        part = words[start : start + _CHUNK].astype(np.uint64)
        out[start : start + _CHUNK] = (part * weights).sum(axis=1, dtype=np.uint64)
    return out


def row_checks(vectors: np.ndarray, ids: Sequence[str]) -> np.ndarray:
    """(n, 2) uint64 checks of ``vectors`` (n, dim), the VREs of points ``ids``."""
    return np.stack([_id_tags(ids), _word_sums(vectors)], axis=1)


def probe(path: str | os.PathLike[str]) -> str:
    """What is at ``path``: ``"missing"``, ``"ok"`` (this format), ``"v1"`` (rows without
    checks) or ``"bad"`` (not a row file)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(HEADER)
    except FileNotFoundError:
        return "missing"
    if len(head) < HEADER:
        return "ok"  # a header torn while the file was created: it holds no row yet
    return "ok" if head.startswith(MAGIC) else "v1" if head.startswith(MAGIC_V1) else "bad"


class RowFile:
    """Float32 rows of width ``dim``, each with its check, in the file at ``path`` (created
    when missing; a file of the first format is started afresh).

    A file that exists but cannot be opened for writing (a read-only store, a file of
    another user) is opened for reading: its rows are read as usual (a torn last row is
    ignored rather than cut off, a header that is not this format's holds no usable row),
    and :meth:`append` refuses in one line naming the file (:attr:`writable` False)."""

    def __init__(self, path: str | os.PathLike[str], dim: int) -> None:
        if dim < 1:
            raise ValueError(f"dim ({dim}) must be >= 1")
        self.path, self.dim = Path(path), int(dim)
        self._dtype = np.dtype([("v", ITEM, (self.dim,)), ("check", "<u8", (2,))])
        self._row_bytes = self._dtype.itemsize
        self.writable, self.why_read_only = True, ""
        try:
            self._file: BinaryIO = open(self.path, "a+b")  # noqa: SIM115 - closed by close()
        except PermissionError as error:  # EACCES, EPERM; a read-only file system: EROFS
            self._open_read_only(error)
        except OSError as error:
            if error.errno != errno.EROFS:
                raise
            self._open_read_only(error)
        self.uid = self._header()
        size = os.fstat(self._file.fileno()).st_size - HEADER
        whole = max(size - size % self._row_bytes, 0)
        if whole != size and self.writable:  # a torn last row: never named by a point
            self._file.truncate(HEADER + whole)
        self.rows = whole // self._row_bytes if self.uid else 0
        self._map: np.memmap | None = None

    def _open_read_only(self, error: OSError) -> None:
        if not self.path.is_file():  # nothing to read: a store that cannot be written to
            raise error
        self._file = open(self.path, "rb")  # noqa: SIM115 - closed by close()
        self.writable, self.why_read_only = False, error.strerror or str(error)
        logger.info("%s cannot be written (%s): opened for reading", self.path, error)

    def _header(self) -> str:
        """The file's id; a new file (or one whose header write was torn: it holds no row
        yet, or one of the first format: its rows cannot be checked) gets a fresh one (a
        file opened for reading: no id, no usable row)."""
        self._file.seek(0)
        head = self._file.read(HEADER)
        if len(head) == HEADER and head.startswith(MAGIC):
            return head[len(MAGIC) : len(MAGIC) + 32].decode("ascii")
        if not self.writable:
            return ""
        if len(head) == HEADER and head.startswith(MAGIC_V1):
            logger.warning(
                "%s holds VREs without per-row checks: started afresh (those points read "
                "their VREs from Qdrant until `fossil store check --repair` rebuilds it)",
                self.path,
            )
        elif len(head) == HEADER:
            self._file.close()
            raise RowFileError(
                f"{self.path} is not a fossil VRE row file (bad header); {REPAIR_HINT}"
            )
        uid = uuid.uuid4().hex
        self._file.truncate(0)
        self._file.write((MAGIC + uid.encode("ascii")).ljust(HEADER, b"\0"))
        self._file.flush()
        os.fsync(self._file.fileno())
        return uid

    def append(self, vectors: np.ndarray, ids: Sequence[str]) -> range:
        """Write ``vectors`` (n, dim), the VREs of points ``ids``, durably; returns their row
        numbers."""
        if not self.writable:
            raise PermissionError(
                f"the VRE row file {self.path} cannot be written ({self.why_read_only}): make "
                "it (and the store directory) writable to add references; reading works",
            )
        array = np.ascontiguousarray(vectors, dtype=ITEM)
        if array.ndim != 2 or array.shape[1] != self.dim:
            raise ValueError(f"vectors must have shape (n, {self.dim}); got {array.shape}")
        if len(ids) != len(array):
            raise ValueError(f"got {len(ids)} point ids for {len(array)} vectors")
        records = np.empty(len(array), self._dtype)
        records["v"] = array
        records["check"] = row_checks(array, ids)
        start = self.rows
        self._file.seek(0, os.SEEK_END)
        self._file.write(records.tobytes())
        self._file.flush()
        os.fsync(self._file.fileno())
        self.rows += len(array)
        return range(start, self.rows)

    def gather(self, rows: np.ndarray, ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """``(vectors (len(rows), dim) float32, ok (len(rows),) bool)``: the rows ``rows``
        asked for by points ``ids``; ``ok`` is False where a row is outside the file or its
        check fails (its vector is then not to be used)."""
        index = np.asarray(rows, dtype=np.int64)
        if len(ids) != len(index):
            raise ValueError(f"got {len(ids)} point ids for {len(index)} rows")
        ok = (index >= 0) & (index < self.rows)
        out = np.zeros((len(index), self.dim), np.float32)
        if not ok.any():
            return out, ok
        if self._map is None or len(self._map) != self.rows:
            self._map = np.memmap(
                self.path, dtype=self._dtype, mode="r", offset=HEADER, shape=(self.rows,)
            )
        inside = np.flatnonzero(ok)
        records = self._map[index[inside]]  # one fancy-indexed copy of the rows asked for
        out[inside] = records["v"]
        expected = row_checks(out[inside], [ids[at] for at in inside.tolist()])
        ok[inside] = (expected == records["check"]).all(axis=1)
        out[~ok] = 0.0
        return out, ok

    def close(self) -> None:
        """Release the file (again: no-op)."""
        self._map = None
        self._file.close()
