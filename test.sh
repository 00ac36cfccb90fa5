#!/usr/bin/env bash
# Retake tests: sets up .venv if needed (no demo), then runs the whole suite.
# Extra arguments go to pytest (e.g. ./test.sh -k colour).
set -euo pipefail
cd "$(dirname "$0")"
./setup.sh --no-demo

# Debian's oiiotool is an independent check of our ACES container files; the
# OpenImageIO wheel's own oiiotool is the fallback the tests use without it.
if ! [ -x /usr/bin/oiiotool ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "retake tests: installing Debian's openimageio-tools for oiiotool"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openimageio-tools >/dev/null) \
        || echo "retake tests: could not install openimageio-tools; using the wheel's oiiotool"
fi

export QT_QPA_PLATFORM=offscreen
exec .venv/bin/python -m pytest -q "$@"
