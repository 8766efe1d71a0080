#!/bin/bash
# test_daemon.sh - the walking skeleton end to end: a real ftuned on a
# temporary state directory and socket, ftctl over nng, the dashboard over
# HTTP, abuse of the control socket, and a clean SIGTERM shutdown.
set -u
. "$FT_SRC/tests/integration/lib.sh"

daemon_start
sock=$FT_SOCKET

# ftctl status, human and JSON; exit codes.
out=$("$FT_BIN/client/ftctl" status) || fail "ftctl status failed"
expect_match "$out" "ftuned 0.1.0" "status names the version"
json=$("$FT_BIN/client/ftctl" status --json) || fail "ftctl status --json failed"
expect_eq "$(json_get "$json" caller_uid)" "$(id -u)" "daemon sees the caller's uid"
expect_eq "$(json_get "$json" state_dir)" "$FT_STATE" "state dir reported"
expect_eq "$(json_get "$json" queue_length)" "0" "empty queue"
"$FT_BIN/client/ftctl" --socket "ipc://$FT_TMP/nobody.sock" status >/dev/null 2>&1
expect_eq "$?" "3" "unreachable daemon exits 3"
"$FT_BIN/client/ftctl" frobnicate >/dev/null 2>&1
expect_eq "$?" "2" "unknown command exits 2"
out=$("$FT_BIN/client/ftctl" help status) || fail "ftctl help status"
expect_match "$out" "usage: ftctl status" "help for one command"
out=$("$FT_BIN/client/ftctl" stat --json) || fail "prefix command"
expect_match "$out" '"pid"' "prefix matching finds status"

# The control socket is not world-accessible.
perm=$(stat -c %a "${sock#ipc://}")
expect_eq "$perm" "660" "socket mode"

# Dashboard and API.
url=$(json_get "$json" http_url)
expect_match "$url" "^http://127.0.0.1:[0-9]+/$" "dashboard on loopback"
api=$(curl -sf "${url}api/v1/status") || fail "GET /api/v1/status"
expect_eq "$(json_get "$api" pid)" "$(json_get "$json" pid)" "API and RPC agree"
page=$(curl -sf "$url") || fail "GET /"
expect_match "$page" "<title>ftuned</title>" "dashboard page"
expect_eq "$(curl -s -o /dev/null -w '%{http_code}' "${url}api/v1/nothing")" "404" "unknown API is 404"
expect_match "$(curl -s "${url}api/v1/nothing")" '"error"' "404 is JSON"
expect_eq "$(curl -s -o /dev/null -w '%{http_code}' -X POST "${url}api/v1/status")" "405" "API is read-only"
expect_eq "$(curl -s -o /dev/null -w '%{http_code}' --path-as-is "${url}../../../etc/passwd")" "404" "no path outside web/"
expect_match "$(curl -sI "$url")" "Content-Security-Policy: default-src 'self'; script-src 'self'" "CSP header"
expect_eq "$(curl -s -o /dev/null -w '%{http_code}' "${url}folder/")" "404" "no directory listing (a folder is not a file)"

# Bad messages on the control socket; the daemon keeps serving.
"$FT_BIN/tests/rpc_abuse" "$sock" 65536 || fail "rpc_abuse"
pass "control socket survives abuse"

# Peers that leave during the SP handshake break nng 1.5's listener for
# everyone (nng issue #1518); the daemon notices and listens again.
/usr/bin/python3 - "${FT_SOCKET#ipc://}" <<'PY' || fail "connect-and-close peers"
import socket, sys
for _ in range(20):
    s = socket.socket(socket.AF_UNIX)
    s.connect(sys.argv[1])
    s.close()
PY
answered=0
for _ in 1 2 3 4 5 6; do
	if "$FT_BIN/client/ftctl" status >/dev/null 2>&1; then answered=1; break; fi
done
expect_eq "$answered" 1 "the control socket answers again after peers left mid-handshake"

# A second daemon on the same state directory is refused.
"$FT_BIN/daemon/ftuned" -d -f "$FT_TMP/ftuned.conf" --state-dir "$FT_STATE" --socket "ipc://$FT_TMP/second.sock" --http "" 2>"$FT_TMP/second.log"
expect_eq "$?" "1" "second daemon on the same state refused"
expect_match "$(cat "$FT_TMP/second.log")" "another ftuned is using this state directory" "reason given"

# Bad configuration: -n names the line.
printf 'state_dir = /tmp\nbogus_key = 1\n' > "$FT_TMP/bad.conf"
msg=$("$FT_BIN/daemon/ftuned" -n -f "$FT_TMP/bad.conf" 2>&1)
expect_eq "$?" "1" "ftuned -n rejects a bad config"
expect_match "$msg" "bad.conf:2: unknown key 'bogus_key'" "error names the line"
"$FT_BIN/daemon/ftuned" -n -f "$FT_TMP/ftuned.conf" >/dev/null || fail "ftuned -n on a good config"
pass "ftuned -n accepts a good config"
# -n runs the same checks as the start: values the daemon cannot use fail here.
for bad in "http_auth = basic|expected auto or token" "remote_listen = ipc:///tmp/r|expected tcp://ADDR:PORT"; do
	printf 'log_level = info\n%s\n' "${bad%%|*}" > "$FT_TMP/bad.conf"
	msg=$("$FT_BIN/daemon/ftuned" -n -f "$FT_TMP/bad.conf" 2>&1)
	expect_eq "$?" "1" "ftuned -n rejects ${bad%%|*}"
	expect_match "$msg" "bad.conf:2: ${bad%% =*}: .*${bad#*|}" "ftuned -n names the line of ${bad%%|*}"
done

schema=$(json_get "$("$FT_BIN/client/ftctl" status --json)" schema_version)

# SIGHUP reloads, and names a changed key that only a restart applies
# (none for an unchanged file: the command line's overrides are read again
# too); SIGTERM stops cleanly.
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
hup "SIGHUP: log_level reloaded"
"$FT_BIN/client/ftctl" status >/dev/null || fail "status after SIGHUP"
pass "serving after SIGHUP"
! grep -q "cannot be reloaded" "$FT_TMP/ftuned.log" || fail "an unchanged file reported as changed"
pass "an unchanged configuration reloads without a warning"
printf 'http_threads = 9\nlog_level = info\n' >> "$FT_TMP/ftuned.conf"
hup "SIGHUP: log_level reloaded"
expect_match "$(cat "$FT_TMP/ftuned.log")" "SIGHUP: http_threads changed but cannot be reloaded; restart ftuned" \
	"a changed key that is not reloadable is reported"
daemon_stop
expect_eq "$FT_EXIT" "0" "clean exit on SIGTERM"
[ ! -e "${sock#ipc://}" ] || fail "socket removed at exit"
pass "socket removed"

# State persists: a restart on the same directory sees the same schema.
daemon_start
json=$("$FT_BIN/client/ftctl" status --json) || fail "status after restart"
expect_eq "$(json_get "$json" schema_version)" "$schema" "schema kept across restart"
daemon_stop

# Migration 12 -> 13: a job stored when type, method and schedule were
# strings reads with them as enums, every other field kept.
/usr/bin/python3 - "$FT_STATE/ftuned.db" <<'PY' || fail "a schema-12 job row written"
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
old = (b"\x0a\x01m" b"\x12\x01d" b"\x1a\x03cpt" b"\x22\x04lora" b"\x28\x04"
       b"\x7a\x06linear" b"\xba\x01\x02xy")
db.execute("INSERT INTO jobs (owner_uid, state, created_at, spec, name) "
           "VALUES (0, 'FAILED', 1, ?, 'xy')", (old,))
db.execute("PRAGMA user_version = 12")
db.commit()
PY
daemon_start
old=$("$FT_BIN/client/ftctl" job ls --all --json | jq -c '.jobs[] | select(.spec.name == "xy") | .spec')
expect_eq "$(jq -r '[.type, .method, .schedule, .base_model, .data, .lora_rank] | join(" ")' <<<"$old")" \
	"cpt lora linear m d 4" "a job spec from schema 12 reads with its type, method and schedule"
expect_eq "$(json_get "$("$FT_BIN/client/ftctl" status --json)" schema_version)" "$schema" \
	"migrated to the current schema"
daemon_stop
finish
