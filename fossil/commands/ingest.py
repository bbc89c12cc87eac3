"""``fossil ingest``: build or grow a reference collection from caption corpora (design §1, §2).

Flags → :class:`~fossil.pipeline.ingest_config.StoreAddress`, ``ModelChoice`` and
``IngestOptions``; one call of :func:`fossil.pipeline.ingest.ingest_corpora` (or
``register_corpora``); the summary printed."""

from __future__ import annotations

import argparse
import re
from functools import partial
from typing import TYPE_CHECKING, Any

from fossil.commands._ingest_summary import print_registered, run_and_report
from fossil.commands._interrupt import GracefulInterrupt
from fossil.commands._labelled import (
    add_labelled_options,
    check_labelled_args,
    run_labelled,
)
from fossil.commands._options import (
    add_json_option,
    add_models_options,
    add_per_concept_option,
    add_server_options,
    add_store_option,
    parse_concepts,
    per_concept,
)
from fossil.commands._remote import add_server_url_option
from fossil.config import RetrievalConfig

if TYPE_CHECKING:
    from fossil.ingest.corpora import CorpusFile
    from fossil.pipeline.ingest_config import IngestOptions, ModelChoice, StoreAddress

__all__ = ["GracefulInterrupt", "add_parser", "run"]

DESCRIPTION = """\
Register caption corpora in the store (deduplicated by normalised text across all corpora),
then turn every pending caption into references: one generated image per caption, one
reference per noun (text vector for retrieval, visual vector from the noun's mask).
Incremental and crash-safe: rerun the same command to resume; re-adding a corpus adds
nothing; a new corpus adds only its new captions.

Corpus formats (from the extension, or --format; .gz detected automatically):
  .json   COCO captions (captions_train2017.json): {"annotations": [{"caption": ...}]}
  .jsonl  one {"caption": ..., "id": ...} object per line
  .csv    a header row; the caption column is --csv-column
  .txt    one caption per line
Empty lines, lines that are not UTF-8 and over-long captions (longer than a sentence; the
catalog's limit) are skipped and counted.

Concepts no corpus mentions (--concepts "axolotl, solar panel"): each gets a generated
corpus named 'concept:<concept>' of --per-concept captions putting it in varied framings
and contexts; each caption gives one reference of the whole concept phrase.  The captions
are the same every time, so a rerun generates nothing.  `fossil corpus list` shows them,
`fossil corpus remove NAME` takes one out again.  (`fossil query/segment --extend` do this
for the concepts the collection does not cover.)

Labelled photos (--labelled PATH [--name NAME]): a labelme JSON file or folder, a COCO
instances JSON or a VOC-style folder.  Each (photo, class) gives one reference from its
ground-truth mask instead of a generated image's heat map (no generator is loaded), in
corpus 'labelled:NAME', used by query and segment beside the generated ones (their
--references option restricts them to one source).

With no SOURCE, the captions already registered and still pending are processed: that is
how workers resume a store, or share the work of one (a store that does not exist yet, or
has nothing pending, is reported and nothing is loaded).

The embedded store (--store DIR) is opened by one process at a time; to ingest from
several machines use a Qdrant server (--qdrant-url) and a shared catalog (--catalog):
register the corpora once with --register-only, then start any number of workers with no
SOURCE (--store is optional then; without it no thumbnails are written).
"""


def add_parser(subparsers: Any) -> None:
    from fossil.ingest.corpora import FORMATS
    from fossil.pipeline.ingest_config import IngestOptions

    p = subparsers.add_parser(
        "ingest",
        help="build or grow a reference collection from caption corpora",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "sources", nargs="*", metavar="SOURCE",
        help="caption corpus files (none: process the captions already pending in the store)",
    )  # fmt: skip
    add_store_option(
        p, "DIR/qdrant, DIR/catalog.sqlite, DIR/thumbnails; created if missing.  Required "
        "unless both --qdrant-url and --catalog are given",
    )  # fmt: skip
    p.add_argument(
        "--concepts", default=None, metavar='"A, B"',
        help="comma-separated concepts no corpus mentions: each gets a generated corpus "
        "'concept:<concept>' of --per-concept templated captions ('a photo of the axolotl in "
        "a park', ...) whose references are of the whole concept phrase; remove one with "
        "`fossil corpus remove`.  Rerunning adds nothing",
    )  # fmt: skip
    add_per_concept_option(p, "--concepts")
    p.add_argument(
        "--register-only", action="store_true",
        help="register the SOURCE corpora in the catalog (--catalog URL, or DIR/catalog.sqlite) "
        "and exit: no model is loaded and the vector store is not touched (--qdrant-url is "
        "accepted and ignored).  Workers started later with no SOURCE generate the references; "
        "the first one records the encoders the collection is built with (collection_meta)",
    )  # fmt: skip
    add_models_options(p, ingest=True)
    p.add_argument(
        "--batch-size", type=int, default=IngestOptions().batch_size, metavar="B",
        help="captions per generator call and per write (default: %(default)s)",
    )  # fmt: skip
    p.add_argument(
        "--workers", type=int, default=1, metavar="W",
        help="generator processes feeding one writer; each loads its own models "
        "(default: %(default)s, in this process)",
    )  # fmt: skip
    p.add_argument(
        "--limit", type=int, default=None, metavar="N",
        help="process at most N captions in this run; the rest stay pending (default: all)",
    )  # fmt: skip
    p.add_argument(
        "--format", choices=FORMATS, default=None,
        help="corpus format for every SOURCE (default: from each file's extension)",
    )  # fmt: skip
    p.add_argument(
        "--csv-column", default="caption", metavar="C",
        help="caption column of CSV sources (default: %(default)s)",
    )  # fmt: skip
    p.add_argument(
        "--corpus-name", default=None, metavar="NAME",
        help="register all SOURCEs as one corpus NAME (default: one corpus per file, "
        "named after it without its extension; two files of one name, or a file named like "
        "a corpus registered from another file, are refused)",
    )  # fmt: skip
    p.add_argument(
        "--no-thumbnails", action="store_true",
        help="do not write the 128-px thumbnail (image + noun mask) of each reference "
        "under DIR/thumbnails (default: write them)",
    )  # fmt: skip
    p.add_argument(
        "--shards", type=int, default=None, metavar="S",
        help="Qdrant cluster: shards of the server collection, when this run creates it",
    )  # fmt: skip
    p.add_argument(
        "--replicas", type=int, default=None, metavar="R",
        help="Qdrant cluster: replication factor of the server collection, when this run "
        "creates it",
    )  # fmt: skip
    p.add_argument(
        "--lease-seconds", type=float, default=IngestOptions().lease_seconds, metavar="S",
        help="how long a claimed batch stays reserved: with a server, a crashed worker's "
        "batch is retried once it expires; an embedded store takes a crashed run's batches "
        "back when it is next opened (default: %(default)s)",
    )  # fmt: skip
    add_labelled_options(p)
    add_server_options(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_json_option(p)
    add_server_url_option(p)  # issue 29: a live `fossil serve`
    p.set_defaults(func=run)


def _check_args(args: argparse.Namespace) -> None:
    """The flag combinations (the values are checked by the dataclasses they fill)."""
    check_labelled_args(args)
    if args.register_only and not args.sources and args.concepts is None:
        raise ValueError(
            "--register-only needs SOURCE caption files (or --concepts) to register "
            "(e.g. fossil ingest --register-only captions.jsonl --store DIR)"
        )
    if args.store is None and args.catalog is None:
        raise ValueError(
            "give --store DIR, or --catalog URL (with --qdrant-url) for a server store"
        )
    if args.store is None and args.qdrant_url is None and not args.register_only:
        raise ValueError(
            "--store DIR is required unless both --qdrant-url and --catalog are given "
            "(the embedded vector store lives in DIR)"
        )


_FLAGS = ("shards", "replicas", "qdrant_url", "batch_size", "workers", "limit", "lease_seconds")


def _settings(args: argparse.Namespace) -> tuple[StoreAddress, ModelChoice, IngestOptions]:
    """Flags → the typed settings of the run; their refusals name the flags."""
    from fossil.pipeline.ingest_config import IngestOptions, ModelChoice, StoreAddress

    devices = tuple(d.strip() for d in args.device.split(",")) if args.device else (None,)
    try:
        return (
            StoreAddress(args.store, args.qdrant_url, args.qdrant_api_key, args.catalog,
                         args.shards, args.replicas),
            ModelChoice(args.models, devices, args.workers),
            IngestOptions(batch_size=args.batch_size, limit=args.limit,
                          lease_seconds=args.lease_seconds, thumbnails=not args.no_thumbnails,
                          progress=not args.no_progress),
        )  # fmt: skip
    except ValueError as error:  # "batch_size (0) must be >= 1" → "--batch-size (0) ..."
        words = "|".join(_FLAGS)
        text = re.sub(rf"\b({words})\b", lambda m: "--" + m[1].replace("_", "-"), str(error))
        raise ValueError(text) from None


def read_sources(args: argparse.Namespace) -> list[CorpusFile]:
    """Every SOURCE read completely (all as one corpus with --corpus-name), then the
    --concepts corpora (bad files and bad concepts raise before anything is written)."""
    from fossil.ingest.concepts import concept_corpora
    from fossil.ingest.corpora import merge_corpora, read_corpus

    concepts = []
    if args.concepts is not None:  # each concept validated there
        M = per_concept(args, RetrievalConfig().N)  # ingest has no N: the default one
        concepts = concept_corpora(parse_concepts(args.concepts), M)
    files = [read_corpus(f, format=args.format, csv_column=args.csv_column) for f in args.sources]
    if args.corpus_name is not None and files:
        files = [merge_corpora(files, args.corpus_name)]
    return files + concepts


def run(args: argparse.Namespace) -> int:
    from fossil.pipeline.ingest import (
        NothingToIngest,
        ingest_corpora,
        register_corpora,
    )

    if args.server:  # issue 29: the server at URL owns the store and runs the jobs
        from fossil.commands._remote import ingest_with_server

        return ingest_with_server(args)
    _check_args(args)
    if args.labelled is not None:
        return run_labelled(args, _settings(args))
    store, models, options = _settings(args)
    corpora = read_sources(args)
    if args.register_only:
        return print_registered(register_corpora(store, corpora), args.json)
    try:
        return run_and_report(partial(ingest_corpora, store, corpora, models, options), args.json)
    except NothingToIngest as error:
        hint = (
            "give SOURCE caption files, or register them first with `fossil ingest "
            "--register-only SOURCE ...`"
            if error.store_exists
            else "give SOURCE caption files to create it, e.g. `fossil ingest captions.jsonl "
            f"--store {args.store}`"
        )
        raise FileNotFoundError(f"{error.problem}: {hint}") from None
