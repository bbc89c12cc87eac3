"""Query-side text encoding at the paper's shapes: the 7 templates of every concept of a
benchmark (171 for COCO-Stuff) through the text tower, as ``fossil query`` embeds them
(issue 26 item 3).

Times, in one process and in turns, the two ways the CLIP tower computes the same
embeddings: every prompt through ``ClipTextEncoder.encode`` (sorted by length, padded to each
batch's longest), and ``ClipTextEncoder.encode_templated`` (each template's prefix computed
once, every prompt's remaining tokens attending to it).  Prints one JSON object: wall and
process-CPU seconds per way (best of --repeats, turns interleaved so a change of machine load
hits both), token counts, and the largest difference between the two results.

    python benchmarks/text_encode_bench.py --text /tmp/fossil_paper_shapes/paper/text \\
        [--benchmark coco_stuff171] [--repeats 3] [--threads 2]

``--text`` is any text model ``fossil`` loads (a local folder or a Hugging Face id); the
paper's CLIP ViT-L/14 text tower with random weights is built by
``benchmarks/paper_shapes.py`` under its --cache.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from importlib import resources

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--text", required=True, help="text model: folder or Hugging Face id")
    parser.add_argument("--benchmark", default="coco_stuff171")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=None, help="also write the JSON here")
    args = parser.parse_args()

    import torch

    from fossil.models.loading import load_text_encoder
    from fossil.models.text import TEMPLATES

    torch.set_num_threads(args.threads)
    classes = json.loads(
        resources.files("fossil.data").joinpath("benchmark_classes.json").read_text()
    )[args.benchmark]["classes"]
    encoder = load_text_encoder(args.text, device="cpu")
    prompts = [t.format(c) for c in classes for t in TEMPLATES]
    tokens = encoder.tokenizer(prompts)["input_ids"]  # type: ignore[attr-defined]

    def plain() -> np.ndarray:
        return encoder.encode(prompts).reshape(len(classes), len(TEMPLATES), encoder.dim)

    def templated() -> np.ndarray:
        return encoder.encode_templated(TEMPLATES, classes)  # type: ignore[attr-defined]

    ways = {"encode": plain, "encode_templated": templated}
    best: dict[str, dict[str, float]] = {}
    results: dict[str, np.ndarray] = {}
    for _ in range(args.repeats):
        for name, way in ways.items():
            wall, cpu = time.perf_counter(), time.process_time()
            results[name] = way()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            seen = best.setdefault(name, {"wall_s": wall, "cpu_s": cpu})
            seen["wall_s"], seen["cpu_s"] = min(seen["wall_s"], wall), min(seen["cpu_s"], cpu)
    report = {
        "text": args.text,
        "benchmark": args.benchmark,
        "concepts": len(classes),
        "prompts": len(prompts),
        "prompt_tokens": int(sum(len(t) for t in tokens)),
        "threads": args.threads,
        "repeats": args.repeats,
        "load_average_1min": round(os.getloadavg()[0], 2),
        "seconds": {k: {m: round(v, 2) for m, v in d.items()} for k, d in best.items()},
        "speedup_wall": round(best["encode"]["wall_s"] / best["encode_templated"]["wall_s"], 2),
        "max_abs_difference": float(np.abs(results["encode"] - results["encode_templated"]).max()),
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
