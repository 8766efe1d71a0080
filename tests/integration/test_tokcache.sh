#!/bin/bash
# test_tokcache.sh - the token cache (daemon/tokcache.c) through the real
# daemon: a second job on the same dataset and base reuses the first job's
# tokens and ends at the same loss; truncated and bit-flipped cache files
# are detected, deleted and rebuilt, and the job still ends at that loss;
# a CPT job reuses its packed documents the same way; ftctl data show
# lists the tokens per tokenizer as the dashboard API counts them; data rm
# deletes the dataset's entries; token_cache_max evicts the least recently
# used entry.
set -u
. "$FT_SRC/tests/integration/lib.sh"

assets_require llama2c/stories260K.bin
if ! command -v jq >/dev/null || ! command -v curl >/dev/null; then
	echo "SKIP: jq and curl are needed (scripts/setup.sh installs them)"
	exit 77
fi
F=$FT_BIN/client/ftctl
CACHE=$FT_STATE/cache/tokens
FT_MAX_MESSAGE=16M
FT_CONF_EXTRA="import_roots = $assets:$FT_TMP\ntraining_threads = 1\n"
daemon_start

$F model import "$assets/llama2c/stories260K.bin" --tokenizer "$assets/llama2c/tok512.bin" \
	>/dev/null || fail "model import"
awk 'NF > 3 && length($0) < 60 { if (prev != "") { gsub(/["\\]/, "", prev); gsub(/["\\]/, "");
	printf "{\"instruction\": \"Continue.\", \"input\": \"%s\", \"output\": \"%s\"}\n", prev, $0;
	n++ } prev = $0 } n == 120 { exit }' "$assets/corpora/tinyshakespeare/input.txt" > "$FT_TMP/lines.jsonl"
$F data add "$FT_TMP/lines.jsonl" --kind instruct --validation-split 0.1 --name lines >/dev/null ||
	fail "data add"
# data ls, not data show: data show would fill the cache (with its Alpaca
# template, the jobs' default) before the first job.
blake2b() { $F data ls --json | jq -r ".datasets[] | select(.name == \"$1\") | .blake2b"; }
hash=$(blake2b lines)

# run_job ARGS...: submits, waits for success, prints the job id.
run_job() {
	local id
	id=$($F job submit --base stories260K --max-steps 6 --batch-size 8 --seq-len 48 --seed 5 \
		--method lora "$@" | sed -n 's/^job \([0-9]*\) .*/\1/p')
	[ "$(job_wait "$id" 300)" = SUCCEEDED ] || fail "job $id ($*) succeeds: $($F job logs "$id" | tail -3)"
	echo "$id"
}
loss() { job_field "$1" loss; }

# --- a second job reuses the first one's tokens ---
j1=$(run_job --data lines --type sft)
expect_eq "$($F job logs "$j1" | grep -c 'reused from the cache')" "0" "first job: nothing cached yet"
expect_eq "$(ls "$CACHE" | grep -c "^$hash-.*\.bin$")" "2" "first job: training and validation parts cached"
j2=$(run_job --data lines --type sft)
expect_match "$($F job logs "$j2")" "tokenized rows reused from the cache \(training and validation\)" \
	"second job: reuse logged"
expect_eq "$(loss "$j2")" "$(loss "$j1")" "second job: same final loss"
# A different seq_len cuts the same cached tokens into other rows.
j2b=$(run_job --data lines --type sft --seq-len 32)
expect_match "$($F job logs "$j2b")" "reused from the cache" "another seq_len reuses the tokens"

# --- damaged entries are never trusted ---
sizes=$(stat -c %s "$CACHE/$hash"-*.bin | sort | tr '\n' ' ')
set -- "$CACHE/$hash"-*.bin
truncate -s 200 "$1"
printf '\x7f' | dd of="$2" bs=1 seek=$(($(stat -c %s "$2") - 3)) conv=notrunc status=none
j3=$(run_job --data lines --type sft)
logs=$($F job logs "$j3")
expect_match "$logs" "cached tokens of .*unusable \([0-9]+ payload bytes for" "truncated entry detected"
expect_match "$logs" "cached tokens of .*unusable \(checksum mismatch\)" "bit flip detected"
expect_eq "$(printf '%s' "$logs" | grep -c 'reused from the cache')" "0" "damaged entries not used"
expect_eq "$(loss "$j3")" "$(loss "$j1")" "rebuilt: same final loss"
expect_eq "$(stat -c %s "$CACHE/$hash"-*.bin | sort | tr '\n' ' ')" "$sizes" "entries rebuilt"
expect_match "$(cat "$FT_TMP/ftuned.log")" "tokcache: .* unusable \(checksum mismatch\); deleted" \
	"the daemon log names the damaged file"

# --- continued pre-training reuses packed documents ---
head -c 20000 "$assets/corpora/tinyshakespeare/input.txt" > "$FT_TMP/play.txt"
$F data add "$FT_TMP/play.txt" --kind text --name play >/dev/null || fail "data add text"
c1=$(run_job --data play --type cpt)
c2=$(run_job --data play --type cpt)
expect_match "$($F job logs "$c2")" "tokenized rows reused from the cache \(training\)" "cpt: reuse logged"
expect_eq "$(loss "$c2")" "$(loss "$c1")" "cpt: same final loss"

# --- data show: tokens per tokenizer, as the dashboard counts them ---
show=$($F data show lines --json)
tc=$(jq -c '.token_counts[0]' <<<"$show")
# The tuned models keep their base's tokenizer: one tokenizer, every model.
expect_eq "$(jq -r '.token_counts | length' <<<"$show")" "1" "data show: one tokenizer"
expect_eq "$(jq -r '.models | length' <<<"$tc")" "$($F model ls --json | jq '.models | length')" \
	"data show: every model using it"
expect_eq "$(jq -r '.models[0] | "\(.model) \(.context) \(.over_context)"' <<<"$tc")" "stories260K 512 0" \
	"data show: the model's context length"
expect_eq "$(jq -r .counted <<<"$tc")" "$(jq -r .records <<<"$show")" "data show: every record counted"
url=$(json_get "$($F status --json)" http_url)
api=$(curl -s "${url%/}/api/v1/datasets/lines/tokens?model=stories260K")
expect_eq "$(jq -c '[.counted, .tokens, .max]' <<<"$api")" "$(jq -c '[.counted, .tokens, .max_tokens]' <<<"$tc")" \
	"data show: counts equal the dashboard API's"
expect_eq "$(jq -r '.mean - '"$(jq -r .mean_tokens <<<"$tc")"' | fabs < 1e-9' <<<"$api")" "true" \
	"data show: mean equals the dashboard API's"
[ "$(jq -r .tokens <<<"$tc")" -gt "$(jq -r .counted <<<"$tc")" ] && pass "data show: tokens counted" ||
	fail "data show: no tokens"
human=$($F data show lines)
expect_match "$human" "tokens +through the template alpaca" "data show: tokens line"
expect_match "$human" "TOKENIZER +MODEL +CONTEXT +RECORDS +TOKENS +MEAN +MAX +OVER CONTEXT" "data show: table head"
expect_match "$human" "$(jq -r .tokenizer <<<"$tc" | cut -c1-12) +stories260K +512 +$(jq -r .counted <<<"$tc") +$(jq -r .tokens <<<"$tc") " \
	"data show: table row"

# --- data rm deletes the dataset's entries, not the others' ---
play=$(blake2b play)
$F data rm lines >/dev/null || fail "data rm"
expect_eq "$(ls "$CACHE" | grep -c "^$hash-")" "0" "data rm: its entries deleted"
expect_eq "$(ls "$CACHE" | grep -c "^$play-")" "1" "data rm: other datasets' entries kept"

# --- token_cache_max: least recently used first ---
daemon_stop
FT_CONF_EXTRA="${FT_CONF_EXTRA}token_cache_max = $(($(stat -c %s "$CACHE/$play"-*.bin) + 1000))\n"
daemon_start
head -10 "$FT_TMP/lines.jsonl" > "$FT_TMP/few.jsonl"   # tokens smaller than play's
$F data add "$FT_TMP/few.jsonl" --kind instruct --name lines2 >/dev/null || fail "data add again"
lines2=$(blake2b lines2)
run_job --data lines2 --type sft >/dev/null
expect_eq "$(ls "$CACHE" | grep -c "^$play-")" "0" "token_cache_max: the older entry evicted"
expect_eq "$(ls "$CACHE" | grep -c "^$lines2-")" "1" "token_cache_max: the new entry kept"
finish
