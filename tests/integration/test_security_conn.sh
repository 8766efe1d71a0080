#!/bin/bash
# test_security_conn.sh - denial of service by connections, as a hostile
# user would try it: one member of the daemon's group holds far more idle
# control connections than the descriptor limit, or connections that never
# finish nng's handshake; anyone holds idle TCP connections and oversized or
# half-sent unsigned messages on remote_listen.  Each time another user is
# still served and the daemon's memory stays bounded.  A remote_keys file
# others can write is refused at start and on SIGHUP.
set -u
. "$FT_SRC/tests/integration/lib.sh"

users_require ftcn_g ftcn_a ftcn_b
# the floods running in the background end with the test too
trap 'for p in $(jobs -p); do kill "$p" 2>/dev/null; done; users_remove; cleanup' EXIT
F=$FT_BIN/client/ftctl
C=$FT_BIN/tests/conn_flood
# flood_as USER OUT ARGS...: conn_flood as USER in the background, $! its pid.
flood_as() {
	local u=$1 out=$2
	shift 2
	(exec setpriv --reuid="$u" --regid=ftcn_g --init-groups "$C" "$@" > "$out") &
}
chmod 755 "$FT_TMP"

# flood_wait FILE PATTERN [SECONDS]: until FILE's last line matches PATTERN;
# prints that line.
flood_wait() {
	for _ in $(seq 1 $((${3:-10} * 10))); do
		[[ "$(tail -1 "$1" 2>/dev/null)" =~ $2 ]] && break
		sleep 0.1
	done
	tail -1 "$1" 2>/dev/null
}
rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$FT_PID/status"; }

# --- control socket: the usual soft limit of 1024 descriptors ---
ulimit -Sn 1024
FT_CONF_EXTRA="rpc_max_conns = 100\nrpc_max_conns_per_user = 64\n"
daemon_start
chmod 755 "$FT_TMP/run"
chgrp ftcn_g "${FT_SOCKET#ipc://}"
expect_eq "$(awk '/^Max open files/ { print $4 }' "/proc/$FT_PID/limits")" "$(ulimit -Hn)" \
	"the daemon raises its soft descriptor limit to the hard one"
uid_b=$(id -u ftcn_b)

flood_as ftcn_a "$FT_TMP/a.out" "$FT_SOCKET" 1100 idle
aflood=$!
expect_eq "$(flood_wait "$FT_TMP/a.out" '^open' 60)" "open 64 of 1100" \
	"one user keeps rpc_max_conns_per_user idle connections, the rest are closed"
out=$(as ftcn_b "$F" --timeout 3000 status --json) || fail "another user's status under the flood: $out"
expect_eq "$(json_get "$out" caller_uid)" "$uid_b" "another user is served while one holds 1100 connections"
expect_match "$(grep -c 'control connection from uid [0-9]* refused: rpc_max_conns_per_user reached' \
	"$FT_TMP/ftuned.log")" "^[1-9]" "the refusals are logged (at most once a second)"
flood_as ftcn_b "$FT_TMP/b.out" "$FT_SOCKET" 50 idle
bflood=$!
expect_eq "$(flood_wait "$FT_TMP/b.out" '^open')" "open 36 of 50" "rpc_max_conns bounds all users together"
kill "$bflood"
for _ in $(seq 1 50); do
	out=$(as ftcn_b "$F" --timeout 3000 status --json 2>&1) && break
	sleep 0.1
done || fail "status once connections are free: $out"
pass "connections closed make room again"
kill "$aflood"

# Connections that never finish the SP handshake are not pipes yet, so no
# bound sees them: nng 1.5 closes them after 10 s, and the raised descriptor
# limit keeps room for everyone else meanwhile.
flood_as ftcn_a "$FT_TMP/raw.out" "$FT_SOCKET" 1100 raw
flood_wait "$FT_TMP/raw.out" '^open' 30 >/dev/null
out=$(as ftcn_b "$F" --timeout 3000 status --json) || fail "status under 1100 raw connections: $out"
pass "another user is served while one holds 1100 connections without a handshake"
expect_eq "$(flood_wait "$FT_TMP/raw.out" '^open 0 ' 20)" "open 0 of 1100" \
	"connections without a handshake are closed (nng's 10 s negotiation timeout)"
daemon_stop
ulimit -Sn "$(ulimit -Hn)"

# --- remote_listen: nobody is known before the signature ---
port=$((20000 + RANDOM % 20000))
url=tcp://127.0.0.1:$port
"$F" keygen alice "$FT_TMP/alice.key" | sed -n 's/^alice UID /alice 4242 /p' > "$FT_TMP/remote_keys"
chmod 644 "$FT_TMP/remote_keys"
FT_CONF_EXTRA="remote_listen = $url\nremote_keys = $FT_TMP/remote_keys\nremote_idle_timeout = 5\nremote_max_conns = 64\n"
FT_MAX_MESSAGE=16M daemon_start
signed_status() { "$F" --timeout 3000 --socket "$url" --key "$FT_TMP/alice.key" status --json; }

# Idle connections, all from 127.0.0.2: the per-address bound keeps the
# others (ftctl below comes from 127.0.0.1); from 50 addresses, the total.
"$C" "$url" 300 idle 1 > "$FT_TMP/idle.out" &
expect_eq "$(flood_wait "$FT_TMP/idle.out" '^open')" "open 16 of 300" \
	"one address keeps remote_max_conns_per_addr connections"
"$C" "$url" 100 idle 50 > "$FT_TMP/idle50.out" &
expect_eq "$(flood_wait "$FT_TMP/idle50.out" '^open')" "open 48 of 100" \
	"remote_max_conns bounds all addresses together"
expect_match "$(grep -c 'remote connection from 127.0.0.2 refused: remote_max_conns_per_addr' \
	"$FT_TMP/ftuned.log")" "^[1-9]" "the refusal names the address and the bound"
"$F" --timeout 3000 status >/dev/null || fail "IPC status under the TCP flood"
pass "the control socket is served under the TCP flood"
expect_eq "$(flood_wait "$FT_TMP/idle.out" '^open 0 ' 10)" "open 0 of 300" \
	"idle remote connections are closed after remote_idle_timeout"
expect_eq "$(flood_wait "$FT_TMP/idle50.out" '^open 0 ' 10)" "open 0 of 100" \
	"all of them"
out=$(signed_status) || fail "signed status after the idle flood: $out"
expect_eq "$(json_get "$out" caller_uid)" "4242" "a signed request is served once the idle ones are gone"

# 50 senders, each from its own address, of a 16 MiB unsigned message that
# they never finish (8 MiB sent), then of a 1 MiB one (512 KiB sent).
rss0=$(rss_kb)
"$C" "$url" 50 send 16777216 8388608 50 > "$FT_TMP/big.out" &
expect_eq "$(flood_wait "$FT_TMP/big.out" '^open 0 ' 30)" "open 0 of 50" \
	"a message over remote_max_message closes the connection at its header"
rss_big=$(rss_kb)
"$C" "$url" 50 send 1048576 524288 50 > "$FT_TMP/half.out" &
expect_eq "$(flood_wait "$FT_TMP/half.out" '^open' 30)" "open 50 of 50" "50 half-sent messages held"
rss_half=$(rss_kb)
out=$(signed_status) || fail "signed status under 50 half-sent messages: $out"
pass "signed requests are served under 50 half-sent messages"
expect_eq "$(flood_wait "$FT_TMP/half.out" '^open 0 ' 10)" "open 0 of 50" \
	"slow senders are closed after remote_idle_timeout"
echo "RSS: ${rss0} kB before, ${rss_big} kB with 50 oversized senders, ${rss_half} kB with 50 half-sent 1 MiB messages"
[ $((rss_big - rss0)) -lt 65536 ] && [ $((rss_half - rss0)) -lt 65536 ] ||
	fail "RSS grew by more than 64 MiB: ${rss0} -> ${rss_big} / ${rss_half} kB"
pass "RSS stays within 64 MiB of its start under 50 oversized and 50 slow senders"

# --- remote_keys must be writable by nobody but its owner (root or the daemon) ---
"$F" keygen bob "$FT_TMP/bob.key" | sed -n 's/^bob UID /bob 0 /p' >> "$FT_TMP/remote_keys"
chmod 666 "$FT_TMP/remote_keys"
before=$(grep -c 'the previous remote keys stay' "$FT_TMP/ftuned.log")
kill -HUP "$FT_PID"
for _ in $(seq 1 50); do
	[ "$(grep -c 'the previous remote keys stay' "$FT_TMP/ftuned.log")" -gt "$before" ] && break
	sleep 0.1
done
expect_match "$(grep 'the previous remote keys stay' "$FT_TMP/ftuned.log" | tail -1)" \
	"remote_keys: mode 666 lets other users add keys; refused" "SIGHUP refuses a world-writable remote_keys"
msg=$("$F" --timeout 3000 --socket "$url" --key "$FT_TMP/bob.key" status 2>&1)
expect_match "$msg" "unknown key 'bob'" "a key added to a world-writable file is not accepted"
out=$(signed_status) || fail "old keys after a refused reload: $out"
expect_eq "$(json_get "$out" caller_uid)" "4242" "the previous keys stay"
daemon_stop

# start_refused WHAT PATTERN: the daemon must not start, and say why.
start_refused() {
	timeout 20 "$FT_BIN/daemon/ftuned" -d -f "$FT_TMP/ftuned.conf" --state-dir "$FT_STATE" \
	    --socket "$FT_SOCKET" --http 127.0.0.1:0 > "$FT_TMP/start.log" 2>&1
	[ $? = 1 ] || fail "$1: the daemon started (or hung)"
	expect_match "$(cat "$FT_TMP/start.log")" "$2" "$1"
}
start_refused "a world-writable remote_keys is refused at start" \
	"remote_keys: mode 666 lets other users add keys; refused \(chmod go-w"
chmod 664 "$FT_TMP/remote_keys"
start_refused "a group-writable remote_keys is refused at start" "mode 664 lets other users add keys"
chmod 644 "$FT_TMP/remote_keys"
chown ftcn_a "$FT_TMP/remote_keys"
start_refused "a remote_keys owned by another user is refused" \
	"owned by uid $(id -u ftcn_a); it must belong to root or to the daemon's user"
chown root "$FT_TMP/remote_keys"
FT_MAX_MESSAGE=16M daemon_start
msg=$("$F" --timeout 3000 --socket "$url" --key "$FT_TMP/bob.key" status --json) || fail "bob: $msg"
expect_eq "$(json_get "$msg" caller_uid)" "0" "the same file, once only root can write it, is read"
daemon_stop
finish
