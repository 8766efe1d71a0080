#!/bin/bash
# test_security_serve.sh - serving that a client leaves, and the dear
# dashboard token count, against a real daemon: a non-streamed
# /v1/completions whose client disconnects stops generating (its key is
# billed far less than max_tokens, logged 499), an aborted stream is
# billed for the tokens it made (more than the prompt, at least one per
# chunk received); both clients leave after an eighth of the time a run to
# the end takes, which makes max_tokens; GET /api/v1/datasets/X/tokens tokenizes one uncached form at
# a time (concurrent other templates get 503) and answers a repeated one
# from memory, many times faster.
set -u
. "$FT_SRC/tests/integration/lib.sh"

assets_require tokenizers/smollm2-135m-instruct/tokenizer.json corpora/tinyshakespeare/input.txt
command -v curl >/dev/null && command -v jq >/dev/null || { echo "SKIP: needs curl and jq"; exit 77; }
F=$FT_BIN/client/ftctl
FT_CONF_EXTRA="import_roots = $assets\nserve_threads = 2\n"
daemon_start
api=$(json_get "$($F status --json)" http_url)
api=${api%/}
code_of() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
# A few tens of tokens a second here: max_tokens takes many seconds.
"$F" --timeout 60000 model init big --tokenizer "$assets/tokenizers/smollm2-135m-instruct/tokenizer.json" \
	--layers 4 --dim 256 --heads 4 --seq-len 1024 >/dev/null || fail "model init"
$F deploy big >/dev/null || fail "deploy"
M=400
req() { printf '{"model": "big", "prompt": "Once upon a time", "max_tokens": %d, "temperature": 0%s}' "$1" "${2:-}"; }
# key_tokens NAME: the tokens billed to key NAME once its request is counted.
key_tokens() {
	local k
	for _ in $(seq 1 300); do
		k=$($F key ls --json | jq -r ".keys[] | select(.name == \"$1\") | \"\(.requests) \(.tokens)\"")
		[ "${k%% *}" = 1 ] && { echo "${k#* }"; return; }
		sleep 0.2
	done
	echo "never counted"
}

# --- the reference: run to the end, max_tokens made ---
kref=$($F key create --name ref 2>/dev/null) || fail "key create"
# Loaded first, so that the time below is generation only.
curl -s -H 'Content-Type: application/json' -d "$(req 1)" "$api/v1/completions" >/dev/null
t0=$(date +%s%N)
r=$(curl -s -H 'Content-Type: application/json' -H "Authorization: Bearer $kref" -d "$(req $M)" "$api/v1/completions")
full_ms=$((($(date +%s%N) - t0) / 1000000))
P=$(echo "$r" | jq .usage.prompt_tokens)
expect_eq "$(echo "$r" | jq -r '[.usage.completion_tokens, .choices[0].finish_reason] | join(",")')" "$M,length" \
	"a request run to the end makes max_tokens ($M, in $full_ms ms)"
expect_eq "$(key_tokens ref)" "$((P + M))" "and is billed prompt and completion"

# Clients below leave after an eighth of that time.
leave=$(awk -v ms="$full_ms" 'BEGIN { printf "%.2f", ms / 8000 }')

# --- a non-streamed request whose client leaves ---
kgone=$($F key create --name gone 2>/dev/null) || fail "key create"
curl -s --max-time "$leave" -H 'Content-Type: application/json' -H "Authorization: Bearer $kgone" \
	-d "$(req $M)" "$api/v1/completions" >/dev/null
t=$(key_tokens gone)
[[ "$t" =~ ^[0-9]+$ ]] && [ "$t" -lt $((P + M / 2)) ] &&
	pass "a non-streamed request stops when its client leaves after $leave s: billed $t tokens of $((P + M))" ||
	fail "a left non-streamed request billed $t tokens, want fewer than $((P + M / 2))"
expect_match "$(cat "$FT_TMP/ftuned.log")" "http: uid 0 POST /v1/completions -> 499" "logged as 499"

# --- a stream its client aborts ---
kstream=$($F key create --name stream 2>/dev/null) || fail "key create"
curl -s -N --max-time "$leave" -H 'Content-Type: application/json' -H "Authorization: Bearer $kstream" \
	-d "$(req $M ', "stream": true')" "$api/v1/completions" > "$FT_TMP/stream.out"
chunks=$(grep -c '^data: {' "$FT_TMP/stream.out")
t=$(key_tokens stream)
[ "$chunks" -gt 0 ] || fail "the stream sent no chunk in $leave s"
[[ "$t" =~ ^[0-9]+$ ]] && [ "$t" -ge $((P + chunks)) ] && [ "$t" -lt $((P + M / 2)) ] &&
	pass "an aborted stream is billed what it made: $t tokens ($P prompt, $chunks chunks received)" ||
	fail "an aborted stream billed $t tokens: want at least $((P + chunks)) ($P prompt, $chunks chunks) and fewer than $((P + M / 2))"

# --- dataset token counts: one uncached form at a time, repeats from memory ---
# More records than the token cache keeps (TOKCACHE_COUNT_MAX, 20000):
# each template value is counted afresh, most of a second here.
awk 'NF > 2 { gsub(/["\\]/, ""); if (prev != "") printf "{\"instruction\": \"%s\", \"output\": \"%s\"}\n", prev, $0;
	prev = $0 }' "$assets/corpora/tinyshakespeare/input.txt" > "$FT_TMP/lines.jsonl"
$F data add "$FT_TMP/lines.jsonl" --kind instruct --name lines >/dev/null 2>&1 || fail "data add"
# tokens_get T: "status milliseconds" of the count with template T{instruction}; the body in $FT_TMP/tok.T.
tokens_get() {
	curl -s --max-time 60 -o "$FT_TMP/tok.$1" -w '%{http_code} %{time_total}' \
		"$api/api/v1/datasets/lines/tokens?model=big&template=$1%7Binstruction%7D" |
		awk '{ printf "%s %d", $1, $2 * 1000 }'
}
pids=()
for t in A B C D; do
	tokens_get $t > "$FT_TMP/tok.$t.code" &
	pids+=($!)
done
wait "${pids[@]}"
codes=$(for t in A B C D; do cut -d' ' -f1 "$FT_TMP/tok.$t.code"; done | sort | uniq -c | tr -s ' \n' ' ')
first=$(for t in A B C D; do grep -q '^200 ' "$FT_TMP/tok.$t.code" && echo $t; done | head -n 1)
busy=$(for t in A B C D; do grep -q '^503 ' "$FT_TMP/tok.$t.code" && echo $t; done | head -n 1)
[ -n "$first" ] && [ -n "$busy" ] && [[ "$codes" =~ ^\ *[0-9]+\ 200\ [0-9]+\ 503\ *$ ]] &&
	pass "four uncached templates at once: one counted at a time, the others 503 ($codes)" ||
	fail "four uncached templates at once: $codes"
expect_eq "$(jq -r .error.message "$FT_TMP/tok.$busy")" \
	"the dashboard is counting another dataset's tokens; retry in a moment" "the 503 says why"
expect_eq "$(jq -c '[.records, .counted]' "$FT_TMP/tok.$first")" "[25598,20000]" \
	"the count stops at 20000 records"
t1=$(cut -d' ' -f2 "$FT_TMP/tok.$first.code")
cp "$FT_TMP/tok.$first" "$FT_TMP/tok.first"
read -r code t2 <<<"$(tokens_get "$first")"
[ "$code" = 200 ] && cmp -s "$FT_TMP/tok.$first" "$FT_TMP/tok.first" && [ $((3 * t2)) -lt "$t1" ] &&
	pass "the same template again is answered from memory: $t2 ms against $t1 ms" ||
	fail "the same template again: $code in $t2 ms against $t1 ms"
read -r code _ <<<"$(tokens_get "$busy")"
expect_eq "$code" 200 "a refused template is counted once the other is done"
expect_eq "$(code_of "$api/api/v1/status")" 200 "the dashboard still serves"
finish
