"""``fossil demo``: the whole pipeline on a SYNTHETIC world, offline, with ground truth."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from fossil.commands._options import SERVE_EXTRA, add_json_option

DESCRIPTION = """\
Run fossil end to end with no pretrained vision weights, on a SYNTHETIC world of ~15
procedural materials (grass, sky, water, sand, brick wall, ...):

  1. write --captions captions over the materials and ingest them into a fresh embedded
     store (OUT/store): a procedural generator stands in for Stable Diffusion (scenes with
     imperfect, DAAM-like noun heat maps) and colour/texture statistics stand in for
     DINOv2/DINO; the noun parser (spaCy) and the text encoder (all-MiniLM-L6-v2) are real;
  2. write --scenes held-out scenes with ground truth (OUT/scenes, ADE20K layout) whose
     class names are synonyms the captions never use ("lawn", "ocean", "brickwork", ...);
  3. retrieve references, cluster prototypes and evaluate with the real protocol, once
     with OpenCut regions and once per patch (OUT/eval/opencut, OUT/eval/per_patch);
  4. draw OUT/references.png (what each concept retrieved) and OUT/panels/*.png
     (image | ground truth | OpenCut | per patch).

The numbers measure the software on the synthetic world, not the paper's method on real
images; those need the paper's models (`fossil eval`).  Each stage is printed with the
seconds elapsed.  Measured on 2 CPU cores shared with other work (load average 13-14):
36 minutes, of which ingest 21 and OpenCut 13 (26 s per scene); per patch 0.6 s per scene.
It ends with the commands to try next on the store it built.
"""


def add_parser(subparsers: Any) -> None:
    from fossil.demo.settings import DemoConfig

    defaults = DemoConfig()
    p = subparsers.add_parser(
        "demo",
        help="run the whole pipeline offline on a synthetic world and report mIoU",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--out", type=Path, default=Path("demo-out"), metavar="DIR",
        help="fresh output folder (default: %(default)s; refused when not empty)",
    )  # fmt: skip
    p.add_argument(
        "--captions", type=int, default=defaults.captions, metavar="C",
        help="captions to ingest (default: %(default)s)",
    )  # fmt: skip
    p.add_argument(
        "--scenes", type=int, default=defaults.scenes, metavar="S",
        help="held-out scenes to evaluate (default: %(default)s)",
    )  # fmt: skip
    p.add_argument("--seed", type=int, default=defaults.seed, help="world seed (default: 0)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    add_json_option(p)
    p.set_defaults(func=run)


class StagePrinter:
    """Prints each stage of the demo on stderr with the seconds elapsed since it began."""

    def __init__(self) -> None:
        self.started = time.perf_counter()

    def __call__(self, message: str) -> None:
        elapsed = time.perf_counter() - self.started
        print(f"[{elapsed:6.1f} s] {message}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    from fossil.demo.settings import DemoConfig
    from fossil.demo.world import run_demo

    config = DemoConfig(captions=args.captions, scenes=args.scenes, seed=args.seed)
    stage = StagePrinter()
    result = run_demo(args.out, config, progress=not args.no_progress, on_stage=stage)
    stage(f"done: {result.out}")
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
        return 0
    t = result.timings
    print(f"SYNTHETIC world under {result.out}")
    print(
        f"ingest: {config.captions} captions -> {result.references} references in "
        f"{t['ingest_s']:.1f} s ({t['ingest_refs_per_s']:.1f} refs/s)"
    )
    print(f"query: {len(next(iter(result.iou.values())))} concepts in {t['query_s']:.2f} s")
    for name, label in (("opencut", "with OpenCut"), ("per_patch", "per patch   ")):
        print(
            f"mIoU {label}: {100 * result.miou[name]:.2f}  "
            f"({t[f'segment_{name}_s_per_image']:.2f} s/image)"
        )
    for key in ("references", "panels", "report_opencut", "report_per_patch"):
        print(f"{key}: {result.files[key]}")
    print(f"total {t['total_s']:.0f} s")
    print()
    print(next_commands(result.out))
    return 0


def next_commands(out: Path) -> str:
    """What to try next on the demo's store, each command runnable as printed from the
    folder the demo ran in (the store brings its models and settings: no --models, no --n)."""
    from fossil.demo.scenes import CLASSES_FILE, IMAGE_DIR

    store, scenes = out / "store", out / "scenes"
    images = sorted((scenes / IMAGE_DIR).glob("*.jpg"))
    concepts = ", ".join(scene_concepts(scenes, images[0].stem)) if images else "grass, sky"
    q = shlex.quote
    lines = [
        "next (from this folder; the store brings its own models and settings):",
        f"  fossil serve --store {q(str(store))}",
        f"      then open http://127.0.0.1:8000/ (needs the serve extra: {SERVE_EXTRA})",
        f"  fossil query grass sky --store {q(str(store))}",
    ]
    if images:
        lines.append(
            f"  fossil segment {q(str(images[0]))} --concepts {q(concepts)} --store "
            f"{q(str(store))} --out {q(str(out / 'segment'))}"
        )
    lines.append(
        f"  fossil eval ade20k --data {q(str(scenes))} --classes {q(str(scenes / CLASSES_FILE))}"
        f" --store {q(str(store))} --no-opencut --out {q(str(out / 'eval' / 'again'))}"
    )
    return "\n".join(lines)


def scene_concepts(scenes: Path, name: str) -> list[str]:
    """The materials a held-out scene's ground truth holds (labels are class index + 1), by
    the names the captions use ("grass"; the scenes' class names are held-out synonyms such
    as "lawn", which retrieve the same references but which the coverage rule, built on
    nouns and measured similarities, may call uncovered)."""
    import numpy as np
    from PIL import Image

    from fossil.demo.scenes import CLASSES_FILE, LABEL_DIR

    materials = json.loads((scenes / CLASSES_FILE).read_text("utf-8"))["materials"]
    with Image.open(scenes / LABEL_DIR / f"{name}.png") as label:
        present = np.unique(np.asarray(label))
    return [materials[int(v) - 1] for v in present if 1 <= v <= len(materials)]
