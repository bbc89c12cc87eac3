"""``fossil store``: maintenance of reference stores — ``check [--repair]`` cross-checks the
parts of an embedded store and repairs them (:mod:`fossil.db.check`); ``export`` moves an
embedded store up to a Qdrant server (and its catalog to PostgreSQL) for scale-out (design §7)."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from typing import Any

from fossil.commands._options import (
    DeprecatedAlias,
    add_json_option,
    add_qdrant_api_key_option,
    add_store_option,
)

EXPORT_DESCRIPTION = """\
Copy every reference of the embedded store in DIR into a collection on a Qdrant server,
created with the server schema (text: HNSW + int8 quantization; visual: raw, on disk, no
index; payload indexes on noun_lemma and corpus).  Points keep their ids, both vectors and
their payloads.  Idempotent and resumable: rerun after an interruption and the points the
server holds already are skipped (--overwrite sends them again; same id, same point).

The target collection is labelled with the store's collection_meta (encoders, dimensions,
generation fingerprint); a collection or catalog built with other settings is refused,
naming both sides, before anything is written.

Catalog: with --catalog URL (e.g. postgresql+psycopg2://fossil:PW@host/fossil) the store's
SQLite catalog is copied there, ids kept, after the points (one transaction; rows already
there are kept, so a rerun adds nothing).  Without --catalog it stays in DIR/catalog.sqlite
and serves the server collection from there: use `--store DIR --qdrant-url URL` afterwards
(one machine; a shared catalog needs --catalog).  DIR is left as it was either way.

The store is locked for the duration: no ingest may run on it.
"""

CHECK_DESCRIPTION = """\
Cross-check the parts of the embedded store in DIR and report every disagreement, counted:
the catalog (readable, every page: PRAGMA quick_check), catalogued references against the
points Qdrant holds, every point's VRE in the row file (DIR/qdrant-visual.f32) against
Qdrant's copy, thumbnails against the catalog, and the caches.  Exit status 0 when the store
is healthy, 1 when something disagrees.

--repair does what needs no generation: a damaged catalog, or one whose tables lost their
rows, is rebuilt from the points' payloads and DIR/collection_meta.json (in one
transaction); references whose points are missing are uncatalogued and their captions
marked pending (rerun `fossil ingest` to regenerate exactly those); points the catalog
lacks (e.g. an older catalog restored) are catalogued from their payloads, with their
corpus and caption — a point whose payload can be catalogued is never deleted; the row file
is rebuilt from Qdrant; orphaned thumbnails are deleted; the prototype cache and lemma index
are dropped.  What cannot be rebuilt is said: captions without a point, and a corpus whose
captions another corpus registered first (ingest its source file again: nothing is
generated).  The store is locked meanwhile; a backup of DIR (taken while nothing writes to
it) is still the surest way back.
"""


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "store",
        help="maintain reference stores (check and repair one; export one to a Qdrant server)",
        description="Maintenance of reference stores.",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    c = actions.add_parser(
        "check",
        help="cross-check an embedded store (catalog, vectors, row file, thumbnails); --repair",
        description=CHECK_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_store_option(c, "embedded stores only", required=True)
    c.add_argument("--repair", action="store_true", help="repair what can be (see above)")
    add_json_option(c, "print the report as JSON")
    c.set_defaults(func=run_check)
    e = actions.add_parser(
        "export",
        help="copy an embedded store into a Qdrant server collection (and its catalog)",
        description=EXPORT_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_store_option(e, "embedded stores only", required=True)
    e.add_argument(
        "--to",
        required=True,
        metavar="URL",
        help="Qdrant server URL, e.g. http://localhost:6333 (':memory:': in-process, for tests)",
    )
    add_qdrant_api_key_option(e)
    # its spelling in fossil 0.1 (`serve --api-key` is the server's own key): kept, hidden
    # and warned about, for one more release
    e.add_argument(
        "--api-key", dest="qdrant_api_key", action=DeprecatedAlias, new="--qdrant-api-key"
    )
    e.add_argument(
        "--collection",
        default="fossil_refs",
        metavar="NAME",
        help="target collection, created when missing (default: %(default)s, the one the "
        "other commands use with --qdrant-url)",
    )
    e.add_argument(
        "--catalog",
        default=None,
        metavar="URL",
        help="SQLAlchemy URL to copy the catalog to, e.g. postgresql+psycopg2://... "
        "(default: the catalog stays in DIR/catalog.sqlite)",
    )
    e.add_argument(
        "--batch-size",
        type=int,
        default=256,
        metavar="B",
        help="points per read and upsert (default: %(default)s)",
    )
    e.add_argument(
        "--overwrite",
        action="store_true",
        help="upsert every point again, also those the target holds already",
    )
    e.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_json_option(e)
    e.set_defaults(func=run_export)
    p.set_defaults(func=lambda args: _usage(p))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def run_check(args: argparse.Namespace) -> int:
    from fossil.db.check import FAULTS, check_store

    report = check_store(args.store, repair=args.repair)
    after = check_store(args.store) if args.repair else report
    if args.json:
        print(json.dumps({"found": report.as_dict(), "after": after.as_dict()}, indent=2))
        return 0 if after.healthy else 1
    print(f"store {report.store}: catalog {report.catalog}, row file {report.row_file}")
    for name, value in report.counts.items():
        print(f"  {name:<22} {value}")
    for name, value in report.repairs.items():
        print(f"  repaired: {name} {value}")
    for note in report.notes:
        print(f"  note: {note}")
    if args.repair:
        print("after repair: " + ("healthy" if after.healthy else "still disagrees:"))
        for name, value in after.counts.items():
            if value and name in FAULTS:
                print(f"  {name:<22} {value}")
    elif not report.healthy:
        print(
            f"disagreements found: repair with `fossil store check --repair --store {args.store}`"
        )
    else:
        print("healthy")
    return 0 if after.healthy else 1


def run_export(args: argparse.Namespace) -> int:
    from fossil.db.export import export_store

    if args.batch_size < 1:
        raise ValueError(f"--batch-size ({args.batch_size}) must be >= 1")
    result = export_store(
        args.store,
        args.to,
        api_key=args.qdrant_api_key,
        collection=args.collection,
        catalog_url=args.catalog,
        batch_size=args.batch_size,
        overwrite=args.overwrite,
        progress=not args.no_progress,
    )
    if args.json:
        print(json.dumps(asdict(result), indent=2))
        return 0
    print(
        f"points: {result.points_copied} copied, {result.points_skipped} already there; "
        f"collection {result.collection!r} on {result.target} holds {result.target_points}"
    )
    if result.catalog_copied:
        print(
            f"catalog copied to {result.catalog}: {result.corpora_added} corpora, "
            f"{result.captions_added} captions, {result.references_added} references added, "
            f"{result.captions_marked_done} captions marked done"
        )
        print(f"use it with: --qdrant-url {result.target} --catalog {result.catalog}")
    else:
        print(f"catalog stays in {result.catalog}")
        print(f"use it with: --store {result.source} --qdrant-url {result.target}")
    return 0
