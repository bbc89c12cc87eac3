"""``fossil segment``: label images with free-text concepts against a reference collection."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fossil.commands._options import (
    add_coverage_options,
    add_json_option,
    add_models_options,
    add_preset_option,
    add_segmentation_options,
    add_server_options,
    add_store_option,
    build_config,
    coverage_config,
    parse_concepts,
    per_concept,
)
from fossil.config import CollectionSettings, FossilConfig
from fossil.pipeline.image_limits import BUDGET_VARIABLE, MAX_DECODE_MB

if TYPE_CHECKING:
    import numpy as np

    from fossil.pipeline.session import SegmentationResult
    from fossil.query.coverage import Coverage

logger = logging.getLogger(__name__)

DESCRIPTION = """\
Segment images: every pixel gets one of the concepts.  References for each concept are
retrieved from the store (N per concept, clustered into K prototypes), OpenCut proposes
regions on DINO keys, and each region is scored against the prototypes (paper eq. 5).

Writes, per image, OUT/<name>.overlay.png (labels over the image, with a legend) and
OUT/<name>.labels.png (concept index per pixel, 0-based, in the order of --concepts);
with --json also OUT/<name>.json (per region: concept, score, the references that decided it)
and the same JSON on stdout.

Concepts the collection does not cover (see `fossil query`) are named in a warning;
--extend generates references for them first (kept in the store for later runs).

example:
  fossil segment park.jpg --concepts "dog, grass, sky, tree" --store refs/ --out out/
"""


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "segment",
        help="label images with free-text concepts",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (any PIL format)")
    p.add_argument(
        "--concepts", required=True, metavar='"A, B, C"', help="comma-separated concept texts"
    )
    add_store_option(p)
    add_preset_option(p)
    p.add_argument("--out", default="fossil-out", metavar="DIR", help="output directory")
    add_json_option(p, "write and print per-region JSON")
    p.add_argument(
        "--no-progress", action="store_true", help="hide the per-crop bar on long images"
    )
    p.add_argument(
        "--max-image-mb",
        type=float,
        default=None,
        metavar="MB",
        help="refuse images whose decoding needs more memory than this, before decoding "
        f"(default: ${BUDGET_VARIABLE} or {MAX_DECODE_MB})",
    )
    add_segmentation_options(p)
    add_coverage_options(p)
    add_models_options(p)
    add_server_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from fossil.commands._session import coverage_or_extend, open_session
    from fossil.pipeline.images import load_image
    from fossil.pipeline.session import ReadCaches

    concepts = parse_concepts(args.concepts)
    paths = [Path(p) for p in args.images]
    # fail on a bad image before any work
    images = {path: load_image(path, args.max_image_mb) for path in paths}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    M: int | None = None  # --extend: references generated per uncovered concept

    def configure(settings: CollectionSettings | None) -> FossilConfig:
        """The collection's N, K, γ and sides unless flags say otherwise."""
        nonlocal M
        config = build_config(args, args.preset, settings)
        if args.extend:  # a bad --per-concept fails before any model loads
            M = per_concept(args, config.retrieval.N)
        return replace(config, coverage=coverage_config(args))

    # concept embeddings kept in the store; the generator is built only if --extend generates
    caches = ReadCaches(embeddings=True)
    with open_session(args, "segment", configure, extend=args.extend, caches=caches) as session:
        covered, _ = coverage_or_extend(session, concepts, M)
        warn_uncovered(covered)
        reports = []
        for path, image in images.items():
            result = session.segment(image, concepts, progress=not args.no_progress)
            reports.append(write_outputs(path, image, result, out, args.json))
    if args.json:
        json.dump(reports if len(reports) > 1 else reports[0], sys.stdout, indent=2)
        print()
    else:
        for report in reports:
            print(f"{report['image']}: {report['overlay']}  {report['labels']}")
    return 0


def warn_uncovered(covered: list[Coverage]) -> None:
    """One warning naming the concepts the collection does not cover."""
    uncovered = [c for c in covered if not c.covered]
    if uncovered:
        names = ", ".join(c.concept for c in uncovered)
        logger.warning(
            "the collection does not cover %s (%s): their labels come from the nearest "
            'unrelated references; rerun with --extend, or `fossil ingest --concepts "%s"`',
            ", ".join(repr(c.concept) for c in uncovered),
            "; ".join(f"{c.concept}: {c.reason}" for c in uncovered),
            names,
        )


def write_outputs(
    path: Path, image: np.ndarray, result: SegmentationResult, out: Path, as_json: bool
) -> dict[str, Any]:
    from PIL import Image

    from fossil.pipeline.overlay import overlay

    stem = path.stem
    overlay_path = out / f"{stem}.overlay.png"
    labels_path = out / f"{stem}.labels.png"
    overlay(image, result.labels, result.concepts).save(overlay_path)
    dtype = "uint8" if len(result.concepts) <= 256 else "uint16"
    Image.fromarray(result.labels.astype(dtype)).save(labels_path)
    report = report_dict(path, result)
    report.update(overlay=str(overlay_path), labels=str(labels_path))
    if as_json:
        (out / f"{stem}.json").write_text(json.dumps(report, indent=2))
    return report


def report_dict(path: Path, result: SegmentationResult) -> dict[str, Any]:
    import numpy as np

    counts = np.bincount(result.labels.ravel(), minlength=len(result.concepts))
    total = max(int(counts.sum()), 1)
    return {
        "image": str(path),
        "size": [int(result.labels.shape[1]), int(result.labels.shape[0])],
        "concepts": [
            {"concept": c, "index": i, "pixels": float(counts[i] / total)}
            for i, c in enumerate(result.concepts)
        ],
        "regions": [
            {
                "crop": list(e.region.box),
                "mask": e.region.index,
                "area": e.region.area,
                "concept": result.concepts[e.region.concept],
                "score": round(e.region.score, 6),
                "references": [
                    {"id": i, "cosine": round(s, 6), "caption": c, "noun": n, "thumbnail": t}
                    for i, s, c, n, t in e.references
                ],
            }
            for e in result.explanations
        ],
    }
