/* output.c - ftctl's RPC call with error reporting, JSON from protobuf
 * messages, human-friendly numbers and times, and tables that fit. */
#include <math.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "ftctl.h"

int
call_raw(const struct opts *o, Ft__Request *req, Ft__Reply **rep)
{
	char err[512];

	if (ft_call(o->socket, req, o->timeout_ms, o->key_file, rep, err, sizeof(err)) != 0) {
		fprintf(stderr, "ftctl: %s\n", err);
		return EXIT_UNREACHABLE;
	}
	return EXIT_OK;
}

void
refusal_print(const struct opts *o, const Ft__Reply *rep)
{
	const char *last = strrchr(rep->message, '\n');

	if (o->json)
		json_print(json_pack("{s:{s:s,s:s}}", "error", "code",
		    ft_code_name(rep->code), "message", rep->message));
	/* A long reason (a dataset's report) is lines of detail and then
	 * the summary, which gets the code. */
	if (last != NULL && last[1] != '\0')
		fprintf(stderr, "%.*s\nftctl: %s: %s\n", (int)(last - rep->message), rep->message,
		    ft_code_name(rep->code), last + 1);
	else
		fprintf(stderr, "ftctl: %s: %s\n", ft_code_name(rep->code), rep->message);
}

int
call(const struct opts *o, Ft__Request *req, Ft__Reply **rep)
{
	int rc;

	if ((rc = call_raw(o, req, rep)) != EXIT_OK)
		return rc;
	if ((*rep)->code != FT__CODE__OK) {
		refusal_print(o, *rep);
		ft_reply_free(*rep);
		return EXIT_REFUSED;
	}
	/* Request and reply cases share field numbers.  An Empty body may
	 * travel as nothing, so only RPCs with content are checked. */
	if ((int)(*rep)->body_case != (int)req->body_case &&
	    req->body_case != FT__REQUEST__BODY_MODEL_REMOVE &&
	    req->body_case != FT__REQUEST__BODY_DATA_REMOVE) {
		fprintf(stderr, "ftctl: the daemon's reply has no body for this request "
		    "(is ftuned older than ftctl?)\n");
		ft_reply_free(*rep);
		return EXIT_UNREACHABLE;
	}
	return EXIT_OK;
}

void
json_print(json_t *j)
{
	if (j == NULL) {
		fprintf(stderr, "ftctl: out of memory\n");
		return;
	}
	/* 15 digits: doubles print as written, floats arrive pre-rounded. */
	json_dumpf(j, stdout, JSON_INDENT(2) | FT_JSON_DUMP_FLAGS);
	printf("\n");
	fflush(stdout);
	json_decref(j);
}

void
size_format(uint64_t bytes, char *buf, size_t len)
{
	static const char *const unit[] = { "KiB", "MiB", "GiB", "TiB" };
	double v = (double)bytes;
	int u = -1;

	if (bytes < 1024) {
		snprintf(buf, len, "%llu B", (unsigned long long)bytes);
		return;
	}
	while (v >= 1024 && u < 3) {
		v /= 1024;
		u++;
	}
	snprintf(buf, len, v < 10 ? "%.1f %s" : "%.0f %s", v, unit[u]);
}

void
count_format(uint64_t n, char *buf, size_t len)
{
	if (n >= 1000000000)
		snprintf(buf, len, "%.1fB", n / 1e9);
	else if (n >= 1000000)
		snprintf(buf, len, "%.1fM", n / 1e6);
	else if (n >= 1000)
		snprintf(buf, len, "%.1fK", n / 1e3);
	else
		snprintf(buf, len, "%llu", (unsigned long long)n);
}

void
duration_format(uint64_t ms, char *buf, size_t len)
{
	uint64_t s = ms / 1000;

	if (s >= 86400)
		snprintf(buf, len, "%llud %lluh", (unsigned long long)(s / 86400),
		    (unsigned long long)(s % 86400 / 3600));
	else if (s >= 3600)
		snprintf(buf, len, "%lluh %llum", (unsigned long long)(s / 3600),
		    (unsigned long long)(s % 3600 / 60));
	else if (s >= 60)
		snprintf(buf, len, "%llum %llus", (unsigned long long)(s / 60),
		    (unsigned long long)(s % 60));
	else
		snprintf(buf, len, "%llu.%llus", (unsigned long long)s,
		    (unsigned long long)(ms % 1000 / 100));
}

void
clock_format(double seconds, char *buf, size_t len)
{
	unsigned long long s;

	if (!isfinite(seconds) || seconds < 0) {
		snprintf(buf, len, "?");
		return;
	}
	s = (unsigned long long)(seconds + 0.5);
	if (s >= 3600)
		snprintf(buf, len, "%llu:%02llu:%02llu", s / 3600, s % 3600 / 60, s % 60);
	else
		snprintf(buf, len, "%llu:%02llu", s / 60, s % 60);
}

void
time_format(int64_t unix_s, char *buf, size_t len)
{
	time_t t = (time_t)unix_s;
	struct tm tm;

	if (unix_s <= 0 || localtime_r(&t, &tm) == NULL ||
	    strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm) == 0)
		snprintf(buf, len, "-");
}

void
age_format(int64_t unix_s, char *buf, size_t len)
{
	int64_t d = (int64_t)time(NULL) - unix_s;

	if (unix_s <= 0)
		snprintf(buf, len, "-");
	else if (d < 60)
		snprintf(buf, len, "%llds", (long long)(d < 0 ? 0 : d));
	else if (d < 3600)
		snprintf(buf, len, "%lldm", (long long)(d / 60));
	else if (d < 86400)
		snprintf(buf, len, "%lldh", (long long)(d / 3600));
	else
		snprintf(buf, len, "%lldd", (long long)(d / 86400));
}

void
user_format(uint32_t uid, char *buf, size_t len)
{
	struct passwd *pw = getpwuid((uid_t)uid);

	if (pw != NULL)
		snprintf(buf, len, "%s", pw->pw_name);
	else
		snprintf(buf, len, "%u", uid);
}

int
term_width(void)
{
	const char *env = getenv("COLUMNS");
	struct winsize ws;

	if (isatty(STDOUT_FILENO) && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 &&
	    ws.ws_col >= 20)
		return ws.ws_col;
	/* Piped output follows $COLUMNS when the user sets it, as ls does. */
	if (env != NULL && atoi(env) >= 20)
		return atoi(env);
	return 100;
}

#define TABLE_MAX_COLS 15

struct table {
	int ncols;
	char align[TABLE_MAX_COLS + 1];
	char **cells;           /* row-major, the headings first */
	size_t nrows, cap;      /* rows including the headings */
};

/* table_row appends a row of t->ncols strings, copied. */
static int
table_row(struct table *t, const char *const *cells)
{
	if (t->nrows == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		char **c = realloc(t->cells, cap * (size_t)t->ncols * sizeof(char *));

		if (c == NULL)
			return -1;
		t->cells = c;
		t->cap = cap;
	}
	for (int i = 0; i < t->ncols; i++) {
		char *copy = strdup(cells[i] != NULL ? cells[i] : "");

		/* Tabs and newlines would break the columns. */
		for (char *q = copy; q != NULL && *q; q++)
			if (*q == '\n' || *q == '\t' || *q == '\r')
				*q = ' ';
		t->cells[t->nrows * (size_t)t->ncols + (size_t)i] = copy;
	}
	t->nrows++;
	return 0;
}

struct table *
table_new(int ncols, const char *const *heads, const char *align)
{
	struct table *t;

	if (ncols <= 0 || ncols > TABLE_MAX_COLS || (t = calloc(1, sizeof(*t))) == NULL)
		return NULL;
	t->ncols = ncols;
	snprintf(t->align, sizeof(t->align), "%s", align);
	if (table_row(t, heads) != 0) {
		free(t);
		return NULL;
	}
	return t;
}

int
table_add(struct table *t, ...)
{
	const char *cells[TABLE_MAX_COLS];
	va_list ap;

	va_start(ap, t);
	for (int i = 0; i < t->ncols; i++)
		cells[i] = va_arg(ap, const char *);
	va_end(ap);
	return table_row(t, cells);
}

/* utf8_len counts code points, which is what a terminal shows. */
static int
utf8_len(const char *s)
{
	int n = 0;

	for (; *s; s++)
		n += ((unsigned char)*s & 0xC0) != 0x80;
	return n;
}

/* utf8_cut returns the byte length of s's first n code points. */
static size_t
utf8_cut(const char *s, int n)
{
	size_t i = 0;

	for (; s[i] && n >= 0; i++)
		if (((unsigned char)s[i] & 0xC0) != 0x80 && n-- == 0)
			break;
	return i;
}

void
table_print(struct table *t, FILE *f, int width)
{
	table_print_indent(t, f, width, 0);
}

void
table_print_indent(struct table *t, FILE *f, int width, int indent)
{
	int w[TABLE_MAX_COLS] = { 0 }, total = -2;

	if (t == NULL)
		return;
	width -= indent;
	for (size_t r = 0; r < t->nrows; r++)
		for (int c = 0; c < t->ncols; c++) {
			int n = utf8_len(t->cells[r * (size_t)t->ncols + (size_t)c]);

			if (n > w[c])
				w[c] = n;
		}
	for (int c = 0; c < t->ncols; c++)
		total += w[c] + 2;
	/* Cut the widest shrinkable column one character at a time, down to
	 * six; then drop optional columns, rightmost first (w = -1). */
	while (total > width) {
		int widest = -1;

		for (int c = 0; c < t->ncols; c++)
			if (t->align[c] == 's' && w[c] > 6 && (widest < 0 || w[c] > w[widest]))
				widest = c;
		if (widest < 0)
			break;
		w[widest]--;
		total--;
	}
	for (int c = t->ncols - 1; c >= 0 && total > width; c--)
		if (t->align[c] == 'L' || t->align[c] == 'R') {
			total -= w[c] + 2;
			w[c] = -1;
		}
	for (size_t r = 0; r < t->nrows; r++) {
		char line[4096];
		size_t pos = 0;

		for (int c = 0; c < t->ncols && pos < sizeof(line) - 1; c++) {
			const char *s = t->cells[r * (size_t)t->ncols + (size_t)c];
			int n = utf8_len(s);

			if (w[c] < 0)
				continue;
			if (pos > 0)
				pos += (size_t)snprintf(line + pos, sizeof(line) - pos, "  ");
			if (pos >= sizeof(line) - 1)
				break;
			if (n > w[c])
				pos += (size_t)snprintf(line + pos, sizeof(line) - pos, "%.*s~",
				    (int)utf8_cut(s, w[c] - 1), s);
			else if (t->align[c] == 'r' || t->align[c] == 'R')
				pos += (size_t)snprintf(line + pos, sizeof(line) - pos, "%*s%s",
				    w[c] - n, "", s);
			else
				pos += (size_t)snprintf(line + pos, sizeof(line) - pos, "%s%*s",
				    s, w[c] - n, "");
		}
		if (pos > sizeof(line) - 1)
			pos = sizeof(line) - 1;
		while (pos > 0 && line[pos - 1] == ' ')
			pos--;
		fprintf(f, "%*s%.*s\n", indent, "", (int)pos, line);
	}
	for (size_t i = 0; i < t->nrows * (size_t)t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t);
}

/* json_scalar_format renders a scalar without quotes; floats briefly. */
static void
json_scalar_format(const json_t *v, char *buf, size_t len)
{
	if (json_is_string(v))
		snprintf(buf, len, "%s", json_string_value(v));
	else if (json_is_integer(v))
		snprintf(buf, len, "%lld", (long long)json_integer_value(v));
	else if (json_is_real(v))
		snprintf(buf, len, "%.6g", json_real_value(v));
	else if (json_is_true(v))
		snprintf(buf, len, "yes");
	else if (json_is_false(v))
		snprintf(buf, len, "no");
	else if (json_is_null(v))
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "...");
}

static int
object_is_flat(const json_t *j)
{
	const char *key;
	json_t *v;

	json_object_foreach((json_t *)j, key, v)
		if (json_is_object(v) || json_is_array(v))
			return 0;
	return 1;
}

void
json_fields_print(FILE *f, const json_t *j, int indent)
{
	const char *key;
	json_t *v;

	json_object_foreach((json_t *)j, key, v) {
		char buf[256];

		if (json_is_object(v)) {
			fprintf(f, "%*s%s:\n", indent, "", key);
			/* Long flat objects (hyperparameters) read better wrapped. */
			if (json_object_size(v) > 4 && object_is_flat(v))
				json_inline_print(f, v, indent + 2, term_width());
			else
				json_fields_print(f, v, indent + 2);
			continue;
		}
		if (json_is_array(v)) {
			size_t i, pos = 0;
			json_t *e;
			char line[1024] = "";

			json_array_foreach(v, i, e) {
				json_scalar_format(e, buf, sizeof(buf));
				if (pos < sizeof(line))
					pos += (size_t)snprintf(line + pos, sizeof(line) - pos,
					    "%s%s", i > 0 ? ", " : "", buf);
			}
			fprintf(f, "%*s%s: %s\n", indent, "", key, line);
			continue;
		}
		json_scalar_format(v, buf, sizeof(buf));
		fprintf(f, "%*s%s: %s\n", indent, "", key, buf);
	}
}

void
json_inline_print(FILE *f, const json_t *j, int indent, int width)
{
	const char *key;
	json_t *v;
	int col = 0;

	json_object_foreach((json_t *)j, key, v) {
		char buf[256], item[320];
		int n;

		if (json_is_object(v) || json_is_array(v))
			continue;
		json_scalar_format(v, buf, sizeof(buf));
		n = snprintf(item, sizeof(item), "%s %s", key, buf);
		if (col > 0 && col + 2 + n > width) {
			fprintf(f, ",\n");
			col = 0;
		} else if (col > 0) {
			fprintf(f, ", ");
			col += 2;
		}
		if (col == 0)
			col = fprintf(f, "%*s", indent, "");
		fprintf(f, "%s", item);
		col += n;
	}
	if (col > 0)
		fprintf(f, "\n");
}

const char *
enum_word(const ProtobufCEnumDescriptor *d, int v)
{
	static char bufs[8][FT_ENUM_WORD_MAX];
	static unsigned next;
	char *b = bufs[next++ % 8];

	return ft_enum_word(d, v, b) != NULL ? b : "?";
}
