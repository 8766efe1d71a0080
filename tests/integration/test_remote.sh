#!/bin/bash
# test_remote.sh - remote access over TCP: requests signed with a key from
# remote_keys act as that key's user; unsigned, unknown-key, tampered and
# replayed requests are refused, and the IPC socket works as before.
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
daemon_stop
finish
