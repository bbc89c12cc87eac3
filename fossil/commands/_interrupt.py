"""Ctrl-C during long command work: the first one asks the work to stop after the current
batch, the second stops it now."""

from __future__ import annotations

import signal
import sys
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fossil.pipeline.ingest import IngestProgress


class GracefulInterrupt:
    """First Ctrl-C: finish the current batch, then stop; second: stop now (the current
    batch is released).  Calling it says whether a stop was asked for.  Unarmed (``armed``
    False, or after :meth:`disarm`), Ctrl-C stops at once, as without it: there is no batch
    to finish (models loading, the store opening); :meth:`follow` arms it while batches run."""

    def __init__(self, armed: bool = True) -> None:
        self.requested = False
        self.armed = armed
        self.previous: Any = None

    def __call__(self) -> bool:
        return self.requested

    def arm(self) -> None:
        self.armed = True

    def disarm(self) -> None:
        self.armed = False

    def follow(self, progress: IngestProgress) -> None:
        """An ``on_progress`` callback of :func:`fossil.pipeline.ingest.ingest_corpora`:
        armed while its batches run."""
        if progress.stage == "start":
            self.arm()
        elif progress.stage == "end":
            self.disarm()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested or not self.armed:
            raise KeyboardInterrupt
        self.requested = True
        print("\nfinishing the current batch; Ctrl-C again to stop now", file=sys.stderr)

    def __enter__(self) -> GracefulInterrupt:
        self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        signal.signal(signal.SIGINT, self.previous)
