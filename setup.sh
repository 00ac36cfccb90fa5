#!/usr/bin/env bash
# Retake set-up: creates .venv in the repo, installs the engine and its
# dependencies, then runs the demo (skip it with --no-demo).
#
# torch is installed first, on its own: here `torch==2.13.0` resolves to the
# local CPU wheel; on a GPU workstation set RETAKE_TORCH to the CUDA build you
# want (e.g. RETAKE_TORCH="torch --index-url https://download.pytorch.org/whl/cu128").
set -euo pipefail
cd "$(dirname "$0")"

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "retake setup: creating .venv with $($python --version)"
    "$python" -m venv .venv
fi
pip=(.venv/bin/python -m pip --disable-pip-version-check)
find_links=()
[ -d /opt/wheels ] && find_links=(--find-links /opt/wheels)

if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
    echo "retake setup: installing torch (${RETAKE_TORCH:-torch==2.13.0})"
    # shellcheck disable=SC2086
    "${pip[@]}" install -q "${find_links[@]}" ${RETAKE_TORCH:-torch==2.13.0}
fi

# Reinstall only when the project's requirements changed since the last set-up.
stamp=.venv/.retake-installed
wanted=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ] || ! .venv/bin/python -c "import engine" >/dev/null 2>&1; then
    echo "retake setup: installing retake and its dependencies into .venv"
    "${pip[@]}" install -q "${find_links[@]}" -e ".[test]"
    echo "$wanted" > "$stamp"
fi

# The analysis models (faces, masks, pose): fetched once into the per-user cache
# and verified by sha256; a no-op when they are already there. Without a path
# to the package index this warns and goes on (see `retake models`).
if ! .venv/bin/retake models --install >/dev/null; then
    echo "retake setup: the analysis models could not be installed (see above); face, mask and pose" \
         "analysis will say so when used. Retry with '.venv/bin/retake models --install', or set RETAKE_MODELS."
fi

if [ "${1:-}" != "--no-demo" ]; then
    .venv/bin/retake demo --out retake_demo
fi
