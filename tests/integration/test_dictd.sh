#!/bin/bash
# test_dictd.sh - tools/dictd2jsonl: a tiny FOLDOC-style and GCIDE-style
# dictd pair written here (index with base64 offsets, gzip'd dictionary)
# converted in both modes and checked line by line; --max with and without
# --seed; bad input; and, where Debian's dict-foldoc and dict-gcide are
# installed, the real dictionaries.
set -u
. "$FT_SRC/tests/integration/lib.sh"

D=$FT_BIN/tools/dictd2jsonl
export LC_ALL=C    # ${#s} counts bytes

# b64 N: dictd's base64 number, most significant digit first.
b64() {
	local n=$1 s= digits=ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/
	[ "$n" -eq 0 ] && { echo A; return; }
	while [ "$n" -gt 0 ]; do
		s=${digits:$((n % 64)):1}$s
		n=$((n / 64))
	done
	echo "$s"
}

# make_dict NAME HEAD1 DEF1 HEAD2 DEF2 ...: NAME.index and NAME.dict.dz;
# a HEAD of "=word" indexes word at the previous definition again.
make_dict() {
	local name=$1 off=0 len=0 data=
	shift
	: > "$FT_TMP/$name.index"
	while [ $# -gt 0 ]; do
		if [ "${1:0:1}" = "=" ]; then
			printf '%s\t%s\t%s\n' "${1:1}" "$(b64 $((off - len)))" "$(b64 "$len")" >> "$FT_TMP/$name.index"
			shift
			continue
		fi
		len=${#2}
		printf '%s\t%s\t%s\n' "$1" "$(b64 "$off")" "$(b64 "$len")" >> "$FT_TMP/$name.index"
		data+=$2
		off=$((off + len))
		shift 2
	done
	printf '%s' "$data" | gzip -9 > "$FT_TMP/$name.dict.dz"
}

nl=$'\n'
make_dict foldoc \
	00-database-short "00-database-short${nl}     The Free On-line Dictionary of Computing (test)${nl}" \
	compiler "compiler${nl}${nl}   <programming, tool> A program that converts another {program}${nl}   from some {source language} to {machine language}.  Some compilers${nl}   output {assembly language}, e.g. {GCC}.${nl}${nl}   (1995-01-01)${nl}${nl}" \
	=loop \
	=Compiler \
	gcc "GNU C Compiler${nl}GCC${nl}${nl}   See {GNU CC}.${nl}${nl}" \
	pling "exclamation mark${nl}!${nl}pling${nl}${nl}   <character> The character \"!\" (ASCII 33).${nl}${nl}" \
	empty "empty${nl}${nl}   (2001-02-03)${nl}${nl}"

out=$("$D" --index "$FT_TMP/foldoc.index" --dict "$FT_TMP/foldoc.dict.dz" --mode text) || fail "foldoc text"
want='{"text": "compiler: A program that converts another program from some source language to machine language. Some compilers output assembly language, e.g. GCC."}
{"text": "pling: The character \"!\" (ASCII 33)."}'
expect_eq "$out" "$want" "FOLDOC text: header, braces, category, date dropped; cross-reference, phrase, repeat and empty entries skipped"

out=$("$D" --index "$FT_TMP/foldoc.index" --dict "$FT_TMP/foldoc.dict.dz" --mode instruct) || fail "foldoc instruct"
want='{"instruction": "Define the computing term \"compiler\".", "input": "", "output": "A program that converts another program from some source language to machine language."}
{"instruction": "Define the computing term \"pling\".", "input": "", "output": "The character \"!\" (ASCII 33)."}'
expect_eq "$out" "$want" "FOLDOC instruct: first sentence"

make_dict gcide \
	00-database-short "00-database-short${nl}   The Collaborative International Dictionary of English v.0.48${nl}" \
	Abbey "Abbey \\Ab\"bey\\ ([a^]b\"b[y^]), n.; pl. {Abbeys}. [OF.${nl}   abbaie. See {Abbot}.]${nl}   1. A monastery. Note: ruled by an abbot.${nl}      [1913 Webster]${nl}${nl}   2. The church of a monastery.${nl}      [1913 Webster]${nl}" \
	cytoskeletal "cytoskeletal \\cy\`to*skel\"e*tal\\${nl}   (s[imac]\`t[-o]*sk[e^]l\"[e^]*tal), a. (Cell Biology)${nl}   Of or pertaining to the cytoskeleton; as, cytoskeletal${nl}   microtubules. [PJC]${nl}" \
	Accipitridae "Accipitridae \\Accipitridae\\ n.${nl}   1. 1 a family of birds consisting of the hawks.${nl}        [WordNet 1.5]${nl}"

out=$("$D" --index "$FT_TMP/gcide.index" --dict "$FT_TMP/gcide.dict.dz" --mode text) || fail "gcide text"
want='{"text": "Abbey: 1. A monastery. Note: ruled by an abbot. 2. The church of a monastery."}
{"text": "cytoskeletal: (Cell Biology) Of or pertaining to the cytoskeleton; as, cytoskeletal microtubules."}
{"text": "Accipitridae: 1. 1 a family of birds consisting of the hawks."}'
expect_eq "$out" "$want" "GCIDE text: pronunciation, inflections, etymology and source tags dropped"

out=$("$D" --index "$FT_TMP/gcide.index" --dict "$FT_TMP/gcide.dict.dz" --mode instruct) || fail "gcide instruct"
want='{"instruction": "Define the word \"Abbey\".", "input": "", "output": "A monastery."}
{"instruction": "Define the word \"cytoskeletal\".", "input": "", "output": "(Cell Biology) Of or pertaining to the cytoskeleton; as, cytoskeletal microtubules."}
{"instruction": "Define the word \"Accipitridae\".", "input": "", "output": "a family of birds consisting of the hawks."}'
expect_eq "$out" "$want" "GCIDE instruct: sense numbers dropped, first sentence"

out=$("$D" --index "$FT_TMP/gcide.index" --dict "$FT_TMP/gcide.dict.dz" --mode text --max 1)
expect_eq "$out" '{"text": "Abbey: 1. A monastery. Note: ruled by an abbot. 2. The church of a monastery."}' "--max without --seed keeps the first"
a=$("$D" --index "$FT_TMP/gcide.index" --dict "$FT_TMP/gcide.dict.dz" --mode text --max 2 --seed 7 | wc -l)
expect_eq "$a" 2 "--max 2 --seed 7 keeps two"

"$D" --index "$FT_TMP/gcide.index" --dict "$FT_TMP/gcide.dict.dz" --mode poem >/dev/null 2>&1
expect_eq $? 2 "unknown mode is a usage error"
"$D" --index "$FT_TMP/gcide.index" --dict "$FT_TMP/missing.dict.dz" --mode text >/dev/null 2>"$FT_TMP/err"
expect_eq $? 1 "missing dictionary fails"
expect_match "$(cat "$FT_TMP/err")" "missing.dict.dz: cannot open" "the message names the file"
printf 'compiler\tZZZZZZ\tB\n' > "$FT_TMP/bad.index"
"$D" --index "$FT_TMP/bad.index" --dict "$FT_TMP/gcide.dict.dz" --mode text >/dev/null 2>"$FT_TMP/err"
expect_eq $? 1 "an offset past the end fails"
expect_match "$(cat "$FT_TMP/err")" "bad.index:1: bad offset" "the message names the line"

# The real dictionaries, when installed (apt-get install dict-foldoc dict-gcide).
if [ -r /usr/share/dictd/foldoc.index ]; then
	F="--index /usr/share/dictd/foldoc.index --dict /usr/share/dictd/foldoc.dict.dz"
	"$D" $F --mode text > "$FT_TMP/foldoc.jsonl" || fail "FOLDOC text"
	n=$(wc -l < "$FT_TMP/foldoc.jsonl")
	[ "$n" -gt 10000 ] && pass "FOLDOC: $n text entries" || fail "FOLDOC: only $n text entries"
	expect_match "$(grep '^{"text": "compiler: ' "$FT_TMP/foldoc.jsonl")" "A program that converts another program" \
		"FOLDOC defines compiler"
	"$D" $F --mode instruct > "$FT_TMP/foldoc_i.jsonl" || fail "FOLDOC instruct"
	n=$(wc -l < "$FT_TMP/foldoc_i.jsonl")
	[ "$n" -gt 10000 ] && pass "FOLDOC: $n instructions" || fail "FOLDOC: only $n instructions"
	long=$(sed 's/.*"output": "//' "$FT_TMP/foldoc_i.jsonl" | awk 'length($0) > 215' | wc -l)
	expect_eq "$long" 0 "first sentences stay under 200 characters"
	"$D" $F --mode instruct --max 100 --seed 5 > "$FT_TMP/s1" && "$D" $F --mode instruct --max 100 --seed 5 > "$FT_TMP/s2" &&
		"$D" $F --mode instruct --max 100 --seed 6 > "$FT_TMP/s3" || fail "FOLDOC sample"
	expect_eq "$(wc -l < "$FT_TMP/s1")" 100 "--max 100 --seed 5 gives 100"
	cmp -s "$FT_TMP/s1" "$FT_TMP/s2" && pass "the same seed gives the same sample" || fail "sample not deterministic"
	cmp -s "$FT_TMP/s1" "$FT_TMP/s3" && fail "another seed gives the same sample" || pass "another seed, another sample"
	# a sample is a subsequence of the full output, in its order
	order=$(grep -nFxf "$FT_TMP/s1" "$FT_TMP/foldoc_i.jsonl" | cut -d: -f1 | sort -n -c 2>&1 && echo sorted)
	expect_eq "$(grep -cFxf "$FT_TMP/s1" "$FT_TMP/foldoc_i.jsonl")" 100 "the sample comes from the full output"
	expect_eq "$order" sorted "the sample keeps index order"
	first=$(grep -nFxf "$FT_TMP/s1" "$FT_TMP/foldoc_i.jsonl" | head -1 | cut -d: -f1)
	[ "$first" -gt 1 ] || [ "$(grep -nFxf "$FT_TMP/s1" "$FT_TMP/foldoc_i.jsonl" | tail -1 | cut -d: -f1)" -gt 100 ] &&
		pass "the sample spreads over the dictionary" || fail "the sample is the first 100"
else
	echo "note: /usr/share/dictd/foldoc.index absent (dict-foldoc not installed); real FOLDOC not checked"
fi
if [ -r /usr/share/dictd/gcide.index ]; then
	G="--index /usr/share/dictd/gcide.index --dict /usr/share/dictd/gcide.dict.dz"
	"$D" $G --mode instruct > "$FT_TMP/gcide_i.jsonl" || fail "GCIDE instruct"
	n=$(wc -l < "$FT_TMP/gcide_i.jsonl")
	[ "$n" -gt 100000 ] && pass "GCIDE: $n instructions" || fail "GCIDE: only $n instructions"
	expect_match "$(grep -m1 'word \\"Library\\"' "$FT_TMP/gcide_i.jsonl")" '"output": "A considerable collection of books' \
		"GCIDE defines Library"
fi
finish
