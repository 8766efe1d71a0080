#!/bin/bash
# test_logprobs.sh - log-probabilities over real HTTP on stories260K:
# /v1/completions with logprobs (tokens, token_logprobs, top_logprobs,
# text_offset) and echo, /v1/chat/completions with logprobs and
# top_logprobs, streamed and not.  Echo's prompt values sum to the
# engine's teacher-forced loss (ftengine loss on the same ids), the
# generated tokens' values equal those echo gives when the output is fed
# back, the bounds (5 and 20) are refused in OpenAI's error shape, and the
# openai npm client reads both shapes.
set -u
. "$FT_SRC/tests/integration/lib.sh"

assets_require llama2c/stories260K.bin
command -v curl >/dev/null && command -v jq >/dev/null || { echo "SKIP: needs curl and jq"; exit 77; }
F=$FT_BIN/client/ftctl
E=$FT_BIN/engine/ftengine
FT_CONF_EXTRA="import_roots = $assets\nserve_threads = 1\n"
daemon_start
url=$(json_get "$($F status --json)" http_url)v1
$F model import "$assets/llama2c/stories260K.bin" --tokenizer "$assets/llama2c/tok512.bin" >/dev/null ||
	fail "model import"
$F deploy stories260K >/dev/null || fail "deploy"

post() {
	local path=$1 body=$2
	shift 2
	curl -s -w '\n%{http_code}' -H 'Content-Type: application/json' "$@" -d "$body" "$url$path"
}
status_of() { printf '%s' "$1" | tail -n 1; }
body_of() { printf '%s' "$1" | sed '$d'; }
# close A B TOL: |A - B| <= TOL
close() { awk -v a="$1" -v b="$2" -v t="$3" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= t) }'; }

prompt="Once upon a time, there was a little dog named Max. He liked to run."

# --- echo: the prompt's own log-probabilities are the teacher-forced ones ---
r=$(post /completions "{\"model\": \"stories260K\", \"prompt\": \"$prompt\", \"max_tokens\": 1, \"temperature\": 0, \"echo\": true, \"logprobs\": 0}")
expect_eq "$(status_of "$r")" "200" "echo with logprobs 0"
b=$(body_of "$r")
printf '%s' "$prompt" | "$E" tokenize --tokenizer "$assets/llama2c/tok512.bin" > "$FT_TMP/ids.txt" ||
	fail "ftengine tokenize"
n_ids=$(wc -w < "$FT_TMP/ids.txt")
lp=$(printf '%s' "$b" | jq -c '.choices[0].logprobs')
expect_eq "$(printf '%s' "$lp" | jq '.tokens | length')" "$((n_ids + 1))" "echo: every prompt token, then the generated one"
expect_eq "$(printf '%s' "$lp" | jq -c '[.token_logprobs[0], .top_logprobs[0]]')" "[null,null]" \
	"echo: the first token has no log-probability"
expect_eq "$(printf '%s' "$lp" | jq -c '[.top_logprobs[1:][] | length] | unique')" "[0]" "logprobs 0: no alternatives"
text=$(printf '%s' "$b" | jq -r '.choices[0].text')
expect_eq "$(printf '%s' "$lp" | jq -r '.tokens | join("")')" "$text" "echo: the tokens spell the text"
expect_eq "$(printf '%s' "$lp" | jq -c '[foreach .tokens[] as $t (0; . + ($t | utf8bytelength); .)] | .[:-1]')" \
	"$(printf '%s' "$lp" | jq -c '.text_offset[1:]')" "text_offset: each token starts where the last ended"
expect_match "$text" "dog named Max" "echo: the text begins with the prompt"
forced=$("$E" loss --model "$assets/llama2c/stories260K.bin" --tokens "$FT_TMP/ids.txt" --json | jq '.loss * .tokens')
served=$(printf '%s' "$lp" | jq "[.token_logprobs[1:$n_ids][]] | add | -.")
close "$served" "$forced" "$(awk -v n="$n_ids" 'BEGIN { print 1e-5 * n }')" &&
	pass "echo: the prompt's log-probabilities sum to ftengine loss ($served vs $forced)" ||
	fail "echo sum $served, ftengine loss $forced"

# --- generated tokens: their values are the teacher-forced ones too ---
gprompt="Once upon a time, there was a little dog named Max. He"
r=$(post /completions "{\"model\": \"stories260K\", \"prompt\": \"$gprompt\", \"max_tokens\": 24, \"temperature\": 0, \"logprobs\": 5}")
expect_eq "$(status_of "$r")" "200" "completion with logprobs 5"
gen=$(body_of "$r" | jq -c '.choices[0]')
glp=$(printf '%s' "$gen" | jq -c '.logprobs')
gtext=$(printf '%s' "$gen" | jq -r '.text')
ng=$(printf '%s' "$glp" | jq '.tokens | length')
expect_eq "$(printf '%s' "$glp" | jq -r '.tokens | join("")')" "$gtext" "the tokens spell the completion"
expect_eq "$(printf '%s' "$glp" | jq -c '[.top_logprobs[] | length] | unique')" "[5]" "five alternatives each"
expect_eq "$(printf '%s' "$glp" | jq '[range(0; .tokens | length) as $i | (.top_logprobs[$i] | to_entries | max_by(.value) | .value) == .token_logprobs[$i]] | all')" \
	"true" "greedy: the chosen token is the likeliest alternative"
expect_eq "$(printf '%s' "$glp" | jq '[.token_logprobs[] | . <= 0] | all')" "true" "log-probabilities are at most 0"
# the same values at another temperature and top_p: before sampling transforms
r=$(post /completions "{\"model\": \"stories260K\", \"prompt\": \"$prompt\", \"max_tokens\": 24, \"temperature\": 0.8, \"top_p\": 0.5, \"seed\": 3, \"logprobs\": 1}")
t08=$(body_of "$r" | jq -c '.choices[0].logprobs')
expect_eq "$(jq -n --argjson a "$t08" '[$a.token_logprobs[] | . <= 0] | all')" "true" "sampled: log-probabilities"
# the SentencePiece decoder drops the output's leading space: put it back
full=$(jq -n --arg p "$gprompt " --arg t "$gtext" '{model: "stories260K", prompt: ($p + $t), max_tokens: 1, temperature: 0, echo: true, logprobs: 5}')
r=$(post /completions "$full")
elp=$(body_of "$r" | jq -c '.choices[0].logprobs')
tail_tokens=$(printf '%s' "$elp" | jq -c --argjson n "$ng" '.tokens[-($n + 1):-1]')
expect_eq "$tail_tokens" "$(printf '%s' "$glp" | jq -c '.tokens | .[0] |= " " + .')" "fed back, the output tokenizes as it was generated"
worst=$(jq -n --argjson g "$glp" --argjson e "$elp" --argjson n "$ng" '
	[range(0; $n) as $i | ($e.token_logprobs[-($n + 1) + $i] - $g.token_logprobs[$i]) |
	 fabs / ([1, ($g.token_logprobs[$i] | fabs)] | max)] | max')
close "$worst" 0 2e-5 && pass "generated log-probabilities equal the teacher-forced ones over $ng tokens (largest relative difference $worst)" ||
	fail "generated vs teacher-forced: $worst"

# a stop string ends the tokens where it ends the text
r=$(post /completions "{\"model\": \"stories260K\", \"prompt\": \"$gprompt\", \"max_tokens\": 24, \"temperature\": 0, \"logprobs\": 2, \"stop\": \" One\"}")
st=$(body_of "$r" | jq -c '.choices[0]')
expect_eq "$(printf '%s' "$st" | jq -r '.logprobs.tokens | join("")')" "$(printf '%s' "$st" | jq -r '.text')" \
	"stop: the tokens spell the text before the stop string"
expect_eq "$(printf '%s' "$st" | jq -r .finish_reason)" "stop" "stop: finish_reason"
expect_eq "$(printf '%s' "$st" | jq -c '.logprobs.token_logprobs')" \
	"$(printf '%s' "$glp" | jq -c --argjson n "$(printf '%s' "$st" | jq '.logprobs.tokens | length')" '.token_logprobs[:$n]')" \
	"stop: the same values as without it"

# --- streamed completion with echo and logprobs ---
r=$(post /completions "{\"model\": \"stories260K\", \"prompt\": \"$gprompt\", \"max_tokens\": 24, \"temperature\": 0, \"logprobs\": 5, \"echo\": true, \"stream\": true}" -N)
chunks=$(printf '%s' "$r" | sed -n 's/^data: \({.*\)$/\1/p' | jq -c '.choices[0]')
stext=$(printf '%s' "$chunks" | jq -j '.text')
expect_match "$stext" "^$gprompt" "stream: the echoed prompt comes first"
expect_eq "$(printf '%s' "$chunks" | jq -s -c '[.[].logprobs | select(. != null) | .tokens[]] | join("")')" \
	"$(jq -n -c --arg t "$stext" '$t')" "stream: the tokens of every chunk spell the streamed text"
expect_eq "$(printf '%s' "$chunks" | jq -s -c '[.[].logprobs | select(. != null) | .token_logprobs[]][-'"$ng"':]')" \
	"$(printf '%s' "$glp" | jq -c '.token_logprobs')" "stream: the same log-probabilities as the whole reply"
expect_eq "$(printf '%s' "$chunks" | jq -s -c '[.[].logprobs | select(. != null) | .text_offset[]] | .[0]')" "0" \
	"stream: text_offset counts from the echoed prompt"

# --- chat: choices[].logprobs.content[] ---
chat='{"model": "stories260K", "messages": [{"role": "user", "content": "Tell me about a cat."}], "max_tokens": 20, "temperature": 0, "logprobs": true, "top_logprobs": 3}'
r=$(post /chat/completions "$chat")
expect_eq "$(status_of "$r")" "200" "chat with logprobs"
c=$(body_of "$r" | jq -c '.choices[0]')
content=$(printf '%s' "$c" | jq -r '.message.content')
expect_eq "$(printf '%s' "$c" | jq -r '[.logprobs.content[].token] | join("")')" "$content" "chat: the tokens spell the content"
expect_eq "$(printf '%s' "$c" | jq -c '[.logprobs.content[].top_logprobs | length] | unique')" "[3]" \
	"chat: three alternatives each"
expect_eq "$(printf '%s' "$c" | jq -c '[.logprobs.content[] | .top_logprobs[0].logprob == .logprob] | all')" "true" \
	"chat greedy: the chosen token is the likeliest"
expect_eq "$(printf '%s' "$c" | jq -c '[.logprobs.content[] | (.bytes | length) == (.token | utf8bytelength)] | all')" "true" \
	"chat: bytes are the token's UTF-8"
expect_eq "$(printf '%s' "$c" | jq -c '.logprobs | has("refusal")')" "true" "chat: OpenAI's logprobs shape"
r=$(post /chat/completions "$(printf '%s' "$chat" | jq -c '. + {stream: true}')" -N)
sc=$(printf '%s' "$r" | sed -n 's/^data: \({.*\)$/\1/p' | jq -s -c '[.[].choices[0].logprobs | select(. != null) | .content[]]')
expect_eq "$(printf '%s' "$sc" | jq -c '[.[].logprob]')" "$(printf '%s' "$c" | jq -c '[.logprobs.content[].logprob]')" \
	"chat stream: the same log-probabilities as the whole reply"
r=$(post /chat/completions '{"model": "stories260K", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}')
expect_eq "$(body_of "$r" | jq -c '.choices[0].logprobs')" "null" "chat without logprobs: null"

# --- bounds, in OpenAI's error shape ---
check_error() {  # RESPONSE STATUS PARAM LABEL
	expect_eq "$(status_of "$1")" "$2" "$4: HTTP $2"
	expect_eq "$(body_of "$1" | jq -r '[.error.type, .error.param, (.error.message | length > 0)] | @tsv')" \
		"$(printf 'invalid_request_error\t%s\ttrue' "$3")" "$4: error shape"
}
check_error "$(post /completions '{"model": "stories260K", "prompt": "Hi", "logprobs": 6}')" 400 logprobs "completions logprobs 6"
check_error "$(post /completions '{"model": "stories260K", "prompt": "Hi", "echo": "yes"}')" 400 echo "echo not a boolean"
check_error "$(post /chat/completions '{"model": "stories260K", "messages": [{"role": "user", "content": "Hi"}], "logprobs": true, "top_logprobs": 21}')" \
	400 top_logprobs "chat top_logprobs 21"
check_error "$(post /chat/completions '{"model": "stories260K", "messages": [{"role": "user", "content": "Hi"}], "top_logprobs": 2}')" \
	400 top_logprobs "top_logprobs without logprobs"
check_error "$(post /chat/completions '{"model": "stories260K", "messages": [{"role": "user", "content": "Hi"}], "logprobs": 3}')" \
	400 logprobs "chat logprobs not a boolean"
r=$(post /chat/completions '{"model": "stories260K", "messages": [{"role": "user", "content": "Hi"}], "logprobs": true, "top_logprobs": 20, "max_tokens": 2}')
expect_eq "$(body_of "$r" | jq -c '[.choices[0].logprobs.content[].top_logprobs | length] | unique')" "[20]" "top_logprobs 20 is allowed"

# --- the openai npm client ---
npmdir=$FT_BIN/test_deploy_npm
if command -v node >/dev/null && command -v npm >/dev/null &&
   { [ -d "$npmdir/node_modules/openai" ] ||
     (mkdir -p "$npmdir" && cd "$npmdir" && timeout 120 npm install --no-save openai >/dev/null 2>&1); }; then
	cat > "$FT_TMP/client.js" <<'EOF'
const { OpenAI } = require('openai');
(async () => {
	const client = new OpenAI({ baseURL: process.argv[2], apiKey: process.argv[4] });
	const chat = await client.chat.completions.create({ model: 'stories260K', max_tokens: 12,
		temperature: 0, messages: [{ role: 'user', content: 'Tell me about a cat.' }],
		logprobs: true, top_logprobs: 2 });
	const cmpl = await client.completions.create({ model: 'stories260K', prompt: process.argv[3],
		max_tokens: 1, temperature: 0, echo: true, logprobs: 2 });
	let status = 0;
	try {
		await client.completions.create({ model: 'stories260K', prompt: 'x', logprobs: 9 });
	} catch (e) { status = e.status; }
	const c = chat.choices[0].logprobs.content;
	console.log(JSON.stringify({ chat: c.map((t) => t.logprob), tops: c.map((t) => t.top_logprobs.length),
		echo: cmpl.choices[0].logprobs.token_logprobs, status }));
})().catch((e) => { console.error(e); process.exit(1); });
EOF
	key=$($F key create --name lp 2>/dev/null) || fail "key create"
	js=$(cd "$npmdir" && NODE_PATH=$npmdir/node_modules node "$FT_TMP/client.js" "$url" "$prompt" "$key") ||
		fail "openai npm client"
	expect_eq "$(printf '%s' "$js" | jq -c '.chat')" "$(printf '%s' "$c" | jq -c '[.logprobs.content[:12][].logprob]')" \
		"openai npm: chat logprobs as curl got them"
	expect_eq "$(printf '%s' "$js" | jq -c '[(.tops | unique), .status]')" '[[2],400]' "openai npm: top_logprobs and a 400"
	expect_eq "$(printf '%s' "$js" | jq -c '.echo[:-1]')" "$(printf '%s' "$lp" | jq -c '.token_logprobs[:-1]')" \
		"openai npm: echo's prompt log-probabilities"
else
	echo "skip: the openai npm package cannot be installed here (no node, npm or registry)"
fi

curl -sf "$url/models" >/dev/null && pass "the server serves on" || fail "the server stopped serving"
daemon_stop
expect_eq "$FT_EXIT" "0" "the daemon exits cleanly (under ASan: nothing leaked)"
finish
