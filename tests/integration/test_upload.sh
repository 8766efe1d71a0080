#!/bin/bash
# test_upload.sh - datasets larger than a control message (rpc_max_message
# is 64K here) go in chunks: a 4 MB file adds with the canonical hash of its
# content, as a one-chunk file and the same content as JSONL do; a CSV file
# is refused as text and added with --text-column; an upload
# stopped after some chunks resumes with ftctl data add; a wrong final hash,
# an out-of-order or oversized chunk, a file over data_max_bytes and a
# user's third open upload are refused, storing nothing; another uid can
# neither append to, ask about nor commit my upload; untouched uploads
# expire, and a restart deletes leftovers; ftctl's peak RSS on a 200 MB file
# stays small.
set -u
. "$FT_SRC/tests/integration/lib.sh"

F=$FT_BIN/client/ftctl
U=$FT_BIN/tests/upload_client
FT_CONF_EXTRA="data_max_bytes = 250M\ndata_uploads_per_user = 2\ndata_upload_timeout = 6\n"
daemon_start
uploads=$FT_STATE/uploads

# Documents separated by blank lines, and the BLAKE2b of their canonical
# form ({"text": ...} lines), computed independently.
python3 - "$FT_TMP" <<'EOF'
import hashlib, json, sys
d = sys.argv[1]
def write(name, n):
    docs = ["document %d: %s" % (i, "the quick brown fox, \"jumps\" over\tthe lazy dog " * (1 + i % 7))
            for i in range(n)]
    open("%s/%s.txt" % (d, name), "w").write("\n\n".join(docs) + "\n")
    open("%s/%s.jsonl" % (d, name), "w").write("".join(json.dumps({"text": t}) + "\n" for t in docs))
    canon = "".join(json.dumps({"text": t}, ensure_ascii=False, separators=(",", ":")) + "\n" for t in docs)
    open("%s/%s.hash" % (d, name), "w").write(hashlib.blake2b(canon.encode(), digest_size=32).hexdigest())
write("big", 20000)     # about 4.3 MB
write("big2", 15000)
write("small", 50)      # one chunk
EOF
size=$(stat -c %s "$FT_TMP/big.txt")
[ "$size" -gt 4000000 ] && pass "the dataset ($size bytes) is 60 times rpc_max_message" ||
	fail "dataset too small: $size"

hash_of() { $F data show "$1" --json | sed -n 's/.*"blake2b": *"\([0-9a-f]*\)".*/\1/p'; }

# --- a large file adds, with the canonical hash of its content ---
out=$($F data add "$FT_TMP/big.txt" --kind text --name big 2>&1) || fail "data add big: $out"
expect_match "$out" "added dataset big \(id [0-9]+\): 20000 records" "a 4 MB dataset adds in chunks"
expect_eq "$(hash_of big)" "$(cat "$FT_TMP/big.hash")" "its hash is the canonical content's"
$F data add "$FT_TMP/big.jsonl" --kind text --name big-jsonl >/dev/null || fail "data add jsonl"
expect_eq "$(hash_of big-jsonl)" "$(cat "$FT_TMP/big.hash")" "the same content as JSONL has the same hash"
$F data add "$FT_TMP/small.txt" --kind text --name small >/dev/null || fail "data add small"
expect_eq "$(hash_of small)" "$(cat "$FT_TMP/small.hash")" "a one-chunk file has its canonical hash"
$F data validate "$FT_TMP/big2.txt" --kind text >/dev/null || fail "data validate"
out=$($F data add "$FT_TMP/big2.txt" --kind text --validation "$FT_TMP/small.txt" --name held 2>&1) ||
	fail "data add --validation: $out"
expect_match "$out" "added dataset held \(id [0-9]+\): 15000 records \+ 50 for validation" \
	"a validation file goes as a second upload"
: > "$FT_TMP/empty.txt"
msg=$($F data add "$FT_TMP/empty.txt" --kind text 2>&1)
expect_match "$msg" "empty.txt:1: -: empty file" "an empty file uploads and is refused as empty"
expect_eq "$(ls -A "$uploads")" "" "committed and validated uploads leave no file behind"

# --- CSV: refused as text, added with --text-column as its column's JSONL ---
printf 'id,review,stars\r\n1,"Good, really ""good""",5\r\n2,"two\nlines",3\r\n3,plain,1\r\n' \
    > "$FT_TMP/reviews.csv"
printf '{"text":"Good, really \\"good\\""}\n{"text":"two\\nlines"}\n{"text":"plain"}\n' \
    > "$FT_TMP/reviews.jsonl"
msg=$($F data add "$FT_TMP/reviews.csv" --kind text 2>&1)
expect_match "$msg" "reviews.csv:1: -: looks like CSV with columns id,review,stars: use --text-column NAME to train on one column" \
	"a CSV file given as text is refused, naming --text-column"
msg=$($F data add "$FT_TMP/reviews.csv" --kind text --text-column body 2>&1)
expect_match "$msg" "reviews.csv:1: -: no column \"body\" \(columns: id,review,stars\)" "an unknown column is named"
msg=$($F data add "$FT_TMP/reviews.csv" --kind instruct --text-column review 2>&1)
expect_match "$msg" "INVALID_ARGUMENT: --text-column is for --kind text" "--text-column needs --kind text"
$F data add "$FT_TMP/reviews.csv" --kind text --text-column review --name reviews >/dev/null ||
	fail "data add --text-column"
$F data add "$FT_TMP/reviews.jsonl" --kind text --name reviews-jsonl >/dev/null || fail "data add reviews.jsonl"
expect_eq "$(hash_of reviews)" "$(hash_of reviews-jsonl)" "a CSV column adds as the same texts in JSONL do"
expect_match "$($F data show reviews --json)" '"records": 3,' "one record per CSV row"

# --- an upload stopped after 10 chunks resumes where it stopped ---
read -r id received chunk <<<"$($U "$FT_SOCKET" begin "$FT_TMP/big2.txt" 2>/dev/null)"
expect_eq "$received" "0" "a new upload starts at 0"
expect_eq "$chunk" "61440" "chunks are sized to rpc_max_message"
got=$($U "$FT_SOCKET" send "$id" "$FT_TMP/big2.txt" 0 10 2>/dev/null)
expect_eq "$got" "$((10 * chunk))" "10 chunks received"
expect_eq "$(stat -c '%a %s' "$uploads/$id")" "600 $((10 * chunk))" "the partial upload is a private file"
out=$($F data add "$FT_TMP/big2.txt" --kind text --name big2 2>&1) || fail "resume: $out"
expect_match "$out" "resuming the upload of .*big2.txt at 600 KiB" "ftctl resumes the upload"
expect_eq "$(hash_of big2)" "$(cat "$FT_TMP/big2.hash")" "the resumed upload has the right hash"
msg=$($U "$FT_SOCKET" status "$id" 2>&1)
expect_match "$msg" "NOT_FOUND: no upload '$id'" "a committed upload is gone"

# --- refusals that store nothing ---
before=$($F data ls --quiet | wc -l)
read -r id _ _ <<<"$($U "$FT_SOCKET" begin "$FT_TMP/small.txt" "$(printf '0%.0s' $(seq 64))" 2>/dev/null)"
$U "$FT_SOCKET" send "$id" "$FT_TMP/small.txt" 0 5 >/dev/null 2>&1 || fail "send small"
msg=$($U "$FT_SOCKET" commit "$id" text wronghash 2>&1)
expect_match "$msg" "INVALID_ARGUMENT: upload $id: the [0-9]+ bytes received have BLAKE2b [0-9a-f]{64}, not the hash given at its start; it is deleted" \
	"a wrong final hash is refused"
expect_eq "$(ls -A "$uploads")" "" "and its file deleted"

read -r id _ _ <<<"$($U "$FT_SOCKET" begin "$FT_TMP/small.txt" 2>/dev/null)"
msg=$($U "$FT_SOCKET" chunk "$id" 1000 10 2>&1)
expect_match "$msg" "INVALID_ARGUMENT: chunk at offset 1000, but upload $id has 0 bytes: send on from there" \
	"an out-of-order chunk is refused"
msg=$($U "$FT_SOCKET" chunk "$id" 0 62000 2>&1)
expect_match "$msg" "INVALID_ARGUMENT: a chunk of 62000 bytes is over the 61440 this daemon takes" \
	"an oversized chunk is refused"
msg=$($U "$FT_SOCKET" commit "$id" text incomplete 2>&1)
expect_match "$msg" "FAILED_PRECONDITION: upload $id has 0 of [0-9]+ bytes: send the rest first" \
	"an incomplete upload is not committed"
expect_eq "$($U "$FT_SOCKET" status "$id" 2>/dev/null | cut -d' ' -f1)" "0" "refused chunks changed nothing"

# Another uid (nobody, through the group-writable socket).
if command -v setpriv >/dev/null && [ "$(id -u)" = 0 ]; then
	chmod 755 "$FT_TMP" "$FT_TMP/run"
	chgrp nogroup "${FT_SOCKET#ipc://}"
	as_nobody() { setpriv --reuid=nobody --regid=nogroup --clear-groups "$@"; }
	msg=$(as_nobody "$U" "$FT_SOCKET" chunk "$id" 0 10 2>&1)
	expect_match "$msg" "PERMISSION_DENIED: upload $id belongs to uid 0" "another uid cannot append"
	msg=$(as_nobody "$U" "$FT_SOCKET" commit "$id" text stolen 2>&1)
	expect_match "$msg" "PERMISSION_DENIED: upload $id belongs to uid 0" "another uid cannot commit"
	msg=$(as_nobody "$U" "$FT_SOCKET" status "$id" 2>&1)
	expect_match "$msg" "PERMISSION_DENIED" "another uid cannot ask about it"
	# Beginning the same file gives nobody an upload of its own.
	read -r nid _ _ <<<"$(as_nobody "$U" "$FT_SOCKET" begin "$FT_TMP/small.txt" 2>/dev/null)"
	[ -n "$nid" ] && [ "$nid" != "$id" ] && pass "the same file begun by another uid is its own upload" ||
		fail "another uid's begin: '$nid'"
else
	echo "SKIP: another-user checks need root and setpriv"
fi

read -r id2 _ _ <<<"$($U "$FT_SOCKET" begin "$FT_TMP/big.txt" 2>/dev/null)"
[ -n "$id2" ] || fail "a second upload"
msg=$($U "$FT_SOCKET" begin "$FT_TMP/big2.txt" 2>&1)
expect_match "$msg" "RESOURCE_EXHAUSTED: uid 0 has 2 uploads open \(data_uploads_per_user\)" \
	"a third open upload is refused"
truncate -s 251M "$FT_TMP/huge.txt"
msg=$($F data add "$FT_TMP/huge.txt" --kind text 2>&1)
expect_match "$msg" "RESOURCE_EXHAUSTED: a file of 263192576 bytes is over data_max_bytes \(262144000\)" \
	"a file over data_max_bytes is refused"
rm -f "$FT_TMP/huge.txt"
expect_eq "$($F data ls --quiet | wc -l)" "$before" "no refused upload stored a dataset"

# Untouched uploads expire (data_upload_timeout = 6 s).
for _ in $(seq 1 40); do
	[ -z "$(ls -A "$uploads")" ] && break
	sleep 0.5
done
expect_eq "$(ls -A "$uploads")" "" "untouched uploads expire and their files go"
msg=$($U "$FT_SOCKET" status "$id" 2>&1)
expect_match "$msg" "NOT_FOUND: no upload '$id' \(finished, or expired after 6 s untouched\)" \
	"an expired upload is forgotten"

# --- ftctl's memory stays a chunk's worth on a 200 MB file ---
python3 -c "
import sys
line = 'lorem ipsum dolor sit amet, consectetur adipiscing elit ' * 30 + '\n'
with open(sys.argv[1], 'w') as f:
    for _ in range(200 * 1024 * 1024 // len(line)):
        f.write(line)
" "$FT_TMP/large.txt"
if [ -x /usr/bin/time ]; then
	# (An ASan build's quarantine would keep every freed chunk message.)
	ASAN_OPTIONS=${ASAN_OPTIONS:-}:quarantine_size_mb=0 \
	    /usr/bin/time -f '%M' -o "$FT_TMP/rss" $F data validate "$FT_TMP/large.txt" --kind text \
	    >/dev/null 2>"$FT_TMP/validate.err" || fail "validate 200 MB: $(tail -3 "$FT_TMP/validate.err")"
	rss=$(tail -1 "$FT_TMP/rss")
	echo "ftctl peak RSS on a 200 MB file: $rss KiB"
	[ "$rss" -lt 32000 ] && pass "ftctl's peak RSS stays under 32 MB, a sixth of the file ($rss KiB)" ||
		fail "ftctl's peak RSS is $rss KiB"
else
	echo "SKIP: /usr/bin/time absent"
fi
rm -f "$FT_TMP/large.txt"

# --- a restart deletes what an earlier run left ---
read -r id _ _ <<<"$($U "$FT_SOCKET" begin "$FT_TMP/big.txt" 2>/dev/null)"
$U "$FT_SOCKET" send "$id" "$FT_TMP/big.txt" 0 2 >/dev/null 2>&1 || fail "send before restart"
daemon_kill
[ -f "$uploads/$id" ] && pass "a killed daemon leaves its upload file" || fail "no upload file"
daemon_start
expect_eq "$(ls -A "$uploads")" "" "the restarted daemon deleted it"
expect_eq "$(stat -c %a "$uploads")" "700" "the upload directory is owner-only"
$F status >/dev/null && pass "the daemon serves on" || fail "status"
finish
