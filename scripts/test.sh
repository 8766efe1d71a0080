#!/bin/bash
# test.sh - install dependencies, build, and run every test twice: in the
# normal build and under AddressSanitizer + UndefinedBehaviorSanitizer;
# then run each libFuzzer target for a bounded time (scripts/fuzz.sh).
# Tests that need ../shared/assets skip with a message when it is absent.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh

echo "== build (RelWithDebInfo)"
scripts/build.sh build
echo "== tests"
ctest --test-dir build --output-on-failure -j"$(nproc)"

echo "== build (AddressSanitizer + UBSan)"
scripts/build.sh build-asan -DFT_SANITIZE=ON
echo "== tests under sanitizers"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp \
	ctest --test-dir build-asan --output-on-failure -j"$(nproc)"

echo "== fuzzers (libFuzzer, 20 s each)"
scripts/fuzz.sh 20
