"""``--server URL`` for ``fossil ingest``, ``fossil eval`` and ``fossil query`` (issue 29):
the collection lives in a running ``fossil serve``, which owns its store.

* ``fossil ingest CORPUS --server URL`` uploads each corpus as an ingest job of the server
  and follows it until it ends (Ctrl-C stops it after its current batch).
* ``fossil eval … --server URL`` takes the class names' prototypes from the server and does
  the image work (dense features, keys, OpenCut, scoring) here, with the models the
  collection was built with (or ``--models``).  The report records the server, the
  revision and the moment the prototypes were taken.  ``--every M`` reruns it each time M
  more references have arrived (:mod:`fossil.eval.live`).
* ``fossil query … --server URL`` prints the server's ``GET /query`` answer.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from fossil.client import API_KEY_ENV, ServerClient

if TYPE_CHECKING:
    from fossil.config import CollectionSettings, FossilConfig
    from fossil.db.protocols import Collection, CollectionMeta
    from fossil.eval.datasets import SegmentationDataset

FINISHED = ("done", "failed", "stopped")


def add_server_url_option(parser: argparse.ArgumentParser, *, every: bool = False) -> None:
    """``--server URL`` (and for eval ``--every M``, ``--log FILE``, ``--poll S``)."""
    parser.add_argument(
        "--server", default=None, metavar="URL",
        help="work against a running `fossil serve` at URL (e.g. http://127.0.0.1:8000), "
        f"which owns the store; its API key from ${API_KEY_ENV}",
    )  # fmt: skip
    if not every:
        return
    parser.add_argument(
        "--every", type=int, default=None, metavar="M",
        help="with --server: rerun the evaluation each time M more references have arrived, "
        "until no ingest job is left on the server; one line per run in --log",
    )  # fmt: skip
    parser.add_argument(
        "--log", type=Path, default=None, metavar="FILE",
        help="with --every: the log of runs, CSV or JSON Lines (.json/.jsonl) (default: "
        "<out>/live.csv)",
    )  # fmt: skip
    parser.add_argument(
        "--poll", type=float, default=5.0, metavar="S",
        help="with --every: seconds between looks at the collection's size (default: "
        "%(default)s)",
    )  # fmt: skip


def client_of(args: argparse.Namespace) -> ServerClient:
    return ServerClient(args.server, api_key=os.environ.get(API_KEY_ENV) or None)


@dataclass(frozen=True)
class RemoteCollection:
    """What a client knows of the server's collection: the models it was built with and the
    settings it records (enough to load the same models and build the same config)."""

    meta: CollectionMeta
    settings: CollectionSettings | None
    root: None = None

    @classmethod
    def of(cls, answer: dict[str, Any]) -> RemoteCollection:
        from fossil.config import CollectionSettings
        from fossil.db.protocols import CollectionMeta

        recorded = answer.get("settings")
        settings = None if recorded is None else CollectionSettings.from_dict(recorded)
        return cls(CollectionMeta(**answer["meta"]), settings)

    def as_collection(self) -> Collection:
        """For the model loaders, which read only ``meta`` of a collection."""
        return cast("Collection", self)


# -- ingest ------------------------------------------------------------------------------
def ingest_with_server(args: argparse.Namespace) -> int:
    """Each SOURCE as a server job, followed until it ends; 1 when one failed."""
    if not args.sources:
        raise ValueError("--server: give the caption corpus files to ingest (SOURCE)")
    client = client_of(args)
    status = 0
    for source in args.sources:
        started = client.start_ingest(source, name=getattr(args, "corpus_name", None))
        job = started["job"]
        print(f"{source}: job {job} on {client.url}", file=sys.stderr)
        try:
            state = follow_job(client, job, progress=not getattr(args, "no_progress", False))
        except KeyboardInterrupt:
            client.stop(job)
            print(f"job {job}: stop requested; it stops after its current batch and a later "
                  "job resumes its captions", file=sys.stderr)  # fmt: skip
            return 130
        summary = {k: state[k] for k in ("job", "state", "captions_done", "references_written",
                                         "failed_captions", "errors", "revision")}  # fmt: skip
        print(json.dumps(summary) if args.json else _job_line(state))
        status = status or int(state["state"] != "done")
    return status


def follow_job(client: ServerClient, job: str, *, progress: bool, poll_s: float = 2.0) -> dict:
    """Poll ``GET /ingest/{job}`` until it ends; a line on stderr per change."""
    last = None
    while True:
        state = client.job(job)
        line = _job_line(state)
        if progress and line != last:
            print(line, file=sys.stderr)
            last = line
        if state["state"] in FINISHED:
            return state
        time.sleep(poll_s)


def _job_line(state: dict[str, Any]) -> str:
    rate = state["rate"]["references_per_s"]
    return (
        f"job {state['job']} {state['state']}: {state['captions_done']}/{state['total']} "
        f"captions, {state['references_written']} references ({rate:.2f}/s)"
        + (f"; errors: {'; '.join(state['errors'])}" if state["errors"] else "")
    )


# -- query -------------------------------------------------------------------------------
def query_with_server(args: argparse.Namespace) -> int:
    for flag in ("extend", "grid"):
        if getattr(args, flag, None):
            raise ValueError(f"--{flag} does not work with --server (the server's store)")
    answer = client_of(args).query(args.concepts, n=args.n, k=args.k, top=args.top)
    if args.json:
        json.dump(answer, sys.stdout)
        sys.stdout.write("\n")
        return 0
    print(f"server {args.server}, collection revision {answer['revision']}")
    for concept in answer["concepts"]:
        print(f"{concept['concept']}: {concept['retrieved']} references, "
              f"{concept['prototypes']} prototypes")  # fmt: skip
        for r in concept["references"]:
            print(f"  {r['score']:6.3f}  {r['noun']:<16.16}  {r['caption'] or '(not catalogued)'}")
    return 0


# -- eval --------------------------------------------------------------------------------
def eval_with_server(args: argparse.Namespace, dataset: SegmentationDataset) -> int:
    """``fossil eval --server``: once, or with ``--every`` each time the collection grew."""
    from fossil.commands._options import load_command_models
    from fossil.commands.eval import eval_config, eval_out_dir
    from fossil.eval.live import Growth, LiveLog, follow_growth
    from fossil.pipeline.models import check_dense_encoder

    if args.store or getattr(args, "qdrant_url", None):
        raise ValueError("--server: the server owns the store; leave out --store/--qdrant-url")
    if args.every is None and (args.log is not None):
        raise ValueError("--log needs --every M")
    if args.every is not None and args.every < 1:
        raise ValueError(f"--every ({args.every}) must be >= 1 references")
    client = client_of(args)
    remote = RemoteCollection.of(client.collection())
    config, preset = eval_config(args, remote.settings, dataset)
    models = load_command_models(args, "eval", remote.as_collection(), sizes=config.eval)
    check_dense_encoder(remote.as_collection(), models)
    out_dir = eval_out_dir(args, config)

    def run_once(number: int | None) -> dict[str, Any]:
        where = out_dir if number is None else out_dir / f"run{number:03d}"
        return {
            "run": number,
            **_evaluate_once(args, client, dataset, models, config, preset, where),
        }

    if args.every is None:
        line = run_once(None)
        print(f"{dataset.name}: mIoU {100 * line['miou']:.2f}  aAcc {100 * line['aacc']:.2f}  "
              f"({line['images']} images; server {client.url}, revision {line['revision']}, "
              f"{line['references']} references)")  # fmt: skip
        return 0
    log = LiveLog(args.log or out_dir / "live.csv")

    def look() -> Growth:
        answer = client.collection()
        return Growth(int(answer["references"]), bool(answer["ingest_active"]))

    lines = follow_growth(look, run_once, log, args.every, poll_s=args.poll)
    for line in lines:
        print(f"{line['references']} references (revision {line['revision']}): mIoU "
              f"{100 * line['miou']:.2f}")  # fmt: skip
    print(f"log: {log.path}")
    return 0


def _evaluate_once(
    args: argparse.Namespace,
    client: ServerClient,
    dataset: SegmentationDataset,
    models: Any,
    config: FossilConfig,
    preset: str,
    out_dir: Path,
) -> dict[str, Any]:
    """One evaluation with the server's prototypes as of now; its log line."""
    from fossil.commands.eval import default_cache_dir, run_evaluation
    from fossil.pipeline import build_predictor
    from fossil.pipeline.crop_cache import CropCache

    retrieval = config.retrieval
    found = client.prototypes(dataset.class_names, n=retrieval.N, k=retrieval.K)
    taken = datetime.fromtimestamp(found.taken_at, timezone.utc).isoformat()
    cache = None if args.no_cache else CropCache(args.cache_dir or default_cache_dir())
    predictor = build_predictor(list(found.prototypes), models.dense, models.keys, config, cache)
    info = {
        "profile": models.profile,
        "models": dict(models.ids),
        "device": models.device,
        "server": client.url,
        "collection_revision": found.revision,
        "collection_size": found.collection_size,
        "prototypes_taken_at": taken,
        "references_per_class": list(found.references),
        "prototypes_per_class": [len(p) for p in found.prototypes],
    }
    result = run_evaluation(args, dataset, predictor, config, preset, info, out_dir)
    return {
        "references": found.collection_size,
        "revision": found.revision,
        "miou": result.miou,
        "aacc": result.aacc,
        "images": result.num_images,
        "prototypes_taken_at": taken,
        "finished_at": datetime.now(timezone.utc).isoformat(),
        "out": str(out_dir),
    }
