#!/bin/sh
# Benchmark (a tool, not a test): Release build, throwaway PostgreSQL,
# loopback only. Prints the figures docs/PERFORMANCE.md quotes.
set -eu
cd "$(dirname "$0")/../.."
./deploy/install-deps.sh
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build-bench -j"$(nproc)" >/dev/null
# --scale: 1-2 servers x 1-4 flushers instead (tests/bench/scale.py).
script=run.py
[ "${1:-}" != "--scale" ] || script=scale.py
SW_BIN="$PWD/build-bench/bin" exec pg_virtualenv -- python3 "tests/bench/$script"
