#!/bin/bash
# test_demo.sh - the main job (scripts/demo.sh) at a reduced scale: a model
# pretrained here on GCIDE, continued pre-training on FOLDOC, instruction
# tuning on FOLDOC definitions, and an evaluation on held-out definitions
# in which the tuned model beats the base with 95% intervals that exclude
# zero on loss and on at least one generation metric.  A second run reuses
# everything.
set -u
. "$FT_SRC/tests/integration/lib.sh"

for f in /usr/share/dictd/gcide.index /usr/share/dictd/foldoc.index; do
	[ -r "$f" ] || { echo "SKIP: $f not installed (dict-gcide, dict-foldoc)"; exit 77; }
done
command -v jq >/dev/null || { echo "SKIP: jq not installed"; exit 77; }
FT_MAX_MESSAGE=64M
FT_CONF_EXTRA="import_roots = $FT_TMP\n"
daemon_start

DEMO_SCALE=small "$FT_SRC/scripts/demo.sh" "$FT_BIN" "$FT_TMP/demo" > "$FT_TMP/demo.log" 2>&1 ||
	{ tail -30 "$FT_TMP/demo.log"; fail "demo.sh"; }
pass "demo pipeline ran"
eval_id=$(cat "$FT_TMP/demo/demo-small-eval-id")
show=$("$FT_BIN/client/ftctl" eval show "$eval_id" --json) || fail "eval show"
# The tuned model (index 2) against the base (index 0): paired difference.
ci() { printf '%s' "$show" | jq -r --arg m "$1" \
	'.eval.stats[] | select(.metric == $m and .model == 2 and .versus == 0) | "\(.lo) \(.hi)"'; }
read -r lo hi <<<"$(ci loss)"
awk -v h="$hi" 'BEGIN { exit !(h != "" && h < 0) }' && pass "loss: tuned - base in [$lo, $hi], below zero" ||
	fail "loss: tuned - base in [$lo, $hi] does not exclude zero"
better=
for m in token_f1 rouge_l chrf exact_match; do
	read -r lo hi <<<"$(ci $m)"
	if awk -v l="$lo" 'BEGIN { exit !(l != "" && l > 0) }'; then
		better="$better $m"
		pass "$m: tuned - base in [$lo, $hi], above zero"
	fi
done
[ -n "$better" ] || fail "no generation metric improved with an interval above zero"

# A second run makes nothing new.
models=$("$FT_BIN/client/ftctl" model ls --quiet | wc -l)
DEMO_SCALE=small "$FT_SRC/scripts/demo.sh" "$FT_BIN" "$FT_TMP/demo" > "$FT_TMP/demo2.log" 2>&1 ||
	fail "second demo run"
expect_eq "$("$FT_BIN/client/ftctl" model ls --quiet | wc -l)" "$models" "second run reuses the models"
expect_match "$(cat "$FT_TMP/demo2.log")" "exists; skipping" "second run skips the jobs"
daemon_stop
finish
