"""What a reference collection holds, as plain data: ``fossil info`` prints it and ``fossil
serve``'s ``/info`` answers it (:func:`collect` opens the store, :func:`describe` reads an
open collection)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fossil.config import CollectionSettings
    from fossil.db.protocols import CatalogStore, Collection
    from fossil.pipeline.ingest_config import StoreAddress

Settings = Callable[["Collection"], "CollectionSettings | None"]


def disk_usage(root: Path) -> dict[str, int]:
    """Bytes on disk per top-level entry of the store directory, and ``total``."""
    sizes: dict[str, int] = {}
    for entry in sorted(root.iterdir()) if root.is_dir() else []:
        paths = [entry] if entry.is_file() else [p for p in entry.rglob("*") if p.is_file()]
        sizes[entry.name] = sum(p.stat().st_blocks * 512 for p in paths)  # allocated, not sparse
    sizes["total"] = sum(sizes.values())
    return sizes


def collect(store: StoreAddress, top: int = 20, settings: Settings | None = None) -> dict[str, Any]:
    """Everything ``fossil info`` reports about the collection at ``store``, as plain data;
    counts come from the catalog alone while another process (an ingest) holds an embedded
    store.  ``settings``: how to read the collection's settings (default: what it records);
    ``top``: the noun lemmas listed."""
    from fossil.db.catalog import SqlCatalog
    from fossil.db.lock import StoreLockedError

    if top < 0:
        raise ValueError(f"top ({top}) must be >= 0")
    root = Path(store.root).expanduser() if store.root is not None else None
    try:
        collection = store.open()
    except StoreLockedError:
        assert root is not None  # only an embedded store is locked
        # An ingest holds the embedded store: the catalog (SQLite WAL) can still be read.
        catalog = SqlCatalog(store.catalog)
        try:
            info = _catalog_info(catalog, top)
        finally:
            catalog.close()
        info["vector_store"] = "locked by another process (an ingest?): counts from the catalog"
        info["references"] = info["catalog_references"]
        info["store"] = str(root.resolve())
        info["disk_bytes"] = disk_usage(root)
        return info
    try:
        recorded = settings(collection) if settings else collection.catalog.get_settings()
        return describe(collection, recorded, top, qdrant_url=store.qdrant_url)
    finally:
        collection.close()


def describe(
    collection: Collection,
    settings: CollectionSettings | None,
    top: int = 20,
    *,
    qdrant_url: str | None = None,
) -> dict[str, Any]:
    """What ``fossil info --json`` reports about an open collection (also ``fossil serve``'s
    /info); ``settings``: the ones it goes by (a demo store's, also when it recorded none);
    ``qdrant_url``: the server holding its vectors, if any."""
    root = Path(collection.root) if collection.root is not None else None
    info = _catalog_info(collection.catalog, top)
    info["settings"] = settings.as_dict() if settings is not None else None
    info["vector_store"] = qdrant_url or str(root / "qdrant" if root is not None else None)
    info["references"] = collection.refs.count()
    info["store"] = str(root.resolve()) if root is not None else qdrant_url
    info["disk_bytes"] = disk_usage(root) if root is not None else {"total": 0}
    return info


def _catalog_info(catalog: CatalogStore, top: int) -> dict[str, Any]:
    meta = catalog.get_meta()
    settings = catalog.get_settings()
    return {
        "meta": meta.as_dict() if meta else None,
        "settings": settings.as_dict() if settings else None,
        "corpora": catalog.corpora(),
        "captions": catalog.status_counts(),
        "catalog_references": catalog.reference_count(),
        "revision": catalog.revision(),
        "top_lemmas": [{"lemma": lemma, "references": n} for lemma, n in catalog.top_lemmas(top)],
        "failures": catalog.failures(5),
    }
