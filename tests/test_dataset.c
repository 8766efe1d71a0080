/*
 * test_dataset.c - dataset parsing and validation (daemon/dataset.c).
 *
 * Hand-written bad inputs check each message exactly; the real datasets in
 * ../shared/assets check counts and canonical hashes that were computed
 * independently with Python (json.dumps(..., ensure_ascii=False,
 * separators=(',', ':')) per record, hashlib.blake2b(digest_size=32)).
 */
#include <stdint.h>

#include "dataset.h"
#include "ft_test.h"

static char err[512];

/* write_buffer returns the canonical form in a malloc'd string. */
static int
write_buffer(const struct dataset *ds, char **buf, size_t *len)
{
	FILE *f = open_memstream(buf, len);
	int rc;

	if (f == NULL)
		return -1;
	rc = dataset_write_jsonl(ds, f, err, sizeof(err));
	if (fclose(f) != 0)
		return -1;
	if (rc != 0)
		free(*buf);
	return rc;
}

/* parse runs dataset_parse on a C string and returns its result; the
 * report's formatted text goes to *text (freed by the caller). */
static int
parse(const char *name, enum dataset_kind kind, const char *data, size_t len,
    int skip, size_t max_bytes, struct dataset **ds, struct dataset_report **rep,
    char **text)
{
	struct dataset_options opt = { .kind = kind, .skip_invalid = skip, .max_bytes = max_bytes };
	int rc;

	*ds = NULL;
	rc = dataset_parse(name, data, len, &opt, ds, rep, err, sizeof(err));
	CHECK(*rep != NULL);
	if (text != NULL)
		CHECK(dataset_report_format(*rep, text) == 0);
	return rc;
}

/* bad checks that data fails to parse with exactly one error, the given
 * message, and no dataset. */
static void
bad(enum dataset_kind kind, const char *data, size_t max_bytes, const char *message)
{
	struct dataset *ds;
	struct dataset_report *rep;
	char *text;

	CHECK(parse("t.jsonl", kind, data, strlen(data), 0, max_bytes, &ds, &rep, &text) == -1);
	CHECK(ds == NULL);
	CHECK(rep->errors == 1);
	CHECK(rep->n_issues >= 1);
	if (rep->n_issues >= 1) {
		char line[512];

		snprintf(line, sizeof(line), "t.jsonl:%zu: %s: %s", rep->issues[0].line,
		    rep->issues[0].field, rep->issues[0].problem);
		CHECK_STR(line, message);
		CHECK(strncmp(text, message, strlen(message)) == 0);
	}
	free(text);
	dataset_report_free(rep);
}

static void
test_bad_inputs(void)
{
	bad(DATASET_KIND_INSTRUCT,
	    "{\"instruction\": \"a\", \"output\": \"b\"}\n"
	    "{\"instruction\": \"c\", \"output\": \"d\"}\n"
	    "{\"instruction\": \"e\", \"output\": }\n", 0,
	    "t.jsonl:3: -: invalid JSON: unexpected token near '}'");
	bad(DATASET_KIND_INSTRUCT,
	    "{\"instruction\": \"a\", \"output\": \"b\"}\n"
	    "{\"instruction\": \"c\", \"input\": \"x\"}\n", 0,
	    "t.jsonl:2: output: missing");
	bad(DATASET_KIND_INSTRUCT,
	    "{\"instruction\": \"a\", \"input\": 5, \"output\": \"b\"}\n", 0,
	    "t.jsonl:1: input: not a string (number)");
	bad(DATASET_KIND_INSTRUCT,
	    "\n\n{\"instruction\": \"a\", \"output\": \"\"}\n", 0,
	    "t.jsonl:3: output: empty");
	bad(DATASET_KIND_INSTRUCT,
	    "{\"instruction\": \"\", \"output\": \"b\"}\n", 0,
	    "t.jsonl:1: instruction: empty");
	bad(DATASET_KIND_INSTRUCT,
	    "{\"instruction\": \"a\", \"output\": \"b\"}\n"
	    "{\"instruction\": \"c\", \"output\": \"d\"}\n"
	    "\n"
	    "{\"instruction\": \"caf\xc3\xa9\", \"output\": \"x\xff\"}\n", 0,
	    "t.jsonl:4: -: invalid UTF-8 (byte 0xff at column 38)");
	/* An encoded surrogate is not UTF-8 either. */
	bad(DATASET_KIND_TEXT, "one\n\ntwo \xed\xa0\x80\n", 0,
	    "t.jsonl:3: -: invalid UTF-8 (byte 0xed at column 5)");
	bad(DATASET_KIND_INSTRUCT,
	    "{\"instruction\": \"abcd\", \"input\": \"ef\", \"output\": \"ghijkl\"}\n", 10,
	    "t.jsonl:1: -: record is 12 bytes, over the limit of 10");
	bad(DATASET_KIND_INSTRUCT, "", 0, "t.jsonl:1: -: empty file");
	bad(DATASET_KIND_TEXT, " \n\n\t\n", 0, "t.jsonl:1: -: empty file");
	bad(DATASET_KIND_INSTRUCT, "[1]", 0, "t.jsonl:1: -: not a JSON object (number)");
	bad(DATASET_KIND_INSTRUCT,
	    "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}\n", 0,
	    "t.jsonl:1: messages: the last message must be from the assistant");
	bad(DATASET_KIND_INSTRUCT,
	    "{\"messages\": [{\"role\": \"system\", \"content\": \"s\"},"
	    " {\"role\": \"assistant\", \"content\": \"a\"}]}\n", 0,
	    "t.jsonl:1: messages: no user message");
	bad(DATASET_KIND_INSTRUCT,
	    "{\"messages\": [{\"role\": \"user\", \"content\": \"q\"},"
	    " {\"role\": \"bot\", \"content\": \"a\"}]}\n", 0,
	    "t.jsonl:1: messages[1].role: unknown role \"bot\" (expected system, user, assistant or tool)");
	bad(DATASET_KIND_INSTRUCT,
	    "{\"conversations\": [{\"from\": \"human\", \"value\": \"q\"},"
	    " {\"from\": \"bot\", \"value\": \"a\"}]}\n", 0,
	    "t.jsonl:1: conversations[1].from: unknown speaker \"bot\" (expected human, gpt, system, "
	    "tool, user or assistant)");
	bad(DATASET_KIND_INSTRUCT,
	    "{\"conversations\": [{\"from\": \"human\"}, {\"from\": \"gpt\", \"value\": \"a\"}]}\n", 0,
	    "t.jsonl:1: conversations[0].value: missing");
	bad(DATASET_KIND_INSTRUCT,
	    "{\"messages\": [{\"role\": \"user\", \"content\": \"q\"},"
	    " {\"role\": \"assistant\", \"content\": \"a\", \"weight\": 2}]}\n", 0,
	    "t.jsonl:1: messages[1].weight: must be 0 or 1");
	bad(DATASET_KIND_INSTRUCT,
	    "{\"messages\": [{\"role\": \"user\", \"content\": \"q\", \"weight\": 1},"
	    " {\"role\": \"assistant\", \"content\": \"a\"}]}\n", 0,
	    "t.jsonl:1: messages[0].weight: only an assistant message has a weight");
	bad(DATASET_KIND_INSTRUCT,
	    "{\"messages\": [{\"role\": \"user\", \"content\": \"q\"},"
	    " {\"role\": \"assistant\", \"content\": \"a\", \"weight\": 0}]}\n", 0,
	    "t.jsonl:1: messages: every assistant message has weight 0: nothing to train on");
	bad(DATASET_KIND_INSTRUCT,
	    "{\"messages\": [{\"role\": \"user\", \"content\": \"q\", \"tool_calls\": []},"
	    " {\"role\": \"assistant\", \"content\": \"a\"}]}\n", 0,
	    "t.jsonl:1: messages[0].tool_calls: only an assistant message makes tool calls");
	bad(DATASET_KIND_INSTRUCT,
	    "{\"messages\": [{\"role\": \"user\", \"content\": \"q\"},"
	    " {\"role\": \"assistant\", \"tool_calls\": [{\"type\": \"function\", \"function\": {}}]},"
	    " {\"role\": \"tool\", \"content\": \"1\"}, {\"role\": \"assistant\", \"content\": \"a\"}]}\n", 0,
	    "t.jsonl:1: messages[1].tool_calls[0]: function.name: missing or not a string");
	bad(DATASET_KIND_INSTRUCT,
	    "{\"messages\": [{\"role\": \"user\", \"content\": \"q\", \"tool_call_id\": \"c1\"},"
	    " {\"role\": \"assistant\", \"content\": \"a\"}]}\n", 0,
	    "t.jsonl:1: messages[0].tool_call_id: only a tool message has one");
	bad(DATASET_KIND_INSTRUCT,
	    "{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"image_url\"}]},"
	    " {\"role\": \"assistant\", \"content\": \"a\"}]}\n", 0,
	    "t.jsonl:1: messages[0].content[0]: not a text part {\"type\": \"text\", \"text\": ...}");
	bad(DATASET_KIND_INSTRUCT,
	    "{\"messages\": [{\"role\": \"user\", \"content\": \"q\"},"
	    " {\"role\": \"system\", \"content\": \"s\"}, {\"role\": \"assistant\", \"content\": \"a\"}]}\n", 0,
	    "t.jsonl:1: messages[1]: a system message must come first");
	bad(DATASET_KIND_INSTRUCT,
	    "{\"messages\": [{\"role\": \"user\", \"content\": \"q\"},"
	    " {\"role\": \"assistant\", \"content\": \"a\"}], \"tools\": {}}\n", 0,
	    "t.jsonl:1: tools: not an array (object)");
	bad(DATASET_KIND_INSTRUCT,
	    "{\"instruction\": \"q\", \"output\": \"a\", \"history\": [[\"u\"]]}\n", 0,
	    "t.jsonl:1: history[0]: not a [user, assistant] pair of strings");
	bad(DATASET_KIND_INSTRUCT, "{\"prompt\": \"q\"}\n", 0, "t.jsonl:1: completion: missing");
	bad(DATASET_KIND_INSTRUCT, "{\"messages\": {}}\n", 0,
	    "t.jsonl:1: messages: not an array (object)");
	bad(DATASET_KIND_INSTRUCT,
	    "[\n"
	    "  {\"instruction\": \"a\", \"output\": \"b\"},\n"
	    "  {\"instruction\": \"c\",\n"
	    "   \"output\": \"d\"},\n"
	    "  {\n"
	    "    \"instruction\": \"e\"\n"
	    "  }\n"
	    "]\n", 0,
	    "t.jsonl:5: output: missing");
	bad(DATASET_KIND_INSTRUCT,
	    "[\n  {\"instruction\": \"a\", \"output\": \"b\"},\n  {\"instruction\": \"c\",\n"
	    "   \"output\" \"d\"}\n]\n", 0,
	    "t.jsonl:4: -: invalid JSON: ':' expected near '\"d\"'");
	bad(DATASET_KIND_INSTRUCT, "[{\"instruction\": \"a\", \"output\": \"b\"}]\n[]\n", 0,
	    "t.jsonl:2: -: data after the JSON array");
	bad(DATASET_KIND_INSTRUCT, "[{\"instruction\": \"a\", \"output\": \"b\"},\n", 0,
	    "t.jsonl:2: -: invalid JSON: the array is not closed");
	bad(DATASET_KIND_INSTRUCT, "[{\"instruction\": \"a\", \"output\": \"b\"},\n]", 0,
	    "t.jsonl:2: -: invalid JSON: a value is missing before ']'");
	bad(DATASET_KIND_INSTRUCT, " [ ] ", 0, "t.jsonl:1: -: empty JSON array");
	bad(DATASET_KIND_INSTRUCT, "{\"instruction\": \"a\", \"output\": \"b\", \"output\": \"c\"}", 0,
	    "t.jsonl:1: -: invalid JSON: duplicate object key near '\"output\"'");
	bad(DATASET_KIND_TEXT, "{\"text\": \"a\"}\n{\"text\": null}\n", 0,
	    "t.jsonl:2: text: not a string (null)");
	bad(DATASET_KIND_TEXT, "{\"text\": \"\"}\n", 0, "t.jsonl:1: text: empty");
}

static void
test_warnings_and_report(void)
{
	struct dataset *ds;
	struct dataset_report *rep;
	char *text;
	const char *dup =
	    "{\"instruction\": \"a\", \"output\": \"b\"}\n"
	    "{\"instruction\": \"a\", \"input\": \"x\", \"output\": \"b\"}\n"
	    "{\"output\": \"b\", \"input\": \"\", \"instruction\": \"a\", \"id\": 7}\n";

	/* Duplicates and unknown fields warn; the parse still succeeds. */
	CHECK(parse("dup.jsonl", DATASET_KIND_INSTRUCT, dup, strlen(dup), 0, 0, &ds, &rep, &text) == 0);
	CHECK(ds != NULL && dataset_count(ds) == 3);
	CHECK_STR(text,
	    "warning: dup.jsonl:3: id: unknown field, ignored\n"
	    "warning: dup.jsonl:3: -: duplicate of the record on line 1\n"
	    "dup.jsonl: 3 records, 3 valid, 0 invalid, 2 warnings\n");
	free(text);
	dataset_report_free(rep);
	dataset_free(ds);

	/* A one-turn chat is an instruction record, as it always was; name
	 * is a message field now. */
	const char *chat =
	    "{\"messages\": [{\"role\": \"system\", \"content\": \"be brief\"},"
	    " {\"role\": \"user\", \"content\": \"q2\"}, {\"role\": \"assistant\", \"content\": \"a2\"}]}\n"
	    "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"},"
	    " {\"role\": \"assistant\", \"content\": \"hello\", \"nick\": \"x\"}]}\n";
	CHECK(parse("chat.jsonl", DATASET_KIND_INSTRUCT, chat, strlen(chat), 0, 0, &ds, &rep, &text) == 0);
	CHECK(ds != NULL && dataset_count(ds) == 2);
	if (ds != NULL && dataset_count(ds) == 2) {
		const struct dataset_record *r = dataset_sample(ds, 0);

		CHECK_STR(r->instruction, "q2");
		CHECK_STR(r->input, "");
		CHECK_STR(r->output, "a2");
		CHECK_STR(r->system, "be brief");
		CHECK(r->chat == NULL);
		CHECK(r->bytes == 12);
		r = dataset_sample(ds, 1);
		CHECK_STR(r->instruction, "hi");
		CHECK_STR(r->output, "hello");
		CHECK_STR(r->system, "");
		CHECK(r->line == 2);
		CHECK(dataset_sample(ds, 2) == NULL);
	}
	CHECK_STR(text,
	    "warning: chat.jsonl:2: messages[1].nick: unknown field, ignored\n"
	    "chat.jsonl: 2 records, 2 valid, 0 invalid, 1 warning\n");
	free(text);
	dataset_report_free(rep);
	dataset_free(ds);

	/* skip_invalid keeps the valid records and says what it skipped;
	 * without it nothing is returned.  The cap limits what is listed, not
	 * what is counted. */
	const char *mixed =
	    "{\"instruction\": \"a\", \"output\": \"b\"}\n"
	    "not json\n"
	    "{\"instruction\": \"c\", \"output\": \"d\"}\n"
	    "{\"instruction\": \"e\"}\n"
	    "[]\n"
	    "{\"instruction\": \"f\", \"output\": \"g\"}\n";
	struct dataset_options opt = { .kind = DATASET_KIND_INSTRUCT, .max_issues = 2 };

	ds = NULL;
	CHECK(dataset_parse("mixed.jsonl", mixed, strlen(mixed), &opt, &ds, &rep, err, sizeof(err)) == -1);
	CHECK(ds == NULL);
	CHECK_STR(err, "mixed.jsonl:2: -: invalid JSON: invalid token near 'not' (3 errors)");
	CHECK(rep->records == 6 && rep->valid == 3 && rep->invalid == 3 && rep->errors == 3);
	CHECK(dataset_report_format(rep, &text) == 0);
	CHECK_STR(text,
	    "mixed.jsonl:2: -: invalid JSON: invalid token near 'not'\n"
	    "mixed.jsonl:4: output: missing\n"
	    "... 1 more issue not shown\n"
	    "mixed.jsonl: 6 records, 3 valid, 3 invalid, 0 warnings\n");
	free(text);
	dataset_report_free(rep);

	opt.skip_invalid = 1;
	CHECK(dataset_parse("mixed.jsonl", mixed, strlen(mixed), &opt, &ds, &rep, err, sizeof(err)) == 0);
	CHECK(ds != NULL && dataset_count(ds) == 3);
	if (ds != NULL && dataset_count(ds) == 3) {
		CHECK_STR(dataset_sample(ds, 0)->instruction, "a");
		CHECK_STR(dataset_sample(ds, 1)->instruction, "c");
		CHECK_STR(dataset_sample(ds, 2)->instruction, "f");
		CHECK(dataset_sample(ds, 2)->line == 6);
	}
	CHECK(dataset_report_format(rep, &text) == 0);
	CHECK_STR(text,
	    "mixed.jsonl:2: -: invalid JSON: invalid token near 'not'\n"
	    "mixed.jsonl:4: output: missing\n"
	    "... 1 more issue not shown\n"
	    "mixed.jsonl: 6 records, 3 valid, 3 invalid, 0 warnings\n"
	    "skipped 3 invalid records\n");
	free(text);
	dataset_report_free(rep);
	dataset_free(ds);

	/* With every record invalid, skipping leaves nothing and fails. */
	CHECK(parse("x.jsonl", DATASET_KIND_INSTRUCT, "1\n2\n", 4, 1, 0, &ds, &rep, NULL) == -1);
	CHECK(ds == NULL && rep->invalid == 2);
	dataset_report_free(rep);
}

/* canonical_of parses data (one record) and returns its canonical line. */
static char *
canonical_of(const char *data)
{
	struct dataset *ds;
	struct dataset_report *rep;
	char *buf = NULL;
	size_t len;

	if (parse("c.jsonl", DATASET_KIND_INSTRUCT, data, strlen(data), 0, 0, &ds, &rep, NULL) == 0) {
		if (write_buffer(ds, &buf, &len) != 0)
			buf = NULL;
		dataset_free(ds);
	} else {
		fprintf(stderr, "canonical_of: %s\n", err);
	}
	dataset_report_free(rep);
	return buf;
}

static void
test_conversations(void)
{
	/* The same three-turn conversation in each source format. */
	const char *openai =
	    "{\"messages\": [{\"role\": \"system\", \"content\": \"Answer in French.\"},"
	    " {\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"My name \"},"
	    " {\"type\": \"text\", \"text\": \"is Ann.\"}]},"
	    " {\"role\": \"assistant\", \"content\": \"Bonjour Ann.\", \"weight\": 1},"
	    " {\"role\": \"user\", \"content\": \"Who am I?\"},"
	    " {\"content\": \"Ann.\", \"role\": \"assistant\"}]}\n";
	const char *sharegpt =
	    "{\"system\": \"Answer in French.\", \"conversations\": ["
	    " {\"from\": \"human\", \"value\": \"My name is Ann.\"},"
	    " {\"from\": \"gpt\", \"value\": \"Bonjour Ann.\"},"
	    " {\"from\": \"user\", \"value\": \"Who am I?\"},"
	    " {\"from\": \"assistant\", \"value\": \"Ann.\"}]}\n";
	const char *alpaca =
	    "{\"instruction\": \"Who am I?\", \"output\": \"Ann.\", \"system\": \"Answer in French.\","
	    " \"history\": [[\"My name is Ann.\", \"Bonjour Ann.\"]]}\n";
	const char *want =
	    "{\"messages\":[{\"content\":\"Answer in French.\",\"role\":\"system\"},"
	    "{\"content\":\"My name is Ann.\",\"role\":\"user\"},"
	    "{\"content\":\"Bonjour Ann.\",\"role\":\"assistant\"},"
	    "{\"content\":\"Who am I?\",\"role\":\"user\"},"
	    "{\"content\":\"Ann.\",\"role\":\"assistant\"}]}\n";
	char *c;

	c = canonical_of(openai);
	CHECK_STR(c ? c : "(null)", want);
	free(c);
	c = canonical_of(sharegpt);
	CHECK_STR(c ? c : "(null)", want);
	free(c);
	c = canonical_of(alpaca);
	CHECK_STR(c ? c : "(null)", want);
	free(c);

	/* Tools, tool calls, a tool result and a turn not trained on; the
	 * canonical form reads back to itself. */
	const char *tools =
	    "{\"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"add\"}}],"
	    " \"messages\": [{\"role\": \"user\", \"content\": \"1+2?\"},"
	    " {\"role\": \"assistant\", \"content\": null, \"tool_calls\": [{\"id\": \"c1\","
	    " \"type\": \"function\", \"function\": {\"name\": \"add\", \"arguments\": \"{\\\"a\\\":1}\"}}],"
	    " \"weight\": 0},"
	    " {\"role\": \"tool\", \"tool_call_id\": \"c1\", \"name\": \"add\", \"content\": \"3\"},"
	    " {\"role\": \"assistant\", \"content\": \"3\"}]}\n";
	const char *tools_want =
	    "{\"messages\":[{\"content\":\"1+2?\",\"role\":\"user\"},"
	    "{\"content\":\"\",\"role\":\"assistant\",\"tool_calls\":[{\"function\":{\"arguments\":"
	    "\"{\\\"a\\\":1}\",\"name\":\"add\"},\"id\":\"c1\",\"type\":\"function\"}],\"weight\":0},"
	    "{\"content\":\"3\",\"name\":\"add\",\"role\":\"tool\",\"tool_call_id\":\"c1\"},"
	    "{\"content\":\"3\",\"role\":\"assistant\"}],"
	    "\"tools\":[{\"function\":{\"name\":\"add\"},\"type\":\"function\"}]}\n";
	c = canonical_of(tools);
	CHECK_STR(c ? c : "(null)", tools_want);
	if (c != NULL) {
		char *again = canonical_of(c);

		CHECK_STR(again ? again : "(null)", tools_want);
		free(again);
	}
	free(c);

	/* One plain turn from any source is the instruction record. */
	const char *one = "{\"instruction\":\"q\",\"input\":\"\",\"output\":\"a\",\"system\":\"\"}\n";
	c = canonical_of("{\"prompt\": \"q\", \"completion\": \"a\"}");
	CHECK_STR(c ? c : "(null)", one);
	free(c);
	c = canonical_of("{\"conversations\": [{\"from\": \"human\", \"value\": \"q\"},"
	    " {\"from\": \"gpt\", \"value\": \"a\"}]}");
	CHECK_STR(c ? c : "(null)", one);
	free(c);
	c = canonical_of("{\"instruction\": \"q\", \"output\": \"a\", \"history\": []}");
	CHECK_STR(c ? c : "(null)", one);
	free(c);
}

static void
test_text(void)
{
	struct dataset *ds;
	struct dataset_report *rep;
	const char *doc = "\xef\xbb\xbf\n\nFirst line\nsecond line\n  \n\n\fThird \xc3\xa9\r\n\r\n\nlast";

	/* Plain text: documents at blank lines, bytes kept, BOM skipped. */
	CHECK(parse("t.txt", DATASET_KIND_TEXT, doc, strlen(doc), 0, 0, &ds, &rep, NULL) == 0);
	CHECK(ds != NULL && dataset_count(ds) == 3);
	if (ds != NULL && dataset_count(ds) == 3) {
		CHECK_STR(dataset_sample(ds, 0)->text, "First line\nsecond line");
		CHECK(dataset_sample(ds, 0)->line == 3);
		CHECK_STR(dataset_sample(ds, 1)->text, "\fThird \xc3\xa9\r");
		CHECK(dataset_sample(ds, 1)->line == 7);
		CHECK_STR(dataset_sample(ds, 2)->text, "last");
		CHECK(dataset_sample(ds, 2)->line == 10);
		CHECK(dataset_sample(ds, 0)->instruction == NULL);
	}
	CHECK(rep->records == 3 && rep->warnings == 0);
	dataset_report_free(rep);
	dataset_free(ds);

	/* Without a blank line between text, every line is a document. */
	doc = "\n \nline one\r\nline two\n\n";
	CHECK(parse("t.txt", DATASET_KIND_TEXT, doc, strlen(doc), 0, 0, &ds, &rep, NULL) == 0);
	CHECK(ds != NULL && dataset_count(ds) == 2);
	if (ds != NULL && dataset_count(ds) == 2) {
		CHECK_STR(dataset_sample(ds, 0)->text, "line one\r");
		CHECK(dataset_sample(ds, 0)->line == 3);
		CHECK_STR(dataset_sample(ds, 1)->text, "line two");
		CHECK(dataset_sample(ds, 1)->line == 4);
	}
	dataset_report_free(rep);
	dataset_free(ds);

	/* A NUL byte cannot live in a record. */
	CHECK(parse("t.txt", DATASET_KIND_TEXT, "ab\n\ncd\0ef", 9, 0, 0, &ds, &rep, NULL) == -1);
	CHECK(rep->n_issues == 1 && rep->issues[0].line == 3);
	CHECK_STR(rep->issues[0].problem, "NUL byte at column 3");
	dataset_report_free(rep);
}

static int
same_records(const struct dataset *a, const struct dataset *b)
{
	if (dataset_count(a) != dataset_count(b) || dataset_kind(a) != dataset_kind(b))
		return 0;
	for (size_t i = 0; i < dataset_count(a); i++) {
		const struct dataset_record *x = dataset_sample(a, i), *y = dataset_sample(b, i);

		if (dataset_kind(a) == DATASET_KIND_TEXT ? strcmp(x->text, y->text) != 0 :
		    strcmp(x->instruction, y->instruction) != 0 || strcmp(x->input, y->input) != 0 ||
		    strcmp(x->output, y->output) != 0 || strcmp(x->system, y->system) != 0)
			return 0;
	}
	return 1;
}

static void
hash_of(const char *data, enum dataset_kind kind, char hex[65])
{
	struct dataset *ds;
	struct dataset_report *rep;

	strcpy(hex, "(parse failed)");
	if (parse("h", kind, data, strlen(data), 0, 0, &ds, &rep, NULL) == 0) {
		dataset_hash(ds, hex);
		dataset_free(ds);
	}
	dataset_report_free(rep);
}

static void
test_canonical(void)
{
	char h1[65], h2[65], h3[65], *buf;
	size_t len;
	struct dataset *ds;
	struct dataset_report *rep;
	const char *tricky = "{\"instruction\": \"q \\\"x\\\" \\\\ / \\u0001\\b\\f\\t\", "
	    "\"output\": \"caf\\u00e9\\n\xf0\x9f\x98\x80\\u007f\"}";

	/* Same content, different key order, whitespace and container. */
	hash_of("{\"instruction\":\"a\",\"input\":\"i\",\"output\":\"b\"}\n"
	    "{\"messages\":[{\"role\":\"user\",\"content\":\"c\"},{\"role\":\"assistant\",\"content\":\"d\"}]}\n",
	    DATASET_KIND_INSTRUCT, h1);
	hash_of("[ {\"output\" : \"b\",\n \"input\": \"i\", \"instruction\": \"a\"},\n"
	    "  {\"instruction\": \"c\", \"output\": \"d\", \"system\": \"\"}\n]\n",
	    DATASET_KIND_INSTRUCT, h2);
	hash_of("{\"instruction\":\"a\",\"input\":\"i\",\"output\":\"b!\"}\n"
	    "{\"instruction\":\"c\",\"output\":\"d\"}\n", DATASET_KIND_INSTRUCT, h3);
	CHECK_STR(h1, h2);
	CHECK(strcmp(h1, h3) != 0);

	/* Escapes: exactly what Python's json.dumps(ensure_ascii=False) gives. */
	CHECK(parse("e", DATASET_KIND_INSTRUCT, tricky, strlen(tricky), 0, 0, &ds, &rep, NULL) == 0);
	CHECK(write_buffer(ds, &buf, &len) == 0);
	CHECK_STR(buf, "{\"instruction\":\"q \\\"x\\\" \\\\ / \\u0001\\b\\f\\t\",\"input\":\"\","
	    "\"output\":\"caf\xc3\xa9\\n\xf0\x9f\x98\x80\x7f\",\"system\":\"\"}\n");
	CHECK(len == strlen(buf));
	dataset_hash(ds, h1);
	CHECK_STR(h1, "63dc9d63e9236a910a386989a4c9db90e546be1539da81a930d3a4e147ad20cf");
	free(buf);
	dataset_report_free(rep);
	dataset_free(ds);
}

/* roundtrip writes ds to a file, loads it back and checks records and hash. */
static void
roundtrip(const struct dataset *ds)
{
	char path[] = "/tmp/test_dataset_XXXXXX", h1[65], h2[65];
	int fd = mkstemp(path);
	FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
	struct dataset *back = NULL;

	CHECK(f != NULL);
	if (f == NULL)
		return;
	CHECK(dataset_write_jsonl(ds, f, err, sizeof(err)) == 0);
	fclose(f);
	CHECK(dataset_load_jsonl(path, dataset_kind(ds), &back, err, sizeof(err)) == 0);
	CHECK(back != NULL && same_records(ds, back));
	dataset_hash(ds, h1);
	if (back != NULL) {
		dataset_hash(back, h2);
		CHECK_STR(h1, h2);
	}
	dataset_free(back);
	unlink(path);
}

static void
test_split(void)
{
	struct dataset *ds, *t1, *v1, *t2, *v2, *t3, *v3;
	struct dataset_report *rep;
	char data[64 * 40];
	size_t n = 0;

	for (int i = 0; i < 40; i++)
		n += (size_t)snprintf(data + n, sizeof(data) - n, "{\"text\": \"doc %d\"}\n", i);
	CHECK(parse("s", DATASET_KIND_TEXT, data, n, 0, 0, &ds, &rep, NULL) == 0);
	dataset_report_free(rep);
	if (ds == NULL)
		return;
	CHECK(dataset_split(ds, 0.25, 42, &t1, &v1, err, sizeof(err)) == 0);
	CHECK(dataset_split(ds, 0.25, 42, &t2, &v2, err, sizeof(err)) == 0);
	CHECK(dataset_split(ds, 0.25, 43, &t3, &v3, err, sizeof(err)) == 0);
	CHECK(dataset_count(v1) == 10 && dataset_count(t1) == 30);
	CHECK(same_records(t1, t2) && same_records(v1, v2));
	CHECK(!same_records(v1, v3));
	{
		/* Disjoint, complete, in original order: lines identify records. */
		int seen[41] = { 0 };
		size_t last = 0, ok = 1;

		for (size_t i = 0; i < dataset_count(t1); i++) {
			size_t l = dataset_sample(t1, i)->line;

			ok &= l > last;
			last = l;
			seen[l]++;
		}
		last = 0;
		for (size_t i = 0; i < dataset_count(v1); i++) {
			size_t l = dataset_sample(v1, i)->line;

			ok &= l > last;
			last = l;
			seen[l]++;
		}
		for (int l = 1; l <= 40; l++)
			ok &= seen[l] == 1;
		CHECK(ok);
	}
	dataset_free(t1), dataset_free(v1);
	dataset_free(t2), dataset_free(v2);
	dataset_free(t3), dataset_free(v3);

	CHECK(dataset_split(ds, 0.0, 1, &t1, &v1, err, sizeof(err)) == -1);
	CHECK_STR(err, "validation fraction 0 must be in (0, 0.5]");
	CHECK(dataset_split(ds, 0.6, 1, &t1, &v1, err, sizeof(err)) == -1);
	dataset_free(ds);

	/* Two records: one of each, whatever the fraction. */
	CHECK(parse("s", DATASET_KIND_TEXT, "a\n\nb\n", 5, 0, 0, &ds, &rep, NULL) == 0);
	dataset_report_free(rep);
	CHECK(dataset_split(ds, 0.01, 7, &t1, &v1, err, sizeof(err)) == 0);
	CHECK(dataset_count(t1) == 1 && dataset_count(v1) == 1);
	dataset_free(t1), dataset_free(v1), dataset_free(ds);
	CHECK(parse("s", DATASET_KIND_TEXT, "a\n", 2, 0, 0, &ds, &rep, NULL) == 0);
	dataset_report_free(rep);
	CHECK(dataset_split(ds, 0.5, 7, &t1, &v1, err, sizeof(err)) == -1);
	CHECK_STR(err, "a validation split needs at least 2 records, the dataset has 1");
	dataset_free(ds);
}

static void
test_stats(void)
{
	struct dataset *ds;
	struct dataset_report *rep;
	struct dataset_stats st;
	char data[2400];
	size_t n = 0, total = 0;
	const size_t lens[] = { 1, 10, 100, 1000, 1000 };

	for (size_t i = 0; i < 5; i++) {
		memset(data + n, 'x', lens[i]);
		n += lens[i];
		data[n++] = '\n';
		data[n++] = '\n';
	}
	CHECK(parse("s", DATASET_KIND_TEXT, data, n, 0, 0, &ds, &rep, NULL) == 0);
	dataset_report_free(rep);
	dataset_stats_compute(ds, &st);
	CHECK(st.records == 5 && st.bytes == 2111);
	CHECK(st.min_bytes == 1 && st.max_bytes == 1000);
	CHECK_NEAR(st.mean_bytes, 422.2, 1e-9);
	CHECK(st.n_buckets == DATASET_HIST_BUCKETS);
	CHECK(st.bucket_lo[0] == 1 && st.bucket_hi[st.n_buckets - 1] == 1000);
	for (size_t k = 0; k < st.n_buckets; k++) {
		CHECK(st.bucket_lo[k] <= st.bucket_hi[k]);
		if (k > 0)
			CHECK(st.bucket_lo[k] == st.bucket_hi[k - 1] + 1);
		total += st.bucket_count[k];
	}
	CHECK(total == 5);
	/* Log spacing: 1, 10, 100 and 1000 fall in buckets 0, 3, 6 and 9. */
	CHECK(st.bucket_count[0] == 1 && st.bucket_count[3] == 1 && st.bucket_count[6] == 1 &&
	    st.bucket_count[9] == 2);
	dataset_free(ds);

	/* A narrow range gets one bucket per length. */
	CHECK(parse("s", DATASET_KIND_TEXT, "ab\n\nabc\n\nab\n", 12, 0, 0, &ds, &rep, NULL) == 0);
	dataset_report_free(rep);
	dataset_stats_compute(ds, &st);
	CHECK(st.n_buckets == 2 && st.bucket_count[0] == 2 && st.bucket_count[1] == 1);
	CHECK(st.bucket_lo[1] == 3 && st.bucket_hi[1] == 3);
	dataset_free(ds);
}

/* parse_column parses data as text with --text-column col. */
static int
parse_column(const char *data, const char *col, struct dataset **ds,
    struct dataset_report **rep)
{
	struct dataset_options opt = { .kind = DATASET_KIND_TEXT, .text_column = col };

	*ds = NULL;
	return dataset_parse("t.csv", data, strlen(data), &opt, ds, rep, err, sizeof(err));
}

static void
bad_column(const char *data, const char *col, const char *message)
{
	struct dataset_report *rep;
	struct dataset *ds;
	char line[512];

	CHECK(parse_column(data, col, &ds, &rep) == -1);
	CHECK(ds == NULL && rep != NULL && rep->errors == 1 && rep->n_issues == 1);
	if (rep != NULL && rep->n_issues >= 1) {
		snprintf(line, sizeof(line), "t.csv:%zu: %s: %s", rep->issues[0].line,
		    rep->issues[0].field, rep->issues[0].problem);
		CHECK_STR(line, message);
	}
	dataset_report_free(rep);
}

/* good_text checks that data parses as text into n documents (prose that
 * must not be taken for CSV or JSON). */
static void
good_text(const char *data, size_t n)
{
	struct dataset_report *rep;
	struct dataset *ds;

	CHECK(parse("t.txt", DATASET_KIND_TEXT, data, strlen(data), 0, 0, &ds, &rep, NULL) == 0);
	CHECK(ds != NULL && dataset_count(ds) == n);
	dataset_report_free(rep);
	dataset_free(ds);
}

static void
test_csv(void)
{
	static const char csv[] =
	    "id,text,label\r\n"
	    "1,plain,a\r\n"
	    "2,\"with, comma and \"\"quote\"\"\",b\n"
	    "\n"
	    "3,\"two\nlines\",c\n"
	    "4,unquoted \"inner\" quote,d";
	static const char jsonl[] =
	    "{\"text\":\"plain\"}\n{\"text\":\"with, comma and \\\"quote\\\"\"}\n"
	    "{\"text\":\"two\\nlines\"}\n{\"text\":\"unquoted \\\"inner\\\" quote\"}\n";
	struct dataset_report *rep;
	struct dataset *ds, *dj;
	char h1[65], h2[65];

	/* Refused without --text-column, naming the columns and the option. */
	bad(DATASET_KIND_TEXT, csv, 0, "t.jsonl:1: -: looks like CSV with columns id,text,label: "
	    "use --text-column NAME to train on one column");
	bad(DATASET_KIND_INSTRUCT, csv, 0, "t.jsonl:1: -: looks like CSV with columns id,text,label: "
	    "use --kind text --text-column NAME to train on one column as text");
	bad(DATASET_KIND_TEXT, "prompt\tcompletion\nhi\tthere\nbye\t\"now\"\n", 0,
	    "t.jsonl:1: -: looks like TSV with columns prompt,completion: "
	    "use --text-column NAME to train on one column");
	bad(DATASET_KIND_TEXT, "\n\na;b;c\n1;2;3\n4;5;6\n", 0,
	    "t.jsonl:3: -: looks like CSV (';'-separated) with columns a,b,c: "
	    "use --text-column NAME to train on one column");
	bad(DATASET_KIND_TEXT, "name,value\n1,2\n3,4\n", 0, "t.jsonl:1: -: looks like CSV with "
	    "columns name,value: use --text-column NAME to train on one column");
	bad(DATASET_KIND_TEXT, " [ {\"instruction\": \"a\", \"output\": \"b\"} ]\n", 0,
	    "t.jsonl:1: -: looks like a JSON array of records: use --kind instruct, or JSONL "
	    "with one {\"text\": ...} a line");
	bad(DATASET_KIND_TEXT, "{\"instruction\": \"a\", \"output\": \"b\"}\n", 0,
	    "t.jsonl:1: text: missing: an instruction record, use --kind instruct");
	bad(DATASET_KIND_INSTRUCT, "{\"text\": \"a\"}\n", 0,
	    "t.jsonl:1: instruction: missing: a text record, use --kind text");

	/* Prose with commas, short lists and bracketed text stay text. */
	good_text("Hello, world.\nThis is fine, really, it is.\n", 2);
	good_text("name,value\n1,2\n", 2);              /* one row is no evidence */
	good_text("First Citizen:\nWe are accounted poor citizens, the patricians good.\n"
	    "What authority surfeits on would relieve us: if they\n", 3);
	good_text("apples, pears\nplums, figs\nlemons, limes\n", 3); /* no header names */
	good_text("[Verse 1]\nla la la\n", 2);
	good_text("[1, 2, 3] is a list\nand so on\n", 2);

	/* --text-column: RFC 4180 quoting, CRLF, empty lines, a last record
	 * without newline; the canonical form is that of the same JSONL. */
	CHECK(parse_column(csv, "text", &ds, &rep) == 0);
	CHECK(ds != NULL && rep->errors == 0 && rep->warnings == 0);
	if (ds != NULL) {
		CHECK(dataset_count(ds) == 4);
		CHECK_STR(dataset_sample(ds, 0)->text, "plain");
		CHECK_STR(dataset_sample(ds, 1)->text, "with, comma and \"quote\"");
		CHECK_STR(dataset_sample(ds, 2)->text, "two\nlines");
		CHECK_STR(dataset_sample(ds, 3)->text, "unquoted \"inner\" quote");
		CHECK(dataset_sample(ds, 2)->line == 5 && dataset_sample(ds, 3)->line == 7);
		dataset_report_free(rep);
		CHECK(parse("t.jsonl", DATASET_KIND_TEXT, jsonl, strlen(jsonl), 0, 0, &dj, &rep, NULL) == 0);
		if (dj != NULL) {
			dataset_hash(ds, h1);
			dataset_hash(dj, h2);
			CHECK_STR(h1, h2);
		}
		dataset_report_free(rep);
		dataset_free(dj);
	} else {
		dataset_report_free(rep);
	}
	dataset_free(ds);
	CHECK(parse_column("id\ttext\n1\thello, world\n", "text", &ds, &rep) == 0);
	CHECK(ds != NULL && dataset_count(ds) == 1 &&
	    strcmp(dataset_sample(ds, 0)->text, "hello, world") == 0);
	dataset_report_free(rep);
	dataset_free(ds);
	CHECK(parse_column("\"text\"\nhello\nworld\nhello\n", "text", &ds, &rep) == 0);
	CHECK(ds != NULL && dataset_count(ds) == 3 && rep->warnings == 1);
	CHECK_STR(rep->issues[0].problem, "duplicate of the record on line 2");
	dataset_report_free(rep);
	dataset_free(ds);

	bad_column(csv, "body", "t.csv:1: -: no column \"body\" (columns: id,text,label)");
	bad_column("a,text\n1,x\n2\n", "text", "t.csv:3: -: 1 field, the header has 2");
	bad_column("a,text\n1,x,y\n", "text", "t.csv:2: -: 3 fields, the header has 2");
	bad_column("a,text\n1,x\n2,\"open\nand on\n", "text", "t.csv:3: -: a quoted field is not closed");
	bad_column("a,text\n1,\"x\"y\n2,z\n", "text",
	    "t.csv:2: -: a quoted field must end at a delimiter or the end of the line");
	bad_column("a,\"te\"xt\"\n", "text",
	    "t.csv:1: -: a quoted field must end at a delimiter or the end of the line");
	bad_column("a,text\n1,\n", "text", "t.csv:2: text: empty");
	bad_column("a,text\n1,\"\"\n", "text", "t.csv:2: text: empty");
	bad_column("a,text\n", "text", "t.csv:1: -: no records after the header");
	bad_column("a,text\n1,ok\n2,\xff\n", "text", "t.csv:3: -: invalid UTF-8 (byte 0xff at column 3)");

	/* A bad record among good ones is skipped with --skip-invalid. */
	{
		struct dataset_options opt = { .kind = DATASET_KIND_TEXT, .text_column = "text",
			.skip_invalid = 1 };
		const char *d = "a,text\n1,x\n2\n3,y\n";

		CHECK(dataset_parse("t.csv", d, strlen(d), &opt, &ds, &rep, err, sizeof(err)) == 0);
		CHECK(ds != NULL && dataset_count(ds) == 2 && rep->invalid == 1);
		dataset_report_free(rep);
		dataset_free(ds);
	}
}

static struct dataset *
parse_asset(const char *rel, enum dataset_kind kind, struct dataset_report **rep)
{
	struct dataset_options opt = { .kind = kind, .max_issues = 1000 };
	struct dataset *ds = NULL;

	if (dataset_parse_file(ft_test_asset(rel), NULL, &opt, &ds, rep, err, sizeof(err)) != 0 &&
	    strstr(rel, "seed_tasks") == NULL)
		fprintf(stderr, "%s: %s\n", rel, err);
	return ds;
}

static void
test_assets(void)
{
	struct dataset_report *rep;
	struct dataset *ds, *t, *v;
	struct dataset_stats st;
	char hex[65], *text;

	/* alpaca_en_demo.json: 999 records, 14 exact duplicates (Python). */
	ds = parse_asset("datasets/alpaca_en_demo.json", DATASET_KIND_INSTRUCT, &rep);
	CHECK(ds != NULL);
	CHECK(rep->records == 999 && rep->valid == 999 && rep->invalid == 0 && rep->errors == 0);
	CHECK(rep->warnings == 14 && rep->n_issues == 14);
	CHECK(rep->issues[0].line == 1377);
	CHECK_STR(rep->issues[0].problem, "duplicate of the record on line 587");
	CHECK(dataset_report_format(rep, &text) == 0);
	CHECK(strstr(text, "warning: alpaca_en_demo.json:2542: -: duplicate of the record on line 1992\n") != NULL);
	CHECK(strstr(text, "\nalpaca_en_demo.json: 999 records, 999 valid, 0 invalid, 14 warnings\n") != NULL);
	free(text);
	dataset_report_free(rep);
	if (ds != NULL) {
		CHECK(dataset_sample(ds, 0)->line == 2 && dataset_sample(ds, 2)->line == 12);
		dataset_hash(ds, hex);
		CHECK_STR(hex, "b9c4312b4d559f61d5ee042fb0d83363aa24813916379ddbeaf6c3a990b8d6d3");
		dataset_stats_compute(ds, &st);
		CHECK(st.records == 999 && st.bytes == 787104 && st.min_bytes == 38 && st.max_bytes == 2921);
		roundtrip(ds);
		CHECK(dataset_split(ds, 0.1, 1, &t, &v, err, sizeof(err)) == 0);
		CHECK(dataset_count(t) == 899 && dataset_count(v) == 100);
		dataset_free(t);
		dataset_free(v);
		dataset_free(ds);
	}

	ds = parse_asset("datasets/identity.json", DATASET_KIND_INSTRUCT, &rep);
	CHECK(ds != NULL && rep->valid == 91 && rep->warnings == 0);
	if (ds != NULL) {
		dataset_hash(ds, hex);
		CHECK_STR(hex, "0fc68efbe6b13a7546950a743a12b9c050e96e7b64453ad5320a31720ce494b7");
	}
	dataset_report_free(rep);
	dataset_free(ds);

	/* seed_tasks.jsonl keeps outputs under "instances": not instruction
	 * data as it stands. */
	ds = parse_asset("datasets/seed_tasks.jsonl", DATASET_KIND_INSTRUCT, &rep);
	CHECK(ds == NULL);
	CHECK(rep->records == 175 && rep->invalid == 175 && rep->errors == 175);
	CHECK(rep->warnings == 4 * 175);       /* id, name, instances, is_classification */
	CHECK(rep->issues[0].line == 1 && !rep->issues[0].warning);
	CHECK_STR(rep->issues[0].field, "output");
	CHECK_STR(rep->issues[0].problem, "missing");
	CHECK_STR(rep->issues[1].field, "id");
	CHECK_STR(err, "seed_tasks.jsonl:1: output: missing (175 errors)");
	dataset_report_free(rep);

	/* tinyshakespeare: 7222 blank-line-separated speeches, 74 repeats. */
	ds = parse_asset("corpora/tinyshakespeare/input.txt", DATASET_KIND_TEXT, &rep);
	CHECK(ds != NULL && rep->valid == 7222 && rep->warnings == 74);
	CHECK(rep->issues[0].line == 5215);
	CHECK_STR(rep->issues[0].problem, "duplicate of the record on line 4161");
	dataset_report_free(rep);
	if (ds != NULL) {
		dataset_stats_compute(ds, &st);
		CHECK(st.bytes == 1100949 && st.min_bytes == 4 && st.max_bytes == 3080);
		CHECK_STR(dataset_sample(ds, 0)->text,
		    "First Citizen:\nBefore we proceed any further, hear me speak.");
		roundtrip(ds);
	}
	dataset_free(ds);

	/* wiki_demo.txt: one article per line, no blank lines. */
	ds = parse_asset("corpora/llamafactory/wiki_demo.txt", DATASET_KIND_TEXT, &rep);
	CHECK(ds != NULL && rep->valid == 30 && rep->warnings == 0);
	if (ds != NULL) {
		dataset_hash(ds, hex);
		CHECK_STR(hex, "111b10bf54c6fec6bff87a6a7b61889f03dcbe9e051d1566865ba365eb3dd5d0");
		dataset_stats_compute(ds, &st);
		CHECK(st.bytes == 1028296 && st.min_bytes == 1007 && st.max_bytes == 109856);
	}
	dataset_report_free(rep);
	dataset_free(ds);

	/* The other real corpora are text, not CSV; real instruction files given
	 * as text are refused, naming --kind instruct. */
	for (size_t i = 0; i < 3; i++) {
		static const char *const prose[] = {
			"corpora/sotu/sotu.txt", "corpora/rfc/rfc2616.txt", "tokenizers/gpt2/vocab.bpe",
		};

		ds = parse_asset(prose[i], DATASET_KIND_TEXT, &rep);
		CHECK(ds != NULL && rep->errors == 0 && dataset_count(ds) > 100);
		dataset_report_free(rep);
		dataset_free(ds);
	}
	ds = parse_asset("datasets/alpaca_en_demo.json", DATASET_KIND_TEXT, &rep);
	CHECK(ds == NULL && rep->errors == 1);
	CHECK_STR(err, "alpaca_en_demo.json:1: -: looks like a JSON array of records: use --kind "
	    "instruct, or JSONL with one {\"text\": ...} a line (1 error)");
	dataset_report_free(rep);
	ds = parse_asset("datasets/seed_tasks.jsonl", DATASET_KIND_TEXT, &rep);
	CHECK(ds == NULL && rep->errors == 175);
	CHECK_STR(err, "seed_tasks.jsonl:1: text: missing: an instruction record, use --kind "
	    "instruct (175 errors)");
	dataset_report_free(rep);

	ds = parse_asset("corpora/llamafactory/c4_demo.jsonl", DATASET_KIND_TEXT, &rep);
	CHECK(ds != NULL && rep->valid == 300 && rep->warnings == 0);
	if (ds != NULL) {
		dataset_hash(ds, hex);
		CHECK_STR(hex, "01ed61ae4f84937e8366d0fe5f3b464e7a095488601802bd6e8e7c24dad320f7");
	}
	dataset_report_free(rep);
	dataset_free(ds);
}

int
main(void)
{
	enum dataset_kind k;

	CHECK(dataset_kind_parse("text", &k) == 0 && k == DATASET_KIND_TEXT);
	CHECK(dataset_kind_parse("instruct", &k) == 0 && k == DATASET_KIND_INSTRUCT);
	CHECK(dataset_kind_parse("chat", &k) == -1);
	CHECK_STR(dataset_kind_name(DATASET_KIND_TEXT), "text");
	test_bad_inputs();
	test_warnings_and_report();
	test_conversations();
	test_text();
	test_canonical();
	test_split();
	test_stats();
	test_csv();
	test_assets();
	return ft_test_done();
}
