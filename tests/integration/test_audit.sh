#!/bin/bash
# test_audit.sh - the audit log over a real daemon: every state-changing
# request (model import/init/export/remove, data add/remove, job submit and
# cancel, deploy and undeploy, key create and revoke) appears with the uid
# that asked and its outcome, refusals too (another user's cancel, a
# dataset quota, an admin removing a user's dataset); users list only their
# own entries; the chain recomputed independently (Python's BLAKE2b) ends
# at the head verify prints; and each tampering (a byte edited, a line
# removed, two lines swapped, a line inserted, an edit with its own hash
# recomputed, whole lines cut off the end, a torn last line) makes verify
# fail naming the line, while the daemon serves on and keeps logging.
set -u
. "$FT_SRC/tests/integration/lib.sh"

assets_require llama2c/stories260K.bin
command -v jq >/dev/null || { echo "SKIP: needs jq"; exit 77; }
users_require ftsf_g ftsf_a ftsf_b
F=$FT_BIN/client/ftctl
uid_a=$(id -u ftsf_a)
uid_b=$(id -u ftsf_b)
chmod 755 "$FT_TMP"
FT_CONF_EXTRA="import_roots = $assets\nquota_datasets_per_user = 1\ntraining_threads = 1\n"
daemon_start
chmod 755 "$FT_TMP/run"
chgrp ftsf_g "${FT_SOCKET#ipc://}"
LOG=$FT_STATE/audit.log

for i in $(seq 1 20); do
	printf '{"instruction": "Say %d.", "input": "", "output": "%d"}\n' "$i" "$i"
done > "$FT_TMP/d.jsonl"
chmod 644 "$FT_TMP/d.jsonl"

# --- actions by three callers ---
$F model import "$assets/llama2c/stories260K.bin" --tokenizer "$assets/llama2c/tok512.bin" \
	>/dev/null || fail "model import"
as ftsf_a "$F" data add "$FT_TMP/d.jsonl" --kind instruct --name da >/dev/null || fail "data add"
msg=$(as ftsf_a "$F" data add "$FT_TMP/d.jsonl" --kind instruct --name da2 2>&1) &&
	fail "a second dataset beyond quota_datasets_per_user = 1 was accepted"
job=$(as ftsf_a "$F" job submit --base stories260K --data da --type sft --method lora \
	--lora-rank 2 --epochs 1000 --seq-len 32 --batch-size 1 | sed -n 's/^job \([0-9]*\) .*/\1/p')
[ -n "$job" ] || fail "job submit"
as ftsf_b "$F" job cancel "$job" >/dev/null 2>&1 && fail "another user cancelled a's job"
as ftsf_a "$F" job cancel "$job" >/dev/null || fail "job cancel"
as ftsf_a "$F" key create --name ka >/dev/null 2>&1 || fail "key create"
as ftsf_a "$F" key revoke ka >/dev/null || fail "key revoke"
$F deploy stories260K >/dev/null || fail "deploy"
$F undeploy stories260K >/dev/null || fail "undeploy"
as ftsf_b "$F" data rm da >/dev/null 2>&1 && fail "another user removed a's dataset"
$F data rm da >/dev/null || fail "admin data remove"
as ftsf_a "$F" model rm no-such >/dev/null 2>&1 && fail "removed a model that does not exist"

# --- what the log holds ---
all=$($F audit ls --json)
rows=$(printf '%s' "$all" | jq -r '.entries[] | "\(.uid) \(.action) \(.outcome)"' | tr '\n' ',')
want="0 model.import OK,$uid_a data.add OK,$uid_a data.add RESOURCE_EXHAUSTED,$uid_a job.submit OK,"
want="${want}$uid_b job.cancel PERMISSION_DENIED,$uid_a job.cancel OK,$uid_a key.create OK,"
want="${want}$uid_a key.revoke OK,0 deploy.create OK,0 deploy.remove OK,"
want="${want}$uid_b data.remove PERMISSION_DENIED,0 data.remove OK,$uid_a model.remove NOT_FOUND,"
# Refusal codes differ by handler (NOT_FOUND hides what others own): compare
# without them for refusals, exactly for the rest.
norm() { sed -E 's/ (PERMISSION_DENIED|NOT_FOUND)/ REFUSED/g'; }
expect_eq "$(printf '%s' "$rows" | norm)" "$(printf '%s' "$want" | norm)" \
	"every action, refusals included, by the uid that asked, in order"
expect_eq "$(printf '%s' "$all" | jq -r ".entries[] | select(.action == \"job.submit\") | .object")" \
	"job $job" "a submission names the job it created"
expect_match "$(printf '%s' "$all" | jq -r '.entries[2].message')" "quota" \
	"a quota refusal records why"
expect_eq "$(printf '%s' "$all" | jq -r '.entries[11] | "\(.admin) \(.object)"')" "true da" \
	"an admin removing a user's dataset is marked admin"
expect_eq "$(stat -c %a "$LOG")" "640" "audit.log is mode 0640"
expect_eq "$(printf '%s' "$all" | jq -r '[.entries[].request_id > 0] | all')" "true" \
	"each entry carries the request id"

mine=$(as ftsf_a "$F" audit ls --json | jq -r "[.entries[].uid | select(. != $uid_a)] | length")
expect_eq "$mine" "0" "a user lists only their own entries"
expect_eq "$(as ftsf_b "$F" audit ls --json | jq -r '.entries | length')" "2" \
	"the other user sees their two refusals"
msg=$(as ftsf_b "$F" audit ls --user ftsf_a 2>&1) && fail "a user read another user's entries"
expect_match "$msg" "PERMISSION_DENIED" "another user's entries are refused"
msg=$(as ftsf_a "$F" audit verify 2>&1) && fail "a user verified the log"
expect_match "$msg" "PERMISSION_DENIED" "verify is for admins"
expect_eq "$($F audit ls --user ftsf_a --action key. --json | jq -r '[.entries[].action] | join(",")')" \
	"key.create,key.revoke" "filter by user and action family"
expect_eq "$($F audit ls --since 1h --action job.cancel --json | jq -r '.entries | length')" "2" \
	"filter by time and action"
expect_eq "$($F audit ls --since 2000-01-01 --json | jq -r '.entries | length')" "13" "--since a date"

out=$($F audit verify) || fail "verify of an untouched log: $out"
head=$(printf '%s' "$out" | sed -n 's/.*head \([0-9a-f]*\)$/\1/p')
expect_match "$out" "^ok: 13 lines" "an untouched log verifies"
chain=$(/usr/bin/python3 - "$LOG" <<'PY'
import hashlib, json, sys
prev = "0" * 64
for n, line in enumerate(open(sys.argv[1], encoding="utf-8"), 1):
    line = line.rstrip("\n")
    body, h = line[: -(len(',"hash":"') + 66)], line[-66:-2]
    assert json.loads(line)["prev"] == prev and json.loads(line)["seq"] == n, n
    assert hashlib.blake2b(body.encode(), digest_size=32).hexdigest() == h, n
    prev = h
print(prev)
PY
) || fail "independent chain check"
expect_eq "$chain" "$head" "the chain recomputed with Python's BLAKE2b ends at verify's head"

# --- tampering: each on a fresh copy of the log, checked by a restarted daemon ---
daemon_stop
cp "$LOG" "$FT_TMP/good.log"
cp "$FT_STATE/audit.head" "$FT_TMP/good.head"
# tamper NAME EXPECTED-LINE PYTHON: edits lines (a list without newlines).
tamper() {
	local name=$1 line=$2 code=$3 out
	cp "$FT_TMP/good.log" "$LOG"
	cp "$FT_TMP/good.head" "$FT_STATE/audit.head"
	/usr/bin/python3 - "$LOG" "$code" <<'PY' || fail "tamper $name"
import hashlib, sys
path, code = sys.argv[1], sys.argv[2]
raw = open(path, encoding="utf-8").read()
lines = raw.split("\n")[:-1]
def rehash(l):
    body = l[: -(len(',"hash":"') + 66)]
    return body + ',"hash":"' + hashlib.blake2b(body.encode(), digest_size=32).hexdigest() + '"}'
exec(code)
open(path, "w", encoding="utf-8").write(raw if code.startswith("raw") else "\n".join(lines) + "\n")
PY
	daemon_start
	out=$($F audit verify 2>&1) && fail "$name went unnoticed: $out"
	expect_match "$out" "^audit.log: line $line: " "$name: verify names line $line"
	$F key create --name "k$name" >/dev/null 2>&1 || fail "$name: the daemon stopped serving"
	out=$($F audit verify 2>&1) && fail "$name: unnoticed after a new line"
	expect_match "$out" "^audit.log: line $line: " "$name: still named after the daemon logged on"
	daemon_stop
}
tamper edit 3 'lines[2] = lines[2].replace("\"da2\"", "\"dX2\"")'
tamper remove 4 'del lines[3]'
tamper swap 6 'lines[5], lines[6] = lines[6], lines[5]'
tamper insert 5 'lines.insert(4, lines[3])'
tamper rehashed 5 'lines[3] = rehash(lines[3].replace("\"uid\":'"$uid_a"'", "\"uid\":'"$uid_b"'"))'
tamper cut 12 'del lines[11:]'
tamper torn 13 'raw = raw[:-20]'
tamper emptied 1 'raw = ""'
finish
