"""Open (or create) a collection: vector store + catalog + ``collection_meta`` (design §4).

Store directory layout::

    DIR/qdrant/          Qdrant Edge shard (embedded store; absent with a server)
    DIR/qdrant-visual.f32  the shard's VRE row file (:mod:`fossil.db.rowfile`)
    DIR/qdrant.lock      single-process lock of the embedded store
    DIR/catalog.sqlite   SQL catalog (unless another catalog URL is given)
    DIR/collection_meta.json  a copy of the catalog's collection_meta (to rebuild a lost catalog)
    DIR/thumbnails/      optional small previews of generated images and masks
    DIR/cache/           prototype cache and lemma index (fossil.query; safe to delete)

Opening an embedded store refuses a store whose parts disagree in a way a command would
answer wrongly from — a catalog missing or empty beside a shard, a catalog whose tables lost
their rows (no collection_meta beside a shard; no captions beside points), a shard missing
or empty beside a catalog that lists references — naming ``fossil store check --repair``
(:mod:`fossil.db.check`); fewer points than catalogued references is logged as a warning.
A disk without :data:`~fossil.db.space.OPEN_MARGIN` free is refused before anything is
opened: Qdrant Edge would die of SIGBUS (:mod:`fossil.db.space`).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import fields, replace
from pathlib import Path

from fossil.db.protocols import CatalogStore, Collection, CollectionMeta, ReferenceStore
from fossil.db.space import OPEN_MARGIN, require_free

logger = logging.getLogger(__name__)

QDRANT_DIR = "qdrant"
LOCK_FILE = "qdrant.lock"
CATALOG_FILE = "catalog.sqlite"
THUMBNAILS_DIR = "thumbnails"
META_FILE = "collection_meta.json"
CACHE_DIR = "cache"
REPAIR = "`fossil store check --repair --store {root}`"


class StoreDamagedError(RuntimeError):
    """The parts of a store disagree: run ``fossil store check --repair``."""


class MetaMismatchError(ValueError):
    """The collection was built with other encoders or generation settings."""


def meta_mismatch(
    stored: CollectionMeta,
    given: CollectionMeta,
    *,
    stored_has: str = "store has",
    given_has: str = "asked for",
    subject: str = "this collection was built with other settings",
    fix: str = "use the encoders it was built with, or build a new store for these",
    schema: bool = False,
) -> str | None:
    """A message naming every field where ``stored`` and ``given`` differ, or None when they
    agree: ``"{subject} ({field}: {stored_has} X, {given_has} Y; ...): {fix}"``.
    ``schema``: compare ``schema_version`` too (opening a store does not: the catalog's own
    migrations bring it up to date)."""
    pairs = [(f.name, getattr(stored, f.name), getattr(given, f.name)) for f in fields(stored)]
    diffs = [
        f"{name}: {stored_has} {a!r}, {given_has} {b!r}"
        for name, a, b in pairs
        if a != b and (schema or name != "schema_version")
    ]
    if not diffs:
        return None
    return f"{subject} (" + "; ".join(diffs) + f"): {fix}"


def store_catalog_url(root: str | Path) -> str:
    """The SQLAlchemy URL of the SQLite catalog inside store directory ``root``."""
    return f"sqlite:///{Path(root).expanduser() / CATALOG_FILE}"


def _catalog_url(root: Path | None, given: str | None) -> str:
    if given:
        return given
    if root is None:
        raise ValueError("a catalog is needed: give a store directory (root) or catalog_url")
    return store_catalog_url(root)


def _check_meta(catalog: CatalogStore, meta: CollectionMeta | None, create: bool) -> CollectionMeta:
    stored = catalog.get_meta()
    if stored is None:
        if meta is None:
            raise ValueError("the catalog has no collection_meta: pass meta to create one")
        if not create:
            raise FileNotFoundError(
                "the catalog holds no collection yet: create it (create=True, i.e. ingest)"
            )
        catalog.set_meta(meta)
        return meta
    if meta is None:
        return stored
    if not meta.generator:  # labelled photos (design §5.10): any generator will do
        meta = _with_generator(meta, stored)
    first_generator = bool(meta.generator) and not stored.generator  # labelled only so far
    if first_generator:
        stored = _with_generator(stored, meta)
    problem = meta_mismatch(stored, meta)
    if problem:
        raise MetaMismatchError(problem)
    if first_generator:
        logger.info("the collection's first generated references: generator %s", meta.generator)
        catalog.set_meta(stored)
    return stored


def _with_generator(meta: CollectionMeta, source: CollectionMeta) -> CollectionMeta:
    return replace(
        meta, generator=source.generator, generation_fingerprint=source.generation_fingerprint
    )


def _open_edge(
    root: Path,
    catalog_url: str | None,
    meta: CollectionMeta | None,
    create: bool,
    release_stale: bool = False,
) -> Collection:
    from fossil.db.catalog import SqlCatalog
    from fossil.db.edge import EdgeStore, stored_dims
    from fossil.db.lock import StoreLock

    qdrant_dir = root / QDRANT_DIR
    exists = stored_dims(qdrant_dir) is not None
    if not exists and not create:
        if catalog_url is not None or (root / CATALOG_FILE).is_file():
            return _open_captions_only(root, catalog_url, meta)
        raise FileNotFoundError(
            f"no fossil store at {root} (no {QDRANT_DIR}/ shard): create it with "
            f"`fossil ingest SOURCE --store {root}`"
        )
    if catalog_url is None and exists:
        _check_catalog_file(root)
    if root.exists():  # SQLite and Edge write while opening (fossil.db.space)
        require_free(root, OPEN_MARGIN, "open the store")
    root.mkdir(parents=True, exist_ok=True)
    lock = StoreLock(root / LOCK_FILE)  # first: nothing below runs while another holds it
    try:
        catalog = SqlCatalog(_catalog_url(root, catalog_url))
        if not exists and catalog_url is None:
            _check_vectors_lost(root, catalog, 0)
        if exists and catalog_url is None and catalog.get_meta() is None:
            raise StoreDamagedError(_rows_lost(root, "no collection_meta"))
        checked = _check_meta(catalog, meta, create)
        if release_stale and catalog_url is None:
            _release_stale_leases(catalog)
        refs = EdgeStore(
            qdrant_dir,
            text_dim=checked.text_dim,
            visual_dim=checked.visual_dim,
            create=create,
            lock=lock,
        )
    except BaseException:
        lock.release()
        raise
    try:
        if exists and catalog_url is None:
            _check_vectors_lost(root, catalog, refs.count())
        save_meta_copy(root, checked)
        (root / THUMBNAILS_DIR).mkdir(exist_ok=True)
    except BaseException:
        refs.close()
        raise
    return Collection(refs=refs, catalog=catalog, meta=checked, root=str(root))


def _release_stale_leases(catalog: CatalogStore) -> None:
    """The store's own catalog, under the store's lock: no other process can be working on
    it, so its leases belong to runs that died; hand them back now instead of when they
    expire."""
    stale = catalog.release_all()
    if stale:
        logger.warning("%d captions were leased by a run that did not finish: retrying", stale)


def _open_captions_only(
    root: Path, catalog_url: str | None, meta: CollectionMeta | None
) -> Collection:
    """A catalog without a shard (``ingest --register-only``): a collection with no points
    for the commands that read the catalog; refused when the catalog lists references
    (the shard was lost) or was built with other settings than ``meta``."""
    from fossil.db.catalog import SqlCatalog
    from fossil.db.empty import UNBUILT_META, EmptyStore
    from fossil.db.lock import StoreLock

    if catalog_url is None:
        _check_catalog_file(root)  # never a fresh schema over an emptied catalog
    require_free(root, OPEN_MARGIN, "open the store")
    lock = StoreLock(root / LOCK_FILE)
    try:
        catalog = SqlCatalog(_catalog_url(root, catalog_url))
        try:
            if catalog_url is None:
                _check_vectors_lost(root, catalog, 0)
            stored = catalog.get_meta()
            if stored is not None and meta is not None and meta_mismatch(stored, meta):
                raise MetaMismatchError(meta_mismatch(stored, meta))
        except BaseException:
            catalog.close()
            raise
    finally:
        lock.release()  # nothing to guard: no shard, and the catalog serialises its writers
    return Collection(
        refs=EmptyStore(), catalog=catalog, meta=stored or UNBUILT_META, root=str(root)
    )


def _check_catalog_file(root: Path) -> None:
    """Refuse a shard whose SQLite catalog is missing or empty (0 bytes, no WAL): opening it
    would silently start a fresh catalog beside vectors it knows nothing of."""
    from fossil.db.catalog import damaged_message

    path = root / CATALOG_FILE
    wal = path.with_name(f"{path.name}-wal")
    if not path.exists():  # (only called for a store that has a shard or a catalog file)
        raise StoreDamagedError(
            f"{path} is missing while {root / QDRANT_DIR} holds the vectors: rebuild it from "
            f"them with {REPAIR.format(root=root)}, or restore it from a backup"
        )
    if path.stat().st_size == 0 and not (wal.exists() and wal.stat().st_size > 0):
        raise StoreDamagedError(damaged_message(str(path), "empty: 0 bytes"))


def _check_vectors_lost(root: Path, catalog: CatalogStore, points: int) -> None:
    """Refuse a shard that is missing or empty while the store's own catalog lists
    references (and no corpus removal is under way): ingest would skip their captions as
    done and queries would find nothing; and points beside a catalog that holds no caption
    (its rows were lost: every answer would lack its provenance, and ingest would register
    the captions anew).  Fewer points than references: a warning.  (A
    catalog given by URL may be shared by the shards of several workers: not checked.)"""
    listed = catalog.reference_count()
    if listed == 0 < points and not sum(catalog.status_counts().values()):
        raise StoreDamagedError(_rows_lost(root, f"no captions beside {points} points"))
    if listed <= points or any(c["removing"] for c in catalog.corpora()):
        return
    if points == 0:
        raise StoreDamagedError(
            f"the vector store {root / QDRANT_DIR} holds no points but the catalog lists "
            f"{listed} references (was it deleted?): run {REPAIR.format(root=root)} (their "
            "captions become pending, so the next ingest regenerates exactly those), or "
            "restore the store from a backup"
        )
    logger.warning(
        "the vector store %s holds %d points but the catalog lists %d references: run %s",
        root / QDRANT_DIR,
        points,
        listed,
        REPAIR.format(root=root),
    )


def _rows_lost(root: Path, what: str) -> str:
    return (
        f"the catalog {root / CATALOG_FILE} has lost its rows ({what}): rebuild them from "
        f"the points' payloads with {REPAIR.format(root=root)}, or restore it from a backup"
    )


def save_meta_copy(root: Path, meta: CollectionMeta) -> None:
    """Keep ``DIR/collection_meta.json`` equal to the catalog's meta (written atomically when
    it differs): what ``store check --repair`` needs to rebuild a lost catalog."""
    path = root / META_FILE
    text = json.dumps(meta.as_dict(), indent=2, sort_keys=True) + "\n"
    try:
        if path.is_file() and path.read_text() == text:
            return
        partial = path.with_name(f".{path.name}.tmp")
        partial.write_text(text)
        os.replace(partial, path)
    except OSError as error:  # a read-only store still answers
        logger.warning("cannot write %s: %s", path, error)


def load_meta_copy(root: Path) -> CollectionMeta | None:
    """The meta saved by :func:`save_meta_copy` (None: none, or unreadable)."""
    try:
        return CollectionMeta(**json.loads((root / META_FILE).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def _open_server(
    root: Path | None,
    qdrant_url: str,
    api_key: str | None,
    catalog_url: str | None,
    meta: CollectionMeta | None,
    create: bool,
    collection_name: str,
    server_options: dict[str, int | None],
) -> Collection:
    from fossil.db.catalog import SqlCatalog
    from fossil.db.server import ServerStore

    if root is not None:
        root.mkdir(parents=True, exist_ok=True)
        (root / THUMBNAILS_DIR).mkdir(exist_ok=True)
    catalog = SqlCatalog(_catalog_url(root, catalog_url))
    checked = _check_meta(catalog, meta, create)
    refs: ReferenceStore = ServerStore.connect(
        qdrant_url,
        collection_name,
        api_key=api_key,
        text_dim=checked.text_dim,
        visual_dim=checked.visual_dim,
        create=create,
        **server_options,
    )
    return Collection(refs=refs, catalog=catalog, meta=checked, root=str(root) if root else None)


def open_collection(
    root: str | Path | None = None,
    *,
    qdrant_url: str | None = None,
    api_key: str | None = None,
    catalog_url: str | None = None,
    meta: CollectionMeta | None = None,
    create: bool = False,
    collection_name: str = "fossil_refs",
    shard_number: int | None = None,
    replication_factor: int | None = None,
    release_stale_leases: bool = False,
) -> Collection:
    """Open the collection at store directory ``root`` (embedded Qdrant Edge), or on the
    Qdrant server at ``qdrant_url`` (``":memory:"``: in-process, for tests) with its catalog
    in ``root`` or at ``catalog_url``.

    ``meta``: what the caller will write or read with; a store built otherwise is refused,
    naming both sides.  ``create``: make the store when missing (needs ``meta``).
    ``shard_number``/``replication_factor``: for a server collection created here.
    ``release_stale_leases``: for a process that will claim or remove captions: an embedded
    store with its own catalog is locked to this process, so the leases found in it belong
    to runs that died and go back to pending at once (a server's or a shared catalog's
    leases may be live workers': they wait for their expiry).
    Raises :class:`FileNotFoundError` for a missing store, :class:`MetaMismatchError`,
    :class:`~fossil.db.lock.StoreLockedError` when another process holds the embedded store.
    """
    path = Path(root).expanduser() if root is not None else None
    if qdrant_url:
        options = {"shard_number": shard_number, "replication_factor": replication_factor}
        return _open_server(
            path, qdrant_url, api_key, catalog_url, meta, create, collection_name, options
        )
    if path is None:
        raise ValueError("give a store directory (root) or a Qdrant server URL (qdrant_url)")
    return _open_edge(path, catalog_url, meta, create, release_stale_leases)
