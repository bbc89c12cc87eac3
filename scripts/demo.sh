#!/usr/bin/env bash
# Installs fossil into ./.venv (CPU torch 2.13.0 first) and runs `fossil demo` offline: the
# whole pipeline on a SYNTHETIC world, writing demo-out/<timestamp>/.  Works on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh demo
HF_HUB_OFFLINE=1 fossil demo --out "demo-out/$(date +%Y%m%d-%H%M%S)" "$@"
