#!/bin/bash
# test_security_http.sh - the HTTP listener grants nobody more than the
# 0660 control socket, attacked as local users would: a user outside the
# socket's group gets 401 on dataset samples, evaluation examples and
# /v1/completions without a key and is served with one (bearer in lower
# case too); group members are let in by their uid; API key names are each
# user's own (one user can neither see, guess nor revoke another's); a
# foreign Host (DNS rebinding) and a cross-origin or text/plain POST are
# refused; 64 half-sent requests (slowloris) from one user do not stall
# another's /api/v1/status: that user keeps 8 connections, and a ninth
# gets 429 saying why.
# The daemon serves on after each attack.
set -u
. "$FT_SRC/tests/integration/lib.sh"

command -v curl >/dev/null && command -v jq >/dev/null && command -v setpriv >/dev/null &&
	[ -x /usr/bin/python3 ] || { echo "SKIP: needs curl, jq, setpriv and /usr/bin/python3"; exit 77; }
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root to create test users"; exit 77; }

GRP=fthtgrp
users_remove() {
	for u in ftht_out ftht_in ftht_in2; do userdel "$u" 2>/dev/null; done
	groupdel "$GRP" 2>/dev/null
}
trap 'users_remove; cleanup' EXIT
users_remove
groupadd "$GRP" && useradd -M -N -s /usr/sbin/nologin ftht_out &&
	useradd -M -N -s /usr/sbin/nologin -G "$GRP" ftht_in &&
	useradd -M -N -s /usr/sbin/nologin -G "$GRP" ftht_in2 || fail "test users"
uid_in=$(id -u ftht_in)
uid_in2=$(id -u ftht_in2)
# as USER CMD...: runs CMD as USER with that user's groups only.
as() { local u=$1; shift; setpriv --reuid="$u" --regid="$(id -g "$u")" --init-groups "$@"; }

daemon_start
F=$FT_BIN/client/ftctl
# The socket as the unit makes it: 0660, group of the daemon's users,
# reachable through its directories.
chgrp "$GRP" "$FT_TMP/run/ftuned.sock" && chmod o+x "$FT_TMP" "$FT_TMP/run" || fail "socket group"
web=$(json_get "$($F status --json)" http_url)
web=${web%/}
port=${web##*:}
printf '{"instruction": "Say hi.", "output": "Hi."}\n{"instruction": "Say bye.", "output": "Bye."}\n' \
	> "$FT_TMP/d.jsonl"
$F data add "$FT_TMP/d.jsonl" --kind instruct --name secret >/dev/null || fail "data add"

# code [curl args] URL: the HTTP status; code_as USER ... the same as USER.
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
code_as() { local u=$1; shift; as "$u" curl -s -o /dev/null -w '%{http_code}' "$@"; }
post_json='{"model": "none", "prompt": "Hi"}'

# --- a local user outside the socket's group ---
as ftht_out "$F" status >/dev/null 2>&1 && fail "the outside user reaches the control socket"
expect_eq "$(as ftht_out curl -s -w ' %{http_code}' "$web/api/v1/datasets/secret" |
	jq -rR 'split(" ") | .[-1]')" 401 "outside: dataset samples refused"
expect_eq "$(as ftht_out curl -s "$web/api/v1/datasets/secret" | jq -r '.error.message')" \
	"a dashboard token or an API key is required: uid $(id -u ftht_out) may not use the control socket" \
	"outside: the refusal says why"
expect_eq "$(code_as ftht_out "$web/api/v1/evals/1/examples")" 401 "outside: evaluation examples refused"
expect_eq "$(code_as ftht_out "$web/api/v1/keys")" 401 "outside: key list refused"
expect_eq "$(code_as ftht_out "$web/")" 303 "outside: the dashboard sends it to the login page"
r=$(as ftht_out curl -s -w '\n%{http_code}' -H 'Content-Type: application/json' -d "$post_json" \
	"$web/v1/completions")
expect_eq "$(tail -n 1 <<<"$r")" 401 "outside: /v1/completions without a key refused"
expect_eq "$(sed '$d' <<<"$r" | jq -r '.error.code')" "invalid_api_key" "outside: OpenAI's error shape"
expect_eq "$(code_as ftht_out "$web/v1/models")" 401 "outside: /v1/models without a key refused"

# --- group members: let in by the uid of their socket ---
expect_eq "$(code_as ftht_in "$web/api/v1/datasets/secret")" 200 "inside: dataset samples served"
expect_eq "$(as ftht_in curl -s "$web/api/v1/evals/1/examples" | jq -r '.error.message')" \
	"no such evaluation" "inside: evaluation examples reached"
expect_eq "$(as ftht_in curl -s -H 'Content-Type: application/json' -d "$post_json" \
	"$web/v1/completions" | jq -r '.error.code')" "model_not_found" "inside: /v1/completions reached"
expect_eq "$(code "$web/api/v1/datasets/secret")" 200 "root: served"

# --- keys: each user's own; a key acts as the user who made it ---
key_root=$($F key create --name shared 2>/dev/null) || fail "root key create"
key_in=$(as ftht_in "$F" key create --name shared 2>/dev/null) || fail "ftht_in key create"
msg=$(as ftht_in2 "$F" key create --name shared 2>&1 >/dev/null) &&
	pass "a second user may use the same key name (it learns nothing of others')" ||
	fail "a second user's key of the same name: $msg"
expect_eq "$(as ftht_in2 "$F" key ls --json | jq -c '[.keys[] | [.name, .owner_uid]]')" \
	"[[\"shared\",$uid_in2]]" "ftht_in2 lists only its own keys"
expect_eq "$(as ftht_in2 curl -s "$web/api/v1/keys" | jq -c '[.keys[].owner_uid] | unique')" \
	"[$uid_in2]" "ftht_in2 over HTTP: only its own keys"
as ftht_in2 "$F" key revoke shared >/dev/null || fail "ftht_in2 revokes its own key"
msg=$(as ftht_in2 "$F" key revoke shared 2>&1)
expect_match "$msg" "NOT_FOUND.*you have no active key named 'shared'" \
	"ftht_in2 cannot revoke ftht_in's key of that name"
[[ "$msg" == *"$uid_in"* ]] && fail "the refusal names ftht_in's uid" || pass "the refusal names no other user"
expect_eq "$(as ftht_in "$F" key ls --json | jq -c '[.keys[] | [.name, .revoked_at]]')" '[["shared",0]]' \
	"ftht_in's key is still active"
expect_eq "$(as ftht_out curl -s -H "Authorization: Bearer $key_in" "$web/api/v1/keys" |
	jq -c '[.keys[].owner_uid] | unique')" "[$uid_in]" "ftht_in's key over HTTP sees ftht_in's keys only"
expect_eq "$(code_as ftht_out -H "Authorization: Bearer $key_root" "$web/api/v1/datasets/secret")" 200 \
	"outside with a key: dataset served"
expect_eq "$(as ftht_out curl -s -H "Authorization: Bearer $key_root" -H 'Content-Type: application/json' \
	-d "$post_json" "$web/v1/completions" | jq -r '.error.code')" "model_not_found" \
	"outside with a key: /v1/completions reached"
expect_eq "$(code_as ftht_out -H "Authorization: bearer $key_in" "$web/v1/models")" 200 \
	"'Authorization: bearer' (lower case) accepted"
expect_eq "$(code_as ftht_out -H "AUTHORIZATION: BEARER $key_in" "$web/api/v1/status")" 200 \
	"'BEARER' accepted on the dashboard API"
grep -q "http: uid $uid_in GET /v1/models -> 200" "$FT_TMP/ftuned.log" &&
	pass "a request with ftht_in's key acts as ftht_in" || fail "the key's request does not act as its owner"
expect_eq "$(code_as ftht_out -H 'Authorization: Bearer ft-wrong' "$web/api/v1/status")" 401 "a wrong key refused"
expect_eq "$(code_as ftht_out -H "Authorization: Basic $key_in" "$web/api/v1/status")" 401 \
	"another scheme refused"

# --- Host and Origin ---
expect_eq "$(code -H "Host: evil.example:$port" "$web/api/v1/status")" 400 "foreign Host refused (dashboard)"
r=$(curl -s -w '\n%{http_code}' -H "Host: evil.example:$port" "$web/v1/models")
expect_eq "$(tail -n 1 <<<"$r"),$(sed '$d' <<<"$r" | jq -r '.error.code')" "400,invalid_host" \
	"foreign Host refused (/v1/, OpenAI's shape)"
expect_eq "$(code -H "Host: localhost:$port" "$web/api/v1/status")" 200 "Host localhost served"
expect_eq "$(code -H "Host: 127.0.0.1:$((port + 1))" "$web/api/v1/status")" 400 "Host with another port refused"
r=$(curl -s -w '\n%{http_code}' -H 'Origin: http://evil.example' -H 'Content-Type: text/plain' \
	-d "$post_json" "$web/v1/completions")
expect_eq "$(tail -n 1 <<<"$r"),$(sed '$d' <<<"$r" | jq -r '.error.code')" "403,cross_origin_refused" \
	"cross-origin text/plain POST to /v1/completions refused"
r=$(curl -s -w '\n%{http_code}' -H "Origin: http://127.0.0.1:$port" -H 'Content-Type: text/plain' \
	-d "$post_json" "$web/v1/completions")
expect_eq "$(tail -n 1 <<<"$r"),$(sed '$d' <<<"$r" | jq -r '.error.code')" "415,unsupported_content_type" \
	"text/plain POST refused even from our origin"
expect_eq "$(curl -s -H "Origin: http://127.0.0.1:$port" -H 'Content-Type: application/json' \
	-d "$post_json" "$web/v1/completions" | jq -r '.error.code')" "model_not_found" "same-origin JSON POST served"
expect_eq "$(code -H 'Origin: http://evil.example' -d 'token=x' "$web/login")" 403 "cross-origin login refused"

# --- slowloris: 64 half-sent requests from the outside user ---
# Without a bound per client these hold all 16 workers, 32 places in the
# queue and the backlog, and ftht_in's status waits for rounds of 2 s
# timeouts; with it ftht_out keeps http_max_conns_per_user (8) of them.
base=$(as ftht_in /usr/bin/python3 "$FT_SRC/tests/integration/half_sent.py" 127.0.0.1 "$port" 0 3)
[[ "$base" =~ ^[0-9]+$ ]] || fail "status without an attack: $base"
# setpriv execs python3, so $! is the process to kill.
setpriv --reuid=ftht_out --regid="$(id -g ftht_out)" --init-groups /usr/bin/python3 \
	"$FT_SRC/tests/integration/half_sent.py" 127.0.0.1 "$port" 64 hold > "$FT_TMP/held" &
slow=$!
for _ in $(seq 1 100); do grep -qs held "$FT_TMP/held" && break; sleep 0.1; done
ms=$(as ftht_in /usr/bin/python3 "$FT_SRC/tests/integration/half_sent.py" 127.0.0.1 "$port" 0 3)
sleep 0.5
kill "$slow"
wait "$slow" 2>/dev/null
[[ "$ms" =~ ^[0-9]+$ ]] && [ "$ms" -lt $((5 * base + 1000)) ] &&
	pass "another user's status answers in $ms ms with 64 half-sent requests open ($base ms without)" ||
	fail "status with 64 half-sent requests open: $ms ($base ms without)"
grep -q "^kept 8 closed 56$" "$FT_TMP/held" && pass "the attacker kept 8 connections, 56 were closed" ||
	fail "the attacker's connections: $(grep kept "$FT_TMP/held" | sort | uniq -c | tr '\n' ' ')"
expect_match "$(cat "$FT_TMP/ftuned.log")" \
	"http: uid $(id -u ftht_out) had [0-9]+ connections \(http_max_conns_per_user 8\): closed" \
	"the closing is logged"
# A user at the bound is told so; another user is not.
setpriv --reuid=ftht_in --regid="$(id -g ftht_in)" --init-groups /usr/bin/python3 \
	"$FT_SRC/tests/integration/half_sent.py" 127.0.0.1 "$port" 8 hold > "$FT_TMP/held8" &
slow=$!
for _ in $(seq 1 100); do grep -qs held "$FT_TMP/held8" && break; sleep 0.1; done
r=$(as ftht_in curl -s -w '\n%{http_code}' "$web/api/v1/status")
expect_eq "$(tail -n 1 <<<"$r"),$(sed '$d' <<<"$r" | jq -r .error.message)" \
	"429,uid $uid_in has 8 HTTP connections open, as many as http_max_conns_per_user allows; retry when one has ended" \
	"a ninth connection of one user gets 429 saying why"
expect_eq "$(code_as ftht_in2 "$web/api/v1/status")" 200 "another user is served meanwhile"
kill "$slow"
wait "$slow" 2>/dev/null

expect_eq "$(code "$web/api/v1/status")" 200 "the dashboard still serves"
$F status >/dev/null && pass "the control socket still serves" || fail "control socket"
finish
