#!/bin/sh
# The whole test suite, from a fresh Debian 12 machine: install the
# dependencies, build a Debug build (AddressSanitizer + UBSan), start a
# throwaway PostgreSQL cluster with pg_virtualenv, and run every test under
# ctest (each integration test starts its own redis-server on loopback).
set -eu
cd "$(dirname "$0")/.."
./deploy/install-deps.sh --test
BUILD=${BUILD:-build-test}
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build "$BUILD" -j"$(nproc)"
# LeakSanitizer runs at each daemon's exit; the harness checks exit codes.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
exec pg_virtualenv -- ctest --test-dir "$BUILD" --output-on-failure -j2 --timeout 600 "$@"
