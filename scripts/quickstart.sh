#!/bin/bash
# quickstart.sh - the main job, from a fresh Debian 12 machine: install
# dependencies, build, start ftuned in the background with its state in
# ./.state, then run the demo (scripts/demo.sh): pretrain a small model on
# general English, continue pre-training it on computing terms, instruction
# tune it, and compare the three on held-out examples, in the terminal and
# in the dashboard.  Running it again reuses the build, the state and every
# model already made.  QUICKSTART_DEMO=0 only starts the daemon.
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
import_roots = $state
CONF
	echo "== starting ftuned (log: $state/ftuned.log)"
	# Without -d, ftuned returns once it is serving (or has failed).
	build/daemon/ftuned -f "$state/ftuned.conf" >>"$state/ftuned.log" 2>&1 ||
		{ tail -5 "$state/ftuned.log"; exit 1; }
fi

build/client/ftctl status
if [ "${QUICKSTART_DEMO:-1}" != 0 ]; then
	scripts/demo.sh "$root/build" "$state/demo"
fi
cat <<MSG

Dashboard: $(build/client/ftctl status --json | sed -n 's/.*"http_url": "\(.*\)".*/\1/p')
Use the client: export FTUNED_SOCKET=$sock; build/client/ftctl help
Stop the daemon: kill \$(cat $state/ftuned.pid)
MSG
