/*
 * screen.c - detectors for personal data and secrets, rule sets, and the
 * screening of a dataset (screen.h).
 *
 * DESIGN: every detector is a PCRE2 pattern for the shape, optionally
 * confirmed by a check on the matched text (Luhn for cards, mod-97 for
 * IBANs, octet ranges for IPv4, the digit count for phones), so a shape
 * that fails its check is no hit.  Block rules are patterns without a
 * check.  Hits of all rules are merged, earliest and then longest first,
 * so overlapping rules never redact the same bytes twice.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <sodium.h>

#include "screen.h"

#define RULES_MAX 64
#define RULES_FILE_MAX (1 << 20)
#define REPORT_LINES_MAX 50

static int
digits_count(const char *s, size_t len)
{
	int n = 0;

	for (size_t i = 0; i < len; i++)
		n += isdigit((unsigned char)s[i]) != 0;
	return n;
}

int
screen_luhn_ok(const char *s, size_t len)
{
	int sum = 0, n = 0, same = 1;
	char first = 0;

	for (size_t i = len; i-- > 0;) {
		int d;

		if (s[i] == ' ' || s[i] == '-')
			continue;
		if (!isdigit((unsigned char)s[i]))
			return 0;
		d = s[i] - '0';
		if (first == 0)
			first = s[i];
		same &= s[i] == first;
		if (n++ % 2 == 1 && (d *= 2) > 9)
			d -= 9;
		sum += d;
	}
	/* 0000 0000 0000 0000 passes Luhn but is a placeholder, not a card. */
	return n >= 13 && n <= 19 && !same && sum % 10 == 0;
}

int
screen_iban_ok(const char *s, size_t len)
{
	char c[34];
	size_t n = 0;
	unsigned rem = 0;

	for (size_t i = 0; i < len; i++) {
		if (s[i] == ' ')
			continue;
		if (n == sizeof(c) || !isalnum((unsigned char)s[i]))
			return 0;
		c[n++] = (char)toupper((unsigned char)s[i]);
	}
	if (n < 15 || !isalpha((unsigned char)c[0]) || !isalpha((unsigned char)c[1]) ||
	    !isdigit((unsigned char)c[2]) || !isdigit((unsigned char)c[3]))
		return 0;
	/* The country and check digits move to the end; letters count 10..35. */
	for (size_t k = 0; k < n; k++) {
		char ch = c[(k + 4) % n];

		if (isdigit((unsigned char)ch))
			rem = (rem * 10 + (unsigned)(ch - '0')) % 97;
		else
			rem = (rem * 100 + (unsigned)(ch - 'A' + 10)) % 97;
	}
	return rem == 1;
}

/* Section numbers (8.1.2.1) have the shape of addresses: a heading (at a
 * line's start, a capitalised word after it) or a number that "section"
 * or "sections" introduces, maybe in a list ("sections 5.2 and 19.6.1.1"),
 * is none. */
static int
ipv4_context_ok(const char *text, size_t text_len, size_t off, size_t len)
{
	size_t i = off, w;

	if ((off == 0 || text[off - 1] == '\n') && off + len + 1 < text_len &&
	    text[off + len] == ' ' && isupper((unsigned char)text[off + len + 1]))
		return 0;
	for (;;) {
		while (i > 0 && (isspace((unsigned char)text[i - 1]) || text[i - 1] == ','))
			i--;
		for (w = i; w > 0 && (isalnum((unsigned char)text[w - 1]) || text[w - 1] == '.'); w--)
			;
		if (w == i)
			return 1;
		if ((i - w == 7 && strncasecmp(text + w, "section", 7) == 0) ||
		    (i - w == 8 && strncasecmp(text + w, "sections", 8) == 0))
			return 0;
		/* Skip other numbers of a list and its "and"/"or". */
		if (!isdigit((unsigned char)text[w]) && !(i - w == 3 && strncmp(text + w, "and", 3) == 0) &&
		    !(i - w == 2 && strncmp(text + w, "or", 2) == 0))
			return 1;
		i = w;
	}
}

static int
ipv4_ok(const char *s, size_t len)
{
	unsigned v = 0;
	int digits = 0;

	for (size_t i = 0; i <= len; i++) {
		if (i == len || s[i] == '.') {
			if (digits == 0 || v > 255)
				return 0;
			v = 0;
			digits = 0;
		} else {
			v = v * 10 + (unsigned)(s[i] - '0');
			digits++;
		}
	}
	return 1;
}

static int
card_ok(const char *s, size_t len)
{
	return screen_luhn_ok(s, len);
}

static int
iban_ok(const char *s, size_t len)
{
	return screen_iban_ok(s, len);
}

/* E.164 allows at most 15 digits; fewer than 8 are dates or counts. */
static int
phone_ok(const char *s, size_t len)
{
	int n = digits_count(s, len);

	return n >= 8 && n <= 15;
}

/* The built-in detectors. */
static const struct detector {
	const char *name;
	const char *placeholder;
	const char *pattern;
	int (*check)(const char *s, size_t len);
	int (*context)(const char *text, size_t text_len, size_t off, size_t len);
} detectors[] = {
	{ "email", "[EMAIL]",
	  "(?<![\\w.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}"
	  "[A-Za-z0-9])?\\.)+[A-Za-z]{2,24}(?![\\w-])", NULL, NULL },
	{ "phone", "[PHONE]",
	  "(?<![\\w+])(?:\\+[1-9]\\d{0,2}[ .-]?(?:\\(\\d{1,4}\\)[ .-]?)?\\d{1,4}(?:[ .-]?\\d{2,4}){1,4}"
	  "|\\(\\d{3}\\) ?\\d{3}-\\d{4}|\\d{3}-\\d{3}-\\d{4})(?![\\w])", phone_ok, NULL },
	{ "card", "[CARD]", "(?<![\\w-])\\d(?:[ -]?\\d){12,18}(?![\\w-])", card_ok, NULL },
	{ "iban", "[IBAN]", "(?<![\\w])[A-Z]{2}\\d{2}(?: ?[A-Z0-9]){11,30}(?![\\w])", iban_ok, NULL },
	{ "ipv4", "[IP]", "(?<![\\w.])\\d{1,3}(?:\\.\\d{1,3}){3}(?![\\w]|\\.\\d)", ipv4_ok,
	  ipv4_context_ok },
	{ "private_key", "[PRIVATE_KEY]",
	  "-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----(?:[\\s\\S]*?-----END (?:[A-Z0-9]+ )*"
	  "PRIVATE KEY-----|[\\s\\S]*)", NULL, NULL },
	{ "aws_key", "[AWS_KEY]", "(?<![A-Z0-9])(?:AKIA|ASIA)[0-9A-Z]{16}(?![A-Z0-9])", NULL, NULL },
	{ "github_token", "[GITHUB_TOKEN]",
	  "(?<![\\w])(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})(?![\\w])", NULL, NULL },
	{ "slack_token", "[SLACK_TOKEN]", "(?<![\\w])xox[abposr]-[A-Za-z0-9-]{10,250}(?![\\w-])", NULL, NULL },
	{ "sk_key", "[API_KEY]", "(?<![\\w-])sk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,250}(?![\\w-])", NULL, NULL },
};

const char screen_default_rules[] =
    "# ftuned's default screening rules (see README, Screening of training data)\n"
    "rule email redact\n"
    "rule phone report\n"
    "rule card redact\n"
    "rule iban redact\n"
    "rule ipv4 report\n"
    "rule private_key refuse\n"
    "rule aws_key refuse\n"
    "rule github_token refuse\n"
    "rule slack_token refuse\n"
    "rule sk_key refuse\n";

static const char *const action_names[] = {
	[SCREEN_REPORT] = "report", [SCREEN_REDACT] = "redact",
	[SCREEN_DROP] = "drop", [SCREEN_REFUSE] = "refuse",
};

struct rule {
	char name[64];
	char placeholder[80];
	enum screen_action action;
	pcre2_code *re;
	int (*check)(const char *s, size_t len);
	int (*context)(const char *text, size_t text_len, size_t off, size_t len);
};

struct screen_rules {
	struct rule rules[RULES_MAX];
	int n;
	char hash[SCREEN_HASH_HEX + 1];
};

void
screen_rules_free(struct screen_rules *r)
{
	if (r == NULL)
		return;
	for (int i = 0; i < r->n; i++)
		pcre2_code_free(r->rules[i].re);
	free(r);
}

const char *
screen_rules_hash(const struct screen_rules *r)
{
	return r->hash;
}

static int
rule_compile(struct rule *ru, const char *pattern, size_t len, char *why, size_t why_len)
{
	int ec;
	PCRE2_SIZE eo;
	PCRE2_UCHAR msg[160];

	ru->re = pcre2_compile((PCRE2_SPTR)pattern, len, PCRE2_UTF | PCRE2_MATCH_INVALID_UTF, &ec,
	    &eo, NULL);
	if (ru->re == NULL) {
		pcre2_get_error_message(ec, msg, sizeof(msg));
		snprintf(why, why_len, "pattern at offset %zu: %s", (size_t)eo, (const char *)msg);
		return -1;
	}
	pcre2_jit_compile(ru->re, PCRE2_JIT_COMPLETE);   /* the interpreter when JIT is absent */
	return 0;
}

static int
action_parse(const char *w, enum screen_action *a)
{
	for (size_t i = 0; i < sizeof(action_names) / sizeof(action_names[0]); i++)
		if (strcmp(w, action_names[i]) == 0) {
			*a = (enum screen_action)i;
			return 0;
		}
	return -1;
}

/* One line: "rule DETECTOR ACTION" or "block NAME ACTION PATTERN". */
static int
line_parse(struct screen_rules *r, char *line, char *why, size_t why_len)
{
	char *verb, *name, *action, *rest;
	struct rule *ru;

	line[strcspn(line, "\r")] = '\0';
	rest = line + strspn(line, " \t");
	if (*rest == '\0' || *rest == '#')
		return 0;
	verb = strsep(&rest, " \t");
	name = rest ? strsep(&rest, " \t") : NULL;
	action = rest ? strsep(&rest, " \t") : NULL;
	if (name == NULL || action == NULL || *name == '\0') {
		snprintf(why, why_len, "want 'rule DETECTOR ACTION' or 'block NAME ACTION PATTERN'");
		return -1;
	}
	if (r->n == RULES_MAX) {
		snprintf(why, why_len, "more than %d rules", RULES_MAX);
		return -1;
	}
	for (int i = 0; i < r->n; i++)
		if (strcmp(r->rules[i].name, name) == 0) {
			snprintf(why, why_len, "rule %s named twice", name);
			return -1;
		}
	ru = &r->rules[r->n];
	memset(ru, 0, sizeof(*ru));
	if (strlen(name) >= sizeof(ru->name) || action_parse(action, &ru->action) != 0) {
		snprintf(why, why_len, "%s: the action is report, redact, drop or refuse, not '%s'",
		    name, action);
		return -1;
	}
	snprintf(ru->name, sizeof(ru->name), "%s", name);
	if (strcmp(verb, "rule") == 0) {
		const struct detector *det = NULL;

		for (size_t i = 0; i < sizeof(detectors) / sizeof(detectors[0]); i++)
			if (strcmp(detectors[i].name, name) == 0)
				det = &detectors[i];
		if (det == NULL || (rest != NULL && rest[strspn(rest, " \t")] != '\0')) {
			snprintf(why, why_len, det == NULL ? "no detector %s" : "%s: text after the action",
			    name);
			return -1;
		}
		snprintf(ru->placeholder, sizeof(ru->placeholder), "%s", det->placeholder);
		ru->check = det->check;
		ru->context = det->context;
		if (rule_compile(ru, det->pattern, PCRE2_ZERO_TERMINATED, why, why_len) != 0)
			return -1;
	} else if (strcmp(verb, "block") == 0) {
		if (rest == NULL || *(rest += strspn(rest, " \t")) == '\0') {
			snprintf(why, why_len, "block %s: no pattern", name);
			return -1;
		}
		snprintf(ru->placeholder, sizeof(ru->placeholder), "[%s]", name);
		for (char *p = ru->placeholder; *p; p++)
			*p = (char)toupper((unsigned char)*p);
		if (rule_compile(ru, rest, strlen(rest), why, why_len) != 0)
			return -1;
	} else {
		snprintf(why, why_len, "unknown word '%s'", verb);
		return -1;
	}
	r->n++;
	return 0;
}

int
screen_rules_parse(const char *name, const char *text, size_t len,
    struct screen_rules **out, char *err, size_t err_len)
{
	struct screen_rules *r;
	unsigned char h[32];
	char *copy, *p, *line, why[224];
	size_t lineno = 0;

	if (sodium_init() < 0 || (r = calloc(1, sizeof(*r))) == NULL) {
		snprintf(err, err_len, "out of memory");
		return -1;
	}
	if ((copy = malloc(len + 1)) == NULL) {
		free(r);
		snprintf(err, err_len, "out of memory");
		return -1;
	}
	memcpy(copy, text, len);
	copy[len] = '\0';
	p = copy;
	while ((line = strsep(&p, "\n")) != NULL) {
		lineno++;
		if (strlen(line) != (size_t)(p ? p - line - 1 : copy + len - line)) {
			snprintf(err, err_len, "%s:%zu: a NUL byte", name, lineno);
			goto fail;
		}
		if (line_parse(r, line, why, sizeof(why)) != 0) {
			snprintf(err, err_len, "%s:%zu: %s", name, lineno, why);
			goto fail;
		}
	}
	free(copy);
	crypto_generichash(h, sizeof(h), (const unsigned char *)text, len, NULL, 0);
	sodium_bin2hex(r->hash, sizeof(r->hash), h, sizeof(h));
	*out = r;
	return 0;
fail:
	free(copy);
	screen_rules_free(r);
	return -1;
}

int
screen_rules_load(const char *path, struct screen_rules **out, char *err, size_t err_len)
{
	char *buf;
	size_t len;
	FILE *f;
	int rc;

	if (path == NULL || path[0] == '\0')
		return screen_rules_parse("(built-in rules)", screen_default_rules,
		    strlen(screen_default_rules), out, err, err_len);
	if ((f = fopen(path, "re")) == NULL) {
		snprintf(err, err_len, "screen_rules %s: %s", path, strerror(errno));
		return -1;
	}
	if ((buf = malloc(RULES_FILE_MAX + 1)) == NULL) {
		fclose(f);
		snprintf(err, err_len, "out of memory");
		return -1;
	}
	len = fread(buf, 1, RULES_FILE_MAX + 1, f);
	if (ferror(f) || len > RULES_FILE_MAX) {
		snprintf(err, err_len, "screen_rules %s: %s", path,
		    ferror(f) ? strerror(errno) : "larger than 1 MiB");
		rc = -1;
	} else {
		rc = screen_rules_parse(path, buf, len, out, err, err_len);
	}
	fclose(f);
	free(buf);
	return rc;
}

static int
hit_cmp(const void *a, const void *b)
{
	const struct screen_hit *x = a, *y = b;

	if (x->off != y->off)
		return x->off < y->off ? -1 : 1;
	return x->len > y->len ? -1 : x->len < y->len;
}

int
screen_text(const struct screen_rules *r, const char *s, size_t len,
    int (*fn)(void *arg, const struct screen_hit *h), void *arg)
{
	struct screen_hit *hits = NULL;
	size_t n = 0, cap = 0, end = 0;
	int count = 0;

	for (int i = 0; i < r->n; i++) {
		const struct rule *ru = &r->rules[i];
		pcre2_match_data *md = pcre2_match_data_create_from_pattern(ru->re, NULL);
		PCRE2_SIZE at = 0, *ov;

		if (md == NULL) {
			free(hits);
			return -1;
		}
		while (at <= len && pcre2_match(ru->re, (PCRE2_SPTR)s, len, at, 0, md, NULL) >= 0) {
			ov = pcre2_get_ovector_pointer(md);
			if (ov[1] == ov[0]) {           /* an empty match hides nothing */
				at = ov[1] + 1;
				continue;
			}
			at = ov[1];
			if ((ru->check != NULL && !ru->check(s + ov[0], ov[1] - ov[0])) ||
			    (ru->context != NULL && !ru->context(s, len, ov[0], ov[1] - ov[0])))
				continue;
			if (n == cap) {
				struct screen_hit *v = realloc(hits, (cap = cap ? cap * 2 : 8) * sizeof(*v));

				if (v == NULL) {
					pcre2_match_data_free(md);
					free(hits);
					return -1;
				}
				hits = v;
			}
			hits[n++] = (struct screen_hit){ .off = ov[0], .len = ov[1] - ov[0],
				.rule = ru->name, .placeholder = ru->placeholder, .action = ru->action };
		}
		pcre2_match_data_free(md);
	}
	if (n > 1)
		qsort(hits, n, sizeof(*hits), hit_cmp);
	for (size_t i = 0; i < n; i++) {
		if (hits[i].off < end)
			continue;
		end = hits[i].off + hits[i].len;
		count++;
		if (fn != NULL && fn(arg, &hits[i]) != 0)
			break;
	}
	free(hits);
	return count;
}

/* Screening a dataset. */

struct field_scan {
	char *out;                    /* the redacted field */
	size_t n, cap;
	const char *src;
	size_t done;                  /* bytes of src copied or replaced */
	enum screen_action worst;
	int any;
	struct screen_result *res;
	char **report;
	const char *file, *field;
	size_t line;
};

static int
out_put(struct field_scan *f, const char *s, size_t n)
{
	if (f->n + n + 1 > f->cap) {
		size_t cap = (f->n + n + 1) * 2;
		char *v = realloc(f->out, cap);

		if (v == NULL)
			return -1;
		f->out = v;
		f->cap = cap;
	}
	memcpy(f->out + f->n, s, n);
	f->n += n;
	f->out[f->n] = '\0';
	return 0;
}

static int
report_add(char **report, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int
report_add(char **report, const char *fmt, ...)
{
	va_list ap;
	char *line, *both;
	int rc;

	va_start(ap, fmt);
	rc = vasprintf(&line, fmt, ap);
	va_end(ap);
	if (rc < 0)
		return -1;
	if (*report == NULL) {
		*report = line;
		return 0;
	}
	rc = asprintf(&both, "%s%s", *report, line);
	free(line);
	if (rc < 0)
		return -1;
	free(*report);
	*report = both;
	return 0;
}

static int
on_hit(void *arg, const struct screen_hit *h)
{
	struct field_scan *f = arg;
	struct screen_result *res = f->res;

	res->hits++;
	if (!f->any || h->action > f->worst)
		f->worst = h->action;
	f->any = 1;
	if (h->action == SCREEN_REDACT) {
		if (out_put(f, f->src + f->done, h->off - f->done) != 0 ||
		    out_put(f, h->placeholder, strlen(h->placeholder)) != 0)
			return -1;
		f->done = h->off + h->len;
		res->redacted++;
	}
	if (res->report_lines < REPORT_LINES_MAX) {
		res->report_lines++;
		if (report_add(f->report, "%s:%zu: %s: %s (%s)\n", f->file, f->line, f->field,
		    h->rule, action_names[h->action]) != 0)
			return -1;
	} else {
		res->unreported++;
	}
	return 0;
}

/* A conversation's canonical JSON is screened as it is stored. */
static const char *const instruct_fields[] = { "instruction", "input", "output", "system",
	"messages" };

int
screen_dataset(const struct screen_rules *r, const char *file, struct dataset **ds,
    struct screen_result *res, char **report)
{
	enum dataset_kind kind = dataset_kind(*ds);
	size_t nf = kind == DATASET_KIND_TEXT ? 1 : 5;
	struct dataset *out = dataset_new(kind);
	struct field_scan f = { .res = res, .report = report, .file = file };
	char *fields[5] = { 0 };
	int rc = -1;

	if (out == NULL)
		return -1;
	for (size_t i = 0; i < dataset_count(*ds); i++) {
		const struct dataset_record *rec = dataset_sample(*ds, i);
		const char *src[5] = { rec->instruction, rec->input, rec->output, rec->system,
			rec->chat ? rec->chat : "" };
		const char *fv[5];
		size_t fl[5];
		int drop = 0;

		if (kind == DATASET_KIND_TEXT)
			src[0] = rec->text;
		for (size_t k = 0; k < nf; k++) {
			f.src = src[k];
			f.done = 0;
			f.n = 0;
			f.any = 0;
			f.worst = SCREEN_REPORT;
			f.field = kind == DATASET_KIND_TEXT ? "text" : instruct_fields[k];
			f.line = rec->line;
			if (screen_text(r, src[k], strlen(src[k]), on_hit, &f) < 0 ||
			    out_put(&f, src[k] + f.done, strlen(src[k]) - f.done) != 0)
				goto out;
			if (f.any && f.worst == SCREEN_REFUSE)
				res->refused = 1;
			if (f.any && f.worst == SCREEN_DROP)
				drop = 1;
			free(fields[k]);
			fields[k] = f.out;
			f.out = NULL;
			f.cap = 0;
			fv[k] = fields[k];
			fl[k] = strlen(fields[k]);
		}
		if (drop) {
			res->dropped++;
			continue;
		}
		if (dataset_append(out, fv, fl, rec->line) != 0)
			goto out;
	}
	if (res->unreported > 0 && report_add(report, "%s: %zu more screening hits not shown\n",
	    file, res->unreported) != 0)
		goto out;
	dataset_free(*ds);
	*ds = out;
	out = NULL;
	rc = 0;
out:
	for (size_t k = 0; k < 5; k++)
		free(fields[k]);
	free(f.out);
	dataset_free(out);
	return rc;
}

const char *
screen_action_name(enum screen_action a)
{
	return action_names[a];
}
