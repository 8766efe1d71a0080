#!/bin/bash
# bench.sh - ftengine against PyTorch on the same configurations: SmolLM-135M
# and GPT-2 small shapes, batch 4 x 256 tokens, full fine-tuning and LoRA
# (rank 16 on every linear layer of the blocks).  PyTorch runs when
# /usr/bin/python3 can import torch, with OMP_WAIT_POLICY=PASSIVE (its
# OpenMP threads otherwise spin against each other's work) and its BLAS
# held to the same thread count (OPENBLAS_NUM_THREADS).
#
#   bench/bench.sh [path/to/ftengine]     env: STEPS (3), BATCH (4), SEQ (256), THREADS (nproc)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
FTE=${1:-$here/../build/engine/ftengine}
STEPS=${STEPS:-3}
BATCH=${BATCH:-4}
SEQ=${SEQ:-256}
THREADS=${THREADS:-$(nproc)}
have_torch=0
/usr/bin/python3 -c "import torch" 2>/dev/null && have_torch=1

get() { sed -n "s/.*\"$1\": *\([-0-9.e]*\).*/\1/p"; }

# tok/s from the mean step time; "best" is the fastest step (the machine may
# be shared, so both are shown); ratios are ours / PyTorch's for each.
printf "%-12s %-5s | %9s %9s %6s %7s | %9s %9s %7s | %6s %6s\n" preset mode "tok/s" "best ms" \
    "MFU" "RSS MB" "tok/s" "best ms" "RSS MB" "ratio" "best"
for preset in smollm-135m gpt2-124m; do
	for mode in full lora; do
		lora=()
		[ "$mode" = lora ] && lora=(--lora-rank 16)
		ours=$("$FTE" bench --preset "$preset" --batch "$BATCH" --seq "$SEQ" --steps "$STEPS" \
		    --threads "$THREADS" "${lora[@]}" --lora-targets all --json)
		tps=$(echo "$ours" | get tokens_per_s)
		best=$(echo "$ours" | get ms_per_step_best)
		mfu=$(echo "$ours" | get mfu)
		rss=$(echo "$ours" | get peak_rss_mb)
		ttps="-" tbest="-" trss="-" ratio="-" bratio="-"
		if [ "$have_torch" = 1 ]; then
			theirs=$(OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS="$THREADS" \
			    OPENBLAS_NUM_THREADS="$THREADS" /usr/bin/python3 "$here/torch_bench.py" \
			    --preset "$preset" --batch "$BATCH" --seq "$SEQ" --steps "$STEPS" \
			    --threads "$THREADS" "${lora[@]}" --json)
			ttps=$(echo "$theirs" | get tokens_per_s)
			tbest=$(echo "$theirs" | get ms_per_step_best)
			trss=$(echo "$theirs" | get peak_rss_mb)
			ratio=$(awk -v a="$tps" -v b="$ttps" 'BEGIN { printf "%.2fx", a / b }')
			bratio=$(awk -v a="$best" -v b="$tbest" 'BEGIN { printf "%.2fx", b / a }')
			ttps=$(printf "%.1f" "$ttps"); tbest=$(printf "%.0f" "$tbest"); trss=$(printf "%.0f" "$trss")
		fi
		printf "%-12s %-5s | %9.1f %9.0f %5.1f%% %7.0f | %9s %9s %7s | %6s %6s\n" "$preset" "$mode" \
		    "$tps" "$best" "$(awk -v m="$mfu" 'BEGIN { print 100 * m }')" "$rss" \
		    "$ttps" "$tbest" "$trss" "$ratio" "$bratio"
	done
done
