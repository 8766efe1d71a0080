#!/bin/bash
# test_deploy.sh - the OpenAI-compatible API over real HTTP: deploy
# stories260K and a LoRA-tuned model, call /v1/completions and
# /v1/chat/completions (streamed and not) and compare with ftctl generate
# at the same seed; malformed JSON, unknown models, bad parameters, an
# oversized body and a burst beyond the serving queue get OpenAI-shaped
# errors while the server keeps serving; API keys when they are required
# (missing, valid, revoked) with usage counted; idle models unloaded; the
# openai npm package as a client when it can be installed; serving yields
# memory to training (a job unloads the model, a request that does not fit
# waits and gets 503, or is served once the job ends).
set -u
. "$FT_SRC/tests/integration/lib.sh"

assets_require llama2c/stories260K.bin
command -v curl >/dev/null && command -v jq >/dev/null || { echo "SKIP: needs curl and jq"; exit 77; }
F=$FT_BIN/client/ftctl
FT_MAX_MESSAGE=16M
conf="import_roots = $assets:$FT_TMP\ntraining_threads = 2\nhttp_threads = 16\nserve_threads = 1\n"
conf="${conf}serve_queue_max = 1\nserve_max_body = 64K\n"
FT_CONF_EXTRA=$conf
daemon_start
url=$(json_get "$($F status --json)" http_url)v1
expect_match "$url" '^http://127\.0\.0\.1:[0-9]+/v1$' "HTTP API listening"

# post PATH JSON [curl args]: prints the body, then the status on its own line.
post() {
	local path=$1 body=$2
	shift 2
	curl -s -w '\n%{http_code}' -H 'Content-Type: application/json' "$@" -d "$body" "$url$path"
}
status_of() { printf '%s' "$1" | tail -n 1; }
body_of() { printf '%s' "$1" | sed '$d'; }
# sse_text OUTPUT FIELD: the streamed text, joined from every data: chunk.
sse_text() {
	printf '%s' "$1" | sed -n 's/^data: \({.*\)$/\1/p' | jq -j "$2 // empty"
}

# --- models: a base and a LoRA-tuned one ---
$F model import "$assets/llama2c/stories260K.bin" --tokenizer "$assets/llama2c/tok512.bin" >/dev/null ||
	fail "model import"
awk 'NF > 3 && length($0) < 60 { if (prev != "") { gsub(/["\\]/, "", prev); gsub(/["\\]/, "");
	printf "{\"instruction\": \"Continue.\", \"input\": \"%s\", \"output\": \"%s\"}\n", prev, $0;
	n++ } prev = $0 } n == 120 { exit }' "$assets/corpora/tinyshakespeare/input.txt" > "$FT_TMP/lines.jsonl"
$F data add "$FT_TMP/lines.jsonl" --kind instruct --name lines >/dev/null || fail "data add"
job=$($F job submit --base stories260K --data lines --type sft --method lora --lora-rank 4 \
	--max-steps 8 --seq-len 64 --batch-size 4 --lr 0.01 --name tuned-lora |
	sed -n 's/^job \([0-9]*\) .*/\1/p')
expect_eq "$(job_wait "$job" 300)" "SUCCEEDED" "LoRA job trained"

out=$($F deploy stories260K) || fail "deploy stories260K"
expect_match "$out" "deployed stories260K as stories260K at $url" "deploy prints the API URL"
$F deploy tuned-lora --name tuned >/dev/null || fail "deploy the tuned model under an alias"
msg=$($F deploy stories260K 2>&1)
expect_match "$msg" "ALREADY_EXISTS" "a second deployment under the same name is refused"
msg=$($F deploy no-such-model 2>&1)
expect_match "$msg" "NOT_FOUND" "deploying an unknown model is refused"
ls=$($F deploy ls --json)
expect_eq "$(printf '%s' "$ls" | jq -r '[.deploys[].name] | join(",")')" "stories260K,tuned" "deploy ls"
expect_eq "$(printf '%s' "$ls" | jq -r '[.deploys[].loaded] | any')" "false" "nothing loaded before a request"

r=$(curl -s -w '\n%{http_code}' "$url/models")
expect_eq "$(status_of "$r")" "200" "GET /v1/models"
expect_eq "$(body_of "$r" | jq -r '[.data[].id] | join(",")')" "stories260K,tuned" "models listed"

# --- outputs equal ftctl generate, greedy, same seed ---
for pair in stories260K:stories260K tuned:tuned-lora; do
	model=${pair%%:*} registered=${pair#*:}
	want=$($F generate "$registered" "Once upon a time" --raw --max-new-tokens 40 --seed 7 2>/dev/null) ||
		fail "ftctl generate $model"
	r=$(post /completions "{\"model\": \"$model\", \"prompt\": \"Once upon a time\", \"max_tokens\": 40, \"temperature\": 0, \"seed\": 7}")
	expect_eq "$(status_of "$r")" "200" "$model: completion"
	got=$(body_of "$r" | jq -r '.choices[0].text')
	expect_eq "$got" "$want" "$model: completion equals ftctl generate --raw"
	expect_match "$(body_of "$r" | jq -c '[.object, .usage.prompt_tokens > 0, .usage.completion_tokens, .choices[0].finish_reason]')" \
		'^\["text_completion",true,[0-9]+,"(stop|length)"\]$' "$model: completion shape and usage"
	r=$(post /completions "{\"model\": \"$model\", \"prompt\": \"Once upon a time\", \"max_tokens\": 40, \"temperature\": 0, \"seed\": 7, \"stream\": true, \"stream_options\": {\"include_usage\": true}}" -N)
	expect_eq "$(sse_text "$r" '.choices[0].text')" "$want" "$model: streamed completion equals it"
	expect_eq "$(printf '%s' "$r" | grep -c '^data: \[DONE\]$')" "1" "$model: stream ends with [DONE]"
	expect_match "$(printf '%s' "$r" | sed -n 's/^data: \({.*"usage".*\)$/\1/p' | jq -c '.usage.completion_tokens')" '^[0-9]+$' \
		"$model: usage chunk with stream_options.include_usage"

	want=$($F generate "$registered" "Tell me a story about a cat." --max-new-tokens 30 --seed 3 2>/dev/null) ||
		fail "ftctl generate $model (template)"
	chat="{\"model\": \"$model\", \"messages\": [{\"role\": \"user\", \"content\": \"Tell me a story about a cat.\"}], \"max_tokens\": 30, \"temperature\": 0, \"seed\": 3"
	r=$(post /chat/completions "$chat}")
	expect_eq "$(status_of "$r")" "200" "$model: chat completion"
	expect_eq "$(body_of "$r" | jq -r '.choices[0].message.content')" "$want" \
		"$model: chat equals ftctl generate in the Alpaca template"
	expect_eq "$(body_of "$r" | jq -r '.object + " " + .choices[0].message.role')" "chat.completion assistant" \
		"$model: chat completion shape"
	r=$(post /chat/completions "$chat, \"stream\": true}" -N)
	expect_eq "$(sse_text "$r" '.choices[0].delta.content')" "$want" "$model: streamed chat equals it"
	expect_eq "$(printf '%s' "$r" | sed -n 's/^data: \({.*\)$/\1/p' | head -n 1 | jq -r '.object + " " + .choices[0].delta.role')" \
		"chat.completion.chunk assistant" "$model: first chat chunk carries the role"
done
expect_eq "$($F deploy ls --json | jq -r '[.deploys[].loaded] | all')" "true" "models loaded on first use"

# Sampling with a seed is reproducible; stop strings end the text.
s1=$(post /completions '{"model": "stories260K", "prompt": "Once", "max_tokens": 30, "temperature": 0.9, "top_p": 0.9, "seed": 11}' | sed '$d' | jq -r '.choices[0].text')
s2=$(post /completions '{"model": "stories260K", "prompt": "Once", "max_tokens": 30, "temperature": 0.9, "top_p": 0.9, "seed": 11}' | sed '$d' | jq -r '.choices[0].text')
expect_eq "$s1" "$s2" "same seed, same sample"
full=$(post /completions '{"model": "stories260K", "prompt": "Once upon a time", "max_tokens": 40, "temperature": 0}' | sed '$d' | jq -r '.choices[0].text')
word=$(printf '%s' "$full" | awk '{ print $3 }')
r=$(post /completions "{\"model\": \"stories260K\", \"prompt\": \"Once upon a time\", \"max_tokens\": 40, \"temperature\": 0, \"stop\": [\"$word\"]}")
want=${full%%"$word"*}
expect_eq "$(body_of "$r" | jq -r '.choices[0].text + "|" + .choices[0].finish_reason')" "$want|stop" \
	"stop string '$word' cuts the text"
r=$(post /completions "{\"model\": \"stories260K\", \"prompt\": \"Once upon a time\", \"max_tokens\": 40, \"temperature\": 0, \"stop\": \"$word\", \"stream\": true}" -N)
expect_eq "$(sse_text "$r" '.choices[0].text')" "$want" "stop string cuts the stream too"

# --- errors in OpenAI's shape; the server keeps serving ---
check_error() {  # RESPONSE STATUS TYPE LABEL
	expect_eq "$(status_of "$1")" "$2" "$4: HTTP $2"
	expect_eq "$(body_of "$1" | jq -r '.error.type + " " + (.error.message | length > 0 | tostring) + " " + (has("error") and (.error | has("param") and has("code")) | tostring)')" \
		"$3 true true" "$4: error shape"
}
check_error "$(post /completions '{"model": "stories260K", "prompt": ')" 400 invalid_request_error "malformed JSON"
check_error "$(post /completions '[1, 2]')" 400 invalid_request_error "a body that is not an object"
r=$(post /completions '{"model": "nope", "prompt": "Hi"}')
check_error "$r" 404 invalid_request_error "unknown model"
expect_eq "$(body_of "$r" | jq -r .error.code)" "model_not_found" "unknown model: code"
r=$(post /completions '{"model": "stories260K", "prompt": "Hi", "n": 2}')
check_error "$r" 400 invalid_request_error "n = 2"
expect_eq "$(body_of "$r" | jq -r .error.param)" "n" "n = 2: param named"
check_error "$(post /completions '{"model": "stories260K", "prompt": "Hi", "temperature": 3}')" 400 \
	invalid_request_error "temperature out of range"
check_error "$(post /chat/completions '{"model": "stories260K", "messages": []}')" 400 \
	invalid_request_error "empty messages"
check_error "$(post /chat/completions '{"model": "stories260K", "messages": [{"role": "wizard", "content": "x"}]}')" 400 \
	invalid_request_error "bad role"
long=$(printf 'a %.0s' $(seq 1 700))
check_error "$(post /completions "{\"model\": \"stories260K\", \"prompt\": \"$long\"}")" 400 \
	invalid_request_error "prompt longer than the context"
head -c 100000 /dev/zero | tr '\0' 'a' | sed 's/^/{"model": "stories260K", "prompt": "/; s/$/"}/' > "$FT_TMP/big.json"
r=$(curl -s -w '\n%{http_code}' -H 'Content-Type: application/json' --data-binary @"$FT_TMP/big.json" "$url/completions")
check_error "$r" 413 invalid_request_error "oversized body"
r=$(curl -s -w '\n%{http_code}' -X DELETE "$url/completions")
check_error "$r" 405 invalid_request_error "DELETE /v1/completions"
r=$(curl -s -w '\n%{http_code}' "$url/nothing")
check_error "$r" 404 invalid_request_error "unknown path"

# One serving thread and a queue of one: a burst gets 429s, not a pile-up.
pids=
for i in $(seq 1 12); do
	post /completions '{"model": "stories260K", "prompt": "Once upon a time", "max_tokens": 480, "temperature": 0.8}' \
		> "$FT_TMP/burst.$i" &
	pids="$pids $!"
done
wait $pids
ok=0 busy=0
for i in $(seq 1 12); do
	case "$(tail -n 1 "$FT_TMP/burst.$i")" in
	200) ok=$((ok + 1)) ;;
	429) busy=$((busy + 1))
	     expect_eq "$(sed '$d' "$FT_TMP/burst.$i" | jq -r .error.code)" "rate_limit_exceeded" "429 in OpenAI's shape" ;;
	esac
done
[ "$ok" -ge 1 ] && [ "$busy" -ge 1 ] && [ $((ok + busy)) -eq 12 ] &&
	pass "burst of 12: $ok served, $busy refused with 429" || fail "burst of 12: $ok served, $busy refused"
r=$(post /completions '{"model": "stories260K", "prompt": "Once upon a time", "max_tokens": 40, "temperature": 0, "seed": 7}')
expect_eq "$(status_of "$r")" "200" "still serving after the errors and the burst"

# --- undeploy ---
out=$($F undeploy tuned) || fail "undeploy"
check_error "$(post /completions '{"model": "tuned", "prompt": "Hi"}')" 404 invalid_request_error "undeployed model"
expect_eq "$($F deploy ls --json | jq -r '[.deploys[].name] | join(",")')" "stories260K" "deploy ls after undeploy"

# --- keys: required by configuration; usage counted; revocation ---
key=$($F key create --name ci 2>/dev/null) || fail "key create"
expect_match "$key" '^ft-[A-Za-z0-9_-]{43}$' "key printed once"
! grep -q -- "$key" "$FT_STATE/ftuned.db" && pass "only the key's hash is stored" || fail "key stored in clear"
msg=$($F key create --name ci 2>&1)
expect_match "$msg" "ALREADY_EXISTS" "a second active key with the same name is refused"
daemon_stop
logpos=$(wc -l < "$FT_TMP/ftuned.log")
FT_CONF_EXTRA="${conf}serve_require_key = 1\nserve_idle_unload = 1\nserve_threads = 2\n"
daemon_start
url=$(json_get "$($F status --json)" http_url)v1
req='{"model": "stories260K", "prompt": "Once upon a time", "max_tokens": 10, "temperature": 0}'
check_error "$(post /completions "$req")" 401 invalid_request_error "no key when keys are required"
check_error "$(curl -s -w '\n%{http_code}' "$url/models")" 401 invalid_request_error "GET /v1/models without a key"
check_error "$(post /completions "$req" -H 'Authorization: Bearer ft-wrong')" 401 invalid_request_error "wrong key"
# Three requests at once for a model not loaded yet: two serving threads
# and a queue of one take them all; the second waits for the first's load.
pids=
for i in 1 2 3; do
	post /completions "$req" -H "Authorization: Bearer $key" > "$FT_TMP/load.$i" &
	pids="$pids $!"
done
wait $pids
expect_eq "$(for i in 1 2 3; do tail -n 1 "$FT_TMP/load.$i"; echo; done | grep -c '^200$')" "3" \
	"concurrent requests for a loading model wait for it"
expect_eq "$(sed '$d' "$FT_TMP/load.1" | jq -r '.choices[0].text')" "$(sed '$d' "$FT_TMP/load.3" | jq -r '.choices[0].text')" \
	"and get the same greedy text"
expect_eq "$(tail -n +$((logpos + 1)) "$FT_TMP/ftuned.log" | grep -c 'model stories260K loaded')" "1" "loaded once"
r=$(post /completions "$req" -H "Authorization: Bearer $key")
expect_eq "$(status_of "$r")" "200" "valid key accepted"
tokens=$(body_of "$r" | jq '.usage.total_tokens')
expect_eq "$($F deploy ls --json | jq -r '.deploys[0].loaded')" "true" "model loaded by the request"
sleep 3
expect_eq "$($F deploy ls --json | jq -r '.deploys[0].loaded')" "false" "idle model unloaded after serve_idle_unload"
r=$(post /completions "$req" -H "Authorization: Bearer $key")
expect_eq "$(status_of "$r")" "200" "an unloaded model loads again"
k=$($F key ls --json | jq -c '.keys[0] | [.name, .requests, .tokens, .last_used_at > 0]')
expect_eq "$k" "[\"ci\",5,$((5 * tokens)),true]" "usage counted per key"
$F key revoke ci >/dev/null || fail "key revoke"
check_error "$(post /completions "$req" -H "Authorization: Bearer $key")" 401 invalid_request_error "revoked key"
expect_eq "$($F key ls --json | jq -r '.keys[0].revoked_at > 0')" "true" "key ls shows the revocation"
key2=$($F key create --name ci 2>/dev/null) || fail "a new key may reuse a revoked key's name"

# --- the openai npm package as a client ---
npmdir=$FT_BIN/test_deploy_npm
if command -v node >/dev/null && command -v npm >/dev/null &&
   { [ -d "$npmdir/node_modules/openai" ] ||
     (mkdir -p "$npmdir" && cd "$npmdir" && timeout 120 npm install --no-save openai >/dev/null 2>&1); }; then
	cat > "$FT_TMP/client.js" <<'EOF'
const { OpenAI } = require('openai');
(async () => {
	const client = new OpenAI({ baseURL: process.argv[2], apiKey: process.argv[3] });
	const models = await client.models.list();
	const chat = await client.chat.completions.create({ model: 'stories260K', max_tokens: 20,
		temperature: 0, seed: 5, messages: [{ role: 'user', content: 'Say hi.' }] });
	const stream = await client.completions.create({ model: 'stories260K', prompt: 'Once upon a time',
		max_tokens: 20, temperature: 0, stream: true });
	let text = '';
	for await (const chunk of stream) text += chunk.choices[0].text;
	let status = 0;
	try {
		await client.completions.create({ model: 'nope', prompt: 'x' });
	} catch (e) { status = e.status; }
	console.log(JSON.stringify({ models: models.data.map((m) => m.id), chat: chat.choices[0].message.content,
		text, status }));
})().catch((e) => { console.error(e); process.exit(1); });
EOF
	js=$(cd "$npmdir" && NODE_PATH=$npmdir/node_modules node "$FT_TMP/client.js" "$url" "$key2") ||
		fail "openai npm client"
	want=$($F generate stories260K "Say hi." --max-new-tokens 20 --seed 5 2>/dev/null)
	expect_eq "$(printf '%s' "$js" | jq -r .chat)" "$want" "openai npm: chat equals ftctl generate"
	want=$($F generate stories260K "Once upon a time" --raw --max-new-tokens 20 2>/dev/null)
	expect_eq "$(printf '%s' "$js" | jq -r .text)" "$want" "openai npm: streamed completion"
	expect_eq "$(printf '%s' "$js" | jq -c '[.models, .status]')" '[["stories260K"],404]' \
		"openai npm: models list and a NotFound error"
else
	echo "skip: the openai npm package cannot be installed here (no node, npm or registry)"
fi

# --- memory: a budget with room for a LoRA job of the shape above but
# not for the model beside it ---
need=$(job_field "$job" memory_bytes)
expect_match "$need" '^[0-9]+$' "the LoRA job's memory need"
daemon_stop
expect_eq "$FT_EXIT" "0" "daemon stops cleanly with models loaded"
logpos=$(wc -l < "$FT_TMP/ftuned.log")
FT_CONF_EXTRA="${conf}serve_idle_unload = 0\nserve_memory_wait = 2\nmemory_budget = $((need + 262144))\n"
daemon_start
url=$(json_get "$($F status --json)" http_url)v1
req='{"model": "stories260K", "prompt": "Once upon a time", "max_tokens": 10, "temperature": 0}'
loaded() { $F deploy ls --json | jq -r '.deploys[] | select(.name == "stories260K") | .loaded'; }
# until_eq SECONDS WANT COMMAND...: polls COMMAND's output until it is WANT.
until_eq() {
	local n=$(($1 * 10)) want=$2 got
	shift 2
	for _ in $(seq 1 "$n"); do
		got=$("$@")
		[ "$got" = "$want" ] && break
		sleep 0.1
	done
	printf '%s' "$got"
}
expect_eq "$(status_of "$(post /completions "$req")")" "200" "a request loads the model"
expect_eq "$(loaded)" "true" "loaded before the job"
submit() {
	$F job submit --base stories260K --data lines --type sft --method lora --lora-rank 4 \
		--seq-len 64 --batch-size 4 --lr 0.01 "$@" | sed -n 's/^job \([0-9]*\) .*/\1/p'
}
long=$(submit --epochs 1000 --name yield-long)
expect_eq "$(until_eq 60 RUNNING job_field "$long" state)" "RUNNING" "a long job runs"
expect_eq "$(until_eq 10 false loaded)" "false" "the job unloaded the idle model"
expect_match "$(tail -n +$((logpos + 1)) "$FT_TMP/ftuned.log" | grep 'model stories260K unloaded')" \
	"training job $long needs [0-9.]+ MiB of memory_budget" "the log says why"
r=$(post /completions "$req")
check_error "$r" 503 server_error "a request that does not fit beside the job"
expect_eq "$(body_of "$r" | jq -r '.error.code')" "service_unavailable" "503: code"
expect_match "$(body_of "$r" | jq -r '.error.message')" "memory is in use by training job $long; retry later" \
	"503: says which job holds the memory"
post /completions "$req" > "$FT_TMP/waiting" &
waiter=$!
sleep 0.5
$F job cancel "$long" >/dev/null || fail "job cancel"
wait $waiter
expect_eq "$(tail -n 1 "$FT_TMP/waiting")" "200" "a request waiting while the job ends is served"
expect_eq "$(job_wait "$long" 60)" "CANCELLED" "the long job was cancelled"
short=$(submit --max-steps 8 --name yield-short)
expect_eq "$(job_wait "$short" 300)" "SUCCEEDED" "a job beside a loaded model succeeds"
expect_match "$(tail -n +$((logpos + 1)) "$FT_TMP/ftuned.log" | grep 'model stories260K unloaded')" \
	"training job $short needs" "and unloaded it first"
expect_eq "$(loaded)" "false" "unloaded after the job"
r=$(post /completions "$req")
expect_eq "$(status_of "$r")" "200" "a request after the job loads the model again"
expect_eq "$(loaded)" "true" "loaded again"
daemon_stop
expect_eq "$FT_EXIT" "0" "daemon stops cleanly after the memory checks"
finish
