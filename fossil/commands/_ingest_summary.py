"""What ``fossil ingest`` prints when it ends (caption corpora, ``--register-only`` and
``--labelled`` alike): the summary of :mod:`fossil.pipeline.ingest`, as text or JSON."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from fossil.commands._interrupt import GracefulInterrupt

if TYPE_CHECKING:
    from fossil.pipeline.ingest import IngestSummary


def run_and_report(ingest: Callable[..., IngestSummary], as_json: bool) -> int:
    """``ingest(on_progress=…, should_stop=…)`` (a library ingest call with its store, corpus
    and models bound) with Ctrl-C stopping it after the current batch, then its summary
    printed: 0, or 130 when it was interrupted."""
    from fossil.pipeline.ingest import IngestAborted

    try:
        with GracefulInterrupt(armed=False) as interrupt:  # armed while batches run
            summary = ingest(on_progress=interrupt.follow, should_stop=interrupt)
    except IngestAborted as aborted:
        print_summary(aborted.summary, as_json)
        return 130
    print_summary(summary, as_json)
    return 0


def print_idle(summary: IngestSummary, as_json: bool) -> None:
    """Nothing was pending: every caption of the store is done."""
    done = summary.store_captions["done"]
    print(
        json.dumps({"pending": 0, "store_captions": dict(summary.store_captions)}, indent=2)
        if as_json
        else f"nothing pending: all {done} captions of the store are done (add corpora "
        "with `fossil ingest SOURCE ...`)"
    )


def print_registered(summary: IngestSummary, as_json: bool) -> int:
    corpora = [asdict(r) for r in summary.corpora]
    if as_json:
        print(json.dumps({"corpora": corpora, "store_captions": summary.store_captions}, indent=2))
        return 0
    _print_corpora(corpora)
    status = ", ".join(f"{k} {v}" for k, v in sorted(summary.store_captions.items()))
    print(f"catalog captions: {status}")
    print("registered only: start workers with `fossil ingest` and no SOURCE to process them")
    return 0


def print_summary(result: IngestSummary, as_json: bool) -> None:
    """What the run did (an idle run: :func:`print_idle`)."""
    if result.idle:
        print_idle(result, as_json)
        return
    summary = result.as_dict()
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


def _print_corpora(corpora: list[dict[str, Any]]) -> None:
    for c in corpora:
        print(
            f"corpus {c['name']}: {c['read']} captions read, {c['added']} new, "
            f"{c['duplicates']} already present, {c['skipped']} skipped"
        )
