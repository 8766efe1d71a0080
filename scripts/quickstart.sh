#!/bin/bash
# quickstart.sh - install dependencies, build, and start ftuned in the
# background with its state in ./.state, then show its status and the
# dashboard address. Running it again reuses the build and the state.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
state=$root/.state
sock=ipc://$state/ftuned.sock

scripts/setup.sh
echo "== building"
scripts/build.sh build

export FTUNED_SOCKET=$sock
if build/client/ftctl --timeout 1000 status >/dev/null 2>&1; then
	echo "== ftuned already running"
else
	mkdir -p "$state"
	cat > "$state/ftuned.conf" <<CONF
state_dir = $state
socket = $sock
web_root = $root/web
http_listen = 127.0.0.1:8631
CONF
	echo "== starting ftuned (log: $state/ftuned.log)"
	# Without -d, ftuned returns once it is serving (or has failed).
	build/daemon/ftuned -f "$state/ftuned.conf" >>"$state/ftuned.log" 2>&1 ||
		{ tail -5 "$state/ftuned.log"; exit 1; }
fi

build/client/ftctl status
cat <<MSG

Dashboard: $(build/client/ftctl status --json | sed -n 's/.*"http_url": "\(.*\)".*/\1/p')
Use the client: export FTUNED_SOCKET=$sock; build/client/ftctl help
Stop the daemon: kill \$(cat $state/ftuned.pid)
MSG
