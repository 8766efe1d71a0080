#!/bin/bash
# bench.sh - ftengine against PyTorch on the same configurations: SmolLM-135M
# and GPT-2 small shapes, batch 4 x 256 tokens, full fine-tuning and LoRA
# (rank 16 on every linear layer of the blocks).  PyTorch runs when
# /usr/bin/python3 can import torch, with OMP_WAIT_POLICY=PASSIVE (its
# OpenMP threads otherwise spin against each other's work) and its BLAS
# held to the same thread count (OPENBLAS_NUM_THREADS).
#
# `eval` times evaluation instead, for stories260K and the SmolLM-135M
# shape: the batched teacher-forced loss without gradients (BATCH x SEQ;
# examples/s and tokens/s) and greedy generation with a KV cache at batch 1
# (PROMPT prompt tokens, then NEW tokens; tokens/s), each against PyTorch
# under torch.no_grad with a KV-cache loop (torch_bench.py --eval).
#
#   bench/bench.sh [eval] [path/to/ftengine]     env: STEPS (3), BATCH (4), SEQ (256),
#       THREADS (nproc); eval: PROMPT (64), NEW (64), ASSETS (../shared/assets)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
mode_eval=0
[ "${1:-}" = eval ] && { mode_eval=1; shift; }
FTE=${1:-$here/../build/engine/ftengine}
STEPS=${STEPS:-3}
BATCH=${BATCH:-4}
SEQ=${SEQ:-256}
THREADS=${THREADS:-$(nproc)}
PROMPT=${PROMPT:-64}
NEW=${NEW:-64}
ASSETS=${ASSETS:-$here/../../shared/assets}
have_torch=0
/usr/bin/python3 -c "import torch" 2>/dev/null && have_torch=1
[ "$have_torch" = 1 ] || echo "bench.sh: /usr/bin/python3 cannot import torch, so the PyTorch" \
    "columns stay empty; install it with: apt-get install python3-torch" >&2

get() { sed -n "s/.*\"$1\": *\([-0-9.e]*\).*/\1/p"; }
torch_run() {
	OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS="$THREADS" OPENBLAS_NUM_THREADS="$THREADS" \
	    /usr/bin/python3 "$here/torch_bench.py" --steps "$STEPS" --threads "$THREADS" --json "$@"
}

if [ "$mode_eval" = 1 ]; then
	# Ratios are ours / PyTorch's throughput (above 1: ftengine is faster).
	printf "%-12s | %8s %9s %8s | %8s %9s %8s | %6s %6s\n" model "loss ex/s" "loss tok/s" \
	    "gen tok/s" "ex/s" "tok/s" "gen tok/s" "loss" "gen"
	for model in stories260K smollm-135m; do
		if [ "$model" = stories260K ]; then
			src=(--model "$ASSETS/llama2c/stories260K.bin")
			tsrc=(--llama2c "$ASSETS/llama2c/stories260K.bin")
			[ -r "$ASSETS/llama2c/stories260K.bin" ] ||
				{ echo "$model: $ASSETS/llama2c/stories260K.bin not found, skipped"; continue; }
		else
			src=(--preset "$model") tsrc=(--preset "$model")
		fi
		ours=$("$FTE" bench --eval "${src[@]}" --batch "$BATCH" --seq "$SEQ" --prompt "$PROMPT" \
		    --new "$NEW" --steps "$STEPS" --threads "$THREADS" --json)
		lex=$(echo "$ours" | get loss_examples_per_s)
		ltok=$(echo "$ours" | get loss_tokens_per_s)
		gtok=$(echo "$ours" | get gen_tokens_per_s)
		tlex="-" tltok="-" tgtok="-" lratio="-" gratio="-"
		if [ "$have_torch" = 1 ]; then
			theirs=$(torch_run --eval "${tsrc[@]}" --batch "$BATCH" --seq "$SEQ" \
			    --prompt "$PROMPT" --new "$NEW")
			tlex=$(echo "$theirs" | get loss_examples_per_s)
			tltok=$(echo "$theirs" | get loss_tokens_per_s)
			tgtok=$(echo "$theirs" | get gen_tokens_per_s)
			lratio=$(awk -v a="$ltok" -v b="$tltok" 'BEGIN { printf "%.2fx", a / b }')
			gratio=$(awk -v a="$gtok" -v b="$tgtok" 'BEGIN { printf "%.2fx", a / b }')
			tlex=$(printf "%.1f" "$tlex"); tltok=$(printf "%.0f" "$tltok")
			tgtok=$(printf "%.1f" "$tgtok")
		fi
		printf "%-12s | %8.1f %9.0f %8.1f | %8s %9s %8s | %6s %6s\n" "$model" "$lex" "$ltok" \
		    "$gtok" "$tlex" "$tltok" "$tgtok" "$lratio" "$gratio"
	done
	exit 0
fi

# tok/s from the mean step time; "best" is the fastest step (the machine may
# be shared, so both are shown); ratios are ours / PyTorch's for each.
# MFU is against the FMA peak measured at the width of the kernels in use,
# and against OpenBLAS's sgemm on the step's products ("MFU blas").
printf "%-12s %-5s | %9s %9s %6s %9s %7s | %9s %9s %7s | %6s %6s\n" preset mode "tok/s" "best ms" \
    "MFU" "MFU blas" "RSS MB" "tok/s" "best ms" "RSS MB" "ratio" "best"
for preset in smollm-135m gpt2-124m; do
	for mode in full lora; do
		lora=()
		[ "$mode" = lora ] && lora=(--lora-rank 16)
		ours=$("$FTE" bench --preset "$preset" --batch "$BATCH" --seq "$SEQ" --steps "$STEPS" \
		    --threads "$THREADS" "${lora[@]}" --lora-targets all --json)
		tps=$(echo "$ours" | get tokens_per_s)
		best=$(echo "$ours" | get ms_per_step_best)
		mfu=$(echo "$ours" | get mfu)
		mfub=$(echo "$ours" | get mfu_blas)
		kern=$(echo "$ours" | sed -n 's/.*"kernels": *"\([^"]*\)".*/\1/p')
		peak=$(echo "$ours" | get fma_peak_gflops)
		rss=$(echo "$ours" | get peak_rss_mb)
		ttps="-" tbest="-" trss="-" ratio="-" bratio="-"
		if [ "$have_torch" = 1 ]; then
			theirs=$(torch_run --preset "$preset" --batch "$BATCH" --seq "$SEQ" "${lora[@]}")
			ttps=$(echo "$theirs" | get tokens_per_s)
			tbest=$(echo "$theirs" | get ms_per_step_best)
			trss=$(echo "$theirs" | get peak_rss_mb)
			ratio=$(awk -v a="$tps" -v b="$ttps" 'BEGIN { printf "%.2fx", a / b }')
			bratio=$(awk -v a="$best" -v b="$tbest" 'BEGIN { printf "%.2fx", b / a }')
			ttps=$(printf "%.1f" "$ttps"); tbest=$(printf "%.0f" "$tbest"); trss=$(printf "%.0f" "$trss")
		fi
		printf "%-12s %-5s | %9.1f %9.0f %5.1f%% %8.1f%% %7.0f | %9s %9s %7s | %6s %6s\n" \
		    "$preset" "$mode" "$tps" "$best" "$(awk -v m="$mfu" 'BEGIN { print 100 * m }')" \
		    "$(awk -v m="$mfub" 'BEGIN { print 100 * m }')" "$rss" \
		    "$ttps" "$tbest" "$trss" "$ratio" "$bratio"
	done
done
echo "CPU: $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1); kernels: $kern;" \
    "FMA peak $peak GFLOP/s (last run)"
