"""An append-only file of float32 rows: the embedded store's fast copy of the Visual Reference
Embeddings.

Qdrant Edge hands vectors to Python as lists of floats: fetching the 16k VREs of a
171-concept query (N=95) costs ~1 s of float-object conversion alone.  So
:class:`~fossil.db.edge.EdgeStore` also appends every upserted VRE here and records its row in
the point's payload (``vre_row``); reads gather the rows from a memory map in one numpy
indexing operation.  Edge keeps its own copy of every vector (the truth, used for export and
whenever a point has no valid row), so this file is an accelerator, never the only copy.

Crash safety: rows are written and fsynced before the points that name them are upserted;
a torn last row (a crash mid-write) is cut off on open — no point names it.  Rows of deleted
or re-upserted points stay behind as unused bytes (a rerun after a crash re-upserts a batch:
its rows are appended again).

The file starts with a 64-byte header holding a random id (:attr:`RowFile.uid`); points name
their row together with that id, so a lost or replaced file can never hand a point another
point's row: the id differs and the reader falls back to Edge.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import numpy as np

ITEM = np.dtype("<f4")
MAGIC = b"fossil-vre-rows\n"
HEADER = 64  # bytes: MAGIC, the file's id (32 hex digits), zero padding


class RowFile:
    """Float32 rows of width ``dim`` in the file at ``path`` (created when missing)."""

    def __init__(self, path: str | os.PathLike[str], dim: int) -> None:
        if dim < 1:
            raise ValueError(f"dim ({dim}) must be >= 1")
        self.path, self.dim = Path(path), int(dim)
        self._row_bytes = self.dim * ITEM.itemsize
        self._file = open(self.path, "a+b")  # noqa: SIM115 - closed by close()
        self.uid = self._header()
        size = os.fstat(self._file.fileno()).st_size - HEADER
        whole = size - size % self._row_bytes
        if whole != size:  # a torn last row: never named by a point
            self._file.truncate(HEADER + whole)
        self.rows = whole // self._row_bytes
        self._map: np.memmap | None = None

    def _header(self) -> str:
        """The file's id; a new file (or one whose header write was torn: it holds no row
        yet) gets a fresh one."""
        self._file.seek(0)
        head = self._file.read(HEADER)
        if len(head) == HEADER and head.startswith(MAGIC):
            return head[len(MAGIC) : len(MAGIC) + 32].decode("ascii")
        if len(head) == HEADER:
            self._file.close()
            raise ValueError(f"{self.path} is not a fossil VRE row file (bad header)")
        uid = uuid.uuid4().hex
        self._file.truncate(0)
        self._file.write((MAGIC + uid.encode("ascii")).ljust(HEADER, b"\0"))
        self._file.flush()
        os.fsync(self._file.fileno())
        return uid

    def append(self, vectors: np.ndarray) -> range:
        """Write ``vectors`` (n, dim) durably; returns their row numbers."""
        array = np.ascontiguousarray(vectors, dtype=ITEM)
        if array.ndim != 2 or array.shape[1] != self.dim:
            raise ValueError(f"vectors must have shape (n, {self.dim}); got {array.shape}")
        start = self.rows
        self._file.seek(0, os.SEEK_END)
        self._file.write(array.tobytes())
        self._file.flush()
        os.fsync(self._file.fileno())
        self.rows += len(array)
        return range(start, self.rows)

    def gather(self, rows: np.ndarray) -> np.ndarray:
        """(len(rows), dim) float32 copies of ``rows`` (each in ``[0, self.rows)``)."""
        index = np.asarray(rows, dtype=np.int64)
        if index.size and (index.min() < 0 or index.max() >= self.rows):
            raise IndexError(f"rows outside [0, {self.rows})")
        if not index.size:
            return np.zeros((0, self.dim), np.float32)
        if self._map is None or len(self._map) != self.rows:
            self._map = np.memmap(
                self.path, dtype=ITEM, mode="r", offset=HEADER, shape=(self.rows, self.dim)
            )
        return np.asarray(self._map[index], dtype=np.float32)

    def close(self) -> None:
        """Release the file (again: no-op)."""
        self._map = None
        self._file.close()
