#!/bin/bash
# test_load.sh - 50 concurrent clients issue thousands of status, list and
# show requests while a training job saturates the cores: every request must
# succeed (the figures are printed, not asserted). Then clients submit and
# cancel jobs concurrently and the queue must stay consistent.
set -u
. "$FT_SRC/tests/integration/lib.sh"

assets_require llama2c/stories260K.bin
F=$FT_BIN/client/ftctl
FT_CONF_EXTRA="import_roots = $assets:$FT_TMP\nrpc_contexts = 16\nmax_queued_per_user = 1000\n"
daemon_start
$F model import "$assets/llama2c/stories260K.bin" --tokenizer "$assets/llama2c/tok512.bin" >/dev/null ||
	fail "import"
head -c 40000 "$assets/corpora/tinyshakespeare/input.txt" > "$FT_TMP/text.txt"
$F data add "$FT_TMP/text.txt" --kind text --name text >/dev/null || fail "data add"
job=$($F job submit --base stories260K --data text --type cpt --epochs 1000 --seq-len 128 |
	sed -n 's/^job \([0-9]*\) .*/\1/p')
for _ in $(seq 1 100); do
	[ "$(job_field "$job" state)" = RUNNING ] && break
	sleep 0.1
done
expect_eq "$(job_field "$job" state)" "RUNNING" "training while under load"

out=$("$FT_BIN/tests/load_rpc" "$FT_SOCKET" 50 100 "$job") || fail "load: $out"
echo "$out"
pass "5000 requests from 50 clients, none failed"

# Concurrent submissions and cancellations.
pids=()
for c in $(seq 1 10); do
	( for _ in 1 2 3; do
		id=$($F job submit --base stories260K --data text --type cpt --max-steps 1 --seq-len 32 |
			sed -n 's/^job \([0-9]*\) .*/\1/p')
		[ -n "$id" ] && $F job cancel "$id" >/dev/null 2>&1
	  done ) &
	pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
$F job cancel "$job" >/dev/null || fail "cancel the training job"
job_wait "$job" 60 >/dev/null
sleep 1
list=$($F job ls --all --json)
expect_eq "$(printf '%s' "$list" | grep -c '"state": "RUNNING"')" "0" "nothing left running"
expect_eq "$(printf '%s' "$list" | grep -c '"state": "QUEUED"')" "0" "nothing left queued"
expect_eq "$(printf '%s' "$list" | grep -c '"state":')" "31" "31 jobs, none lost or doubled"
daemon_stop
finish
