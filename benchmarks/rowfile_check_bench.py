"""What checking every VRE read from the row file costs (issue 16, defect 2): prints one JSON
object.  An embedded store of ``--size`` points (768-d text, 1024-d visual), then
``fetch_visual`` of ``--fetch`` ids (a 171-concept query at N=95 reads ~16k): from the row
file with its per-row checks, and from Qdrant alone (what a failed check falls back to);
then ``check_rows`` and ``rebuild_rows`` over the whole store (``fossil store check
--repair``).

    python benchmarks/rowfile_check_bench.py --size 20000 --fetch 16000
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from fossil.db.edge import EdgeStore
from fossil.db.points import VISUAL, gather_vectors
from fossil.records import ReferencePoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=20_000)
    parser.add_argument("--fetch", type=int, default=16_000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        store = EdgeStore(Path(tmp) / "qdrant", text_dim=768, visual_dim=1024, create=True)
        ids = [f"00000000-0000-0000-0000-{i:012d}" for i in range(args.size)]
        for start in range(0, args.size, 2048):
            chunk = ids[start : start + 2048]
            text = rng.normal(size=(len(chunk), 768)).astype(np.float32)
            visual = rng.normal(size=(len(chunk), 1024)).astype(np.float32)
            store.upsert(
                [
                    ReferencePoint(i, t, v, {"noun_lemma": "x", "corpus": "c", "caption_id": 0})
                    for i, t, v in zip(chunk, text, visual, strict=True)
                ]
            )
        wanted = list(rng.choice(ids, size=args.fetch, replace=False))
        timings = {}
        started = time.perf_counter()
        rows = store.fetch_visual(wanted)
        timings["fetch_row_file_checked_s"] = time.perf_counter() - started
        started = time.perf_counter()
        edge = gather_vectors(wanted, 1024, store._vectors(VISUAL), 2048)
        timings["fetch_qdrant_only_s"] = time.perf_counter() - started
        assert np.array_equal(rows, edge) and store.row_fallbacks == 0
        started = time.perf_counter()
        counts = store.check_rows()
        timings["check_rows_s"] = time.perf_counter() - started
        started = time.perf_counter()
        store.rebuild_rows()
        timings["rebuild_rows_s"] = time.perf_counter() - started
        store.close()
    print(json.dumps({"size": args.size, "fetch": args.fetch, **counts, **timings}, indent=2))


if __name__ == "__main__":
    main()
