#!/usr/bin/env bash
# Installs fossil into ./.venv (CPU torch 2.13.0 first, with the serve extra for `fossil serve`)
# and runs `fossil demo` offline: the whole pipeline on a SYNTHETIC world, writing
# demo-out/<timestamp>/, linked as demo-out/latest.  Works on a fresh machine.  Ends with the
# commands to try next, each runnable as printed.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh "demo,serve"
run="$(date +%Y%m%d-%H%M%S)"
HF_HUB_OFFLINE=1 fossil demo --out "demo-out/$run" "$@"
ln -sfn "$run" demo-out/latest
cat <<NEXT

demo-out/latest -> demo-out/$run.  The commands above run from $PWD, in its .venv:
  cd $(printf '%q' "$PWD") && . .venv/bin/activate && export HF_HUB_OFFLINE=1
NEXT
