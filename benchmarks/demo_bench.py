"""`fossil demo` as a benchmark: builds the SYNTHETIC world in a temporary folder and prints
one JSON object with mIoU with and without OpenCut and per-stage timings (ingest refs/s,
query seconds, segmentation seconds per image).

    python benchmarks/demo_bench.py [--captions 500] [--scenes 30] [--seed 0] [--keep DIR]
        [--variant paper|shrinking-graph] [--paper-absolute-taus] [--world DIR]
        [--regions NAME]

``--world DIR`` evaluates a world already built (``fossil demo --out DIR`` or ``--keep DIR``)
with OpenCut under the given variant and taus only: no ingest, so settings compare on one store.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
from dataclasses import asdict, replace
from pathlib import Path

from fossil.config import OPENCUT_VARIANTS, REGION_PROPOSERS, OpenCutConfig
from fossil.demo.world import DemoConfig, demo_models, evaluate_world, open_world, run_demo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = DemoConfig()
    parser.add_argument("--captions", type=int, default=defaults.captions)
    parser.add_argument("--scenes", type=int, default=defaults.scenes)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--keep", type=Path, default=None, help="write the world here instead")
    parser.add_argument("--variant", choices=OPENCUT_VARIANTS, default=OpenCutConfig().variant)
    parser.add_argument(
        "--paper-absolute-taus",
        action="store_true",
        help="the paper's absolute tau schedule instead of the default quantile one",
    )
    parser.add_argument(
        "--subdivide-depth",
        type=int,
        default=OpenCutConfig().subdivide_depth,
        help="split each OpenCut mask this many levels (fossil.segment.subdivide)",
    )
    parser.add_argument("--world", type=Path, default=None, help="evaluate this built world")
    parser.add_argument(
        "--regions",
        choices=REGION_PROPOSERS,
        default=defaults.fossil.regions,
        help="region proposer of the 'opencut' run (fossil.config.REGION_PROPOSERS)",
    )
    args = parser.parse_args()
    opencut = OpenCutConfig.paper_absolute() if args.paper_absolute_taus else OpenCutConfig()
    fossil = replace(
        defaults.fossil,
        opencut=replace(opencut, variant=args.variant, subdivide_depth=args.subdivide_depth),
        regions=args.regions,
    )
    config = DemoConfig(captions=args.captions, scenes=args.scenes, seed=args.seed, fossil=fossil)
    if args.world is not None:
        print(json.dumps(evaluate_built_world(args.world, config), indent=2))
        return
    with tempfile.TemporaryDirectory() as tmp:
        out = args.keep or Path(tmp) / "demo"
        result = run_demo(out, config, progress=False)
    report = {
        "benchmark": "demo_bench",
        "synthetic": True,
        "captions": config.captions,
        "scenes": config.scenes,
        "seed": config.seed,
        "N": config.fossil.retrieval.N,
        "K": config.fossil.retrieval.K,
        "gamma": config.fossil.scoring.gamma,
        "opencut": opencut_summary(config),
        "references": result.references,
        "miou": {k: round(100 * v, 2) for k, v in result.miou.items()},
        "timings": {k: round(v, 3) for k, v in result.timings.items()},
        "machine": {"cpus": __import__("os").cpu_count(), "python": platform.python_version()},
    }
    print(json.dumps(report, indent=2))


def opencut_summary(config: DemoConfig) -> dict[str, object]:
    """The OpenCut settings a run measured (the ones its flags change)."""
    opencut = asdict(config.fossil.opencut)
    keys = ("variant", "tau_space", "tau_foreground", "tau_background", "subdivide_depth")
    return {"regions": config.fossil.regions} | {k: opencut[k] for k in keys}


def evaluate_built_world(world: Path, config: DemoConfig) -> dict[str, object]:
    """OpenCut mIoU and seconds per image of ``config`` on the world built under ``world``."""
    models = demo_models()
    collection = open_world(world, models)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            evaluation = evaluate_world(
                Path(tmp),
                collection,
                models,
                config,
                world / "scenes",
                runs=("opencut",),
                progress=False,
            )
        finally:
            collection.close()
    return {
        "benchmark": "demo_bench",
        "synthetic": True,
        "world": str(world),
        "opencut": opencut_summary(config),
        "miou": {k: round(100 * v, 2) for k, v in evaluation.miou.items()},
        "timings": {k: round(v, 3) for k, v in evaluation.timings.items()},
    }


if __name__ == "__main__":
    main()
