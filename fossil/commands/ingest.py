"""``fossil ingest``: build or grow a reference collection from caption corpora (§1, §2)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from fossil.commands._options import add_server_options, parse_concepts, release_stale_leases
from fossil.config import GenerationConfig, RetrievalConfig

if TYPE_CHECKING:
    from fossil.db.protocols import AddResult, CatalogStore, Collection, CollectionMeta
    from fossil.ingest.corpora import CorpusFile
    from fossil.ingest.pool import WorkerPool
    from fossil.ingest.references import IngestModels, IngestStats
    from fossil.models.loading import ModelProfile

logger = logging.getLogger(__name__)

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

With no SOURCE, the captions already registered and still pending are processed: that is
how workers resume a store, or share the work of one (a store that does not exist yet, or
has nothing pending, is reported and nothing is loaded).

The embedded store (--store DIR) is opened by one process at a time; to ingest from
several machines use a Qdrant server (--qdrant-url) and a shared catalog (--catalog):
register the corpora once with --register-only, then start any number of workers with no
SOURCE (--store is optional then; without it no thumbnails are written).
"""


def add_parser(subparsers: Any) -> None:
    from fossil.ingest.concepts import MAX_PER_CONCEPT
    from fossil.ingest.corpora import FORMATS

    p = subparsers.add_parser(
        "ingest",
        help="build or grow a reference collection from caption corpora",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "sources",
        nargs="*",
        metavar="SOURCE",
        help="caption corpus files (none: process the captions already pending in the store)",
    )
    p.add_argument(
        "--store",
        default=None,
        metavar="DIR",
        help="store directory (DIR/qdrant, DIR/catalog.sqlite, DIR/thumbnails); created if "
        "missing.  Required unless both --qdrant-url and --catalog are given",
    )
    p.add_argument(
        "--concepts",
        default=None,
        metavar='"A, B"',
        help="comma-separated concepts no corpus mentions: each gets a generated corpus "
        "'concept:<concept>' of --per-concept templated captions ('a photo of the axolotl in "
        "a park', ...) whose references are of the whole concept phrase; remove one with "
        "`fossil corpus remove`.  Rerunning adds nothing",
    )
    p.add_argument(
        "--per-concept",
        type=int,
        default=RetrievalConfig().N,
        metavar="M",
        help="captions (one image, one reference each) per --concepts concept; at least the "
        "N you query with, so a concept's N neighbours are its own (default: %(default)s, "
        f"the default N; at most {MAX_PER_CONCEPT})",
    )
    p.add_argument(
        "--register-only",
        action="store_true",
        help="register the SOURCE corpora in the catalog (--catalog URL, or DIR/catalog.sqlite) "
        "and exit: no model is loaded and the vector store is not touched (--qdrant-url is "
        "accepted and ignored).  Workers started later with no SOURCE generate the references; "
        "the first one records the encoders the collection is built with (collection_meta)",
    )
    p.add_argument(
        "--models",
        default=None,
        metavar="PROFILE",
        help="model profile: 'paper' (SD 2.1 base, DINOv2-L, CLIP-L, §5), 'tiny' "
        "(random tiny models, for tests), or a TOML file (default: the models an existing "
        "store was built with, else paper)",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=GenerationConfig().batch_size,
        metavar="B",
        help="captions per generator call and per write (default: %(default)s)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="W",
        help="generator processes feeding one writer; each loads its own models "
        "(default: %(default)s, in this process)",
    )
    p.add_argument(
        "--limit",
        type=int,
        default=None,
        metavar="N",
        help="process at most N captions in this run; the rest stay pending (default: all)",
    )
    p.add_argument(
        "--device",
        default=None,
        metavar="D",
        help="torch device, or a comma-separated list given to workers in turn, "
        "e.g. cuda:0,cuda:1 (default: cuda if available, else cpu)",
    )
    p.add_argument(
        "--format",
        choices=FORMATS,
        default=None,
        help="corpus format for every SOURCE (default: from each file's extension)",
    )
    p.add_argument(
        "--csv-column",
        default="caption",
        metavar="C",
        help="caption column of CSV sources (default: %(default)s)",
    )
    p.add_argument(
        "--corpus-name",
        default=None,
        metavar="NAME",
        help="register all SOURCEs as one corpus NAME (default: one corpus per file, "
        "named after it)",
    )
    p.add_argument(
        "--no-thumbnails",
        action="store_true",
        help="do not write the 128-px thumbnail (image + noun mask) of each reference "
        "under DIR/thumbnails (default: write them)",
    )
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
        "--lease-seconds",
        type=float,
        default=1800.0,
        metavar="S",
        help="how long a claimed batch stays reserved: with a server, a crashed worker's "
        "batch is retried once it expires; an embedded store takes a crashed run's batches "
        "back when it is next opened (default: %(default)s)",
    )
    add_server_options(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run)


@dataclass
class Registered:
    """One registered corpus: what its file(s) held and what the catalog added."""

    name: str
    read: int
    skipped: int
    added: int
    duplicates: int


class GracefulInterrupt:
    """First Ctrl-C: finish the current batch, then stop; second: stop now (the current
    batch is released)."""

    def __init__(self) -> None:
        self.requested = False
        self.previous: Any = None

    def __call__(self) -> bool:
        return self.requested

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nfinishing the current batch; Ctrl-C again to stop now", file=sys.stderr)

    def __enter__(self) -> GracefulInterrupt:
        self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        signal.signal(signal.SIGINT, self.previous)


def _check_args(args: argparse.Namespace) -> None:
    for flag in ("shards", "replicas"):
        value = getattr(args, flag)
        if value is not None and (value < 1 or args.qdrant_url is None):
            raise ValueError(f"--{flag} ({value}) must be >= 1 and needs --qdrant-url")
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
    for flag in ("batch_size", "workers"):
        if getattr(args, flag) < 1:
            raise ValueError(f"--{flag.replace('_', '-')} ({getattr(args, flag)}) must be >= 1")
    if args.limit is not None and args.limit < 0:
        raise ValueError(f"--limit ({args.limit}) must be >= 0")
    if args.lease_seconds <= 0:
        raise ValueError(f"--lease-seconds ({args.lease_seconds}) must be > 0")
    if args.concepts is not None and args.per_concept < 1:
        raise ValueError(f"--per-concept ({args.per_concept}) must be >= 1")


def read_sources(args: argparse.Namespace) -> list[CorpusFile]:
    """Every SOURCE read completely, then the --concepts corpora (bad files and bad concepts
    raise before anything is written)."""
    from fossil.ingest.concepts import concept_corpora
    from fossil.ingest.corpora import read_corpus

    concepts = []
    if args.concepts is not None:  # each concept validated there
        concepts = concept_corpora(parse_concepts(args.concepts), args.per_concept)
    files = [
        read_corpus(source, format=args.format, csv_column=args.csv_column)
        for source in args.sources
    ]
    return _merge(args, files) + concepts


def _merge(args: argparse.Namespace, files: list[CorpusFile]) -> list[CorpusFile]:
    """--corpus-name: all SOURCE files as one corpus."""
    from fossil.ingest.corpora import CorpusFile

    if args.corpus_name is None or not files:
        return files
    merged = CorpusFile(
        name=args.corpus_name,
        source=", ".join(f.source for f in files),
        format=",".join(sorted({f.format for f in files})),
        captions=tuple(c for f in files for c in f.captions),
        skipped_empty=sum(f.skipped_empty for f in files),
        skipped_encoding=sum(f.skipped_encoding for f in files),
    )
    return [merged]


def _loaders(args: argparse.Namespace, profile: str | ModelProfile) -> list[Any]:
    """One picklable model loader per worker, devices given out in turn."""
    from functools import partial

    from fossil.models.loading import command_roles, load_models

    devices = [d.strip() for d in args.device.split(",")] if args.device else [None]
    roles = command_roles("ingest")
    return [
        partial(load_models, profile, device=devices[i % len(devices)], roles=roles)
        for i in range(args.workers)
    ]


def _profile(args: argparse.Namespace) -> str | ModelProfile:
    """--models, else the models an existing store records, else the paper's."""
    from fossil.commands._options import meta_profile
    from fossil.db.catalog import SqlCatalog
    from fossil.db.open import CATALOG_FILE

    if args.models is not None:
        return str(args.models)
    if args.catalog is None and (
        args.store is None or not (Path(args.store).expanduser() / CATALOG_FILE).is_file()
    ):
        return "paper"
    catalog = SqlCatalog(_catalog_url(args))
    try:
        meta = catalog.get_meta()
    finally:
        catalog.close()
    return "paper" if meta is None else meta_profile(meta)


def _catalog_url(args: argparse.Namespace) -> str:
    from fossil.db.open import store_catalog_url

    if args.catalog:
        return str(args.catalog)
    return store_catalog_url(args.store)


def _pending_check(args: argparse.Namespace) -> dict[str, int] | None:
    """With no SOURCE: the store's caption counts when nothing is left to process (None when
    there is work).  Raises when the store does not exist or holds no corpus, before any
    model is loaded."""
    from fossil.db.catalog import SqlCatalog
    from fossil.db.open import CATALOG_FILE

    if args.catalog is None and not (Path(args.store).expanduser() / CATALOG_FILE).is_file():
        raise FileNotFoundError(
            f"no fossil store at {args.store} (no {CATALOG_FILE}): give SOURCE caption files "
            f"to create it, e.g. `fossil ingest captions.jsonl --store {args.store}`"
        )
    catalog = SqlCatalog(_catalog_url(args))
    try:
        counts, corpora = catalog.status_counts(), catalog.corpora()
    finally:
        catalog.close()
    if not corpora:
        where = args.catalog or args.store
        raise FileNotFoundError(
            f"the catalog of {where} holds no corpus yet: give SOURCE caption files, or "
            "register them first with `fossil ingest --register-only SOURCE ...`"
        )
    if counts["pending"] or counts["leased"] or counts["failed"]:
        return None  # leased: expired ones are retried; failed: retried below the limit
    return counts


def register_only(args: argparse.Namespace) -> int:
    """``--register-only``: the corpora go into the catalog; no model, no vector store."""
    from fossil.db.catalog import SqlCatalog

    corpora = read_sources(args)  # bad files raise before anything is written
    if args.catalog is None:
        Path(args.store).expanduser().mkdir(parents=True, exist_ok=True)
    catalog = SqlCatalog(_catalog_url(args))
    try:
        registered = [_register(catalog, corpus) for corpus in corpora]
        counts = catalog.status_counts()
    finally:
        catalog.close()
    summary: dict[str, Any] = {
        "corpora": [asdict(r) for r in registered],
        "store_captions": counts,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    _print_corpora(summary["corpora"])
    status = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    print(f"catalog captions: {status}")
    print("registered only: start workers with `fossil ingest` and no SOURCE to process them")
    return 0


def run(args: argparse.Namespace) -> int:
    from fossil.db.schema import SCHEMA_VERSION
    from fossil.ingest.pool import WorkerPool
    from fossil.ingest.references import collection_meta

    _check_args(args)
    if args.register_only:
        return register_only(args)
    corpora = read_sources(args)
    if not corpora:
        idle = _pending_check(args)
        if idle is not None:
            done = {"pending": 0, "store_captions": idle}
            message = (
                f"nothing pending: all {idle['done']} captions of the store are done "
                "(add corpora with `fossil ingest SOURCE ...`)"
            )
            print(json.dumps(done, indent=2) if args.json else message)
            return 0
    profile = _profile(args)
    phrases = [c.phrase for c in corpora if c.phrase]
    if phrases:
        _warn_without_nouns(profile, phrases)
    loaders = _loaders(args, profile)
    thumbnails = None if args.no_thumbnails or args.store is None else Path(args.store)
    if args.workers == 1:
        models = loaders[0]()
        meta = collection_meta(models, SCHEMA_VERSION)
        return _ingest(args, corpora, meta, models, None, thumbnails)
    with WorkerPool(
        loaders,
        schema_version=SCHEMA_VERSION,
        thumbnail_root=thumbnails,
    ) as pool:
        meta = pool.wait_ready()
        return _ingest(args, corpora, meta, None, pool, thumbnails)


def _warn_without_nouns(profile: str | ModelProfile, concepts: list[str]) -> None:
    from fossil.ingest.concepts import warn_without_nouns
    from fossil.models.loading import load_noun_parser, resolve_profile

    warn_without_nouns(load_noun_parser(resolve_profile(profile).ids["nouns"]), concepts)


def open_store(args: argparse.Namespace, meta: CollectionMeta) -> Collection:
    from fossil.db.open import open_collection

    return open_collection(
        args.store,
        qdrant_url=args.qdrant_url,
        api_key=args.qdrant_api_key,
        catalog_url=args.catalog,
        meta=meta,
        create=True,
        shard_number=args.shards,
        replication_factor=args.replicas,
    )


def _ingest(
    args: argparse.Namespace,
    corpora: Sequence[CorpusFile],
    meta: CollectionMeta,
    models: IngestModels | None,
    pool: WorkerPool | None,
    thumbnails: Path | None,
) -> int:
    """Open the store, register the corpora, process until done (``models`` in this
    process, or the ``pool``'s workers), print the summary."""
    from tqdm.contrib.logging import logging_redirect_tqdm

    from fossil.ingest.worker import BatchWriter, Claimer, KillSwitch, run_ingest

    started = time.monotonic()
    collection = open_store(args, meta)
    try:
        release_stale_leases(args, collection)
        registered = [_register(collection.catalog, corpus) for corpus in corpora]
        owner = f"{socket.gethostname()}:{os.getpid()}"
        claimer = Claimer(collection, owner, args.batch_size, args.lease_seconds, args.limit)
        total = collection.catalog.status_counts()["pending"]
        writer = BatchWriter(
            collection,
            owner,
            total=total if args.limit is None else min(total, args.limit),
            progress=not args.no_progress,
            kill=KillSwitch.from_env(os.environ),
        )
        aborted = False
        with GracefulInterrupt() as interrupt, logging_redirect_tqdm():
            try:
                if pool is None:
                    assert models is not None
                    run_ingest(
                        models,
                        claimer,
                        writer,
                        thumbnail_root=thumbnails,
                        should_stop=interrupt,
                    )
                else:
                    pool.run(claimer, writer, interrupt)
            except KeyboardInterrupt:
                aborted = True  # the batches in flight were released
            finally:
                writer.close()
        stopped = aborted or interrupt()
        if not stopped:
            _refresh_lemma_index(collection)
        elapsed = time.monotonic() - started
        summary = _summary(collection, registered, writer.stats, elapsed, stopped)
    finally:
        collection.close()
    _print_summary(summary, args.json)
    return 130 if aborted else 0


def _refresh_lemma_index(collection: Collection) -> None:
    """A routed collection's saved lemma index brought up to date (fossil.query.routing),
    so the next query process does not rebuild it."""
    from fossil.query.routing import refresh_lemma_index

    started = time.monotonic()
    if refresh_lemma_index(collection):
        logger.info("lemma index refreshed in %.1f s", time.monotonic() - started)


def _register(catalog: CatalogStore, corpus: CorpusFile) -> Registered:
    result: AddResult = catalog.add_corpus(
        corpus.name, corpus.source, corpus.captions, phrase=corpus.phrase
    )
    return Registered(
        name=corpus.name,
        read=len(corpus.captions),
        skipped=corpus.skipped + result.skipped,
        added=result.added,
        duplicates=result.duplicates,
    )


def _summary(
    collection: Collection,
    registered: Sequence[Registered],
    stats: IngestStats,
    elapsed: float,
    interrupted: bool,
) -> dict[str, Any]:
    return {
        "corpora": [asdict(r) for r in registered],
        "captions_processed": stats.captions,
        "captions_without_nouns": stats.without_nouns,
        "failures": stats.failures,
        "references_written": stats.references,
        "empty_masks": stats.empty_masks,
        "nouns_not_located": stats.not_located,
        "mask_area_mean": round(stats.mask_area_mean, 4),
        "elapsed_s": round(elapsed, 2),
        "interrupted": interrupted,
        "store_captions": collection.catalog.status_counts(),
        "store_references": collection.refs.count(),
    }


def _print_summary(summary: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(summary, indent=2))
        return
    _print_corpora(summary["corpora"])
    elapsed = max(summary["elapsed_s"], 1e-9)
    print(
        f"processed {summary['captions_processed']} captions "
        f"({summary['captions_without_nouns']} without nouns) in {summary['elapsed_s']:.1f} s "
        f"({summary['captions_processed'] / elapsed:.2f}/s)"
    )
    if summary["failures"]:
        print(f"{summary['failures']} failed attempts (errors: fossil info --store DIR)")
    print(
        f"wrote {summary['references_written']} references "
        f"({summary['references_written'] / elapsed:.2f}/s; mean mask area "
        f"{summary['mask_area_mean']:.3f}; {summary['empty_masks']} empty masks and "
        f"{summary['nouns_not_located']} nouns not located skipped)"
    )
    status = ", ".join(f"{k} {v}" for k, v in sorted(summary["store_captions"].items()))
    print(f"store: {summary['store_references']} references; captions: {status}")
    if summary["interrupted"]:
        print("interrupted: run the same command again to continue")


def _print_corpora(corpora: Sequence[dict[str, Any]]) -> None:
    for c in corpora:
        print(
            f"corpus {c['name']}: {c['read']} captions read, {c['added']} new, "
            f"{c['duplicates']} already present, {c['skipped']} skipped"
        )
