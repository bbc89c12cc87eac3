"""``fossil query``: what concepts retrieve: references, provenance, prototypes (design §1.2)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from fossil.commands._options import (
    add_coverage_options,
    add_json_option,
    add_models_options,
    add_preset_option,
    add_references_option,
    add_retrieval_options,
    add_server_options,
    add_store_option,
    check_output_file,
    collection_config,
    coverage_config,
    per_concept,
)
from fossil.commands._remote import add_server_url_option
from fossil.config import CollectionSettings, FossilConfig, RetrievalConfig, with_overrides
from fossil.records import SOURCE_LABELLED

if TYPE_CHECKING:
    from fossil.query.coverage import Coverage
    from fossil.query.retrieval import ConceptResult

DESCRIPTION = """\
Retrieve, for each CONCEPT, the N references whose text embedding is closest to it, and
cluster their visual embeddings into K prototypes (what `fossil segment` compares image
regions with).  Shows each concept's top references with the caption and noun they come
from; --grid draws their thumbnails with the noun masks, --json prints everything,
prototypes included.  Results are cached under DIR/cache/prototypes until the collection
changes.

Each concept is also checked for coverage: a concept the collection has never seen still
retrieves N references — the nearest unrelated ones.  It counts as covered when enough
references carry its own noun, or when the best and the N-th similarities reach thresholds
measured for the text encoder (--min-best, --min-nth).  --extend generates references for
the uncovered concepts first (see `fossil ingest --concepts`).
"""


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "query",
        help="inspect the references and prototypes of concepts",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("concepts", nargs="+", metavar="CONCEPT", help="concept texts")
    add_store_option(p)
    add_preset_option(p, "N and K")
    add_retrieval_options(p)
    p.add_argument(
        "--threshold",
        type=float,
        default=None,
        metavar="S",
        help="drop references with cosine similarity below S (default: keep all N)",
    )
    p.add_argument(
        "--mean", action="store_true", help="one prototype per concept: the mean of its references"
    )
    add_references_option(p)
    p.add_argument(
        "--exclude-corpus",
        action="append",
        default=[],
        metavar="NAME",
        help="never retrieve references of corpus NAME (repeatable)",
    )
    add_models_options(
        p, "; query takes the text encoder and noun parser from it, and with --extend the "
        "generator and dense encoder if it generates",
    )  # fmt: skip
    add_json_option(p, "print JSON (references and prototypes)")
    p.add_argument("--grid", default=None, metavar="OUT.png", help="draw the top references")
    p.add_argument(
        "--top", type=int, default=8, metavar="T", help="references shown per concept (default: 8)"
    )
    p.add_argument(
        "--no-cache",
        action="store_true",
        help="neither read nor write the store's caches (prototypes, concept embeddings)",
    )
    add_coverage_options(p)
    add_server_options(p)
    add_server_url_option(p)  # issue 29: a live `fossil serve`
    p.set_defaults(func=run)


def retrieval_config(
    args: argparse.Namespace, settings: CollectionSettings | None = None
) -> RetrievalConfig:
    """Flags over the collection's ``settings`` → :class:`RetrievalConfig` (validated there:
    1 ≤ K ≤ N)."""
    config = with_overrides(collection_config(settings), args.preset, N=args.n, K=args.k)
    return replace(
        config.retrieval,
        retrieval_threshold=args.threshold,
        prototype_mean=args.mean,
        exclude_corpora=tuple(args.exclude_corpus),
        references=args.references,
    )


def result_dict(result: ConceptResult) -> dict[str, Any]:
    return {
        "concept": result.concept,
        "revision": result.revision,
        "references": [r.as_dict() for r in result.references],
        "prototypes": result.prototypes.astype(float).round(6).tolist(),
    }


def run(args: argparse.Namespace) -> int:
    from fossil.commands._session import coverage_or_extend, open_session
    from fossil.concepts import Concepts
    from fossil.pipeline.session import ReadCaches

    if args.server:  # issue 29: the server at URL answers
        from fossil.commands._remote import query_with_server

        return query_with_server(args)
    concepts = Concepts.check(args.concepts)
    coverage = coverage_config(args)
    if args.top < 1:
        raise ValueError(f"--top ({args.top}) must be >= 1")
    if args.grid:
        check_output_file(args.grid, "--grid")
    M: int | None = None  # --extend: references generated per uncovered concept

    def configure(settings: CollectionSettings | None) -> FossilConfig:
        """The collection's N and K unless flags say otherwise."""
        nonlocal M
        retrieval = retrieval_config(args, settings)
        if args.extend:  # a bad --per-concept fails before any model loads
            M = per_concept(args, retrieval.N)
        base = FossilConfig() if settings is None else settings.apply(FossilConfig())
        return replace(base, retrieval=retrieval, coverage=coverage)

    caches = ReadCaches() if args.no_cache else ReadCaches(embeddings=True, prototypes=True)
    with open_session(args, "query", configure, extend=args.extend, caches=caches) as session:
        config = session.config.retrieval
        covered, extension = coverage_or_extend(session, concepts, M)
        results = session.query(concepts)
    if args.grid:
        from fossil.query.grid import draw_grid

        draw_grid(results, args.grid, top=args.top)
    if args.json:
        report: dict[str, Any] = {
            "N": config.N,
            "K": config.K,
            "concepts": [
                {**result_dict(r), "coverage": c.as_dict()}
                for r, c in zip(results, covered, strict=True)
            ],
        }
        if extension is not None:
            report["extension"] = extension.as_dict()
        json.dump(report, sys.stdout)
        sys.stdout.write("\n")
    else:
        _print_table(results, covered, args.top)
    if args.grid:
        print(f"grid written to {args.grid}", file=sys.stderr)
    _warn_uncatalogued(results, args)
    return 0


def _warn_uncatalogued(results: list[ConceptResult], args: argparse.Namespace) -> None:
    """One line on stderr when references lack their catalog rows (their provenance).  The
    answer stands — it comes from the vectors and payloads — and a crash between a batch's
    vector upsert and its catalog commit leaves such points until the next ingest; a
    catalog that lost every row is refused when the store opens."""
    retrieved = {r.id: r.caption for result in results for r in result.references}
    lacking = sum(1 for caption in retrieved.values() if caption is None)
    if not lacking:
        return
    fix = (
        f"run `fossil store check --repair --store {args.store}` (it catalogues them from "
        "their payloads), or rerun an interrupted `fossil ingest`"
        if args.store and not args.qdrant_url
        else "restore the catalog from a backup, or rerun an interrupted `fossil ingest`"
    )
    print(
        f"fossil query: warning: {lacking} of the {len(retrieved)} references retrieved are not "
        f"in the catalog (their captions and thumbnails are unknown): {fix}",
        file=sys.stderr,
    )


def _print_table(results: list[ConceptResult], covered: list[Coverage], top: int) -> None:
    for result, coverage in zip(results, covered, strict=True):
        state = "covered" if coverage.covered else "UNCOVERED"
        print(
            f"{result.concept}: {len(result.references)} references, "
            f"{len(result.prototypes)} prototypes; {state}: {coverage.reason}"
        )
        for r in result.references[:top]:
            origin = "photo" if r.source == SOURCE_LABELLED else "gen."
            print(
                f"  {r.score:6.3f}  {origin:<5} {r.noun:<16.16}  {r.caption or '(not catalogued)'}"
            )
    uncovered = [c.concept for c in covered if not c.covered]
    if uncovered:
        names = ", ".join(uncovered)
        print(
            f"uncovered: {names} — these references are the nearest unrelated ones; generate "
            f'references with --extend or `fossil ingest --concepts "{names}"`'
        )
