#!/usr/bin/env bash
# run.sh [sigv4d flags]: installs the build dependencies if missing, builds build/ in release
# mode and runs build/sigv4d with the given flags (see README.md for them).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
# Two parallel jobs: the machines this runs on have two cores.
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j2 --target sigv4d
exec build/sigv4d "$@"
