#!/bin/bash
# test_remote.sh - remote access over TCP: requests signed with a key from
# remote_keys act as that key's user; unsigned, unknown-key, tampered and
# replayed requests are refused, and the IPC socket works as before.
# SIGHUP reloads remote_keys without a restart.
set -u
. "$FT_SRC/tests/integration/lib.sh"

F=$FT_BIN/client/ftctl
port=$((20000 + RANDOM % 20000))
url=tcp://127.0.0.1:$port
"$F" keygen alice "$FT_TMP/alice.key" > "$FT_TMP/keygen.out" || fail "keygen"
expect_eq "$(stat -c %a "$FT_TMP/alice.key")" "600" "secret key file is private"
sed -n 's/^alice UID /alice 4242 /p' "$FT_TMP/keygen.out" > "$FT_TMP/remote_keys"
"$F" keygen mallory "$FT_TMP/mallory.key" >/dev/null || fail "keygen"
FT_CONF_EXTRA="remote_listen = $url\nremote_keys = $FT_TMP/remote_keys\n"
daemon_start

out=$("$F" --socket "$url" --key "$FT_TMP/alice.key" status --json) || fail "signed status"
expect_eq "$(json_get "$out" caller_uid)" "4242" "a signed request acts as the key's uid"
out=$(FTUNED_KEY="$FT_TMP/alice.key" "$F" --socket "$url" status --json) || fail "FTUNED_KEY"
pass "\$FTUNED_KEY names the key"
msg=$("$F" --socket "$url" status 2>&1)
expect_match "$msg" "UNAUTHENTICATED: requests over TCP must be signed" "unsigned request refused"
msg=$("$F" --socket "$url" --key "$FT_TMP/mallory.key" status 2>&1)
expect_match "$msg" "UNAUTHENTICATED: unknown key 'mallory'" "unknown key refused"
"$FT_BIN/tests/remote_replay" "$url" "$FT_TMP/alice.key" || fail "replay"
pass "replayed and tampered requests refused"
out=$("$F" status --json) || fail "IPC still works"
expect_eq "$(json_get "$out" caller_uid)" "$(id -u)" "IPC requests keep the socket's uid"

# hup WHAT: SIGHUP, then wait until the log has one more line matching WHAT.
hup() {
	local before
	before=$(grep -c "$1" "$FT_TMP/ftuned.log")
	kill -HUP "$FT_PID"
	for _ in $(seq 1 50); do
		[ "$(grep -c "$1" "$FT_TMP/ftuned.log")" -gt "$before" ] && return 0
		sleep 0.1
	done
	fail "no '$1' in the log after SIGHUP"
}

# SIGHUP reloads remote_keys: a key added works, a key removed is refused,
# a broken file keeps the keys there were; no restart.
"$F" keygen bob "$FT_TMP/bob.key" | sed -n 's/^bob UID /bob 4343 /p' > "$FT_TMP/bob.line"
cat "$FT_TMP/bob.line" >> "$FT_TMP/remote_keys"
msg=$("$F" --socket "$url" --key "$FT_TMP/bob.key" status 2>&1)
expect_match "$msg" "unknown key 'bob'" "a key added to the file is unknown before SIGHUP"
hup "SIGHUP: log_level and remote_keys (2 keys from $FT_TMP/remote_keys) reloaded"
out=$("$F" --socket "$url" --key "$FT_TMP/bob.key" status --json) || fail "added key after SIGHUP"
expect_eq "$(json_get "$out" caller_uid)" "4343" "a key added works after SIGHUP, without a restart"
cp "$FT_TMP/bob.line" "$FT_TMP/remote_keys"
hup "remote_keys (1 key from"
msg=$("$F" --socket "$url" --key "$FT_TMP/alice.key" status 2>&1)
expect_match "$msg" "UNAUTHENTICATED: unknown key 'alice'" "a key removed is refused after SIGHUP"
printf 'alice 4242 not-hex\n' >> "$FT_TMP/remote_keys"
hup "the previous remote keys stay"
expect_match "$(grep 'previous remote keys stay' "$FT_TMP/ftuned.log")" "remote_keys:2: expected" \
	"a broken file is logged with its line"
out=$("$F" --socket "$url" --key "$FT_TMP/bob.key" status --json) || fail "old keys after a broken file"
expect_eq "$(json_get "$out" caller_uid)" "4343" "a broken file keeps the old keys"
msg=$("$F" --socket "$url" --key "$FT_TMP/alice.key" status 2>&1)
expect_match "$msg" "unknown key 'alice'" "a broken file adds none of its keys"
daemon_stop
finish
