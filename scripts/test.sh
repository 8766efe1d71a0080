#!/bin/bash
# test.sh - install dependencies; build the default type (RelWithDebInfo) and
# run every test; build Release and Debug with gcc and the default with clang
# (each with warnings as errors: gcc's -O3 analyses such as -Wuse-after-free
# and clang's warnings differ from the default build's) and run the unit and
# fuzz-replay tests in the Release and clang builds; run every test again
# under AddressSanitizer + UndefinedBehaviorSanitizer; then run each
# libFuzzer target for a bounded time (scripts/fuzz.sh).
# Tests that need ../shared/assets skip with a message when it is absent.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh

stage() {
	echo "== $1 ($(date +%T))"
}

stage "build (default: RelWithDebInfo, gcc)"
scripts/build.sh build
stage "tests"
ctest --test-dir build --output-on-failure -j"$(nproc)"

stage "build (Release, gcc)"
scripts/build.sh build-release -DCMAKE_BUILD_TYPE=Release
stage "unit tests (Release)"
ctest --test-dir build-release --output-on-failure -j"$(nproc)" -L 'unit|fuzz'

stage "build (Debug, gcc)"
scripts/build.sh build-debug -DCMAKE_BUILD_TYPE=Debug

stage "build (default, clang)"
CC=clang scripts/build.sh build-clang
stage "unit tests (clang)"
ctest --test-dir build-clang --output-on-failure -j"$(nproc)" -L 'unit|fuzz'

stage "build (AddressSanitizer + UBSan)"
scripts/build.sh build-asan -DFT_SANITIZE=ON
stage "tests under sanitizers"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp \
	ctest --test-dir build-asan --output-on-failure -j"$(nproc)"

stage "fuzzers (libFuzzer, 20 s each)"
scripts/fuzz.sh 20
stage "done"
