#!/bin/bash
# test_systemd.sh - the unit file passes systemd-analyze verify, and the
# default config generated from the config table passes ftuned -n.
set -u
. "$FT_SRC/tests/integration/lib.sh"

"$FT_BIN/daemon/ftuned" -n -f "$FT_BIN/systemd/ftuned.conf" >/dev/null || fail "default ftuned.conf rejected"
pass "generated default config passes ftuned -n"
grep -q '^# default: 127.0.0.1:8631' "$FT_BIN/systemd/ftuned.conf" || fail "default config documents http_listen"
pass "default config documents every key"

if ! command -v systemd-analyze >/dev/null; then
	echo "SKIP: systemd-analyze not installed"
	finish
fi
sed "s|@SBINDIR@|$FT_BIN/daemon|" "$FT_SRC/systemd/ftuned.service" > "$FT_TMP/ftuned.service"
out=$(systemd-analyze verify "$FT_TMP/ftuned.service" 2>&1)
rc=$?
# Outside a booted system, verify may only warn about the missing manager.
if [ $rc -ne 0 ] && ! [[ "$out" =~ "System has not been booted" ]]; then
	echo "$out" >&2
	fail "systemd-analyze verify"
fi
[[ "$out" =~ "ftuned.service:" ]] && { echo "$out" >&2; fail "unit has warnings"; }
pass "systemd-analyze verify"
finish
