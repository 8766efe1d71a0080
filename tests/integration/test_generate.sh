#!/bin/bash
# test_generate.sh - streamed ftctl generate: the streamed text is
# byte-identical to the single reply at the same seed (raw, in the template,
# sampled); sessions belong to their uid (another uid, over signed TCP, is
# refused), unknown ones are NOT_FOUND, a finished one is forgotten, a
# uid's fifth open one is RESOURCE_EXHAUSTED until one is cancelled, an
# unpolled one expires; the daemon stops cleanly with sessions open.
set -u
. "$FT_SRC/tests/integration/lib.sh"

assets_require llama2c/stories260K.bin
F=$FT_BIN/client/ftctl
G=$FT_BIN/tests/generate_session
url=tcp://127.0.0.1:$((20000 + RANDOM % 20000))
"$F" keygen alice "$FT_TMP/alice.key" > "$FT_TMP/keygen.out" || fail "keygen"
sed -n 's/^alice UID /alice 4242 /p' "$FT_TMP/keygen.out" > "$FT_TMP/remote_keys"
FT_CONF_EXTRA="import_roots = $assets\nserve_threads = 1\nserve_queue_max = 8\n"
FT_CONF_EXTRA="${FT_CONF_EXTRA}remote_listen = $url\nremote_keys = $FT_TMP/remote_keys\n"
daemon_start
$F model import "$assets/llama2c/stories260K.bin" --tokenizer "$assets/llama2c/tok512.bin" >/dev/null ||
	fail "model import"

# --- streamed text equals the single reply, byte for byte ---
same() {
	local what=$1
	shift
	$F generate stories260K "$@" --no-stream > "$FT_TMP/one" 2>/dev/null || fail "$what: --no-stream"
	$F generate stories260K "$@" --stream > "$FT_TMP/streamed" 2> "$FT_TMP/stats" ||
		fail "$what: --stream"
	cmp -s "$FT_TMP/one" "$FT_TMP/streamed" && pass "$what: streamed equals one reply" ||
		fail "$what: streamed '$(cat "$FT_TMP/streamed")' != '$(cat "$FT_TMP/one")'"
	[ "$(wc -c < "$FT_TMP/one")" -gt 20 ] || fail "$what: too little text"
}
same "raw greedy" "Once upon a time" --raw --max-new-tokens 200
same "template" "Tell me a story about a cat." --max-new-tokens 100 --seed 3
same "sampled" "Lily and Tom" --raw --temperature 0.8 --top-p 0.9 --seed 9 --max-new-tokens 300
same "to the context's end" "The dog" --raw --max-new-tokens 512
expect_match "$(cat "$FT_TMP/stats")" '^\([0-9]+ tokens(, stopped at EOS)?, [0-9]+ ms\)$' \
	"streamed stats on stderr"
out=$($F generate stories260K "x" --raw --json)
expect_eq "$(json_get "$out" done)" "true" "--json: the single reply, done"
msg=$($F generate stories260K "x" --stream --json 2>&1)
expect_match "$msg" "--stream goes with neither --no-stream nor --json" "--stream --json refused"

# --- sessions ---
id=$($G "$FT_SOCKET" - open stories260K "Once upon a time" 2>/dev/null) || fail "open a session"
expect_match "$id" '^[0-9]+$' "Generate with stream returns a session"
msg=$($G "$url" "$FT_TMP/alice.key" poll "$id" 0 2>&1 >/dev/null)
expect_match "$msg" "^PERMISSION_DENIED: generation session $id belongs to uid $(id -u)" \
	"another uid's poll is refused"
msg=$($G "$url" "$FT_TMP/alice.key" cancel "$id" 2>&1)
expect_match "$msg" "^PERMISSION_DENIED" "another uid's cancel is refused"
msg=$($G "$FT_SOCKET" - poll 12345 0 2>&1 >/dev/null)
expect_match "$msg" "^NOT_FOUND: no generation session 12345" "an unknown session is NOT_FOUND"
# drain ID OFFSET: polls from OFFSET to the end; the text goes to $text.
drain() {
	local chunk off=$2
	text=
	for _ in $(seq 1 400); do
		chunk=$($G "$FT_SOCKET" - poll "$1" "$off" 2>"$FT_TMP/code"; printf x) || fail "poll"
		chunk=${chunk%x}
		text=$text$chunk
		off=$((off + $(printf '%s' "$chunk" | wc -c)))
		[ "$(cat "$FT_TMP/code")" = "OK done" ] && return 0
		[ "$(cat "$FT_TMP/code")" = "OK" ] || fail "poll: $(cat "$FT_TMP/code")"
	done
	fail "session $1 did not end"
}
drain "$id" 0
want=$($F generate stories260K "Once upon a time" --raw --max-new-tokens 200 --no-stream 2>/dev/null)
expect_eq "$text" "$want" "polled chunks join into the single reply's text"
msg=$($G "$FT_SOCKET" - poll "$id" 0 2>&1 >/dev/null)
expect_match "$msg" "^NOT_FOUND" "a session is forgotten once its end was returned"
id=$($G "$FT_SOCKET" - open stories260K "Once upon a time" 2>/dev/null) || fail "open a session"
sleep 1
msg=$($G "$FT_SOCKET" - poll "$id" 100000 2>&1 >/dev/null)
expect_match "$msg" "^INVALID_ARGUMENT: offset 100000 is past the text" "an offset past the end"
drain "$id" 10
expect_eq "$text" "${want:10}" "a poll from an offset returns the text after it"

ids=()
for i in 1 2 3 4; do
	ids+=("$($G "$FT_SOCKET" - open stories260K "Story $i" 2>/dev/null)") || fail "open session $i"
done
msg=$($G "$FT_SOCKET" - open stories260K "Story 5" 2>&1 >/dev/null)
expect_match "$msg" "^RESOURCE_EXHAUSTED: 4 streamed generations open" "a fifth session is refused"
msg=$($F generate stories260K "Story 5" --raw --stream 2>&1 >/dev/null)
expect_match "$msg" "RESOURCE_EXHAUSTED" "ftctl reports the refusal"
$G "$url" "$FT_TMP/alice.key" open stories260K "Alice's" >/dev/null 2>&1 &&
	pass "another uid has its own bound" || fail "alice's session refused"
$G "$FT_SOCKET" - cancel "${ids[0]}" 2>/dev/null || fail "cancel"
msg=$($G "$FT_SOCKET" - poll "${ids[0]}" 0 2>&1 >/dev/null)
expect_match "$msg" "^NOT_FOUND" "a cancelled session is gone"
$G "$FT_SOCKET" - open stories260K "Story 6" >/dev/null 2>&1 &&
	pass "a cancelled session frees its place" || fail "open after cancel"

# Nothing polls these now: the reaper cancels them after 10 s.
sleep 12
msg=$($G "$FT_SOCKET" - poll "${ids[1]}" 0 2>&1 >/dev/null)
expect_match "$msg" "^NOT_FOUND" "an unpolled session expires"
grep -q "not polled for 10 s, cancelled" "$FT_TMP/ftuned.log" && pass "expiry logged" ||
	fail "expiry not logged"
for i in 1 2 3 4; do
	$G "$FT_SOCKET" - open stories260K "Again $i" >/dev/null 2>&1 || fail "open after expiry"
done
pass "expired sessions free their places"

daemon_stop
expect_eq "$FT_EXIT" "0" "the daemon stops cleanly with sessions open"
finish
