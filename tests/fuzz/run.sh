#!/bin/sh
# The fuzzing step of the test suite (ctest runs it; see tests/CMakeLists.txt).
#   run.sh build DIR                  configure and build the libFuzzer targets
#                                     with clang in DIR
#   run.sh run DIR TARGET SECONDS     fuzz TARGET for SECONDS from a copy of its
#                                     seed corpus; exit 1 on any crash, leak,
#                                     timeout or sanitizer report
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
cmd=$1
dir=$2
case "$cmd" in
build)
    command -v clang >/dev/null || { echo "clang not found: run deploy/install-deps.sh --test"; exit 1; }
    CC=clang cmake -S "$SRC" -B "$dir" -DSPILLWAY_FUZZ=ON -DBUILD_TESTING=OFF \
        -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$dir" -j2 --target fuzz_ingest fuzz_envelope fuzz_config fuzz_http
    ;;
run)
    target=$3
    seconds=$4
    work="$dir/run-$target"
    rm -rf "$work"
    mkdir -p "$work/corpus" "$work/artifacts"
    cp "$HERE/corpus/$target/"* "$work/corpus/"
    # Reports must end the run: UBSan aborts (-fno-sanitize-recover) and
    # leaks are checked at exit.
    if ASAN_OPTIONS=detect_leaks=1 "$dir/bin/fuzz_$target" -max_total_time="$seconds" \
        -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1024 -print_final_stats=1 \
        -artifact_prefix="$work/artifacts/" "$work/corpus" >"$work/log" 2>&1; then
        grep -E "^stat::number_of_executed_units|^Done" "$work/log" || true
        echo "fuzz_$target: no finding in ${seconds}s"
    else
        tail -n 60 "$work/log"
        echo "fuzz_$target: FINDING; reproducer(s) in $work/artifacts:"
        ls -l "$work/artifacts"
        exit 1
    fi
    ;;
*)
    echo "usage: $0 build DIR | run DIR TARGET SECONDS" >&2
    exit 2
    ;;
esac
