"""Free disk space: checked before a store is opened and before each write, because a full
disk is not an error Qdrant Edge can report.

Edge memory-maps its shard files (the write-ahead log comes in 32 MiB segments).  Writing
into a mapped page that the file system cannot back kills the process with SIGBUS (exit 135,
no message): an ingest that fills the disk dies so, and afterwards merely opening the shard
(``fossil info``, ``fossil store check``) dies the same way, because opening writes a few KB
(measured on a loop-mounted ext4 with no reserved blocks: 0 bytes free → SIGBUS, 16 KB free
→ opens and uses 6 KB).  So fossil checks first and refuses in one line, naming the disk, the
space it has and the space needed:

- opening an embedded store needs :data:`OPEN_MARGIN` free (SQLite's WAL and shared-memory
  files, Edge's bookkeeping): a store whose ingest stopped for space still opens to be read;
- every write (an ingest batch, a repair) needs :data:`WRITE_MARGIN` — two WAL segments —
  plus an estimate of what it writes (:func:`batch_bytes`).

Another process filling the disk between the check and the write can still cause a SIGBUS;
the margins make that unlikely, not impossible.  An ``ENOSPC`` that does reach fossil (the
row file, a thumbnail, SQLite's "database or disk is full") becomes a :class:`DiskFullError`
(:func:`disk_full`, :func:`is_disk_full`).

Free space is what ``shutil.disk_usage`` reports as available to unprivileged users; a
caller (or a test) may pass its own ``free`` function instead.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Callable
from pathlib import Path

MiB = 1 << 20
OPEN_MARGIN = 4 * MiB  # opening: SQLite's -wal/-shm, Edge's tracker journal and WAL header
WRITE_MARGIN = 64 * MiB  # writing: two of Edge's 32 MiB write-ahead-log segments
REFERENCES_PER_CAPTION = 8  # a generous estimate (captions name ~2-4 nouns)
OVERHEAD_PER_REFERENCE = 16 * 1024  # payload, catalog row, thumbnail (~4-10 KB as WebP)
REPAIR_HINT = "`fossil store check --repair --store {root}`"

FreeBytes = Callable[[Path], int]


class DiskFullError(OSError):
    """Not enough free space for what was asked; the message names the disk and the fix."""

    def __init__(self, message: str) -> None:
        super().__init__(errno.ENOSPC, message)

    def __str__(self) -> str:
        return str(self.strerror)


def _existing(path: Path) -> Path:
    """``path`` or its nearest existing ancestor (a store not created yet)."""
    path = Path(path).expanduser().absolute()
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


def free_bytes(path: Path) -> int:
    """Bytes available to unprivileged users on the file system holding ``path``."""
    return int(shutil.disk_usage(_existing(path)).free)


def mount_point(path: Path) -> Path:
    """The mount point of the file system holding ``path``."""
    path = _existing(path)
    while not os.path.ismount(path) and path.parent != path:
        path = path.parent
    return path


def size_text(n: int) -> str:
    """``n`` bytes for a message: ``"0 bytes"``, ``"10.0 MB"``, ``"2.5 GB"``."""
    if n < 1024:
        return f"{n} bytes"
    for unit, scale in (("GB", 1 << 30), ("MB", MiB)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n / 1024:.1f} KB"


def batch_bytes(captions: int, text_dim: int, visual_dim: int) -> int:
    """A generous estimate of what writing ``captions`` captions adds to a store: per
    reference its text vector, its visual vector twice (Edge and the row file), payload,
    catalog row and thumbnail."""
    per_reference = 4 * (text_dim + 2 * visual_dim) + OVERHEAD_PER_REFERENCE
    return captions * REFERENCES_PER_CAPTION * per_reference


def require_free(
    path: str | os.PathLike[str], needed: int, doing: str, free: FreeBytes = free_bytes
) -> None:
    """Raise :class:`DiskFullError` unless the file system holding ``path`` has ``needed``
    bytes free for ``doing`` (``"ingest"``, ``"open the store"``)."""
    where = Path(path).expanduser()
    have = free(where)
    if have >= needed:
        return
    raise DiskFullError(
        f"not enough free space to {doing}: the disk holding {where} (mounted at "
        f"{mount_point(where)}) has {size_text(have)} free; at least {size_text(needed)} "
        "are needed (a margin included: Qdrant Edge maps its files into memory, and a write "
        "that finds the disk full kills the process); free space there or move the store to "
        "a larger disk, then rerun"
    )


def is_disk_full(error: BaseException | None) -> bool:
    """Whether ``error``, or an error it was raised from or during, is a full disk: ENOSPC or
    EDQUOT, SQLite's "database or disk is full", Edge's "No space left on device"."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        text = str(error).lower()
        if "no space left on device" in text or "database or disk is full" in text:
            return True
        error = error.__cause__ or error.__context__
    return False


def disk_full(root: str | os.PathLike[str], doing: str) -> DiskFullError:
    """The error for an ``ENOSPC`` met while ``doing`` (``"ingest"``) in store ``root``."""
    where = Path(root).expanduser()
    return DiskFullError(
        f"no space left on the disk holding {where} (mounted at {mount_point(where)}) during "
        f"{doing}: what was written before is kept; free space there, then run "
        f"{REPAIR_HINT.format(root=where)} and rerun the same command"
    )
