#!/bin/bash
# test_browser.sh - the dashboard in real headless Chromium, driven by
# playwright-core (tests/browser/dashboard.mjs): a daemon with finished
# jobs and an evaluation made by running them, and a long job running while
# its page is open.  playwright-core is installed once into the build dir
# (npm install --no-save); screenshots are left in
# $FT_BIN/tests/browser-artifacts.  Skips (77) without chromium or node, or
# when npm cannot fetch playwright-core.
set -u
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
if [ ! -x "$CHROMIUM" ] || ! command -v node >/dev/null || ! command -v npm >/dev/null; then
	echo "SKIP: needs $CHROMIUM, node and npm (scripts/setup.sh installs chromium nodejs npm)"
	exit 77
fi
PW_DIR=$FT_BIN/tests/browser-node
if [ ! -f "$PW_DIR/node_modules/playwright-core/package.json" ]; then
	mkdir -p "$PW_DIR"
	if ! (cd "$PW_DIR" && npm install --no-save --no-audit --no-fund playwright-core@1 >npm.log 2>&1); then
		echo "SKIP: npm install playwright-core@1 failed (offline?): $(tail -3 "$PW_DIR/npm.log")"
		exit 77
	fi
fi
. "$FT_SRC/tests/integration/lib.sh"
. "$FT_SRC/tests/integration/web_state.sh"

$F eval show "$EVAL1" --json > "$FT_TMP/eval.json" || fail "ftctl eval show"
# Two API keys for the Keys view, one of them revoked.
$F key create --name browser >/dev/null 2>&1 && $F key create --name old >/dev/null 2>&1 &&
	$F key revoke old >/dev/null || fail "API keys"
# Long enough to watch (a few hundred steps); cancelled at the end.
LONG=$($F job submit --base stories260K --method lora --epochs 300 --max-steps 3000 --eval-every 100 \
	--save-every 500 $web_common | sed -n 's/^job \([0-9]*\) .*/\1/p')
[ -n "$LONG" ] || fail "long job submitted"
# Two jobs wait behind it; the higher priority runs first though submitted later.
Q1=$($F job submit --base stories260K --method lora --max-steps 5 $web_common | sed -n 's/^job \([0-9]*\) .*/\1/p')
Q2=$($F job submit --base stories260K --method lora --max-steps 5 --priority 5 $web_common |
	sed -n 's/^job \([0-9]*\) .*/\1/p')
[ -n "$Q1" ] && [ -n "$Q2" ] || fail "queued jobs submitted"
for _ in $(seq 1 300); do
	[ "$(job_field "$LONG" state)" = RUNNING ] && break
	sleep 0.1
done
SHOTS=$FT_BIN/tests/browser-artifacts
rm -rf "$SHOTS"
WEB_URL=$WEB_URL JOB1=$JOB1 TUNED=$TUNED EVAL1=$EVAL1 LONG=$LONG QUEUE="$Q2,$Q1" EVAL_JSON=$FT_TMP/eval.json \
	SHOTS=$SHOTS PW_DIR=$PW_DIR/node_modules PROFILE_DIR=$FT_TMP/chromium CHROMIUM=$CHROMIUM \
	FT_SRC=$FT_SRC timeout 300 node "$FT_SRC/tests/browser/dashboard.mjs"
rc=$?
$F job cancel "$Q1" >/dev/null
$F job cancel "$Q2" >/dev/null
$F job cancel "$LONG" >/dev/null
[ "$rc" -eq 0 ] && pass "browser checks (screenshots in $SHOTS)" || fail "browser checks"
daemon_stop
expect_eq "$FT_EXIT" "0" "clean shutdown"
finish
