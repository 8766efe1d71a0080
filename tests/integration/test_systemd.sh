#!/bin/bash
# test_systemd.sh - the unit file passes systemd-analyze verify, and the
# default config generated from the config table passes ftuned -n.
set -u
. "$FT_SRC/tests/integration/lib.sh"

"$FT_BIN/daemon/ftuned" -n -f "$FT_BIN/systemd/ftuned.conf" >/dev/null || fail "default ftuned.conf rejected"
pass "generated default config passes ftuned -n"
# Every row of the config table (read from the source, not from the
# program that wrote the file) appears as KEY = VALUE after its documentation
# and a "# default:" line.
keys=$(sed -n 's/^[[:space:]]*{ "\([a-z_0-9]*\)", \(STR\|NUM\)(.*/\1/p' "$FT_SRC/daemon/config.c")
[ "$(wc -w <<<"$keys")" -ge 30 ] || fail "config table rows found in daemon/config.c: $(wc -w <<<"$keys")"
for k in $keys; do
	awk -v k="$k" '$1 == k && $2 == "=" { ok = prev ~ /^# default: / && doc ~ /^# ./; exit }
	    { doc = prev; prev = $0 } END { exit !ok }' "$FT_BIN/systemd/ftuned.conf" ||
		fail "default config documents $k"
done
pass "default config documents every key ($(wc -w <<<"$keys") keys)"

if ! command -v systemd-analyze >/dev/null; then
	echo "SKIP: systemd-analyze not installed (the checks above passed)"
	exit 77
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
