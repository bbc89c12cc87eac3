"""OpenCut speed per 480² crop from given 60×60×768 keys (synthetic planted keys, no backbone).

Prints one JSON object: per-crop time without and with the per-mask CRF, the multi-label
single-CRF alternative (time and agreement with the per-mask CRF), the number of eigensolves,
and the fast solver (eigsh) against the dense ``scipy.linalg.eigh`` reference, run side by side
on the same crops (end to end, masks compared) and on the same graphs (solver only).

The planted keys model DINO ViT-B/8 keys (background parts share a direction, objects are
orthogonal), so the paper's absolute tau schedule is used (``OpenCutConfig.paper_absolute()``);
``--variant`` picks the OpenCut variant (real-photo quality: ``benchmarks/real_photos.py``).

    python benchmarks/opencut_bench.py [--crops 3] [--dim 768] [--graphs 2] [--variant paper]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.segment.planted

from fossil.config import OPENCUT_VARIANTS, CRFConfig, OpenCutConfig  # noqa: E402
from fossil.segment.ncut import affinity, graph_state, normalise, second_eigenvector  # noqa: E402
from fossil.segment.opencut import run_opencut  # noqa: E402
from tests.segment.planted import planted_scene  # noqa: E402


def _timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def _solver_ratio(keys: np.ndarray, taus: tuple[float, ...], graphs: int) -> dict[str, object]:
    """Solver-only times on the full-grid graphs of the first ``graphs`` taus with structure."""
    F = normalise(keys).reshape(-1, keys.shape[-1])
    fast_s = dense_s = 0.0
    same, solved = True, 0
    for tau in taus:
        if solved == graphs:
            break
        W_bar = affinity(F, tau)
        if graph_state(W_bar) != "mixed":
            continue
        solved += 1
        x_fast, t_fast = _timed(second_eigenvector, W_bar, "eigsh")
        x_dense, t_dense = _timed(second_eigenvector, W_bar, "dense")
        fast_s, dense_s = fast_s + t_fast, dense_s + t_dense
        p_fast, p_dense = x_fast > x_fast.mean(), x_dense > x_dense.mean()
        same &= bool((p_fast == p_dense).all() or (p_fast == ~p_dense).all())
    return {"graphs": solved, "fast_s": fast_s, "dense_s": dense_s, "same_partitions": same}


def _iou_table(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over masks of ``a`` of the best IoU with a mask of ``b``."""
    if len(a) == 0 or len(b) == 0:
        return float(len(a) == len(b))
    inter = (a[:, None] & b[None]).sum(axis=(2, 3))
    union = (a[:, None] | b[None]).sum(axis=(2, 3))
    return float((inter / np.maximum(union, 1)).max(1).mean())


def _same_set(a: np.ndarray, b: np.ndarray) -> bool:
    """The same masks, in any order."""
    key = lambda masks: sorted(m.tobytes() for m in masks)  # noqa: E731
    return a.shape == b.shape and key(a) == key(b)


def bench_crop(seed: int, dim: int, objects: int, graphs: int, variant: str) -> dict[str, object]:
    scene = planted_scene(
        np.random.default_rng(seed), dim=dim, objects=objects, noise=0.3, background_cos=0.45
    )
    base = OpenCutConfig.paper_absolute(solver="eigsh", variant=variant)
    no_crf = replace(base, crf=CRFConfig(enabled=False))
    fast, t_fast = _timed(run_opencut, scene.keys, scene.image, no_crf)
    dense, t_dense = _timed(run_opencut, scene.keys, scene.image, replace(no_crf, solver="dense"))
    with_crf, t_crf = _timed(run_opencut, scene.keys, scene.image, base)
    multi_label = replace(base, crf=CRFConfig(multi_label=True))
    multi, t_multi = _timed(run_opencut, scene.keys, scene.image, multi_label)
    labels = np.repeat(np.repeat(scene.labels, 8, axis=0), 8, axis=1)
    truth = np.stack([labels == k for k in np.unique(labels)])
    return {
        "regions_planted": len(truth),
        "masks": len(fast.masks),
        "eigensolves": fast.eigensolves,
        "no_crf_s": t_fast,
        "per_mask_crf_s": t_crf,
        "per_mask_crf_calls": with_crf.raw_masks,
        "multi_label_crf_s": t_multi,
        "dense_no_crf_s": t_dense,
        "identical_masks_fast_vs_dense": _same_set(fast.masks, dense.masks),
        "identical_mask_order_fast_vs_dense": bool(
            fast.masks.shape == dense.masks.shape and (fast.masks == dense.masks).all()
        ),
        "iou_vs_planted_no_crf": _iou_table(truth, fast.masks),
        "iou_vs_planted_per_mask_crf": _iou_table(truth, with_crf.masks),
        "iou_vs_planted_multi_label_crf": _iou_table(truth, multi.masks),
        "iou_multi_label_vs_per_mask_crf": _iou_table(with_crf.masks, multi.masks),
        "identical_masks_multi_label_vs_per_mask_crf": _same_set(with_crf.masks, multi.masks),
        "solver_only": _solver_ratio(scene.keys, base.taus, graphs),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crops", type=int, default=3, help="planted crops (1/2/0 objects)")
    parser.add_argument("--dim", type=int, default=768, help="key dimension")
    parser.add_argument("--graphs", type=int, default=2, help="solver-only graphs per crop")
    parser.add_argument("--variant", choices=OPENCUT_VARIANTS, default=OpenCutConfig().variant)
    args = parser.parse_args(argv)
    warm_keys = np.random.default_rng(0).normal(size=(8, 8, 16)).astype(np.float32)
    run_opencut(warm_keys, np.zeros((64, 64, 3), np.uint8))  # warm-up: imports torch, pydensecrf
    crops = [
        bench_crop(seed, args.dim, (2, 1, 0)[seed % 3], args.graphs, args.variant)
        for seed in range(args.crops)
    ]

    def mean(key: str) -> float:
        return statistics.fmean(float(c[key]) for c in crops)

    solver_fast = sum(c["solver_only"]["fast_s"] for c in crops)
    solver_dense = sum(c["solver_only"]["dense_s"] for c in crops)
    summary = {
        "crop": f"480x480 image, keys 60x60x{args.dim}, the paper's absolute tau schedule",
        "variant": args.variant,
        "crops": len(crops),
        "mean_no_crf_s": mean("no_crf_s"),
        "mean_per_mask_crf_s": mean("per_mask_crf_s"),
        "mean_multi_label_crf_s": mean("multi_label_crf_s"),
        "mean_eigensolves": mean("eigensolves"),
        "end_to_end_speedup_fast_vs_dense": mean("dense_no_crf_s") / mean("no_crf_s"),
        "solver_only_speedup_fast_vs_dense": solver_dense / max(solver_fast, 1e-9),
        "identical_masks_fast_vs_dense": all(c["identical_masks_fast_vs_dense"] for c in crops),
        "per_crop": crops,
    }
    json.dump(summary, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
