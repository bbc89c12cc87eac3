"""Two ``benchmarks/real_photos.py`` reports side by side (JSON): did a change of device,
dtype or eigensolver change OpenCut's regions on the real photos?

For each photo and each setting both reports ran: the oracle mIoU, the region count and each
main object's best IoU (instances over 3% of the photo) in each report, and the largest
absolute difference of any of them.

    python benchmarks/compare_real_photos.py benchmarks/results/real_photos_cpu.json OTHER.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

MAIN_OBJECT_FRACTION = 0.03  # a "main object" covers more than this fraction of the photo


def is_main_object(pixels: int, size: tuple[int, int]) -> bool:
    """An instance of ``pixels`` pixels is a main object of a photo of ``size`` (H, W); the
    one rule for both scripts (``benchmarks/real_photos.py``'s ceiling imports it)."""
    return pixels > MAIN_OBJECT_FRACTION * size[0] * size[1]


def _main_objects(entry: dict, row: dict) -> list[float]:
    size = tuple(entry["size"])
    return [i["best_iou"] for i in row["instance_iou"] if is_main_object(i["pixels"], size)]


def compare(a: dict, b: dict) -> dict:
    out: dict = {"a": {k: a.get(k) for k in ("device", "solver")}}
    out["b"] = {k: b.get(k) for k in ("device", "solver")}
    worst = 0.0
    for photo in [k for k in a if isinstance(a[k], dict) and "settings" in a[k] and k in b]:
        rows = {}
        for name, row_a in a[photo]["settings"].items():
            row_b = b[photo]["settings"].get(name)
            if row_b is None:
                continue
            objects_a = _main_objects(a[photo], row_a)
            objects_b = _main_objects(b[photo], row_b)
            diffs = [abs(row_a["oracle_miou"] - row_b["oracle_miou"])]
            diffs += [abs(x - y) for x, y in zip(objects_a, objects_b, strict=True)]
            rows[name] = {
                "oracle_miou": [row_a["oracle_miou"], row_b["oracle_miou"]],
                "regions": [row_a["regions"], row_b["regions"]],
                "main_object_iou": [objects_a, objects_b],
                "opencut_s": [row_a["opencut_s"], row_b["opencut_s"]],
                "max_abs_diff": round(max(diffs), 4),
            }
            worst = max(worst, max(diffs))
        out[photo] = rows
    out["max_abs_diff"] = round(worst, 4)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a", type=Path)
    parser.add_argument("b", type=Path)
    args = parser.parse_args(argv)
    report = compare(json.loads(args.a.read_text()), json.loads(args.b.read_text()))
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
