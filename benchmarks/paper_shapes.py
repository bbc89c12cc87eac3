"""fossil's real command path on models of the paper's shapes, with random weights (issue 15).

Builds every paper model from its real architecture with random weights — no download — and
saves each as a local folder under --cache: SD 2.1 base (UNet, VAE, the 1024-wide 23-layer
text encoder, PNDM), DINOv2 ViT-L/14, DINO ViT-B/8 and the CLIP ViT-L/14 text tower.  A
models TOML points at them, so the loading code is the production code.  Then it runs, each
command in its own process (peak RSS per command):

- ``fossil ingest`` of 2 captions at --steps denoising steps (extrapolated to --target-steps);
- ``fossil query`` of the 171 COCO-Stuff concepts;
- ``fossil segment`` of one 512×683 image (sliding 448 windows), CRF on;
- ``fossil eval ade20k`` on --eval-images images (2) of a fake ADE20K layout (150 concepts).

Prints one JSON object (and writes it to --out): per command the wall time, the load time of
each model role, peak RSS, and per stage: s/UNet call, s/caption at --target-steps; s/crop
for dense features, keys, OpenCut (CRF excluded), CRF and scoring.

    python benchmarks/paper_shapes.py [--cache /tmp/fossil_paper_shapes] [--steps 2]
        [--device cpu] [--shapes paper|small] [--out paper_shapes.json]

``--shapes small`` builds the same architectures scaled down (seconds, for CI: see
benchmarks/gpu_check.sh); its figures mean nothing.  Needs ~6 GB of disk under --cache and
~9 GB of RAM at paper shapes in float32.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parents[1]))  # benchmarks.paper_models when run as a script

from benchmarks.paper_models import SHAPES, build_models  # noqa: E402

CAPTIONS = ["A dog running on the grass near a red car", "Two cats sleeping on a wooden bench"]
SEGMENT_CONCEPTS = "dog, car, grass, cat, bench, sky"
IMAGE_SIZE = (512, 683)  # (H, W): ADE20K's common landscape size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=Path("/tmp/fossil_paper_shapes"))
    parser.add_argument("--shapes", choices=sorted(SHAPES), default="paper")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=2, help="denoising steps run (default 2)")
    parser.add_argument("--target-steps", type=int, default=50, help="extrapolated to (50)")
    parser.add_argument("--batch-size", type=int, default=1, help="captions per generator call")
    parser.add_argument("--height", type=int, default=512, help="generated image side (512)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="segment and eval with --no-opencut (CI's CPU mode: no OpenCut/CRF figures)",
    )
    parser.add_argument("--commands", default="ingest,query,segment,eval")
    parser.add_argument(
        "--eval-images", type=int, default=2, help="images of the fake ADE20K eval (default 2)"
    )
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    parser.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args()
    if args.child is not None:
        from benchmarks.paper_child import run_child

        sys.exit(run_child(args.child, rest[1:] if rest[:1] == ["--"] else rest))
    report = run(args)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")


def run(args: argparse.Namespace) -> dict[str, Any]:
    cache = args.cache / args.shapes
    cache.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    built = build_models(cache, args.shapes)
    gc.collect()
    profile = write_profile(cache, args.steps, args.batch_size, args.height)
    work = cache / "run"
    commands = [c.strip() for c in args.commands.split(",") if c.strip()]
    if "ingest" in commands:  # a new store; without ingest, the last run's store is read
        shutil.rmtree(work, ignore_errors=True)
    work.mkdir(exist_ok=True)
    report: dict[str, Any] = {
        "shapes": args.shapes,
        "device": args.device,
        "threads": _threads(),
        "steps_run": args.steps,
        "generated_side": args.height,
        "quick": args.quick,
        "target_steps": args.target_steps,
        "models": built,
        "build_s": round(time.perf_counter() - started, 1),
        "profile": str(profile),
        "commands": {},
    }
    store = work / "store"
    for command in commands:
        argv = _argv(command, work, store, profile, args)
        result = _child(command, argv, work)
        report["commands"][command] = result
        if result["exit"] != 0:
            raise SystemExit(f"{command} failed (exit {result['exit']}): {result['stderr_tail']}")
    if "ingest" in report["commands"]:
        report["commands"]["ingest"]["per_caption"] = _extrapolate(
            report["commands"]["ingest"], len(CAPTIONS), args
        )
    return report


def write_profile(cache: Path, steps: int, batch_size: int, side: int) -> Path:
    profile = cache / "models.toml"
    profile.write_text(
        "# random-weight models of the paper's architectures (benchmarks/paper_shapes.py)\n"
        "[models]\n"
        f'generator = "{cache / "generator"}"\n'
        f'dense = "{cache / "dense"}"\n'
        f'keys = "{cache / "keys"}"\n'
        f'text = "{cache / "text"}"\n'
        "[generation]\n"
        f"steps = {steps}\n"
        f"batch_size = {batch_size}\n"
        f"height = {side}\n"
        f"width = {side}\n"
    )
    return profile


def _argv(
    command: str, work: Path, store: Path, profile: Path, args: argparse.Namespace
) -> list[str]:
    common = ["--store", str(store), "--models", str(profile), "--device", args.device]
    quick = ["--no-opencut"] if args.quick else []
    if command == "ingest":
        captions = work / "captions.txt"
        captions.write_text("\n".join(CAPTIONS) + "\n")
        return ["ingest", str(captions), *common, "--no-progress", "--json"]
    if command == "query":
        return ["query", *_classes("coco_stuff171"), *common, "--json", "--no-cache"]
    if command == "segment":
        image = work / "image.png"
        _write_image(image, IMAGE_SIZE, seed=0)
        out = work / "segment"
        return ["segment", str(image), "--concepts", SEGMENT_CONCEPTS, *common, *quick,
                "--out", str(out)]  # fmt: skip
    if command == "eval":
        data = work / "ADEChallengeData2016"
        shutil.rmtree(data, ignore_errors=True)
        for i in range(args.eval_images):
            name = f"ADE_val_{i + 1:08d}"
            _write_image(data / "images" / "validation" / f"{name}.jpg", IMAGE_SIZE, seed=i + 1)
            label = np.random.default_rng(i).integers(0, 151, IMAGE_SIZE, dtype=np.uint8)
            _save(data / "annotations" / "validation" / f"{name}.png", label)
        out = work / "eval"
        shutil.rmtree(out, ignore_errors=True)  # else eval resumes: the images done are skipped
        return ["eval", "ade20k", "--data", str(data), *common, *quick, "--out", str(out),
                "--no-cache", "--no-progress", "--limit", str(args.eval_images)]  # fmt: skip
    raise SystemExit(f"unknown command {command!r}")


def _child(command: str, argv: list[str], work: Path) -> dict[str, Any]:
    """Run ``fossil ARGV`` in a fresh process under the stage timers; its report."""
    report = work / f"{command}.child.json"
    cmd = [sys.executable, str(HERE), "--child", str(report), "--", *argv]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - started
    result: dict[str, Any] = json.loads(report.read_text()) if report.is_file() else {}
    result.update(exit=done.returncode, process_wall_s=round(wall, 2))
    result["stderr_tail"] = done.stderr[-2000:] if done.returncode else ""
    return result


def _extrapolate(ingest: dict[str, Any], captions: int, args: argparse.Namespace) -> dict:
    """s/caption at ``--target-steps``: the caption's fixed cost (text encoders, VAE, heat
    maps, dense features, writes) plus its UNet calls at the target.  A generator call makes
    ``steps + extra`` UNet calls (PNDM: one extra), each one denoising step of the whole batch
    with classifier-free guidance."""
    stages = ingest["stages"]
    unet = stages.get("unet_call", {"calls": 0, "total_s": 0.0})
    processing = stages.get("process_batch", {"total_s": 0.0})["total_s"]
    if not unet["calls"]:
        return {}
    per_call = unet["total_s"] / unet["calls"]
    generator_calls = -(-captions // args.batch_size)
    extra = unet["calls"] / generator_calls - args.steps
    fixed = (processing - unet["total_s"]) / captions
    per_caption_call = per_call / args.batch_size
    return {
        "s_per_unet_call": round(per_call, 3),
        "captions_per_call": args.batch_size,
        "unet_calls_per_generate": round(unet["calls"] / generator_calls, 2),
        "s_per_unet_step_per_caption": round(per_caption_call, 3),
        "fixed_s_per_caption": round(fixed, 3),
        "s_per_caption_measured": round(processing / captions, 3),
        f"s_per_caption_at_{args.target_steps}_steps": round(
            fixed + (args.target_steps + extra) * per_caption_call, 1
        ),
    }


def _classes(key: str) -> list[str]:
    from importlib import resources

    text = resources.files("fossil").joinpath("data/benchmark_classes.json").read_text("utf-8")
    return [c.strip() for c in json.loads(text)[key]["classes"]]


def _write_image(path: Path, size: tuple[int, int], seed: int) -> None:
    """A smooth random scene (blurred colour blobs), so OpenCut has regions to find."""
    import torch
    import torch.nn.functional as F

    rng = np.random.default_rng(seed)
    coarse = torch.from_numpy(rng.uniform(0, 255, (1, 3, 6, 8)).astype(np.float32))
    smooth = F.interpolate(coarse, size=size, mode="bicubic", align_corners=False)[0]
    pixels = smooth.permute(1, 2, 0).numpy() + rng.normal(0, 6, (*size, 3))
    _save(path, np.clip(pixels, 0, 255).astype(np.uint8))


def _save(path: Path, array: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def _threads() -> int:
    import torch

    return int(torch.get_num_threads())


if __name__ == "__main__":
    main()
