#!/bin/bash
# fuzz.sh [SECONDS] - build every libFuzzer target (tests/fuzz/fuzz_*.c) with
# clang, ASan and UBSan, and run each for SECONDS (default 15) on a scratch
# copy of its seed corpus.  A crash, leak or sanitizer report fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-15}

CC=clang cmake -S . -B build-fuzz -DFT_FUZZ=ON -DFT_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
targets=$(cd tests/fuzz && ls fuzz_*.c | sed 's/\.c$//')
cmake --build build-fuzz -j"$(nproc)" --target $targets >/dev/null
for t in $targets; do
	name=${t#fuzz_}
	work=$(mktemp -d)
	cp tests/fuzz/corpus/"$name"/* "$work"/
	dict=()
	[ -f "tests/fuzz/$name.dict" ] && dict=(-dict="tests/fuzz/$name.dict")
	if ! build-fuzz/tests/"$t" "$work" "${dict[@]}" -max_total_time="$secs" -rss_limit_mb=4096 \
	    > "$work.log" 2>&1; then
		tail -40 "$work.log"
		echo "fuzz: $t failed (log above)"
		exit 1
	fi
	printf '%-26s %s\n' "$t" "$(grep -E '^Done|DONE' "$work.log" | tail -1)"
	rm -rf "$work" "$work.log"
done
