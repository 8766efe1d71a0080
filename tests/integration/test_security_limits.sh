#!/bin/bash
# test_security_limits.sh - what one user sends cannot forge the log or take
# what belongs to everyone: a name with a newline does not become a log line
# of its own, a huge name is not logged whole, names over 100 characters are
# refused (not cut), model init and dataset add over the user's quota are
# refused before a byte is written, status shows the usage, and a chat
# template whose loops nest over the messages is refused at import while a
# request over the render budget is refused alone; the daemon serves on.
set -u
. "$FT_SRC/tests/integration/lib.sh"

assets_require hf/tiny-gpt2/model.safetensors hf/tiny-gpt2/tokenizer.json
command -v curl >/dev/null && command -v jq >/dev/null || { echo "SKIP: needs curl and jq"; exit 77; }
F=$FT_BIN/client/ftctl
FT_MAX_MESSAGE=16M
FT_CONF_EXTRA="import_roots = $assets:$FT_TMP\nquota_bytes_per_user = 12M\nquota_datasets_per_user = 2\n"
daemon_start
log=$FT_TMP/ftuned.log
serving() { $F status >/dev/null || fail "the daemon stopped answering after: $1"; }

# --- the log: escaped, values cut ---
forged='2026-01-01T00:00:00.000Z error: FORGED by a name'
$F model show "nope
$forged" >/dev/null 2>&1 && fail "model show of a missing model succeeded"
serving "a name with a newline"
grep -q "^$forged" "$log" && fail "a name with a newline wrote a log line of its own"
pass "a name with a newline forges no log line"
expect_eq "$(grep -c "nope\\\\n$forged" "$log")" "1" "the newline is logged escaped"
long=$(head -c 100000 /dev/zero | tr '\0' a)
$F model show "$long" >/dev/null 2>&1 && fail "model show of a 100 KB name succeeded"
serving "a 100 KB name"
run=$(grep -o 'aaaa*' "$log" | awk '{ if (length($0) > m) m = length($0) } END { print m + 0 }')
[ "$run" -ge 100 ] && [ "$run" -le 256 ] && pass "a 100 KB name is logged cut to 256 bytes" ||
	fail "a 100 KB name left a run of $run bytes in the log"

# --- names over 100 characters are refused, not cut ---
printf '{"instruction": "say hi", "output": "hello"}\n{"instruction": "say bye", "output": "bye"}\n' \
	> "$FT_TMP/small.jsonl"
name101=$(head -c 101 /dev/zero | tr '\0' n)
msg=$($F data add "$FT_TMP/small.jsonl" --kind instruct --name "$name101" 2>&1) &&
	fail "data add --name of 101 characters succeeded"
expect_match "$msg" "name must be 1 to 100 characters" "data add: a 101-character name is refused"
msg=$($F data add "$FT_TMP/small.jsonl" --kind instruct --name "$long" 2>&1) &&
	fail "data add --name of 100 KB succeeded"
expect_match "$msg" "name must be 1 to 100 characters" "data add: a 100 KB name is refused"
expect_eq "$($F data ls --json | jq '.datasets | length')" "0" "no dataset stored under a cut name"
$F model import "$assets/hf/tiny-gpt2" --name tiny >/dev/null || fail "model import"
msg=$($F deploy tiny --name "$name101" 2>&1) && fail "deploy --name of 101 characters succeeded"
expect_match "$msg" "name must be 1 to 100 characters" "deploy: a 101-character name is refused"
expect_eq "$($F deploy ls --json | jq '.deploys | length')" "0" "nothing deployed under a cut name"

# --- chat templates: nested loops refused at import, budget per request ---
nest3='{% for a in messages %}{% for b in messages %}{% for c in messages %}x{% endfor %}{% endfor %}{% endfor %}'
gated="{% for a in messages %}{% if a.content == 'boom' %}{% for b in messages %}{% for c in messages %}"
gated="$gated{% endfor %}{% endfor %}{% endif %}{{ a.role }}: {{ a.content }}
{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}"
# model_dir DIR TEMPLATE: tiny-gpt2 with TEMPLATE as its chat template.
model_dir() {
	mkdir -p "$1" && cp "$assets"/hf/tiny-gpt2/* "$1"/ && chmod u+w "$1"/*
	jq --arg t "$2" '.chat_template = $t' "$assets/hf/tiny-gpt2/tokenizer_config.json" \
		> "$1/tokenizer_config.json"
}
model_dir "$FT_TMP/nest3" "$nest3"
t0=$(date +%s%N)
msg=$($F model import "$FT_TMP/nest3" --name nest3 2>&1) && fail "a template nesting three loops imported"
t1=$(date +%s%N)
expect_match "$msg" "chat template exceeded its budget of 100000 loop iterations" \
	"import refuses a template nesting three loops over messages"
[ $(((t1 - t0) / 1000000)) -lt 5000 ] && pass "the probe took $(((t1 - t0) / 1000000)) ms" ||
	fail "the import probe took $(((t1 - t0) / 1000000)) ms"
mkdir -p "$FT_TMP/tok3" && cp "$assets/hf/tiny-gpt2/tokenizer.json" "$FT_TMP/nest3/tokenizer_config.json" "$FT_TMP/tok3/"
msg=$($F model init nest3init --tokenizer "$FT_TMP/tok3/tokenizer.json" --layers 1 --dim 8 --heads 2 2>&1) &&
	fail "model init took a tokenizer folder with a template nesting three loops"
expect_match "$msg" "exceeded its budget of 100000 loop iterations" "model init refuses the same template"
serving "the nested-loop imports"
model_dir "$FT_TMP/gated" "$gated"
$F model import "$FT_TMP/gated" --name gated >/dev/null || fail "a template within budget on the probe imported"
$F deploy gated >/dev/null || fail "deploy gated"
url=$(json_get "$($F status --json)" http_url)v1/chat/completions
boom=$(jq -nc '{model: "gated", max_tokens: 2, messages: [range(64) | {role: "user", content: "boom"}]}')
out=$(curl -s -w '\n%{http_code}' -H 'Content-Type: application/json' -d "$boom" "$url")
expect_eq "$(printf '%s' "$out" | tail -n 1)" "400" "a request over the template's budget is a 400"
expect_match "$(printf '%s' "$out" | sed '$d' | jq -r .error.message)" \
	"chat template exceeded its budget of 100000 loop iterations" "and says which budget"
ok=$(jq -nc '{model: "gated", max_tokens: 2, messages: [{role: "user", content: "hi"}]}')
expect_eq "$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' -d "$ok" "$url")" \
	"200" "the next request is served"
serving "the over-budget request"

# --- quotas: 12 MiB and 2 datasets; two models of 3.9 MB stored ---
awk 'BEGIN { for (i = 0; i < 100000; i++) printf "{\"instruction\": \"count %d\", \"output\": \"n %d\"}\n", i, i }' \
	> "$FT_TMP/big.jsonl"
msg=$($F data add "$FT_TMP/big.jsonl" --kind instruct --name big 2>&1) && fail "a dataset over the byte quota was added"
expect_match "$msg" "RESOURCE_EXHAUSTED" "dataset add over the byte quota is RESOURCE_EXHAUSTED"
expect_match "$msg" "stores 7\.[0-9] MiB; this dataset needs [0-9.]+ MiB more, over the limit of 12\.0 MiB" \
	"and names what is used and the limit"
$F data add "$FT_TMP/small.jsonl" --kind instruct --name one >/dev/null || fail "data add one"
$F data add "$FT_TMP/small.jsonl" --kind instruct --name two >/dev/null || fail "data add two"
msg=$($F data add "$FT_TMP/small.jsonl" --kind instruct --name three 2>&1) && fail "a third dataset was added"
expect_match "$msg" "has 2 datasets, the most allowed \(quota_datasets_per_user = 2\)" "the dataset count quota"
before=$(du -sb --exclude='ftuned.db*' --exclude='audit.*' "$FT_STATE" | cut -f1)
msg=$($F model init big --tokenizer "$assets/hf/tiny-gpt2/tokenizer.json" --layers 8 --dim 512 --heads 8 2>&1) &&
	fail "a 200 MB model init over the quota succeeded"
expect_match "$msg" "this model needs [0-9.]+ MiB more, over the limit of 12\.0 MiB" "model init over quota refused"
expect_eq "$(du -sb --exclude='ftuned.db*' --exclude='audit.*' "$FT_STATE" | cut -f1)" "$before" "nothing written by the refused init"
msg=$($F model init huge --tokenizer "$assets/hf/tiny-gpt2/tokenizer.json" --layers 2 --dim 64 --heads 2 \
	--ffn 4000000000 2>&1) && fail "an ffn of 4e9 was accepted"
expect_match "$msg" "model shape out of range" "model init bounds --ffn"
serving "the refusals over quota"

json=$($F status --json) || fail "status --json"
expect_eq "$(printf '%s' "$json" | jq -c '.usage | [.models, .datasets, .bytes_limit, .models_limit, .datasets_limit]')" \
	"[2,2,12582912,100,2]" "status --json shows usage and limits"
expect_eq "$(printf '%s' "$json" | jq '.usage.bytes > 7000000 and .usage.bytes < 9000000')" "true" \
	"status counts the stored bytes"
out=$($F status)
expect_match "$out" "storage    7\.[0-9] MiB of 12 MiB" "status shows storage against the quota"
expect_match "$out" "datasets   2 of 2" "status shows datasets against the quota"

# A job is checked at submission for the model it will register: with
# 100 KB left, full tuning of tiny-gpt2 (0.4 MiB of weights) is refused.
daemon_stop
FT_CONF_EXTRA="import_roots = $assets:$FT_TMP\nquota_bytes_per_user = $(($(printf '%s' "$json" | jq .usage.bytes) + 100000))\n"
daemon_start
msg=$($F job submit --base tiny --data one --type sft --method full --max-steps 2 --seq-len 16 --batch-size 1 2>&1) &&
	fail "a job whose model would exceed the quota was queued"
expect_match "$msg" "RESOURCE_EXHAUSTED: quota: uid [0-9]+ stores 7\.[0-9] MiB; this model needs 0\.[0-9] MiB more" \
	"job submission checks the tuned model against the quota"
expect_eq "$(json_get "$($F status --json)" queue_length)" "0" "nothing queued"
finish
