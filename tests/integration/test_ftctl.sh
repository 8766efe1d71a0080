#!/bin/bash
# test_ftctl.sh - ftctl itself: usage errors name the bad option and exit 2,
# help and the bash completion come from the command table, an unreachable
# daemon is exit 3; then the model and data commands against a real ftuned
# (human tables within 100 columns, --json, refusals with exit 1).
set -u
. "$FT_SRC/tests/integration/lib.sh"

ftctl=$FT_BIN/client/ftctl

# run ARGS...: runs ftctl, leaving stdout in $out, stderr in $err, status in $rc.
run() {
	out=$("$ftctl" "$@" 2>"$FT_TMP/err")
	rc=$?
	err=$(cat "$FT_TMP/err")
}

# --- usage errors: exit 2, the message names the problem, then the usage ---
run job submit --base m --data d --type sft --epochs abc
expect_eq "$rc" "2" "non-number exits 2"
expect_match "$err" "--epochs takes a whole number .* not 'abc'" "message names the option and value"
expect_match "$err" "usage: ftctl job submit --base MODEL --data DATASET --type sft\|cpt" "usage follows"
run job submit --base m --data d --type sft --lr fast
expect_match "$err" "--lr takes a number such as 0.5 or 1e-4, not 'fast'" "float option"
run job submit --base m --data d --type sft --epochs -1
expect_eq "$rc" "2" "negative count refused"
run job submit --base m --type sft
expect_eq "$rc" "2" "missing required option exits 2"
expect_match "$err" "--data DATASET is required" "names the required option"
run job submit --base m --data d --type rlhf
expect_match "$err" "--type must be one of sft\|cpt, not 'rlhf'" "bad choice"
run job submit --base m --data d --type sft --frobnicate 3
expect_eq "$rc" "2" "unknown option exits 2"
expect_match "$err" "unknown option --frobnicate" "names the unknown option"
run job submit --base m --data d --type sft --seq-len
expect_match "$err" "--seq-len needs a value" "option without its value"
run data add --kind text
expect_match "$err" "data add: missing FILE" "missing positional"
run data add "$FT_TMP/nothing.txt" --kind text
expect_eq "$rc" "2" "unreadable file exits 2"
expect_match "$err" "nothing.txt: No such file or directory" "names the file"
echo x > "$FT_TMP/x.txt"
run data add "$FT_TMP/x.txt" --kind text --validation-split 0.1 --validation "$FT_TMP/x.txt"
expect_match "$err" "give --validation-split or --validation, not both" "exclusive options"
run model import "$FT_TMP/no-model.bin"
expect_eq "$rc" "2" "missing model path exits 2"
run job show twelve
expect_match "$err" "job ids are positive numbers, not 'twelve'" "job ids are numbers"
run model rm a b
expect_match "$err" "unexpected argument 'b'" "extra argument"
run job
expect_eq "$rc" "2" "group without a command exits 2"
expect_match "$err" "job watch ID" "group usage lists its commands"
run job frob
expect_match "$err" "unknown or ambiguous command 'job frob'; job commands: submit ls show cancel logs watch" "unknown subcommand"

# --- help, from the table ---
run help job submit
expect_eq "$rc" "0" "help job submit"
expect_match "$out" "usage: ftctl job submit --base MODEL --data DATASET --type sft\|cpt \[OPTIONS\]" "help usage line"
expect_match "$out" "--lora-rank R +LoRA rank" "help lists options"
expect_match "$out" "--schedule constant\|linear\|cosine" "help shows choices"
# ranges and defaults from the table the daemon checks specs against (proto/ft_spec.c)
expect_match "$out" "--lora-rank R +LoRA rank; \[1, 1024\], default 8 \(LoRA only\)" \
	"help shows a hyperparameter's range and default"
expect_match "$out" "--clip C .*; \[0, 1e\+06\) \(0 turns clipping off\)" "help shows open ends and notes"
expect_match "$out" "--method full\|lora" "help lists an enum's words"
run job submit --help
expect_match "$out" "--early-stop PATIENCE" "--help after a command"
run help
longest=$(printf '%s\n' "$out" | awk '{ if (length($0) > n) n = length($0) } END { print n }')
[ "$longest" -le 100 ] && pass "help fits 100 columns" || fail "help line of $longest columns"
run help data nope
expect_eq "$rc" "2" "help for no command"

# --- bash completion, generated from the same table ---
run completion bash
expect_eq "$rc" "0" "completion bash"
printf '%s\n' "$out" > "$FT_TMP/ftctl.bash"
bash -n "$FT_TMP/ftctl.bash" && pass "completion script parses" || fail "completion script syntax"
complete_words() {
	bash -c 'source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _ftctl; echo "${COMPREPLY[*]}"' \
	    _ "$FT_TMP/ftctl.bash" "$@"
}
expect_eq "$(complete_words ftctl mo)" "model" "completes a command"
expect_eq "$(complete_words ftctl job "")" "submit ls show cancel logs watch" "completes subcommands"
expect_eq "$(complete_words ftctl job submit --type "")" "sft cpt" "completes choices"
expect_eq "$(complete_words ftctl data add f --validation-s)" "--validation-split" "completes options"
expect_eq "$(complete_words ftctl job ls --state R)" "RUNNING" "completes states"
run completion zsh
expect_eq "$rc" "2" "only bash completion"

# --- an unreachable daemon is exit 3 for every RPC ---
for cmd in "model ls" "data show x" "job ls" "job watch 1"; do
	# shellcheck disable=SC2086
	run --socket "ipc://$FT_TMP/nobody.sock" --timeout 500 $cmd
	expect_eq "$rc" "3" "unreachable: $cmd"
done

# --- against the daemon: models and datasets ---
[ -n "${FT_ASSETS:-}" ] && [ -f "$FT_ASSETS/llama2c/stories260K.bin" ] || { echo "assets missing: skipping the daemon part"; finish; }
printf 'web_root = %s/web\nlog_level = debug\nimport_roots = %s\n' "$FT_TMP" "$FT_ASSETS" > "$FT_TMP/ftctl.conf"
daemon_start -f "$FT_TMP/ftctl.conf"

run model import "$FT_ASSETS/llama2c/stories260K.bin" --tokenizer "$FT_ASSETS/llama2c/tok512.bin" --name tiny
expect_eq "$rc" "0" "model import"
expect_match "$out" "model tiny \(id [0-9]+\)" "import shows the model"
expect_match "$out" "params +260.0K" "import shows parameters"
run model import "$FT_ASSETS/llama2c/stories260K.bin" --tokenizer "$FT_ASSETS/llama2c/tok512.bin" --name tiny
expect_eq "$rc" "1" "second import under the same name refused"
expect_match "$err" "^ftctl: [A-Z_]+: " "refusal names the code"
run model ls --quiet
expect_eq "$out" "tiny" "model ls --quiet"
run model ls
expect_match "$out" "ID +NAME +KIND +ARCH +PARAMS +SIZE" "model ls table"
run model show tiny --json
expect_eq "$(json_get "$out" arch)" "llama" "model show --json"
expect_eq "$(json_get "$out" n_layers)" "5" "config embedded as JSON"
run model show nosuch
expect_eq "$rc" "1" "unknown model exits 1"
expect_match "$err" "ftctl: NOT_FOUND: " "NOT_FOUND"
run --json model show nosuch
expect_match "$out" '"code": "NOT_FOUND"' "refusal as JSON"

long=dataset-with-a-long-name-that-would-push-the-table-past-the-edge-of-a-terminal
run data add "$FT_ASSETS/datasets/identity.json" --kind instruct --validation-split 0.1 --seed 7 --name $long
expect_eq "$rc" "0" "data add"
expect_match "$out" "added dataset $long \(id [0-9]+\): [0-9]+ records \+ [0-9]+ for validation" "data add summary"
run data ls
longest=$(printf '%s\n' "$out" | awk '{ if (length($0) > n) n = length($0) } END { print n }')
[ "$longest" -le 100 ] && pass "data ls fits 100 columns" || fail "data ls line of $longest columns"
expect_match "$out" "dataset-with-a-long-name.*~" "long name cut with ~"
run data show $long
expect_match "$out" "records +[0-9]+ training, [0-9]+ validation" "data show records"
expect_match "$out" "record length +records" "data show histogram"
expect_match "$out" "    1\. [^ ].* -> " "data show samples: instruction -> output"
run --json data show $long
expect_eq "$(json_get "$out" kind)" "instruct" "data show --json"
n=$(json_get "$out" records); v=$(json_get "$out" validation_records)
expect_eq "$((n + v))" "91" "every record kept"

printf '{"instruction": "a", "output": "b"}\n{"instruction": "c"}\n{"instruction": "d", "output": "e"}\n' > "$FT_TMP/bad.jsonl"
run data validate "$FT_TMP/bad.jsonl" --kind instruct
expect_eq "$rc" "1" "validate: a file with errors exits 1"
expect_match "$err" "bad.jsonl:2: output: missing" "report names file, line and field"
run data add "$FT_TMP/bad.jsonl" --kind instruct
expect_eq "$rc" "1" "data add refuses a file with errors"
run data ls --quiet
expect_eq "$out" "$long" "nothing stored for the bad file"
run data add "$FT_TMP/bad.jsonl" --kind instruct --skip-invalid --name partial
expect_eq "$rc" "0" "--skip-invalid keeps the valid records"
expect_match "$out" "partial .*: 2 records" "two valid records"

# --- jobs: a tiny LoRA job watched to the end, a queued job cancelled ---
run data add "$FT_ASSETS/datasets/identity.json" --kind instruct --validation-split 0.1 --name ident
run job submit --base tiny --data ident --type sft --method lora --lora-rank 4 --lr 1e-3 \
    --seq-len 256 --batch-size 4 --max-steps 6 --eval-every 3 --name tiny-tuned
expect_eq "$rc" "0" "job submit"
expect_match "$out" "^job [0-9]+ (QUEUED|RUNNING)" "submit prints id and state"
id=$(printf '%s' "$out" | sed -n 's/^job \([0-9]*\).*/\1/p')
run job watch "$id"
expect_eq "$rc" "0" "watch exits 0 when the job succeeds"
expect_match "$out" "\[#####.....\] step 3/6 (epoch 1 )?loss [0-9.]+ val [0-9.]+ lr [0-9.e+-]+ [0-9]+ tok/s" "progress line"
expect_match "$out" "job $id SUCCEEDED: model tiny-tuned" "final state and model"
run --json job watch "$id"
expect_eq "$(printf '%s\n' "$out" | grep -c '^{"step":')" "6" "a finished job: one JSON line per step"
expect_match "$(printf '%s\n' "$out" | grep '^{"step":3,')" '"val_loss":[0-9]' "evaluated step carries val_loss"
expect_match "$(printf '%s\n' "$out" | grep '^{"step":2,')" '"val_loss":null' "other steps have null val_loss"
expect_match "$(printf '%s\n' "$out" | tail -1)" '"state":"SUCCEEDED"' "last JSON line is the final job"
run job ls
expect_match "$out" "ID +STATE +STAGE +USER +BASE +DATA +TYPE +STEP +LOSS +VAL +AGE" "job ls heading"
expect_match "$out" "$id +SUCCEEDED +- +[^ ]+ +tiny +ident +sft/lora +6/6 +[0-9.]+ +[0-9.]+" "job ls row"
out=$(COLUMNS=60 "$ftctl" job ls)
longest=$(printf '%s\n' "$out" | awk '{ if (length($0) > n) n = length($0) } END { print n }')
[ "$longest" -le 60 ] && pass "job ls fits 60 columns" || fail "job ls line of $longest columns at 60"
expect_match "$out" "ID +STATE .* +STEP +LOSS +VAL" "narrow job ls keeps the progress columns"
run job show "$id"
expect_match "$out" "type +sft, lora \(rank 4" "job show spec"
expect_match "$out" "result +model tiny-tuned" "job show result"
run job logs "$id"
expect_match "$out" "registered tuned model" "job logs"
run job show 99999
expect_eq "$rc" "1" "unknown job exits 1"
# A job behind a long one is still queued when cancelled.
run job submit --base tiny --data ident --type sft --seq-len 256 --epochs 50
long_id=$(printf '%s' "$out" | sed -n 's/^job \([0-9]*\).*/\1/p')
run job submit --base tiny --data ident --type sft --seq-len 256 --priority -1
queued_id=$(printf '%s' "$out" | sed -n 's/^job \([0-9]*\).*/\1/p')
run job ls --state queued --quiet
# The queue also holds the evaluation the finished job queued.
printf '%s\n' "$out" | grep -qx "$queued_id" && pass "job ls --state, case-insensitive" ||
	fail "job ls --state queued: '$out' lacks job $queued_id"
run job cancel "$queued_id"
expect_match "$out" "job $queued_id CANCELLED" "queued job cancelled"
run job cancel "$long_id"
expect_eq "$rc" "0" "running job cancel requested"
run job watch "$long_id"
expect_eq "$rc" "1" "watch exits 1 for a cancelled job"
expect_match "$out" "job $long_id CANCELLED" "watch reports the cancel"
# Let the queued evaluation of the finished job run before removing its inputs.
for j in $("$FT_BIN/client/ftctl" job ls --state queued --quiet) $("$FT_BIN/client/ftctl" job ls --state running --quiet); do
	job_wait "$j" 120 >/dev/null
done
run model rm tiny-tuned
run data rm ident

run data rm partial
expect_eq "$rc" "0" "data rm"
run data rm partial
expect_eq "$rc" "1" "data rm of a removed dataset"
run model rm tiny --json
expect_eq "$(json_get "$out" removed)" "tiny" "model rm --json"
run model ls --quiet
expect_eq "$out" "" "registry empty again"
daemon_stop
finish
