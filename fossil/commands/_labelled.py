"""``fossil ingest --labelled PATH``: references from labelled photos (design §5.10).

The flags of labelled sets and their run: :func:`~fossil.pipeline.labelled.
read_labelled_corpus` (the set read and checked whole), then one call of
:func:`~fossil.pipeline.labelled.ingest_labelled`; the summary printed as ``fossil ingest``
prints one."""

from __future__ import annotations

import argparse
from functools import partial
from typing import Any

# fossil.ingest.labelled.UNITS and fossil.pipeline.labelled.DEFAULT_UNIT, spelled here so
# that building the parser imports neither (tests/pipeline/test_labelled.py checks they agree)
UNITS = ("class", "instance")
DEFAULT_UNIT = "class"

HELP = """\
labelled photos to learn concepts from, instead of caption corpora: a
labelme JSON file or folder of them, a COCO instances JSON, or a VOC-style folder
(JPEGImages/, SegmentationClass[PNG]/, class_names.txt).  Each (photo, class) becomes one
reference of corpus 'labelled:NAME': its visual vector pooled on the ground-truth mask, its
text vector from the class name (and the file's caption, else one built from the photo's
classes); --unit instance makes one per instance instead.  No generator is loaded.
Rerunning adds nothing; a killed run resumes"""


def add_labelled_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--labelled", default=None, metavar="PATH", help=HELP)
    p.add_argument(
        "--name", default=None, metavar="NAME",
        help="--labelled: the set's name; its corpus is 'labelled:NAME' (default: the "
        "file's stem or the folder's name)",
    )  # fmt: skip
    p.add_argument(
        "--images", default=None, metavar="DIR",
        help="--labelled COCO JSON: the folder its file_name entries are relative to "
        "(default: the JSON file's folder)",
    )  # fmt: skip
    p.add_argument(
        "--unit", default=None, choices=UNITS,
        help="--labelled: one reference per (photo, class), the union of its instances, or "
        "per instance (labelme shapes or group_ids, COCO annotations, VOC "
        "SegmentationObject/ PNGs; VOC class PNGs alone fall back to class) (default: "
        f"{DEFAULT_UNIT}, measured in docs/labelled-photos.md)",
    )  # fmt: skip
    p.add_argument(
        "--with-background", action="store_true",
        help="--labelled VOC folders and labelme's _background_: also ingest the background "
        "class (default: not)",
    )  # fmt: skip


def check_labelled_args(args: argparse.Namespace) -> None:
    """The flags --labelled excludes, and the ones that need it."""
    if args.labelled is None:
        given = (("--name", args.name), ("--images", args.images), ("--unit", args.unit))
        used = [f for f, v in given if v]
        used += ["--with-background"] if args.with_background else []
        if used:
            raise ValueError(f"{', '.join(used)} only apply to --labelled PATH")
        return
    clashes = [
        flag
        for flag, used in (
            ("SOURCE", bool(args.sources)),
            ("--concepts", args.concepts is not None),
            ("--register-only", args.register_only),
            ("--corpus-name", args.corpus_name is not None),
            ("--workers", args.workers != 1),
        )
        if used
    ]
    if clashes:
        raise ValueError(
            f"--labelled PATH ingests labelled photos alone: drop {', '.join(clashes)} "
            "(caption corpora go in a separate `fossil ingest` run)"
        )


def run_labelled(args: argparse.Namespace, settings: tuple[Any, Any, Any]) -> int:
    """Read and check the set, ingest it, print the summary (130 when interrupted)."""
    from fossil.commands._ingest_summary import run_and_report
    from fossil.pipeline.labelled import ingest_labelled, read_labelled_corpus

    store, models, options = settings
    labelled = read_labelled_corpus(
        args.labelled,
        name=args.name,
        images=args.images,
        with_background=args.with_background,
        unit=args.unit,
        progress=not args.no_progress,
    )
    for note in labelled.notes:
        print(f"note: {note}")
    if not args.json:
        print(
            f"{labelled.format} set {labelled.corpus.source}: {labelled.photos} photos, "
            f"{len(labelled.items)} (photo, {labelled.unit}) references to make as corpus "
            f"{labelled.corpus.name!r}"
        )
    return run_and_report(partial(ingest_labelled, store, labelled, models, options), args.json)
