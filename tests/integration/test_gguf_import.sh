#!/bin/bash
# test_gguf_import.sh - GGUF both ways through the real daemon: stories260K
# exported as GGUF in F32, F16, Q8_0 and Q4_K_M, each imported back with
# `ftctl model import x.gguf` (the tokenizer from its tokenizer.ggml.* keys,
# lineage naming the file and its types); greedy text identical to the
# source for F32, and every copy's teacher-forced loss (ftctl eval, loss)
# equal for F32 and within its quantization error otherwise; a model with
# a chat template keeps it (the ollama export of the re-import translates
# it); Qwen3's and Llama 3.1's byte-level BPE vocabularies (Llama 3.1's chat
# template too) and tiny-gpt2 (llama.cpp's gpt2) come back generating the
# same tokens; a GGUF base trains, and its tuned
# model exports again.  Refused, with
# the reason: a truncated file, a tensor type the engine does not read, a
# symbolic link, --tokenizer beside a GGUF.
set -u
. "$FT_SRC/tests/integration/lib.sh"

assets_require llama2c/stories260K.bin tokenizers/tinyllama-1.1b-chat/tokenizer.json hf/tiny-gpt2/config.json \
	tokenizers/qwen3/tokenizer.json tokenizers/llama-3.1/tokenizer.json
command -v jq >/dev/null || { echo "SKIP: needs jq"; exit 77; }
F=$FT_BIN/client/ftctl
FT_MAX_MESSAGE=16M
mkdir -p "$FT_TMP/export" "$FT_TMP/in"
FT_CONF_EXTRA="import_roots = $assets:$FT_TMP/export:$FT_TMP/in\nexport_roots = $FT_TMP/export\ntraining_threads = 2\n"
daemon_start

$F model import "$assets/llama2c/stories260K.bin" --tokenizer "$assets/llama2c/tok512.bin" >/dev/null ||
	fail "model import stories260K"
prompt="Once upon a time"
want=$($F generate stories260K "$prompt" --raw --max-new-tokens 40 --no-stream 2>/dev/null)
[ -n "$want" ] || fail "generate from the source model"

# --- export, import back ---
for dt in f32 f16 q8_0 q4_k_m; do
	$F model export stories260K --format gguf --dtype "$dt" --out "$FT_TMP/export/$dt" >/dev/null ||
		fail "export gguf $dt"
	out=$($F model import "$FT_TMP/export/$dt/model.gguf" --name "s-$dt" --json) || fail "import $dt"
	expect_eq "$(printf '%s' "$out" | jq -r '.format + " " + .tokenizer')" "gguf tokenizer.gguf" \
		"$dt: registered as a GGUF model with its own vocabulary"
	expect_eq "$(printf '%s' "$out" | jq -r '.lineage.import.file')" \
		"$FT_TMP/export/$dt/model.gguf" "$dt: lineage names the file"
done
expect_eq "$($F model show s-q8_0 --json | jq -c '.lineage.import.gguf |
	[.architecture, .file_type, .tokenizer, .tensor_types]')" \
	'["llama",7,"llama",{"F16":5,"F32":11,"Q8_0":31}]' \
	"Q8_0: lineage has the architecture, file type and tensor types (ffn_down rows of 172 kept F16)"
out=$($F model import "$FT_TMP/export/f32/model.gguf" --json) || fail "import with the default name"
expect_eq "$(printf '%s' "$out" | jq -r .name)" "model" "the default name drops .gguf"

got=$($F generate s-f32 "$prompt" --raw --max-new-tokens 40 --no-stream 2>/dev/null)
expect_eq "$got" "$want" "F32 round trip: the same 40 greedy tokens"
for dt in f16 q8_0; do
	got=$($F generate "s-$dt" "$prompt" --raw --max-new-tokens 40 --no-stream 2>/dev/null)
	[ -n "$got" ] && pass "$dt: generates" || fail "$dt: generates"
	[ "$got" = "$want" ] && echo "note: $dt gives the same 40 greedy tokens" ||
		echo "note: $dt continues differently: $got"
done

# --- teacher-forced loss of every copy, through an evaluation ---
printf '%s\n' "Once upon a time, there was a little girl named Lily. She loved to play outside." \
	"One day, a big dog came to the park. The dog was very happy and ran to Lily." \
	"Tom and Sue went to the shop to buy a red ball. They played with it all day." > "$FT_TMP/in/stories.txt"
$F data add "$FT_TMP/in/stories.txt" --kind text --name stories >/dev/null || fail "data add"
ev=$($F eval run --models stories260K,s-f32,s-f16,s-q8_0,s-q4_k_m --data stories --split all --metrics loss \
	--json | jq -r '.id // .eval.id // empty')
[ -n "$ev" ] || fail "eval run"
for _ in $(seq 1 300); do
	st=$($F eval show "$ev" --json | jq -r '.state // .eval.state')
	case "$st" in SUCCEEDED|FAILED|CANCELLED) break;; esac
	sleep 0.2
done
expect_eq "$st" "SUCCEEDED" "the loss evaluation ran"
# the means (versus -1), by the models' order in --models
models=(stories260K s-f32 s-f16 s-q8_0 s-q4_k_m)
losses=$($F eval show "$ev" --json | jq -r '[.. | objects | select(has("versus"))][] | select(.metric == "loss" and .versus == -1) |
	"\(.model // 0) \(.mean)"')
loss_of() {
	local i
	for i in "${!models[@]}"; do
		[ "${models[$i]}" = "$1" ] && printf '%s\n' "$losses" | awk -v m="$i" '$1 == m { print $2; exit }'
	done
}
base=$(loss_of stories260K)
[ -n "$base" ] || fail "the base's loss is reported"
# rel A B TOL: |A - B| <= TOL * |B|
rel() { awk -v a="$1" -v b="$2" -v t="$3" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= t * (b < 0 ? -b : b)) }'; }
expect_eq "$(loss_of s-f32)" "$base" "F32: the same loss"
for x in "f16 0.001" "q8_0 0.002" "q4_k_m 0.02"; do
	set -- $x
	l=$(loss_of "s-$1")
	rel "$l" "$base" "$2" && pass "$1: loss $l within $2 of the source's $base" ||
		fail "$1: loss $l against $base"
done

# --- the chat template travels in tokenizer.chat_template ---
cp "$assets/tokenizers/tinyllama-1.1b-chat/tokenizer.json" \
	"$assets/tokenizers/tinyllama-1.1b-chat/tokenizer_config.json" "$FT_TMP/in/"
$F model init chat --tokenizer "$FT_TMP/in/tokenizer.json" --layers 1 --dim 32 --heads 2 --seq-len 32 >/dev/null ||
	fail "model init with a chat template"
$F model export chat --format gguf --dtype f16 --out "$FT_TMP/export/chat" >/dev/null || fail "export chat"
$F model import "$FT_TMP/export/chat/model.gguf" --name chat-gguf >/dev/null || fail "import chat"
$F model export chat-gguf --format ollama --out "$FT_TMP/export/chat-oll" >/dev/null || fail "ollama export"
grep -q '<|assistant|>' "$FT_TMP/export/chat-oll/Modelfile" &&
	pass "the re-imported model's chat template reaches the Modelfile" || fail "chat template lost"
a=$($F generate chat "Hi" --raw --max-new-tokens 8 --no-stream 2>/dev/null)
b=$($F generate chat-gguf "Hi" --raw --max-new-tokens 8 --no-stream 2>/dev/null)
expect_eq "$b" "$a" "a SentencePiece-style tokenizer.json model continues the same way from its F16 GGUF"

# --- a byte-level BPE vocabulary (Qwen3's, tokenizer.ggml.model gpt2) ---
mkdir -p "$FT_TMP/in/qwen"
cp "$assets/tokenizers/qwen3/tokenizer.json" "$assets/tokenizers/qwen3/tokenizer_config.json" "$FT_TMP/in/qwen/"
$F model init qw --tokenizer "$FT_TMP/in/qwen/tokenizer.json" --layers 1 --dim 16 --heads 2 --seq-len 64 >/dev/null ||
	fail "model init with Qwen3's tokenizer"
$F model export qw --format gguf --out "$FT_TMP/export/qw" >/dev/null || fail "export qw"
out=$($F model import "$FT_TMP/export/qw/model.gguf" --name qw-gguf --json) || fail "import qw"
expect_eq "$(printf '%s' "$out" | jq -r '.lineage.import.gguf | .tokenizer + " " + .pre_tokenizer')" "gpt2 qwen2" \
	"Qwen3's vocabulary is stored as gpt2 BPE with the qwen2 pre-tokenizer"
p="Привет, 2024: it's <think>東京</think> 12345"
a=$($F generate qw "$p" --raw --max-new-tokens 12 --no-stream 2>/dev/null)
b=$($F generate qw-gguf "$p" --raw --max-new-tokens 12 --no-stream 2>/dev/null)
[ -n "$a" ] && [ "$b" = "$a" ] && pass "the BPE model continues the same way from its F32 GGUF" ||
	fail "qw '$a' and qw-gguf '$b'"

# --- Llama 3.1's tokenizer and chat template (llama-bpe, a config with
# an integer past int64) ---
mkdir -p "$FT_TMP/in/l3"
cp "$assets/tokenizers/llama-3.1/tokenizer.json" "$assets/tokenizers/llama-3.1/tokenizer_config.json" "$FT_TMP/in/l3/"
$F model init l3 --tokenizer "$FT_TMP/in/l3/tokenizer.json" --layers 1 --dim 16 --heads 2 --seq-len 64 >/dev/null ||
	fail "model init with Llama 3.1's tokenizer"
$F model export l3 --format gguf --out "$FT_TMP/export/l3" >/dev/null || fail "export l3"
$F model import "$FT_TMP/export/l3/model.gguf" --name l3-gguf >/dev/null || fail "import l3"
$F model export l3-gguf --format ollama --out "$FT_TMP/export/l3-oll" >/dev/null || fail "ollama export of l3-gguf"
grep -q '^# chat template: the Llama 3 family' "$FT_TMP/export/l3-oll/Modelfile" &&
	grep -q '^PARAMETER stop "<|eot_id|>"$' "$FT_TMP/export/l3-oll/Modelfile" &&
	pass "Llama 3.1's chat template and EOS survive GGUF into the Modelfile" || fail "l3 Modelfile"
a=$($F generate l3 "Hello, 2024!" --raw --max-new-tokens 8 --no-stream 2>/dev/null)
b=$($F generate l3-gguf "Hello, 2024!" --raw --max-new-tokens 8 --no-stream 2>/dev/null)
[ -n "$a" ] && [ "$b" = "$a" ] && pass "the Llama 3.1-vocabulary model continues the same way from its GGUF" ||
	fail "l3 '$a', l3-gguf '$b'"

# --- GPT-2 (llama.cpp's gpt2: position_embd, fused attn_qkv) ---
$F model import "$assets/hf/tiny-gpt2" --name tg >/dev/null || fail "import tiny-gpt2"
for dt in f32 q8_0; do
	$F model export tg --format gguf --dtype "$dt" --out "$FT_TMP/export/tg-$dt" >/dev/null ||
		fail "export tiny-gpt2 $dt"
	out=$($F model import "$FT_TMP/export/tg-$dt/model.gguf" --name "tg-$dt" --json) || fail "import tg $dt"
	expect_eq "$(printf '%s' "$out" | jq -r '.arch + " " + .lineage.import.gguf.architecture')" "gpt2 gpt2" \
		"GPT-2 $dt: imported as gpt2"
done
a=$($F generate tg "Hello there" --raw --max-new-tokens 12 --no-stream 2>/dev/null)
b=$($F generate tg-f32 "Hello there" --raw --max-new-tokens 12 --no-stream 2>/dev/null)
[ -n "$a" ] && [ "$b" = "$a" ] && pass "GPT-2 F32 round trip: the same greedy tokens" || fail "tg '$a', tg-f32 '$b'"
$F model export tg --format gguf --dtype q4_k_m --out "$FT_TMP/export/tg-q4" >/dev/null &&
	"$FT_BIN/engine/ftengine" inspect --model "$FT_TMP/export/tg-q4/model.gguf" | grep -q "attn_qkv.weight  *type 1 " &&
	pass "GPT-2 Q4_K_M: attn_qkv rows of 2 are kept F16, as llama.cpp does" || fail "tiny-gpt2 Q4_K_M"

# --- a GGUF base trains; the tuned model keeps its tokenizer ---
for i in $(seq 1 20); do
	printf '{"instruction": "Say hi to %s", "output": "Hi there, %s."}\n' "$i" "$i"
done > "$FT_TMP/in/hi.jsonl"
$F data add "$FT_TMP/in/hi.jsonl" --kind instruct --name hi >/dev/null || fail "data add hi"
job=$($F job submit --base s-f32 --data hi --type sft --method full --max-steps 3 --batch-size 2 --seq-len 32 \
	--name tuned-gguf --json | jq -r .id)
expect_eq "$(job_wait "$job")" "SUCCEEDED" "a full fine-tune of a GGUF base"
expect_eq "$($F model show tuned-gguf --json | jq -r .tokenizer)" "tokenizer.gguf" "the tuned model keeps the vocabulary"
$F model export tuned-gguf --format gguf --dtype q8_0 --out "$FT_TMP/export/tuned" >/dev/null &&
	[ "$(head -c 4 "$FT_TMP/export/tuned/model.gguf")" = GGUF ] && pass "and exports as GGUF" ||
	fail "tuned GGUF export"

# --- refusals ---
head -c 100000 "$FT_TMP/export/f32/model.gguf" > "$FT_TMP/in/truncated.gguf"
msg=$($F model import "$FT_TMP/in/truncated.gguf" 2>&1)
expect_match "$msg" "INVALID_ARGUMENT: not a loadable model: .*truncated.gguf: tensor \"[^\"]+\": data outside the file" \
	"a truncated GGUF is refused, naming the tensor"
/usr/bin/python3 - "$FT_TMP/export/q8_0/model.gguf" "$FT_TMP/in/q4_1.gguf" <<'EOF'
import struct, sys
b = bytearray(open(sys.argv[1], 'rb').read())
i = b.index(b'token_embd.weight') + len('token_embd.weight')
nd = struct.unpack_from('<I', b, i)[0]
struct.pack_into('<I', b, i + 4 + 8 * nd, 3)    # ggml type Q4_1
open(sys.argv[2], 'wb').write(b)
EOF
msg=$($F model import "$FT_TMP/in/q4_1.gguf" 2>&1)
expect_match "$msg" "tensor \"token_embd.weight\": ggml type Q4_1 \(3\) is not supported" \
	"an unsupported tensor type is refused by name"
ln -s "$FT_TMP/export/f32/model.gguf" "$FT_TMP/in/link.gguf"
msg=$($F model import "$FT_TMP/in/link.gguf" 2>&1)
expect_match "$msg" "link.gguf: is a symbolic link" "a symbolic link to a GGUF is refused, not followed"
msg=$($F model import "$FT_TMP/export/f32/model.gguf" --name x --tokenizer "$assets/llama2c/tok512.bin" 2>&1)
expect_match "$msg" "carries its own tokenizer" "--tokenizer beside a GGUF is refused"
expect_eq "$($F model ls --json | jq '[.. | objects | select(has("kind")) | select(.name == "x" or .name == "truncated" or .name == "q4_1" or .name == "link")] | length')" \
	"0" "nothing registered by the refused imports"
[ -z "$(ls -d "$FT_STATE"/tmp-gguf-* 2>/dev/null)" ] && pass "no temporary folder left" ||
	fail "temporary folders left: $(ls -d "$FT_STATE"/tmp-gguf-*)"

daemon_stop
# what a crash in the middle of an import leaves is removed at start
mkdir -p "$FT_STATE/tmp-gguf-AbC123" && touch "$FT_STATE/tmp-gguf-AbC123/tokenizer.gguf"
daemon_start
[ ! -e "$FT_STATE/tmp-gguf-AbC123" ] && pass "an interrupted import's folder is removed at start" ||
	fail "tmp-gguf folder left after a restart"
expect_eq "$($F model show s-q8_0 --json | jq -r .format)" "gguf" "GGUF models are there after a restart"
daemon_stop
finish
