"""``python -m tests.ingest.orphan_parent DIR``: start a 2-worker :class:`WorkerPool` whose
workers sleep while "loading models", record their pids in ``DIR/workers``, then sleep (the
test SIGKILLs this parent and checks the workers are gone)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path


def sleepy_loader(ready: str) -> None:
    """A worker's model loader that marks the worker ready, then never finishes."""
    Path(ready, f"{os.getpid()}.ready").touch()
    time.sleep(600)


if __name__ == "__main__":
    from functools import partial

    from fossil.ingest.pool import WorkerPool
    from tests.ingest.orphan_parent import sleepy_loader as loader

    out = sys.argv[1]
    pool = WorkerPool([partial(loader, out)] * 2, schema_version=3)
    Path(out, "workers").write_text(" ".join(str(p.pid) for p in pool.processes))
    time.sleep(600)
