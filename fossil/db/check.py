"""``fossil store check [--repair]``: cross-check the parts of an embedded store — catalog,
Qdrant shard, VRE row file, thumbnails, caches — and repair what can be repaired without
generating anything.

Checks (each a count in :attr:`StoreCheck.counts`, 0 on a healthy store):

* ``catalog``: missing, empty or damaged (``PRAGMA quick_check``), or without its rows
  (:data:`ROWLESS`: no collection_meta, or no caption, beside a shard of points);
* ``points_missing``: catalogued references whose point Qdrant does not hold;
* ``points_uncatalogued``: points the catalog does not list — of a caption still being
  ingested (``points_in_progress``: the next ingest completes them, not counted as a fault),
  of a known caption (its reference row was lost), or of no known caption (an older catalog
  restored);
* ``rows_failed`` / ``rows_unnamed``: points whose row in the row file fails its check or
  who name no row of it (a lost, truncated or replaced file);
* ``thumbnails_missing`` / ``thumbnails_orphaned``: catalogued thumbnails without a file,
  thumbnail files of no catalogued reference (e.g. written by a killed ingest worker);
* ``cache_files``: prototype cache and lemma index files (reported; dropped on repair).

Repairs (``repair=True``): a damaged catalog is moved aside and rebuilt from the points'
payloads (corpus, caption text or key, noun, lemma, mask area) and ``collection_meta.json``,
as is one without its rows — the meta and every row in one transaction, so a repair killed
meanwhile leaves the catalog as it found it; a missing shard is created empty; catalogued
references whose points are missing are deleted and their captions marked pending, so the
next ingest regenerates exactly those; uncatalogued points are catalogued from their
payloads, beside the rows the catalog holds (their corpus and caption too, when it lacks
them).  **A point whose payload can be catalogued is never deleted**: only points that name
no caption the catalog knows and carry no caption text (ingested before fossil recorded it)
are.  The row file is rebuilt from Qdrant; orphaned thumbnails are deleted and missing ones
uncatalogued; caches are dropped.

What the payloads cannot tell (said in :attr:`StoreCheck.notes`): captions without a point
(pending, failed, no noun found), and which corpora hold a caption besides the one its
points name — the corpus that registered it first.  A corpus whose captions another corpus
registered first therefore names no point and is not rebuilt; ingesting its source file
again brings it back without generating anything (its captions are done).
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fossil.db import catalog_repair
from fossil.db.catalog import SqlCatalog
from fossil.db.edge import EdgeStore, stored_dims, visual_file
from fossil.db.lock import StoreLock
from fossil.db.open import (
    CACHE_DIR,
    CATALOG_FILE,
    LOCK_FILE,
    QDRANT_DIR,
    THUMBNAILS_DIR,
    load_meta_copy,
    save_meta_copy,
    store_catalog_url,
)
from fossil.db.protocols import CollectionMeta
from fossil.db.rowfile import probe
from fossil.db.space import OPEN_MARGIN, WRITE_MARGIN, require_free

logger = logging.getLogger(__name__)

# the catalog's state when its tables lack the collection_meta or every caption while the
# shard holds points
ROWLESS = "no rows: its tables hold no collection_meta or no captions beside the points"

FAULTS = (
    "points_missing",
    "points_uncatalogued",
    "rows_failed",
    "rows_unnamed",
    "thumbnails_missing",
    "thumbnails_orphaned",
)


@dataclass
class StoreCheck:
    """What :func:`check_store` found (``counts``) and did (``repairs``)."""

    store: str
    catalog: str = "ok"  # ok | missing | empty | damaged: <detail> | ROWLESS | rebuilt
    row_file: str = "ok"  # ok | missing | v1 | bad
    counts: dict[str, int] = field(default_factory=dict)
    repairs: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return (
            self.catalog == "ok"
            and self.row_file in ("ok", "missing")
            and not any(self.counts.get(k, 0) for k in FAULTS)
        )

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "healthy": self.healthy}


def check_store(root: str | Path, *, repair: bool = False) -> StoreCheck:
    """Check the embedded store at ``root`` (and repair it when ``repair``); see the module
    docstring.  Holds the store's lock throughout: refused while another process has it."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"no store directory at {root}")
    shard = root / QDRANT_DIR
    if stored_dims(shard) is None and not (root / CATALOG_FILE).exists():
        raise FileNotFoundError(f"no fossil store at {root} (no {QDRANT_DIR}/ and no catalog)")
    if repair:  # a repair may rewrite the row file and the catalog (fossil.db.space)
        require_free(root, WRITE_MARGIN, "repair the store")
    else:
        require_free(root, OPEN_MARGIN, "open the store")
    report = StoreCheck(str(root))
    lock = StoreLock(root / LOCK_FILE)
    try:
        _check_locked(root, report, repair)
    finally:
        lock.release()
    return report


def _check_locked(root: Path, report: StoreCheck, repair: bool) -> None:
    report.catalog = catalog_repair.catalog_health(root / CATALOG_FILE)
    report.row_file = probe(visual_file(root / QDRANT_DIR))
    meta = None
    captions = 0
    if report.catalog == "ok":
        catalog = SqlCatalog(store_catalog_url(root))
        meta = catalog.get_meta()
        captions = sum(catalog.status_counts().values())
        catalog.close()
    rowless = report.catalog == "ok" and (meta is None or not captions)
    meta = meta or load_meta_copy(root)
    if meta is None:
        report.notes.append(
            f"cannot tell what the collection was built with (no collection_meta in the "
            f"catalog, no readable {root / 'collection_meta.json'}): restore the catalog from a "
            "backup"
        )
        return
    if not repair and report.catalog != "ok":
        report.notes.append("the catalog cannot be read: nothing else was cross-checked")
        _count_points(root, report)
        return
    if repair and report.catalog != "ok":
        _move_aside(root / CATALOG_FILE, report)
    if repair and report.row_file == "bad":
        _move_aside(visual_file(root / QDRANT_DIR), report)
    refs = _open_shard(root, meta, report, repair)
    if rowless and refs is not None and refs.count() > 0:
        # the tables without their rows (emptied by hand, or a repair killed before its
        # rebuild committed): every point would look unknown
        report.catalog = ROWLESS
    catalog = SqlCatalog(store_catalog_url(root))
    try:
        if repair and report.catalog != "ok":
            _rebuild_catalog(root, catalog, refs, meta, report)
        _cross_check(root, catalog, refs, report, repair)
        if repair:
            save_meta_copy(root, meta)
    finally:
        catalog.close()
        if refs is not None:
            refs.close()


def _count_points(root: Path, report: StoreCheck) -> None:
    if stored_dims(root / QDRANT_DIR) is None:
        report.counts["points"] = 0
        return
    refs = EdgeStore(root / QDRANT_DIR, row_file=False)
    try:
        report.counts["points"] = refs.count()
    finally:
        refs.close()


def _move_aside(path: Path, report: StoreCheck) -> None:
    """Keep a damaged file (and SQLite's WAL/SHM beside it) under a dated name."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for part in (path, path.with_name(f"{path.name}-wal"), path.with_name(f"{path.name}-shm")):
        if part.exists():
            target = part.with_name(f"{part.name}.damaged-{stamp}")
            part.rename(target)
            report.notes.append(f"moved the damaged {part.name} aside to {target.name}")


def _open_shard(
    root: Path, meta: CollectionMeta, report: StoreCheck, repair: bool
) -> EdgeStore | None:
    shard = root / QDRANT_DIR
    exists = stored_dims(shard) is not None
    if not exists and not repair:
        report.notes.append(f"{shard} is missing: every catalogued reference lacks its point")
        return None
    rows = repair or report.row_file != "bad"
    refs = EdgeStore(
        shard, text_dim=meta.text_dim, visual_dim=meta.visual_dim, create=True, row_file=rows
    )
    if not exists:
        report.repairs["shard_created"] = 1
    return refs


def _rebuild_catalog(
    root: Path,
    catalog: SqlCatalog,
    refs: EdgeStore | None,
    meta: CollectionMeta,
    report: StoreCheck,
) -> None:
    """Fill the catalog from every point's payload, with ``meta``: one transaction (a
    repair killed meanwhile leaves the catalog as it found it)."""
    points = refs.iter_payloads() if refs is not None else iter(())
    done = catalog_repair.catalogue_payloads(catalog, points, _thumbnail_files(root), meta=meta)
    report.repairs["catalog_corpora"] = done.corpora
    report.repairs["catalog_captions"] = done.captions
    report.repairs["catalog_references"] = done.references
    report.catalog = "rebuilt"
    report.notes.append(
        "catalog rebuilt from the points' payloads: captions without references (no noun "
        "found), pending and failed captions are not in it — ingest their source files again "
        "to bring them back (captions already present are skipped)"
    )
    report.notes.append(SHARED_NOTE)


def _thumbnail_files(root: Path) -> dict[str, str]:
    """Point id → store-relative path of every thumbnail file."""
    base = root / THUMBNAILS_DIR
    return {p.stem: p.relative_to(root).as_posix() for p in base.rglob("*.webp")}


SHARED_NOTE = (
    "each caption comes back held by the one corpus its points name (the corpus that "
    "registered it first): a corpus whose captions another corpus registered first names no "
    "point and is not rebuilt, and shared captions lose their other corpora — ingest those "
    "corpora's source files again (`fossil ingest SOURCE --store DIR`; their captions are "
    "done, nothing is generated)"
)


def _cross_check(
    root: Path, catalog: SqlCatalog, refs: EdgeStore | None, report: StoreCheck, repair: bool
) -> None:
    listed = catalog_repair.reference_points(catalog)
    held = refs.point_ids() if refs is not None else set()
    counts = report.counts
    counts["references"], counts["points"] = len(listed), len(held)
    missing = sorted(set(listed) - held)
    counts["points_missing"] = len(missing)
    extra = sorted(held - set(listed))
    states = catalog_repair.caption_states(catalog, refs, extra) if refs is not None else {}
    in_progress = {p for p in extra if states.get(p) in ("pending", "leased")}
    uncatalogued = [p for p in extra if p not in in_progress]
    counts["points_in_progress"] = len(in_progress)
    counts["points_uncatalogued"] = len(uncatalogued)
    if refs is not None and report.row_file != "bad":
        rows = refs.check_rows()
        counts["rows_failed"], counts["rows_unnamed"] = rows["failed"], rows["unnamed"]
    thumbs = _thumbnail_faults(root, listed)
    counts["thumbnails_missing"] = len(thumbs["missing"])
    counts["thumbnails_orphaned"] = len(thumbs["orphaned"])
    cache = root / CACHE_DIR
    counts["cache_files"] = sum(1 for p in cache.rglob("*") if p.is_file()) if cache.is_dir() else 0
    if not repair:
        return
    done = report.repairs
    if missing:
        done["references_uncatalogued"], done["captions_pending"] = catalog_repair.mark_missing(
            catalog, missing
        )
    if uncatalogued and refs is not None:
        _catalogue(root, catalog, refs, uncatalogued, report)
    if refs is not None and (counts.get("rows_failed") or counts.get("rows_unnamed")):
        done["rows_rebuilt"] = refs.rebuild_rows()
    elif refs is not None and report.row_file == "bad":
        done["rows_rebuilt"] = refs.rebuild_rows()
    thumbs = _thumbnail_faults(root, catalog_repair.reference_points(catalog))  # after the above
    for path in thumbs["orphaned"]:
        path.unlink(missing_ok=True)
    done["thumbnails_deleted"] = len(thumbs["orphaned"])
    done["thumbnails_uncatalogued"] = catalog_repair.clear_thumbnails(
        catalog, sorted(thumbs["missing"])
    )
    if cache.is_dir():
        shutil.rmtree(cache)
        done["cache_files_deleted"] = counts["cache_files"]
    done = {k: v for k, v in done.items() if v}
    report.repairs = done


def _catalogue(
    root: Path, catalog: SqlCatalog, refs: EdgeStore, point_ids: list[str], report: StoreCheck
) -> None:
    """Catalogue the points the catalog lacks from their payloads (never delete one that
    can be); delete only those whose payload names no caption the catalog knows or could
    hold (no caption text: ingested before fossil recorded it)."""
    payloads = (
        item
        for start in range(0, len(point_ids), 1024)
        for item in refs.payloads(point_ids[start : start + 1024]).items()
    )
    done = catalog_repair.catalogue_payloads(catalog, payloads, _thumbnail_files(root))
    report.repairs["corpora_recatalogued"] = done.corpora
    report.repairs["captions_recatalogued"] = done.captions
    report.repairs["references_recatalogued"] = done.references
    if done.uncatalogued:
        refs.delete(list(done.uncatalogued))
        report.repairs["points_deleted"] = len(done.uncatalogued)
        report.notes.append(
            f"{len(done.uncatalogued)} points could not be catalogued (their payloads name no "
            "caption the catalog knows and carry no caption text, or no noun lemma: ingested "
            "before fossil recorded them) and were deleted: ingest their source files again "
            "to regenerate them"
        )


def _thumbnail_faults(root: Path, listed: dict[str, str | None]) -> dict[str, Any]:
    """Catalogued thumbnails whose file is missing (point ids), and thumbnail files named
    by no catalogued reference (paths; only ``*.webp`` under ``DIR/thumbnails``)."""
    base = (root / THUMBNAILS_DIR).resolve()
    files = {p.stem: p for p in base.rglob("*.webp")} if base.is_dir() else {}
    missing = set()
    for point, relative in listed.items():
        if relative is None:
            continue
        path = (root / relative).resolve()
        if not path.is_relative_to(base) or not path.is_file():
            missing.add(point)
    orphaned = [path for stem, path in files.items() if stem not in listed]
    return {"missing": missing, "orphaned": orphaned}
