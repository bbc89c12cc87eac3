"""The catalog side of ``fossil store check [--repair]`` (:mod:`fossil.db.check`): read the
catalogued references, and the repairs that need no generation — uncatalogue references
whose points are lost (their captions become pending), catalogue points whose rows are lost,
rebuild a lost catalog from the points' payloads."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import delete, insert, select, update

from fossil.db.catalog import SqlCatalog, caption_hash, normalise_caption
from fossil.db.edge import EdgeStore
from fossil.db.protocols import CollectionMeta
from fossil.db.schema import caption, caption_corpus, catalog_state, corpus, reference

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


def payload_key(payload: dict[str, Any]) -> str | None:
    """The ``text_hash`` of the caption row a point's payload belongs to: its
    ``caption_hash`` when it carries one (a labelled reference: a key of its photo item),
    else the hash of its normalised ``caption`` text; None when it carries neither."""
    given = payload.get("caption_hash")
    if isinstance(given, str) and given:
        return given
    text = normalise_caption(str(payload.get("caption") or ""))
    return caption_hash(text) if text else None


def caption_states(catalog: SqlCatalog, refs: EdgeStore, point_ids: Sequence[str]) -> dict:
    """Point id → status of the caption its payload names (by ``caption_id``, and by its
    key when the payload carries one: a caption of that id but another text is not its
    caption).  Points of unknown captions are absent."""
    payloads = refs.payloads(point_ids)
    wanted = sorted({int(p["caption_id"]) for p in payloads.values() if "caption_id" in p})
    found: dict[int, tuple[str, str]] = {}
    with catalog.engine.connect() as conn:
        for part in _chunks(wanted):
            stmt = select(caption.c.id, caption.c.status, caption.c.text_hash)
            found.update(
                (i, (status, key))
                for i, status, key in conn.execute(stmt.where(caption.c.id.in_(part)))
            )
    out = {}
    for point, payload in payloads.items():
        state, key = found.get(int(payload.get("caption_id", -1)), (None, None))
        own = payload_key(payload)
        if state is not None and (own is None or own == key):
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


def _row(point: str, payload: dict[str, Any], caption_id: int, thumbnail: str | None) -> dict:
    return {
        "point_id": point,
        "caption_id": caption_id,
        "noun": str(payload.get("noun") or payload["noun_lemma"]),
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


@dataclass(frozen=True)
class Catalogued:
    """What :func:`catalogue_payloads` added: corpora, captions and reference rows, and the
    points it could not catalogue (their payload names no caption text or key the catalog
    knows, or no noun lemma)."""

    corpora: int
    captions: int
    references: int
    uncatalogued: tuple[str, ...]


def catalogue_payloads(
    catalog: SqlCatalog,
    points: Iterable[tuple[str, dict[str, Any]]],
    thumbnails: dict[str, str],
    *,
    meta: CollectionMeta | None = None,
) -> Catalogued:
    """Catalogue points from their payloads, beside whatever rows the catalog holds (none,
    for a lost catalog; older ones, for a catalog restored from a backup): one transaction
    that writes ``meta`` (when given), the corpora the payloads name (by name), their
    captions (by key, :func:`payload_key`: a known caption is reused, a new one keeps the
    payload's ``caption_id`` unless another caption has it, and becomes ``done``), every
    (caption, corpus) holding, and a reference row per point not catalogued yet.

    ``points``: ``(point id, payload)``, read as they come (chunk by chunk: a whole store
    is never held in memory); ``thumbnails``: point id → store-relative path of its file.
    A payload without caption text or key (ingested before fossil recorded it) is
    catalogued only when the catalog knows its ``caption_id``."""
    made = {"corpora": 0, "captions": 0, "references": 0}
    left: list[str] = []
    with catalog.engine.begin() as conn:
        if meta is not None:
            SqlCatalog.write_meta(conn, meta)
        names = {name: int(i) for i, name in conn.execute(select(corpus.c.id, corpus.c.name))}
        for part in _batches(points):
            _catalogue_chunk(conn, names, part, thumbnails, made, left)
        if made["references"]:
            _bump(conn)
    return Catalogued(**made, uncatalogued=tuple(left))


def _batches(points: Iterable[tuple[str, dict[str, Any]]]) -> Iterable[list]:
    part: list[tuple[str, dict[str, Any]]] = []
    for item in points:
        part.append(item)
        if len(part) == _CHUNK:
            yield part
            part = []
    if part:
        yield part


def _lookup(conn: Any, column: Any, values: Iterable[Any], result: Any) -> dict[Any, int]:
    """``{value: caption id}`` of the captions whose ``column`` is one of ``values``."""
    wanted = sorted(set(values))
    if not wanted:
        return {}
    rows = conn.execute(select(column, result).where(column.in_(wanted)))
    return {value: int(i) for value, i in rows}


def _catalogue_chunk(
    conn: Any,
    names: dict[str, int],
    part: list[tuple[str, dict[str, Any]]],
    thumbnails: dict[str, str],
    made: dict[str, int],
    left: list[str],
) -> None:
    """:func:`catalogue_payloads` for one chunk of points, in its transaction."""
    listed = set(
        conn.execute(
            select(reference.c.point_id).where(reference.c.point_id.in_([p for p, _ in part]))
        ).scalars()
    )
    todo = [(p, payload, payload_key(payload)) for p, payload in part if p not in listed]
    by_key = _lookup(conn, caption.c.text_hash, [k for *_, k in todo if k], caption.c.id)
    asked = [int(payload["caption_id"]) for _, payload, _ in todo if "caption_id" in payload]
    taken = set(_lookup(conn, caption.c.id, asked, caption.c.id))
    rows: list[dict[str, Any]] = []
    holders: set[tuple[int, int]] = set()
    fresh: list[dict[str, Any]] = []  # new captions that keep their payload's id
    for point, payload, key in todo:
        name = payload.get("corpus")
        text = normalise_caption(str(payload.get("caption") or ""))
        if not payload.get("noun_lemma"):
            caption_id = None
        elif key is not None and key in by_key:
            caption_id = by_key[key]
        elif key is not None and text and isinstance(name, str) and name:
            corpus_id = _corpus_id(conn, names, name, made)
            caption_id = _new_caption(conn, corpus_id, text, key, payload, taken, fresh)
            by_key[key] = caption_id
            made["captions"] += 1
        elif key is None and int(payload.get("caption_id", -1)) in taken:
            caption_id = int(payload["caption_id"])
        else:
            caption_id = None
        if caption_id is None:
            left.append(point)
            continue
        if isinstance(name, str) and name:
            holders.add((caption_id, _corpus_id(conn, names, name, made)))
        rows.append(_row(point, payload, caption_id, thumbnails.get(point)))
    if fresh:
        conn.execute(insert(caption), fresh)
    _hold(conn, holders)
    if rows:
        conn.execute(insert(reference), rows)
        made["references"] += len(rows)


def _corpus_id(conn: Any, names: dict[str, int], name: str, made: dict[str, int]) -> int:
    if name not in names:
        added = conn.execute(
            insert(corpus).values(name=name, source=REBUILT_SOURCE, added_at=time.time())
        )
        names[name] = int(added.inserted_primary_key[0])
        made["corpora"] += 1
    return names[name]


def _new_caption(
    conn: Any,
    corpus_id: int,
    text: str,
    key: str,
    payload: dict[str, Any],
    taken: set[int],
    fresh: list[dict[str, Any]],
) -> int:
    """The id of a payload's new caption (``done``): the payload's own, its row appended to
    ``fresh`` (inserted with the chunk), unless another caption has that id — then the row
    is inserted now under a new id (the reference row names the caption, not the
    payload)."""
    values = {"corpus_id": corpus_id, "text": text, "text_hash": key, "status": "done"}
    values["attempts"] = 1
    wanted = payload.get("caption_id")
    if wanted is not None and int(wanted) not in taken:
        caption_id = int(wanted)
        fresh.append({"id": caption_id, **values})
    else:  # SQLite picks max(id) + 1: the rows waiting in ``fresh`` go first
        if fresh:
            conn.execute(insert(caption), fresh)
            fresh.clear()
        caption_id = int(conn.execute(insert(caption).values(**values)).inserted_primary_key[0])
    taken.add(caption_id)
    return caption_id


def _hold(conn: Any, pairs: set[tuple[int, int]]) -> None:
    """Insert the (caption, corpus) holdings of ``pairs`` the catalog lacks."""
    if not pairs:
        return
    ids = sorted({c for c, _ in pairs})
    held = conn.execute(
        select(caption_corpus.c.caption_id, caption_corpus.c.corpus_id).where(
            caption_corpus.c.caption_id.in_(ids)
        )
    )
    fresh = sorted(pairs - {(int(c), int(k)) for c, k in held})
    if fresh:
        conn.execute(insert(caption_corpus), [{"caption_id": c, "corpus_id": k} for c, k in fresh])
