"""Child processes that end with their parent, however it ends.

fossil starts worker processes in two places: ``fossil ingest --workers`` (one generator per
worker, :mod:`fossil.ingest.pool`) and the CRF pool of OpenCut (:mod:`fossil.segment.crf`,
reused by ``fossil serve``).  Both call :func:`exit_with_parent` first thing in the child, so
a parent killed by any signal (``kill -9`` included, which runs no clean-up of its own) leaves
no worker behind, nor multiprocessing's resource tracker (it exits once every process that
holds its pipe is gone).

This module imports nothing of fossil's, so every layer may use it.
"""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import multiprocessing.connection
import os
import signal
import sys
import threading

_PR_SET_PDEATHSIG = 1  # prctl option (linux/prctl.h)


def exit_with_parent() -> None:
    """In a child process: end it the moment its parent dies.  A thread waits on the
    parent's sentinel, and on Linux the kernel sends the child SIGKILL too
    (``PR_SET_PDEATHSIG``).  Does nothing in a process that has no multiprocessing parent."""
    parent = mp.parent_process()
    if parent is None:
        return
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):  # no prctl: the thread below still watches
            pass

    def watch() -> None:
        mp.connection.wait([parent.sentinel])
        os._exit(1)

    threading.Thread(target=watch, name="fossil-parent-watch", daemon=True).start()
    if not parent.is_alive():  # died before the watch began
        os._exit(1)
