#!/bin/bash
# test_deploy_adapters.sh - many LoRA adapters on one base through the real
# daemon: three adapters trained on one base (model init on the TinyLlama tokenizer, ~48 MB of f32
# weights) are deployed together after a restart; each loads as its adapter
# alone on the shared base, so the daemon's peak RSS (VmHWM) stays within
# its idle peak + the base once + the adapters + a fixed serving overhead
# (one request's generation memory, as deploy ls reports it, + SERVE_SLACK
# for the tokenizer, chat formats and allocator slack), far below three
# merged copies, and the second and third adapters add only their own
# bytes + ADAPTER_SLACK to the peak; ftctl deploy ls shows each
# deployment's own bytes and the shared base's once.  Each adapter's answers
# at temperature 0 equal its merged model's (the adapter exported merged
# as HF, imported as a full model and run with ftctl generate); the base,
# not deployed itself, is unloaded with the last adapter.
set -u
. "$FT_SRC/tests/integration/lib.sh"

assets_require tokenizers/tinyllama-1.1b-chat/tokenizer.json
command -v curl >/dev/null && command -v jq >/dev/null || { echo "SKIP: needs curl and jq"; exit 77; }
F=$FT_BIN/client/ftctl
SERVE_SLACK=$((8 << 20))
ADAPTER_SLACK=$((2 << 20))
FT_CONF_EXTRA="import_roots = $assets:$FT_TMP\nexport_roots = $FT_TMP\ntraining_threads = 2\nserve_threads = 1\n"
daemon_start

$F model init base --tokenizer "$assets/tokenizers/tinyllama-1.1b-chat/tokenizer.json" --layers 4 --dim 256 --heads 4 \
	--ffn 768 --seq-len 128 --seed 5 >/dev/null || fail "model init"
awk 'NF > 3 && length($0) < 60 { if (prev != "") { gsub(/["\\]/, "", prev); gsub(/["\\]/, "");
	printf "{\"instruction\": \"Continue.\", \"input\": \"%s\", \"output\": \"%s\"}\n", prev, $0;
	n++ } prev = $0 } n == 40 { exit }' "$assets/corpora/tinyshakespeare/input.txt" > "$FT_TMP/lines.jsonl"
$F data add "$FT_TMP/lines.jsonl" --kind instruct --name lines >/dev/null || fail "data add"
for i in 1 2 3; do
	job=$($F job submit --base base --data lines --type sft --method lora --lora-rank 8 \
		--max-steps 3 --seq-len 64 --batch-size 2 --lr 0.0$((i + 2)) --seed $i --name a$i |
		sed -n 's/^job \([0-9]*\) .*/\1/p')
	expect_eq "$(job_wait "$job" 300)" "SUCCEEDED" "LoRA adapter a$i trained"
done

# A fresh process, so that VmHWM counts serving only.
daemon_stop
daemon_start
url=$(json_get "$($F status --json)" http_url)v1
hwm() { awk '/^VmHWM:/ { print $2 * 1024 }' "/proc/$FT_PID/status"; }
idle=$(hwm)
for i in 1 2 3; do
	$F deploy a$i >/dev/null || fail "deploy a$i"
done
declare -A got
for i in 1 2 3; do
	r=$(curl -s -H 'Content-Type: application/json' -d "{\"model\": \"a$i\", \"prompt\": \"Once upon a time\", \"max_tokens\": 24, \"temperature\": 0}" "$url/completions")
	got[$i]=$(printf '%s' "$r" | jq -r '.choices[0].text')
	expect_match "${got[$i]}" '.' "a$i answers"
	[ "$i" = 1 ] && one=$(hwm)
done
peak=$(hwm)
ls=$($F deploy ls --json)
base=$(printf '%s' "$ls" | jq -r '.deploys[0].baseBytes // .deploys[0].base_bytes')
adapters=$(printf '%s' "$ls" | jq -r '[.deploys[] | (.memoryBytes // .memory_bytes) | tonumber] | add')
expect_eq "$(printf '%s' "$ls" | jq -r '[.deploys[] | (.sharedBase // .shared_base)] | unique | join(",")')" "base" \
	"every adapter runs on the shared base"
expect_eq "$(printf '%s' "$ls" | jq -r '[.deploys[] | (.baseBytes // .base_bytes)] | unique | length')" "1" \
	"one base size for all three"
expect_match "$base" '^[0-9]+$' "base bytes listed"
expect_eq "$([ "$base" -gt $((40 << 20)) ] && echo yes)" "yes" "the base is over 40 MB ($base bytes)"
expect_eq "$([ "$adapters" -lt $((base / 10)) ] && echo yes)" "yes" "three adapters hold $adapters bytes"
serving=$(printf '%s' "$ls" | jq -r '.servingBytes // .serving_bytes')
expect_eq "$serving" "$((base + adapters))" "serving memory counts the base once (no request in flight)"
grown=$((peak - idle))
request=$(printf '%s' "$ls" | jq -r '.deploys[0].requestBytes // .deploys[0].request_bytes')
limit=$((base + adapters + request + SERVE_SLACK))
echo "memory: idle VmHWM $idle, after a1 $one, peak $peak (+$grown); base $base, adapters $adapters, request $request, limit $limit"
# AddressSanitizer's redzones and quarantine inflate RSS: no bound there.
if ldd "$FT_BIN/daemon/ftuned" | grep -q libasan; then
	echo "note: ftuned is built with AddressSanitizer; the RSS bounds are not checked"
else
	expect_eq "$([ "$grown" -le "$limit" ] && echo yes)" "yes" \
		"peak RSS grew $grown <= base + 3 adapters + one request $request + $SERVE_SLACK ($limit)"
	expect_eq "$([ $((peak - one)) -le $((adapters + ADAPTER_SLACK)) ] && echo yes)" "yes" \
		"a2 and a3 added $((peak - one)) bytes to the peak (<= their adapters + $ADAPTER_SLACK)"
fi
table=$($F deploy ls)
expect_match "$table" 'MEMORY +SHARED BASE' "deploy ls shows memory and the shared base"
expect_match "$table" 'serving memory: [0-9.]+ MiB \(each shared base counted once\)' "deploy ls totals serving memory"
grep -q 'model a1 loaded ([0-9.]* MiB of its own on shared base base' "$FT_TMP/ftuned.log" &&
	pass "the log says a1 runs on the shared base" || fail "no shared-base load logged"

# Each equals its merged model at temperature 0.
for i in 1 2 3; do
	$F model export a$i --format hf --out "$FT_TMP/m$i" >/dev/null || fail "export a$i merged"
	$F model import "$FT_TMP/m$i" --name m$i >/dev/null || fail "import merged m$i"
	want=$($F generate m$i "Once upon a time" --raw --max-new-tokens 24 --temperature 0 2>/dev/null) ||
		fail "ftctl generate m$i"
	expect_eq "${got[$i]}" "$want" "a$i (shared base) answers as its merged model m$i"
done
expect_eq "$([ "${got[1]}" != "${got[2]}" ] || [ "${got[2]}" != "${got[3]}" ] && echo yes)" "yes" \
	"the adapters differ from one another"
# The base, never deployed itself, goes with its last adapter.
for i in 1 2 3; do
	$F undeploy a$i >/dev/null || fail "undeploy a$i"
done
grep -q 'model base unloaded with the last adapter on it' "$FT_TMP/ftuned.log" &&
	pass "the base is unloaded with its last adapter" || fail "the base stayed loaded"
daemon_stop
expect_eq "$FT_EXIT" "0" "clean shutdown"
finish
