#!/bin/bash
# test_eval.sh - the evaluation harness end to end through the daemon:
# fine-tune stories260K on a small labelling task built from real text
# (is a line of Shakespeare a question, an exclamation or a statement?),
# evaluate base against tuned, and see the tuned model win with a
# confidence interval that excludes zero on the loss and on generation
# metrics; the same evaluation twice gives identical numbers; the
# automatic post-training evaluation exists, and with --general-data a
# second one on general text (State of the Union addresses) measures
# forgetting; show, ls, export, generate.
set -u
. "$FT_SRC/tests/integration/lib.sh"

assets_require llama2c/stories260K.bin
F=$FT_BIN/client/ftctl
FT_MAX_MESSAGE=16M
FT_CONF_EXTRA="import_roots = $assets:$FT_TMP\ntraining_threads = 2\n"
daemon_start

$F model import "$assets/llama2c/stories260K.bin" --tokenizer "$assets/llama2c/tok512.bin" >/dev/null ||
	fail "model import"
# Lines of tinyshakespeare labelled by their final punctuation.
awk 'NF > 3 && length($0) < 60 && /[.?!]$/ { c = substr($0, length($0));
	l = c == "?" ? "question" : c == "!" ? "exclamation" : "statement"; gsub(/["\\]/, "");
	printf "{\"instruction\": \"Kind?\", \"input\": \"%s\", \"output\": \"%s\"}\n", $0, l; n++ }
	n == 400 { exit }' "$assets/corpora/tinyshakespeare/input.txt" > "$FT_TMP/kinds.jsonl"
$F data add "$FT_TMP/kinds.jsonl" --kind instruct --validation-split 0.1 --seed 3 --name kinds >/dev/null ||
	fail "data add"
# The prompt ends in a newline, not a space: a prompt ending in a space is
# tokenized differently alone (generation) than joined to its response
# (training), and the tuned model then generates poorly.
# General-domain text for the forgetting check: 60 paragraphs of speeches.
awk 'BEGIN { RS = ""; n = 0 } NF > 20 { print $0 "\n"; if (++n == 60) exit }' \
	"$assets/corpora/sotu/sotu.txt" > "$FT_TMP/general.txt"
$F data add "$FT_TMP/general.txt" --kind text --name general >/dev/null || fail "data add general"
# --general-data is checked at submission like --data.
base_args=(--base stories260K --data kinds --type sft --method full --max-steps 40 --seq-len 48)
msg=$($F job submit "${base_args[@]}" --general-data nosuch 2>&1)
expect_match "$msg" "NOT_FOUND: no dataset 'nosuch' for --general-data" "missing --general-data refused"
msg=$($F job submit "${base_args[@]}" --general-data kinds 2>&1)
expect_match "$msg" "INVALID_ARGUMENT: --general-data needs a text dataset; 'kinds' holds instruct" \
	"instruct --general-data refused"
tpl=$'{instruction} {input}\n{output}'
job=$($F job submit "${base_args[@]}" --batch-size 16 --lr 0.003 --template "$tpl" --name kinds-tuned \
	--general-data general | sed -n 's/^job \([0-9]*\) .*/\1/p')
# In use from submission until its evaluation ends (the training job, then
# the evaluation job hold it).
msg=$($F data rm general 2>&1)
expect_match "$msg" "FAILED_PRECONDITION: dataset 'general' is used by 1 queued or running job" \
	"general dataset not removed while its job is queued or running"
expect_match "$($F job show "$job")" "general +general \(base and tuned loss on it after training\)" \
	"job show names the general dataset"
expect_eq "$(job_wait "$job" 120)" "SUCCEEDED" "fine-tuning job succeeded"

# --- the automatic evaluations after training ---
logs=$($F job logs "$job")
expect_match "$logs" "queued evaluation [0-9]+ \(job [0-9]+\): base against tuned on the validation split" \
	"training log names its evaluation"
auto_job=$(printf '%s\n' "$logs" | sed -n 's/.*queued evaluation [0-9]* (job \([0-9]*\)): .* validation split/\1/p')
expect_eq "$(job_wait "$auto_job" 120)" "SUCCEEDED" "automatic evaluation succeeded"
out=$($F eval ls)
expect_match "$out" "job-$job +$auto_job +SUCCEEDED +[^ ]+ +stories260K,kinds-tuned +kinds +40" "eval ls lists it"
expect_match "$logs" "queued evaluation [0-9]+ \(job [0-9]+\): base against tuned on general text general, to measure forgetting" \
	"training log names its forgetting evaluation"
read -r gen_eval gen_job <<<"$(printf '%s\n' "$logs" |
	sed -n 's/.*queued evaluation \([0-9]*\) (job \([0-9]*\)): .* general text.*/\1 \2/p')"
expect_eq "$(job_wait "$gen_job" 120)" "SUCCEEDED" "forgetting evaluation succeeded"
expect_match "$($F eval ls)" "job-$job-general +$gen_job +SUCCEEDED +[^ ]+ +stories260K,kinds-tuned +general +60" \
	"eval ls lists the forgetting evaluation, every paragraph"
out=$($F eval show "$gen_eval")
expect_match "$out" "loss +stories260K +[0-9.]+ \[[0-9.]+, [0-9.]+\]" "forgetting: base loss with its interval"
expect_match "$out" "loss +kinds-tuned +[0-9.]+ \[[0-9.]+, [0-9.]+\] +[+-][0-9.]+ \[[+-][0-9.]+, [+-][0-9.]+\] +[0-9]+/[0-9]+/[0-9]+" \
	"forgetting: tuned loss with its paired difference and interval"
# Full fine-tuning at a high rate on labels forgets how to tell stories.
lo=$(printf '%s\n' "$out" | sed -n 's/^loss  *kinds-tuned .* \[\([+-][0-9.]*\), [+-][0-9.]*\] .*/\1/p')
awk -v l="$lo" 'BEGIN { exit !(l > 0) }' && pass "forgetting: tuned loss higher, interval from $lo" ||
	fail "forgetting: difference interval starts at '$lo', not above zero"
expect_match "$out" "perplexity +kinds-tuned" "forgetting: perplexity"
expect_match "$($F job logs "$gen_job")" "teacher-forced loss: [0-9.]+ examples/s" "forgetting: loss speed logged"
auto_eval=$(printf '%s\n' "$logs" | sed -n 's/.*queued evaluation \([0-9]*\) (job [0-9]*): .* validation split/\1/p')
out=$($F job show "$job")
expect_match "$out" "evaluation +$auto_eval job-$job \(job $auto_job, SUCCEEDED\): ftctl eval show $auto_eval" \
	"job show points at its evaluation"
expect_match "$out" " +$gen_eval job-$job-general \(job $gen_job, SUCCEEDED\)" "and at its forgetting evaluation"
expect_eq "$($F job show "$job" --json | jq -r '[.evals[].name] | join(",")')" "job-$job,job-$job-general" \
	"job show --json lists both evaluations"
expect_eq "$($F job show "$auto_job" --json | jq -r '.evals | length')" "0" "an evaluation job queued none"
web=$(json_get "$($F status --json)" http_url)
expect_eq "$(curl -s "${web}api/v1/jobs/$job" | jq -r '[.evals[] | "\(.id):\(.job_id)"] | join(",")')" \
	"$auto_eval:$auto_job,$gen_eval:$gen_job" "dashboard API: the job's evaluations"
$F data rm general >/dev/null || fail "general dataset removed once its evaluation ended"

# --- an evaluation asked for, twice with the same seed ---
run_eval() {
	$F eval run --models stories260K,kinds-tuned --data kinds --max-new-tokens 8 --seed 5 \
		--template "$tpl" --name "$1" | sed -n 's/^eval \([0-9]*\) (job \([0-9]*\)).*/\1 \2/p'
}
read -r e1 j1 <<<"$(run_eval first)"
read -r e2 j2 <<<"$(run_eval second)"
[ -n "$e1" ] && [ -n "$e2" ] || fail "eval run printed no ids"
expect_eq "$(job_wait "$j1" 120)" "SUCCEEDED" "evaluation job succeeded"
expect_eq "$(job_wait "$j2" 120)" "SUCCEEDED" "second evaluation job succeeded"
md1=$($F eval export "$e1" --format md)
md2=$($F eval export "$e2" --format md)
expect_eq "$(printf '%s\n' "$md1" | tail -n +2)" "$(printf '%s\n' "$md2" | tail -n +2)" \
	"same seed: identical summary, outputs and per-example values"

# Summary rows: | metric | tuned - base | mean | [lo, hi] | | W/T/L |
ci() { printf '%s\n' "$md1" | awk -F'|' -v m=" $1 " '$2 == m && $3 ~ / - / {
	gsub(/[][ ]/, "", $5); split($5, b, ","); print b[1], b[2] }'; }
read -r lo hi <<<"$(ci loss)"
awk -v h="$hi" 'BEGIN { exit !(h < 0) }' && pass "loss: difference CI [$lo, $hi] below zero" ||
	fail "loss: difference CI [$lo, $hi] does not exclude zero"
for m in accuracy chrf token_f1; do
	read -r lo hi <<<"$(ci $m)"
	awk -v l="$lo" 'BEGIN { exit !(l > 0) }' && pass "$m: difference CI [$lo, $hi] above zero" ||
		fail "$m: difference CI [$lo, $hi] does not exclude zero"
done

# --- show, json, export formats ---
out=$($F eval show "$e1")
expect_match "$out" "METRIC +MODEL +MEAN \[95% CI\] +VS FIRST \[95% CI\] +W/T/L" "show: summary heading"
expect_match "$out" "loss +kinds-tuned +[0-9.]+ \[[0-9.]+, [0-9.]+\] +-[0-9.]+ \[-[0-9.]+, -[0-9.]+\] +[0-9]+/[0-9]+/[0-9]+" \
	"show: tuned loss with its paired difference"
expect_match "$out" "perplexity +stories260K" "show: perplexity"
expect_match "$out" "Biggest wins" "show: biggest wins"
expect_match "$out" "# +DELTA +REFERENCE +stories260K +kinds-tuned" "show: wins side by side"
json=$($F eval show "$e1" --json --examples 3)
expect_match "$json" '"dataset_blake2b": "[0-9a-f]{64}"' "show --json: dataset hash"
expect_match "$json" '"hashes": \{' "show --json: model file hashes"
expect_match "$json" '"sort": "token_f1"' "show --json: wins sorted by the first generation metric"
csv=$($F eval export "$e1" --format csv)
expect_eq "$(printf '%s\n' "$csv" | head -1 | tr -d '\r')" '"index","prompt","reference","output:stories260K","output:kinds-tuned","metrics"' "csv header"
expect_eq "$(printf '%s\n' "$csv" | grep -c '^"[0-9]*","')" "40" "csv: one row per example"
jsonl=$($F eval export "$e1" --format jsonl)
expect_eq "$(printf '%s\n' "$jsonl" | grep -c '^{"index":')" "40" "jsonl: one line per example"
expect_match "$(printf '%s\n' "$jsonl" | head -1)" '"metrics":\{"loss":\[[0-9.e-]+,[0-9.e-]+\]' "jsonl: per-model values"
expect_match "$(printf '%s\n' "$jsonl" | head -1)" '"outputs":\["[^"]*","[^"]*"\]' "jsonl: outputs in model order"
$F eval export "$e1" --format xml >/dev/null 2>&1
expect_eq "$?" "2" "unknown export format is a usage error"

# --- refusals ---
msg=$($F eval run --models stories260K,nosuch --data kinds 2>&1)
expect_match "$msg" "NOT_FOUND: no model 'nosuch'" "unknown model refused"
msg=$($F eval run --models stories260K --data kinds --metrics loss,bleu 2>&1)
expect_match "$msg" "INVALID_ARGUMENT: unknown metric 'bleu'" "unknown metric refused"
msg=$($F eval run --models stories260K --data kinds --max-new-tokens 5000 2>&1)
expect_match "$msg" "max-new-tokens 5000 is out of range" "range checked"
$F eval show 9999 >/dev/null 2>&1
expect_eq "$?" "1" "unknown evaluation exits 1"

# --- generate ---
out=$($F generate kinds-tuned $'Kind? Who goes there?\n' --raw --max-new-tokens 6 2>/dev/null)
expect_match "$out" "question|statement|exclamation" "generate with the tuned model gives a label"
a=$($F generate stories260K "Once upon a time" --raw --temperature 0.8 --seed 9 2>/dev/null)
b=$($F generate stories260K "Once upon a time" --raw --temperature 0.8 --seed 9 2>/dev/null)
expect_eq "$a" "$b" "generate: same seed, same text"
msg=$($F generate stories260K "x" --max-new-tokens 600 2>&1)
expect_match "$msg" "INVALID_ARGUMENT: --max-new-tokens 600 is over 512" "generate length capped"

# --- cancel ---
e3=$($F eval run --models stories260K,kinds-tuned --data kinds --split all --max-new-tokens 64 | \
	sed -n 's/^eval [0-9]* (job \([0-9]*\)).*/\1/p')
[ -n "$e3" ] || fail "eval run printed no ids"
for _ in $(seq 1 600); do
	[ "$(job_field "$e3" step)" -ge 20 ] 2>/dev/null && break
	sleep 0.02
done
$F job cancel "$e3" >/dev/null || fail "cancel an evaluation job"
expect_eq "$(job_wait "$e3" 60)" "CANCELLED" "running evaluation cancelled"
expect_match "$($F job logs "$e3")" "cancelled after [0-9]+ of 800 examples" "cancelled between examples"

# --- SIGKILL mid-evaluation: after a restart it runs again from the start
# and ends with exactly the numbers of an uninterrupted run ---
spec=(--models stories260K,kinds-tuned --data kinds --split all --max-new-tokens 8 --seed 5 --template "$tpl")
read -r ref ref_job <<<"$($F eval run "${spec[@]}" | sed -n 's/^eval \([0-9]*\) (job \([0-9]*\)).*/\1 \2/p')"
expect_eq "$(job_wait "$ref_job" 120)" "SUCCEEDED" "reference evaluation"
[ -n "$ref_job" ] || fail "eval run printed no ids"
read -r vic vic_job <<<"$($F eval run "${spec[@]}" | sed -n 's/^eval \([0-9]*\) (job \([0-9]*\)).*/\1 \2/p')"
[ -n "$vic_job" ] || fail "eval run printed no ids"
for _ in $(seq 1 600); do
	[ "$(job_field "$vic_job" step)" -ge 100 ] 2>/dev/null && break
	sleep 0.02
done
daemon_kill
daemon_start
expect_eq "$(job_wait "$vic_job" 120)" "SUCCEEDED" "interrupted evaluation finished after restart"
expect_eq "$($F eval export "$vic" --format md | tail -n +2)" "$($F eval export "$ref" --format md | tail -n +2)" \
	"restarted evaluation equals the uninterrupted one"
expect_match "$($F job logs "$vic_job")" "started on the local executor.*started on the local executor" \
	"the evaluation ran twice"

daemon_stop
finish
