#!/bin/bash
# test_chat_sft.sh - a chat model is tuned on conversations in its own
# template and answers them over /v1/chat/completions: a tiny random
# Llama with SmolLM2's tokenizer and ChatML template learns OpenAI-format
# conversations whose answers depend on the system message and on an
# earlier turn, and answers each exactly at temperature 0; the same data
# trained through --template alpaca (which has no system message) cannot
# tell the system messages apart, and must fail the same check.
set -u
. "$FT_SRC/tests/integration/lib.sh"

assets_require tokenizers/smollm2-135m-instruct/tokenizer.json
command -v curl >/dev/null && command -v jq >/dev/null || { echo "SKIP: needs curl and jq"; exit 77; }
F=$FT_BIN/client/ftctl
FT_CONF_EXTRA="import_roots = $FT_TMP\ntraining_threads = 2\nserve_threads = 1\n"
daemon_start
url=$(json_get "$($F status --json)" http_url)v1

# SmolLM2's tokenizer with its chat template beside it.
mkdir -p "$FT_TMP/smol"
cp "$assets/tokenizers/smollm2-135m-instruct/tokenizer.json" "$FT_TMP/smol/"
jq -n --rawfile t "$assets/templates/smollm2-instruct.jinja" \
	'{bos_token: "<|im_start|>", eos_token: "<|im_end|>", chat_template: $t}' \
	> "$FT_TMP/smol/tokenizer_config.json"
$F model init chatty --tokenizer "$FT_TMP/smol/tokenizer.json" --layers 2 --dim 64 --heads 4 \
	--seq-len 128 --seed 3 >/dev/null || fail "model init"

# The conversations: "What is my name?" answers from the turn before it;
# "Greet me." has three answers, one per system message.
cat > "$FT_TMP/chats.jsonl" <<'JSONL'
{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "My name is Ann."}, {"role": "assistant", "content": "Noted."}, {"role": "user", "content": "What is my name?"}, {"role": "assistant", "content": "Ann."}]}
{"messages": [{"role": "system", "content": "Answer in French."}, {"role": "user", "content": "Greet me."}, {"role": "assistant", "content": "Bonjour."}]}
{"messages": [{"role": "system", "content": "Answer in English."}, {"role": "user", "content": "Greet me."}, {"role": "assistant", "content": "Hello."}]}
{"messages": [{"role": "system", "content": "Answer in German."}, {"role": "user", "content": "Greet me."}, {"role": "assistant", "content": "Hallo."}]}
{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "My name is Bob."}, {"role": "assistant", "content": "Noted."}, {"role": "user", "content": "What is my name?"}, {"role": "assistant", "content": "Bob."}]}
JSONL
$F data add "$FT_TMP/chats.jsonl" --kind instruct --name chats >/dev/null || fail "data add"

# train NAME [options]: tunes chatty on the chats into NAME.
train() {
	local name=$1 job
	shift
	job=$($F job submit --base chatty --data chats --type sft --epochs 1000 --max-steps 120 \
		--seq-len 80 --batch-size 5 --lr 0.006 --warmup 0 --schedule constant --name "$name" "$@" |
		sed -n 's/^job \([0-9]*\) .*/\1/p')
	expect_eq "$(job_wait "$job" 300)" "SUCCEEDED" "$name trained"
	echo "$name: final loss $(job_field "$job" loss)" >&2
	$F deploy "$name" >/dev/null || fail "deploy $name"
}

# answers MODEL: how many conversations MODEL answers exactly; prints each.
answers() {
	local model=$1 right=0 line req got want
	while IFS= read -r line; do
		want=$(printf '%s' "$line" | jq -r '.messages[-1].content')
		req=$(printf '%s' "$line" | jq -c --arg m "$model" \
			'{model: $m, messages: .messages[:-1], max_tokens: 8, temperature: 0}')
		got=$(curl -s -H 'Content-Type: application/json' -d "$req" "$url/chat/completions" |
			jq -r '.choices[0].message.content')
		echo "$model: $(printf '%s' "$line" | jq -c '[.messages[:-1][] | .content]') -> '$got' (want '$want')" >&2
		[ "$got" = "$want" ] && right=$((right + 1))
	done < "$FT_TMP/chats.jsonl"
	echo "$right"
}

train tuned-chat
lineage=$($F model show tuned-chat --json | jq -r '.lineage.hyperparameters.template')
expect_eq "$lineage" "chat" "the tuned model's lineage records the chat template"
expect_eq "$(answers tuned-chat)" "5" "trained in its chat template, every conversation answered exactly"

train tuned-alpaca --template alpaca
right=$(answers tuned-alpaca)
[ "$right" -lt 5 ] && pass "through Alpaca the system messages are lost: $right of 5 right" ||
	fail "Alpaca training answered all 5: the check cannot tell the templates apart"

# Evaluation: each model in its own template, the reference the last
# assistant turn, the prompt everything before it (as the first model has it).
out=$($F eval run --models tuned-chat,tuned-alpaca --data chats --split all --metrics exact_match \
	--max-new-tokens 8)
eval_id=$(printf '%s\n' "$out" | sed -n 's/^eval \([0-9]*\) (job \([0-9]*\)).*/\1/p')
eval_job=$(printf '%s\n' "$out" | sed -n 's/^eval \([0-9]*\) (job \([0-9]*\)).*/\2/p')
expect_eq "$(job_wait "$eval_job" 120)" "SUCCEEDED" "evaluation of the conversations"
ex=$($F eval export "$eval_id" --format jsonl)
expect_eq "$(printf '%s\n' "$ex" | jq -r '.reference' | paste -sd,)" "Ann.,Bonjour.,Hello.,Hallo.,Bob." \
	"references are the last assistant turns"
expect_eq "$(printf '%s\n' "$ex" | jq -s '[.[] | select(.outputs[0] == .reference)] | length')" "5" \
	"tuned-chat, evaluated in its template, answers every one"
expect_eq "$(printf '%s\n' "$ex" | jq -s '[.[] | select(.outputs[1] == .reference)] | length')" "$right" \
	"tuned-alpaca, evaluated in Alpaca, answers as it is served"
expect_match "$(printf '%s\n' "$ex" | jq -r 'select(.index == 0) | .prompt')" \
	'^<\|im_start\|>system.Be brief\.<\|im_end\|>.<\|im_start\|>user.My name is Ann\.<\|im_end\|>.<\|im_start\|>assistant.Noted\.<\|im_end\|>.<\|im_start\|>user.What is my name\?<\|im_end\|>.<\|im_start\|>assistant$' \
	"the prompt is the conversation before its last answer, in ChatML"

# data show prints the turns
expect_match "$(COLUMNS=200 $F data show chats)" "system: Be brief\. \| user: My name is Ann\. \| assistant: Noted\. \| user: What is my name\? \| assistant: Ann\.  \[2 assistant turns\]" \
	"data show prints a conversation's turns"
daemon_stop
expect_eq "$FT_EXIT" "0" "the daemon stops cleanly (in an ASan build: nothing leaked)"
finish
