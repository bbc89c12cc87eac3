"""SQL catalog of corpora, captions (with job state) and references (design §4), on SQLAlchemy 2.

SQLite by default (``DIR/catalog.sqlite``, WAL mode; every transaction starts with
``BEGIN IMMEDIATE`` so concurrent writers serialise instead of failing on lock upgrades);
any SQLAlchemy URL works (PostgreSQL for several machines: leases are claimed with
``SELECT … FOR UPDATE SKIP LOCKED``).  On PostgreSQL, where writers do not serialise, the
read-then-write steps that concurrent processes may run at once — migrating a new catalog,
registering a corpus, writing ``collection_meta`` — hold a transaction-scoped advisory lock,
and ``complete`` locks its caption rows first, so two workers completing the same captions
(an expired lease retried while its first owner still finishes) write the rows once.
Lease expiry compares the clients' clocks (``time.time()``): keep the machines' clocks in
sync (NTP) and leases much longer than the skew.

Caption lifecycle: ``pending`` → (claim) ``leased`` → ``done`` | ``failed``.  A claim counts
an attempt; a lease that expires (dead worker) makes the caption claimable again; a failed
caption is retried while ``attempts < max_attempts``; ``release`` (clean shutdown) hands a
caption back without counting the attempt.

Captions are normalised (Unicode NFC, runs of whitespace collapsed to one space, stripped)
and deduplicated across all corpora by the sha256 of the normalised UTF-8 text.  Empty or
non-string captions and captions longer than :data:`MAX_CAPTION_CHARS` characters (after
normalisation; a caption is a sentence, and CLIP reads 77 tokens) are counted as skipped.

Tables and the versioned migration scheme: :mod:`fossil.db.schema` (run on open).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import sqlite3
import time
import unicodedata
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    case,
    create_engine,
    delete,
    event,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import make_url

from fossil.config import CollectionSettings
from fossil.db.protocols import AddResult, CaptionJob, CollectionMeta, ReferenceRow
from fossil.db.schema import (
    INSTANCE_KEY,
    MIGRATIONS,
    NOT_META_KEYS,
    SETTINGS_KEY,
    caption,
    caption_corpus,
    catalog_state,
    collection_meta,
    corpus,
    reference,
    schema_version,
)
from fossil.invisible import strip_invisible

logger = logging.getLogger(__name__)

MAX_CAPTION_CHARS = 1000  # longer "captions" are documents, not captions: skipped and counted
MAX_ERROR_CHARS = 2000  # stored error messages are truncated to this
STATUSES = ("pending", "leased", "done", "failed")
_CHUNK = 500  # rows per IN (...) list: stays below SQLite's bound-parameter limit
_WHITESPACE = re.compile(r"\s+")
# PostgreSQL advisory lock keys (one 64-bit namespace per database): "fossil" + a number.
_SCHEMA_LOCK = 0x666F7373696C01
_REGISTER_LOCK = 0x666F7373696C02
_META_LOCK = 0x666F7373696C03


def normalise_caption(text: str) -> str:
    """Control and bidi-override characters removed, NFC, whitespace runs collapsed to one
    space, stripped."""
    return _WHITESPACE.sub(" ", unicodedata.normalize("NFC", strip_invisible(text))).strip()


def caption_hash(normalised: str) -> str:
    """sha256 hex digest of the normalised caption's UTF-8 bytes."""
    return hashlib.sha256(normalised.encode("utf-8")).hexdigest()


def _item_key(key: str) -> str:
    if not isinstance(key, str) or not re.fullmatch(r"[0-9a-f]{64}", key):
        raise ValueError(f"item key ({key!r}) must be 64 lowercase hex digits (a sha256)")
    return key


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class CatalogDamagedError(RuntimeError):
    """The catalog file is not a SQLite database, or one whose pages are damaged."""


def damaged_message(where: str, detail: object) -> str:
    return (
        f"{where} is not a fossil catalog or is damaged ({detail}): rebuild it from the vector "
        "store with `fossil store check --repair --store DIR`, or restore it from a backup"
    )


def _sqlite_engine_setup(engine: Engine) -> None:
    @event.listens_for(engine, "handle_error")
    def _on_error(context: Any) -> None:
        error = context.original_exception
        if isinstance(error, sqlite3.DatabaseError) and not isinstance(
            error, sqlite3.OperationalError | sqlite3.IntegrityError
        ):  # "file is not a database", "database disk image is malformed"
            raise CatalogDamagedError(damaged_message(str(engine.url.database), error)) from error

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself (below)
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


class SqlCatalog:
    """:class:`~fossil.db.protocols.CatalogStore` over SQLAlchemy.

    ``url``: any SQLAlchemy URL (``sqlite:///DIR/catalog.sqlite``, ``postgresql://…``).
    ``clock`` returns seconds (injected in tests); ``max_attempts`` bounds how often a caption
    is tried before it stays ``failed``.
    """

    def __init__(
        self,
        url: str,
        *,
        max_attempts: int = 3,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts ({max_attempts}) must be >= 1")
        self.url = url
        self.max_attempts = max_attempts
        self._clock = clock
        backend = make_url(url).get_backend_name()
        # pre-ping: a server connection left idle through long generation batches may be gone
        self._engine = create_engine(url, pool_pre_ping=backend != "sqlite")
        self._postgres = backend == "postgresql"
        if backend == "sqlite":
            _sqlite_engine_setup(self._engine)
        self._migrate()

    def _serialise(self, conn: Connection, key: int) -> None:
        """PostgreSQL: wait for the transaction-scoped advisory lock ``key``, so the
        check-then-write steps of concurrent processes run one at a time (each statement
        after it sees what the previous holder committed).  SQLite: nothing to do, BEGIN
        IMMEDIATE already serialises writers."""
        if self._postgres:
            conn.execute(select(func.pg_advisory_xact_lock(key)))

    # -- schema ---------------------------------------------------------------------------
    @staticmethod
    def _stored_version(conn: Connection) -> int:
        return int(conn.execute(select(func.max(schema_version.c.version))).scalar() or 0)

    def _migrate(self) -> None:
        """Bring the schema to the latest version.  Safe when several processes open a new
        catalog at once: each step re-reads the version under the schema lock and runs only
        if no other process ran it meanwhile."""
        with self._engine.begin() as conn:
            self._serialise(conn, _SCHEMA_LOCK)
            schema_version.create(conn, checkfirst=True)
            current = self._stored_version(conn)
        latest = max(MIGRATIONS)
        if current > latest:
            raise RuntimeError(
                f"catalog {self.url!r} has schema version {current}, newer than this fossil "
                f"supports ({latest}): upgrade fossil"
            )
        for version in range(current + 1, latest + 1):
            with self._engine.begin() as conn:
                self._serialise(conn, _SCHEMA_LOCK)
                if self._stored_version(conn) >= version:
                    continue  # another process ran this step meanwhile
                MIGRATIONS[version](conn)
                conn.execute(delete(schema_version))
                conn.execute(insert(schema_version).values(version=version))
            logger.info("catalog %s migrated to schema version %d", self.url, version)

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (for :mod:`fossil.db.check`'s repairs)."""
        return self._engine

    def schema_version(self) -> int:
        with self._engine.connect() as conn:
            return int(conn.execute(select(func.max(schema_version.c.version))).scalar() or 0)

    def close(self) -> None:
        self._engine.dispose()

    # -- corpora ----------------------------------------------------------------------------
    def add_corpus(
        self,
        name: str,
        source: str,
        captions: Iterable[Any],
        *,
        phrase: str | None = None,
        items: Sequence[tuple[str, str]] | None = None,
    ) -> AddResult:
        """``items``: per caption, its own ``(key, phrase)`` instead of the hash of its text
        and the corpus ``phrase`` (labelled photos: one caption row per (photo, class), whose
        texts repeat; ``key`` a 64-hex-digit id, :func:`fossil.ingest.labelled_refs.item_key`).
        """
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"corpus name ({name!r}) must be a non-empty string")
        if phrase is not None and (not isinstance(phrase, str) or not phrase.strip()):
            raise ValueError(f"phrase ({phrase!r}) must be a non-empty string or None")
        captions = list(captions)
        if items is not None and (len(items) != len(captions) or phrase is not None):
            raise ValueError(
                f"items ({len(items)}) must pair with the captions ({len(captions)}), "
                "without a corpus phrase"
            )
        skipped = 0
        unique: dict[str, str] = {}  # hash -> normalised text, first occurrence wins
        phrases: dict[str, str | None] = {}  # hash -> its phrase (items)
        seen = 0
        for i, raw in enumerate(captions):
            seen += 1
            if not isinstance(raw, str):
                skipped += 1
                continue
            text = normalise_caption(raw)
            if not text or len(text) > MAX_CAPTION_CHARS:
                skipped += 1
                continue
            key = caption_hash(text) if items is None else _item_key(items[i][0])
            unique.setdefault(key, text)
            phrases.setdefault(key, phrase if items is None else items[i][1])
        with self._engine.begin() as conn:
            self._serialise(conn, _REGISTER_LOCK)
            found = conn.execute(
                select(corpus.c.id, corpus.c.removing).where(corpus.c.name == name)
            ).first()
            if found is not None and found.removing:
                raise ValueError(
                    f"corpus {name!r} is being removed (an interrupted `fossil corpus remove`): "
                    f"finish it with `fossil corpus remove {name!r}` before adding to it"
                )
            if found is None:
                inserted = conn.execute(
                    insert(corpus).values(name=name, source=source, added_at=self._clock())
                )
                corpus_id = inserted.inserted_primary_key[0]  # type: ignore[index]
            else:
                corpus_id = found.id
            hashes = list(unique)
            existing: set[str] = set()
            for part in _chunks(hashes):
                existing.update(
                    conn.execute(select(caption.c.text_hash).where(caption.c.text_hash.in_(part)))
                    .scalars()
                    .all()
                )
            rows = [
                {
                    "corpus_id": corpus_id,
                    "text": unique[h],
                    "text_hash": h,
                    "status": "pending",
                    "phrase": phrases[h],
                }
                for h in hashes
                if h not in existing
            ]
            for part in _chunks(rows, 5000):
                conn.execute(insert(caption), list(part))
            self._hold(conn, corpus_id, hashes)
        result = AddResult(added=len(rows), duplicates=seen - skipped - len(rows), skipped=skipped)
        logger.info("corpus %r: %s", name, result)
        return result

    @staticmethod
    def _hold(conn: Connection, corpus_id: int, hashes: Sequence[str]) -> None:
        """Record that corpus ``corpus_id`` holds the captions of ``hashes`` (new ones and
        ones another corpus registered first)."""
        for part in _chunks(list(hashes)):
            ids = conn.execute(select(caption.c.id).where(caption.c.text_hash.in_(part)))
            wanted = set(ids.scalars())
            held = conn.execute(
                select(caption_corpus.c.caption_id).where(
                    caption_corpus.c.corpus_id == corpus_id,
                    caption_corpus.c.caption_id.in_(sorted(wanted)),
                )
            )
            fresh = sorted(wanted - set(held.scalars()))
            if fresh:
                conn.execute(
                    insert(caption_corpus),
                    [{"caption_id": i, "corpus_id": corpus_id} for i in fresh],
                )

    def corpora(self) -> list[dict[str, Any]]:
        """Per corpus: ``name``, ``source``, ``added_at``, ``captions`` (every caption it
        holds, also those another corpus registered first), ``references`` (of those
        captions) and ``removing`` (an unfinished ``fossil corpus remove``)."""
        captions = (
            select(
                corpus.c.id,
                corpus.c.name,
                corpus.c.source,
                corpus.c.added_at,
                corpus.c.removing,
                func.count(caption_corpus.c.caption_id),
            )
            .select_from(corpus.outerjoin(caption_corpus))
            .group_by(corpus.c.id)
            .order_by(corpus.c.id)
        )
        references = (
            select(caption_corpus.c.corpus_id, func.count())
            .select_from(
                reference.join(
                    caption_corpus, reference.c.caption_id == caption_corpus.c.caption_id
                )
            )
            .group_by(caption_corpus.c.corpus_id)
        )
        with self._engine.connect() as conn:
            counts = {corpus_id: int(n) for corpus_id, n in conn.execute(references)}
            return [
                {
                    "name": name,
                    "source": source,
                    "added_at": added_at,
                    "captions": int(n),
                    "references": counts.get(corpus_id, 0),
                    "removing": bool(removing),
                }
                for corpus_id, name, source, added_at, removing, n in conn.execute(captions)
            ]

    def _corpus_id(self, conn: Connection, name: str) -> int:
        corpus_id = conn.execute(select(corpus.c.id).where(corpus.c.name == name)).scalar()
        if corpus_id is None:
            names = conn.execute(select(corpus.c.name).order_by(corpus.c.id)).scalars().all()
            raise ValueError(
                f"no corpus named {name!r} in the catalog; its corpora: "
                f"{', '.join(repr(n) for n in names) or '(none)'}"
            )
        return int(corpus_id)

    def begin_removal(self, name: str, *, force: bool = False) -> bool:
        """Step 1 of removing a corpus: mark it, so its captions are no longer claimed and
        a rerun knows to finish.  Refused while a worker holds an unexpired lease on one of
        its captions (its references could land after the removal) unless ``force``.
        Returns whether it was marked already (an interrupted removal being finished)."""
        with self._engine.begin() as conn:
            self._serialise(conn, _REGISTER_LOCK)
            corpus_id = self._corpus_id(conn, name)
            marked = conn.execute(select(corpus.c.removing).where(corpus.c.id == corpus_id))
            leased = conn.execute(
                select(func.count()).where(
                    caption.c.id.in_(self._held_by(corpus_id)),
                    caption.c.status == "leased",
                    caption.c.lease_expires >= self._clock(),
                )
            ).scalar()
            if leased and not force:
                raise RuntimeError(
                    f"{leased} captions of corpus {name!r} are leased by running workers: "
                    "stop them (or wait for the leases to expire) before removing it"
                )
            resumed = bool(marked.scalar())
            conn.execute(update(corpus).where(corpus.c.id == corpus_id).values(removing=1))
        return resumed

    @staticmethod
    def _held_by(corpus_id: int) -> Any:
        """SELECT of the ids of the captions corpus ``corpus_id`` holds."""
        return select(caption_corpus.c.caption_id).where(caption_corpus.c.corpus_id == corpus_id)

    @staticmethod
    def _only_in(corpus_id: int) -> Any:
        """SELECT of the ids of the captions that corpus ``corpus_id`` alone holds."""
        others = select(caption_corpus.c.caption_id).where(caption_corpus.c.corpus_id != corpus_id)
        return SqlCatalog._held_by(corpus_id).where(caption_corpus.c.caption_id.not_in(others))

    def corpus_references(self, name: str) -> list[tuple[str, str | None]]:
        """``(point_id, thumbnail)`` of every catalogued reference of the captions that corpus
        ``name`` alone holds (those its removal deletes)."""
        with self._engine.connect() as conn:
            corpus_id = self._corpus_id(conn, name)
            stmt = (
                select(reference.c.point_id, reference.c.thumbnail)
                .where(reference.c.caption_id.in_(self._only_in(corpus_id)))
                .order_by(reference.c.point_id)
            )
            return [(point, thumb) for point, thumb in conn.execute(stmt)]

    def shared_references(self, name: str) -> dict[str, list[str]]:
        """Points of captions that corpus ``name`` registered first and another corpus also
        holds, by the corpus they pass to when ``name`` is removed (the first other holder):
        their payload's ``corpus`` must follow."""
        with self._engine.connect() as conn:
            corpus_id = self._corpus_id(conn, name)
            heir = (
                select(func.min(caption_corpus.c.corpus_id))
                .where(
                    caption_corpus.c.caption_id == caption.c.id,
                    caption_corpus.c.corpus_id != corpus_id,
                )
                .scalar_subquery()
            )
            stmt = (
                select(reference.c.point_id, corpus.c.name)
                .select_from(reference.join(caption))
                .join(corpus, corpus.c.id == heir)
                .where(caption.c.corpus_id == corpus_id)
            )
            out: dict[str, list[str]] = {}
            for point, heir_name in conn.execute(stmt):
                out.setdefault(heir_name, []).append(point)
            return out

    def finish_removal(self, name: str) -> dict[str, int]:
        """Last step of removing a corpus (after its points left the vector store): one
        transaction deletes the captions it alone holds with their reference rows, passes
        the captions it shares to the next corpus holding them, deletes the corpus, and
        bumps the revision.  Returns the counts deleted (and ``kept``: shared captions)."""
        with self._engine.begin() as conn:
            self._serialise(conn, _REGISTER_LOCK)
            corpus_id = self._corpus_id(conn, name)
            sole = [int(i) for i in conn.execute(self._only_in(corpus_id)).scalars()]
            references = captions = 0
            for part in _chunks(sole):
                references += conn.execute(
                    delete(reference).where(reference.c.caption_id.in_(part))
                ).rowcount
            conn.execute(delete(caption_corpus).where(caption_corpus.c.corpus_id == corpus_id))
            for part in _chunks(sole):
                captions += conn.execute(delete(caption).where(caption.c.id.in_(part))).rowcount
            heir = (
                select(func.min(caption_corpus.c.corpus_id))
                .where(caption_corpus.c.caption_id == caption.c.id)
                .scalar_subquery()
            )
            kept = conn.execute(
                update(caption).where(caption.c.corpus_id == corpus_id).values(corpus_id=heir)
            ).rowcount
            conn.execute(delete(corpus).where(corpus.c.id == corpus_id))
            self._bump(conn)
        logger.info(
            "corpus %r removed: %d references, %d captions (%d kept: other corpora hold them)",
            name,
            references,
            captions,
            kept,
        )
        return {"references": int(references), "captions": int(captions), "kept": int(kept)}

    # -- jobs -------------------------------------------------------------------------------
    @staticmethod
    def _held_by_any(names: Sequence[str]) -> Any:
        """SELECT of the ids of the captions any corpus named in ``names`` holds."""
        return (
            select(caption_corpus.c.caption_id)
            .join(corpus, corpus.c.id == caption_corpus.c.corpus_id)
            .where(corpus.c.name.in_(list(names)))
        )

    def _claimable(self, now: float) -> Any:
        return (corpus.c.removing == 0) & or_(
            caption.c.status == "pending",
            (caption.c.status == "leased") & (caption.c.lease_expires < now),
            (caption.c.status == "failed") & (caption.c.attempts < self.max_attempts),
        )

    def claim(
        self,
        owner: str,
        batch_size: int,
        lease_seconds: float,
        *,
        corpora: Sequence[str] | None = None,
    ) -> list[CaptionJob]:
        """Lease up to ``batch_size`` claimable captions (of ``corpora`` only, when given)."""
        if batch_size < 1:
            raise ValueError(f"batch_size ({batch_size}) must be >= 1")
        if lease_seconds <= 0:
            raise ValueError(f"lease_seconds ({lease_seconds}) must be > 0")
        now = self._clock()
        stmt = (
            select(
                caption.c.id, caption.c.text, caption.c.text_hash, caption.c.phrase, corpus.c.name
            )
            .join(corpus, caption.c.corpus_id == corpus.c.id)
            .where(self._claimable(now))
            .order_by(caption.c.id)
            .limit(batch_size)
            .with_for_update(skip_locked=True, of=caption)
        )
        if corpora is not None:
            stmt = stmt.where(caption.c.id.in_(self._held_by_any(corpora)))
        with self._engine.begin() as conn:
            picked = conn.execute(stmt).all()
            ids = [row.id for row in picked]
            if not ids:
                return []
            conn.execute(
                update(caption)
                .where(caption.c.id.in_(ids))
                .values(
                    status="leased",
                    lease_owner=owner,
                    lease_expires=now + lease_seconds,
                    attempts=caption.c.attempts + 1,
                )
            )
            attempts = {
                row.id: row.attempts
                for row in conn.execute(
                    select(caption.c.id, caption.c.attempts).where(caption.c.id.in_(ids))
                )
            }
        return [
            CaptionJob(r.id, r.text, r.text_hash, r.name, attempts[r.id], r.phrase) for r in picked
        ]

    def complete(
        self, owner: str, caption_ids: Sequence[int], rows: Sequence[ReferenceRow]
    ) -> None:
        """One transaction: captions ``done``, new reference rows inserted (rows already
        catalogued are kept: a rerun after a crash adds nothing), revision bumped when rows
        were added.  Accepted whoever holds the lease now: with deterministic point ids a
        late completion writes the same rows (design §4)."""
        ids = set(caption_ids)
        strays = sorted({r.caption_id for r in rows} - ids)
        if strays:
            raise ValueError(f"reference rows name caption ids {strays} not in caption_ids")
        point_ids = [r.point_id for r in rows]
        if len(set(point_ids)) != len(point_ids):
            raise ValueError("rows contain duplicate point ids")
        with self._engine.begin() as conn:
            known: set[int] = set()
            for part in _chunks(sorted(ids)):
                # FOR UPDATE (PostgreSQL; SQLite ignores it, its writers are serialised): a
                # concurrent completion of the same captions waits for this one to commit,
                # then finds its rows already catalogued instead of failing on the keys.
                known.update(
                    conn.execute(
                        select(caption.c.id)
                        .where(caption.c.id.in_(part))
                        .order_by(caption.c.id)
                        .with_for_update()
                    ).scalars()
                )
            if known != ids:
                raise ValueError(f"unknown caption ids {sorted(ids - known)}")
            existing = self._existing_points(conn, point_ids)
            fresh = [r for r in rows if r.point_id not in existing]
            if fresh:
                conn.execute(insert(reference), [r.__dict__ for r in fresh])
            for part in _chunks(sorted(ids)):
                conn.execute(
                    update(caption)
                    .where(caption.c.id.in_(part))
                    .values(status="done", lease_owner=None, lease_expires=None, error=None)
                )
            if fresh:
                self._bump(conn)
        if len(fresh) < len(rows):
            logger.info("%d reference rows were already catalogued", len(rows) - len(fresh))

    def fail(self, owner: str, caption_id: int, error: str) -> None:
        with self._engine.begin() as conn:
            done = conn.execute(
                update(caption)
                .where(caption.c.id == caption_id, caption.c.status != "done")
                .values(
                    status="failed",
                    lease_owner=None,
                    lease_expires=None,
                    error=str(error)[:MAX_ERROR_CHARS],
                )
            )
            if done.rowcount == 0:
                raise ValueError(f"caption_id {caption_id} is unknown or already done")

    def release(self, owner: str, caption_ids: Sequence[int]) -> None:
        with self._engine.begin() as conn:
            for part in _chunks(list(caption_ids)):
                conn.execute(
                    update(caption)
                    .where(
                        caption.c.id.in_(part),
                        caption.c.status == "leased",
                        caption.c.lease_owner == owner,
                    )
                    .values(
                        status="pending",
                        lease_owner=None,
                        lease_expires=None,
                        attempts=case((caption.c.attempts > 0, caption.c.attempts - 1), else_=0),
                    )
                )

    def release_all(self) -> int:
        """Hand back every lease, whoever holds it; returns how many.  Only safe when no other
        worker can be running, e.g. on opening a locked embedded store after a crash."""
        with self._engine.begin() as conn:
            result = conn.execute(
                update(caption)
                .where(caption.c.status == "leased")
                .values(status="pending", lease_owner=None, lease_expires=None)
            )
        return int(result.rowcount)

    def status_counts(self, corpora: Sequence[str] | None = None) -> dict[str, int]:
        """Captions per status (of ``corpora`` only, when given)."""
        counts = dict.fromkeys(STATUSES, 0)
        stmt = select(caption.c.status, func.count()).group_by(caption.c.status)
        if corpora is not None:
            stmt = stmt.where(caption.c.id.in_(self._held_by_any(corpora)))
        with self._engine.connect() as conn:
            for status, n in conn.execute(stmt):
                counts[status] = int(n)
        return counts

    def failures(self, limit: int = 20) -> list[dict[str, Any]]:
        """Failed captions (most attempts first): ``id``, ``text``, ``attempts``, ``error``."""
        stmt = (
            select(caption.c.id, caption.c.text, caption.c.attempts, caption.c.error)
            .where(caption.c.status == "failed")
            .order_by(caption.c.attempts.desc(), caption.c.id)
            .limit(limit)
        )
        with self._engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(stmt)]

    # -- references -------------------------------------------------------------------------
    @staticmethod
    def _existing_points(conn: Connection, point_ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for part in _chunks(list(point_ids)):
            found.update(
                conn.execute(
                    select(reference.c.point_id).where(reference.c.point_id.in_(part))
                ).scalars()
            )
        return found

    @staticmethod
    def _bump(conn: Connection) -> None:
        conn.execute(
            update(catalog_state)
            .where(catalog_state.c.id == 1)
            .values(revision=catalog_state.c.revision + 1)
        )

    def remove_references(self, point_ids: Sequence[str]) -> int:
        """Delete reference rows (after deleting the points from the vector store); returns
        how many existed.  Bumps the revision when any did."""
        with self._engine.begin() as conn:
            removed = 0
            for part in _chunks(list(point_ids)):
                removed += conn.execute(
                    delete(reference).where(reference.c.point_id.in_(part))
                ).rowcount
            if removed:
                self._bump(conn)
        return removed

    def reference_count(self) -> int:
        with self._engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(reference)).scalar() or 0)

    def latest_references(self, limit: int = 8) -> list[dict[str, Any]]:
        """The ``limit`` references of the captions completed last (highest caption ids;
        claims go in id order), oldest first: ``point_id``, ``noun``, ``caption``."""
        stmt = (
            select(reference.c.point_id, reference.c.noun, caption.c.text.label("caption"))
            .join(caption, caption.c.id == reference.c.caption_id)
            .order_by(reference.c.caption_id.desc(), reference.c.point_id.desc())
            .limit(limit)
        )
        with self._engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(stmt)][::-1]

    def top_lemmas(self, limit: int | None = 20) -> list[tuple[str, int]]:
        """The ``limit`` (None: all) most frequent noun lemmas with their reference counts."""
        n = func.count().label("n")
        stmt = select(reference.c.lemma, n).group_by(reference.c.lemma)
        stmt = stmt.order_by(n.desc(), reference.c.lemma).limit(limit)
        with self._engine.connect() as conn:
            return [(lemma, int(count)) for lemma, count in conn.execute(stmt)]

    def lemma_samples(self) -> list[tuple[str, int, list[str]]]:
        """Per noun lemma: its reference count and two of its references' point ids (the
        smallest and the largest: the same ones every time; one when they coincide).  One
        grouped pass over the reference table (0.3 s at 1M references on SQLite, where a
        per-lemma ranking took 3.8 s)."""
        stmt = select(
            reference.c.lemma,
            func.count(),
            func.min(reference.c.point_id),
            func.max(reference.c.point_id),
        ).group_by(reference.c.lemma)
        with self._engine.connect() as conn:
            return [
                (lemma, int(count), list(dict.fromkeys([low, high])))
                for lemma, count, low, high in conn.execute(stmt)
            ]

    def revision(self) -> int:
        with self._engine.connect() as conn:
            return int(conn.execute(select(catalog_state.c.revision)).scalar() or 0)

    def lookup(self, point_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Per point id: ``caption``, ``noun``, ``lemma``, ``corpus``, ``thumbnail`` (and
        ``caption_id``, ``mask_area``).  Unknown ids are absent from the result."""
        stmt = select(
            reference.c.point_id,
            reference.c.caption_id,
            reference.c.noun,
            reference.c.lemma,
            reference.c.mask_area,
            reference.c.thumbnail,
            caption.c.text.label("caption"),
            corpus.c.name.label("corpus"),
        ).select_from(reference.join(caption).join(corpus))
        out: dict[str, dict[str, Any]] = {}
        with self._engine.connect() as conn:
            for part in _chunks(list(point_ids)):
                for row in conn.execute(stmt.where(reference.c.point_id.in_(part))):
                    values = dict(row._mapping)
                    out[values.pop("point_id")] = values
        return out

    # -- collection meta --------------------------------------------------------------------
    def get_meta(self) -> CollectionMeta | None:
        with self._engine.connect() as conn:
            rows = conn.execute(select(collection_meta.c.key, collection_meta.c.value)).all()
        stored = {key: value for key, value in rows if key not in NOT_META_KEYS}
        if not stored:
            return None
        return CollectionMeta(**{key: json.loads(value) for key, value in stored.items()})

    def set_meta(self, meta: CollectionMeta) -> None:
        """Record what the collection is built with (and give it its instance id when it
        has none yet)."""
        with self._engine.begin() as conn:
            self._serialise(conn, _META_LOCK)
            self.write_meta(conn, meta)

    @staticmethod
    def write_meta(conn: Connection, meta: CollectionMeta) -> None:
        """Within a transaction: :meth:`set_meta` (for a caller whose other writes must
        commit with it, e.g. a catalog rebuilt by ``fossil store check --repair``)."""
        conn.execute(delete(collection_meta).where(collection_meta.c.key.not_in(NOT_META_KEYS)))
        conn.execute(
            insert(collection_meta),
            [{"key": k, "value": json.dumps(v)} for k, v in meta.as_dict().items()],
        )
        SqlCatalog._instance(conn)

    def get_settings(self) -> CollectionSettings | None:
        """The settings the collection was built for (None: none recorded)."""
        with self._engine.connect() as conn:
            found = conn.execute(
                select(collection_meta.c.value).where(collection_meta.c.key == SETTINGS_KEY)
            ).scalar()
        return None if found is None else CollectionSettings.from_dict(json.loads(found))

    def set_settings(self, settings: CollectionSettings) -> None:
        """Record the settings the collection is built for (replacing any recorded)."""
        with self._engine.begin() as conn:
            self._serialise(conn, _META_LOCK)
            conn.execute(delete(collection_meta).where(collection_meta.c.key == SETTINGS_KEY))
            conn.execute(
                insert(collection_meta).values(
                    key=SETTINGS_KEY, value=json.dumps(settings.as_dict(), ensure_ascii=False)
                )
            )

    def instance_id(self) -> str:
        """The collection's random id (32 hex digits), created with it; a catalog made
        before fossil recorded one gets one now."""
        with self._engine.connect() as conn:
            found = conn.execute(
                select(collection_meta.c.value).where(collection_meta.c.key == INSTANCE_KEY)
            ).scalar()
        if found is not None:
            return str(json.loads(found))
        with self._engine.begin() as conn:
            self._serialise(conn, _META_LOCK)
            return self._instance(conn)

    @staticmethod
    def _instance(conn: Connection) -> str:
        """Within a transaction: the stored instance id, or a new one stored now."""
        found = conn.execute(
            select(collection_meta.c.value).where(collection_meta.c.key == INSTANCE_KEY)
        ).scalar()
        if found is not None:
            return str(json.loads(found))
        instance = uuid.uuid4().hex
        conn.execute(insert(collection_meta).values(key=INSTANCE_KEY, value=json.dumps(instance)))
        return instance
