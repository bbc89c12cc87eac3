"""Move an embedded store up to a Qdrant server (design §7): its points, and its catalog.

Points are copied with the server schema of :mod:`fossil.db.server` (the target collection is
created when missing) under their own deterministic ids (design §4), so an export is idempotent and
resumable: a rerun skips the ids the target already holds (or, with ``overwrite``, upserts
them again — same id, same point).  The target is labelled with the store's
``collection_meta`` (Qdrant collection metadata, key :data:`META_KEY`); a target labelled, or
catalogued, with other encoders or generation settings is refused before anything is written,
naming both sides.

The catalog (SQLite in the store directory) is copied into another SQLAlchemy URL (PostgreSQL
for several machines) with its ids kept — point payloads name caption ids — in one transaction
after the points (the design §4 write order): rows already there are kept, missing ones added, a
caption done in the store becomes done in the target, leases of the embedded store (a dead
run's) are dropped.  Without a target catalog URL the catalog stays in the store directory and
serves the server collection from there (``--store DIR --qdrant-url URL``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Table,
    create_engine,
    insert,
    make_url,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError

from fossil.db.open import meta_mismatch, open_collection, store_catalog_url
from fossil.db.protocols import CollectionMeta, ReferenceStore
from fossil.db.schema import (
    NOT_META_KEYS,
    caption,
    caption_corpus,
    catalog_state,
    collection_meta,
    corpus,
    reference,
)
from fossil.errors import naming
from fossil.records import ReferencePoint

logger = logging.getLogger(__name__)

META_KEY = "fossil_collection_meta"  # Qdrant collection metadata key of an exported collection
ROWS_PER_READ = 5000  # catalog rows per read / insert


@dataclass
class ExportResult:
    """What an export did.  ``catalog``: the catalog to use with the server collection (its
    URL, password hidden)."""

    source: str
    target: str
    collection: str
    points_copied: int = 0
    points_skipped: int = 0  # already in the target (same deterministic id)
    target_points: int = 0
    catalog: str = ""
    catalog_copied: bool = False
    corpora_added: int = 0
    captions_added: int = 0
    captions_marked_done: int = 0
    references_added: int = 0


def _refuse_other_settings(
    target: CollectionMeta, source: CollectionMeta, target_name: str, source_name: str
) -> None:
    """Raise ValueError naming every field where ``target`` and ``source`` differ."""
    problem = meta_mismatch(
        target,
        source,
        stored_has=f"{target_name} has",
        given_has=f"{source_name} has",
        subject=f"{target_name} was built with other settings than {source_name}",
        fix="export into another collection or an empty catalog",
        schema=True,
    )
    if problem:
        raise naming(ValueError(problem), "collection")


def collection_label(client: Any, name: str) -> CollectionMeta | None:
    """The ``collection_meta`` an export recorded on Qdrant collection ``name`` (None: none)."""
    if not client.collection_exists(name):
        return None
    metadata = client.get_collection(name).config.metadata or {}
    stored = metadata.get(META_KEY)
    return CollectionMeta(**stored) if stored else None


def copy_points(
    source: ReferenceStore,
    target: ReferenceStore,
    *,
    batch_size: int = 256,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
) -> tuple[int, int]:
    """Every point of ``source`` into ``target`` (a :class:`~fossil.db.server.ServerStore` in
    an export), ``batch_size`` per scroll and upsert.  Points whose id ``target`` holds
    already are skipped unless ``overwrite``.  ``progress(n)`` after each batch.  Returns
    (copied, skipped)."""
    if batch_size < 1:
        raise ValueError(f"batch_size ({batch_size}) must be >= 1")
    copied = skipped = 0
    batch: list[ReferencePoint] = []
    for point in source.iter_points(batch_size):
        batch.append(point)
        if len(batch) == batch_size:
            done = _copy_batch(target, batch, overwrite)
            copied, skipped = copied + done, skipped + len(batch) - done
            if progress is not None:
                progress(len(batch))
            batch = []
    if batch:
        done = _copy_batch(target, batch, overwrite)
        copied, skipped = copied + done, skipped + len(batch) - done
        if progress is not None:
            progress(len(batch))
    return copied, skipped


def _copy_batch(target: ReferenceStore, batch: Sequence[ReferencePoint], overwrite: bool) -> int:
    if not overwrite:
        present = target.present([p.id for p in batch])
        batch = [p for p in batch if p.id not in present]
    if batch:
        target.upsert(batch)
    return len(batch)


# -- catalog --------------------------------------------------------------------------------
def _rows(conn: Connection, table: Table, key: Any) -> Iterator[list[dict[str, Any]]]:
    """All rows of ``table`` as dicts, ``ROWS_PER_READ`` at a time, in ``key`` order."""
    last: Any = None
    while True:
        stmt = select(table).order_by(key).limit(ROWS_PER_READ)
        if last is not None:
            stmt = stmt.where(key > last)
        rows = [dict(r._mapping) for r in conn.execute(stmt)]
        if not rows:
            return
        yield rows
        last = rows[-1][key.name]


def _existing(conn: Connection, key: Any, values: Sequence[Any], *columns: Any) -> dict[Any, Any]:
    stmt = select(key, *columns).where(key.in_(list(values)))
    return {row[0]: tuple(row[1:]) for row in conn.execute(stmt)}


def copy_catalog(source: Engine, target: Engine, meta: CollectionMeta) -> dict[str, int]:
    """Copy the catalog at ``source`` into ``target`` (both migrated to the same schema) in
    one transaction of ``target``; ids are kept.  Refuses a target whose ``collection_meta``,
    corpora or captions conflict with the source's.  Returns counts of what was added."""
    counts = {"corpora": 0, "captions": 0, "done": 0, "references": 0}
    with source.connect() as src, target.begin() as dst:
        _copy_meta(dst, meta)
        for rows in _rows(src, corpus, corpus.c.id):
            have = _existing(dst, corpus.c.id, [r["id"] for r in rows], corpus.c.name)
            for r in rows:
                if r["id"] in have and have[r["id"]][0] != r["name"]:
                    raise ValueError(
                        f"target catalog has corpus {have[r['id']][0]!r} under id {r['id']}, "
                        f"the store has {r['name']!r}: export into an empty catalog"
                    )
            fresh = [r for r in rows if r["id"] not in have]
            _insert(dst, corpus, fresh, "corpora")
            counts["corpora"] += len(fresh)
        for rows in _rows(src, caption, caption.c.id):
            have = _existing(
                dst, caption.c.id, [r["id"] for r in rows], caption.c.text_hash, caption.c.status
            )
            done = []
            for r in rows:
                if r["id"] in have:
                    if have[r["id"]][0] != r["text_hash"]:
                        raise ValueError(
                            f"target catalog holds another caption under id {r['id']} than "
                            f"the store ({r['text']!r}): export into an empty catalog"
                        )
                    if r["status"] == "done" and have[r["id"]][1] != "done":
                        done.append(r["id"])
                elif r["status"] == "leased":  # the embedded store's leases are a dead run's
                    r.update(status="pending", lease_owner=None, lease_expires=None)
            fresh = [r for r in rows if r["id"] not in have]
            _insert(dst, caption, fresh, "captions")
            if done:
                dst.execute(
                    update(caption)
                    .where(caption.c.id.in_(done))
                    .values(status="done", lease_owner=None, lease_expires=None, error=None)
                )
            counts["captions"] += len(fresh)
            counts["done"] += len(done)
            _copy_holders(src, dst, [r["id"] for r in rows])
        for rows in _rows(src, reference, reference.c.point_id):
            have = _existing(dst, reference.c.point_id, [r["point_id"] for r in rows])
            fresh = [r for r in rows if r["point_id"] not in have]
            _insert(dst, reference, fresh, "references")
            counts["references"] += len(fresh)
        if counts["references"]:  # the prototype cache key must move on
            source_revision = src.execute(select(catalog_state.c.revision)).scalar() or 0
            target_revision = dst.execute(select(catalog_state.c.revision)).scalar() or 0
            dst.execute(
                update(catalog_state)
                .where(catalog_state.c.id == 1)
                .values(revision=max(source_revision, target_revision) + 1)
            )
        if dst.dialect.name == "postgresql":  # explicit ids leave the serial sequences behind
            for table in ("corpus", "caption"):
                dst.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)"
                    )
                )
    return counts


def _copy_meta(dst: Connection, meta: CollectionMeta) -> None:
    stored = {k: json.loads(v) for k, v in dst.execute(select(collection_meta)).all()}
    for key in NOT_META_KEYS:  # the target's own identity and settings, not meta fields
        stored.pop(key, None)
    if not stored:
        dst.execute(
            insert(collection_meta),
            [{"key": k, "value": json.dumps(v)} for k, v in meta.as_dict().items()],
        )
        return
    _refuse_other_settings(CollectionMeta(**stored), meta, "the target catalog", "the store")


def _copy_holders(src: Connection, dst: Connection, caption_ids: list[int]) -> None:
    """The ``caption_corpus`` rows of ``caption_ids`` the target lacks."""
    pairs = select(caption_corpus).where(caption_corpus.c.caption_id.in_(caption_ids))
    have = {tuple(r) for r in dst.execute(pairs)}
    fresh = [dict(r._mapping) for r in src.execute(pairs) if tuple(r) not in have]
    if fresh:
        dst.execute(insert(caption_corpus), fresh)


def _insert(dst: Connection, table: Table, rows: list[dict[str, Any]], what: str) -> None:
    if not rows:
        return
    try:
        dst.execute(insert(table), rows)
    except IntegrityError as error:
        raise ValueError(
            f"target catalog already holds other {what} that clash with the store's "
            f"({str(error.orig).splitlines()[0]}): export into an empty catalog"
        ) from error


def _same_catalog(a: str, b: str) -> bool:
    def key(url: str) -> str:
        if url.startswith("sqlite:///"):
            return "sqlite:///" + str(Path(url.removeprefix("sqlite:///")).expanduser().resolve())
        return url

    return key(a) == key(b)


def _target_catalog_meta(url: str) -> CollectionMeta | None:
    from fossil.db.catalog import SqlCatalog

    catalog = SqlCatalog(url)  # creates / migrates the schema
    try:
        return catalog.get_meta()
    finally:
        catalog.close()


# -- the whole export -----------------------------------------------------------------------
def export_store(
    root: str | Path,
    to: str | Any,
    *,
    api_key: str | None = None,
    collection: str = "fossil_refs",
    catalog_url: str | None = None,
    batch_size: int = 256,
    overwrite: bool = False,
    progress: bool = False,
) -> ExportResult:
    """Copy the embedded store at ``root`` into collection ``collection`` on the Qdrant at
    ``to`` (a URL, ``":memory:"``, or a ``QdrantClient``), and its catalog into
    ``catalog_url`` (None: the catalog stays in ``root``).  Holds the store's lock throughout
    (no ingest may run on it).  Refuses a target built with other settings, naming both."""
    from qdrant_client import QdrantClient
    from tqdm import tqdm

    from fossil.db.server import ServerStore

    source = open_collection(root)  # embedded: the lock keeps writers away
    client: Any = None
    try:
        meta = source.meta
        source_catalog = store_catalog_url(root)
        if isinstance(to, str):
            url = to
            client = QdrantClient(to) if to == ":memory:" else QdrantClient(to, api_key=api_key)
        else:
            url, client = "a Qdrant client", to
        target_name = f"collection {collection!r} on {url}"
        label = collection_label(client, collection)
        if label is not None:
            _refuse_other_settings(label, meta, target_name, f"the store {root}")
        copy_catalog_too = catalog_url is not None and not _same_catalog(
            catalog_url, source_catalog
        )
        if copy_catalog_too:
            assert catalog_url is not None
            stored = _target_catalog_meta(catalog_url)
            if stored is not None:
                _refuse_other_settings(
                    stored, meta, f"the target catalog {catalog_url}", f"the store {root}"
                )
        target = ServerStore(
            client, collection, text_dim=meta.text_dim, visual_dim=meta.visual_dim, create=True
        )
        client.update_collection(collection, metadata={META_KEY: meta.as_dict()})
        result = ExportResult(
            source=str(root), target=url, collection=collection, catalog=source_catalog
        )
        total = source.refs.count()
        with tqdm(total=total, unit="pt", desc="points", disable=not progress) as bar:
            result.points_copied, result.points_skipped = copy_points(
                source.refs,
                target,
                batch_size=batch_size,
                overwrite=overwrite,
                progress=bar.update,
            )
        result.target_points = target.count()
        if result.target_points < total:
            raise RuntimeError(
                f"{target_name} holds {result.target_points} points after the copy, the store "
                f"{total}: run the export again"
            )
        if copy_catalog_too:
            assert catalog_url is not None
            source_engine, target_engine = create_engine(source_catalog), create_engine(catalog_url)
            try:
                counts = copy_catalog(source_engine, target_engine, meta)
            finally:
                source_engine.dispose()
                target_engine.dispose()
            result.catalog = make_url(catalog_url).render_as_string(hide_password=True)
            result.catalog_copied = True
            result.corpora_added = counts["corpora"]
            result.captions_added = counts["captions"]
            result.captions_marked_done = counts["done"]
            result.references_added = counts["references"]
        return result
    finally:
        if isinstance(to, str) and client is not None:
            client.close()
        source.close()


__all__ = [
    "META_KEY",
    "ExportResult",
    "collection_label",
    "copy_catalog",
    "copy_points",
    "export_store",
]
