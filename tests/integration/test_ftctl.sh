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
expect_match "$out" "1\. \{\"instruction\"" "data show samples"
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
