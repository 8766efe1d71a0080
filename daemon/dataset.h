/*
 * dataset.h - parsing and validation of training datasets (ftctl data add,
 * data validate, data show).  Pure functions over bytes: no SQLite, no RPC;
 * the daemon stores what these return.
 *
 * Kinds and accepted input:
 *
 *   DATASET_KIND_INSTRUCT
 *     JSONL (one JSON object per line, blank lines allowed) or one JSON
 *     array of objects (chosen when the first non-space byte is '[').
 *     A record is a conversation, in any of these forms:
 *       - Alpaca {"instruction", "input"?, "output", "system"?, "history"?}
 *         (history: [[user, assistant], ...] turns before it);
 *       - OpenAI chat {"messages": [...], "tools"?: [...]}: roles system
 *         (first only), user, assistant, tool; content a string or an
 *         array of {"type": "text", "text"} parts (joined); "name",
 *         "tool_calls" (assistant), "tool_call_id" (tool), "weight" 0 or 1
 *         (assistant: 0 is context, not a target);
 *       - ShareGPT {"conversations": [{"from", "value"}, ...], "system"?,
 *         "tools"?}: from human/user, gpt/assistant, system, tool;
 *       - {"prompt", "completion"}: one user turn and its answer.
 *     A conversation ends with an assistant message, has a user message
 *     before it and at least one assistant message to train on.
 *
 *   DATASET_KIND_TEXT
 *     JSONL {"text": "..."} (chosen when the first non-space byte is '{'),
 *     or plain UTF-8 text split into documents at blank lines (lines of only
 *     whitespace: space, tab, CR, FF, VT), so packing for continued
 *     pre-training puts a document boundary where the text has a paragraph
 *     break.  Text with no blank line between non-blank lines is one
 *     document per line instead (the usual .txt convention: one article per
 *     line).  A document keeps its bytes exactly, without the final newline.
 *     With opt.text_column the data is CSV (RFC 4180 quoting; the delimiter
 *     ',', tab or ';' that the header line has most of) whose first record
 *     names the columns; each later record's field in that column is one
 *     document.  Without it, data that looks like CSV or TSV (a header of
 *     column names and a steady field count over the first lines) or a JSON
 *     array of objects is refused with a message naming the way to add it,
 *     so that headers and quoting never become training text; so are JSONL
 *     records of the other kind.
 *
 * A UTF-8 byte order mark at the start is skipped.  Every problem is an
 * issue "NAME:LINE: FIELD: PROBLEM" (FIELD "-" for a whole line or record);
 * LINE is the 1-based line where the record starts (JSONL: its line; JSON
 * array: the line of the element's first byte; text: the document's first
 * line), except that a JSON syntax error or invalid UTF-8 names the line of
 * the offending byte.  Duplicates (records equal in every field: instruction,
 * input, output and system, or text) and unknown fields are warnings; the
 * rest make the record invalid.
 *
 * The canonical form is JSONL with one compact object per record and a fixed
 * key order ({"instruction","input","output","system"} or {"text"}), so equal
 * content gives equal bytes and an equal BLAKE2b hash whatever the source's
 * format, key order or whitespace.  A conversation that is one plain turn
 * (an optional system message, a user message and its answer, nothing
 * else) takes the instruction form, which instruct datasets always had;
 * any other is {"messages": [...], "tools"?: [...]} with sorted keys, each
 * message {"content" (a string), "name"?, "role", "tool_call_id"?,
 * "tool_calls"?, "weight": 0?}, whatever its source format.
 */
#ifndef FT_DATASET_H
#define FT_DATASET_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum dataset_kind {
	DATASET_KIND_INSTRUCT,
	DATASET_KIND_TEXT,
};

#define DATASET_MAX_RECORDS 10000000    /* more is an error, not a truncation */
#define DATASET_DEFAULT_MAX_ISSUES 50
#define DATASET_HIST_BUCKETS 10

/* A record.  Instruct records use instruction, input, output and system
 * ("" when absent) and have text NULL; text records use only text.  An
 * instruct record that is more than one turn has chat, its canonical
 * conversation {"messages": [...], "tools": [...]} (NULL otherwise), and
 * then instruction, output and system are its last user message, last
 * assistant message and system message, for display.  The strings are
 * NUL-free UTF-8 in one block owned by the dataset. */
struct dataset_record {
	char *instruction, *input, *output, *system;
	char *chat;
	char *text;
	size_t bytes;   /* content length: the sum of the strings' lengths, or
	                 * a conversation's canonical JSON length */
	size_t line;    /* 1-based line where the record starts in its source */
};

struct dataset_options {
	enum dataset_kind kind;
	size_t max_bytes;       /* longest record content in bytes; 0 = no limit */
	size_t max_issues;      /* issues kept in the report; 0 = the default 50 */
	int skip_invalid;       /* keep the valid records instead of failing */
	const char *text_column; /* text kind: the data is CSV or TSV, this
	                          * column of each record is a document */
};

struct dataset_issue {
	size_t line;
	int warning;
	char field[64];         /* "output", "messages[2].role", "-" */
	char problem[224];
};

/* What a parse found.  Counts cover every issue; issues[] holds the first
 * max_issues of them in file order. */
struct dataset_report {
	char *name;             /* the name given to the parse */
	int skip_invalid;
	size_t records;         /* records seen, valid or not */
	size_t valid, invalid;  /* records kept / rejected */
	size_t errors;          /* error issues, including whole-file ones */
	size_t warnings;
	size_t n_issues;        /* issues kept, <= the cap */
	struct dataset_issue *issues;
};

struct dataset_stats {
	size_t records;
	uint64_t bytes;                 /* total content bytes */
	size_t min_bytes, max_bytes;    /* per record; 0 for an empty dataset */
	double mean_bytes;
	/* Log-spaced length buckets from min to max: bucket i counts records
	 * with lo[i] <= bytes <= hi[i]; fewer than DATASET_HIST_BUCKETS when
	 * the range is narrow. */
	size_t n_buckets;
	size_t bucket_lo[DATASET_HIST_BUCKETS], bucket_hi[DATASET_HIST_BUCKETS];
	size_t bucket_count[DATASET_HIST_BUCKETS];
};

struct dataset;

/* dataset_kind_name returns "instruct" or "text". */
const char *dataset_kind_name(enum dataset_kind kind);

/* dataset_kind_parse reads "instruct" or "text" into *kind.  Returns 0, or
 * -1 for any other word. */
int dataset_kind_parse(const char *word, enum dataset_kind *kind)
    __attribute__((warn_unused_result));

/* dataset_parse validates len bytes of data (the contents of the file called
 * name, the NAME of every issue) as opt->kind and builds the dataset.
 * Returns 0 and sets *out when there are no errors, or when
 * opt->skip_invalid is set and at least one record is valid (the invalid
 * ones are left out).  Otherwise returns -1 with a one-line summary in err
 * and keeps nothing.  *report is set in both cases (NULL only when memory
 * ran out); free it with dataset_report_free. */
int dataset_parse(const char *name, const void *data, size_t len,
    const struct dataset_options *opt, struct dataset **out,
    struct dataset_report **report, char *err, size_t err_len)
    __attribute__((warn_unused_result));

/* dataset_parse_file reads the file at path and calls dataset_parse with
 * name (the path's last component when name is NULL).  The caller checks the
 * file's size first; a file that cannot be read is -1 with *report NULL. */
int dataset_parse_file(const char *path, const char *name,
    const struct dataset_options *opt, struct dataset **out,
    struct dataset_report **report, char *err, size_t err_len)
    __attribute__((warn_unused_result));

/* dataset_load_jsonl reads a canonical file written by dataset_write_jsonl
 * (the form the daemon stores).  Any error in it is -1 with the first issue
 * in err. */
int dataset_load_jsonl(const char *path, enum dataset_kind kind,
    struct dataset **out, char *err, size_t err_len)
    __attribute__((warn_unused_result));

/* dataset_new returns an empty dataset of kind, or NULL when out of
 * memory; dataset_append adds a record of the kind's fields (instruct:
 * instruction, input, output, system and the canonical conversation, ""
 * for none; text: text), copied: 0, or -1 when
 * out of memory. */
struct dataset *dataset_new(enum dataset_kind kind);
int dataset_append(struct dataset *ds, const char *const *f, const size_t *fl, size_t line)
    __attribute__((warn_unused_result));

/* dataset_free frees a dataset and its records.  NULL is allowed. */
void dataset_free(struct dataset *ds);

/* dataset_kind returns the kind the dataset was parsed as. */
enum dataset_kind dataset_kind(const struct dataset *ds);

/* dataset_count returns the number of records. */
size_t dataset_count(const struct dataset *ds);

/* dataset_sample returns record i (borrowed, valid until dataset_free), or
 * NULL when i >= dataset_count(ds). */
const struct dataset_record *dataset_sample(const struct dataset *ds, size_t i);

/* dataset_write_jsonl writes the canonical form to f.  Returns 0, or -1 with
 * a message in err when writing fails. */
int dataset_write_jsonl(const struct dataset *ds, FILE *f, char *err,
    size_t err_len) __attribute__((warn_unused_result));

/* dataset_hash writes the BLAKE2b-256 of the canonical form as 64 lowercase
 * hex digits and a NUL. */
void dataset_hash(const struct dataset *ds, char hex[65]);

/* dataset_split divides the dataset into training and validation parts:
 * round(count * fraction) records, at least 1 and at most count - 1, chosen
 * by a Fisher-Yates shuffle driven by splitmix64(seed), go to *validation;
 * the rest to *train.  Each part keeps the records' original order, and the
 * same dataset, fraction and seed always give the same split.  fraction must
 * be in (0, 0.5] and the dataset must have at least 2 records.  Returns 0,
 * or -1 with a message in err. */
int dataset_split(const struct dataset *ds, double fraction, uint64_t seed,
    struct dataset **train, struct dataset **validation, char *err,
    size_t err_len) __attribute__((warn_unused_result));

/* dataset_stats_compute fills *st with record count, byte totals, per-record
 * length min/mean/max and a length histogram. */
void dataset_stats_compute(const struct dataset *ds, struct dataset_stats *st);

/* dataset_report_format renders the report for a terminal: one line per kept
 * issue ("name:line: field: problem", warnings prefixed "warning: "), a line
 * saying how many issues were not shown when the cap was reached, the totals
 * ("name: 999 records, 997 valid, 2 invalid, 1 warning") and, when invalid
 * records were skipped, "skipped 2 invalid records".  Returns 0 and a
 * malloc'd string in *text, or -1 when memory runs out. */
int dataset_report_format(const struct dataset_report *report, char **text)
    __attribute__((warn_unused_result));

/* dataset_report_free frees a report.  NULL is allowed. */
void dataset_report_free(struct dataset_report *report);

#endif
