# Sourced by scripts/test.sh and scripts/demo.sh: creates ./.venv and installs fossil with the
# extras given as "$1" (CPU torch 2.13.0 first, so pip never pulls a multi-GB CUDA build).
python3 -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q torch==2.13.0
python -m pip install -q -e ".[$1]"
