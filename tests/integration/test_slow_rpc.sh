#!/bin/bash
# test_slow_rpc.sh - one user's slow requests (ten generations without
# --stream and an export) must not starve another user's status: slow
# handlers run on rpc_slow_threads workers, at most rpc_slow_per_user of
# one user at once, and the excess is refused with RESOURCE_EXHAUSTED at
# once.  The p99 of the other user's status is printed and must stay under
# a generous second.
set -u
. "$FT_SRC/tests/integration/lib.sh"

assets_require tokenizers/smollm2-135m-instruct/tokenizer.json
users_require ftcn_sg ftcn_sa ftcn_sb
F=$FT_BIN/client/ftctl
chmod 755 "$FT_TMP"
mkdir -p "$FT_TMP/export"
FT_CONF_EXTRA="import_roots = $assets\nexport_roots = $FT_TMP/export\n"
daemon_start
chmod 755 "$FT_TMP/run"
chgrp ftcn_sg "${FT_SOCKET#ipc://}"
# 16M parameters, a few seconds a generation here: slow enough to hold a thread.
"$F" --timeout 60000 model init big --tokenizer "$assets/tokenizers/smollm2-135m-instruct/tokenizer.json" \
	--layers 4 --dim 256 --heads 4 >/dev/null || fail "model init"

pids=()
for i in $(seq 1 10); do
	as ftcn_sa "$F" --timeout 60000 generate big "Once $i" --raw --max-new-tokens 48 --no-stream \
		> "$FT_TMP/gen$i.out" 2>&1 &
	pids+=($!)
done
as ftcn_sa "$F" --timeout 60000 model export big --format hf --out "$FT_TMP/export/big" \
	> "$FT_TMP/export.out" 2>&1 &
pids+=($!)
sleep 0.3
out=$(as ftcn_sb "$FT_BIN/tests/load_rpc" "$FT_SOCKET" 1 100 0) || fail "status under load: $out"
echo "$out"
pass "another user's 100 status requests all answered while one user runs 10 generations and an export"
p99=$(printf '%s' "$out" | sed -n 's/.*p99 \([0-9.]*\) ms.*/\1/p')
awk -v p="$p99" 'BEGIN { exit !(p < 1000) }' && pass "status p99 ${p99} ms < 1 s" ||
	fail "status p99 ${p99} ms"
served=0
for p in "${pids[@]}"; do wait "$p" && served=$((served + 1)); done
refused=$(cat "$FT_TMP"/gen*.out "$FT_TMP/export.out" | grep -c "RESOURCE_EXHAUSTED: you have 2 slow requests")
expect_eq "$((refused + served))" "11" "every slow request was served or refused"
[ "$refused" -ge 5 ] && [ "$served" -ge 2 ] ||
	fail "refused $refused, served $served: want rpc_slow_per_user (2) served at a time, the rest refused"
pass "$refused of the 11 refused at once with RESOURCE_EXHAUSTED, $served served"
out=$(as ftcn_sb "$F" --timeout 60000 generate big "Once" --raw --max-new-tokens 4 --no-stream) ||
	fail "another user's generation: $out"
pass "the limit is per user: another user's generation runs"
daemon_stop
finish
