"""mIoU against collection size while a collection grows (issue 29): ``fossil eval --server
URL --every M`` reruns an evaluation each time M more references have arrived and appends
one line per run to a log (CSV, or JSON Lines for ``.json``/``.jsonl``).

:func:`follow_growth` is the loop, over two callables: ``look`` (the collection's size now
and whether an ingest is still queued or running) and ``run_once`` (one evaluation, its log
line).  It runs once at the start, then whenever the size has grown by ``every`` or more;
it ends once no ingest is active and its last run saw the final size.
"""

from __future__ import annotations

import csv
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

LOG_FIELDS = (
    "run", "references", "revision", "miou", "aacc", "images", "prototypes_taken_at",
    "finished_at", "out",
)  # fmt: skip


@dataclass(frozen=True)
class Growth:
    """What ``look`` reports: the collection's reference count and whether an ingest job is
    queued or running on the server."""

    references: int
    ingest_active: bool


class LiveLog:
    """Appends one line per run to ``path``: CSV (header written once) or, for a ``.json``
    or ``.jsonl`` name, one JSON object per line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.json = path.suffix.lower() in (".json", ".jsonl")

    def append(self, line: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        row = {name: line.get(name) for name in LOG_FIELDS}
        if self.json:
            with self.path.open("a", encoding="utf-8") as out:
                out.write(json.dumps(row) + "\n")
            return
        new = not self.path.exists() or self.path.stat().st_size == 0
        with self.path.open("a", encoding="utf-8", newline="") as out:
            writer = csv.DictWriter(out, fieldnames=LOG_FIELDS)
            if new:
                writer.writeheader()
            writer.writerow(row)


def follow_growth(
    look: Callable[[], Growth],
    run_once: Callable[[int], dict[str, Any]],
    log: LiveLog,
    every: int,
    *,
    poll_s: float = 5.0,
    max_runs: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> list[dict[str, Any]]:
    """Run ``run_once(run_number)`` now and each time the collection has ``every`` more
    references than at the last run; each run's line goes to ``log``.  Ends when no ingest is
    active and the last run saw the current size (or after ``max_runs``).  The lines."""
    if every < 1:
        raise ValueError(f"every ({every}) must be >= 1 references")
    if poll_s <= 0:
        raise ValueError(f"poll interval ({poll_s}) must be > 0 seconds")
    lines: list[dict[str, Any]] = []
    seen: int | None = None
    while max_runs is None or len(lines) < max_runs:
        now = look()
        grown = seen is None or now.references >= seen + every
        final = not now.ingest_active and now.references != seen
        if grown or final:
            line = run_once(len(lines) + 1)
            log.append(line)
            lines.append(line)
            seen = int(line["references"])
            logger.info("run %d: %d references, mIoU %.4f", len(lines), seen, line["miou"])
            continue
        if not now.ingest_active:
            break
        sleep(poll_s)
    return lines
