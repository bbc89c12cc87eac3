"""``fossil info``: what a reference collection holds (corpora, captions, references, nouns,
encoders, disk size)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from fossil.commands._options import (
    add_json_option,
    add_server_options,
    add_store_option,
    store_settings,
)
from fossil.config import CollectionSettings


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


def collect(args: argparse.Namespace) -> dict[str, Any]:
    """Everything ``info`` reports, as plain data (:func:`fossil.pipeline.info.collect`)."""
    from fossil.pipeline.info import collect as collect_info
    from fossil.pipeline.ingest_config import StoreAddress

    if args.top < 0:
        raise ValueError(f"--top ({args.top}) must be >= 0")
    if args.store is None and not (args.qdrant_url and args.catalog):
        raise ValueError("give --store DIR, or both --qdrant-url and --catalog for a server store")
    address = StoreAddress(args.store, args.qdrant_url, args.qdrant_api_key, args.catalog)
    return collect_info(address, args.top, store_settings)


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
