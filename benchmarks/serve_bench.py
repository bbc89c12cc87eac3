"""`fossil serve` against the work `fossil segment` does per image once its models are loaded,
on the held-out scenes of a `fossil demo` world (SYNTHETIC models, real pipeline).

First, in this process: a read session on the store with the demo models, then per scene its
`segment` plus the overlay picture (what `fossil segment` spends per image after loading).
Then a real `fossil serve --models demo` on 127.0.0.1 and, per scene, the wall time of
`POST /segment` seen by an HTTP client (upload, queue, the same library call, PNG/JSON
encoding, download).
One warm-up image each.  Prints one JSON object.

    fossil demo --out /tmp/demo     # once (1.5-3 minutes)
    python benchmarks/serve_bench.py --demo /tmp/demo [--scenes 10]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

from fossil.demo.scenes import read_class_names
from fossil.demo.world import demo_fossil_config, demo_models


def library_seconds(store: Path, images: list[Path], concepts: list[str]) -> list[float]:
    from fossil.pipeline.images import load_image
    from fossil.pipeline.ingest_config import StoreAddress
    from fossil.pipeline.overlay import overlay
    from fossil.pipeline.session import ReadSession

    config = demo_fossil_config()
    with ReadSession.open(StoreAddress(store), config, demo_models()) as session:
        seconds = []
        for path in images[:1] + images:  # the first one warms up
            image = load_image(path)
            started = time.perf_counter()
            result = session.segment(image, concepts)
            overlay(image, result.labels, result.concepts)
            seconds.append(time.perf_counter() - started)
    return seconds[1:]


def served_seconds(store: Path, images: list[Path], concepts: list[str]) -> list[float]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    argv = [sys.executable, "-m", "fossil.cli", "serve", "--store", str(store)]
    argv += ["--models", "demo", "--port", str(port)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    server = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url, timeout=600) as client:
            deadline = time.monotonic() + 300
            while True:
                if server.poll() is not None:
                    raise RuntimeError(f"fossil serve exited with {server.returncode}")
                try:
                    if client.get("/info").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("fossil serve did not start within 300 s")
                time.sleep(0.5)
            seconds = []
            for path in images[:1] + images:
                files = {"image": (path.name, path.read_bytes(), "image/jpeg")}
                started = time.perf_counter()
                response = client.post(
                    "/segment", files=files, data={"concepts": ", ".join(concepts)}
                )
                response.raise_for_status()
                response.json()
                seconds.append(time.perf_counter() - started)
    finally:
        server.terminate()
        server.wait(30)
    return seconds[1:]


def summary(seconds: list[float]) -> dict[str, float]:
    return {
        "median_s": round(statistics.median(seconds), 3),
        "mean_s": round(statistics.fmean(seconds), 3),
        "min_s": round(min(seconds), 3),
        "max_s": round(max(seconds), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", type=Path, required=True, help="a `fossil demo --out` folder")
    parser.add_argument("--scenes", type=int, default=10, help="held-out scenes timed")
    args = parser.parse_args()
    scenes = args.demo / "scenes"
    images = sorted((scenes / "images" / "validation").glob("*.jpg"))[: args.scenes]
    if not images:
        raise SystemExit(f"no scenes under {scenes}: run `fossil demo --out {args.demo}` first")
    concepts = list(read_class_names(scenes))
    library = library_seconds(args.demo / "store", images, concepts)
    served = served_seconds(args.demo / "store", images, concepts)
    report = {
        "benchmark": "serve_bench",
        "synthetic": True,
        "scenes": len(images),
        "concepts": len(concepts),
        "library_segment_image_plus_overlay": summary(library),
        "serve_post_segment_wall": summary(served),
        "ratio_median": round(statistics.median(served) / statistics.median(library), 3),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
