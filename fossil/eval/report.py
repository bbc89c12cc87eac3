"""Evaluation reports: ``results.json``, ``report.md`` and ``iou.png`` (per-class IoU bars).

JSON values are fractions in [0, 1] (``miou``, ``aacc``, ``iou``; ``null`` for a class
with no union); the Markdown shows percentages, as the paper's tables do.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from typing import Any

from fossil.config import FossilConfig
from fossil.eval.metrics import EvalResult

PACKAGES = (
    "fossil-ovss", "numpy", "torch", "transformers", "diffusers", "qdrant-client",
    "qdrant-edge-py", "faiss-cpu", "faiss-gpu", "pydensecrf2", "pillow",
)  # fmt: skip


def config_record(config: FossilConfig) -> dict[str, Any]:
    """What every evaluation report records of the ``config`` it ran with (``fossil eval``
    and ``fossil demo`` add their own context around it): N, K, γ, then each section whole.
    It is part of the run's fingerprint (:mod:`fossil.eval.runner`): a resumed run must
    have the same."""
    return {
        "N": config.retrieval.N,
        "K": config.retrieval.K,
        "gamma": config.scoring.gamma,
        "retrieval": asdict(config.retrieval),
        "opencut": asdict(config.opencut),
        "scoring": asdict(config.scoring),
        "eval": asdict(config.eval),
    }


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """Installed versions of ``names`` (absent ones are left out)."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _fraction(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def results_json(result: EvalResult, config_info: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON report: ``miou``, ``aacc``, per-class ``iou`` and the run's config."""
    return {
        "dataset": result.dataset,
        "miou": _fraction(result.miou),
        "aacc": _fraction(result.aacc),
        "iou": {name: _fraction(v) for name, v in zip(result.class_names, result.iou, strict=True)},
        "num_images": result.num_images,
        "skipped": [{"image": name, "reason": reason} for name, reason in result.skipped],
        "config": dict(config_info),
    }


def _percent(value: float) -> str:
    return "—" if math.isnan(value) else f"{100 * value:.2f}"


def _flatten(info: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    rows = []
    for key, value in info.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            rows.extend(_flatten(value, f"{name}."))
        else:
            rows.append((name, json.dumps(value, default=str)))
    return rows


def markdown_report(result: EvalResult, config_info: Mapping[str, Any]) -> str:
    """Summary, exact config and per-class IoU as Markdown tables."""
    lines = [
        f"# fossil eval: {result.dataset}",
        "",
        "| metric | value |",
        "|---|---|",
        f"| mIoU (%) | {_percent(result.miou)} |",
        f"| aAcc (%) | {_percent(result.aacc)} |",
        f"| images | {result.num_images} |",
        f"| skipped | {len(result.skipped)} |",
        "",
        "## Config",
        "",
        "| key | value |",
        "|---|---|",
    ]
    lines += [f"| {key} | `{value}` |" for key, value in _flatten(config_info)]
    lines += ["", "## Per-class IoU (%)", "", "| class | IoU |", "|---|---|"]
    lines += [
        f"| {json.dumps(name)} | {_percent(v)} |"
        for name, v in zip(result.class_names, result.iou, strict=True)
    ]
    if result.skipped:
        lines += ["", "## Skipped images", ""]
        lines += [f"- `{name}`: {reason}" for name, reason in result.skipped]
    lines.append("")
    return "\n".join(lines)


def iou_bar_chart(result: EvalResult, path: Path) -> None:
    """Horizontal bars of per-class IoU (%) with the mIoU as a line, written as PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    count = len(result.class_names)
    figure = Figure(figsize=(7.0, max(2.5, 0.18 * count + 1.2)))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    values = [0.0 if math.isnan(v) else 100 * v for v in result.iou]
    positions = range(count)
    axes.barh(positions, values, color="tab:blue")
    axes.set_yticks(list(positions), [repr(n) if n != n.strip() else n for n in result.class_names])
    axes.tick_params(axis="y", labelsize=6 if count > 60 else 8)
    axes.set_ylim(count - 0.5, -0.5)  # first class on top, no empty margins
    axes.set_xlim(0, 100)
    axes.set_xlabel("IoU (%)")
    if not math.isnan(result.miou):
        axes.axvline(100 * result.miou, color="tab:red", linestyle="--", label="mIoU")
        axes.legend(loc="lower right")
    axes.set_title(f"{result.dataset}: mIoU {_percent(result.miou)}%")
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def write_reports(
    result: EvalResult, out_dir: Path, config_info: Mapping[str, Any]
) -> dict[str, Path]:
    """Write ``results.json``, ``report.md`` and ``iou.png`` under ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": out_dir / "results.json",
        "markdown": out_dir / "report.md",
        "chart": out_dir / "iou.png",
    }
    payload = json.dumps(results_json(result, config_info), indent=2, default=str)
    paths["json"].write_text(payload + "\n", "utf-8")
    paths["markdown"].write_text(markdown_report(result, config_info), "utf-8")
    iou_bar_chart(result, paths["chart"])
    return paths
