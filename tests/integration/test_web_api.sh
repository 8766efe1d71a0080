#!/bin/bash
# test_web_api.sh - every /api/v1 endpoint of the dashboard against a daemon
# whose state was made by running jobs and an evaluation: the answers match
# what ftctl reads over the control socket; API keys with their usage
# (counts grow with a completion, revocation shows, never the key or its
# hash); bad ids are 404 JSON, bad query
# values 400, other methods 405; no directory listing, nothing outside
# web_root; then the token-protected listener (bearer, login cookie, token
# rotation), the refusal of a non-loopback listener without a token, and
# TLS through civetweb.
set -u
. "$FT_SRC/tests/integration/lib.sh"
. "$FT_SRC/tests/integration/web_state.sh"

# get PATH: the body; status PATH: the HTTP status (curl's -w).
get() { curl -s "$WEB_URL$1"; }
status() { curl -s -o /dev/null -w '%{http_code}' "${@:2}" "$WEB_URL$1"; }
jqe() { jq -r "$2" <<<"$1"; }

# --- status ---
st=$(get /api/v1/status)
expect_eq "$(jqe "$st" .version)" "$(json_get "$($F status --json)" version)" "status: version as RPC"
expect_eq "$(jqe "$st" .http_url)" "$WEB_URL/" "status: its own URL"
# the RPC's StatusReply, but for the clock
expect_eq "$(jqe "$st" 'del(.uptime_ms) | tojson')" "$(jqe "$($F status --json)" 'del(.uptime_ms) | tojson')" \
	"status: the object status --json prints"

# --- jobs ---
jobs=$(get /api/v1/jobs)
expect_eq "$(jqe "$jobs" "[.jobs[] | select(.kind == \"train\")] | length")" "2" "jobs: two training jobs"
expect_eq "$(jqe "$jobs" ".jobs[0].id > .jobs[1].id")" "true" "jobs: newest first"
expect_eq "$(jqe "$(get '/api/v1/jobs?state=SUCCEEDED&limit=1')" '.jobs | length')" "1" "jobs: limit"
expect_eq "$(jqe "$(get '/api/v1/jobs?state=RUNNING')" '.jobs | length')" "0" "jobs: state filter"
expect_eq "$(jqe "$(get "/api/v1/jobs?user=$(id -u)")" '.jobs | length')" \
	"$(jqe "$jobs" '.jobs | length')" "jobs: user filter, the owner"
expect_eq "$(jqe "$(get '/api/v1/jobs?user=4242')" '.jobs | length')" "0" "jobs: user filter, nobody's"
expect_eq "$(status '/api/v1/jobs?state=DONE')" "400" "jobs: bad state is 400"
expect_eq "$(status '/api/v1/jobs?limit=1001')" "400" "jobs: limit capped at 1000"
expect_eq "$(status '/api/v1/jobs?limit=-1')" "400" "jobs: negative limit is 400"
expect_match "$(get '/api/v1/jobs?limit=x')" '"error":\{"code":400,"message":"query parameter .limit.' \
	"jobs: 400 names the parameter"

j=$(get "/api/v1/jobs/$JOB1")
show=$($F job show "$JOB1" --json)
expect_eq "$(jqe "$j" .state)" "SUCCEEDED" "job: state"
expect_eq "$(jqe "$j" .step)/$(jqe "$j" .total_steps)" "12/12" "job: steps"
expect_eq "$(jqe "$j" .result_model)" "$TUNED" "job: resulting model"
expect_eq "$(jqe "$j" .base_model)/$(jqe "$j" .dataset)" "stories260K/lines" "job: base and dataset names"
expect_eq "$(jqe "$j" .spec.max_steps)/$(jqe "$j" .spec.method)" "12/lora" "job: specification"
expect_eq "$(jqe "$j" .checkpoint_step)" "$(json_get "$show" checkpoint_step)" "job: checkpoint step as RPC"
# The same JobInfo object as ftctl's, beside the dashboard's own links and files.
expect_eq "$(jqe "$j" 'del(.base_model, .dataset, .checkpoints) | tojson')" \
	"$(jqe "$show" 'tojson')" "job: the object job show --json prints"
expect_eq "$(jqe "$j" '.kind + " " + (.base_id | tostring) + " " + (.dataset_id | tostring)')" \
	"train 1 1" "job: its kind, base and dataset ids"
# Both must be numbers: awk reads a missing value (or null) as 0.
awk -v a="$(jqe "$j" .val_loss)" -v b="$(json_get "$show" val_loss)" \
	'BEGIN { n = "^-?[0-9]+(\\.[0-9]+)?([eE][-+]?[0-9]+)?$"
	  exit !(a ~ n && b ~ n && a - b < 1e-4 && b - a < 1e-4) }' || fail "job: val_loss as RPC"
pass "job: val_loss as RPC"

m=$(get "/api/v1/jobs/$JOB1/metrics")
expect_eq "$(jqe "$m" '[.metrics[].step] | join(",")')" "1,2,3,4,5,6,7,8,9,10,11,12" "metrics: one row per step"
expect_eq "$(jqe "$m" '[.metrics[] | select(.val_loss != null) | .step] | join(",")')" "5,10,12" \
	"metrics: validation loss at the evaluation steps"
expect_eq "$(jqe "$m" '.metrics[-1].loss - '"$(jqe "$j" .loss)"' | fabs < 1e-5')" "true" \
	"metrics: the last step's loss is the job's"
expect_eq "$(jqe "$(get "/api/v1/jobs/$JOB1/metrics?after=10")" '[.metrics[].step] | join(",")')" \
	"11,12" "metrics: after= for incremental polling"
expect_eq "$(jqe "$(get "/api/v1/jobs/$JOB1/metrics?after=3&limit=2")" '[.metrics[].step] | join(",")')" \
	"4,5" "metrics: limit"
expect_eq "$(status "/api/v1/jobs/$JOB1/metrics?limit=10001")" "400" "metrics: limit capped"
logs=$(get "/api/v1/jobs/$JOB1/logs")
n=$(jqe "$logs" '.lines | length')
[ "$n" -ge 3 ] && pass "logs: $n lines" || fail "logs: got $n lines"
expect_match "$(jqe "$logs" '.lines[].message')" "registered tuned model" "logs: the registration line"
expect_eq "$(jqe "$(get "/api/v1/jobs/$JOB1/logs?after=$(jqe "$logs" '.lines[-1].seq')")" '.lines | length')" \
	"0" "logs: after the last line, nothing"
expect_eq "$(jqe "$(get "/api/v1/jobs/$JOB1/logs?limit=2")" '.lines | length')" "2" "logs: limit"

for bad in 999999 0 -1 abc 1e3 99999999999999999999 "$JOB1/nope" "$JOB1/metrics/x" "%2F"; do
	body=$(curl -s -w ' %{http_code}' "$WEB_URL/api/v1/jobs/$bad")
	expect_match "$body" '^\{"error":\{"code":404,"message":"[^"]+"\}\} 404$' "job id '$bad' is 404 JSON"
done

# --- models ---
models=$(get /api/v1/models)
expect_eq "$(jqe "$models" '[.models[].name] | join(",")')" "stories260K,lines-lora,lines-lora-full" \
	"models: oldest first"
mm=$(get "/api/v1/models/$TUNED")
rpc=$($F model show "$TUNED" --json)
expect_eq "$(jqe "$mm" '[.ancestors[].name] | join(",")')" "lines-lora,stories260K" "model: base chain"
expect_eq "$(jqe "$mm" '[.descendants[].name] | join(",")')" "lines-lora-full" "model: tuned descendants"
expect_eq "$(jqe "$mm" '.descendants[0].job_id')" "$JOB2" "model: the job to each descendant"
expect_eq "$(jqe "$mm" '.lineage.dataset.blake2b')" "$(json_get "$($F data show lines --json)" blake2b)" \
	"model: lineage has the dataset hash"
expect_eq "$(jqe "$mm" '[.files[] | .name + "=" + .blake2b] | sort | join(" ")')" \
	"$(jqe "$rpc" '[.files[] | .name + "=" + .blake2b] | sort | join(" ")')" "model: file hashes as RPC"
expect_eq "$(jqe "$mm" 'del(.ancestors, .descendants, .export_commands) | tojson')" \
	"$(jqe "$rpc" 'tojson')" "model: the object model show --json prints"
expect_eq "$(jqe "$models" '.models | tojson')" "$(jqe "$($F model ls --json)" '.models | tojson')" \
	"models: the list model ls --json prints"
expect_match "$(jqe "$mm" '.export_commands[0]')" "^ftctl model export '$TUNED' --format peft" \
	"model: an adapter exports through the daemon"
expect_match "$(jqe "$(get "/api/v1/models/$TUNED-full")" '.export_commands[0]')" \
	"^ftengine export --model '.*' --format gguf" "model: a full model exports with ftengine"
root=$(get /api/v1/models/1)
expect_eq "$(jqe "$root" .name)" "stories260K" "model: by id"
expect_eq "$(jqe "$root" '.descendants[0].children[0].name')" "lines-lora-full" "model: descendants recurse"
for bad in nope 999 %2e%2e "a%00b" "$TUNED/files"; do
	expect_eq "$(status "/api/v1/models/$bad")" "404" "model '$bad' is 404"
done
expect_match "$(get /api/v1/models/nope)" '"message":"no such model"' "model 404 says why"

# --- datasets ---
ds=$(get /api/v1/datasets)
expect_eq "$(jqe "$ds" '[.datasets[].name] | join(",")')" "lines" "datasets: list"
d1=$(get '/api/v1/datasets/lines?samples=3')
expect_eq "$(jqe "$d1" .records)/$(jqe "$d1" .validation_records)" "108/12" "dataset: records held out"
expect_eq "$(jqe "$d1" '[.stats.histogram[].count] | add')" "108" "dataset: histogram counts every record"
expect_eq "$(jqe "$d1" '.samples | length')" "3" "dataset: samples"
expect_eq "$(jqe "$d1" 'del(.samples, .samples_offset, .token_counts) | tojson')" \
	"$(jqe "$($F data show lines --json)" 'del(.samples, .token_counts) | tojson')" \
	"dataset: the object data show --json prints"
expect_eq "$(jqe "$d1" '.samples[0].instruction')" "Continue." "dataset: samples are records"
expect_match "$(jqe "$d1" .report)" "120 records, 120 valid" "dataset: validation report"
expect_eq "$(jqe "$(get '/api/v1/datasets/lines?offset=106&samples=5')" '.samples | length')" "2" \
	"dataset: samples page at the end"
expect_eq "$(status '/api/v1/datasets/lines?samples=51')" "400" "dataset: samples capped at 50"
expect_eq "$(jqe "$(get '/api/v1/datasets/lines?part=validation&offset=11&samples=5')" '.samples | length')" "1" \
	"dataset: samples of the validation part"
expect_eq "$(status '/api/v1/datasets/lines?part=test')" "400" "dataset: part is train or validation"
# Token counts as training makes them: job 1 logged how many records its
# --seq-len 64 shortened or skipped; the count here must agree.
tpl=$(jq -rn --arg t "$(jqe "$j" .spec.template)" '$t | @uri')
tk=$(get "/api/v1/datasets/lines/tokens?model=stories260K&template=$tpl&seq_len=64")
logged=$(jqe "$logs" '.lines[].message' |
	sed -n 's/^\([0-9]*\) training records were \(longer than\|cut: their last\).*--seq-len 64.*/\1/p' |
	awk '{ s += $1 } END { print s + 0 }')
expect_eq "$(jqe "$tk" .longer)" "$logged" "tokens: records over seq_len as training counted them ($logged)"
expect_eq "$(jqe "$tk" '.counted == .records and .tokens > .prompt_tokens and .min <= .mean and .mean <= .max')" \
	"true" "tokens: totals consistent"
alp=$(get "/api/v1/datasets/lines/tokens?model=1")
expect_eq "$(jqe "$alp" '.template')" "alpaca" "tokens: Alpaca by default"
expect_eq "$(jqe "$alp" ".tokens > $(jqe "$tk" .tokens)")" "true" "tokens: the Alpaca preamble costs tokens"
expect_eq "$(status '/api/v1/datasets/lines/tokens')" "400" "tokens: model required"
expect_eq "$(status '/api/v1/datasets/lines/tokens?model=nope')" "404" "tokens: unknown model"
expect_eq "$(status '/api/v1/datasets/lines/tokens?model=1&template=%7Bnope%7D')" "400" "tokens: bad template"
expect_eq "$(status /api/v1/datasets/nope)" "404" "dataset: unknown is 404"

# --- evaluations: the numbers ftctl eval show reads ---
evs=$(get /api/v1/evals)
expect_match "$(jqe "$evs" '[.evals[].name] | join(",")')" "job-$JOB1" "evals: list"
ev=$(get "/api/v1/evals/$EVAL1")
rpc=$($F eval show "$EVAL1" --json) || fail "ftctl eval show"
expect_eq "$(jqe "$ev" '[.models[].name] | join(",")')" "stories260K,$TUNED" "eval: base against tuned"
want=$(jq -c '[.eval.stats[] | [.metric, .model, .versus, .mean, .lo, .hi, .wins, .ties, .losses]]' <<<"$rpc")
got=$(jq -c '[.stats[] | [.metric, .model, .versus, .mean, .lo, .hi, .wins, .ties, .losses]]' <<<"$ev")
close=$(jq -n --argjson a "$want" --argjson b "$got" '($a | length) == ($b | length) and ($a | length) > 0 and
	([range(0; $a | length) as $i | range(0; 9) as $k | $a[$i][$k] as $x | $b[$i][$k] as $y |
	  if ($x | type) == "number" then (($x - $y) | fabs) <= 1e-9 * (1 + ($x | fabs)) else $x == $y end] | all)')
expect_eq "$close" "true" "eval: every summary number as ftctl eval show --json"
expect_match "$(jqe "$ev" '.summary_metrics | join(",")')" "^loss,perplexity," "eval: summary metrics in order"
# One object, one converter: the API's evaluation is the RPC's EvalInfo, field for
# field (ftctl prints 15 digits, the API 17: numbers compared to 8 decimals).
same='walk(if type == "number" then (. * 1e8 | round) else . end) | del(.examples_per_s)'
expect_eq "$(jq -S -c "del(.summary_metrics) | $same" <<<"$ev")" \
	"$(jq -S -c ".eval | $same" <<<"$rpc")" "eval: the same object as ftctl eval show --json"
expect_eq "$(jq -S -c 'keys' <<<"$ev")" \
	"$(jq -S -c '[.eval | keys[]] + ["summary_metrics"] | sort' <<<"$rpc")" "eval: no field more or less than the RPC's"
n=$(jqe "$ev" .examples)
ex=$(get "/api/v1/evals/$EVAL1/examples?metric=loss&limit=100")
expect_eq "$(jqe "$ex" .total)/$(jqe "$ex" '.examples | length')" "$n/$n" "examples: every example"
expect_eq "$(jqe "$ex" '[.examples[].delta] | . == (sort)')" "true" \
	"examples: loss (lower is better) sorted largest improvement first"
expect_eq "$(jqe "$ex" '[.examples[] | .delta - (.metrics.loss[1] - .metrics.loss[0]) | fabs < 1e-9] | all')" \
	"true" "examples: delta is tuned minus base"
reg=$(get "/api/v1/evals/$EVAL1/examples?metric=loss&sort=regression&limit=100")
expect_eq "$(jqe "$reg" '[.examples[].delta] | . == (sort | reverse)')" "true" "examples: regression first"
idx=$(get "/api/v1/evals/$EVAL1/examples?sort=index&limit=3&offset=2")
expect_eq "$(jqe "$idx" '[.examples[].index] | join(",")')" "2,3,4" "examples: dataset order, paged"
word=$(jqe "$ex" '.examples[0].reference | split(" ")[0]')
f=$(get "/api/v1/evals/$EVAL1/examples?q=$(jq -rn --arg w "$word" '$w | @uri')&limit=100")
expect_eq "$(jqe "$f" --arg w "$word" '[.examples[] | ([.prompt, .reference] + .outputs | map(contains($w)) | any)] | all' 2>/dev/null ||
	jq -r --arg w "$word" '[.examples[] | ([.prompt, .reference] + .outputs | map(contains($w)) | any)] | all' <<<"$f")" \
	"true" "examples: text filter"
expect_eq "$(jqe "$(get "/api/v1/evals/$EVAL1/examples?q=%25_no_such_text_%25")" .total)" "0" \
	"examples: filter wildcards are literal"
bytes=$(get "/api/v1/evals/$EVAL1/examples?q=a%FFb")
expect_eq "$(jqe "$bytes" .q)/$(jqe "$bytes" .total)" "a�b/0" "examples: bytes that are not UTF-8 become U+FFFD"
expect_eq "$(status "/api/v1/evals/$EVAL1/examples?metric=nope")" "200" "examples: unknown metric, nothing to sort by"
expect_eq "$(status "/api/v1/evals/$EVAL1/examples?sort=best")" "400" "examples: bad sort is 400"
expect_eq "$(status "/api/v1/evals/$EVAL1/examples?limit=101")" "400" "examples: page capped at 100"
for bad in 999 x 0 "$EVAL1/nope"; do
	expect_eq "$(status "/api/v1/evals/$bad")" "404" "eval '$bad' is 404"
done

# --- API keys: usage per key, never the key ---
expect_eq "$(jqe "$(get /api/v1/keys)" '.keys | length')" "0" "keys: none yet"
key=$($F key create --name dash 2>/dev/null) || fail "key create"
old=$($F key create --name old 2>/dev/null) || fail "key create old"
$F key revoke old >/dev/null || fail "key revoke"
$F deploy stories260K >/dev/null || fail "deploy"
r=$(curl -s -H 'Content-Type: application/json' -H "Authorization: Bearer $key" \
	-d '{"model": "stories260K", "prompt": "Once upon a time", "max_tokens": 8, "temperature": 0}' \
	"$WEB_URL/v1/completions")
used=$(jqe "$r" .usage.total_tokens)
expect_match "$used" '^[0-9]+$' "keys: a completion with the key"
ks=$(get /api/v1/keys)
expect_eq "$(jqe "$ks" '.keys[0] | keys | join(",")')" \
	"created_at,last_used_at,name,owner_uid,requests,revoked_at,tokens" "keys: the fields, no key or hash"
[[ "$ks" != *"$key"* && "$ks" != *"$old"* ]] && pass "keys: the key texts are not in the answer" ||
	fail "keys: a key text in the answer"
! grep -Eq '[0-9a-f]{64}' <<<"$ks" && pass "keys: nor their BLAKE2b hashes" || fail "keys: a hash in the answer"
dash=$(jqe "$ks" '.keys[] | select(.name == "dash")')
expect_eq "$(jqe "$dash" '[.requests, .tokens, .last_used_at > 0, .revoked_at, .owner_uid] | join(",")')" \
	"1,$used,true,0,$(id -u)" "keys: the completion counted against its key, as ftctl key ls"
expect_eq "$(jqe "$($F key ls --json)" '.keys[] | select(.name == "dash") | [.requests, .tokens] | join(",")')" \
	"1,$used" "keys: the same numbers over the control socket"
expect_eq "$(jqe "$ks" '.keys | tojson')" "$(jqe "$($F key ls --json)" '.keys | tojson')" \
	"keys: the list key ls --json prints"
expect_eq "$(jqe "$ks" '.keys[] | select(.name == "old") | [.requests, .revoked_at > 0] | join(",")')" \
	"0,true" "keys: the revoked key shows its revocation"
curl -s -o /dev/null -H 'Content-Type: application/json' -H "Authorization: Bearer $key" \
	-d '{"model": "stories260K", "prompt": "Once", "max_tokens": 4, "temperature": 0}' "$WEB_URL/v1/completions"
expect_eq "$(jqe "$(get /api/v1/keys)" '.keys[] | select(.name == "dash") | .requests')" "2" \
	"keys: the count grows with each request"
expect_eq "$(status /api/v1/keys/dash)" "404" "keys: no per-key endpoint"

# --- methods, unknown paths, static files ---
for method in POST PUT DELETE PATCH; do
	expect_eq "$(status /api/v1/status -X "$method")" "405" "$method to the API is 405"
done
expect_eq "$(status /index.html -X POST)" "405" "POST to a page is 405"
expect_eq "$(curl -s -I -o /dev/null -w '%{http_code} %{size_download}' "$WEB_URL/api/v1/status")" "200 0" \
	"HEAD: headers, no body"
expect_match "$(curl -s -X DELETE "$WEB_URL/api/v1/jobs/$JOB1")" '"code":405' "405 is JSON"
expect_eq "$(jqe "$(get "/api/v1/jobs/$JOB1")" .state)" "SUCCEEDED" "nothing changed by other methods"
for p in /api/v1 /api/v1/ /api/v2/status /api/v1/statusx /api/v1/jobs/ /api/v1/models/; do
	expect_eq "$(status "$p")" "404" "$p is 404"
done
headers=$(curl -s -D - -o /dev/null "$WEB_URL/")
expect_match "$headers" "Content-Security-Policy: default-src 'self'; script-src 'self'; style-src 'self'" \
	"CSP forbids inline scripts and styles"
expect_match "$(curl -s -D - -o /dev/null "$WEB_URL/api/v1/status")" "Content-Security-Policy: " "CSP on the API"
expect_eq "$(status /app.js)" "200" "app.js served"
code=$(status /folder/)
[ "$code" != 200 ] && pass "no directory listing ($code)" || fail "directory listing of /folder/"
for p in /../../../../etc/passwd /%2e%2e/%2e%2e/%2e%2e/etc/passwd /..%2f..%2f..%2fetc/passwd; do
	body=$(curl -s --path-as-is "$WEB_URL$p")
	[[ "$body" != *root:* ]] && pass "nothing outside web_root: $p" || fail "$p served /etc/passwd"
done
! grep -q "<script>" "$FT_SRC/web/index.html" && pass "no inline script in index.html" ||
	fail "inline script in index.html"

# --- token required: bearer header, login cookie, rotation ---
daemon_stop
tok=$("$FT_BIN/daemon/ftuned" --state-dir "$FT_STATE" --new-dashboard-token) || fail "new token"
expect_match "$tok" '^[A-Za-z0-9_-]{43}$' "a 256-bit token, base64url"
expect_match "$(cat "$FT_STATE/dashboard-token")" '^[0-9a-f]{64}$' "only its hash is stored"
! grep -q "$tok" "$FT_STATE/dashboard-token" && pass "the token itself is not stored" || fail "token stored"
WEB_CONF_EXTRA="http_auth = token\n"
FT_CONF_EXTRA="import_roots = $assets:$FT_TMP\ntraining_threads = 1\n$WEB_CONF_EXTRA"
daemon_start
WEB_URL=$(json_get "$($F status --json)" http_url)
WEB_URL=${WEB_URL%/}
expect_eq "$(status /api/v1/status)" "401" "token mode: no token is 401"
expect_match "$(get /api/v1/jobs)" '"code":401' "token mode: 401 is JSON"
expect_eq "$(status /api/v1/status -H "Authorization: Bearer wrong")" "401" "token mode: wrong token"
expect_eq "$(status /api/v1/status -H "Authorization: Bearer ${tok}x")" "401" "token mode: longer token"
expect_eq "$(status /api/v1/status -H "Authorization: Bearer $tok")" "200" "token mode: bearer token"
expect_eq "$(status "/api/v1/jobs/$JOB1/metrics" -H "Authorization: Bearer $tok")" "200" "token mode: API with token"
expect_eq "$(status /api/v1/keys)" "401" "token mode: keys need the token"
expect_eq "$(status /api/v1/keys -H "Authorization: Bearer $tok")" "200" "token mode: keys with it"
expect_eq "$(status / )" "303" "token mode: pages redirect"
expect_match "$(curl -s -D - -o /dev/null "$WEB_URL/")" "Location: /login.html" "token mode: to the login page"
expect_eq "$(status /login.html)" "200" "token mode: login page open"
expect_eq "$(status /app.js)" "303" "token mode: scripts need the token too"
bad=$(curl -s -D - -o /dev/null --data-urlencode "token=nope" "$WEB_URL/login")
expect_match "$bad" "Location: /login.html\?failed" "login: wrong token refused"
[[ "$bad" != *Set-Cookie* ]] && pass "login: no cookie for a wrong token" || fail "cookie for a wrong token"
good=$(curl -s -D - -o /dev/null -c "$FT_TMP/cookies" --data-urlencode "token=$tok" "$WEB_URL/login")
expect_match "$good" "Set-Cookie: ftuned_token=[^;]+; Path=/; HttpOnly; SameSite=Strict" "login: HttpOnly SameSite cookie"
expect_eq "$(status /api/v1/status -b "$FT_TMP/cookies")" "200" "login: the cookie opens the API"
expect_eq "$(status / -b "$FT_TMP/cookies")" "200" "login: and the pages"
expect_eq "$(status /login -X PUT)" "405" "login: only POST"
tok2=$("$FT_BIN/daemon/ftuned" --state-dir "$FT_STATE" --new-dashboard-token) || fail "second token"
expect_eq "$(status /api/v1/status -H "Authorization: Bearer $tok")" "401" "rotation: the old token stops at once"
expect_eq "$(status /api/v1/status -H "Authorization: Bearer $tok2")" "200" "rotation: the new one works"
daemon_stop
expect_eq "$FT_EXIT" "0" "clean shutdown"

# --- a non-loopback listener needs a token ---
mkdir -p "$FT_TMP/other"
msg=$("$FT_BIN/daemon/ftuned" -d --state-dir "$FT_TMP/other" --socket "ipc://$FT_TMP/other.sock" \
	--http 0.0.0.0:0 2>&1)
expect_eq "$?" "1" "0.0.0.0 without a token: the daemon refuses to start"
expect_match "$msg" "needs a dashboard token .* run ftuned --new-dashboard-token" "and says what to do"

# --- TLS through civetweb ---
# Debian 12's civetweb 1.15 loads OpenSSL by 1.1 names and cannot use
# OpenSSL 3: then the daemon must refuse to start with a clear message.
if command -v openssl >/dev/null; then
	openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 \
		-keyout "$FT_TMP/key.pem" -out "$FT_TMP/cert.pem" 2>/dev/null
	cat "$FT_TMP/cert.pem" "$FT_TMP/key.pem" > "$FT_TMP/tls.pem"
	printf 'web_root = %s\nhttp_tls_certificate = %s\n' "$FT_SRC/web" "$FT_TMP/tls.pem" > "$FT_TMP/tls.conf"
	"$FT_BIN/daemon/ftuned" -d -f "$FT_TMP/tls.conf" --state-dir "$FT_STATE" --socket "$FT_SOCKET" \
		--http 127.0.0.1:0 >"$FT_TMP/tls.log" 2>&1 &
	FT_PID=$!
	# Up means it answers; a daemon that is still alive may yet be exiting.
	up=0
	for _ in $(seq 1 300); do
		$F --timeout 500 status >/dev/null 2>&1 && { up=1; break; }
		kill -0 "$FT_PID" 2>/dev/null || break
		sleep 0.1
	done
	if [ "$up" = 1 ]; then
		url=$(json_get "$($F status --json)" http_url)
		expect_match "$url" '^https://127\.0\.0\.1:[0-9]+/$' "TLS: the URL is https"
		expect_eq "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$FT_TMP/cert.pem" \
			-H "Authorization: Bearer $tok2" "${url}api/v1/status")" "200" "TLS: API over https"
		good=$(curl -s -D - -o /dev/null --cacert "$FT_TMP/cert.pem" --data-urlencode "token=$tok2" "${url}login")
		expect_match "$good" "HttpOnly; SameSite=Strict; Secure" "TLS: the cookie is Secure"
		daemon_stop
	else
		wait "$FT_PID"
		expect_eq "$?" "1" "TLS: without a usable OpenSSL the daemon exits 1, no crash"
		FT_PID=
		expect_match "$(cat "$FT_TMP/tls.log")" "with TLS: civetweb could not set up OpenSSL" \
			"TLS: and says why"
		echo "SKIP: this civetweb cannot load OpenSSL: $(grep -m1 load_tls "$FT_TMP/tls.log")"
	fi
else
	echo "SKIP: TLS check needs openssl"
fi
finish
