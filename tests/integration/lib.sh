# lib.sh - helpers for integration tests: a daemon on a temporary state
# directory and socket, and assertions that count.
# Needs FT_BIN (build dir) and FT_SRC (source dir) from ctest.

FT_TMP=$(mktemp -d /tmp/ftuned-test.XXXXXX)
FT_STATE=$FT_TMP/state
FT_SOCKET=ipc://$FT_TMP/run/ftuned.sock
export FTUNED_SOCKET=$FT_SOCKET
FT_PASSED=0
FT_FAILED=0
FT_PID=
trap 'cleanup' EXIT

cleanup() {
	[ -n "$FT_PID" ] && kill -9 "$FT_PID" 2>/dev/null
	rm -rf "$FT_TMP"
}

# assets_require FILE...: sets assets to ../shared/assets (or $FT_ASSETS)
# and skips the test (exit 77) when a file under it is missing.
assets_require() {
	assets=${FT_ASSETS:-$FT_SRC/../shared/assets}
	for f in "$@"; do
		if [ ! -r "$assets/$f" ]; then
			echo "SKIP: $assets/$f not found (../shared/assets absent)"
			exit 77
		fi
	done
}

# users_require GROUP USER...: skips the test (77) unless it runs as root
# with setpriv and useradd; creates GROUP and each USER in it (removed again
# at exit, also on failure; users_remove), and `as USER CMD...` runs CMD as
# that user in GROUP.
users_require() {
	if [ "$(id -u)" != 0 ] || ! command -v setpriv >/dev/null || ! command -v useradd >/dev/null; then
		echo "SKIP: needs root, setpriv and useradd (it creates users $*)"
		exit 77
	fi
	FT_USERS_GROUP=$1
	shift
	FT_USERS="$*"
	users_remove
	trap 'users_remove; cleanup' EXIT
	groupadd "$FT_USERS_GROUP" || fail "create test users"
	for u in $FT_USERS; do
		useradd -M -N -g "$FT_USERS_GROUP" "$u" || fail "create test users"
	done
}
users_remove() {
	for u in ${FT_USERS:-}; do userdel "$u" 2>/dev/null; done
	[ -z "${FT_USERS_GROUP:-}" ] || groupdel "$FT_USERS_GROUP" 2>/dev/null
}
as() { local u=$1; shift; setpriv --reuid="$u" --regid="$FT_USERS_GROUP" --init-groups "$@"; }

pass() { FT_PASSED=$((FT_PASSED + 1)); echo "ok: $1"; }
fail() {
	FT_FAILED=$((FT_FAILED + 1))
	echo "FAIL: $1" >&2
	[ -f "$FT_TMP/ftuned.log" ] && tail -20 "$FT_TMP/ftuned.log" >&2
	finish
}
expect_eq() { [ "$1" = "$2" ] && pass "$3" || fail "$3: got '$1', want '$2'"; }
expect_match() { [[ "$1" =~ $2 ]] && pass "$3" || fail "$3: '$1' does not match '$2'"; }

# json_get JSON KEY: a top-level scalar, without needing jq.
json_get() {
	printf '%s' "$1" | tr -d '\n' | sed -n "s/.*\"$2\": *\"\{0,1\}\([^\",}]*\)\"\{0,1\}.*/\1/p"
}

# daemon_start [extra args]: foreground daemon in the background, ready
# when ftctl can reach it.
daemon_start() {
	# A copy of web/ with an extra folder, to check directory listing is off.
	rm -rf "$FT_TMP/web" && cp -r "$FT_SRC/web" "$FT_TMP/web" && mkdir -p "$FT_TMP/web/folder"
	printf 'web_root = %s/web\nrpc_max_message = %s\nlog_level = debug\n%b' "$FT_TMP" \
	    "${FT_MAX_MESSAGE:-64K}" "${FT_CONF_EXTRA:-}" > "$FT_TMP/ftuned.conf"
	"$FT_BIN/daemon/ftuned" -d -f "$FT_TMP/ftuned.conf" --state-dir "$FT_STATE" \
	    --socket "$FT_SOCKET" --http 127.0.0.1:0 "$@" >>"$FT_TMP/ftuned.log" 2>&1 &
	FT_PID=$!
	for _ in $(seq 1 100); do
		"$FT_BIN/client/ftctl" --timeout 500 status >/dev/null 2>&1 && return 0
		kill -0 "$FT_PID" 2>/dev/null || break
		sleep 0.1
	done
	fail "daemon did not start"
}

# daemon_kill: SIGKILL, as a crash would.
daemon_kill() {
	kill -KILL "$FT_PID"
	wait "$FT_PID" 2>/dev/null
	FT_PID=
}

# job_wait ID [SECONDS]: until the job reaches a final state; prints it.
job_wait() {
	local state
	for _ in $(seq 1 $((${2:-300} * 5))); do
		state=$(json_get "$("$FT_BIN/client/ftctl" job show "$1" --json)" state)
		case "$state" in SUCCEEDED|FAILED|CANCELLED) echo "$state"; return 0;; esac
		sleep 0.2
	done
	echo "TIMEOUT"
}

# job_field ID KEY: a top-level field of ftctl job show --json.
job_field() { json_get "$("$FT_BIN/client/ftctl" job show "$1" --json)" "$2"; }

daemon_stop() {
	kill -TERM "$FT_PID"
	wait "$FT_PID"
	FT_EXIT=$?
	FT_PID=
}

finish() {
	echo "$FT_PASSED passed, $FT_FAILED failed"
	[ "$FT_FAILED" -eq 0 ] && exit 0 || exit 1
}
