"""The measured process of benchmarks/paper_shapes.py: runs ``fossil ARGV`` (the real CLI)
with timers around the model builds and the stages, then writes a JSON report: wall time,
seconds per model role built, per stage {calls, total_s, per_crop_s}, peak RSS (and peak CUDA
memory).  The timers wrap functions from outside; fossil itself is unchanged."""

from __future__ import annotations

import importlib
import json
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

STAGES = ("dense_features", "keys", "opencut_total", "crf", "scoring")


class Timers:
    def __init__(self, cuda: bool) -> None:
        self.stages: dict[str, dict[str, float]] = {}
        self.cuda = cuda
        self.running: set[str] = set()  # stages being timed: a nested call is not counted twice

    def sync(self) -> None:
        if self.cuda:
            import torch

            torch.cuda.synchronize()

    def add(self, name: str, seconds: float) -> None:
        stage = self.stages.setdefault(name, {"calls": 0, "total_s": 0.0})
        stage["calls"] += 1
        stage["total_s"] += seconds

    def wrap(self, owner: Any, attribute: str, name: str) -> None:
        """Time every call of ``owner.attribute`` (a module function or a class method)."""
        original: Callable[..., Any] = getattr(owner, attribute)

        def timed(*args: Any, **kwargs: Any) -> Any:
            if name in self.running:
                return original(*args, **kwargs)
            self.sync()
            self.running.add(name)
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.sync()
                self.running.discard(name)
                self.add(name, time.perf_counter() - started)

        setattr(owner, attribute, timed)

    def hook(self, module: Any, name: str) -> None:
        """Time every forward of a torch module."""
        starts: list[float] = []

        def before(*_: Any) -> None:
            self.sync()
            starts.append(time.perf_counter())

        def after(*_: Any) -> None:
            self.sync()
            self.add(name, time.perf_counter() - starts.pop())

        module.register_forward_pre_hook(before)
        module.register_forward_hook(after)


def run_child(report_path: Path, argv: list[str]) -> int:
    import fossil.ingest.pool as pool
    import fossil.ingest.worker as worker
    import fossil.models.loading as loading
    import fossil.pipeline.segmenter as segmenter
    from fossil.cli import main
    from fossil.models.text import ClipTextEncoder

    # the module, not the function fossil.segment exports under the same name
    opencut = importlib.import_module("fossil.segment.opencut")
    cuda = any(a.startswith("cuda") for a in argv)
    timers = Timers(cuda)
    load_s: dict[str, float] = {}
    real_load = loading._load_role

    def load_role(role: str, ident: str, generation: Any, device: str, *rest: Any) -> Any:
        started = time.perf_counter()
        model = real_load(role, ident, generation, device, *rest)
        load_s[role] = round(time.perf_counter() - started, 2)
        if role == "generator":
            timers.hook(model.pipeline.unet, "unet_call")
            timers.wrap(model.pipeline.vae, "decode", "vae_decode")
            timers.wrap(model, "generate", "generate")
        elif role == "dense":
            timers.hook(model.model, "dense_features")
        elif role == "keys":
            timers.hook(model.model, "keys")
        return model

    loading._load_role = load_role  # type: ignore[assignment]
    timers.wrap(worker, "process_batch", "process_batch")
    timers.wrap(pool, "process_batch", "process_batch")
    timers.wrap(segmenter.ImageAnalyser, "_compute", "crop_analysis")
    timers.wrap(segmenter, "opencut", "opencut_total")
    timers.wrap(opencut, "crf_masks", "crf")
    timers.wrap(opencut, "crf_labels", "crf")
    timers.wrap(segmenter, "score_map", "scoring")
    timers.wrap(ClipTextEncoder, "encode", "text_encode")
    timers.wrap(ClipTextEncoder, "encode_templated", "text_encode")
    started = time.perf_counter()
    code = main([*argv])
    wall = time.perf_counter() - started
    report_path.write_text(json.dumps(_report(timers, load_s, wall, code, cuda), indent=2))
    return code


def _report(
    timers: Timers, load_s: dict[str, float], wall: float, code: int, cuda: bool
) -> dict[str, Any]:
    stages = {k: {"calls": int(v["calls"]), "total_s": round(v["total_s"], 3)}
              for k, v in timers.stages.items()}  # fmt: skip
    crops = stages.get("crop_analysis", {}).get("calls", 0)
    per_crop: dict[str, float] = {}
    if crops:
        for name in STAGES:
            per_crop[name] = round(stages.get(name, {}).get("total_s", 0.0) / crops, 3)
        per_crop["opencut_without_crf"] = round(per_crop["opencut_total"] - per_crop["crf"], 3)
    report: dict[str, Any] = {
        "exit_code": code,
        "wall_s": round(wall, 2),
        "load_s": load_s,
        "load_total_s": round(sum(load_s.values()), 2),
        "roles_built": sorted(load_s),
        "peak_rss_mb": peak_rss_mb(),
        "stages": stages,
        "crops": crops,
        "s_per_crop": per_crop,
    }
    if cuda:
        import torch

        report["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return report


def peak_rss_mb() -> float:
    """This process's peak resident set: VmHWM (Linux), which starts afresh at exec — unlike
    ``ru_maxrss``, which a forked child inherits from its parent's peak."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
