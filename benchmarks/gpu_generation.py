"""Generation throughput and NCut per crop on one device (issue 15, item 4): prints JSON.

- fossil's generator (heat-map recording on) at each --batches size: images/s, references/s
  (located nouns), peak CUDA memory; the batch size that fits the free CUDA memory, from the
  measured per-image memory;
- heat-map recording overhead: the same batch through the plain pipeline (no recording);
- batched generation over one caption per call (target ≥ 4× on a GPU);
- OpenCut per 480² crop (planted 60×60 keys, CRF off) with the NCut eigensolver on CUDA
  (``torch``, timed only when CUDA is present) and on the CPU (``eigsh``).

    python benchmarks/gpu_generation.py --generator DIR|tiny [--device cuda] [--steps 4]
        [--height 512] [--batches 1,4,8,16]

--generator is a Stable Diffusion folder (benchmarks/paper_shapes.py saves one with random
weights) or ``tiny``.  float16 on CUDA.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.segment.planted

from fossil.config import GenerationConfig, OpenCutConfig  # noqa: E402
from fossil.models.generator import StableDiffusionGenerator  # noqa: E402
from fossil.models.loading import load_generator, load_noun_parser  # noqa: E402
from fossil.segment.opencut import run_opencut  # noqa: E402
from tests.segment.planted import planted_scene  # noqa: E402

SUBJECTS = ("dog", "cat", "horse", "car", "bird", "cow", "bus", "boat")
PLACES = ("on the grass", "near a tree", "on a road", "by the river")
BATCHED_TARGET = 4.0  # issue 15: batched generation ≥ 4× one caption per call
MAX_BATCH = 16


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--generator", default="tiny")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--batches", default="1,4,8,16")
    parser.add_argument("--crops", type=int, default=2, help="OpenCut crops per solver")
    parser.add_argument("--grid", type=int, default=60, help="keys grid side (60: 480/8)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    config = GenerationConfig(height=args.height, width=args.height, steps=args.steps)
    generator = load_generator(args.generator, config, args.device)
    parser_ = load_noun_parser("en_core_web_sm")
    captions = [f"a {s} {p}" for p in PLACES for s in SUBJECTS][: max(batches)]
    nouns = parser_.parse(captions)
    report: dict[str, Any] = {
        "generator": args.generator,
        "device": args.device,
        "dtype": str(generator.pipeline.unet.dtype),  # type: ignore[attr-defined]
        "steps": args.steps,
        "side": args.height,
    }
    _timed_generate(generator, captions[:1], nouns[:1], 1)  # warm-up
    per_batch = [_batch(generator, captions, nouns, b, args.device) for b in batches]
    report["batches"] = per_batch
    report["suggested_cuda_batch_size"] = _suggest(per_batch, args.device)
    overhead_batch = min(4, max(batches))
    report["heatmap_overhead"] = _overhead(generator, captions[:overhead_batch], args.device)
    report["batched_vs_single"] = _batched_vs_single(generator, captions, nouns, max(batches))
    report["opencut_per_crop"] = _opencut(args.crops, args.grid)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _timed_generate(
    generator: Any, captions: list[str], nouns: list[Any], batch: int
) -> tuple[float, int]:
    """(seconds, references located) of one generate call at ``batch`` captions per call."""
    sized = StableDiffusionGenerator(
        generator.pipeline, replace(generator.config, batch_size=batch), generator.name
    )
    started = time.perf_counter()
    images = sized.generate(captions, nouns)
    seconds = time.perf_counter() - started
    return seconds, sum(len(i.masks) for i in images)


def _batch(generator: Any, captions: list[str], nouns: list[Any], batch: int, device: str) -> dict:
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.reset_peak_memory_stats()
        torch.cuda.synchronize()
    seconds, refs = _timed_generate(generator, captions[:batch], nouns[:batch], batch)
    entry: dict[str, Any] = {
        "batch": batch,
        "s": round(seconds, 3),
        "images_per_s": round(batch / seconds, 3),
        "refs_per_s": round(refs / seconds, 3),
    }
    if cuda:
        entry["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return entry


def _suggest(per_batch: list[dict], device: str) -> dict | None:
    """The largest batch (≤ 16) whose peak memory fits the free memory, from a line through
    the measured peaks (None off CUDA or with one batch size)."""
    points = [(b["batch"], b["peak_cuda_mb"]) for b in per_batch if "peak_cuda_mb" in b]
    if not device.startswith("cuda") or len(points) < 2:
        return None
    slope, base = np.polyfit([p[0] for p in points], [p[1] for p in points], 1)
    free_mb = torch.cuda.mem_get_info()[0] / 2**20
    fits = int((free_mb * 0.9 - base) // max(slope, 1e-6))
    return {"mb_per_image": round(float(slope), 1), "base_mb": round(float(base), 1),
            "free_mb": round(free_mb, 1), "batch_size": max(1, min(MAX_BATCH, fits))}  # fmt: skip


def _overhead(generator: Any, captions: list[str], device: str) -> dict:
    """Recording on (fossil's generate) vs the plain pipeline, same prompts and steps."""
    cfg, pipe = generator.config, generator.pipeline
    nouns = [[] for _ in captions]
    recorded, _ = _timed_generate(generator, captions, nouns, len(captions))
    _sync(device)
    started = time.perf_counter()
    pipe(prompt=captions, height=cfg.height, width=cfg.width, num_inference_steps=cfg.steps,
         guidance_scale=cfg.guidance_scale, output_type="np")  # fmt: skip
    _sync(device)
    plain = time.perf_counter() - started
    return {"batch": len(captions), "recording_s": round(recorded, 3),
            "plain_s": round(plain, 3), "overhead": round(recorded / plain - 1.0, 3)}  # fmt: skip


def _batched_vs_single(generator: Any, captions: list[str], nouns: list[Any], batch: int) -> dict:
    batched, _ = _timed_generate(generator, captions[:batch], nouns[:batch], batch)
    single = sum(_timed_generate(generator, [c], [n], 1)[0]
                 for c, n in zip(captions[:batch], nouns[:batch], strict=True))  # fmt: skip
    speedup = single / batched
    return {"captions": batch, "batched_s": round(batched, 3), "one_per_call_s": round(single, 3),
            "speedup": round(speedup, 2), "target": BATCHED_TARGET,
            "target_met": bool(speedup >= BATCHED_TARGET)}  # fmt: skip


def _opencut(crops: int, grid: int) -> dict:
    """OpenCut per crop, CRF off: NCut with ``torch`` (on CUDA when present) vs ``eigsh``."""
    config = OpenCutConfig()
    config = replace(config, crf=replace(config.crf, enabled=False))
    rng = np.random.default_rng
    scenes = [planted_scene(rng(i), h=grid, w=grid, dim=768) for i in range(crops)]
    where = "cuda" if torch.cuda.is_available() else "cpu"
    out: dict[str, Any] = {"crops": crops, "grid": grid, "torch_on": where}
    if not scenes:
        return out
    # torch's eigh is the CUDA solver; on a CPU it is only the slow dense reference
    for solver in ("torch", "eigsh") if where == "cuda" else ("eigsh",):
        run_opencut(scenes[0].keys, scenes[0].image, replace(config, solver=solver))  # warm-up
        started = time.perf_counter()
        for scene in scenes:
            run_opencut(scene.keys, scene.image, replace(config, solver=solver))
        out[f"{solver}_s_per_crop"] = round((time.perf_counter() - started) / crops, 3)
    return out


if __name__ == "__main__":
    main()
