#!/bin/bash
# test_full_disk.sh - a full disk: the state directory is a small tmpfs;
# with it nearly full, a job fails with a clear reason at its first
# checkpoint, the daemon keeps serving and its state stays consistent; once
# space is freed, the same job runs to success.
set -u
. "$FT_SRC/tests/integration/lib.sh"

assets_require llama2c/stories260K.bin
mkdir -p "$FT_STATE"
if ! mount -t tmpfs -o size=24m tmpfs "$FT_STATE" 2>/dev/null; then
	echo "SKIP: cannot mount a tmpfs for the state directory (needs root)"
	exit 77
fi
trap 'cleanup; umount "$FT_STATE" 2>/dev/null' EXIT
F=$FT_BIN/client/ftctl
FT_CONF_EXTRA="import_roots = $assets:$FT_TMP\n"
daemon_start
$F model import "$assets/llama2c/stories260K.bin" --tokenizer "$assets/llama2c/tok512.bin" >/dev/null ||
	fail "import"
head -c 20000 "$assets/corpora/tinyshakespeare/input.txt" > "$FT_TMP/text.txt"
$F data add "$FT_TMP/text.txt" --kind text --name text --validation-split 0.1 >/dev/null || fail "data add"

# Leave about 1 MiB: enough for SQLite, not for a 3 MiB checkpoint.
avail=$(df --output=avail -k "$FT_STATE" | tail -1)
dd if=/dev/zero of="$FT_STATE/filler" bs=1k count=$((avail - 1024)) status=none 2>/dev/null
spec="--base stories260K --data text --type cpt --max-steps 6 --save-every 2 --seq-len 64"
job=$($F job submit $spec | sed -n 's/^job \([0-9]*\) .*/\1/p')
[ -n "$job" ] || fail "submit on a nearly full disk"
expect_eq "$(job_wait "$job" 120)" "FAILED" "job on a full disk fails"
expect_match "$(job_field "$job" error)" "No space left on device" "its reason names the full disk"
"$F" status >/dev/null || fail "daemon serving after the full disk"
pass "daemon still serving"
$F model show stories260K >/dev/null && $F data show text >/dev/null || fail "state readable"
pass "state consistent"
[ -z "$(ls "$FT_STATE/jobs/$job" 2>/dev/null | grep tmp)" ] || fail "temporary files left behind"
pass "no partial checkpoint left"

rm -f "$FT_STATE/filler"
job2=$($F job submit $spec | sed -n 's/^job \([0-9]*\) .*/\1/p')
expect_eq "$(job_wait "$job2" 120)" "SUCCEEDED" "with space freed the next job runs"
daemon_stop
finish
