#!/bin/bash
# demo.sh - the main job of ftuned, offline: a base model pretrained here
# on general English (GCIDE, from Debian's dict-gcide), continued
# pre-training on computing terms (FOLDOC, from dict-foldoc), instruction
# tuning to define those terms, and an evaluation of base against both
# tuned models on held-out definitions.  It talks to a running ftuned
# through ftctl ($FTUNED_SOCKET) and reuses what already exists, so a second
# run only shows the results.
#
#   demo.sh BUILD_DIR WORK_DIR        (WORK_DIR must be inside import_roots)
#
# DEMO_SCALE=small runs a reduced version (a smaller model, less data, fewer
# steps) that the test suite uses.
set -euo pipefail
build=$1
work=$2
F="$build/client/ftctl"
scale=${DEMO_SCALE:-full}
mkdir -p "$work"

if [ "$scale" = small ]; then
	gcide_max=3000 foldoc_max=3000 qa_max=400 vocab=512
	shape="--layers 2 --dim 64 --heads 4 --seq-len 64"
	pre_steps=150 cpt_steps=60 sft_steps=120 seq=64 limit=40
else
	gcide_max=40000 foldoc_max=15000 qa_max=3000 vocab=2048
	shape="--layers 4 --dim 128 --heads 4 --seq-len 128"
	pre_steps=1200 cpt_steps=400 sft_steps=500 seq=128 limit=100
fi
prefix=demo
[ "$scale" = small ] && prefix=demo-small

stage() { printf '\n== %s\n' "$*"; }
have_model() { $F model show "$1" >/dev/null 2>&1; }
have_data() { $F data show "$1" >/dev/null 2>&1; }

# run_job NAME ARGS...: submit unless the model NAME exists, then watch it.
run_job() {
	local name=$1 id
	shift
	if have_model "$name"; then
		echo "$name exists; skipping"
		return 0
	fi
	id=$($F job submit --name "$name" "$@" | sed -n 's/^job \([0-9]*\) .*/\1/p')
	[ -n "$id" ] || { echo "demo: job submission for $name failed" >&2; return 1; }
	$F job watch "$id"
}

dictd() {  # NAME MODE MAX > jsonl
	"$build/tools/dictd2jsonl" --index "/usr/share/dictd/$1.index" \
		--dict "/usr/share/dictd/$1.dict.dz" --mode "$2" --max "$3" --seed 1
}

stage "1/6 corpora from Debian's dictionaries"
[ -s "$work/gcide.jsonl" ] || dictd gcide text "$gcide_max" > "$work/gcide.jsonl"
[ -s "$work/foldoc.jsonl" ] || dictd foldoc text "$foldoc_max" > "$work/foldoc.jsonl"
[ -s "$work/foldoc-qa.jsonl" ] || dictd foldoc instruct "$qa_max" > "$work/foldoc-qa.jsonl"
wc -l "$work"/gcide.jsonl "$work"/foldoc.jsonl "$work"/foldoc-qa.jsonl

stage "2/6 a tokenizer trained on them"
if [ ! -s "$work/tokenizer/tokenizer.json" ]; then
	jq -r .text "$work/gcide.jsonl" "$work/foldoc.jsonl" > "$work/tokenizer-corpus.txt"
	"$build/engine/ftengine" tokenizer-train --vocab "$vocab" --out "$work/tokenizer" \
		"$work/tokenizer-corpus.txt"
fi

stage "3/6 datasets"
have_data "$prefix-gcide" || $F data add "$work/gcide.jsonl" --kind text --name "$prefix-gcide" --validation-split 0.02
have_data "$prefix-foldoc" || $F data add "$work/foldoc.jsonl" --kind text --name "$prefix-foldoc" --validation-split 0.05
have_data "$prefix-qa" || $F data add "$work/foldoc-qa.jsonl" --kind instruct --name "$prefix-qa" --validation-split 0.1

stage "4/6 the base model: pretrained from scratch on general English"
have_model "$prefix-init" || have_model "$prefix-base" ||
	$F model init "$prefix-init" --tokenizer "$work/tokenizer/tokenizer.json" $shape --seed 1
run_job "$prefix-base" --base "$prefix-init" --data "$prefix-gcide" --type cpt --method full \
	--max-steps "$pre_steps" --epochs 100 --seq-len "$seq" --batch-size 8 --lr 0.003 --warmup 20 \
	--eval-every 100 --save-every 100

stage "5/6 continued pre-training on FOLDOC, then instruction tuning"
run_job "$prefix-cpt" --base "$prefix-base" --data "$prefix-foldoc" --type cpt --method full \
	--max-steps "$cpt_steps" --epochs 100 --seq-len "$seq" --batch-size 8 --lr 0.002 \
	--eval-every 50 --save-every 50
template="Define: {instruction}{input}
Answer: {output}"
run_job "$prefix-sft" --base "$prefix-cpt" --data "$prefix-qa" --type sft --method full \
	--max-steps "$sft_steps" --epochs 100 --seq-len "$seq" --batch-size 8 --lr 0.002 \
	--eval-every 50 --save-every 50 --template "$template"

stage "6/6 evaluation on held-out definitions"
eval_id=$(cat "$work/$prefix-eval-id" 2>/dev/null || true)
if [ -z "$eval_id" ] || ! $F eval show "$eval_id" >/dev/null 2>&1; then
	out=$($F eval run --models "$prefix-base,$prefix-cpt,$prefix-sft" --data "$prefix-qa" \
		--split validation --limit "$limit" --max-new-tokens 32 --seed 1 \
		--name "$prefix-compare" --template "$template")
	echo "$out"
	eval_id=$(printf '%s\n' "$out" | sed -n 's/^eval \([0-9]*\) (job \([0-9]*\)).*/\1/p')
	eval_job=$(printf '%s\n' "$out" | sed -n 's/^eval \([0-9]*\) (job \([0-9]*\)).*/\2/p')
	[ -n "$eval_id" ] || { echo "demo: eval run failed" >&2; exit 1; }
	$F job watch "$eval_job"
	echo "$eval_id" > "$work/$prefix-eval-id"
fi
$F eval show "$eval_id"
