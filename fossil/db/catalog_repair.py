"""The catalog side of ``fossil store check [--repair]`` (:mod:`fossil.db.check`): read the
catalogued references, and the repairs that need no generation — uncatalogue references
whose points are lost (their captions become pending), catalogue points whose rows are lost,
rebuild a lost catalog from the points' payloads."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import delete, insert, select, update

from fossil.db.catalog import SqlCatalog, caption_hash, normalise_caption
from fossil.db.edge import EdgeStore
from fossil.db.schema import caption, caption_corpus, catalog_state, corpus, reference
from fossil.records import ReferencePoint

_CHUNK = 500
REBUILT_SOURCE = "rebuilt by `fossil store check --repair` from the points' payloads"


def catalog_health(path: Path) -> str:
    """``ok``, ``missing``, ``empty`` or ``damaged: <what SQLite says>`` for the SQLite
    catalog at ``path`` (``PRAGMA quick_check`` reads every page)."""
    if not path.exists():
        return "missing"
    wal = path.with_name(f"{path.name}-wal")
    if path.stat().st_size == 0 and not (wal.exists() and wal.stat().st_size > 0):
        return "empty"
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            verdict = conn.execute("PRAGMA quick_check").fetchone()[0]
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        conn.close()
    except sqlite3.DatabaseError as error:
        return f"damaged: {error}"
    if verdict != "ok":
        return f"damaged: {verdict}"
    if not {"caption", "reference", "corpus", "collection_meta"} <= tables:
        return "damaged: not a fossil catalog (its tables are missing)"
    return "ok"


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def reference_points(catalog: SqlCatalog) -> dict[str, str | None]:
    """Every catalogued reference: point id → its stored thumbnail path (or None)."""
    with catalog.engine.connect() as conn:
        rows = conn.execute(select(reference.c.point_id, reference.c.thumbnail))
        return {point: thumb for point, thumb in rows}


def caption_states(catalog: SqlCatalog, refs: EdgeStore, point_ids: Sequence[str]) -> dict:
    """Point id → status of the caption its payload names (points of unknown captions are
    absent)."""
    payloads = refs.payloads(point_ids)
    wanted = sorted({int(p["caption_id"]) for p in payloads.values() if "caption_id" in p})
    status: dict[int, str] = {}
    with catalog.engine.connect() as conn:
        for part in _chunks(wanted):
            status.update(conn.execute(select(caption.c.id, caption.c.status).where(
                caption.c.id.in_(part))).all())  # fmt: skip
    out = {}
    for point, payload in payloads.items():
        state = status.get(int(payload.get("caption_id", -1)))
        if state is not None:
            out[point] = state
    return out


def _bump(conn: Any) -> None:
    conn.execute(
        update(catalog_state)
        .where(catalog_state.c.id == 1)
        .values(revision=catalog_state.c.revision + 1)
    )


def mark_missing(catalog: SqlCatalog, point_ids: Sequence[str]) -> tuple[int, int]:
    """One transaction: delete the reference rows of ``point_ids`` (points the vector store
    lost) and mark their captions pending, so the next ingest regenerates exactly those.
    Returns ``(reference rows deleted, captions marked pending)``."""
    with catalog.engine.begin() as conn:
        captions: set[int] = set()
        deleted = 0
        for part in _chunks(list(point_ids)):
            where = reference.c.point_id.in_(part)
            captions.update(conn.execute(select(reference.c.caption_id).where(where)).scalars())
            deleted += conn.execute(delete(reference).where(where)).rowcount
        for part in _chunks(sorted(captions)):
            conn.execute(
                update(caption)
                .where(caption.c.id.in_(part))
                .values(status="pending", lease_owner=None, lease_expires=None, attempts=0)
            )
        if deleted:
            _bump(conn)
    return int(deleted), len(captions)


def catalogue_points(catalog: SqlCatalog, refs: EdgeStore, point_ids: Sequence[str]) -> int:
    """Insert the reference rows of points whose caption is catalogued but whose row is not,
    from their payloads; returns how many."""
    rows = [_row(point, payload) for point, payload in refs.payloads(point_ids).items()]
    if rows:
        with catalog.engine.begin() as conn:
            conn.execute(insert(reference), rows)
            _bump(conn)
    return len(rows)


def _row(point: str, payload: dict[str, Any], thumbnail: str | None = None) -> dict[str, Any]:
    return {
        "point_id": point,
        "caption_id": int(payload["caption_id"]),
        "noun": str(payload.get("noun", payload.get("noun_lemma", ""))),
        "lemma": str(payload["noun_lemma"]),
        "mask_area": float(payload.get("mask_area", 0.0)),
        "thumbnail": thumbnail,
    }


def clear_thumbnails(catalog: SqlCatalog, point_ids: Sequence[str]) -> int:
    """Forget the thumbnail paths of ``point_ids`` (their files are gone); how many."""
    changed = 0
    with catalog.engine.begin() as conn:
        for part in _chunks(list(point_ids)):
            changed += conn.execute(
                update(reference).where(reference.c.point_id.in_(part)).values(thumbnail=None)
            ).rowcount
    return int(changed)


def rebuild_catalog(
    catalog: SqlCatalog, points: Iterable[ReferencePoint], thumbnails: dict[str, str]
) -> dict[str, int]:
    """Fill an empty catalog from the points' payloads (corpus, caption id and text, noun,
    lemma, mask area; ``thumbnails``: point id → store-relative path of its file).  Captions
    become ``done``.  Returns counts: ``corpora``, ``captions``, ``references`` and
    ``no_caption`` (points without caption text: left uncatalogued)."""
    corpora: dict[str, int] = {}
    captions: dict[int, dict[str, Any]] = {}
    rows: list[dict[str, Any]] = []
    no_caption = 0
    for point in points:
        payload = point.payload
        text = normalise_caption(str(payload.get("caption") or ""))
        if not text or "caption_id" not in payload or "corpus" not in payload:
            no_caption += 1
            continue
        corpus_id = corpora.setdefault(str(payload["corpus"]), len(corpora) + 1)
        caption_id = int(payload["caption_id"])
        captions.setdefault(
            caption_id,
            {
                "id": caption_id,
                "corpus_id": corpus_id,
                "text": text,
                "text_hash": caption_hash(text),
                "status": "done",
                "attempts": 1,
            },
        )
        rows.append(_row(point.id, payload, thumbnails.get(point.id)))
    now = time.time()
    with catalog.engine.begin() as conn:
        if corpora:
            conn.execute(
                insert(corpus),
                [
                    {"id": i, "name": name, "source": REBUILT_SOURCE, "added_at": now}
                    for name, i in corpora.items()
                ],
            )
        for part in _chunks(list(captions.values())):
            conn.execute(insert(caption), list(part))
            holders = [{"caption_id": c["id"], "corpus_id": c["corpus_id"]} for c in part]
            conn.execute(insert(caption_corpus), holders)
        for part in _chunks(rows):
            conn.execute(insert(reference), list(part))
        _bump(conn)
    return {
        "corpora": len(corpora),
        "captions": len(captions),
        "references": len(rows),
        "no_caption": no_caption,
    }
