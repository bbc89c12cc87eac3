"""``fossil eval``: mIoU on a benchmark against the live reference collection (design §9)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fossil.commands._options import (
    add_models_options,
    add_preset_option,
    add_segmentation_options,
    add_server_options,
    add_store_option,
    build_config,
)
from fossil.commands._remote import add_server_url_option
from fossil.commands._session import open_session
from fossil.config import CollectionSettings, FossilConfig, TextConfig
from fossil.eval.layouts import SPECS

if TYPE_CHECKING:
    from fossil.eval.datasets import SegmentationDataset
    from fossil.eval.metrics import EvalResult
    from fossil.pipeline.session import ReadSession
    from fossil.segment.window import CropPredictor

HELP = "evaluate on Pascal Context 59, COCO-Stuff 171, ADE20K 150 or Cityscapes 19 (mIoU)"

DESCRIPTION = """\
Segment every validation image of a benchmark with the TCL / mmseg 0.27 protocol (resize to
short side 448, sliding 448 crops with stride 224), the dataset's class names as concepts,
and report per-class IoU, mIoU and aAcc (results.json, report.md, iou.png under --out).

--data points at the mmseg converted layout:
  pascal_context59  VOCdevkit/VOC2010 (JPEGImages, SegmentationClassContext,
                    ImageSets/SegmentationContext/val.txt)
  coco_stuff171     coco_stuff164k (images/val2017, annotations/val2017/*_labelTrainIds.png)
  ade20k            ADEChallengeData2016 (images/validation, annotations/validation)
  cityscapes        cityscapes (leftImg8bit/val, gtFine/val/*_gtFine_labelTrainIds.png)

Runs are resumable: per-image results live under --out; rerun the same command to continue.
Per-crop features and OpenCut masks are cached under --cache-dir, so sweeping N, K and γ
only redoes the cheap part.

example:
  fossil eval ade20k --data ADEChallengeData2016 --store refs/ --limit 50
"""


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "fossil" / "crops"


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "eval",
        help=HELP,
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    presets = ", ".join(f"{s.name}→{s.preset}" for s in SPECS.values())
    p.add_argument("dataset", choices=list(SPECS), help="benchmark to evaluate")
    p.add_argument("--data", type=Path, required=True, metavar="DIR", help="dataset root")
    add_store_option(p)
    p.add_argument(
        "--classes", type=Path, default=None, metavar="FILE",
        help="concept names to use instead of the benchmark's (label i after the layout's "
        "zero-label reduction is line i): a JSON list, a JSON object with a 'classes' list "
        "(as `fossil demo` writes) or a text file with one name per line",
    )  # fmt: skip
    add_preset_option(p, fallback=f"the dataset's own ({presets})")
    add_segmentation_options(p)
    p.add_argument(
        "--limit",
        type=int,
        default=None,
        help="evaluate only the first LIMIT images (in dataset order)",
    )
    p.add_argument(
        "--out", type=Path, default=None, metavar="DIR",
        help="results folder (default: fossil-eval/<dataset>/N<N>_K<K>_gamma<γ>)",
    )  # fmt: skip
    p.add_argument(
        "--save-predictions",
        action="store_true",
        help="write each predicted label map as <out>/predictions/<image>.png (original size, "
        "the dataset's label ids after reduce_zero_label; every pixel labelled)",
    )
    p.add_argument(
        "--cache-dir", type=Path, default=None, metavar="DIR",
        help=f"per-crop features + OpenCut masks cache (default: {default_cache_dir()})",
    )  # fmt: skip
    p.add_argument(
        "--no-cache",
        action="store_true",
        help="do not cache per-crop work nor concept embeddings",
    )
    p.add_argument(
        "--restart", action="store_true", help="discard earlier per-image results under --out"
    )
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_models_options(p)
    add_server_options(p)
    add_server_url_option(p, every=True)  # issue 29: a live `fossil serve`
    p.set_defaults(func=run)


def open_predictor(
    session: ReadSession, class_names: Sequence[str]
) -> tuple[CropPredictor, dict[str, Any]]:
    """The prototypes of ``class_names`` → the crop predictor (design §5.8) and what the report
    records about it (model ids, collection revision, references per class)."""
    results = session.query(class_names)
    prototypes = [r.prototypes for r in results]
    predictor = session.predictor(prototypes)
    models = session.models
    return (
        predictor,
        {
            "profile": models.profile,
            "models": dict(models.ids),
            "device": models.device,
            "collection_revision": results[0].revision,
            "references_per_class": [len(r.references) for r in results],
            "prototypes_per_class": [len(p) for p in prototypes],
        },
    )


def config_info(
    args: argparse.Namespace, config: FossilConfig, preset: str, predictor_info: dict[str, Any]
) -> dict[str, Any]:
    """The exact configuration recorded in the reports."""
    from fossil.eval.report import config_record, package_versions

    return {
        "dataset": args.dataset,
        "store": args.store or args.qdrant_url,
        "preset": preset,
        **config_record(config),
        "tau_foreground": list(config.opencut.tau_foreground),
        "tau_background": list(config.opencut.tau_background),
        **predictor_info,
        "text": asdict(TextConfig()),  # ingest's default TRE weight (IngestOptions.text)
        "limit": args.limit,
        "data": str(args.data),
        "packages": package_versions(),
    }


def read_classes(path: Path) -> list[str]:
    """Concept names from ``--classes FILE`` (see its help)."""
    import json

    text = path.read_text("utf-8")
    if path.suffix.lower() != ".json":
        return [line.strip() for line in text.splitlines() if line.strip()]
    data = json.loads(text)
    names = data.get("classes") if isinstance(data, dict) else data
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ValueError(f'{path}: expected a JSON list of names or {{"classes": [...]}}')
    return names


def eval_config(
    args: argparse.Namespace, settings: CollectionSettings | None, dataset: SegmentationDataset
) -> tuple[FossilConfig, str]:
    """N, K, γ: flags, else --preset, else the collection's ``settings``, else the dataset's;
    and what the report calls that setting."""
    preset = args.preset or (
        "collection" if settings is not None and settings.sets_retrieval else dataset.spec.preset
    )
    return build_config(args, args.preset, settings, default_preset=dataset.spec.preset), preset


def eval_out_dir(args: argparse.Namespace, config: FossilConfig) -> Path:
    """--out, else ``fossil-eval/<dataset>/N<N>_K<K>_gamma<γ>``."""
    sweep = f"N{config.retrieval.N}_K{config.retrieval.K}_gamma{config.scoring.gamma:g}"
    return args.out or Path("fossil-eval") / args.dataset / sweep


def run_evaluation(
    args: argparse.Namespace,
    dataset: SegmentationDataset,
    predictor: Any,
    config: FossilConfig,
    preset: str,
    predictor_info: dict[str, Any],
    out_dir: Path,
) -> EvalResult:
    """The evaluation the flags ask for (limit, resume, predictions, progress), with the
    report's config record; the prototypes' source is the caller's (a session, a server)."""
    from fossil.eval.runner import evaluate

    return evaluate(
        dataset,
        predictor,
        out_dir=out_dir,
        config_info=config_info(args, config, preset, predictor_info),
        limit=args.limit,
        save_predictions=args.save_predictions,
        resume=not args.restart,
        progress=not args.no_progress,
        eval_config=config.eval,
    )


def run(args: argparse.Namespace) -> int:
    from fossil.eval.datasets import open_dataset

    class_names = read_classes(args.classes) if args.classes else None
    dataset = open_dataset(args.dataset, args.data, class_names)  # errors before models load
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit ({args.limit}) must be >= 1")
    if args.server or args.every is not None:  # issue 29: prototypes from a live server
        from fossil.commands._remote import eval_with_server

        if not args.server:
            raise ValueError("--every needs --server URL (a running `fossil serve`)")
        return eval_with_server(args, dataset)
    from fossil.pipeline.session import ReadCaches

    preset: str = dataset.spec.preset  # what the report calls the setting (set below)

    def configure(settings: CollectionSettings | None) -> FossilConfig:
        nonlocal preset
        config, preset = eval_config(args, settings, dataset)
        return config

    crops = None if args.no_cache else args.cache_dir or default_cache_dir()
    caches = ReadCaches(embeddings=not args.no_cache, crops=crops)  # + concept embeddings
    with open_session(args, "eval", configure, caches=caches) as session:
        config = session.config
        out_dir = eval_out_dir(args, config)
        predictor, predictor_info = open_predictor(session, dataset.class_names)
        result = run_evaluation(args, dataset, predictor, config, preset, predictor_info, out_dir)
    print(f"{dataset.name}: mIoU {100 * result.miou:.2f}  aAcc {100 * result.aacc:.2f}  "
          f"({result.num_images} images, {result.resumed} resumed)")  # fmt: skip
    if result.skipped:
        print(f"skipped {len(result.skipped)} images without ground truth; see report.md")
    for kind, path in result.reports.items():
        print(f"{kind}: {path}")
    return 0
