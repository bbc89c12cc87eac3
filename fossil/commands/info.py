"""``fossil info``: what a reference collection holds (corpora, captions, references, nouns,
encoders, disk size)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fossil.commands._options import (
    add_json_option,
    add_server_options,
    add_store_option,
    store_settings,
)
from fossil.config import CollectionSettings

if TYPE_CHECKING:
    from fossil.db.protocols import CatalogStore, Collection


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "info",
        help="describe a reference collection",
        description="Corpora, captions by status, references, the most frequent nouns, the "
        "encoders the collection was built with, the settings it records (N, K, γ, sides: "
        "the other commands' defaults on it), and its size on disk.  Works while an ingest "
        "runs on the store (counts then come from the catalog).",
    )
    add_store_option(p, "optional with both --qdrant-url and --catalog")
    add_server_options(p)
    p.add_argument(
        "--top",
        type=int,
        default=20,
        metavar="T",
        help="how many noun lemmas to list (default: %(default)s)",
    )
    add_json_option(p, "print JSON")
    p.set_defaults(func=run)


def disk_usage(root: Path) -> dict[str, int]:
    """Bytes on disk per top-level entry of the store directory, and ``total``."""
    sizes: dict[str, int] = {}
    for entry in sorted(root.iterdir()) if root.is_dir() else []:
        paths = [entry] if entry.is_file() else [p for p in entry.rglob("*") if p.is_file()]
        sizes[entry.name] = sum(p.stat().st_blocks * 512 for p in paths)  # allocated, not sparse
    sizes["total"] = sum(sizes.values())
    return sizes


def collect(args: argparse.Namespace) -> dict[str, Any]:
    """Everything ``info`` reports, as plain data."""
    from fossil.db.catalog import SqlCatalog
    from fossil.db.lock import StoreLockedError
    from fossil.db.open import open_collection, store_catalog_url

    if args.top < 0:
        raise ValueError(f"--top ({args.top}) must be >= 0")
    if args.store is None and not (args.qdrant_url and args.catalog):
        raise ValueError("give --store DIR, or both --qdrant-url and --catalog for a server store")
    root = Path(args.store).expanduser() if args.store is not None else None
    try:
        collection = open_collection(
            root,
            qdrant_url=args.qdrant_url,
            api_key=args.qdrant_api_key,
            catalog_url=args.catalog,
        )
    except StoreLockedError:
        assert root is not None  # only an embedded store is locked
        # An ingest holds the embedded store: the catalog (SQLite WAL) can still be read.
        catalog = SqlCatalog(args.catalog or store_catalog_url(root))
        try:
            info = _catalog_info(catalog, args.top)
        finally:
            catalog.close()
        info["vector_store"] = "locked by another process (an ingest?): counts from the catalog"
        info["references"] = info["catalog_references"]
    else:
        try:
            return describe(collection, root, args.qdrant_url, args.top)
        finally:
            collection.close()
    info["store"] = str(root.resolve()) if root is not None else args.qdrant_url
    info["disk_bytes"] = disk_usage(root) if root is not None else {"total": 0}
    return info


def describe(
    collection: Collection, root: Path | None, qdrant_url: str | None, top: int = 20
) -> dict[str, Any]:
    """What ``info --json`` reports about an open collection (also ``fossil serve``'s /info)."""
    info = _catalog_info(collection.catalog, top)
    settings = store_settings(collection)  # a demo store's, also when it recorded none
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


def run(args: argparse.Namespace) -> int:
    info = collect(args)
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    print(f"store {info['store']} ({info['disk_bytes']['total'] / 1e6:.1f} MB)")
    meta = info["meta"] or {}
    print(f"  text encoder   {meta.get('text_encoder')} ({meta.get('text_dim')}-d)")
    print(f"  dense encoder  {meta.get('dense_encoder')} ({meta.get('visual_dim')}-d)")
    print(f"  generator      {meta.get('generator')} [{meta.get('generation_fingerprint')}]")
    print(f"  vectors        {info['vector_store']}")
    settings = CollectionSettings.from_dict(info["settings"] or {})
    if settings.about:
        print(f"  about          {settings.about}")
    if settings.describe():
        print(
            f"  built for      {settings.describe()}: query, segment, eval and serve use these "
            "unless --n/--k/--gamma or --preset say otherwise"
        )
    if settings.examples:
        print(f"  try            {', '.join(settings.examples)}")
    print(f"references {info['references']} (catalogued {info['catalog_references']})")
    if info["references"] > info["catalog_references"]:
        print(
            "  (they differ: an ingest was interrupted between its two writes or is running;"
            " rerun `fossil ingest` to complete it)"
        )
    elif info["references"] < info["catalog_references"]:  # points lost: a rerun skips them
        print(
            "  (the vector store lacks catalogued references: run `fossil store check --repair"
            f" --store {info['store']}`, then `fossil ingest` regenerates them)"
        )
    captions = info["captions"]
    print("captions " + ", ".join(f"{k} {v}" for k, v in captions.items()))
    for c in info["corpora"]:
        removing = " (REMOVING: rerun `fossil corpus remove`)" if c.get("removing") else ""
        print(
            f"  corpus {c['name']}: {c['captions']} captions, {c.get('references', 0)} "
            f"references; {c['source']}{removing}"
        )
    if info["top_lemmas"]:
        print(
            "top nouns " + ", ".join(f"{t['lemma']} {t['references']}" for t in info["top_lemmas"])
        )
    for f in info["failures"]:
        print(f"  failed caption {f['id']} ({f['attempts']} attempts): {f['error']}")
    return 0
