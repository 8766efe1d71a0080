#!/bin/bash
# test_screen_data.sh - screening of training data at data add, over a real
# daemon: a dataset with planted personal data and secrets is reported
# line by line (file:line: field: rule), redacted with typed placeholders
# or refused by the built-in rules, and dropped or refused by a rule-set
# file (config screen_rules) whose BLAKE2b is recorded with the dataset
# (data show, /api/v1/datasets); the defaults flag in ../shared/assets
# only what is truly there (the RFC's authors' e-mail addresses and fax
# numbers, c4_demo's businesses' contacts, the addresses and phone number
# in alpaca_en_demo's examples).
set -u
. "$FT_SRC/tests/integration/lib.sh"

assets_require corpora/rfc/rfc2616.txt datasets/alpaca_en_demo.json
command -v jq >/dev/null && command -v b2sum >/dev/null && command -v curl >/dev/null ||
	{ echo "SKIP: needs jq, b2sum and curl"; exit 77; }
F="$FT_BIN/client/ftctl --timeout 60000"
FT_MAX_MESSAGE=16M
daemon_start

# --- the defaults over the shared corpora and datasets ---
hits() { $F data validate "$1" --kind "$2" 2>&1 | grep -E ': (email|phone|card|iban|ipv4|private_key|aws_key|github_token|slack_token|sk_key) \(' | tr '\n' ';'; }
for f in corpora/sotu/sotu.txt corpora/tinyshakespeare/input.txt corpora/llamafactory/wiki_demo.txt; do
	[ -r "$assets/$f" ] || continue
	expect_eq "$(hits "$assets/$f" text)" "" "defaults flag nothing in $f"
done
# c4_demo is crawled web text with businesses' real contact details.
if [ -r "$assets/corpora/llamafactory/c4_demo.jsonl" ]; then
	want="c4_demo.jsonl:1: text: phone (report);c4_demo.jsonl:65: text: email (redact);"
	want="${want}c4_demo.jsonl:97: text: email (redact);"
	for _ in $(seq 1 20); do want="${want}c4_demo.jsonl:140: text: phone (report);"; done
	want="${want}c4_demo.jsonl:167: text: email (redact);c4_demo.jsonl:168: text: email (redact);"
	want="${want}c4_demo.jsonl:191: text: email (redact);c4_demo.jsonl:261: text: email (redact);"
	want="${want}c4_demo.jsonl:299: text: email (redact);c4_demo.jsonl:299: text: phone (report);"
	expect_eq "$(hits "$assets/corpora/llamafactory/c4_demo.jsonl" text)" "$want" \
		"c4_demo: the contact addresses and US phone numbers in its web pages, nothing else"
fi
want="rfc2616.txt:5994: text: email (redact);rfc2616.txt:7594: text: phone (report);"
want="${want}rfc2616.txt:7594: text: email (redact);rfc2616.txt:7604: text: phone (report);"
want="${want}rfc2616.txt:7604: text: email (redact);rfc2616.txt:7614: text: email (redact);"
want="${want}rfc2616.txt:7623: text: phone (report);rfc2616.txt:7623: text: email (redact);"
want="${want}rfc2616.txt:7632: text: email (redact);rfc2616.txt:7640: text: email (redact);"
want="${want}rfc2616.txt:7649: text: phone (report);rfc2616.txt:7649: text: email (redact);"
expect_eq "$(hits "$assets/corpora/rfc/rfc2616.txt" text)" "$want" \
	"RFC 2616: its authors' addresses and fax numbers, no section number taken for an IP"
want="alpaca_en_demo.json:457: output: phone (report);alpaca_en_demo.json:1787: input: email (redact);"
want="${want}alpaca_en_demo.json:1787: input: email (redact);alpaca_en_demo.json:1787: output: email (redact);"
want="${want}alpaca_en_demo.json:1787: output: email (redact);alpaca_en_demo.json:2172: output: email (redact);"
expect_eq "$(hits "$assets/datasets/alpaca_en_demo.json" instruct)" "$want" \
	"alpaca_en_demo: the example addresses and the hypothetical phone number"
[ -r "$assets/datasets/identity.json" ] &&
	expect_eq "$(hits "$assets/datasets/identity.json" instruct)" "" "defaults flag nothing in identity.json"

# --- planted personal data, built-in rules ---
cat > "$FT_TMP/planted.jsonl" <<'J'
{"instruction": "Contact", "input": "", "output": "Write to jane.doe@example.com."}
{"instruction": "Pay with 4111 1111 1111 1111", "output": "Paid."}
{"instruction": "Not a card: 4111 1111 1111 1112", "output": "Fine."}
{"instruction": "Transfer", "input": "IBAN GB82 WEST 1234 5698 7654 32", "output": "Sent."}
{"instruction": "Wrong check digit", "input": "GB83 WEST 1234 5698 7654 32", "output": "Fine."}
{"instruction": "Call me", "output": "At +44 20 7946 0958 or from 192.168.1.20."}
{"instruction": "Plain", "output": "Nothing to see."}
J
out=$($F data add "$FT_TMP/planted.jsonl" --kind instruct --name planted 2>&1) || fail "data add planted: $out"
want="planted.jsonl:1: output: email (redact);planted.jsonl:2: instruction: card (redact);"
want="${want}planted.jsonl:4: input: iban (redact);planted.jsonl:6: output: phone (report);"
want="${want}planted.jsonl:6: output: ipv4 (report);"
expect_eq "$(printf '%s\n' "$out" | grep -E ': [a-z0-9_]+ \((redact|report|drop|refuse)\)$' | tr '\n' ';')" "$want" \
	"planted data reported line by line; a Luhn-invalid number and a wrong IBAN are not"
expect_match "$out" "screening \(rules [0-9a-f]{12}\): 5 hits, 3 redacted, 0 records dropped" "the totals"
show=$($F data show planted --json)
samples=$(tr '\n' ';' < "$FT_STATE/datasets/$(printf '%s' "$show" | jq -r '.id')/train.jsonl")
expect_match "$samples" 'Write to \[EMAIL\]\.' "the address is redacted in what is stored"
expect_match "$samples" 'Pay with \[CARD\]' "the card is redacted"
expect_match "$samples" 'IBAN \[IBAN\]' "the IBAN is redacted"
expect_match "$samples" '4111 1111 1111 1112' "the Luhn-invalid number is kept"
expect_match "$samples" 'GB83 WEST 1234 5698 7654 32' "so is the IBAN with a wrong check digit"
expect_match "$samples" '\+44 20 7946 0958 or from 192\.168\.1\.20' "reported hits are kept"
rules=$(printf '%s' "$show" | jq -r '.screen_rules')
expect_match "$rules" '^[0-9a-f]{64}$' "data show records the rule set's BLAKE2b"
expect_match "$(printf '%s' "$show" | jq -r '.report')" "planted.jsonl:4: input: iban \(redact\)" \
	"data show --json carries the report"
expect_match "$($F data show planted)" "screened    $rules" "data show prints it"
url=$(json_get "$($F status --json)" http_url)
api=$(curl -s "${url}api/v1/datasets")
expect_eq "$(printf '%s' "$api" | jq -r '.datasets[] | select(.name == "planted") | .screen_rules')" "$rules" \
	"/api/v1/datasets records it"
api=$(curl -s "${url}api/v1/datasets/planted")
expect_match "$(printf '%s' "$api" | jq -r '.report')" "planted.jsonl:6: output: phone \(report\)" \
	"/api/v1/datasets/NAME carries the report"

printf '%s\n' '{"instruction": "Keys", "output": "Use AKIAIOSFODNN7EXAMPLE here."}' \
	'{"instruction": "ok", "output": "ok"}' > "$FT_TMP/secret.jsonl"
msg=$($F data add "$FT_TMP/secret.jsonl" --kind instruct --name secret 2>&1) && fail "a dataset with an AWS key was added"
expect_match "$msg" "secret.jsonl:1: output: aws_key \(refuse\)" "the secret's line is named"
expect_match "$msg" "FAILED_PRECONDITION: screening refused the dataset" "and the dataset refused"
[[ "$msg" == *AKIAIOSFODNN7EXAMPLE* ]] && fail "the refusal repeats the secret"
pass "the refusal does not repeat the secret"
$F data show secret >/dev/null 2>&1 && fail "the refused dataset was stored"
pass "nothing stored"

# --- a rule-set file: drop and a block-list pattern ---
daemon_stop
cat > "$FT_TMP/my.rules" <<'R'
# drop records with addresses, refuse a code name, redact cards
rule email drop
rule card redact
block codename refuse (?i)project\s+bluebird
R
FT_CONF_EXTRA="screen_rules = $FT_TMP/my.rules\n"
daemon_start
out=$($F data add "$FT_TMP/planted.jsonl" --kind instruct --name mine 2>&1) || fail "data add with my.rules: $out"
expect_match "$out" "planted.jsonl:1: output: email \(drop\)" "the file's drop rule"
expect_eq "$($F data show mine --json | jq -r '.records')" "6" "the record with an address is dropped"
expect_eq "$($F data show mine --json | jq -r '.screen_rules')" "$(b2sum -l 256 "$FT_TMP/my.rules" | cut -d' ' -f1)" \
	"the recorded hash is the rule file's BLAKE2b-256"
printf '%s\n' '{"instruction": "Plans", "output": "Project  Bluebird starts Monday."}' > "$FT_TMP/code.jsonl"
msg=$($F data add "$FT_TMP/code.jsonl" --kind instruct --name code 2>&1) && fail "the block list let a code name through"
expect_match "$msg" "code.jsonl:1: output: codename \(refuse\)" "a block-list pattern refuses"
daemon_stop
printf 'rule email shout\n' > "$FT_TMP/bad.rules"
FT_CONF_EXTRA="screen_rules = $FT_TMP/bad.rules\n"
timeout 20 "$FT_BIN/daemon/ftuned" -d --state-dir "$FT_TMP/state2" --socket "ipc://$FT_TMP/s2.sock" --http 127.0.0.1:0 \
	-f <(printf 'screen_rules = %s\n' "$FT_TMP/bad.rules") > "$FT_TMP/bad.log" 2>&1 &&
	fail "the daemon started with a bad rule file"
expect_match "$(cat "$FT_TMP/bad.log")" "bad.rules:1: email: the action is report, redact, drop or refuse" \
	"a bad rule file stops the start, naming its line"
finish
