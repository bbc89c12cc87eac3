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
#
# --device cpu runs the same steps at small shapes (64 px, 1 step, batches 1 and 2, a 16x16
# keys grid, segment without OpenCut, no eval) in about a minute: CI runs it that way
# (tests/benchmarks/test_gpu_check.py), so the script cannot rot while no GPU is lent.
set -euo pipefail
cd "$(dirname "$0")/.."

device=cuda
out=gpu-check
cache=/tmp/fossil_paper_shapes
while [[ $# -gt 0 ]]; do
  case "$1" in
    --device) device="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --cache) cache="$2"; shift 2 ;;
    *) echo "gpu_check.sh: unknown argument $1 (known: --device, --out, --cache)" >&2; exit 2 ;;
  esac
done

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
