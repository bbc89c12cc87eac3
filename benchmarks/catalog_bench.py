"""Catalog job-queue benchmark (issue 9): prints one JSON object.

``--workers`` processes (default 4) drain one catalog at once, with no model work: claim a
batch (``--batch-size``, default 8) → complete it with ``--refs`` reference rows per caption
(default 3), until nothing is claimable.  Measured on SQLite (WAL, a temporary file) and on
PostgreSQL (``--postgres-url``, default ``$FOSSIL_TEST_POSTGRES_URL``; its tables go into a
temporary schema, ``fossil_bench_<pid>``, dropped afterwards: nothing else is touched).
Throughput is captions (and batches) per second of wall time, from all workers starting
together to the last one finishing; every caption must end ``done`` exactly once.

Requirement: the catalog must not be what limits ingest.  A GPU worker generates about
5 captions/s; the catalog must sustain >= 50x that for all workers together, i.e.
>= 1000 captions/s for 4 workers.

    python benchmarks/catalog_bench.py
    python benchmarks/catalog_bench.py --postgres-url postgresql+psycopg2://postgres@/db?host=/tmp
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from fossil.db.catalog import SqlCatalog
from fossil.db.protocols import ReferenceRow

GPU_CAPTIONS_PER_S = 5.0  # expected generation rate of one GPU worker
HEADROOM = 50  # the catalog must be this many times faster than the workers it serves
LEASE_SECONDS = 600.0


def _worker(url: str, owner: str, batch_size: int, refs: int, barrier: Any, results: Any) -> None:
    catalog = SqlCatalog(url)
    claim_s: list[float] = []
    complete_s: list[float] = []
    captions = 0
    barrier.wait()
    start = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        jobs = catalog.claim(owner, batch_size, LEASE_SECONDS)
        t1 = time.perf_counter()
        claim_s.append(t1 - t0)
        if not jobs:
            break
        rows = [
            ReferenceRow(f"{job.text_hash[:28]}-{k:07d}", job.id, f"noun{k}", f"lemma{k}", 0.25)
            for job in jobs
            for k in range(refs)
        ]
        catalog.complete(owner, [job.id for job in jobs], rows)
        complete_s.append(time.perf_counter() - t1)
        captions += len(jobs)
    end = time.perf_counter()
    catalog.close()
    results.put(
        {
            "owner": owner,
            "start": start,
            "end": end,
            "captions": captions,
            "batches": len(complete_s),
            "claim_s": claim_s,
            "complete_s": complete_s,
        }
    )


def _run(url: str, args: argparse.Namespace) -> dict[str, Any]:
    catalog = SqlCatalog(url)
    catalog.add_corpus("bench", "synthetic", [f"caption number {i}" for i in range(args.captions)])
    ctx = mp.get_context("spawn")  # fresh processes: no engine or connection shared
    barrier, results = ctx.Barrier(args.workers), ctx.Queue()
    workers = [
        ctx.Process(
            target=_worker,
            args=(url, f"bench:{k}", args.batch_size, args.refs, barrier, results),
        )
        for k in range(args.workers)
    ]
    for process in workers:
        process.start()
    reports = [results.get(timeout=600) for _ in workers]
    for process in workers:
        process.join()
        if process.exitcode != 0:
            raise RuntimeError(f"a benchmark worker exited with {process.exitcode}")
    counts = catalog.status_counts()
    references = catalog.reference_count()
    catalog.close()
    captions = sum(r["captions"] for r in reports)
    batches = sum(r["batches"] for r in reports)
    if captions != args.captions or counts["done"] != args.captions:
        raise RuntimeError(f"{captions} captions completed, catalog says {counts}")
    if references != args.captions * args.refs:
        raise RuntimeError(f"{references} reference rows, expected {args.captions * args.refs}")
    wall = max(r["end"] for r in reports) - min(r["start"] for r in reports)
    claims = [s for r in reports for s in r["claim_s"]]
    completes = [s for r in reports for s in r["complete_s"]]
    rate = captions / wall
    return {
        "captions": captions,
        "batches": batches,
        "wall_s": round(wall, 3),
        "captions_per_s": round(rate, 1),
        "batches_per_s": round(batches / wall, 1),
        "per_worker_captions": sorted(r["captions"] for r in reports),
        "claim_ms_median": round(1000 * statistics.median(claims), 2),
        "complete_ms_median": round(1000 * statistics.median(completes), 2),
        "complete_ms_p95": round(1000 * statistics.quantiles(completes, n=20)[-1], 2),
        "headroom_x": round(rate / (GPU_CAPTIONS_PER_S * args.workers), 1),
        "meets_requirement": rate >= HEADROOM * GPU_CAPTIONS_PER_S * args.workers,
    }


def _bench_sqlite(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        return _run(f"sqlite:///{Path(tmp) / 'catalog.sqlite'}", args)


def _bench_postgres(url: str, args: argparse.Namespace) -> dict[str, Any]:
    """In a schema of its own (``search_path`` set through libpq ``options``)."""
    schema = f"fossil_bench_{os.getpid()}"
    admin = create_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
        version = conn.execute(text("SHOW server_version")).scalar()
    try:
        parsed = make_url(url)
        options = f"{parsed.query.get('options', '')} -csearch_path={schema}".strip()
        result = _run(parsed.update_query_dict({"options": options}).render_as_string(False), args)
        return {"server_version": version, **result}
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--captions", type=int, default=4000)
    parser.add_argument("--refs", type=int, default=3, help="reference rows per caption")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("FOSSIL_TEST_POSTGRES_URL"),
        help="SQLAlchemy URL of a PostgreSQL database (default: $FOSSIL_TEST_POSTGRES_URL)",
    )
    parser.add_argument("--skip-sqlite", action="store_true")
    args = parser.parse_args()
    required = HEADROOM * GPU_CAPTIONS_PER_S * args.workers
    out: dict[str, Any] = {
        "benchmark": "catalog claim+complete, no model work",
        "workers": args.workers,
        "batch_size": args.batch_size,
        "captions": args.captions,
        "refs_per_caption": args.refs,
        "requirement": {
            "rule": f">= {HEADROOM}x the GPU rate of ~{GPU_CAPTIONS_PER_S:g} captions/s per worker",
            "captions_per_s": required,
        },
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }
    if not args.skip_sqlite:
        out["sqlite_wal"] = _bench_sqlite(args)
    if args.postgres_url:
        out["postgresql"] = _bench_postgres(args.postgres_url, args)
    else:
        out["postgresql"] = {"skipped": "no --postgres-url and FOSSIL_TEST_POSTGRES_URL unset"}
    measured = [v for k, v in out.items() if k in ("sqlite_wal", "postgresql") and "wall_s" in v]
    out["requirement"]["met"] = bool(measured) and all(v["meets_requirement"] for v in measured)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
