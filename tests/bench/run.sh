#!/bin/sh
# Benchmark (a tool, not a test): Release build, throwaway PostgreSQL,
# loopback only. Prints the figures docs/PERFORMANCE.md quotes.
set -eu
cd "$(dirname "$0")/../.."
./deploy/install-deps.sh
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build-bench -j"$(nproc)" >/dev/null
SW_BIN="$PWD/build-bench/bin" exec pg_virtualenv -- python3 tests/bench/run.py
