#!/bin/bash
# test_queue.sh - admission and the life of a job through the real daemon:
# one admission for every kind of job (an evaluation over the memory budget
# is refused; concurrent evaluations never pass max_queued_per_user), the
# spec bounds table, user_priority_max (a user outside the admin group
# cannot jump the queue), --time-limit, validation without dropout (it does
# not change the run), early stopping that registers the best weights and
# resumes after SIGKILL to the same stop and the same weights, and a SIGKILL
# between registering a job's model and ending the job (a test hook pauses
# there) after which the job succeeds with exactly one model.
set -u
. "$FT_SRC/tests/integration/lib.sh"

assets_require llama2c/stories260K.bin
command -v sqlite3 >/dev/null || { echo "SKIP: sqlite3 not installed"; exit 77; }
F=$FT_BIN/client/ftctl
FT_MAX_MESSAGE=16M
conf="import_roots = $assets:$FT_TMP\ntraining_threads = 2\nmax_queued_per_user = 4\n"
sql() { sqlite3 "$FT_STATE/ftuned.db" "$1"; }
job_id() { sed -n 's/^job \([0-9]*\) .*/\1/p'; }

# --- an evaluation is admitted like a training job: over the budget, refused ---
FT_CONF_EXTRA="${conf}memory_budget = 4M\n"
daemon_start
$F model import "$assets/llama2c/stories260K.bin" --tokenizer "$assets/llama2c/tok512.bin" >/dev/null ||
	fail "model import"
head -c 40000 "$assets/corpora/tinyshakespeare/input.txt" > "$FT_TMP/text.txt"
$F data add "$FT_TMP/text.txt" --kind text --name text --validation-split 0.2 >/dev/null || fail "data add"
msg=$($F eval run --models stories260K --data text 2>&1)
expect_match "$msg" "RESOURCE_EXHAUSTED: the job needs [0-9.]+ MiB \(model stories260K: weights .*\) but the memory budget is 4.0 MiB" \
	"an evaluation over memory_budget is refused at submission"
expect_eq "$(sql "select count(*) from jobs")" "0" "nothing queued by the refusal"
daemon_stop

FT_CONF_EXTRA=$conf
daemon_start
# Another user, outside the admin group, in the socket's group.
chmod 755 "$FT_TMP" "$FT_TMP/run"
chgrp nogroup "${FT_SOCKET#ipc://}"
as_user() { setpriv --reuid=nobody --regid=nogroup --clear-groups "$F" "$@"; }

# --- spec bounds: one table, one message form ---
cpt=(--base stories260K --data text --type cpt --seq-len 64)
msg=$($F job submit "${cpt[@]}" --epochs 5000 2>&1)
expect_match "$msg" "INVALID_ARGUMENT: --epochs 5000 is out of range \[1, 1000\]" "epochs bounded"
msg=$($F job submit "${cpt[@]}" --method lora --lora-dropout 1 2>&1)
expect_match "$msg" "INVALID_ARGUMENT: --lora-dropout 1 is out of range \[0, 1\)" "an open bound says so"
msg=$($F job submit "${cpt[@]}" --clip -1 2>&1)
expect_match "$msg" "--clip -1 is out of range \[0, 1e\+06\) \(0 turns clipping off\)" "a bound's note is shown"
msg=$($F job submit "${cpt[@]}" --time-limit 99999999 2>&1)
expect_match "$msg" "--time-limit 99999999 is out of range \[0, 31536000\] seconds \(0: none\)" "time limit bounded"

# --- user_priority_max: users cannot jump the queue, admins can ---
msg=$(as_user job submit "${cpt[@]}" --max-steps 1 --priority 50 2>&1)
expect_match "$msg" "PERMISSION_DENIED: --priority 50 is above 0, the highest a user outside the admin group may set \(user_priority_max\)" \
	"a user's --priority above user_priority_max refused"
msg=$(as_user eval run --models stories260K --data text --priority 50 2>&1)
expect_match "$msg" "PERMISSION_DENIED: --priority 50 is above 0" "the same cap for evaluations"
j=$(as_user job submit "${cpt[@]}" --max-steps 1 --priority -5 | job_id)
[ -n "$j" ] || fail "a user may lower a job's priority"
pass "a user may lower a job's priority"
expect_eq "$(job_wait "$j" 120)" "SUCCEEDED" "the user's job ran"
j=$($F job submit "${cpt[@]}" --max-steps 1 --priority 100 | job_id)
[ -n "$j" ] || fail "root (an admin) may set --priority 100"
pass "an admin may set --priority 100"
expect_eq "$(job_wait "$j" 120)" "SUCCEEDED" "the admin's job ran"

# --- per-user cap under concurrent evaluation submissions ---
# A long job holds the only executor slot, so nothing admitted finishes.
long=$($F job submit "${cpt[@]}" --epochs 1000 --max-steps 100000 --name long | job_id)
for _ in $(seq 1 300); do
	[ "$(job_field "$long" state)" = RUNNING ] && break
	sleep 0.1
done
pids=
for i in $(seq 1 24); do
	$F eval run --models stories260K --data text --limit 2 > "$FT_TMP/ev$i" 2>&1 &
	pids="$pids $!"
done
wait $pids
ok=$(grep -l '^eval [0-9]* (job' "$FT_TMP"/ev* | wc -l)
expect_eq "$ok" "3" "24 concurrent evaluations: 3 admitted beside the running job (cap 4)"
expect_eq "$(grep -l 'RESOURCE_EXHAUSTED: you have 4 jobs queued or running' "$FT_TMP"/ev* | wc -l)" "21" \
	"the others refused with the cap"
expect_eq "$(sql "select count(*) from jobs where owner_uid = 0 and state in ('QUEUED', 'RUNNING')")" "4" \
	"never more active jobs than max_queued_per_user"
for j in $(sql "select id from jobs where state in ('QUEUED', 'RUNNING')"); do
	$F job cancel "$j" >/dev/null || fail "cancel $j"
done
expect_eq "$(job_wait "$long" 60)" "CANCELLED" "the long job cancelled"

# --- --time-limit: the job checkpoints and fails ---
j=$($F job submit "${cpt[@]}" --epochs 1000 --max-steps 100000 --save-every 100000 --time-limit 1 | job_id)
expect_eq "$(job_wait "$j" 60)" "FAILED" "a job past its time limit fails"
expect_match "$(job_field "$j" error)" "^time limit of 1 s reached at step [0-9]+ \(checkpoint saved\)" \
	"the error names the limit"
step=$(job_field "$j" step)
expect_eq "$(job_field "$j" checkpoint_step)" "$step" "it checkpointed at the step it stopped"
[ -f "$FT_STATE/jobs/$j/checkpoint-$step.bin" ] || fail "checkpoint file of step $step"
pass "checkpoint file written"

# --- validation: no dropout, no draws from the run's random state ---
# Evaluating every 2 steps or only at the end must leave the run, and so
# its final validation loss, bit for bit the same (the backward pass with
# dropout drew from the trainer's generator and changed both).
lora=("${cpt[@]}" --method lora --lora-dropout 0.3 --max-steps 12 --lr 0.01 --seed 5)
a=$($F job submit "${lora[@]}" --eval-every 2 | job_id)
b=$($F job submit "${lora[@]}" | job_id)
expect_eq "$(job_wait "$a" 120)" "SUCCEEDED" "LoRA job with dropout, evaluated every 2 steps"
expect_eq "$(job_wait "$b" 120)" "SUCCEEDED" "the same job evaluated at the end only"
expect_eq "$(sql "select val_loss from jobs where id = $a")" "$(sql "select val_loss from jobs where id = $b")" \
	"validation does not change the run"

# --- early stopping: the best weights, and a resume that stops the same ---
# A learning rate high enough that the validation loss turns up.
es=("${cpt[@]}" --epochs 20 --max-steps 300 --lr 0.02 --eval-every 2 --early-stop 5 --save-every 2 --seed 3)
weights() { sql "select f.hash from model_files f join models m on m.id = f.model_id
	where m.name = '$1' and f.name like '%.safetensors'"; }
stop_of() { $F job logs "$1" | sed -n 's/.*early stop at step \([0-9]*\).*/\1/p'; }
best_of() { $F job logs "$1" | sed -n 's/.*registering the weights of step \([0-9]*\).*/\1/p'; }
ref=$($F job submit "${es[@]}" --name es-ref | job_id)
expect_eq "$(job_wait "$ref" 300)" "SUCCEEDED" "early-stopping job"
ref_stop=$(stop_of "$ref")
ref_best=$(best_of "$ref")
[ -n "$ref_stop" ] && [ -n "$ref_best" ] && [ "$ref_best" -lt "$ref_stop" ] ||
	fail "the job stopped early (at '$ref_stop') after its best step ('$ref_best')"
pass "stopped at step $ref_stop, best at step $ref_best"
expect_eq "$(sql "select val_loss from jobs where id = $ref")" \
	"$(sql "select min(val_loss) from metrics where job_id = $ref and step > 0")" \
	"the registered model is the best evaluation's"
victim=$($F job submit "${es[@]}" --name es-victim | job_id)
for _ in $(seq 1 3000); do
	[ "$(job_field "$victim" checkpoint_step)" -ge "$ref_best" ] 2>/dev/null && break
	sleep 0.02
done
[ "$(job_field "$victim" checkpoint_step)" -ge "$ref_best" ] 2>/dev/null ||
	fail "no checkpoint at the best step $ref_best"
daemon_kill
pass "killed at step $(sql "select step from jobs where id = $victim") (stop expected at $ref_stop)"
daemon_start
expect_eq "$(job_wait "$victim" 300)" "SUCCEEDED" "resumed early-stopping job"
expect_match "$($F job logs "$victim")" "resumed from the checkpoint" "it resumed from a checkpoint"
expect_eq "$(stop_of "$victim")" "$ref_stop" "the resumed job stopped at the same step"
expect_eq "$(best_of "$victim")" "$ref_best" "and registered the same best step"
expect_eq "$(weights es-victim)" "$(weights es-ref)" "the same weights, hash for hash"
[ -z "$(ls "$FT_STATE/jobs/$victim")" ] || fail "checkpoints and best weights left: $(ls "$FT_STATE/jobs/$victim")"
pass "nothing left in the job's directory"
daemon_stop

# --- SIGKILL between registering the tuned model and ending the job ---
mkdir -p "$FT_TMP/hooks"
export FTUNED_TEST_HOOKS=pause:after_register FTUNED_TEST_HOOKS_DIR=$FT_TMP/hooks
daemon_start
unset FTUNED_TEST_HOOKS FTUNED_TEST_HOOKS_DIR
j=$($F job submit "${cpt[@]}" --max-steps 4 --name crash-window | job_id)
for _ in $(seq 1 600); do
	[ -e "$FT_TMP/hooks/after_register.reached" ] && break
	sleep 0.05
done
[ -e "$FT_TMP/hooks/after_register.reached" ] || fail "the daemon never reached after_register"
expect_eq "$(sql "select count(*) from models where job_id = $j")" "1" "killed with the model registered"
expect_eq "$(sql "select state from jobs where id = $j")" "RUNNING" "and the job not yet ended"
daemon_kill
daemon_start
expect_eq "$(job_wait "$j" 120)" "SUCCEEDED" "the resumed job succeeds"
expect_eq "$(sql "select count(*) from models where job_id = $j")" "1" "with exactly one model"
expect_eq "$(job_field "$j" result_model)" "crash-window" "which is its result"
expect_eq "$(sql "select count(*) from evals where train_job_id = $j")" "1" "its evaluation queued once"
daemon_stop
expect_eq "$FT_EXIT" "0" "clean shutdown"
finish
