# web_state.sh - sourced after lib.sh: a daemon whose state holds what the
# dashboard shows, made by running it: stories260K imported, an instruction
# dataset, a finished SFT LoRA job (its tuned model) and a full job tuned
# from that model (a two-level lineage), and the evaluation of base against
# tuned that the first job queued on finishing.  Sets WEB_URL, JOB1, JOB2,
# TUNED, EVAL1.  Skips (77) without ../shared/assets or jq.

assets_require llama2c/stories260K.bin
if ! command -v jq >/dev/null || ! command -v curl >/dev/null; then
	echo "SKIP: jq and curl are needed (scripts/setup.sh installs them)"
	exit 77
fi
F=$FT_BIN/client/ftctl
FT_MAX_MESSAGE=16M
FT_CONF_EXTRA="import_roots = $assets:$FT_TMP\ntraining_threads = 1\n${WEB_CONF_EXTRA:-}"
daemon_start
WEB_URL=$(json_get "$($F status --json)" http_url)
WEB_URL=${WEB_URL%/}
[ -n "$WEB_URL" ] || fail "the daemon reports its dashboard URL"

$F model import "$assets/llama2c/stories260K.bin" --tokenizer "$assets/llama2c/tok512.bin" \
	>/dev/null || fail "model import"
awk 'NF > 3 && length($0) < 60 { if (prev != "") { gsub(/["\\]/, "", prev); gsub(/["\\]/, "");
	printf "{\"instruction\": \"Continue.\", \"input\": \"%s\", \"output\": \"%s\"}\n", prev, $0;
	n++ } prev = $0 } n == 120 { exit }' "$assets/corpora/tinyshakespeare/input.txt" > "$FT_TMP/lines.jsonl"
$F data add "$FT_TMP/lines.jsonl" --kind instruct --validation-split 0.1 --name lines >/dev/null ||
	fail "data add"
web_common="--data lines --type sft --seq-len 64 --batch-size 8 --eval-every 5 --save-every 5 \
	--lr 0.002 --template {instruction}_{input}_{output}"
JOB1=$($F job submit --base stories260K --method lora --max-steps 12 --name lines-lora \
	$web_common | sed -n 's/^job \([0-9]*\) .*/\1/p')
[ "$(job_wait "$JOB1" 300)" = SUCCEEDED ] || fail "job $JOB1 succeeds"
TUNED=lines-lora
JOB2=$($F job submit --base "$TUNED" --method full --max-steps 6 --name lines-lora-full \
	$web_common | sed -n 's/^job \([0-9]*\) .*/\1/p')
[ "$(job_wait "$JOB2" 300)" = SUCCEEDED ] || fail "job $JOB2 succeeds"
# Training queues the base-versus-tuned evaluation "job-<id>" itself.
EVAL1=
for _ in $(seq 1 600); do
	ev=$(curl -s "$WEB_URL/api/v1/evals" | jq -c ".evals[] | select(.name == \"job-$JOB1\")")
	case "$(printf '%s' "$ev" | jq -r .state)" in
	SUCCEEDED) EVAL1=$(printf '%s' "$ev" | jq -r .id); break;;
	FAILED|CANCELLED) fail "evaluation job-$JOB1: $(printf '%s' "$ev" | jq -r .error)";;
	esac
	sleep 0.2
done
[ -n "$EVAL1" ] || fail "the evaluation after job $JOB1 finishes"
# The evaluation job $JOB2 queued too must end before tests look at the queue.
for j in $($F job ls --state queued --quiet) $($F job ls --state running --quiet); do
	job_wait "$j" 300 >/dev/null
done
