"""Child process of ``benchmarks/opencut_bench.py``: time OpenCut settings with one ``fossil``.

    python benchmarks/opencut_child.py ROOT INPUTS.npz SETTINGS.json OUT.npz

``ROOT`` is the folder whose ``fossil`` package is imported (this checkout or an exported
baseline), so the same inputs run through two versions of the code.  ``SETTINGS.json`` maps a
setting name to ``{"opencut": {...}, "crf": {...}, "image": bool, "one_core": bool}``
(keyword arguments of ``OpenCutConfig`` and ``CRFConfig``).  A ``one_core`` setting runs with
this process pinned to its first allowed CPU; the others on every allowed CPU.  The BLAS
thread count comes from the environment (the parent sets it to 1).  Writes, per input and
setting, the masks of the first run and the wall and CPU seconds of every run (the CPU
seconds of this process only: a CRF worker's are not in them).
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np


def main(argv: list[str]) -> int:
    root, inputs_path, settings_path, out_path = argv
    sys.path.insert(0, root)
    import fossil  # noqa: PLC0415
    from fossil.config import CRFConfig, OpenCutConfig  # noqa: PLC0415
    from fossil.segment.opencut import run_opencut  # noqa: PLC0415

    if not os.path.realpath(fossil.__file__).startswith(os.path.realpath(root)):
        raise SystemExit(f"imported {fossil.__file__}, expected the fossil under {root}")
    inputs = np.load(inputs_path)
    settings = json.loads(open(settings_path).read())
    repeats = int(settings.pop("_repeats"))
    names = sorted({key.rsplit("/", 1)[0] for key in inputs.files})
    cpus = sorted(os.sched_getaffinity(0))
    out: dict[str, np.ndarray] = {}
    for setting, spec in settings.items():
        config = OpenCutConfig(**spec["opencut"], crf=CRFConfig(**spec["crf"]))
        os.sched_setaffinity(0, cpus[:1] if spec["one_core"] else cpus)
        for name in names:
            keys = inputs[f"{name}/keys"]
            image = inputs[f"{name}/image"] if spec["image"] else None
            seconds, cpu_seconds = [], []
            for repeat in range(repeats):
                start, cpu_start = time.perf_counter(), time.process_time()
                result = run_opencut(keys, image, config)
                seconds.append(time.perf_counter() - start)
                cpu_seconds.append(time.process_time() - cpu_start)
                if repeat == 0:
                    out[f"{name}/{setting}/masks"] = result.masks
                    out[f"{name}/{setting}/eigensolves"] = np.array(result.eigensolves)
                    out[f"{name}/{setting}/raw_masks"] = np.array(result.raw_masks)
                    skipped = getattr(result, "crf_skipped", 0)  # absent before issue 26
                    out[f"{name}/{setting}/crf_skipped"] = np.array(skipped)
            out[f"{name}/{setting}/seconds"] = np.array(seconds)
            out[f"{name}/{setting}/cpu_seconds"] = np.array(cpu_seconds)
    os.sched_setaffinity(0, cpus)
    np.savez_compressed(out_path, **out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
