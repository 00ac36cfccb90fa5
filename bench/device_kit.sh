#!/usr/bin/env bash
# The GPU benchmark, made ready here and run on a lent GPU machine in one call.
#
#   bench/device_kit.sh pack   # here: fills .device/ (ignored by git) with what the run needs
#   bench/device_kit.sh run    # there, in the repository's root, .device carried along
#
# The GPU machine (see /work/.library/device) has python3 with a CUDA torch, numpy, OpenCV
# and scipy, no package index and no ../shared. `pack` therefore downloads the wheels of the
# engine's other imports (the versions this .venv holds, built for that machine's Python
# 3.12) and copies the benchmark's pictures from ../shared/data; `run` installs the wheels
# into /tmp/site, points ../shared at the copy and runs, on cuda:
#   bench/device_check.py                      parity with the CPU, determinism, the split of a cold
#                                              frame, the flow solve replayed from a CUDA graph
#   tests/test_cuda_graphs.py                  that replay against the eager solve
#   bench/propagation.py --only speed,memory   the benchmark's speed and memory tables
#   bench/propagation.py --only pipeline       `retake run` end to end: EXR in, EXR out, frames/s
#   (then the speed table again with RETAKE_CUDA_GRAPHS=1)
#   bench/flow.py --size 1920x1080             flow alone against OpenCV DIS
# Each table goes to the screen and to $OUT (the device tool's folder that comes back).
# About 60 MB travel (the tool takes 64 MiB a call). Order of the figures a run gives:
# device_check first, so that a run cut short still says the most.
set -euo pipefail
cd "$(dirname "$0")/.."
kit=.device

pack() {
    [ -x .venv/bin/python ] || { echo "device_kit: run ./setup.sh first (the wheels' versions come from .venv)" >&2; exit 1; }
    data=../shared/data
    [ -d "$data/sintel" ] || { echo "device_kit: $data not found (the repository's sibling shared/data)" >&2; exit 1; }
    rm -rf "$kit"
    mkdir -p "$kit/whl" "$kit/shared/data/sintel" "$kit/shared/data/exr/testimages"
    cp "$data"/sintel/frame_00{16..25}.png "$kit/shared/data/sintel/"
    cp "$data/exr/testimages/Cannon.exr" "$kit/shared/data/exr/testimages/"
    # What the engine imports that the GPU machine's image lacks, at the versions tested here.
    mapfile -t wanted < <(.venv/bin/python - <<'EOF'
from importlib.metadata import version
for name in ("fileseq", "OpenEXR", "OpenImageIO", "av", "opencolorio", "xxhash"):
    print(f"{name}=={version(name)}")
EOF
)
    .venv/bin/python -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
        --python-version "${RETAKE_KIT_PYTHON:-3.12}" --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$kit/whl" "${wanted[@]}"
    echo "device_kit: packed ${wanted[*]} and the benchmark's pictures: $(du -sh "$kit" | cut -f1) in $kit/"
    echo "device_kit: now run (device tool), carry [\"$kit\"]:  bash bench/device_kit.sh run"
}

run() {
    [ -d "$kit/whl" ] || { echo "device_kit: no $kit/whl here: run 'bench/device_kit.sh pack' first and carry $kit" >&2; exit 1; }
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$kit"/whl/*.whl
    export PYTHONPATH="/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
    [ -e ../shared ] || ln -s "$PWD/$kit/shared" ../shared
    out=${OUT:-$kit/out}
    mkdir -p "$out"
    local device=${RETAKE_BENCH_DEVICE:-cuda} failed=()
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | tee "$out/gpu.txt" || true
    # Each step runs even when one before it failed: one call of the device tool may be all there is.
    step() {
        local log=$1
        shift
        echo "device_kit: $*"
        "$@" 2>&1 | tee "$out/$log" || failed+=("$log")
    }
    step device_check.txt python3 bench/device_check.py --device "$device"
    step cuda_graph_tests.txt python3 -m pytest -q -rs -p no:cacheprovider tests/test_cuda_graphs.py
    step propagation_speed.txt python3 bench/propagation.py --device "$device" --only speed,memory
    step pipeline.txt python3 bench/propagation.py --device "$device" --only pipeline
    step propagation_speed_graphs.txt env RETAKE_CUDA_GRAPHS=1 \
        python3 bench/propagation.py --device "$device" --only speed
    step flow_1080.txt python3 bench/flow.py --device "$device" --size 1920x1080
    if [ ${#failed[@]} -gt 0 ]; then
        echo "device_kit: failed: ${failed[*]} (logs in $out)" >&2
        exit 1
    fi
}

case "${1:-}" in
    pack) pack ;;
    run) run ;;
    *) echo "usage: bench/device_kit.sh pack|run" >&2; exit 2 ;;
esac
