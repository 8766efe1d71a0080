#!/bin/bash
# test_faults.sh - crash safety: the daemon is killed with SIGKILL at 24
# moments during dataset uploads, model imports and training (checkpoint
# writes included), restarted each time, and after every restart: every
# registered model's files match their BLAKE2b hashes, every dataset is
# readable, nothing half-written is left, every acknowledged upload, import
# and submission is there, and no job is lost or duplicated.  At the end
# every job runs to success.
set -u
. "$FT_SRC/tests/integration/lib.sh"

assets_require llama2c/stories260K.bin
command -v b2sum >/dev/null || { echo "SKIP: b2sum not installed"; exit 77; }
F="$FT_BIN/client/ftctl --timeout 3000"
FT_CONF_EXTRA="import_roots = $assets:$FT_TMP\nmax_queued_per_user = 1000\n"
daemon_start
$F model import "$assets/llama2c/stories260K.bin" --tokenizer "$assets/llama2c/tok512.bin" >/dev/null ||
	fail "import"
head -c 30000 "$assets/corpora/tinyshakespeare/input.txt" > "$FT_TMP/text.txt"
$F data add "$FT_TMP/text.txt" --kind text --name text --validation-split 0.1 >/dev/null || fail "data add"

acked_models="stories260K"
acked_data="text"
acked_jobs=""
attempted_jobs=0

check_state() {
	local ids name hash file
	# Every model file is whole: its content hash is the registry's.
	while read -r id name hash; do
		file="$FT_STATE/models/$id/$name"
		[ "$(b2sum -l 256 "$file" | cut -d' ' -f1)" = "$hash" ] || fail "model $id file $name corrupted"
	done < <(sqlite3 "$FT_STATE/ftuned.db" "select model_id, name, hash from model_files" | tr '|' ' ')
	for m in $acked_models; do $F model show "$m" >/dev/null || fail "acknowledged model $m lost"; done
	for d in $acked_data; do $F data show "$d" >/dev/null || fail "acknowledged dataset $d lost"; done
	for j in $acked_jobs; do $F job show "$j" >/dev/null || fail "acknowledged job $j lost"; done
	ids=$(sqlite3 "$FT_STATE/ftuned.db" "select count(*) from jobs where kind = 'train'")
	[ "$ids" -le "$attempted_jobs" ] || fail "$ids jobs for $attempted_jobs submissions"
	# Temporary entries older than this daemon are leftovers of a crash (a
	# newer one belongs to work in progress, such as a resumed job saving).
	[ -z "$(find "$FT_STATE/models" "$FT_STATE/datasets" -mindepth 1 -maxdepth 1 -name '.*' \
		! -newer "$FT_TMP/restarted")" ] || fail "half-written model or dataset left after restart"
}

for i in $(seq 1 24); do
	case $((i % 3)) in
	0)	awk -v n=$i 'NR > n * 10 && NR <= n * 10 + 400' "$assets/corpora/sotu/sotu.txt" > "$FT_TMP/d$i.txt"
		$F data add "$FT_TMP/d$i.txt" --kind text --name "d$i" >/dev/null 2>&1 &
		op=data;;
	1)	cp "$assets/llama2c/stories260K.bin" "$FT_TMP/m$i.bin"
		printf '%08d' "$i" | dd of="$FT_TMP/m$i.bin" bs=1 seek=1000000 conv=notrunc status=none
		$F model import "$FT_TMP/m$i.bin" --tokenizer "$assets/llama2c/tok512.bin" --name "m$i" >/dev/null 2>&1 &
		op=model;;
	2)	attempted_jobs=$((attempted_jobs + 1))
		$F job submit --base stories260K --data text --type cpt --max-steps 24 --save-every 2 \
			--seq-len 64 --eval-every 8 > "$FT_TMP/submit$i" 2>&1 &
		op=job;;
	esac
	client=$!
	sleep "0.$(( (RANDOM % 40) + 1 ))"
	daemon_kill
	if wait "$client"; then
		case $op in
		data) acked_data="$acked_data d$i";;
		model) acked_models="$acked_models m$i";;
		job) acked_jobs="$acked_jobs $(sed -n 's/^job \([0-9]*\) .*/\1/p' "$FT_TMP/submit$i")";;
		esac
	fi
	touch "$FT_TMP/restarted"
	daemon_start
	check_state
	pass "kill $i during $op: state consistent"
done

# Every job, interrupted however often, finishes.
for j in $(sqlite3 "$FT_STATE/ftuned.db" "select id from jobs"); do
	state=$(job_wait "$j" 300)
	[ "$state" = SUCCEEDED ] || $F job logs "$j" | tail -20 >&2
	expect_eq "$state" "SUCCEEDED" "job $j finished after the crashes"
done
check_state
daemon_stop
finish
