"""Removing a corpus (``fossil corpus remove``): its references leave the vector store and
the catalog together, crash-safe like ingest (§4).

Order: (1) the corpus is marked ``removing`` (its captions are no longer claimed); (2) its
points are deleted from the vector store in batches (idempotent); (3) its thumbnails are
deleted; (4) one catalog transaction deletes its reference rows, captions and the corpus and
bumps the revision (the prototype caches invalidate).  A process killed anywhere leaves the
corpus catalogued and marked, so rerunning the removal finishes it: the catalog still lists
every point id to delete, and deleting a point twice is a no-op.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from fossil.db.protocols import Collection
from fossil.ingest.worker import KillSwitch

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Removal:
    corpus: str
    references: int  # reference rows deleted from the catalog (= points deleted)
    captions: int
    thumbnails: int  # thumbnail files deleted
    resumed: bool  # an interrupted removal was finished

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def remove_corpus(
    collection: Collection,
    name: str,
    *,
    batch_size: int = 1000,
    force: bool = False,
    progress: bool = False,
    kill: KillSwitch | None = None,
) -> Removal:
    """Delete corpus ``name`` with its captions and references (see the module docstring).
    ``force``: remove even while workers hold unexpired leases on its captions (their
    references may then be written after the removal)."""
    if batch_size < 1:
        raise ValueError(f"batch_size ({batch_size}) must be >= 1")
    kill = kill or KillSwitch()
    catalog = collection.catalog
    resumed = catalog.begin_removal(name, force=force)
    references = catalog.corpus_references(name)
    ids = [point for point, _ in references]
    with tqdm(total=len(ids), unit="ref", desc=f"removing {name}", disable=not progress) as bar:
        for start in range(0, len(ids), batch_size):
            part = ids[start : start + batch_size]
            collection.refs.delete(part)
            bar.update(len(part))
            kill.hit("delete-batch")
    thumbnails = _delete_thumbnails(collection.root, [t for _, t in references if t])
    counts = catalog.finish_removal(name)
    if resumed:
        logger.info("finished the interrupted removal of corpus %r", name)
    return Removal(name, counts["references"], counts["captions"], thumbnails, resumed)


def _delete_thumbnails(root: str | os.PathLike[str] | None, paths: list[str]) -> int:
    """Delete the thumbnail files (relative paths under ``root``); missing ones (a rerun,
    a store without thumbnails) are skipped."""
    deleted = 0
    for path in paths:
        file = Path(path) if os.path.isabs(path) or root is None else Path(root) / path
        if root is None and not file.is_absolute():
            continue  # a server store without a directory: nothing of it is on this disk
        try:
            file.unlink()
            deleted += 1
        except FileNotFoundError:
            pass
    return deleted
