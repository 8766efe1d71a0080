/*
 * dataset.c - dataset parsing and validation; dataset.h describes formats.
 *
 * One pass over the bytes: each record is delimited (a JSONL line, a JSON
 * array element found by a bracket scanner, or a text document), its raw
 * bytes are checked for UTF-8, it is parsed with jansson and its fields are
 * checked.  A valid record is copied into one allocation; a hash table of
 * record contents finds duplicates.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "dataset.h"
#include "rng.h"

struct dataset {
	enum dataset_kind kind;
	struct dataset_record *rec;
	size_t n, cap;
};

/* Record contents as borrowed (pointer, length) pairs: instruction, input,
 * output, system and the canonical conversation ("" for a one-turn record)
 * for instruct records; text alone for text records. */
#define FIELDS_MAX 5
#define FIELD_CHAT 4

struct dup_slot {
	uint64_t hash;
	size_t index;           /* record index + 1; 0 = empty slot */
};

struct parser {
	const char *buf;
	size_t len;
	struct dataset_options opt;
	struct dataset *ds;
	struct dataset_report *rep;
	size_t issue_cap;
	struct dup_slot *dup;   /* open addressing, power-of-two size */
	size_t dup_cap;
	size_t lpos, lline;     /* line cursor: byte lpos is on line lline */
	int bad;                /* the current record has an error */
	int stop;               /* the record limit was reached */
	int oom;
	char *scratch;          /* a CSV field without its quoting */
	size_t scratch_cap;
};

static const char *const instruct_keys[FIELDS_MAX] = {
	"instruction", "input", "output", "system", "messages",
};

const char *
dataset_kind_name(enum dataset_kind kind)
{
	return kind == DATASET_KIND_TEXT ? "text" : "instruct";
}

int
dataset_kind_parse(const char *word, enum dataset_kind *kind)
{
	if (strcmp(word, "instruct") == 0)
		*kind = DATASET_KIND_INSTRUCT;
	else if (strcmp(word, "text") == 0)
		*kind = DATASET_KIND_TEXT;
	else
		return -1;
	return 0;
}

static size_t
kind_fields(enum dataset_kind kind)
{
	return kind == DATASET_KIND_TEXT ? 1 : FIELDS_MAX;
}

static const char *
record_field(const struct dataset_record *r, enum dataset_kind kind, size_t i)
{
	const char *f[FIELDS_MAX] = { r->instruction, r->input, r->output, r->system,
	    r->chat ? r->chat : "" };

	return kind == DATASET_KIND_TEXT ? r->text : f[i];
}

/* utf8_check returns the offset of the first byte that does not start a
 * valid, shortest-form UTF-8 sequence of a scalar value (or is NUL, which
 * the records' C strings cannot hold), or len when all are good. */
static size_t
utf8_check(const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0;

	while (i < len) {
		unsigned c = s[i];
		uint32_t cp, min;
		size_t n;

		if (c == 0)
			return i;
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			n = 1, cp = c & 0x1f, min = 0x80;
		else if ((c & 0xf0) == 0xe0)
			n = 2, cp = c & 0x0f, min = 0x800;
		else if (c >= 0xf0 && c <= 0xf4)
			n = 3, cp = c & 0x07, min = 0x10000;
		else
			return i;
		if (len - i <= n)
			return i;
		for (size_t k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return i;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return i;
		i += n + 1;
	}
	return len;
}

/* text_clean makes a message safe to print: control bytes become '?' and a
 * UTF-8 sequence cut by truncation is dropped. */
static void
text_clean(char *s)
{
	size_t n = strlen(s);

	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			s[i] = '?';
	s[utf8_check(s, n)] = '\0';
}

/* line_at returns the 1-based line of byte pos, moving a cursor forward so
 * that a whole parse counts each newline once. */
static size_t
line_at(struct parser *p, size_t pos)
{
	if (pos < p->lpos)
		p->lpos = 0, p->lline = 1;
	for (const char *q = p->buf + p->lpos, *end = p->buf + pos;
	    (q = memchr(q, '\n', (size_t)(end - q))) != NULL; q++)
		p->lline++;
	p->lpos = pos;
	return p->lline;
}

static void __attribute__((format(printf, 5, 6)))
issue_add(struct parser *p, size_t line, int warning, const char *field,
    const char *fmt, ...)
{
	struct dataset_report *r = p->rep;
	struct dataset_issue *is;
	va_list ap;

	if (warning) {
		r->warnings++;
	} else {
		r->errors++;
		p->bad = 1;
	}
	if (r->n_issues >= p->opt.max_issues)
		return;
	/* Grow by doubling: a large cap costs nothing unless used. */
	if (r->n_issues == p->issue_cap) {
		size_t cap = p->issue_cap ? 2 * p->issue_cap : 8;
		struct dataset_issue *v = realloc(r->issues, cap * sizeof(*v));

		if (v == NULL) {
			p->oom = 1;
			return;
		}
		r->issues = v;
		p->issue_cap = cap;
	}
	is = &r->issues[r->n_issues++];
	is->line = line;
	is->warning = warning;
	snprintf(is->field, sizeof(is->field), "%s", field);
	va_start(ap, fmt);
	vsnprintf(is->problem, sizeof(is->problem), fmt, ap);
	va_end(ap);
	text_clean(is->field);
	text_clean(is->problem);
}

static const char *
json_type_name(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "object";
	case JSON_ARRAY: return "array";
	case JSON_STRING: return "string";
	case JSON_INTEGER: case JSON_REAL: return "number";
	case JSON_TRUE: case JSON_FALSE: return "boolean";
	default: return "null";
	}
}

static uint64_t
content_hash(const char *const *f, const size_t *fl, size_t nf)
{
	uint64_t h = 0xcbf29ce484222325ULL;     /* FNV-1a, fields NUL-separated */

	for (size_t i = 0; i < nf; i++)
		for (size_t k = 0; k <= fl[i]; k++) {
			h ^= k < fl[i] ? (unsigned char)f[i][k] : 0;
			h *= 0x100000001b3ULL;
		}
	return h;
}

static int
content_equal(const struct dataset_record *r, enum dataset_kind kind,
    const char *const *f, const size_t *fl)
{
	for (size_t i = 0; i < kind_fields(kind); i++) {
		const char *s = record_field(r, kind, i);

		if (strncmp(s, f[i], fl[i]) != 0 || s[fl[i]] != '\0')
			return 0;
	}
	return 1;
}

/* dup_find returns the index + 1 of an earlier record with this content, or
 * 0 after remembering index as its first occurrence. */
static size_t
dup_find(struct parser *p, uint64_t h, const char *const *f, const size_t *fl,
    size_t index)
{
	size_t i;

	if (2 * (p->ds->n + 1) > p->dup_cap) {
		size_t cap = p->dup_cap ? 2 * p->dup_cap : 1024;
		struct dup_slot *t = calloc(cap, sizeof(*t));

		if (t == NULL) {
			p->oom = p->stop = 1;
			return 0;
		}
		for (size_t k = 0; k < p->dup_cap; k++) {
			if (p->dup[k].index == 0)
				continue;
			for (i = p->dup[k].hash & (cap - 1); t[i].index; i = (i + 1) & (cap - 1))
				;
			t[i] = p->dup[k];
		}
		free(p->dup);
		p->dup = t;
		p->dup_cap = cap;
	}
	for (i = h & (p->dup_cap - 1); p->dup[i].index; i = (i + 1) & (p->dup_cap - 1))
		if (p->dup[i].hash == h && content_equal(&p->ds->rec[p->dup[i].index - 1],
		    p->ds->kind, f, fl))
			return p->dup[i].index;
	p->dup[i].hash = h;
	p->dup[i].index = index + 1;
	return 0;
}

/* fields_bytes is a record's content length: a conversation's canonical
 * JSON, or the sum of the other fields. */
static size_t
fields_bytes(enum dataset_kind kind, const size_t *fl)
{
	size_t bytes = 0;

	if (kind == DATASET_KIND_INSTRUCT && fl[FIELD_CHAT] > 0)
		return fl[FIELD_CHAT];
	for (size_t i = 0; i < kind_fields(kind) && i < FIELD_CHAT; i++)
		bytes += fl[i];
	return bytes;
}

/* record_fill copies the fields into one block that r's strings point into. */
static int
record_fill(struct dataset_record *r, enum dataset_kind kind,
    const char *const *f, const size_t *fl, size_t line)
{
	char **dst[FIELDS_MAX] = { &r->instruction, &r->input, &r->output, &r->system, &r->chat };
	size_t nf = kind_fields(kind), total = 0;
	char *m;

	for (size_t i = 0; i < nf; i++)
		total += fl[i] + 1;
	if ((m = malloc(total)) == NULL)
		return -1;
	memset(r, 0, sizeof(*r));
	for (size_t i = 0; i < nf; i++) {
		memcpy(m, f[i], fl[i]);
		m[fl[i]] = '\0';
		*(kind == DATASET_KIND_TEXT ? &r->text : dst[i]) = m;
		m += fl[i] + 1;
	}
	if (kind == DATASET_KIND_INSTRUCT && fl[FIELD_CHAT] == 0)
		r->chat = NULL;
	r->bytes = fields_bytes(kind, fl);
	r->line = line;
	return 0;
}

/* record_block is the allocation a record's strings live in. */
static void *
record_block(struct dataset_record *r)
{
	return r->text ? r->text : r->instruction;
}

int
dataset_append(struct dataset *ds, const char *const *f, const size_t *fl,
    size_t line)
{
	if (ds->n == ds->cap) {
		size_t cap = ds->cap ? 2 * ds->cap : 64;
		struct dataset_record *v = realloc(ds->rec, cap * sizeof(*v));

		if (v == NULL)
			return -1;
		ds->rec = v;
		ds->cap = cap;
	}
	if (record_fill(&ds->rec[ds->n], ds->kind, f, fl, line) != 0)
		return -1;
	ds->n++;
	return 0;
}

struct dataset *
dataset_new(enum dataset_kind kind)
{
	struct dataset *ds = calloc(1, sizeof(*ds));

	if (ds != NULL)
		ds->kind = kind;
	return ds;
}

void
dataset_free(struct dataset *ds)
{
	if (ds == NULL)
		return;
	for (size_t i = 0; i < ds->n; i++)
		free(record_block(&ds->rec[i]));
	free(ds->rec);
	free(ds);
}

enum dataset_kind
dataset_kind(const struct dataset *ds)
{
	return ds->kind;
}

size_t
dataset_count(const struct dataset *ds)
{
	return ds->n;
}

const struct dataset_record *
dataset_sample(const struct dataset *ds, size_t i)
{
	return i < ds->n ? &ds->rec[i] : NULL;
}

/* record_begin starts a record; it returns -1 when parsing must stop (the
 * record limit is reached or memory ran out). */
static int
record_begin(struct parser *p, size_t line)
{
	p->bad = 0;
	if (p->stop)
		return -1;
	if (p->rep->records == DATASET_MAX_RECORDS) {
		issue_add(p, line, 0, "-", "more than %d records", DATASET_MAX_RECORDS);
		p->stop = 1;
		return -1;
	}
	p->rep->records++;
	return 0;
}

/* record_finish checks the record's length and duplicates and keeps it, or
 * counts it invalid when an error was reported for it. */
static void
record_finish(struct parser *p, size_t line, const char *const *f,
    const size_t *fl)
{
	size_t nf = kind_fields(p->ds->kind), bytes, first;

	if (!p->bad) {
		bytes = fields_bytes(p->ds->kind, fl);
		if (p->opt.max_bytes && bytes > p->opt.max_bytes)
			issue_add(p, line, 0, "-", "record is %zu bytes, over the limit of %zu",
			    bytes, p->opt.max_bytes);
	}
	if (p->bad) {
		p->rep->invalid++;
		return;
	}
	first = dup_find(p, content_hash(f, fl, nf), f, fl, p->ds->n);
	if (first) {
		issue_add(p, line, 1, "-", "duplicate of the record on line %zu",
		    p->ds->rec[first - 1].line);
	}
	if (dataset_append(p->ds, f, fl, line) != 0) {
		p->oom = 1;
		p->stop = 1;
		return;
	}
	p->rep->valid++;
}

/* string_field reads key from object o into *s, *len ("" when absent).
 * required: absence and emptiness are errors. */
static void
string_field(struct parser *p, json_t *o, size_t line, const char *key,
    int required, const char **s, size_t *len)
{
	json_t *v = json_object_get(o, key);

	if (v == NULL) {
		if (required)
			issue_add(p, line, 0, key, "missing");
		return;
	}
	if (!json_is_string(v)) {
		issue_add(p, line, 0, key, "not a string (%s)", json_type_name(v));
		return;
	}
	if (required && json_string_length(v) == 0)
		issue_add(p, line, 0, key, "empty");
	*s = json_string_value(v);
	*len = json_string_length(v);
}

static void
unknown_fields(struct parser *p, json_t *o, size_t line, const char *prefix,
    const char *const *known, size_t n_known)
{
	const char *key;
	char field[64];
	json_t *v;

	json_object_foreach(o, key, v) {
		size_t i = 0;

		while (i < n_known && strcmp(key, known[i]) != 0)
			i++;
		if (i == n_known) {
			snprintf(field, sizeof(field), "%s%s", prefix, key);
			issue_add(p, line, 1, field, "unknown field, ignored");
		}
	}
}

/*
 * Conversations.  Every chat source (OpenAI messages, ShareGPT
 * conversations, Alpaca history) becomes one canonical message list: each
 * message {"role", "content" (a string), "name"?, "tool_calls"?,
 * "tool_call_id"?, "weight": 0?} (weight 1 is the default and is left out),
 * so equal conversations give equal bytes.  A conversation of one user
 * message and its answer, with an optional system message first and
 * nothing else, is stored as an instruction record instead: the form
 * instruct datasets always had, which keeps their hashes.
 */

/* The names one source gives a message's parts, for its issues. */
struct conv_src {
	const char *list;       /* "messages", "conversations", "history" */
	const char *role;       /* "role", "from" */
	const char *content;    /* "content", "value" */
};

static const struct conv_src conv_openai = { "messages", "role", "content" };
static const struct conv_src conv_sharegpt = { "conversations", "from", "value" };

/* ShareGPT's speakers and the roles they are. */
static const struct {
	const char *from, *role;
} sharegpt_roles[] = {
	{ "human", "user" }, { "user", "user" }, { "gpt", "assistant" },
	{ "assistant", "assistant" }, { "system", "system" }, { "tool", "tool" },
};

/* msg_content reads content v (a string, or an array of text parts that
 * are joined) into a new string; NULL after an issue. */
static json_t *
msg_content(struct parser *p, size_t line, const char *field, json_t *v)
{
	json_t *s, *part;
	size_t i;
	char f[64];

	if (json_is_string(v))
		return json_string(json_string_value(v));
	if (!json_is_array(v)) {
		issue_add(p, line, 0, field, "not a string or an array of text parts (%s)",
		    json_type_name(v));
		return NULL;
	}
	s = json_string("");
	json_array_foreach(v, i, part) {
		json_t *type = json_object_get(part, "type"), *text = json_object_get(part, "text");
		char *joined;

		snprintf(f, sizeof(f), "%s[%zu]", field, i);
		if (!json_is_object(part) || !json_is_string(type) ||
		    strcmp(json_string_value(type), "text") != 0 || !json_is_string(text)) {
			issue_add(p, line, 0, f, "not a text part {\"type\": \"text\", \"text\": ...}");
			json_decref(s);
			return NULL;
		}
		if (asprintf(&joined, "%s%s", json_string_value(s), json_string_value(text)) < 0) {
			p->oom = p->stop = 1;
			json_decref(s);
			return NULL;
		}
		json_string_set(s, joined);
		free(joined);
	}
	return s;
}

/* tool_calls_check checks an assistant's tool_calls: an array of
 * {"type": "function", "function": {"name": string, "arguments": ...}}. */
static void
tool_calls_check(struct parser *p, size_t line, const char *prefix, json_t *v)
{
	json_t *c;
	size_t i;
	char f[64];

	snprintf(f, sizeof(f), "%stool_calls", prefix);
	if (!json_is_array(v)) {
		issue_add(p, line, 0, f, "not an array (%s)", json_type_name(v));
		return;
	}
	json_array_foreach(v, i, c) {
		json_t *fn = json_object_get(c, "function");

		snprintf(f, sizeof(f), "%stool_calls[%zu]", prefix, i);
		if (!json_is_object(c))
			issue_add(p, line, 0, f, "not an object (%s)", json_type_name(c));
		else if (!json_is_string(json_object_get(fn, "name")))
			issue_add(p, line, 0, f, "function.name: missing or not a string");
		else if (json_object_get(fn, "arguments") == NULL)
			issue_add(p, line, 0, f, "function.arguments: missing");
	}
}

/* msg_add checks message i of a source and appends its canonical form to
 * out.  role is the message's role (already mapped for ShareGPT). */
static void
msg_add(struct parser *p, size_t line, const struct conv_src *src, size_t i, json_t *m,
    const char *role, json_t *out)
{
	static const char *const extra[] = { "name", "tool_calls", "tool_call_id", "weight" };
	json_t *c = json_object(), *content = json_object_get(m, src->content), *v;
	int assistant = strcmp(role, "assistant") == 0, tool = strcmp(role, "tool") == 0;
	char prefix[48], f[64];

	snprintf(prefix, sizeof(prefix), "%s[%zu].", src->list, i);
	json_object_set_new(c, "role", json_string(role));
	snprintf(f, sizeof(f), "%s%s", prefix, src->content);
	if ((content == NULL || json_is_null(content)) && assistant &&
	    json_object_get(m, "tool_calls") != NULL) {
		json_object_set_new(c, "content", json_string(""));
	} else if (content == NULL) {
		issue_add(p, line, 0, f, "missing");
	} else if ((v = msg_content(p, line, f, content)) != NULL) {
		if (json_string_length(v) == 0 && strcmp(role, "system") != 0 &&
		    !(assistant && json_object_get(m, "tool_calls") != NULL))
			issue_add(p, line, 0, f, "empty");
		json_object_set_new(c, "content", v);
	}
	for (size_t k = 0; k < sizeof(extra) / sizeof(extra[0]); k++) {
		if ((v = json_object_get(m, extra[k])) == NULL)
			continue;
		snprintf(f, sizeof(f), "%s%s", prefix, extra[k]);
		if (k == 0 && !json_is_string(v)) {
			issue_add(p, line, 0, f, "not a string (%s)", json_type_name(v));
		} else if (k == 1 && !assistant) {
			issue_add(p, line, 0, f, "only an assistant message makes tool calls");
		} else if (k == 1) {
			tool_calls_check(p, line, prefix, v);
			json_object_set(c, extra[k], v);
			continue;
		} else if (k == 2 && (!tool || !json_is_string(v))) {
			issue_add(p, line, 0, f, tool ? "not a string (%s)" : "only a tool message has one%.0s",
			    json_type_name(v));
		} else if (k == 3 && (!assistant || !json_is_integer(v) ||
		    (json_integer_value(v) != 0 && json_integer_value(v) != 1))) {
			issue_add(p, line, 0, f, assistant ? "must be 0 or 1" :
			    "only an assistant message has a weight");
		} else if (k == 3 && json_integer_value(v) == 1) {
			continue;       /* the default */
		}
		if (!p->bad)
			json_object_set(c, extra[k], v);
	}
	json_array_append_new(out, c);
}

/* conv_finish checks the shape of a canonical conversation (msgs, of which
 * the first shift were not in the source's list; tools or NULL) and fills the record's fields: an instruction record when
 * it is one plain turn, else the conversation's JSON in *chat (malloc'd,
 * f[FIELD_CHAT] points to it) and its last exchange in the other fields. */
static void
conv_finish(struct parser *p, size_t line, const char *list, size_t shift, json_t *msgs,
    json_t *tools, const char **f, size_t *fl, char **chat)
{
	size_t n = json_array_size(msgs), user = SIZE_MAX, weighted = 0, plain = tools == NULL;
	json_t *m;
	size_t i;
	char field[64];

#define ROLE(m) json_string_value(json_object_get((m), "role"))
	json_array_foreach(msgs, i, m) {
		if (strcmp(ROLE(m), "system") == 0 && i > 0) {
			snprintf(field, sizeof(field), "%s[%zu]", list, i - shift);
			issue_add(p, line, 0, field, "a system message must come first");
		}
		if (strcmp(ROLE(m), "assistant") == 0 && json_object_get(m, "weight") == NULL)
			weighted++;
		if (json_object_size(m) != 2)
			plain = 0;
	}
	if (p->bad)
		return;
	if (strcmp(ROLE(json_array_get(msgs, n - 1)), "assistant") != 0) {
		issue_add(p, line, 0, list, "the last message must be from the assistant");
		return;
	}
	for (i = n - 1; i-- > 0;)
		if (strcmp(ROLE(json_array_get(msgs, i)), "user") == 0) {
			user = i;
			break;
		}
	if (user == SIZE_MAX) {
		issue_add(p, line, 0, list, "no user message");
		return;
	}
	if (weighted == 0) {
		issue_add(p, line, 0, list, "every assistant message has weight 0: nothing to train on");
		return;
	}
#define CONTENT(k) json_object_get(json_array_get(msgs, (k)), "content")
	f[0] = json_string_value(CONTENT(user));
	fl[0] = json_string_length(CONTENT(user));
	f[2] = json_string_value(CONTENT(n - 1));
	fl[2] = json_string_length(CONTENT(n - 1));
	if (strcmp(ROLE(json_array_get(msgs, 0)), "system") == 0) {
		f[3] = json_string_value(CONTENT(0));
		fl[3] = json_string_length(CONTENT(0));
	}
#undef CONTENT
#undef ROLE
	if (plain && n == user + 2 && user == (f[3] != NULL && *f[3] ? 1u : 0u) &&
	    (user == 0 || n == 3))
		return;         /* one plain turn: an instruction record */
	{
		json_t *conv = json_pack("{s:O}", "messages", msgs);

		if (conv != NULL && tools != NULL)
			json_object_set(conv, "tools", tools);
		*chat = conv ? json_dumps(conv, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
		json_decref(conv);
	}
	if (*chat == NULL) {
		p->oom = p->stop = 1;
		return;
	}
	f[FIELD_CHAT] = *chat;
	fl[FIELD_CHAT] = strlen(*chat);
}

/* conv_list reads the message list of an OpenAI (messages) or ShareGPT
 * (conversations) record into out. */
static void
conv_list(struct parser *p, json_t *o, size_t line, const struct conv_src *src, json_t *out)
{
	static const char *const openai_keys[] = {
		"role", "content", "name", "tool_calls", "tool_call_id", "weight",
	};
	static const char *const sharegpt_keys[] = { "from", "value", "name", "tool_calls",
		"tool_call_id", "weight" };
	json_t *msgs = json_object_get(o, src->list), *m;
	size_t i;
	char field[64];

	if (!json_is_array(msgs)) {
		issue_add(p, line, 0, src->list, "not an array (%s)", json_type_name(msgs));
		return;
	}
	if (json_array_size(msgs) == 0) {
		issue_add(p, line, 0, src->list, "empty");
		return;
	}
	json_array_foreach(msgs, i, m) {
		json_t *role;
		const char *r = NULL;

		snprintf(field, sizeof(field), "%s[%zu]", src->list, i);
		if (!json_is_object(m)) {
			issue_add(p, line, 0, field, "not an object (%s)", json_type_name(m));
			continue;
		}
		role = json_object_get(m, src->role);
		snprintf(field, sizeof(field), "%s[%zu].%s", src->list, i, src->role);
		if (role == NULL) {
			issue_add(p, line, 0, field, "missing");
		} else if (!json_is_string(role)) {
			issue_add(p, line, 0, field, "not a string (%s)", json_type_name(role));
		} else if (src == &conv_sharegpt) {
			for (size_t k = 0; k < sizeof(sharegpt_roles) / sizeof(sharegpt_roles[0]); k++)
				if (strcmp(json_string_value(role), sharegpt_roles[k].from) == 0)
					r = sharegpt_roles[k].role;
			if (r == NULL)
				issue_add(p, line, 0, field, "unknown speaker \"%.40s\" (expected human, "
				    "gpt, system, tool, user or assistant)", json_string_value(role));
		} else {
			r = json_string_value(role);
			if (strcmp(r, "system") != 0 && strcmp(r, "user") != 0 &&
			    strcmp(r, "assistant") != 0 && strcmp(r, "tool") != 0) {
				issue_add(p, line, 0, field, "unknown role \"%.40s\" (expected system, "
				    "user, assistant or tool)", r);
				r = NULL;
			}
		}
		if (r != NULL)
			msg_add(p, line, src, i, m, r, out);
		snprintf(field, sizeof(field), "%s[%zu].", src->list, i);
		unknown_fields(p, m, line, field, src == &conv_sharegpt ? sharegpt_keys : openai_keys, 6);
	}
}

/* conv_tools checks a record's "tools": an array of objects, kept as is. */
static json_t *
conv_tools(struct parser *p, json_t *o, size_t line)
{
	json_t *tools = json_object_get(o, "tools"), *t;
	size_t i;
	char field[64];

	if (tools == NULL || (json_is_array(tools) && json_array_size(tools) == 0))
		return NULL;
	if (!json_is_array(tools)) {
		issue_add(p, line, 0, "tools", "not an array (%s)", json_type_name(tools));
		return NULL;
	}
	json_array_foreach(tools, i, t)
		if (!json_is_object(t)) {
			snprintf(field, sizeof(field), "tools[%zu]", i);
			issue_add(p, line, 0, field, "not an object (%s)", json_type_name(t));
		}
	return tools;
}

/* alpaca_history turns an instruction record with a non-empty "history"
 * ([[user, assistant], ...] before it) into a conversation in out. */
static void
alpaca_history(struct parser *p, json_t *o, size_t line, const char *const *f,
    const size_t *fl, json_t *out)
{
	json_t *h = json_object_get(o, "history"), *pair;
	size_t i;
	char field[64], *user;

	if (fl[3] > 0)
		json_array_append_new(out, json_pack("{s:s,s:s%}", "role", "system", "content", f[3], fl[3]));
	json_array_foreach(h, i, pair) {
		snprintf(field, sizeof(field), "history[%zu]", i);
		if (!json_is_array(pair) || json_array_size(pair) != 2 ||
		    !json_is_string(json_array_get(pair, 0)) || !json_is_string(json_array_get(pair, 1))) {
			issue_add(p, line, 0, field, "not a [user, assistant] pair of strings");
			continue;
		}
		if (json_string_length(json_array_get(pair, 0)) == 0 ||
		    json_string_length(json_array_get(pair, 1)) == 0)
			issue_add(p, line, 0, field, "empty");
		json_array_append_new(out, json_pack("{s:s,s:O}", "role", "user", "content",
		    json_array_get(pair, 0)));
		json_array_append_new(out, json_pack("{s:s,s:O}", "role", "assistant", "content",
		    json_array_get(pair, 1)));
	}
	/* The turn itself, its input after a blank line as the chat
	 * rendering of an instruction record has it. */
	if (asprintf(&user, "%.*s%s%.*s", (int)fl[0], f[0], fl[1] ? "\n\n" : "", (int)fl[1],
	    f[1]) < 0) {
		p->oom = p->stop = 1;
		return;
	}
	json_array_append_new(out, json_pack("{s:s,s:s}", "role", "user", "content", user));
	json_array_append_new(out, json_pack("{s:s,s:s%}", "role", "assistant", "content", f[2], fl[2]));
	free(user);
}

/* record_object checks one parsed record and finishes it. */
static void
record_object(struct parser *p, json_t *o, size_t line)
{
	static const char *const text_keys[] = { "text" };
	static const char *const openai_keys[] = { "messages", "tools" };
	static const char *const sharegpt_keys[] = { "conversations", "system", "tools" };
	static const char *const alpaca_keys[] = { "instruction", "input", "output", "system",
		"history" };
	static const char *const pc_keys[] = { "prompt", "completion" };
	const char *f[FIELDS_MAX] = { "", "", "", "", "" };
	size_t fl[FIELDS_MAX] = { 0, 0, 0, 0, 0 };
	json_t *msgs = NULL;
	char *chat = NULL;
	size_t shift = 0;

#define HAS(k) (json_object_get(o, (k)) != NULL)
	if (p->ds->kind == DATASET_KIND_TEXT && !HAS("text") &&
	    (HAS("instruction") || HAS("messages") || HAS("conversations") || HAS("prompt"))) {
		issue_add(p, line, 0, "text", "missing: an instruction record, use --kind instruct");
	} else if (p->ds->kind == DATASET_KIND_TEXT) {
		string_field(p, o, line, "text", 1, &f[0], &fl[0]);
		unknown_fields(p, o, line, "", text_keys, 1);
	} else if (HAS("text") && !HAS("instruction") && !HAS("messages") &&
	    !HAS("conversations") && !HAS("prompt")) {
		issue_add(p, line, 0, "instruction", "missing: a text record, use --kind text");
	} else if (HAS("messages") || HAS("conversations")) {
		const struct conv_src *src = HAS("messages") ? &conv_openai : &conv_sharegpt;
		json_t *tools = conv_tools(p, o, line);

		msgs = json_array();
		if (src == &conv_sharegpt && HAS("system")) {
			string_field(p, o, line, "system", 0, &f[3], &fl[3]);
			if (fl[3] > 0) {
				json_array_append_new(msgs, json_pack("{s:s,s:s%}", "role", "system",
				    "content", f[3], fl[3]));
				shift = 1;
			}
		}
		conv_list(p, o, line, src, msgs);
		unknown_fields(p, o, line, "", src == &conv_openai ? openai_keys : sharegpt_keys,
		    src == &conv_openai ? 2 : 3);
		if (!p->bad)
			conv_finish(p, line, src->list, shift, msgs, tools, f, fl, &chat);
	} else if (HAS("prompt") && !HAS("instruction")) {
		/* prompt/completion: the prompt is the user's turn */
		string_field(p, o, line, "prompt", 1, &f[0], &fl[0]);
		string_field(p, o, line, "completion", 1, &f[2], &fl[2]);
		unknown_fields(p, o, line, "", pc_keys, 2);
	} else {
		for (size_t i = 0; i < FIELD_CHAT; i++)
			string_field(p, o, line, instruct_keys[i], i == 0 || i == 2, &f[i], &fl[i]);
		unknown_fields(p, o, line, "", alpaca_keys, 5);
		if (HAS("history") && !json_is_array(json_object_get(o, "history"))) {
			issue_add(p, line, 0, "history", "not an array (%s)",
			    json_type_name(json_object_get(o, "history")));
		} else if (HAS("history") && json_array_size(json_object_get(o, "history")) > 0 &&
		    !p->bad) {
			msgs = json_array();
			alpaca_history(p, o, line, f, fl, msgs);
			if (!p->bad) {
				f[1] = "";
				fl[1] = 0;
				conv_finish(p, line, "history", 0, msgs, NULL, f, fl, &chat);
			}
		}
	}
#undef HAS
	record_finish(p, line, f, fl);
	free(chat);
	json_decref(msgs);
}

/* utf8_slice checks the raw bytes [pos, pos + n) before they are parsed, so
 * the message names the line and column of the bad byte. */
static int
utf8_slice(struct parser *p, size_t pos, size_t n)
{
	size_t bad = utf8_check(p->buf + pos, n), line, col;
	const char *q;

	if (bad == n)
		return 0;
	bad += pos;
	line = line_at(p, bad);
	for (q = p->buf + bad; q > p->buf && q[-1] != '\n'; q--)
		;
	col = (size_t)(p->buf + bad - q) + 1;
	if (p->buf[bad] == '\0')
		issue_add(p, line, 0, "-", "NUL byte at column %zu", col);
	else
		issue_add(p, line, 0, "-", "invalid UTF-8 (byte 0x%02x at column %zu)",
		    (unsigned char)p->buf[bad], col);
	return -1;
}

/* record_parse parses the JSON record in [pos, pos + n), which starts at a
 * non-space byte on the given line. */
static void
record_parse(struct parser *p, size_t pos, size_t n, size_t line)
{
	json_error_t e;
	json_t *v;

	if (utf8_slice(p, pos, n) != 0) {
		record_finish(p, line, NULL, NULL);
		return;
	}
	v = json_loadb(p->buf + pos, n, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &e);
	if (v == NULL) {
		issue_add(p, line + (e.line > 1 ? (size_t)e.line - 1 : 0), 0, "-",
		    "invalid JSON: %s", e.text);
		record_finish(p, line, NULL, NULL);
	} else if (!json_is_object(v)) {
		issue_add(p, line, 0, "-", "not a JSON object (%s)", json_type_name(v));
		record_finish(p, line, NULL, NULL);
	} else {
		record_object(p, v, line);
	}
	json_decref(v);
}

static int
is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

static int
is_blank(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!is_space(s[i]))
			return 0;
	return 1;
}

static size_t
skip_space(const struct parser *p, size_t i)
{
	while (i < p->len && is_space(p->buf[i]))
		i++;
	return i;
}

static size_t
line_end(const struct parser *p, size_t i)
{
	const char *nl = memchr(p->buf + i, '\n', p->len - i);

	return nl ? (size_t)(nl - p->buf) : p->len;
}

static void
parse_jsonl(struct parser *p, size_t i)
{
	while (i < p->len && !p->stop) {
		size_t end = line_end(p, i), start = i;

		while (start < end && is_space(p->buf[start]))
			start++;
		if (start < end) {
			size_t line = line_at(p, start);

			if (record_begin(p, line) != 0)
				return;
			record_parse(p, start, end - start, line);
		}
		i = end + 1;
	}
}

/* value_end returns the offset of the ',' or ']' that ends the array element
 * starting at i, or len.  Brackets only nest the scan; jansson finds any
 * mismatch when it parses the element. */
static size_t
value_end(const char *b, size_t len, size_t i)
{
	size_t depth = 0;
	int in_string = 0;

	for (; i < len; i++) {
		char c = b[i];

		if (in_string) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_string = 0;
			continue;
		}
		if (c == '"') {
			in_string = 1;
		} else if (c == '{' || c == '[') {
			depth++;
		} else if (c == '}') {
			if (depth > 0)
				depth--;
		} else if (c == ']' || c == ',') {
			if (depth == 0)
				return i;
			if (c == ']')
				depth--;
		}
	}
	return len;
}

/* parse_array walks the elements of the JSON array whose '[' is at i. */
static void
parse_array(struct parser *p, size_t i)
{
	i = skip_space(p, i + 1);
	if (i < p->len && p->buf[i] == ']') {
		issue_add(p, line_at(p, i), 0, "-", "empty JSON array");
		i++;
	} else {
		for (;;) {
			size_t end = value_end(p->buf, p->len, i), n = end - i, line;

			while (n > 0 && is_space(p->buf[i + n - 1]))
				n--;
			line = line_at(p, i);
			if (n == 0 && end < p->len) {
				issue_add(p, line, 0, "-", "invalid JSON: a value is missing before '%c'",
				    p->buf[end]);
			} else if (n > 0) {
				if (record_begin(p, line) != 0)
					return;
				record_parse(p, i, n, line);
			}
			if (end == p->len) {
				issue_add(p, line_at(p, p->len), 0, "-",
				    "invalid JSON: the array is not closed");
				return;
			}
			i = end + 1;
			if (p->buf[end] == ']')
				break;
			i = skip_space(p, i);
		}
	}
	i = skip_space(p, i);
	if (i < p->len)
		issue_add(p, line_at(p, i), 0, "-", "data after the JSON array");
}

static void
text_document(struct parser *p, size_t start, size_t end)
{
	const char *f[1] = { p->buf + start };
	size_t fl[1] = { end - start }, line = line_at(p, start);

	if (record_begin(p, line) != 0)
		return;
	if (utf8_slice(p, start, end - start) != 0)
		record_finish(p, line, NULL, NULL);
	else
		record_finish(p, line, f, fl);
}

/* has_paragraphs tells whether a blank line separates two non-blank lines
 * from byte i on. */
static int
has_paragraphs(const struct parser *p, size_t i)
{
	int text = 0, gap = 0;

	while (i < p->len) {
		size_t end = line_end(p, i);

		if (!is_blank(p->buf + i, end - i)) {
			if (gap)
				return 1;
			text = 1;
		} else {
			gap = text;
		}
		i = end + 1;
	}
	return 0;
}

/* parse_text splits plain text into documents at blank lines, or at every
 * line when there is no blank line between text (one document per line, as
 * in LLaMA-Factory's wiki_demo.txt). */
static void
parse_text(struct parser *p, size_t i)
{
	size_t doc = SIZE_MAX, doc_end = 0;
	int per_line = !has_paragraphs(p, i);

	while (i < p->len && !p->stop) {
		size_t end = line_end(p, i);

		if (per_line && !is_blank(p->buf + i, end - i)) {
			text_document(p, i, end);
		} else if (is_blank(p->buf + i, end - i)) {
			if (doc != SIZE_MAX)
				text_document(p, doc, doc_end);
			doc = SIZE_MAX;
		} else {
			if (doc == SIZE_MAX)
				doc = i;
			doc_end = end;
		}
		i = end + 1;
	}
	if (doc != SIZE_MAX && !p->stop)
		text_document(p, doc, doc_end);
}

/*
 * CSV and TSV (RFC 4180): records end at LF or CRLF; a field that starts
 * with '"' is quoted, may hold delimiters, newlines and "" for a quote, and
 * ends at its closing quote.  A quote inside an unquoted field is kept as
 * is, as Python's csv module does.
 */
enum { CSV_SNIFF_BYTES = 65536, CSV_SNIFF_ROWS = 10, CSV_NAME_MAX = 32 };

enum csv_end { CSV_FIELD, CSV_RECORD, CSV_UNCLOSED, CSV_AFTER_QUOTE };

/* csv_field scans the field at *pos, up to len: its raw bytes are
 * [*start, *end) (quotes included), and *pos moves past its delimiter or
 * line end.  Returns how it ended. */
static enum csv_end
csv_field(const char *b, size_t len, size_t *pos, char delim, size_t *start, size_t *end)
{
	size_t i = *pos;

	*start = i;
	if (i < len && b[i] == '"') {
		for (i++;; i++) {
			if (i >= len) {
				*end = len;
				return CSV_UNCLOSED;
			}
			if (b[i] == '"' && (i + 1 >= len || b[i + 1] != '"'))
				break;
			if (b[i] == '"')
				i++;
		}
		*end = ++i;
		if (i < len && b[i] == '\r' && i + 1 < len && b[i + 1] == '\n')
			i++;
		if (i < len && b[i] != delim && b[i] != '\n')
			return CSV_AFTER_QUOTE;
	} else {
		while (i < len && b[i] != delim && b[i] != '\n')
			i++;
		*end = i > *start && (i == len || b[i] == '\n') && b[i - 1] == '\r' ? i - 1 : i;
	}
	*pos = i + 1;
	return i < len && b[i] == delim ? CSV_FIELD : CSV_RECORD;
}

/* csv_row counts the fields of the record at *pos and moves past it;
 * returns 0 for a quoting error. */
static size_t
csv_row(const char *b, size_t len, size_t *pos, char delim)
{
	size_t n = 0, s, e;
	enum csv_end r;

	do {
		r = csv_field(b, len, pos, delim, &s, &e);
		n++;
	} while (r == CSV_FIELD);
	return r == CSV_RECORD ? n : 0;
}

/* csv_unquote returns field [s, e) without its quoting, in p->scratch
 * (NUL-terminated), its length in *n; NULL when memory runs out. */
static const char *
csv_unquote(struct parser *p, size_t s, size_t e, size_t *n)
{
	const char *b = p->buf;
	size_t k = 0;

	if (e - s + 1 > p->scratch_cap) {
		char *t = realloc(p->scratch, e - s + 1);

		if (t == NULL)
			return NULL;
		p->scratch = t;
		p->scratch_cap = e - s + 1;
	}
	if (e - s >= 2 && b[s] == '"') {
		for (size_t i = s + 1; i < e - 1; i++) {
			p->scratch[k++] = b[i];
			if (b[i] == '"')
				i++;
		}
	} else {
		memcpy(p->scratch, b + s, e - s);
		k = e - s;
	}
	p->scratch[k] = '\0';
	*n = k;
	return p->scratch;
}

/* csv_header_name tells whether [s, e) looks like a column name. */
static int
csv_header_name(const char *b, size_t s, size_t e)
{
	if (e - s >= 2 && b[s] == '"')
		s++, e--;
	if (e == s || e - s > CSV_NAME_MAX || b[s] == ' ')
		return 0;
	for (size_t i = s; i < e; i++)
		if (!((b[i] >= 'a' && b[i] <= 'z') || (b[i] >= 'A' && b[i] <= 'Z') ||
		    (b[i] >= '0' && b[i] <= '9') || strchr("_-. ", b[i]) != NULL))
			return 0;
	return 1;
}

/* csv_columns writes the header's names, comma-separated, into out. */
static void
csv_columns(const char *b, size_t len, size_t i, char delim, char *out, size_t out_len)
{
	size_t s, e, n = 0;
	enum csv_end r;

	out[0] = '\0';
	do {
		r = csv_field(b, len, &i, delim, &s, &e);
		if (e - s >= 2 && b[s] == '"')
			s++, e--;
		n += (size_t)snprintf(out + n, n < out_len ? out_len - n : 0, "%s%.*s",
		    n ? "," : "", (int)(e - s), b + s);
	} while (r == CSV_FIELD && n < out_len);
}

/* csv_sniff tells whether the data at i looks like CSV (or TSV): a first
 * line of at least two column names, then at least two more records with as
 * many fields, over the first lines, and no quoting error.  Prose has
 * neither the header nor the steady count. */
static char
csv_sniff(const struct parser *p, size_t i)
{
	static const char delims[] = { ',', '\t', ';' };
	size_t len = p->len < i + CSV_SNIFF_BYTES ? p->len : i + CSV_SNIFF_BYTES;

	for (size_t d = 0; d < sizeof(delims); d++) {
		size_t pos = i, s, e, n = 0, rows = 0;
		enum csv_end r;
		int names = 1;

		do {
			r = csv_field(p->buf, len, &pos, delims[d], &s, &e);
			names = names && csv_header_name(p->buf, s, e);
			n++;
		} while (r == CSV_FIELD && names);
		if (r != CSV_RECORD || !names || n < 2)
			continue;
		while (rows < CSV_SNIFF_ROWS && pos < len) {
			size_t k;

			if (p->buf[pos] == '\n' || p->buf[pos] == '\r') {
				pos++;
				continue;
			}
			k = csv_row(p->buf, len, &pos, delims[d]);
			if (pos > len && len < p->len)
				break;          /* a record cut at CSV_SNIFF_BYTES */
			if (k != n) {
				rows = 0;
				break;
			}
			rows++;
		}
		if (rows >= 2)
			return delims[d];
	}
	return 0;
}

/* json_sniff tells whether text data at i (starting '[') is a JSON array of
 * objects: instruction data, or records that belong one a line. */
static int
json_sniff(const struct parser *p, size_t i)
{
	size_t s = skip_space(p, i + 1), e = value_end(p->buf, p->len, s);
	json_t *v = json_loadb(p->buf + s, e - s, JSON_DECODE_ANY, NULL);
	int obj = json_is_object(v);

	json_decref(v);
	return obj;
}

/* parse_csv takes one text document per record from column opt.text_column
 * of the CSV or TSV data at i, whose first record names the columns. */
static void
parse_csv(struct parser *p, size_t i)
{
	const char *want = p->opt.text_column;
	size_t pos = i, s, e, n = 0, col = SIZE_MAX, dmax = 0;
	char delim = ',', cols[120];
	enum csv_end r;

	/* The delimiter is the one the header line has most of. */
	for (const char *d = ",\t;"; *d; d++) {
		size_t k = 0;

		for (size_t q = i; q < p->len && p->buf[q] != '\n'; q++)
			k += p->buf[q] == *d;
		if (k > dmax)
			dmax = k, delim = *d;
	}
	do {
		size_t fl;
		const char *f;

		r = csv_field(p->buf, p->len, &pos, delim, &s, &e);
		if (r == CSV_UNCLOSED || r == CSV_AFTER_QUOTE)
			break;
		if ((f = csv_unquote(p, s, e, &fl)) == NULL) {
			p->oom = 1;
			return;
		}
		if (strcmp(f, want) == 0 && col == SIZE_MAX)
			col = n;
		n++;
	} while (r == CSV_FIELD);
	if (r == CSV_UNCLOSED || r == CSV_AFTER_QUOTE) {
		issue_add(p, line_at(p, r == CSV_UNCLOSED ? s : e), 0, "-",
		    r == CSV_UNCLOSED ? "a quoted field is not closed" :
		    "a quoted field must end at a delimiter or the end of the line");
		return;
	}
	if (col == SIZE_MAX) {
		csv_columns(p->buf, p->len, i, delim, cols, sizeof(cols));
		issue_add(p, line_at(p, i), 0, "-", "no column \"%.40s\" (columns: %s)", want, cols);
		return;
	}
	while (pos < p->len && !p->stop) {
		size_t line = line_at(p, pos), k = 0, fl = 0;
		const char *f = NULL;

		if (p->buf[pos] == '\n' || (p->buf[pos] == '\r' && pos + 1 < p->len &&
		    p->buf[pos + 1] == '\n')) {
			pos += p->buf[pos] == '\r' ? 2 : 1;
			continue;       /* an empty line is no record */
		}
		if (record_begin(p, line) != 0)
			return;
		do {
			r = csv_field(p->buf, p->len, &pos, delim, &s, &e);
			if (r == CSV_UNCLOSED || r == CSV_AFTER_QUOTE)
				break;
			if (k++ == col) {
				if (utf8_slice(p, s, e - s) == 0 &&
				    (f = csv_unquote(p, s, e, &fl)) == NULL) {
					p->oom = p->stop = 1;
					return;
				}
			}
		} while (r == CSV_FIELD);
		if (r == CSV_UNCLOSED) {
			issue_add(p, line_at(p, s), 0, "-", "a quoted field is not closed");
			record_finish(p, line, NULL, NULL);
			return;
		}
		if (r == CSV_AFTER_QUOTE) {
			issue_add(p, line_at(p, e), 0, "-",
			    "a quoted field must end at a delimiter or the end of the line");
			record_finish(p, line, NULL, NULL);
			/* Go on at the next line. */
			pos = line_end(p, e) + 1;
			continue;
		}
		if (k != n)
			issue_add(p, line, 0, "-", "%zu field%s, the header has %zu", k,
			    k == 1 ? "" : "s", n);
		else if (f != NULL && fl == 0)
			issue_add(p, line, 0, want, "empty");
		{
			const char *ff[1] = { f };
			size_t ffl[1] = { fl };

			record_finish(p, line, f ? ff : NULL, f ? ffl : NULL);
		}
	}
	if (p->rep->records == 0 && !p->stop)
		issue_add(p, line_at(p, i), 0, "-", "no records after the header");
}

int
dataset_parse(const char *name, const void *data, size_t len,
    const struct dataset_options *opt, struct dataset **out,
    struct dataset_report **report, char *err, size_t err_len)
{
	struct parser p = { .buf = data, .len = len, .opt = *opt, .lline = 1 };
	struct dataset_report *rep;
	size_t i = 0;
	char delim, cols[120];

	*report = NULL;
	if (p.opt.max_issues == 0)
		p.opt.max_issues = DATASET_DEFAULT_MAX_ISSUES;
	rep = p.rep = calloc(1, sizeof(*rep));
	p.ds = dataset_new(opt->kind);
	if (rep == NULL || p.ds == NULL || (rep->name = strdup(name)) == NULL) {
		dataset_report_free(rep);
		dataset_free(p.ds);
		snprintf(err, err_len, "%s: out of memory", name);
		return -1;
	}
	rep->skip_invalid = opt->skip_invalid;

	if (len >= 3 && memcmp(data, "\xef\xbb\xbf", 3) == 0)
		i = 3;
	i = skip_space(&p, i);
	if (i == len) {
		issue_add(&p, 1, 0, "-", "empty file");
	} else if (opt->kind == DATASET_KIND_TEXT && opt->text_column != NULL &&
	    opt->text_column[0] != '\0') {
		parse_csv(&p, i);
	} else if (opt->kind == DATASET_KIND_INSTRUCT && p.buf[i] == '[') {
		parse_array(&p, i);
	} else if (p.buf[i] != '{' && p.buf[i] != '[' && (delim = csv_sniff(&p, i)) != 0) {
		/* Its header and quoting would become training text. */
		csv_columns(p.buf, len, i, delim, cols, sizeof(cols));
		issue_add(&p, line_at(&p, i), 0, "-", "looks like %s with columns %s: use %s",
		    delim == '\t' ? "TSV" : delim == ';' ? "CSV (';'-separated)" : "CSV", cols,
		    opt->kind == DATASET_KIND_TEXT ? "--text-column NAME to train on one column" :
		    "--kind text --text-column NAME to train on one column as text");
	} else if (opt->kind == DATASET_KIND_TEXT && p.buf[i] == '[' && json_sniff(&p, i)) {
		issue_add(&p, line_at(&p, i), 0, "-", "looks like a JSON array of records: use "
		    "--kind instruct, or JSONL with one {\"text\": ...} a line");
	} else if (opt->kind == DATASET_KIND_INSTRUCT || p.buf[i] == '{') {
		parse_jsonl(&p, i);
	} else {
		parse_text(&p, i);
	}
	free(p.dup);
	free(p.scratch);

	*report = rep;
	if (p.oom) {
		dataset_free(p.ds);
		snprintf(err, err_len, "%s: out of memory", name);
		return -1;
	}
	if (rep->errors > 0 && !(opt->skip_invalid && rep->valid > 0)) {
		const struct dataset_issue *is = rep->issues;

		dataset_free(p.ds);
		while (is < rep->issues + rep->n_issues && is->warning)
			is++;
		if (is < rep->issues + rep->n_issues)
			snprintf(err, err_len, "%s:%zu: %s: %s (%zu error%s)", name, is->line,
			    is->field, is->problem, rep->errors, rep->errors == 1 ? "" : "s");
		else
			snprintf(err, err_len, "%s: %zu errors", name, rep->errors);
		return -1;
	}
	*out = p.ds;
	return 0;
}

/* file_read reads a whole file (also a pipe) into a malloc'd buffer. */
static int
file_read(const char *path, char **buf, size_t *len, char *err, size_t err_len)
{
	FILE *f = fopen(path, "rb");
	size_t n = 0, cap = 1 << 16, got;
	char *b = NULL, *t;

	if (f == NULL) {
		snprintf(err, err_len, "%s: %s", path, strerror(errno));
		return -1;
	}
	for (;;) {
		if ((t = realloc(b, cap)) == NULL) {
			snprintf(err, err_len, "%s: out of memory", path);
			goto fail;
		}
		b = t;
		got = fread(b + n, 1, cap - n, f);
		n += got;
		if (n < cap)
			break;
		cap *= 2;
	}
	if (ferror(f)) {
		snprintf(err, err_len, "%s: read error", path);
		goto fail;
	}
	fclose(f);
	*buf = b;
	*len = n;
	return 0;
fail:
	free(b);
	fclose(f);
	return -1;
}

int
dataset_parse_file(const char *path, const char *name,
    const struct dataset_options *opt, struct dataset **out,
    struct dataset_report **report, char *err, size_t err_len)
{
	char *buf;
	size_t len;
	int rc;

	*report = NULL;
	if (name == NULL)
		name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	if (file_read(path, &buf, &len, err, err_len) != 0)
		return -1;
	rc = dataset_parse(name, buf, len, opt, out, report, err, err_len);
	free(buf);
	return rc;
}

int
dataset_load_jsonl(const char *path, enum dataset_kind kind,
    struct dataset **out, char *err, size_t err_len)
{
	struct dataset_options opt = { .kind = kind, .max_issues = 1 };
	struct dataset_report *rep;
	int rc = dataset_parse_file(path, NULL, &opt, out, &rep, err, err_len);

	dataset_report_free(rep);
	return rc;
}

/* The canonical writer sends its bytes to an emitter: a FILE or the hash,
 * so both see exactly the same bytes. */
typedef int (*emit_fn)(void *ctx, const char *s, size_t n);

/* emit_string writes s as a JSON string: '"' and '\\' escaped, control
 * characters as \n, \t, \r, \b, \f or \u00XX, everything else as is. */
static int
emit_string(emit_fn emit, void *ctx, const char *s)
{
	const char *run = s;
	char esc[8];

	if (emit(ctx, "\"", 1) != 0)
		return -1;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		const char *e = NULL;

		if (c == '"')
			e = "\\\"";
		else if (c == '\\')
			e = "\\\\";
		else if (c == '\n')
			e = "\\n";
		else if (c == '\t')
			e = "\\t";
		else if (c == '\r')
			e = "\\r";
		else if (c == '\b')
			e = "\\b";
		else if (c == '\f')
			e = "\\f";
		else if (c < 0x20)
			e = esc, snprintf(esc, sizeof(esc), "\\u%04x", c);
		if (e == NULL)
			continue;
		if (emit(ctx, run, (size_t)(s - run)) != 0 || emit(ctx, e, strlen(e)) != 0)
			return -1;
		run = s + 1;
	}
	if (emit(ctx, run, (size_t)(s - run)) != 0)
		return -1;
	return emit(ctx, "\"", 1);
}

static int
canonical_write(const struct dataset *ds, emit_fn emit, void *ctx)
{
	static const char *const text_keys[] = { "text" };
	const char *const *keys = ds->kind == DATASET_KIND_TEXT ? text_keys : instruct_keys;

	for (size_t r = 0; r < ds->n; r++) {
		const char *chat = ds->rec[r].chat;

		/* a conversation is its canonical JSON, written when parsed */
		if (ds->kind == DATASET_KIND_INSTRUCT && chat != NULL) {
			if (emit(ctx, chat, strlen(chat)) != 0 || emit(ctx, "\n", 1) != 0)
				return -1;
			continue;
		}
		for (size_t i = 0; i < kind_fields(ds->kind) && i < FIELD_CHAT; i++) {
			if (emit(ctx, i == 0 ? "{\"" : ",\"", 2) != 0 ||
			    emit(ctx, keys[i], strlen(keys[i])) != 0 ||
			    emit(ctx, "\":", 2) != 0 ||
			    emit_string(emit, ctx, record_field(&ds->rec[r], ds->kind, i)) != 0)
				return -1;
		}
		if (emit(ctx, "}\n", 2) != 0)
			return -1;
	}
	return 0;
}

static int
emit_file(void *ctx, const char *s, size_t n)
{
	return fwrite(s, 1, n, ctx) == n ? 0 : -1;
}

int
dataset_write_jsonl(const struct dataset *ds, FILE *f, char *err, size_t err_len)
{
	if (canonical_write(ds, emit_file, f) != 0 || fflush(f) != 0) {
		snprintf(err, err_len, "writing the dataset: %s", strerror(errno));
		return -1;
	}
	return 0;
}

static int
emit_hash(void *ctx, const char *s, size_t n)
{
	return crypto_generichash_update(ctx, (const unsigned char *)s, n);
}

void
dataset_hash(const struct dataset *ds, char hex[65])
{
	crypto_generichash_state st;
	unsigned char h[32];

	/* BLAKE2b needs no sodium_init (that only picks a faster
	 * implementation) and cannot fail with these sizes. */
	crypto_generichash_init(&st, NULL, 0, sizeof(h));
	(void)canonical_write(ds, emit_hash, &st);
	crypto_generichash_final(&st, h, sizeof(h));
	sodium_bin2hex(hex, 65, h, sizeof(h));
}

static int
dataset_copy_record(struct dataset *d, const struct dataset_record *r)
{
	const char *f[FIELDS_MAX];
	size_t fl[FIELDS_MAX];

	for (size_t i = 0; i < kind_fields(d->kind); i++) {
		f[i] = record_field(r, d->kind, i);
		fl[i] = strlen(f[i]);
	}
	return dataset_append(d, f, fl, r->line);
}

int
dataset_split(const struct dataset *ds, double fraction, uint64_t seed,
    struct dataset **train, struct dataset **validation, char *err,
    size_t err_len)
{
	struct dataset *t = NULL, *v = NULL;
	size_t n = ds->n, n_val, *idx = NULL;
	unsigned char *is_val = NULL;

	if (!(fraction > 0 && fraction <= 0.5)) {
		snprintf(err, err_len, "validation fraction %g must be in (0, 0.5]", fraction);
		return -1;
	}
	if (n < 2) {
		snprintf(err, err_len, "a validation split needs at least 2 records, the "
		    "dataset has %zu", n);
		return -1;
	}
	n_val = (size_t)((double)n * fraction + 0.5);
	n_val = n_val < 1 ? 1 : n_val > n - 1 ? n - 1 : n_val;

	idx = malloc(n * sizeof(*idx));
	is_val = calloc(n, 1);
	t = dataset_new(ds->kind);
	v = dataset_new(ds->kind);
	if (idx == NULL || is_val == NULL || t == NULL || v == NULL)
		goto oom;
	rng_permutation(idx, n, &seed);
	for (size_t i = 0; i < n_val; i++)
		is_val[idx[i]] = 1;
	for (size_t i = 0; i < n; i++)
		if (dataset_copy_record(is_val[i] ? v : t, &ds->rec[i]) != 0)
			goto oom;
	free(idx);
	free(is_val);
	*train = t;
	*validation = v;
	return 0;
oom:
	free(idx);
	free(is_val);
	dataset_free(t);
	dataset_free(v);
	snprintf(err, err_len, "splitting the dataset: out of memory");
	return -1;
}

/* root returns x^(1/n) for x >= 1 by bisection, which keeps libm out of
 * the daemon for one histogram. */
static double
root(double x, size_t n)
{
	double lo = 1.0, hi = x;

	for (int it = 0; it < 64; it++) {
		double mid = (lo + hi) / 2, p = 1.0;

		for (size_t i = 0; i < n; i++)
			p *= mid;
		*(p < x ? &lo : &hi) = mid;
	}
	return lo;
}

void
dataset_stats_compute(const struct dataset *ds, struct dataset_stats *st)
{
	size_t lo[DATASET_HIST_BUCKETS + 1], nb;
	double base, step, edge;

	memset(st, 0, sizeof(*st));
	st->records = ds->n;
	if (ds->n == 0)
		return;
	st->min_bytes = SIZE_MAX;
	for (size_t i = 0; i < ds->n; i++) {
		size_t b = ds->rec[i].bytes;

		st->bytes += b;
		st->min_bytes = b < st->min_bytes ? b : st->min_bytes;
		st->max_bytes = b > st->max_bytes ? b : st->max_bytes;
	}
	st->mean_bytes = (double)st->bytes / (double)ds->n;

	/* Bucket k starts at min * (max/min)^(k/nb), kept strictly increasing
	 * and leaving room for the buckets after it. */
	nb = st->max_bytes - st->min_bytes + 1;
	nb = nb < DATASET_HIST_BUCKETS ? nb : DATASET_HIST_BUCKETS;
	base = st->min_bytes > 0 ? (double)st->min_bytes : 1.0;
	step = root((double)st->max_bytes / base, nb);
	edge = base;
	lo[0] = st->min_bytes;
	for (size_t k = 1; k < nb; k++) {
		size_t e = (size_t)(edge *= step);

		e = e > lo[k - 1] ? e : lo[k - 1] + 1;
		lo[k] = e < st->max_bytes - (nb - k) + 1 ? e : st->max_bytes - (nb - k) + 1;
	}
	lo[nb] = st->max_bytes + 1;
	st->n_buckets = nb;
	for (size_t k = 0; k < nb; k++) {
		st->bucket_lo[k] = lo[k];
		st->bucket_hi[k] = lo[k + 1] - 1;
	}
	for (size_t i = 0; i < ds->n; i++) {
		size_t k = nb - 1;

		while (ds->rec[i].bytes < lo[k])
			k--;
		st->bucket_count[k]++;
	}
}

static const char *
plural(size_t n)
{
	return n == 1 ? "" : "s";
}

int
dataset_report_format(const struct dataset_report *r, char **text)
{
	size_t shown = r->n_issues, total = r->errors + r->warnings, len;
	char *buf = NULL;
	FILE *f = open_memstream(&buf, &len);

	if (f == NULL)
		return -1;
	for (size_t i = 0; i < shown; i++) {
		const struct dataset_issue *is = &r->issues[i];

		fprintf(f, "%s%s:%zu: %s: %s\n", is->warning ? "warning: " : "", r->name,
		    is->line, is->field, is->problem);
	}
	if (shown < total)
		fprintf(f, "... %zu more issue%s not shown\n", total - shown, plural(total - shown));
	fprintf(f, "%s: %zu record%s, %zu valid, %zu invalid, %zu warning%s\n", r->name,
	    r->records, plural(r->records), r->valid, r->invalid, r->warnings,
	    plural(r->warnings));
	if (r->skip_invalid && r->valid > 0 && r->invalid > 0)
		fprintf(f, "skipped %zu invalid record%s\n", r->invalid, plural(r->invalid));
	if (ferror(f)) {
		fclose(f);
		free(buf);
		return -1;
	}
	if (fclose(f) != 0) {
		free(buf);
		return -1;
	}
	*text = buf;
	return 0;
}

void
dataset_report_free(struct dataset_report *r)
{
	if (r == NULL)
		return;
	free(r->name);
	free(r->issues);
	free(r);
}
