"""Prototype cache (design §5.6): a repeated query for a concept skips encoding, retrieval and
K-Means.  Keys carry the collection's identity (a random id created with its catalog,
:func:`collection_instance`) and its revision: a new ingest (which bumps the revision) makes
every older entry unreachable, and so does a store rebuilt from scratch, whose revisions
count again from 0 under a new id.  Two layers, both owned by the caller (no global state):

* :class:`MemoryCache` — an LRU on the query engine, at most ``maxsize`` entries and
  ``max_bytes`` bytes (:func:`entry_bytes`; default 256 MiB);
* :class:`DiskCache` — one ``.npz`` per entry under a directory (by default
  ``<store>/cache/prototypes``), so separate processes (``fossil query`` runs) share work;
  entries of older revisions or other collections are deleted when a new entry is written,
  and the least recently used ones (by file time: a hit touches its file) once the folder
  passes ``max_bytes`` (default 1 GiB).
  A file that cannot be read back whole (truncated, flipped bytes: the zip CRC fails) is
  dropped with a warning and recomputed, never an error.  A directory that cannot be written
  (a read-only store, a full disk, a file in its place) is not one either: a warning, once,
  and the cache writes nothing more; queries are answered all the same.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections import OrderedDict
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from fossil.config import RetrievalConfig
from fossil.db.protocols import Collection
from fossil.query.retrieval import ConceptResult, Reference

logger = logging.getLogger(__name__)

MEMORY_CACHE_BYTES = 256 * 2**20  # default size of a MemoryCache
DISK_CACHE_BYTES = 1024 * 2**20  # default size of a DiskCache folder


@dataclass(frozen=True)
class CacheKey:
    """Everything a concept's result depends on."""

    concept: str
    N: int
    K: int
    options: tuple[tuple[str, object], ...]  # retrieval/K-Means options, sorted by name
    text_encoder: str
    revision: int
    collection: str = ""  # the collection's instance id ("": a catalog without one)

    def digest(self) -> str:
        blob = json.dumps(asdict(self), sort_keys=True, default=str)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:40]


# RetrievalConfig fields that cannot change a concept's result, so they stay out of the
# cache key (none today).  N and K are keyed as CacheKey fields; every other field is in
# ``options``, a new one too.
KEY_EXCLUDED: frozenset[str] = frozenset()
KEY_OWN_FIELDS: frozenset[str] = frozenset({"N", "K"})


def retrieval_options(config: RetrievalConfig) -> tuple[tuple[str, object], ...]:
    """``CacheKey.options`` of ``config``: every field but N, K and :data:`KEY_EXCLUDED`,
    sorted by name; ``exclude_corpora`` as a set (its order does not matter)."""
    options = []
    for f in fields(config):
        if f.name in KEY_OWN_FIELDS or f.name in KEY_EXCLUDED:
            continue
        value = getattr(config, f.name)
        options.append((f.name, tuple(sorted(value)) if f.name == "exclude_corpora" else value))
    return tuple(sorted(options))


def collection_instance(collection: Collection) -> str:
    """The random id of ``collection``'s catalog (``""`` for a catalog that has none, e.g.
    a test double): two collections built at different times never share cache entries."""
    instance = getattr(collection.catalog, "instance_id", None)
    return str(instance()) if callable(instance) else ""


def entry_bytes(result: ConceptResult) -> int:
    """About what ``result`` holds in memory: its arrays and its references' texts."""
    texts = sum(
        len(r.id)
        + len(r.caption or "")
        + len(r.noun)
        + len(r.lemma)
        + len(r.corpus or "")
        + len(r.thumbnail or "")
        + 200  # the objects themselves
        for r in result.references
    )
    return int(result.visual.nbytes + result.prototypes.nbytes + texts)


class MemoryCache:
    """Least-recently-used mapping ``CacheKey → ConceptResult`` of at most ``maxsize`` entries
    and ``max_bytes`` bytes (:func:`entry_bytes`); an entry larger than that is not kept."""

    def __init__(self, maxsize: int = 1024, max_bytes: int = MEMORY_CACHE_BYTES) -> None:
        if maxsize < 0:
            raise ValueError(f"maxsize ({maxsize}) must be >= 0")
        if max_bytes < 0:
            raise ValueError(f"max_bytes ({max_bytes}) must be >= 0")
        self.maxsize = maxsize
        self.max_bytes = max_bytes
        self.bytes = 0
        self._entries: OrderedDict[CacheKey, tuple[ConceptResult, int]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: CacheKey) -> ConceptResult | None:
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry[0]

    def put(self, key: CacheKey, result: ConceptResult) -> None:
        size = entry_bytes(result)
        if self.maxsize == 0 or size > self.max_bytes:
            return
        old = self._entries.pop(key, None)
        if old is not None:
            self.bytes -= old[1]
        self._entries[key] = (result, size)
        self.bytes += size
        while len(self._entries) > self.maxsize or self.bytes > self.max_bytes:
            _, (_, dropped) = self._entries.popitem(last=False)
            self.bytes -= dropped

    def clear(self) -> None:
        self._entries.clear()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._entries)


class DiskCache:
    """``.npz`` files under ``directory/<revision>.<collection>/<key digest>.npz``; unreadable
    or mismatching files count as misses and are removed (with a warning)."""

    def __init__(
        self, directory: str | os.PathLike[str], max_bytes: int = DISK_CACHE_BYTES
    ) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes ({max_bytes}) must be >= 0")
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.hits = 0
        self.misses = 0
        self.writable = True  # False after a write failed: nothing more is written
        self._bytes: int | None = None  # the folder's size as last counted plus writes since

    def _path(self, key: CacheKey) -> Path:
        return self.directory / _entry_dir(key.revision, key.collection) / f"{key.digest()}.npz"

    def get(self, key: CacheKey) -> ConceptResult | None:
        path = self._path(key)
        try:
            found = path.is_file()
        except OSError:  # a directory that cannot be searched
            found = False
        if not found:
            self.misses += 1
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                if meta["key"] != key.digest():
                    raise ValueError("key digest mismatch")
                result = ConceptResult(
                    concept=meta["concept"],
                    references=tuple(Reference(**r) for r in meta["references"]),
                    visual=data["visual"],
                    prototypes=data["prototypes"],
                    revision=int(meta["revision"]),
                )
                if len(result.visual) != len(result.references) or result.concept != key.concept:
                    raise ValueError("entry does not match its key")
        except Exception as error:  # noqa: BLE001 - any unreadable file: BadZipFile, zlib.error…
            logger.warning("dropping unreadable prototype cache file %s: %s", path, error)
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)
            self.misses += 1
            return None
        self.hits += 1
        try:
            os.utime(path)  # recently used: evicted last
        except OSError:
            pass
        return result

    def put(self, key: CacheKey, result: ConceptResult) -> None:
        """Write the entry of ``key``; a write that fails is a warning (once), never an
        error, and turns writing off for this cache."""
        if not self.writable:
            return
        try:
            self._write(key, result)
        except OSError as error:
            self.writable = False
            logger.warning(
                "cannot write the prototype cache under %s (%s): queries are answered without "
                "caching; make it writable, or delete it",
                self.directory,
                error,
            )

    def _write(self, key: CacheKey, result: ConceptResult) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._prune(key.revision, key.collection)
        meta = {
            "key": key.digest(),
            "concept": result.concept,
            "revision": result.revision,
            "references": [r.as_dict() for r in result.references],
        }
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(
                    f,
                    meta=np.array(json.dumps(meta)),
                    visual=result.visual,
                    prototypes=result.prototypes,
                )
            os.replace(tmp, path)  # atomic: readers see the old file or the whole new one
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        if self._bytes is not None:
            self._bytes += path.stat().st_size
        if self._bytes is None or self._bytes > self.max_bytes:
            self._evict()

    def _evict(self) -> None:
        """Count the folder (other processes write to it too) and delete the least recently
        used entries until it holds at most ``max_bytes``."""
        entries = []
        for path in self.directory.glob("*/*.npz"):
            try:
                stat = path.stat()
            except OSError:  # deleted meanwhile
                continue
            entries.append((stat.st_mtime_ns, stat.st_size, path))
        total = sum(size for _, size, _ in entries)
        for _, size, path in sorted(entries, key=lambda entry: entry[0]):
            if total <= self.max_bytes:
                break
            path.unlink(missing_ok=True)
            total -= size
        self._bytes = total

    def _prune(self, revision: int, collection: str) -> None:
        """Delete entries of older revisions and of other collections: they can never be hit
        again."""
        for child in self.directory.iterdir():
            number, _, owner = child.name.partition(".")
            if not (child.is_dir() and number.isdigit()):
                continue
            if owner != collection or int(number) < revision:
                shutil.rmtree(child, ignore_errors=True)


def _entry_dir(revision: int, collection: str) -> str:
    return f"{revision}.{collection}" if collection else str(revision)
