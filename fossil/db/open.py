"""Open (or create) a reference collection: vector store + catalog + ``collection_meta`` (§4).

Store directory layout::

    DIR/qdrant/          Qdrant Edge shard (embedded store; absent with a server)
    DIR/qdrant.lock      single-process lock of the embedded store
    DIR/catalog.sqlite   SQL catalog (unless another catalog URL is given)
    DIR/thumbnails/      optional small previews of generated images and masks
"""

from __future__ import annotations

import logging
from dataclasses import fields
from pathlib import Path

from fossil.db.protocols import CatalogStore, Collection, CollectionMeta, ReferenceStore

logger = logging.getLogger(__name__)

QDRANT_DIR = "qdrant"
LOCK_FILE = "qdrant.lock"
CATALOG_FILE = "catalog.sqlite"
THUMBNAILS_DIR = "thumbnails"


class MetaMismatchError(ValueError):
    """The collection was built with other encoders or generation settings."""


def meta_mismatch(stored: CollectionMeta, given: CollectionMeta) -> str | None:
    """A message naming every differing field (stored vs given), or None when they agree."""
    diffs = [
        f"{f.name}: store has {getattr(stored, f.name)!r}, asked for {getattr(given, f.name)!r}"
        for f in fields(CollectionMeta)
        if getattr(stored, f.name) != getattr(given, f.name)
    ]
    if not diffs:
        return None
    return (
        "this collection was built with other settings (" + "; ".join(diffs) + "): use the "
        "encoders it was built with, or build a new store for these"
    )


def _catalog_url(root: Path | None, catalog_url: str | None) -> str:
    if catalog_url:
        return catalog_url
    if root is None:
        raise ValueError("a catalog is needed: give a store directory (root) or catalog_url")
    return f"sqlite:///{root / CATALOG_FILE}"


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
    if meta is not None:
        problem = meta_mismatch(stored, meta)
        if problem:
            raise MetaMismatchError(problem)
    return stored


def _open_edge(
    root: Path, catalog_url: str | None, meta: CollectionMeta | None, create: bool
) -> Collection:
    from fossil.db.catalog import SqlCatalog
    from fossil.db.edge import EdgeStore, stored_dims
    from fossil.db.lock import StoreLock

    qdrant_dir = root / QDRANT_DIR
    exists = stored_dims(qdrant_dir) is not None
    if not exists and not create:
        raise FileNotFoundError(
            f"no fossil store at {root} (no {QDRANT_DIR}/ shard): create it with "
            f"`fossil ingest SOURCE --store {root}`"
        )
    root.mkdir(parents=True, exist_ok=True)
    lock = StoreLock(root / LOCK_FILE)  # first: nothing below runs while another holds it
    try:
        catalog = SqlCatalog(_catalog_url(root, catalog_url))
        checked = _check_meta(catalog, meta, create)
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
    (root / THUMBNAILS_DIR).mkdir(exist_ok=True)
    return Collection(refs=refs, catalog=catalog, meta=checked, root=str(root))


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
) -> Collection:
    """Open the collection at store directory ``root`` (embedded Qdrant Edge), or on the
    Qdrant server at ``qdrant_url`` (``":memory:"``: in-process, for tests) with its catalog
    in ``root`` or at ``catalog_url``.

    ``meta``: what the caller will write or read with; a store built otherwise is refused,
    naming both sides.  ``create``: make the store when missing (needs ``meta``).
    ``shard_number``/``replication_factor``: for a server collection created here.
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
    return _open_edge(path, catalog_url, meta, create)
