"""Removing a corpus (``fossil corpus remove``): its references leave the vector store and
the catalog together, crash-safe like ingest (design §4).

A caption belongs to every corpus that contains it (captions are stored once, deduplicated
across corpora): removal drops only the captions no remaining corpus holds, with their
references; a shared caption the removed corpus registered first passes, with its points'
``corpus`` payload, to the next corpus holding it.

Order: (1) the corpus is marked ``removing`` (its captions are no longer claimed); (2) the
points of the captions it alone holds are deleted from the vector store in batches
(idempotent), and the points of its shared captions are relabelled; (3) their thumbnails are
deleted — paths derived from the point ids under ``DIR/thumbnails`` only, never the paths
the catalog records, so an edited catalog cannot make removal delete files elsewhere; (4)
one catalog transaction deletes their reference rows, the captions and the corpus and bumps
the revision (the prototype caches invalidate).  A process killed anywhere leaves the corpus
catalogued and marked, so rerunning the removal finishes it: the catalog still lists every
point id to delete, and deleting a point twice is a no-op.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from fossil.db.protocols import Collection
from fossil.ingest.thumbnails import THUMBNAIL_DIR, thumbnail_path
from fossil.ingest.worker import KillSwitch

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Removal:
    corpus: str
    references: int  # reference rows deleted from the catalog (= points deleted)
    captions: int
    thumbnails: int  # thumbnail files deleted
    resumed: bool  # an interrupted removal was finished
    kept: int = 0  # captions other corpora also hold: kept, with their references

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
    for heir, shared in catalog.shared_references(name).items():
        collection.refs.set_corpus(shared, heir)
    thumbnails = _delete_thumbnails(collection.root, [p for p, _ in references])
    counts = catalog.finish_removal(name)
    if resumed:
        logger.info("finished the interrupted removal of corpus %r", name)
    return Removal(
        name, counts["references"], counts["captions"], thumbnails, resumed, counts.get("kept", 0)
    )


def _delete_thumbnails(root: str | os.PathLike[str] | None, point_ids: list[str]) -> int:
    """Delete the thumbnails of ``point_ids``: ``DIR/thumbnails/<id[:2]>/<id>.webp`` under
    the store directory ``root`` only (None: a server store without one, nothing on this
    disk); a path that would lead out of it (a malformed id) or a link is never followed.
    Missing files (a rerun, a store without thumbnails) are skipped."""
    if root is None:
        return 0
    base = (Path(root) / THUMBNAIL_DIR).resolve()
    deleted = 0
    for point in point_ids:
        file = Path(root) / thumbnail_path(str(point))
        if file.is_symlink() or not file.resolve().is_relative_to(base):
            logger.warning("not deleting %s: it is not a thumbnail under %s", file, base)
            continue
        try:
            file.unlink()
            deleted += 1
        except FileNotFoundError:
            pass
    return deleted
