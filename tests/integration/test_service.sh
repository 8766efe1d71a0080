#!/bin/bash
# test_service.sh - the registry, datasets and training queue through the
# real daemon, socket and SQLite state: import stories260K, add datasets
# (bad ones rejected with line numbers), run SFT and CPT jobs, full and LoRA,
# to registered tuned models that beat their base on held-out data; cancel
# a job; kill the daemon mid-job and see the job finish exactly as an
# uninterrupted run; refuse another user's cancel.
set -u
. "$FT_SRC/tests/integration/lib.sh"

assets_require llama2c/stories260K.bin
F=$FT_BIN/client/ftctl
FT_MAX_MESSAGE=16M
mkdir -p "$FT_TMP/export"
FT_CONF_EXTRA="import_roots = $assets:$FT_TMP\nexport_roots = $FT_TMP/export\ntraining_threads = 2\n"
daemon_start

# --- models ---
out=$($F model import "$assets/llama2c/stories260K.bin" --tokenizer "$assets/llama2c/tok512.bin" --json) ||
	fail "model import"
expect_match "$out" '"name": "stories260K"' "llama2.c model imported"
$F model import "$assets/llama2c/stories260K.bin" --tokenizer "$assets/llama2c/tok512.bin" >/dev/null 2>&1
expect_eq "$?" "1" "importing the same name again is refused"
msg=$($F model import /etc/passwd 2>&1)
expect_match "$msg" "PERMISSION_DENIED: .*outside the import roots" "paths outside import_roots refused"
head -c 5000 "$assets/llama2c/stories260K.bin" > "$FT_TMP/truncated.bin"
msg=$($F model import "$FT_TMP/truncated.bin" --tokenizer "$assets/llama2c/tok512.bin" 2>&1)
expect_match "$msg" "INVALID_ARGUMENT: not a loadable model" "truncated model refused"
expect_eq "$($F model ls --json | grep -c '"kind"')" "1" "nothing registered by failed imports"

# --- datasets: instruction pairs and domain text, from real corpora ---
# Continue a line of Shakespeare: instruction, input = a line, output = the next.
awk 'NF > 3 && length($0) < 60 { if (prev != "") { gsub(/["\\]/, "", prev); gsub(/["\\]/, "");
	printf "{\"instruction\": \"Continue.\", \"input\": \"%s\", \"output\": \"%s\"}\n", prev, $0;
	n++ } prev = $0 } n == 240 { exit }' "$assets/corpora/tinyshakespeare/input.txt" > "$FT_TMP/lines.jsonl"
out=$($F data add "$FT_TMP/lines.jsonl" --kind instruct --validation-split 0.1 --name lines --json) ||
	fail "data add instruct"
expect_eq "$(json_get "$out" validation_records)" "24" "24 records held out"
head -c 20000 "$assets/corpora/sotu/sotu.txt" > "$FT_TMP/sotu.txt"
$F data add "$FT_TMP/sotu.txt" --kind text --validation-split 0.1 --name sotu >/dev/null || fail "data add text"
pass "text corpus added"
printf '{"instruction": "a", "output": "b"}\n{"instruction": "c", "output": "d"}\n{"instruction": "e", "output": \n' > "$FT_TMP/bad.jsonl"
msg=$($F data add "$FT_TMP/bad.jsonl" --kind instruct 2>&1)
expect_eq "$?" "1" "bad dataset refused"
expect_match "$msg" "bad.jsonl:3: " "the error names the line"
printf '{"instruction": "a", "output": 5}\n' > "$FT_TMP/bad2.jsonl"
msg=$($F data validate "$FT_TMP/bad2.jsonl" --kind instruct 2>&1)
expect_match "$msg" "bad2.jsonl:1: output: " "the error names the field"
expect_eq "$($F data ls --json | grep -c '"kind"')" "2" "nothing stored for bad datasets"

# --- jobs ---
common="--seq-len 64 --batch-size 8 --eval-every 10 --save-every 5 --lr 0.002 --template {instruction}_{input}_{output}"
job_id() { sed -n 's/^job \([0-9]*\) .*/\1/p'; }
check_improved() {  # ID LABEL
	local state val base
	state=$(job_wait "$1" 600)
	expect_eq "$state" "SUCCEEDED" "$2 succeeded"
	val=$(job_field "$1" val_loss)
	base=$(job_field "$1" base_val_loss)
	awk -v v="$val" -v b="$base" 'BEGIN { exit !(v < b) }' || fail "$2: validation loss $val not below base $base"
	pass "$2: validation loss $base -> $val"
}

sft_lora=$($F job submit --base stories260K --data lines --type sft --method lora --lora-rank 8 \
	--lora-targets q,k,v,o --max-steps 30 --name lines-lora $common | job_id)
sft_full=$($F job submit --base stories260K --data lines --type sft --method full --max-steps 20 $common | job_id)
cpt_full=$($F job submit --base stories260K --data sotu --type cpt --method full --max-steps 20 --seq-len 64 \
	--batch-size 8 --lr 0.002 | job_id)
cpt_lora=$($F job submit --base stories260K --data sotu --type cpt --method lora --max-steps 20 --seq-len 64 \
	--batch-size 8 --lr 0.005 | job_id)
check_improved "$sft_lora" "SFT LoRA"
check_improved "$sft_full" "SFT full"
check_improved "$cpt_full" "CPT full"
check_improved "$cpt_lora" "CPT LoRA"

show=$($F model show lines-lora --json) || fail "tuned model registered under its name"
expect_match "$show" '"kind": "tuned"' "tuned model kind"
expect_match "$show" '"base_model": "stories260K"' "lineage names the base"
expect_match "$show" "\"blake2b\": \"$(json_get "$($F data show lines --json)" blake2b)\"" "lineage has the dataset hash"
gen=$($F model show "stories260K-$sft_full" --json) || fail "default tuned name <base>-<job>"
pass "default tuned model name"
$F model rm stories260K >/dev/null 2>&1
expect_eq "$?" "1" "base with tuned descendants is not removed without --force"

# --- export: a tuned model back to the formats other tools read ---
$F model export lines-lora --format hf --out "$FT_TMP/export/hf" >/dev/null || fail "export hf"
[ -s "$FT_TMP/export/hf/model.safetensors" ] && [ -s "$FT_TMP/export/hf/config.json" ] &&
	[ -s "$FT_TMP/export/hf/tokenizer.bin" ] || fail "hf export has weights, config and tokenizer"
pass "exported as a Hugging Face directory"
$F model import "$FT_TMP/export/hf" --name lines-lora-again >/dev/null || fail "re-import the export"
pass "the export imports again"
$F model export lines-lora --format gguf --dtype f16 --out "$FT_TMP/export/gguf" >/dev/null || fail "export gguf"
expect_eq "$(head -c 4 "$FT_TMP/export/gguf/model.gguf")" "GGUF" "exported as GGUF"
$F model export lines-lora --format gguf --dtype q8_0 --out "$FT_TMP/export/gguf8" >/dev/null || fail "export gguf q8_0"
"$FT_BIN/engine/ftengine" inspect --model "$FT_TMP/export/gguf8/model.gguf" | grep -q "attn_q.weight  *type 8 " ||
	fail "q8_0 export holds Q8_0 tensors"
pass "exported as GGUF Q8_0"
$F model export lines-lora --format ollama --out "$FT_TMP/export/oll" >/dev/null || fail "export ollama"
[ "$(head -c 4 "$FT_TMP/export/oll/model.gguf")" = GGUF ] && grep -q '^FROM ./model.gguf$' "$FT_TMP/export/oll/Modelfile" ||
	fail "ollama export: model.gguf and its Modelfile"
pass "exported for ollama"
msg=$($F model export lines-lora --format hf --out /tmp/ft-not-an-export-root 2>&1)
expect_match "$msg" "PERMISSION_DENIED: .*outside" "exports only into export_roots"

# --- a LoRA model is its adapter, run on its base without a merged copy ---
expect_match "$show" '"format": "lora"' "LoRA model registered in format lora"
expect_match "$show" '"name": "adapter.safetensors"' "its directory holds the adapter"
[[ "$show" =~ \"name\":\ \"model\. ]] && fail "a LoRA model stores no full weights"
# the model's own size comes first (files follow it in ModelInfo)
size_of() { $F model show "$1" --json | grep -o '"size": [0-9]*' | head -1 | tr -dc 0-9; }
base_size=$(size_of stories260K)
lora_size=$(size_of lines-lora)
awk -v a="$lora_size" -v b="$base_size" 'BEGIN { exit !(a * 4 < b) }' ||
	fail "adapter ($lora_size bytes) not much smaller than its base ($base_size)"
pass "LoRA model stores $lora_size bytes beside its base's $base_size"
expect_match "$($F model ls)" "lines-lora +tuned .* lora +stories260K" \
	"model ls shows format lora and the base"
expect_match "$($F model show lines-lora)" "base +stories260K \(a LoRA adapter on it" "model show names the base"
gen_text() { $F generate "$1" "Once upon a time" --raw --max-new-tokens 40 --seed 7 2>/dev/null; }
tuned=$(gen_text lines-lora) && [ -n "$tuned" ] || fail "generate with base + adapter"
expect_eq "$(gen_text lines-lora-again)" "$tuned" "base + adapter generates as its merged hf export"
base_gen=$(gen_text stories260K)
[ "$base_gen" != "$tuned" ] || fail "the adapter changes what the base generates"
pass "the adapter changes what the base generates"
ev=$($F eval run --models lines-lora,lines-lora-again --data lines --limit 2 --max-new-tokens 8 --seed 5 |
	sed -n 's/^eval [0-9]* (job \([0-9]*\)).*/\1/p')
expect_eq "$(job_wait "$ev" 300)" "SUCCEEDED" "evaluation of base + adapter"
$F model export lines-lora --format peft --out "$FT_TMP/export/peft" >/dev/null || fail "export peft"
[ -s "$FT_TMP/export/peft/adapter_model.safetensors" ] || fail "peft export has adapter_model.safetensors"
expect_match "$(cat "$FT_TMP/export/peft/adapter_config.json")" '"base_model_name_or_path": "stories260K"' \
	"peft export names its base"
msg=$($F model export stories260K --format peft --out "$FT_TMP/export/peft-full" 2>&1)
expect_match "$msg" "FAILED_PRECONDITION: 'stories260K' is a full model" "peft export of a full model refused"
msg=$($F model rm stories260K --force 2>&1)
expect_match "$msg" "FAILED_PRECONDITION: the LoRA adapters .*lines-lora.* run on 'stories260K'" \
	"a base with adapters is not removed even with --force"
$F model rm "stories260K-$cpt_lora" >/dev/null || fail "remove a LoRA model"
expect_eq "$(gen_text stories260K)" "$base_gen" "the base runs as before once its adapter is removed"
$F model show "stories260K-$cpt_lora" >/dev/null 2>&1 && fail "removed LoRA model still listed"
pass "LoRA model removed"

# --- bad hyperparameters ---
msg=$($F job submit --base stories260K --data lines --type sft --lr 5 2>&1)
expect_match "$msg" "INVALID_ARGUMENT: --lr 5 is out of range \(0, 1\]" "lr range checked"
msg=$($F job submit --base stories260K --data lines --type cpt 2>&1)
expect_match "$msg" "needs a text dataset" "type and dataset kind must match"
msg=$($F job submit --base stories260K --data lines --type sft --seq-len 100000 2>&1)
expect_match "$msg" "seq-len 100000 is out of range" "seq-len bounded by the model context"

# --- cancel, and another user's cancel refused ---
long=$($F job submit --base stories260K --data lines --type sft --epochs 500 $common | job_id)
for _ in $(seq 1 300); do
	[ "$(job_field "$long" step)" -ge 2 ] 2>/dev/null && break
	sleep 0.1
done
# An evaluation queued behind it holds the models it compares.
ev_job=$($F eval run --models stories260K,lines-lora --data lines --limit 2 |
	sed -n 's/^eval [0-9]* (job \([0-9]*\)).*/\1/p')
msg=$($F model rm lines-lora 2>&1)
expect_match "$msg" "FAILED_PRECONDITION: model 'lines-lora' is used by 1 queued" \
	"a model in a queued evaluation is not removed"
$F job cancel "$ev_job" >/dev/null || fail "cancel the queued evaluation"
if command -v setpriv >/dev/null && [ "$(id -u)" = 0 ]; then
	chmod 755 "$FT_TMP" "$FT_TMP/run"
	chgrp nogroup "${FT_SOCKET#ipc://}"
	msg=$(setpriv --reuid=nobody --regid=nogroup --clear-groups "$F" job cancel "$long" 2>&1)
	expect_match "$msg" "PERMISSION_DENIED" "another uid cannot cancel the job"
else
	echo "SKIP: another-user check needs root and setpriv"
fi
$F job cancel "$long" >/dev/null || fail "job cancel"
expect_eq "$(job_wait "$long" 60)" "CANCELLED" "running job cancelled"

# --- crash: SIGKILL mid-job, restart, same result as an uninterrupted run ---
spec="--base stories260K --data lines --type sft --method lora --max-steps 40 $common --seed 7"
ref=$($F job submit $spec | job_id)
expect_eq "$(job_wait "$ref" 600)" "SUCCEEDED" "reference run"
victim=$($F job submit $spec | job_id)
for _ in $(seq 1 600); do
	[ "$(job_field "$victim" checkpoint_step)" -ge 10 ] 2>/dev/null && break
	sleep 0.05
done
daemon_kill
# The kill must land mid-job, after a checkpoint and before the end, or the
# restart below tests nothing.
at=$(sqlite3 "$FT_STATE/ftuned.db" "select state || ' ' || checkpoint_step || ' ' || step from jobs where id=$victim")
read -r st ck step <<<"$at"
[ "$st" = RUNNING ] && [ "${ck:-0}" -ge 10 ] && [ "${step:-40}" -lt 40 ] ||
	fail "daemon killed mid-job: got state, checkpoint step and step '$at'"
pass "daemon killed mid-job (checkpoint at step $ck, step $step of 40)"
daemon_start
expect_eq "$(job_wait "$victim" 600)" "SUCCEEDED" "interrupted job finished after restart"
expect_eq "$(job_field "$victim" val_loss)" "$(job_field "$ref" val_loss)" "same final validation loss"
expect_match "$($F job logs "$victim")" "resumed from the checkpoint" "resumed, not restarted"
$F model show "stories260K-$victim" >/dev/null || fail "resumed job registered its model"
pass "resumed job registered its model"

daemon_stop
expect_eq "$FT_EXIT" "0" "clean shutdown"
finish
