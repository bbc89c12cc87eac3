"""Single-process lock of an embedded store directory (design §7, §8).

Qdrant Edge, like qdrant-client's local mode, lets one process open a store; a second one
must fail early with a message that names the fix (a Qdrant server).  The lock is an
``fcntl.flock`` on a file beside the data: the kernel releases it when the process dies, so
a crash never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO


class StoreLockedError(RuntimeError):
    """The embedded store is open in another process."""

    option = "qdrant_url"  # what lets several processes in (fossil.errors)


def locked_message(path: Path | str, holder: str = "") -> str:
    who = f" (held by pid {holder})" if holder else ""
    return (
        f"the embedded store at {path} is open in another process{who}; an embedded store "
        "allows one process at a time: wait for it to finish, or run a Qdrant server and open "
        "the collection through it (qdrant_url; several processes and machines can then write "
        "at once)"
    )


class StoreLock:
    """Exclusive, non-blocking lock on ``path`` (created if missing); ``release()`` frees it."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        try:
            self._file: IO[str] | None = open(self.path, "a+")  # noqa: SIM115 - until release
        except OSError as error:  # a read-only mount, a store owned by another user
            raise PermissionError(
                f"cannot lock the store at {self.path.parent} ({error.strerror or error}): "
                "fossil writes a lock file even to read a store; make the directory writable "
                "or copy the store to a writable place"
            ) from error
        try:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._file.seek(0)
            holder = self._file.read().strip()
            self._file.close()
            self._file = None
            raise StoreLockedError(locked_message(self.path.parent, holder)) from None
        self._file.seek(0)
        self._file.truncate()
        self._file.write(str(os.getpid()))
        self._file.flush()

    @property
    def held(self) -> bool:
        return self._file is not None

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None
