"""benchmarks/compare_real_photos.py: two real_photos reports side by side."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _module():
    spec = importlib.util.spec_from_file_location(
        "compare_real_photos", ROOT / "benchmarks" / "compare_real_photos.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _report(device: str, oracle: float, person: float, regions: int) -> dict:
    instances = [
        {"class": "person", "pixels": 500, "best_iou": person},  # 5% of the photo: a main object
        {"class": "bottle", "pixels": 100, "best_iou": 0.9},  # 1%: not a main object
    ]
    row = {"oracle_miou": oracle, "regions": regions, "instance_iou": instances, "opencut_s": 1.0}
    return {
        "device": device,
        "solver": "auto",
        "voc": {"size": [100, 100], "settings": {"default": row, "only-here": row}},
    }


def test_compare_reports_the_largest_difference_of_main_objects_and_oracle() -> None:
    compare = _module().compare
    a = _report("cpu", 0.50, 0.55, 27)
    b = _report("cuda", 0.49, 0.40, 28)
    del b["voc"]["settings"]["only-here"]
    out = compare(a, b)
    assert out["a"]["device"] == "cpu" and out["b"]["device"] == "cuda"
    assert set(out["voc"]) == {"default"}  # settings only one report ran are left out
    row = out["voc"]["default"]
    assert row["main_object_iou"] == [[0.55], [0.40]]  # the 1% bottle is not a main object
    assert row["regions"] == [27, 28]
    assert abs(row["max_abs_diff"] - 0.15) < 1e-9
    assert abs(out["max_abs_diff"] - 0.15) < 1e-9


def test_identical_reports_differ_by_zero() -> None:
    a = _report("cpu", 0.5, 0.55, 27)
    assert _module().compare(a, a)["max_abs_diff"] == 0.0
