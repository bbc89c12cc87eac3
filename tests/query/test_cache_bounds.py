"""The prototype cache stays within its size, in memory and on disk, however many concepts
are asked for (issue 25: 5,000 concepts grew it by 41 MB with no bound); the least recently
used entries go first."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from fossil.query.cache import CacheKey, DiskCache, MemoryCache, entry_bytes
from fossil.query.retrieval import ConceptResult, Reference

DIM = 256


def key(concept: str) -> CacheKey:
    return CacheKey(concept, 10, 2, (), "enc", 1, "c0")


def result(concept: str, n: int = 10) -> ConceptResult:
    rng = np.random.default_rng(len(concept))
    references = tuple(
        Reference(f"{concept}-{i}", 0.5, f"a {concept}", concept, concept, "coco") for i in range(n)
    )
    visual = rng.standard_normal((n, DIM)).astype(np.float32)
    return ConceptResult(concept, references, visual, visual[:2].copy(), 1)


def test_entry_bytes_counts_the_arrays_and_the_references() -> None:
    one = result("dog")
    assert entry_bytes(one) >= one.visual.nbytes + one.prototypes.nbytes
    assert entry_bytes(result("dog", 20)) > entry_bytes(one)


def test_the_memory_cache_keeps_within_its_byte_size_least_recently_used_first() -> None:
    size = entry_bytes(result("c000"))
    cache = MemoryCache(maxsize=1000, max_bytes=5 * size)
    for i in range(5):
        cache.put(key(f"c{i:03d}"), result(f"c{i:03d}"))
    assert cache.get(key("c000")) is not None  # now the most recently used
    cache.put(key("c005"), result("c005"))
    assert cache.get(key("c001")) is None and cache.get(key("c000")) is not None
    for i in range(6, 40):
        cache.put(key(f"c{i:03d}"), result(f"c{i:03d}"))
        assert cache.bytes <= 5 * size
    assert len(cache) == 5 and cache.get(key("c039")) is not None
    cache.clear()
    assert cache.bytes == 0 and len(cache) == 0


def test_an_entry_larger_than_the_memory_cache_is_not_kept() -> None:
    cache = MemoryCache(max_bytes=100)
    cache.put(key("dog"), result("dog"))
    assert len(cache) == 0 and cache.bytes == 0


def test_memory_cache_sizes_are_checked() -> None:
    with pytest.raises(ValueError, match=r"max_bytes \(-1\) must be >= 0"):
        MemoryCache(max_bytes=-1)
    with pytest.raises(ValueError, match=r"max_bytes \(-1\) must be >= 0"):
        DiskCache("x", max_bytes=-1)


def disk_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*.npz"))


def test_the_disk_cache_keeps_within_its_size_least_recently_used_first(tmp_path: Path) -> None:
    probe = DiskCache(tmp_path / "probe")
    probe.put(key("c000"), result("c000"))
    size = disk_bytes(tmp_path / "probe")
    cache = DiskCache(tmp_path / "cache", max_bytes=int(5.5 * size))
    for i in range(4):
        cache.put(key(f"c{i:03d}"), result(f"c{i:03d}"))
    past = os.stat(cache.directory).st_mtime - 100  # the entries so far: long ago, in order
    for i in range(4):
        [path] = (tmp_path / "cache").rglob(f"{key(f'c{i:03d}').digest()}.npz")
        os.utime(path, (past + i, past + i))
    assert cache.get(key("c000")) is not None  # a hit makes it the most recently used
    for i in range(4, 7):  # 7 entries: the 2 least recently used go
        cache.put(key(f"c{i:03d}"), result(f"c{i:03d}"))
    assert cache.get(key("c001")) is None and cache.get(key("c002")) is None
    assert cache.get(key("c000")) is not None and cache.get(key("c003")) is not None
    for i in range(7, 60):
        cache.put(key(f"c{i:03d}"), result(f"c{i:03d}"))
        assert disk_bytes(tmp_path / "cache") <= 5.5 * size
    assert cache.get(key("c059")) is not None
    # another process (a new DiskCache on the same folder) sees and keeps the same bound
    again = DiskCache(tmp_path / "cache", max_bytes=int(5.5 * size))
    for i in range(60, 70):
        again.put(key(f"c{i:03d}"), result(f"c{i:03d}"))
    assert disk_bytes(tmp_path / "cache") <= 5.5 * size


def test_the_default_sizes_bound_5000_concepts() -> None:
    assert MemoryCache().max_bytes == 256 * 2**20
    assert DiskCache("x").max_bytes == 1024 * 2**20
