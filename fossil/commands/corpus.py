"""``fossil corpus``: list the corpora of a store, remove one with its references."""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

from fossil.commands._options import (
    add_json_option,
    add_server_options,
    add_store_option,
    open_store,
)

DESCRIPTION = """\
  fossil corpus list --store DIR              corpora, their captions and references
  fossil corpus remove NAME --store DIR       delete a corpus, its captions and references

Generated concept corpora (`fossil ingest --concepts`) are named 'concept:<concept>'.
A caption belongs to every corpus that contains it (it is stored and generated once):
removing a corpus drops only the captions no remaining corpus holds, with their points,
thumbnails and catalog rows; captions another corpus also holds stay, with their
references, and now count as that corpus's.  The catalog rows go in one transaction, so
queries stop retrieving the removed references at once.  It is crash-safe: if it is
interrupted, `fossil corpus list` shows the corpus as 'removing' and running the same
remove again finishes it.  Thumbnails are found from the point ids under DIR/thumbnails,
never from paths recorded in the catalog.
"""


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "corpus",
        help="list corpora or remove one (with its references)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="corpora with their caption and reference counts")
    _common(listing)
    listing.set_defaults(func=run_list)
    remove = actions.add_parser(
        "remove",
        help="delete a corpus and the captions (and references) no other corpus holds",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    remove.add_argument("name", metavar="NAME", help="corpus name (see `fossil corpus list`)")
    _common(remove)
    remove.add_argument(
        "--force",
        action="store_true",
        help="remove even while workers (server store) hold leases on its captions",
    )
    remove.add_argument(
        "--batch-size",
        type=int,
        default=1000,
        metavar="B",
        help="points deleted per vector-store call (default: %(default)s)",
    )
    remove.add_argument("--no-progress", action="store_true", help="no progress bar")
    remove.set_defaults(func=run_remove)


def _common(p: argparse.ArgumentParser) -> None:
    add_store_option(p)
    add_json_option(p, "print JSON")
    add_server_options(p)


def run_list(args: argparse.Namespace) -> int:
    collection = open_store(args)
    try:
        corpora = collection.catalog.corpora()
    finally:
        collection.close()
    if args.json:
        print(json.dumps(corpora, indent=2))
        return 0
    if not corpora:
        print("no corpora (add some with `fossil ingest SOURCE ...`)")
    for c in corpora:
        added = time.strftime("%Y-%m-%d %H:%M", time.localtime(c["added_at"]))
        state = (
            "  REMOVING (interrupted: run `fossil corpus remove` again)" if c["removing"] else ""
        )
        print(
            f"{c['name']}: {c['captions']} captions, {c['references']} references, "
            f"added {added}; {c['source']}{state}"
        )
    return 0


def run_remove(args: argparse.Namespace) -> int:
    from fossil.ingest.removal import remove_corpus
    from fossil.ingest.worker import KillSwitch
    from fossil.query.routing import refresh_lemma_index

    collection = open_store(args, release_stale_leases=True)
    try:
        removal = remove_corpus(
            collection,
            args.name,
            batch_size=args.batch_size,
            force=args.force,
            progress=not args.no_progress,
            kill=KillSwitch.from_env(os.environ),
        )
        refresh_lemma_index(collection)  # the removed lemmas leave the routing index
        left = collection.refs.count()
    finally:
        collection.close()
    report = {**removal.as_dict(), "store_references": left}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(
            f"removed corpus {removal.corpus!r}: {removal.references} references, "
            f"{removal.captions} captions, {removal.thumbnails} thumbnails"
            f"{f' ({removal.kept} captions kept: other corpora hold them)' if removal.kept else ''}"
            f"{' (finished an interrupted removal)' if removal.resumed else ''}; "
            f"the store holds {left} references"
        )
    return 0
