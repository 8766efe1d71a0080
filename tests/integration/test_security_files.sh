#!/bin/bash
# test_security_files.sh - the files a user makes the daemon read and write
# (issue 14, findings 1 to 3), each attack performed against a real ftuned:
# symbolic links inside an imported model or a `model init --tokenizer`
# folder are refused and the file they point at appears in no reply, log or
# stored file; side files that are not JSON are refused without quoting
# them; a link planted at --out while the export runs (held open by the
# FTUNED_TEST_HOOKS pause) is not written through, and neither are links
# planted at the temporary names the daemon once used; a model file changed
# in the state after import is refused at generate and deploy.  Exported
# files belong to the user who asked.  The daemon serves on throughout.
set -u
. "$FT_SRC/tests/integration/lib.sh"
assets_require hf/tiny-gpt2/model.safetensors hf/tiny-gpt2/tokenizer.json
command -v curl >/dev/null && command -v python3 >/dev/null || { echo "SKIP: needs curl, python3"; exit 77; }

user=ftfs_alice
grp=ftfs_grp
trap 'userdel "$user" 2>/dev/null; groupdel "$grp" 2>/dev/null; cleanup' EXIT
ftctl=$FT_BIN/client/ftctl

# run ARGS...: ftctl; stdout in $out, stderr in $err, status in $rc.  Every
# reply is kept, to show no secret reached one.
run() {
	out=$("$ftctl" "$@" 2>"$FT_TMP/err")
	rc=$?
	err=$(cat "$FT_TMP/err")
	printf '%s\n%s\n' "$out" "$err" >> "$FT_TMP/replies"
}
refused() { [ "$rc" -ne 0 ] && pass "$1" || fail "$1: accepted ($out)"; }

roots=$FT_TMP/roots
outs=$FT_TMP/exports
hook=$FT_TMP/hook/export.go reached=$FT_TMP/hook/export.reached
mkdir -p "$roots" "$outs" "$FT_TMP/hook" "$FT_TMP/private"
secret=$FT_TMP/private/shadow
printf '{"leak": "SECRET-7f3a"}\n' > "$secret"
chmod 600 "$secret"
victim=$FT_TMP/private/victim
printf 'root-owned 0600\n' > "$victim"
chmod 600 "$victim"

# --- a temporary name the daemon once used (<path>.tmp), planted before it writes ---
umask 022
printf 'import_roots = %s\nexport_roots = %s\n' "$roots" "$outs" > "$FT_TMP/token.conf"
new_token() {
	"$FT_BIN/daemon/ftuned" -f "$FT_TMP/token.conf" --state-dir "$FT_STATE" --new-dashboard-token \
	    >/dev/null 2>&1 || fail "ftuned --new-dashboard-token"
}
new_token
ln -s "$victim" "$FT_STATE/dashboard-token.tmp"
new_token
expect_eq "$(cat "$victim")" "root-owned 0600" "a link at the old temporary name is not followed"
expect_eq "$(readlink "$FT_STATE/dashboard-token.tmp")" "$victim" "nor replaced"
[ -f "$FT_STATE/dashboard-token" ] && [ ! -L "$FT_STATE/dashboard-token" ] &&
	pass "the token file is written beside it" || fail "no dashboard-token"

FT_CONF_EXTRA="import_roots = $roots\nexport_roots = $outs\n"
export FTUNED_TEST_HOOKS=pause:export FTUNED_TEST_HOOKS_DIR=$FT_TMP/hook
daemon_start
expect_eq "$(stat -c %a "$FT_STATE/ftuned.db") $(stat -c %a "$FT_STATE")" "640 750" \
    "state files are 0640 whatever the umask"

cp -r "$assets/hf/tiny-gpt2" "$roots/good"
chmod -R u+w "$roots/good"
run model import "$roots/good" --name good
expect_eq "$rc" "0" "a plain Hugging Face directory imports"
good_dir=$FT_STATE/models/$(python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])' \
    <<<"$("$ftctl" model show good --json)")

# --- finding 1: every file of an accepted directory, opened without following links ---
n=0
for f in special_tokens_map.json model.safetensors tokenizer.json config.json generation_config.json; do
	n=$((n + 1))
	cp -r "$roots/good" "$roots/link$n"
	ln -sf "$secret" "$roots/link$n/$f"
	run model import "$roots/link$n" --name "link$n"
	refused "import with $f a link to a file outside the roots"
	expect_match "$err" "$f: is a symbolic link" "the refusal names $f"
done
cp -r "$roots/good" "$roots/notjson"
printf 'root:$6$SECRET-7f3a:19000::::::\n' > "$roots/notjson/special_tokens_map.json"
run model import "$roots/notjson" --name notjson
refused "a side file that is not JSON"
expect_match "$err" "special_tokens_map.json: not valid JSON \(line 1, column [0-9]+\)$" \
    "by line and column only"

mkdir "$roots/tok"
cp "$roots/good/tokenizer.json" "$roots/good/tokenizer_config.json" "$roots/tok/"
ln -s "$secret" "$roots/tok/special_tokens_map.json"
init=(--layers 1 --dim 16 --heads 2 --seq-len 16)
run model init fromtok --tokenizer "$roots/tok/tokenizer.json" "${init[@]}"
refused "model init --tokenizer with a linked side file"
expect_match "$err" "special_tokens_map.json: is a symbolic link" "names the linked file"
rm "$roots/tok/special_tokens_map.json"
printf 'SECRET-7f3a' > "$roots/tok/special_tokens_map.json"
run model init fromtok --tokenizer "$roots/tok/tokenizer.json" "${init[@]}"
refused "model init --tokenizer with a side file that is not JSON"
expect_match "$err" "not valid JSON \(line 1, column [0-9]+\)$" "without its bytes"
rm "$roots/tok/special_tokens_map.json"
# a folder name that would inject keys into lineage JSON built by hand
evil='tok","evil":"1'
mkdir "$roots/$evil"
cp "$roots/tok/"* "$roots/$evil/"
run model init fromtok --tokenizer "$roots/$evil/tokenizer.json" "${init[@]}"
expect_eq "$rc" "0" "model init from a folder with quotes in its name"
lineage=$(python3 -c 'import json,sys; l=json.load(sys.stdin)["lineage"]; print(sorted(l), sorted(l["init"]), l["init"]["tokenizer"])' \
    <<<"$("$ftctl" model show fromtok --json)")
expect_eq "$lineage" "['init'] ['seed', 'tokenizer'] $roots/$evil/tokenizer.json" "lineage JSON keeps the path a string"

# --- finding 2: a link planted at --out between the check and the first write ---
touch "$hook"
run model export good --format hf --out "$FT_TMP/private/x"
refused "export outside the export roots"
expect_match "$err" "outside the export roots \($outs\); .* export_roots" "the message names the export roots"

snapshot() { (cd "$1" && ls -la --time-style=+%s.%N && sha256sum ./*) 2>&1; }
# export_race OUT TARGET: export good to OUT, planting OUT -> TARGET while the daemon waits.
export_race() {
	rm -f "$hook" "$reached"
	"$ftctl" model export good --format hf --out "$1" >"$FT_TMP/race.out" 2>"$FT_TMP/race.err" &
	local pid=$! i
	for i in $(seq 1 300); do [ -e "$reached" ] && break; sleep 0.1; done
	[ -e "$reached" ] || fail "the export did not reach the test hook"
	ln -s "$2" "$1"
	touch "$hook"
	wait "$pid"
	race_rc=$?
	race_err=$(cat "$FT_TMP/race.err")
	printf '%s\n' "$race_err" >> "$FT_TMP/replies"
}
before=$(snapshot "$good_dir")
export_race "$outs/e1" "$good_dir"
[ "$race_rc" -ne 0 ] && pass "export through a link into another model's directory refused" ||
	fail "export wrote through the link"
expect_match "$race_err" "e1 exists" "the message says --out exists"
expect_eq "$(snapshot "$good_dir")" "$before" "the model directory is untouched"

# the same into a folder of guessed temporary names, <file>.tmp.<pid>.<n>, linked to a 0600 file
mkdir "$FT_TMP/evil"
for i in $(seq 0 99); do
	for f in config.json generation_config.json model.safetensors tokenizer.json \
	    tokenizer_config.json special_tokens_map.json; do
		ln -s "$victim" "$FT_TMP/evil/$f.tmp.$FT_PID.$i"
	done
done
export_race "$outs/e2" "$FT_TMP/evil"
[ "$race_rc" -ne 0 ] && pass "export into a planted folder refused" || fail "export into the planted folder"
expect_eq "$(cat "$victim")" "root-owned 0600" "no guessed temporary name was followed"
expect_eq "$(find "$FT_TMP/evil" -type f | wc -l)" "0" "nothing written into the planted folder"

# --- exported files belong to the user who asked ---
groupadd "$grp" && useradd -M -N -g "$grp" "$user" || fail "cannot create $user"
chmod 755 "$FT_TMP" "$FT_TMP/run"
chgrp "$grp" "${FT_SOCKET#ipc://}"
chmod 1777 "$outs"
touch "$hook"
runuser -u "$user" -- env FTUNED_SOCKET="$FT_SOCKET" "$ftctl" model export good --format hf \
    --out "$outs/mine" >/dev/null 2>"$FT_TMP/err" || fail "export as $user: $(cat "$FT_TMP/err")"
expect_eq "$(stat -c '%U %a' "$outs/mine")" "$user 750" "the export folder is the user's, 0750"
expect_eq "$(stat -c '%U %a' "$outs/mine"/* | sort -u)" "$user 640" "its files are the user's, 0640"
runuser -u "$user" -- rm -rf "$outs/mine" && pass "the user can remove the export" ||
	fail "the user cannot remove the export"

# --- a model file changed in the state after import ---
run model import "$roots/good" --name good2
expect_eq "$rc" "0" "the same files imported again share their blobs"
run generate good "Hello" --max-new-tokens 2 --raw --no-stream
expect_eq "$rc" "0" "a new link to a blob (its ctime moved) is rehashed and accepted"
f=$good_dir/model.safetensors
cp -p "$f" "$FT_TMP/ref"
chmod u+w "$f"
size=$(stat -c %s "$f")
printf '\x01' | dd of="$f" bs=1 seek=$((size - 1)) conv=notrunc status=none
touch -r "$FT_TMP/ref" "$f"
run generate good "Hello" --max-new-tokens 2 --raw --no-stream
refused "generate from a model file changed after import"
expect_match "$err" "model.safetensors was changed after it was stored" "says which file changed"
chmod 0440 "$f"
touch -r "$FT_TMP/ref" "$f"
expect_eq "$(stat -c '%a %s %Y' "$f")" "$(stat -c '%a %s %Y' "$FT_TMP/ref")" "mode, size and mtime restored"
run generate good "Hello" --max-new-tokens 2 --raw --no-stream
refused "generate refused even with mode and mtime restored (the ctime moved)"
url=$(json_get "$("$ftctl" status --json)" http_url)v1
run deploy good
expect_eq "$rc" "0" "deploy registers"
r=$(curl -s -w '\n%{http_code}' -H 'Content-Type: application/json' \
    -d '{"model": "good", "prompt": "Hello", "max_tokens": 2}' "$url/completions")
printf '%s\n' "$r" >> "$FT_TMP/replies"
[ "$(printf '%s' "$r" | tail -n 1)" != "200" ] && pass "the deployment refuses to load it" ||
	fail "the deployment served the changed model"
expect_match "$r" "changed after it was stored" "with the same reason"

# --- the secret is nowhere, and the daemon serves on ---
grep -rqs SECRET-7f3a "$FT_STATE" "$FT_TMP/ftuned.log" "$FT_TMP/replies" "$outs" &&
	fail "the secret leaked: $(grep -rls SECRET-7f3a "$FT_STATE" "$FT_TMP/ftuned.log" "$FT_TMP/replies" "$outs")" ||
	pass "the secret appears in no reply, log, stored or exported file"
run status
expect_eq "$rc" "0" "the daemon serves on"
finish
