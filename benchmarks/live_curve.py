"""mIoU against collection size in the demo world, measured through a live ``fossil serve``
(issue 29; docs/live.md).

Takes a ``fossil demo --out DIR`` folder (its store, its held-out scenes), starts
``fossil serve`` on the store, sends a corpus of ``--captions`` more captions of the world
(another seed) as an ingest job (``fossil ingest --server``), and runs ``fossil eval ade20k
--server URL --every M`` on the scenes while the job runs.  Writes the log (CSV) and a
picture of the curve.

    fossil demo --out demo-small --captions 40 --scenes 10
    python benchmarks/live_curve.py --demo demo-small --captions 600 --every 150 \
        --out benchmarks/results/live_curve --picture docs/live-curve.png
"""

from __future__ import annotations

import argparse
import csv
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_up(url: str, server: subprocess.Popen[bytes], timeout: float = 600.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if server.poll() is not None:
            raise SystemExit(f"fossil serve ended with {server.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/collection", timeout=10):
                return
        except OSError:
            time.sleep(1.0)
    raise SystemExit("fossil serve did not start")


def draw(log: Path, picture: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with log.open() as rows:
        lines = list(csv.DictReader(rows))
    refs = [int(r["references"]) for r in lines]
    miou = [100 * float(r["miou"]) for r in lines]
    figure = Figure(figsize=(5.2, 3.0), dpi=110)
    axes = figure.add_subplot()
    axes.plot(refs, miou, marker="o")
    axes.set_xlabel("references in the collection")
    axes.set_ylabel("mIoU (%)")
    axes.set_title("Demo world: mIoU while `fossil serve` ingests", fontsize=9)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    picture.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(figure).print_png(str(picture))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo", type=Path, required=True, help="a `fossil demo --out` folder")
    parser.add_argument("--captions", type=int, default=600, help="captions the job ingests")
    parser.add_argument("--seed", type=int, default=1, help="the new captions' seed")
    parser.add_argument("--every", type=int, default=150, help="references between runs")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/live_curve"))
    parser.add_argument("--picture", type=Path, default=None, help="PNG of the curve")
    parser.add_argument(
        "--eval-flags", default="", help='more `fossil eval` flags, e.g. "--no-opencut"'
    )
    args = parser.parse_args()

    from fossil.demo.corpus import caption_corpus

    args.out.mkdir(parents=True, exist_ok=True)
    corpus = args.out / "more.txt"
    corpus.write_text("\n".join(caption_corpus(args.captions, seed=args.seed)) + "\n")
    fossil = [sys.executable, "-m", "fossil.cli"]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    serve_log = (args.out / "serve.log").open("wb")
    server = subprocess.Popen(
        [*fossil, "serve", "--store", str(args.demo / "store"), "--port", str(port)],
        stdout=serve_log, stderr=subprocess.STDOUT, env=env,
    )  # fmt: skip
    try:
        wait_up(url, server)
        started = time.monotonic()
        ingest = subprocess.Popen([*fossil, "ingest", str(corpus), "--server", url], env=env)
        time.sleep(3.0)  # the job is queued before the first look
        log = args.out / "live.csv"
        log.unlink(missing_ok=True)
        scenes = args.demo / "scenes"
        subprocess.run(
            [*fossil, "eval", "ade20k", "--data", str(scenes), "--classes",
             str(scenes / "classes.json"), "--server", url, "--every", str(args.every),
             "--log", str(log), "--out", str(args.out / "eval"), "--restart",
             "--no-progress", "--poll", "2", *args.eval_flags.split()],
            check=True, env=env,
        )  # fmt: skip
        ingest.wait()
        print(f"ingest + curve: {time.monotonic() - started:.0f} s; log {log}")
        if args.picture is not None:
            draw(log, args.picture)
            print(f"picture: {args.picture}")
    finally:
        server.terminate()
        server.wait(60)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
