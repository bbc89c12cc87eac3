"""Catalog schema (design §4) and its migrations.

A minimal versioned migration scheme (no Alembic: one dependency less for a few tables).
``schema_version`` holds one row with the catalog's version; :data:`MIGRATIONS` maps each
version to the function that brings the schema from the previous version to it.  On open,
every step above the stored version runs in its own transaction, in order, and records its
number.  A catalog newer than this code is refused.  To change the schema, append a step
(never edit a released one) — e.g. ``MIGRATIONS[3] = _add_reference_score`` doing
``ALTER TABLE …`` through ``conn``.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import (
    Column,
    Connection,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    insert,
    inspect,
    select,
    text,
)

metadata = MetaData()
schema_version = Table("schema_version", metadata, Column("version", Integer, nullable=False))
corpus = Table(
    "corpus",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("source", Text, nullable=False),
    Column("added_at", Float, nullable=False),
    # v2: 1 while `fossil corpus remove` runs (its captions are not claimed; a rerun finishes)
    Column("removing", Integer, nullable=False, server_default="0"),
)
caption = Table(
    "caption",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("corpus_id", Integer, ForeignKey("corpus.id"), nullable=False),
    Column("text", Text, nullable=False),
    Column("text_hash", String(64), nullable=False, unique=True),
    Column("status", String(16), nullable=False, default="pending", index=True),
    Column("lease_owner", String(255)),
    Column("lease_expires", Float),
    Column("attempts", Integer, nullable=False, default=0),
    Column("error", Text),
    # v2: the noun span to locate, given by whoever registered the caption (`fossil ingest
    # --concepts`): its one reference is of this phrase; None: nouns parsed by spaCy
    Column("phrase", Text),
)
# v3: every corpus that holds a caption (a caption is stored once, deduplicated by its hash;
# caption.corpus_id is the corpus that registered it first).  Removing a corpus drops only
# the captions no remaining corpus holds.
caption_corpus = Table(
    "caption_corpus",
    metadata,
    Column("caption_id", Integer, ForeignKey("caption.id"), primary_key=True),
    Column("corpus_id", Integer, ForeignKey("corpus.id"), primary_key=True, index=True),
)
reference = Table(
    "reference",
    metadata,
    Column("point_id", String(36), primary_key=True),
    Column("caption_id", Integer, ForeignKey("caption.id"), nullable=False, index=True),
    Column("noun", Text, nullable=False),
    Column("lemma", Text, nullable=False, index=True),
    Column("mask_area", Float, nullable=False),
    Column("thumbnail", Text),
)
collection_meta = Table(
    "collection_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)
# collection_meta key of the collection's random id, created with it (or on first read for a
# catalog older than it; no schema change): caches key on it, so a store rebuilt from scratch,
# whose revisions count from 0 again, never meets a cache of the old one
INSTANCE_KEY = "instance_id"
# collection_meta key of the settings the collection was built for (fossil.config.
# CollectionSettings as JSON; recorded by its builder, e.g. `fossil demo`; no schema change)
SETTINGS_KEY = "settings"
NOT_META_KEYS = (INSTANCE_KEY, SETTINGS_KEY)  # rows of collection_meta that are not its fields
catalog_state = Table(
    "catalog_state",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("revision", Integer, nullable=False),
)


def _migrate_1(conn: Connection) -> None:
    """Version 1: the tables of design §4 and the revision counter."""
    metadata.create_all(conn)
    conn.execute(insert(catalog_state).values(id=1, revision=0))


def _migrate_2(conn: Connection) -> None:
    """Version 2: ``caption.phrase`` (concept corpora) and ``corpus.removing`` (crash-safe
    corpus removal).  A catalog created by this code already has them (version 1 creates
    the current tables): only the missing columns are added."""
    inspector = inspect(conn)
    added = {
        "caption": ("phrase", "TEXT"),
        "corpus": ("removing", "INTEGER NOT NULL DEFAULT 0"),
    }
    for table, (column, ddl) in added.items():
        if column not in {c["name"] for c in inspector.get_columns(table)}:
            conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {column} {ddl}"))


def _migrate_3(conn: Connection) -> None:
    """Version 3: ``caption_corpus``, every corpus holding each caption, filled with the
    corpus that registered each caption (all a catalog before it recorded)."""
    caption_corpus.create(conn, checkfirst=True)
    held = select(caption_corpus.c.caption_id)
    conn.execute(
        insert(caption_corpus).from_select(
            ["caption_id", "corpus_id"],
            select(caption.c.id, caption.c.corpus_id).where(caption.c.id.not_in(held)),
        )
    )


MIGRATIONS: dict[int, Callable[[Connection], None]] = {
    1: _migrate_1,
    2: _migrate_2,
    3: _migrate_3,
}
SCHEMA_VERSION = max(MIGRATIONS)
