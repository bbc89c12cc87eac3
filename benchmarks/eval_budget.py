"""Hours of ``fossil eval`` on each benchmark's validation set, on this CPU and on one GPU
(issue 26, item 4).

Measures ``fossil eval ade20k`` at the paper's shapes with random weights (DINOv2 ViT-L/14
dense features at 518², DINO ViT-B/8 keys at 480² → 60×60, the default OpenCut with its CRFs
in worker processes, 150 concepts, float32) through ``benchmarks/paper_shapes.py`` (its eval
command, in its own process): seconds per crop of the eval loop = (wall − model loading −
text encoding) / crops, and its stages.  The CRF stage's share gives the figure without CRF.

Projects images × crops per image × seconds per crop.  Crops per image follow design §9
(resize by min(2048/long, 448/short), 448 windows at stride 224) at each dataset's typical
image size.  One GPU: the H200 figures measured on real photos
(``benchmarks/results/real_photos_cuda_h200*.json``: keys + dense features, the default
OpenCut with its CRFs in one process per core (16), and without CRF), as a range: those GPU
stages alone, and with the scoring and per-crop remainder (slide accumulation, upsampling,
confusion matrix: numpy/torch on the host) as measured here on the CPU (an upper bound: the
H200 host's cores are quiet and 16).

    python benchmarks/eval_budget.py [--images 1] [--cache /tmp/fossil_paper_shapes]
        [--report PAPER_SHAPES.json] [--out eval_budget.json] [--markdown]

Without ``--report`` it runs the eval (building the models and, if ``--cache`` holds no
store yet, a 2-caption store first: ~10 minutes more); ``--report`` reads a
``paper_shapes.py`` report instead (e.g. ``benchmarks/results/paper_shapes_cpu.json``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))

from fossil.segment.window import resized_size, sliding_windows  # noqa: E402

# name → (validation images, typical (width, height)): VOC 2010 photos for Context, COCO
# val2017's most common size, ADE20K's common landscape size (benchmarks/paper_shapes.py),
# Cityscapes' one size.  Portrait images of the same sides give the same crop count.
DATASETS: dict[str, tuple[str, int, tuple[int, int]]] = {
    "context": ("Pascal Context 59", 5104, (500, 375)),
    "coco_stuff": ("COCO-Stuff 171", 5000, (640, 480)),
    "ade20k": ("ADE20K 150", 2000, (683, 512)),
    "cityscapes": ("Cityscapes 19", 500, (2048, 1024)),
}
GPU_REPORTS = ROOT / "benchmarks" / "results"
DEFAULT_SETTING = "paper|crf=1|quantile"
NO_CRF_SETTING = "paper|crf=0|quantile"


def crops_per_image(width: int, height: int) -> int:
    """448 windows at stride 224 over the image resized by design §9's rule."""
    w, h = resized_size(width, height)
    return len(sliding_windows(h, w))


def cpu_per_crop(eval_report: dict[str, Any]) -> dict[str, float]:
    """Seconds per crop of a ``paper_shapes.py`` eval report: the whole loop, its stages, the
    loop without CRF, and what the GPU would not speed up (scoring and the remainder)."""
    crops = int(eval_report["crops"])
    if crops < 1:
        raise SystemExit("the eval report has no crops: was it run with --quick?")
    stages = eval_report["stages"]
    once = eval_report["load_total_s"] + stages.get("text_encode", {}).get("total_s", 0.0)
    loop = (eval_report["wall_s"] - once) / crops
    per = eval_report["s_per_crop"]
    modelled = per["dense_features"] + per["keys"] + per["opencut_total"] + per["scoring"]
    return {
        "crops_measured": crops,
        "loop": round(loop, 2),
        "loop_without_crf": round(loop - per["crf"], 2),
        "dense_features": per["dense_features"],
        "keys": per["keys"],
        "opencut_without_crf": per["opencut_without_crf"],
        "crf": per["crf"],
        "scoring": per["scoring"],
        "remainder": round(max(loop - modelled, 0.0), 2),
        "once_s": round(once, 1),
    }


def gpu_per_crop(
    crf_workers: dict[str, Any], no_crf: dict[str, Any], host_s: float
) -> dict[str, Any]:
    """One GPU's seconds per crop from the H200 real-photo reports.  The photos' last one is
    taken for keys + dense features and OpenCut with CRF (the first pays CUDA's warm-up and
    the start of the CRF workers); without CRF, the slowest photo.  ``host_s``: scoring and
    the remainder, as measured on this CPU."""
    photos = [k for k, v in crf_workers.items() if isinstance(v, dict) and "settings" in v]
    last = crf_workers[photos[-1]]
    features = last["keys_s"] + last["dense_s"]
    with_crf = last["settings"][DEFAULT_SETTING]["opencut_s"]
    without = max(no_crf[p]["settings"][NO_CRF_SETTING]["opencut_s"] for p in photos)
    return {
        "device": "one NVIDIA H200 (16 CPU cores)",
        "grid": f"{crf_workers['keys_input_size']}² keys of {crf_workers['backbone']}",
        "features": round(features, 3),
        "opencut_with_crf_workers": with_crf,
        "opencut_without_crf": without,
        "host_scoring_and_remainder": round(host_s, 2),
        "loop": round(features + with_crf + host_s, 2),
        "loop_without_crf": round(features + without + host_s, 2),
        "loop_gpu_stages_only": round(features + with_crf, 2),
        "loop_without_crf_gpu_stages_only": round(features + without, 2),
    }


def project(cpu: dict[str, float], gpu: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for key, (name, images, (width, height)) in DATASETS.items():
        per_image = crops_per_image(width, height)
        crops = images * per_image
        rows.append(
            {
                "dataset": key,
                "name": name,
                "images": images,
                "typical_size": [width, height],
                "resized": list(resized_size(width, height)),
                "crops_per_image": per_image,
                "crops": crops,
                "cpu_hours": round(crops * cpu["loop"] / 3600, 1),
                "cpu_hours_without_crf": round(crops * cpu["loop_without_crf"] / 3600, 1),
                "gpu_hours": round(crops * gpu["loop"] / 3600, 2),
                "gpu_hours_without_crf": round(crops * gpu["loop_without_crf"] / 3600, 2),
                "gpu_hours_lower": round(crops * gpu["loop_gpu_stages_only"] / 3600, 2),
                "gpu_hours_without_crf_lower": round(
                    crops * gpu["loop_without_crf_gpu_stages_only"] / 3600, 2
                ),
            }
        )
    return rows


def markdown(rows: list[dict[str, Any]], cpu: dict[str, float], gpu: dict[str, Any]) -> str:
    gpu_crf = f"{gpu['loop_gpu_stages_only']}–{gpu['loop']}"
    gpu_no_crf = f"{gpu['loop_without_crf_gpu_stages_only']}–{gpu['loop_without_crf']}"
    lines = [
        "| validation set | images | typical size → resized | crops / image | crops "
        f"| CPU h, CRF ({cpu['loop']} s/crop) | CPU h, no CRF ({cpu['loop_without_crf']} s) "
        f"| GPU h, CRF ({gpu_crf} s/crop) | GPU h, no CRF ({gpu_no_crf} s) |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        (w, h), (rw, rh) = r["typical_size"], r["resized"]
        lines.append(
            f"| {r['name']} | {r['images']:,} | {w}×{h} → {rw}×{rh} | {r['crops_per_image']} "
            f"| {r['crops']:,} | {r['cpu_hours']:,} | {r['cpu_hours_without_crf']:,} "
            f"| {r['gpu_hours_lower']}–{r['gpu_hours']} "
            f"| {r['gpu_hours_without_crf_lower']}–{r['gpu_hours_without_crf']} |"
        )
    return "\n".join(lines)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Run paper_shapes.py's eval (and first a 2-caption ingest if no store exists)."""
    store = args.cache / "paper" / "run" / "store"
    commands = "eval" if store.exists() else "ingest,eval"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "paper_shapes.json"
        cmd = [sys.executable, str(ROOT / "benchmarks" / "paper_shapes.py"),
               "--cache", str(args.cache), "--commands", commands, "--steps", "1",
               "--height", "256", "--eval-images", str(args.images), "--out", str(out)]  # fmt: skip
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=Path("/tmp/fossil_paper_shapes"))
    parser.add_argument("--images", type=int, default=1, help="images evaluated (2 crops each)")
    parser.add_argument("--report", type=Path, default=None, help="a paper_shapes.py report")
    parser.add_argument(
        "--gpu-reports",
        type=Path,
        default=GPU_REPORTS,
        help="folder of real_photos_cuda_h200{,_crf_workers}.json (benchmarks/results)",
    )
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    parser.add_argument("--markdown", action="store_true", help="print the table, not JSON")
    args = parser.parse_args()
    if args.images < 1:
        parser.error(f"--images ({args.images}) must be >= 1")
    shapes = json.loads(args.report.read_text()) if args.report else measure(args)
    if "paper_shapes_eval" in shapes:  # an earlier eval_budget.py report
        shapes = {
            "threads": shapes["cpu"]["device"].split()[2],
            "commands": {"eval": shapes["paper_shapes_eval"]},
        }
    if "eval" not in shapes.get("commands", {}):
        raise SystemExit(f"{args.report}: no eval command in this paper_shapes.py report")
    cpu = cpu_per_crop(shapes["commands"]["eval"])
    crf_workers = json.loads(
        (args.gpu_reports / "real_photos_cuda_h200_crf_workers.json").read_text()
    )
    no_crf = json.loads((args.gpu_reports / "real_photos_cuda_h200.json").read_text())
    gpu = gpu_per_crop(crf_workers, no_crf, cpu["scoring"] + cpu["remainder"])
    rows = project(cpu, gpu)
    report = {
        "cpu": {"device": f"this CPU, {shapes['threads']} threads", **cpu},
        "gpu": gpu,
        "source": str(args.report) if args.report else "measured now",
        "paper_shapes_eval": shapes["commands"]["eval"],
        "datasets": rows,
    }
    text = json.dumps(report, indent=2)
    if args.out is not None:
        args.out.write_text(text + "\n")
    print(markdown(rows, cpu, gpu) if args.markdown else text)


if __name__ == "__main__":
    main()
