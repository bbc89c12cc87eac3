"""Reference-store benchmark (issue 5): prints one JSON object.

Synthetic, clustered references like real ones (TREs cluster by noun, design §10): ``lemmas`` noun
centres grouped under broader topics, Zipf-sized clusters, 768-d unit text vectors, 1024-d raw
visual vectors.  Measures upsert throughput, 171 concepts × top-150 search with every hit's
visual vector fetched (exact, and routed by noun lemma), recall@150 against exact numpy search,
reopen time and peak RSS.  One backend and size per run, so RSS is that run's:

    python benchmarks/store_bench.py --backend edge --size 100000
    python benchmarks/store_bench.py --backend edge --size 1000000        # minutes, ~7 GB disk
    python benchmarks/store_bench.py --backend local --size 20000         # qdrant-client path=
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from fossil.db.protocols import ReferenceStore
from fossil.records import ReferencePoint, point_id

CHUNK = 2000  # points generated and upserted per step


class Synthetic:
    """Deterministic clustered data: lemma centres, then points chunk by chunk."""

    def __init__(self, lemmas: int, text_dim: int, visual_dim: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        topics = rng.normal(size=(max(lemmas // 20, 1), text_dim))
        centres = topics[rng.integers(0, len(topics), lemmas)] + 0.8 * rng.normal(
            size=(lemmas, text_dim)
        )
        self.centres = (centres / np.linalg.norm(centres, axis=1, keepdims=True)).astype(np.float32)
        self.visual_centres = rng.normal(size=(lemmas, visual_dim)).astype(np.float32) * 3.0
        weights = 1.0 / np.arange(1, lemmas + 1) ** 0.8  # Zipf-like cluster sizes
        self.weights = weights / weights.sum()
        self.seed = seed
        self.names = [f"lemma{i}" for i in range(lemmas)]
        self.counts = np.zeros(lemmas, np.int64)  # references generated per lemma

    def chunk(self, index: int, size: int) -> tuple[list[ReferencePoint], np.ndarray]:
        rng = np.random.default_rng([self.seed, index])
        labels = rng.choice(len(self.centres), size=size, p=self.weights)
        self.counts += np.bincount(labels, minlength=len(self.centres))
        dim = self.centres.shape[1]
        text = self.centres[labels] + rng.normal(scale=0.6 / np.sqrt(dim), size=(size, dim))
        text = (text / np.linalg.norm(text, axis=1, keepdims=True)).astype(np.float32)
        visual = self.visual_centres[labels] + rng.normal(size=(size, self.visual_centres.shape[1]))
        points = [
            ReferencePoint(
                id=point_id(f"{index}-{k}", 0, "bench"),
                text=text[k],
                visual=visual[k].astype(np.float32),
                payload={
                    "caption_id": index * size + k,
                    "noun": self.names[labels[k]],
                    "noun_lemma": self.names[labels[k]],
                    "corpus": "bench",
                    "mask_area": 0.2,
                },
            )
            for k in range(size)
        ]
        return points, text

    def queries(self, count: int) -> np.ndarray:
        """Concepts: a lemma centre (sampled like the data) plus a template-like offset."""
        rng = np.random.default_rng([self.seed, 2**31])
        labels = rng.choice(len(self.centres), size=count, replace=False, p=self.weights)
        dim = self.centres.shape[1]
        q = self.centres[labels] + rng.normal(scale=0.5 / np.sqrt(dim), size=(count, dim))
        return (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)


class ExactTopK:
    """Running exact top-``n`` of ``queries`` over chunks of unit vectors (ground truth)."""

    def __init__(self, queries: np.ndarray, n: int) -> None:
        self.queries, self.n = queries, n
        self.scores = np.full((len(queries), 0), -np.inf, np.float32)
        self.ids = np.zeros((len(queries), 0), dtype=object)

    def add(self, ids: list[str], text: np.ndarray) -> None:
        scores = np.concatenate([self.scores, self.queries @ text.T], axis=1)
        names = np.concatenate(
            [self.ids, np.tile(np.array(ids, dtype=object), (len(scores), 1))], 1
        )
        keep = np.argsort(-scores, axis=1)[:, : self.n]
        self.scores = np.take_along_axis(scores, keep, 1)
        self.ids = np.take_along_axis(names, keep, 1)

    def recall(self, hits: list[list[Any]]) -> float:
        found = [
            len({h.id for h in row} & set(truth)) / self.n
            for row, truth in zip(hits, self.ids, strict=True)
        ]
        return float(np.mean(found))


def open_store(backend: str, path: Path, create: bool) -> ReferenceStore:
    if backend == "edge":
        from fossil.db.edge import EdgeStore

        return EdgeStore(path, text_dim=768, visual_dim=1024, create=create)
    from qdrant_client import QdrantClient

    from fossil.db.server import ServerStore

    return ServerStore(QdrantClient(path=str(path)), "refs", text_dim=768, visual_dim=1024)


def query_with_visual(
    store: ReferenceStore, queries: np.ndarray, n: int, lemmas: list[list[str]] | None = None
) -> tuple[list[list[Any]], dict[str, float]]:
    """Search, then fetch every hit's VRE; wall and CPU seconds of each step."""
    clock = {"wall": time.perf_counter(), "cpu": time.process_time()}
    hits = store.search(queries, n, lemmas=lemmas) if lemmas else store.search(queries, n)
    mid = {"wall": time.perf_counter(), "cpu": time.process_time()}
    ids = [h.id for row in hits for h in row]
    visual = store.fetch_visual(ids)
    assert visual.shape == (len(ids), 1024)
    end = {"wall": time.perf_counter(), "cpu": time.process_time()}
    times = {f"search_{k}_s": mid[k] - clock[k] for k in clock}
    times.update({f"fetch_{k}_s": end[k] - mid[k] for k in clock})
    times["total_wall_s"] = end["wall"] - clock["wall"]
    return hits, times


def runs(call: Callable[[], tuple[Any, dict[str, float]]], repeats: int) -> tuple[Any, dict]:
    """Median of each timing over ``repeats`` calls, and the last result."""
    results = [call() for _ in range(repeats)]
    keys = results[0][1]
    medians = {k: round(statistics.median(r[1][k] for r in results), 3) for k in keys}
    return results[-1][0], medians


def route(data: Synthetic, queries: np.ndarray, counts: np.ndarray, cover: int) -> list[list[str]]:
    """Per concept, its nearest lemma centres until their references number ``cover`` (the
    query layer would embed lemma names and read counts from the catalog)."""
    routes = []
    for row in np.argsort(-(queries @ data.centres.T), axis=1):
        row = row[counts[row] > 0]
        upto = int(np.searchsorted(np.cumsum(counts[row]), cover)) + 1
        routes.append([data.names[i] for i in row[:upto]])
    return routes


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def ingest(store: ReferenceStore, data: Synthetic, size: int, truth: ExactTopK) -> Iterator[float]:
    for index, start in enumerate(range(0, size, CHUNK)):
        points, text = data.chunk(index, min(CHUNK, size - start))
        begin = time.perf_counter()
        store.upsert(points)
        yield time.perf_counter() - begin
        truth.add([p.id for p in points], text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("edge", "local"), default="edge")
    parser.add_argument("--size", type=int, default=100_000, help="references")
    parser.add_argument("--lemmas", type=int, default=2000, help="noun clusters")
    parser.add_argument("--queries", type=int, default=171, help="concepts (COCO-Stuff: 171)")
    parser.add_argument("--top", type=int, default=150, help="N references per concept")
    parser.add_argument(
        "--cover", type=int, default=10, help="routed: nearest lemmas until cover × top refs"
    )
    parser.add_argument("--no-routed", action="store_true", help="skip the routed search")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None, help="store dir (default: temp)")
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="store_bench_", dir=args.dir))
    path = workdir / "qdrant"
    data = Synthetic(args.lemmas, 768, 1024, seed=0)
    queries = data.queries(args.queries)
    truth = ExactTopK(queries, args.top)
    try:
        store = open_store(args.backend, path, create=True)
        start = time.perf_counter()
        upsert_seconds = sum(ingest(store, data, args.size, truth))
        wall = time.perf_counter() - start
        count = store.count()
        store.close()
        begin = time.perf_counter()
        store = open_store(args.backend, path, create=False)
        reopen = time.perf_counter() - begin
        _, first = query_with_visual(store, queries, args.top)
        hits, exact = runs(lambda: query_with_visual(store, queries, args.top), args.repeats)
        routes = route(data, queries, data.counts, args.cover * args.top)
        routed_hits, routed = [], {}
        if not args.no_routed:
            routed_hits, routed = runs(
                lambda: query_with_visual(store, queries, args.top, routes), args.repeats
            )
        store.close()
        disk = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        report = {
            "backend": args.backend,
            "references": count,
            "lemmas": args.lemmas,
            "upsert_refs_per_s": round(args.size / upsert_seconds, 1),
            "ingest_wall_s": round(wall, 1),
            "reopen_s": round(reopen, 3),
            "query": f"{args.queries} concepts x top-{args.top}, visual vectors fetched",
            "exact_first_after_reopen": {k: round(v, 3) for k, v in first.items()},
            "exact_median": exact,
            "exact_recall": round(truth.recall(hits), 4),
            "routed_lemmas_per_concept_mean": round(float(np.mean([len(r) for r in routes])), 1),
            "routed_median": routed,
            "routed_recall": round(truth.recall(routed_hits), 4) if routed_hits else None,
            "peak_rss_gb": round(peak_rss_gb(), 2),
            "disk_gb": round(disk / 1024**3, 2),
            "load_avg_1m_at_end": round(os.getloadavg()[0], 1),
            "cpus": os.cpu_count(),
        }
        print(json.dumps(report, indent=1))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
