"""Evaluate a :class:`~fossil.segment.window.CropPredictor` on a benchmark (design §9), resumably.

Files under ``out_dir``:

- ``run.json``: what the per-image results belong to (dataset, classes, fingerprint of the
  config).  Resuming with another config is refused rather than mixing numbers.
- ``per_image.jsonl``: one line per finished image, its per-class intersection / predicted
  area / labelled area (classes with nothing are left out).  An interrupted run continues
  from it; a half-written last line is dropped and that image recomputed.
- ``predictions/<image name>.png`` (``save_predictions``): the predicted label map at the
  original size, 8-bit, the dataset's label ids after ``reduce_zero_label`` (``0..C−1``,
  the class order of ``benchmark_classes.json``).  Every pixel holds a prediction: pixels
  the ground truth ignores (255) are not masked, so 255 never appears.
- ``results.json``, ``report.md``, ``iou.png``: see :mod:`fossil.eval.report`.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from fossil.config import EvalConfig
from fossil.errors import naming
from fossil.eval.datasets import Sample, SegmentationDataset
from fossil.eval.metrics import EvalResult, ImageCounts, IoUAccumulator, intersect_and_union
from fossil.eval.report import write_reports
from fossil.pipeline.crop_cache import config_fingerprint
from fossil.segment.window import CropPredictor, predict_label_map

logger = logging.getLogger(__name__)

RUN_FILE = "run.json"
RESULTS_FILE = "per_image.jsonl"
UNFINGERPRINTED = ("packages", "limit", "data", "device")  # may change between resumed runs


def evaluate(
    dataset: SegmentationDataset,
    predictor: CropPredictor,
    *,
    out_dir: Path | str,
    config_info: Mapping[str, Any],
    limit: int | None = None,
    save_predictions: bool = False,
    resume: bool = True,
    progress: bool = True,
    eval_config: EvalConfig | None = None,
) -> EvalResult:
    """Run the protocol on the first ``limit`` samples of ``dataset`` and write reports."""
    if predictor.num_classes != dataset.num_classes:
        raise ValueError(
            f"predictor scores {predictor.num_classes} classes but {dataset.name} has "
            f"{dataset.num_classes}"
        )
    if limit is not None and limit < 1:
        raise ValueError(f"limit ({limit}) must be >= 1 or None")
    if save_predictions and dataset.num_classes > 255:
        raise ValueError(f"cannot save {dataset.num_classes} classes as 8-bit PNGs")
    eval_config = eval_config or EvalConfig()
    out_dir = Path(out_dir)
    samples = dataset.samples[:limit]
    done = _open_run(out_dir, dataset, config_info, eval_config, resume)
    accumulator = IoUAccumulator(dataset.num_classes)
    pending: list[Sample] = []
    for sample in samples:
        ready = sample.name in done and (
            not save_predictions or _prediction_path(out_dir, sample).is_file()
        )
        if ready:
            accumulator.add(done[sample.name])
        else:
            pending.append(sample)
    resumed = accumulator.images
    if resumed:
        logger.info("resuming: %d of %d images already done", resumed, len(samples))
    bar = tqdm(
        pending, total=len(samples), initial=resumed, disable=not progress, desc=dataset.name
    )
    with bar, open(out_dir / RESULTS_FILE, "a", encoding="utf-8") as log:
        for sample in bar:
            counts = _evaluate_one(
                dataset, sample, predictor, eval_config, out_dir, save_predictions
            )
            accumulator.add(counts)
            _append(log, sample.name, counts)
            bar.set_postfix(mIoU=f"{100 * accumulator.miou():.2f}")
    result = EvalResult(
        dataset=dataset.name,
        class_names=dataset.class_names,
        iou=accumulator.iou(),
        miou=accumulator.miou(),
        aacc=accumulator.aacc(),
        num_images=accumulator.images,
        skipped=dataset.skipped,
        counts=accumulator.total,
        resumed=resumed,
    )
    for name, reason in dataset.skipped:
        logger.warning("skipped %s: %s", name, reason)
    return replace(result, reports=write_reports(result, out_dir, config_info))


def _evaluate_one(
    dataset: SegmentationDataset,
    sample: Sample,
    predictor: CropPredictor,
    eval_config: EvalConfig,
    out_dir: Path,
    save_predictions: bool,
) -> ImageCounts:
    label = dataset.load_label(sample)  # bad ground truth fails before the model runs
    image = dataset.load_image(sample)
    if image.shape[:2] != label.shape:
        raise ValueError(
            f"image {sample.image_path} is {image.shape[:2]} but its ground truth "
            f"{sample.label_path} is {label.shape}"
        )
    pred = predict_label_map(image, predictor, eval_config)
    if save_predictions:
        _save_prediction(_prediction_path(out_dir, sample), pred)
    return intersect_and_union(pred, label, dataset.num_classes)


def _run_header(
    dataset: SegmentationDataset, config_info: Mapping[str, Any], eval_config: EvalConfig
) -> dict[str, Any]:
    kept = {k: v for k, v in config_info.items() if k not in UNFINGERPRINTED}
    return {
        "dataset": dataset.name,
        "class_names": list(dataset.class_names),
        "fingerprint": config_fingerprint({"config": kept, "eval": asdict(eval_config)}),
        "config": json.loads(json.dumps(kept, default=str)),
    }


def _open_run(
    out_dir: Path,
    dataset: SegmentationDataset,
    config_info: Mapping[str, Any],
    eval_config: EvalConfig,
    resume: bool,
) -> dict[str, ImageCounts]:
    """Prepare ``out_dir``; return the per-image counts of an earlier run to resume."""
    out_dir.mkdir(parents=True, exist_ok=True)
    header = _run_header(dataset, config_info, eval_config)
    run_path, results_path = out_dir / RUN_FILE, out_dir / RESULTS_FILE
    if resume and run_path.is_file() and results_path.is_file():
        previous = json.loads(run_path.read_text("utf-8"))
        if previous.get("fingerprint") != header["fingerprint"]:
            changed = sorted(
                key
                for key in set(previous.get("config", {})) | set(header["config"])
                if previous.get("config", {}).get(key) != header["config"].get(key)
            )
            message = (
                f"{out_dir} holds results of another run ({previous.get('dataset')}, config "
                f"differs in: {', '.join(changed) or 'eval protocol'}); use another output "
                "folder, or start over without resuming"
            )
            raise naming(ValueError(message), "out")
        return _read_results(results_path, len(dataset.class_names))
    results_path.unlink(missing_ok=True)
    run_path.write_text(json.dumps(header, indent=2) + "\n", "utf-8")
    results_path.touch()
    return {}


def _read_results(path: Path, num_classes: int) -> dict[str, ImageCounts]:
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):  # killed mid-line: drop the partial record
        data = data[: data.rfind(b"\n") + 1]
        with open(path, "r+b") as file:
            file.truncate(len(data))
    done: dict[str, ImageCounts] = {}
    for number, line in enumerate(data.decode("utf-8").splitlines(), start=1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            raise ValueError(
                f"{path} line {number} is corrupt; delete the file to start over"
            ) from None
        arrays = []
        for key in ("intersection", "pred_area", "label_area"):
            dense = np.zeros(num_classes, np.int64)
            dense[record["classes"]] = record[key]
            arrays.append(dense)
        done[record["name"]] = ImageCounts(*arrays)
    return done


def _append(log: Any, name: str, counts: ImageCounts) -> None:
    classes = np.flatnonzero(counts.pred_area + counts.label_area)
    record = {
        "name": name,
        "classes": classes.tolist(),
        "intersection": counts.intersection[classes].tolist(),
        "pred_area": counts.pred_area[classes].tolist(),
        "label_area": counts.label_area[classes].tolist(),
    }
    log.write(json.dumps(record) + "\n")
    log.flush()
    os.fsync(log.fileno())


def _prediction_path(out_dir: Path, sample: Sample) -> Path:
    return out_dir / "predictions" / f"{sample.name}.png"


def _save_prediction(path: Path, pred: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    Image.fromarray(pred.astype(np.uint8)).save(tmp)
    os.replace(tmp, path)
