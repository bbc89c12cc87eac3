"""benchmarks/gpu_check.sh in its CPU mode (small shapes): the GPU check cannot rot while no
GPU is lent.  It runs fossil ingest, query and segment on random-weight models of the paper's
architectures scaled down, and the generation/NCut benchmark, and writes their JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_gpu_check_passes_on_cpu(tmp_path: Path) -> None:
    out, cache = tmp_path / "out", tmp_path / "cache"
    done = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--device", "cpu",
         "--out", str(out), "--cache", str(cache)],
        capture_output=True, text=True, timeout=1200, check=False,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHON": sys.executable},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    shapes = json.loads((out / "paper_shapes.json").read_text())
    assert shapes["shapes"] == "small" and shapes["device"] == "cpu"
    commands = shapes["commands"]
    assert set(commands) == {"ingest", "query", "segment"}
    assert commands["query"]["roles_built"] == ["nouns", "text"]
    assert commands["segment"]["roles_built"] == ["dense", "keys", "nouns", "text"]
    assert commands["ingest"]["roles_built"] == ["dense", "generator", "nouns", "text"]
    for command in commands.values():
        assert command["exit_code"] == 0 and command["peak_rss_mb"] > 100
    per_caption = commands["ingest"]["per_caption"]
    assert per_caption["s_per_unet_call"] > 0 and per_caption["unet_calls_per_generate"] >= 1
    assert per_caption["s_per_caption_at_50_steps"] > per_caption["fixed_s_per_caption"]
    assert commands["segment"]["crops"] >= 1
    generation = json.loads((out / "generation.json").read_text())
    assert [b["batch"] for b in generation["batches"]] == [1, 2]
    assert all(b["images_per_s"] > 0 for b in generation["batches"])
    assert generation["batched_vs_single"]["captions"] == 2
    assert generation["suggested_cuda_batch_size"] is None  # no CUDA here
    opencut = generation["opencut_per_crop"]
    assert opencut["torch_on"] == "cpu" and opencut["eigsh_s_per_crop"] > 0
    assert "torch_s_per_crop" not in opencut  # the CUDA solver is timed on CUDA only
    assert "ingest" in done.stdout and "images/s" in done.stdout  # the printed summary
