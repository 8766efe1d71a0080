/*
 * template.c - prompt templates: Alpaca, custom placeholder strings, and the
 * model's own Jinja chat template (a subset of Jinja, see fte_tok.h).
 *
 * The Jinja subset is compiled once into a tree (nodes for text, output,
 * for, if and set; expressions with Jinja's precedence) and rendered with
 * the conversation as `messages`.  Values live in a per-render arena.
 */
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fte.h"
#include "fte_io_internal.h"

/* ---- arena ---- */

struct arena_block {
	struct arena_block *next;
	size_t used, cap;
	_Alignas(16) unsigned char data[];
};

struct arena {
	struct arena_block *head;
	size_t total, limit;    /* bytes handed out; limit 0: none */
	int over;               /* an allocation was refused by the limit */
};

static void *
arena_alloc(struct arena *a, size_t n)
{
	n = (n + 15) & ~(size_t)15;
	if (a->limit != 0 && n > a->limit - a->total) {
		a->over = 1;
		return NULL;
	}
	a->total += n;
	if (a->head == NULL || a->head->cap - a->head->used < n) {
		size_t cap = n > 16384 ? n : 16384;
		struct arena_block *b = malloc(sizeof(*b) + cap);
		if (b == NULL)
			return NULL;
		b->next = a->head;
		b->used = 0;
		b->cap = cap;
		a->head = b;
	}
	void *p = a->head->data + a->head->used;
	a->head->used += n;
	memset(p, 0, n);
	return p;
}

static void
arena_free(struct arena *a)
{
	while (a->head != NULL) {
		struct arena_block *b = a->head;
		a->head = b->next;
		free(b);
	}
}

/* ---- values ---- */

enum vtype { V_UNDEF, V_NONE, V_BOOL, V_INT, V_STR, V_LIST, V_DICT, V_FUNC };

struct val {
	enum vtype t;
	long long i;            /* V_BOOL, V_INT */
	const char *s;          /* V_STR; V_FUNC: the global function's name */
	size_t n;               /* V_STR bytes; V_LIST/V_DICT items */
	struct val *items;
	const char **keys;      /* V_DICT */
};

static struct val
v_str(const char *s, size_t n)
{
	return (struct val){ .t = V_STR, .s = s, .n = n };
}

static struct val
v_int(enum vtype t, long long i)
{
	return (struct val){ .t = t, .i = i };
}

static int
v_truthy(const struct val *v)
{
	switch (v->t) {
	case V_UNDEF: case V_NONE: return 0;
	case V_BOOL: case V_INT: return v->i != 0;
	case V_STR: case V_LIST: case V_DICT: return v->n != 0;
	case V_FUNC: return 1;
	}
	return 0;
}

/* ---- syntax tree ---- */

enum ek {
	E_LIT, E_NAME, E_ATTR, E_INDEX, E_SLICE, E_CALL, E_METHOD, E_FILTER,
	E_TEST, E_NOT, E_NEG, E_BIN, E_AND, E_OR, E_COND, E_LIST,
};

struct expr {
	enum ek k;
	char op[3];             /* E_BIN operator */
	int negate;             /* E_TEST: "is not" */
	struct val lit;
	const char *name;       /* E_NAME, E_ATTR, E_METHOD, E_FILTER, E_TEST, E_CALL */
	struct expr *a, *b, *c;
	struct expr *d;         /* E_SLICE: step */
	struct expr **args;
	const char **kw;        /* E_CALL: keyword of each argument, NULL if positional */
	size_t nargs;
	size_t pos;             /* source offset, for messages */
};

enum nk { N_TEXT, N_OUT, N_FOR, N_IF, N_SET, N_GEN, N_BREAK, N_CONTINUE };

struct node;
struct nodes {
	struct node **v;
	size_t n, cap;
};

struct node {
	enum nk k;
	const char *text;       /* N_TEXT */
	size_t len;
	struct expr *e;         /* N_OUT, N_FOR iterable, N_SET value, N_IF first cond */
	struct expr *filter;    /* N_FOR: "for x in xs if filter" */
	const char *var;        /* N_FOR, N_SET */
	const char *var2;       /* N_FOR: second name of "for k, v in"; N_SET: attribute of "set ns.x" */
	struct expr **conds;    /* N_IF: one per branch */
	struct nodes *bodies;   /* N_IF: one per branch; N_FOR: [0] body; N_GEN: [0] */
	size_t nb;
	struct nodes else_body;
	size_t pos;
};

/* {% macro name(params) %}: called like a function, its output is the value. */
struct macro {
	const char *name;
	const char **params;
	struct expr **defaults;  /* NULL where a parameter has none */
	size_t n;
	struct nodes body;
	struct macro *next;
};

enum tpl_kind { TPL_CUSTOM, TPL_CHAT };

/* A placeholder-string template: text pieces and the fields between them. */
enum field { F_TEXT, F_INSTRUCTION, F_INPUT, F_OUTPUT };

struct seg {
	enum field f;
	char *text;
};

struct segs {
	struct seg *v;
	size_t n;
};

struct fte_template {
	enum tpl_kind kind;
	struct segs with_input, no_input;       /* TPL_CUSTOM */
	char *src;                              /* TPL_CHAT */
	char *bos, *eos;
	struct arena ast;
	struct nodes root;
	struct macro *macros;
	size_t max_iterations, max_bytes;       /* the render budget */
	long long clock;                        /* strftime_now's time; 0: now */
};

/* ---- output buffer ---- */

struct buf {
	char *p;
	size_t n, cap;
	size_t limit;           /* 0: none */
	int over;
};

static int
buf_add(struct buf *b, const char *s, size_t n)
{
	if (b->limit != 0 && n > b->limit - b->n) {
		b->over = 1;
		return FTE_ENOMEM;
	}
	if (b->n + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->n + n + 1)
			cap *= 2;
		char *p = realloc(b->p, cap);
		if (p == NULL)
			return FTE_ENOMEM;
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->n, s, n);
	b->n += n;
	b->p[b->n] = '\0';
	return FTE_OK;
}

/* ---- Jinja source: tags and text ---- */

struct parser {
	struct fte_template *tp;
	const char *src;
	size_t len, pos;        /* scanning position in src */
	/* expression tokens of the current tag */
	const char *tag_end;
	const char *tp_pos;     /* token scanning position */
	int tok;                /* current token kind */
	const char *tok_s;
	size_t tok_n;
	int trim_next;          /* the last tag ended with '-' or was a block */
	int depth;              /* nesting, bounded so hostile templates cannot exhaust the stack */
	int err;
};

#define MAX_DEPTH 100

enum { T_END, T_NAME, T_STR, T_INT, T_OP };

static int
perr(struct parser *p, int err, const char *what)
{
	if (p->err == FTE_OK)
		p->err = fte_error_set(err, "chat template: %s at offset %zu", what,
		    p->tok_s ? (size_t)(p->tok_s - p->src) : p->pos);
	return p->err;
}

static void
lex(struct parser *p)
{
	const char *s = p->tp_pos, *e = p->tag_end;

	while (s < e && isspace((unsigned char)*s))
		s++;
	p->tok_s = s;
	if (s >= e) {
		p->tok = T_END;
		p->tok_n = 0;
		p->tp_pos = s;
		return;
	}
	if (isalpha((unsigned char)*s) || *s == '_') {
		const char *q = s;
		while (q < e && (isalnum((unsigned char)*q) || *q == '_'))
			q++;
		p->tok = T_NAME;
		p->tok_n = (size_t)(q - s);
	} else if (isdigit((unsigned char)*s)) {
		const char *q = s;
		while (q < e && isdigit((unsigned char)*q))
			q++;
		p->tok = T_INT;
		p->tok_n = (size_t)(q - s);
	} else if (*s == '\'' || *s == '"') {
		const char *q = s + 1;
		while (q < e && *q != *s)
			q += *q == '\\' && q + 1 < e ? 2 : 1;
		if (q >= e) {
			perr(p, FTE_EINVAL, "unterminated string");
			p->tok = T_END;
			return;
		}
		p->tok = T_STR;
		p->tok_n = (size_t)(q + 1 - s);
	} else {
		static const char *const two[] = { "==", "!=", "<=", ">=", "//", "**" };
		p->tok = T_OP;
		p->tok_n = 1;
		for (size_t i = 0; i < sizeof(two) / sizeof(two[0]); i++)
			if (e - s >= 2 && memcmp(s, two[i], 2) == 0)
				p->tok_n = 2;
	}
	p->tp_pos = s + p->tok_n;
}

static int
is_tok(const struct parser *p, int kind, const char *s)
{
	return p->tok == kind && strlen(s) == p->tok_n && memcmp(p->tok_s, s, p->tok_n) == 0;
}

static int
accept(struct parser *p, int kind, const char *s)
{
	if (!is_tok(p, kind, s))
		return 0;
	lex(p);
	return 1;
}

static int
expect(struct parser *p, int kind, const char *s)
{
	if (accept(p, kind, s))
		return 1;
	char msg[64];
	snprintf(msg, sizeof(msg), "expected '%s'", s);
	perr(p, FTE_EINVAL, msg);
	return 0;
}

static char *
tok_dup(struct parser *p)
{
	char *s = arena_alloc(&p->tp->ast, p->tok_n + 1);

	if (s == NULL) {
		perr(p, FTE_ENOMEM, "out of memory");
		return NULL;
	}
	memcpy(s, p->tok_s, p->tok_n);
	return s;
}

static struct expr *
new_expr(struct parser *p, enum ek k)
{
	struct expr *e = arena_alloc(&p->tp->ast, sizeof(*e));

	if (e == NULL) {
		perr(p, FTE_ENOMEM, "out of memory");
		return NULL;
	}
	e->k = k;
	e->pos = (size_t)(p->tok_s - p->src);
	return e;
}

/* str_literal decodes a quoted string with Python escapes into the arena. */
static int
str_literal(struct parser *p, struct val *out)
{
	const char *s = p->tok_s + 1, *e = p->tok_s + p->tok_n - 1;
	char *r = arena_alloc(&p->tp->ast, (size_t)(e - s) + 1), *q = r;

	if (r == NULL)
		return perr(p, FTE_ENOMEM, "out of memory");
	for (; s < e; s++) {
		if (*s != '\\' || s + 1 >= e) {
			*q++ = *s;
			continue;
		}
		switch (*++s) {
		case 'n': *q++ = '\n'; break;
		case 't': *q++ = '\t'; break;
		case 'r': *q++ = '\r'; break;
		case '\\': *q++ = '\\'; break;
		case '\'': *q++ = '\''; break;
		case '"': *q++ = '"'; break;
		default: *q++ = '\\'; *q++ = *s; break;
		}
	}
	*out = v_str(r, (size_t)(q - r));
	return FTE_OK;
}

static struct expr *parse_expr(struct parser *p);

/* What the renderer implements, so that a template using anything else is
 * refused when it is loaded, with the construct named, not at a request. */
static const char *const known_filters[] = {
	"count", "default", "first", "items", "join", "last", "length", "list", "lower", "reject",
	"rejectattr", "replace", "safe", "select", "selectattr", "string", "tojson", "trim", "upper",
};
static const char *const known_methods[] = {
	"endswith", "get", "items", "keys", "lower", "lstrip", "replace", "rstrip", "split",
	"startswith", "strip", "upper",
};
static const char *const global_funcs[] = { "namespace", "raise_exception", "strftime_now" };
static const char *const known_tests[] = {
	"boolean", "defined", "false", "integer", "iterable", "mapping", "none", "number",
	"sequence", "string", "true", "undefined",
};

static int
known(const char *const *names, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(names[i], name) == 0)
			return 1;
	return 0;
}

/* check_name refuses a filter, method or test the renderer lacks. */
static int
check_name(struct parser *p, const char *kind, const char *name)
{
	char msg[96];
	int ok = kind[0] == 'f' ? known(known_filters, sizeof(known_filters) / sizeof(*known_filters), name) :
	    kind[0] == 'm' ? known(known_methods, sizeof(known_methods) / sizeof(*known_methods), name) :
	    known(known_tests, sizeof(known_tests) / sizeof(*known_tests), name);

	if (ok)
		return FTE_OK;
	snprintf(msg, sizeof(msg), "unsupported %s '%s'", kind, name);
	return perr(p, FTE_ENOTSUP, msg);
}

static int
parse_args(struct parser *p, struct expr *e)
{
	struct expr *args[16];
	const char *kw[16] = { NULL };
	size_t n = 0;

	if (!accept(p, T_OP, ")")) {
		do {
			if (n == 16)
				return perr(p, FTE_ENOTSUP, "more than 16 arguments");
			if (p->tok == T_NAME) {         /* name=value? */
				struct parser save = *p;
				const char *name = tok_dup(p);
				lex(p);
				if (name != NULL && accept(p, T_OP, "="))
					kw[n] = name;
				else
					*p = save;
			}
			if ((args[n++] = parse_expr(p)) == NULL)
				return p->err;
		} while (accept(p, T_OP, ","));
		if (!expect(p, T_OP, ")"))
			return p->err;
	}
	e->args = arena_alloc(&p->tp->ast, (n + 1) * sizeof(*e->args));
	e->kw = arena_alloc(&p->tp->ast, (n + 1) * sizeof(*e->kw));
	if (e->args == NULL || e->kw == NULL)
		return perr(p, FTE_ENOMEM, "out of memory");
	memcpy(e->args, args, n * sizeof(*args));
	memcpy(e->kw, kw, n * sizeof(*kw));
	e->nargs = n;
	return FTE_OK;
}

static struct expr *
parse_primary(struct parser *p)
{
	struct expr *e = new_expr(p, E_LIT);

	if (e == NULL)
		return NULL;
	if (p->tok == T_STR) {
		if (str_literal(p, &e->lit) != FTE_OK)
			return NULL;
		lex(p);
		while (p->tok == T_STR) {      /* 'a' 'b' is 'ab' */
			struct val more;
			if (str_literal(p, &more) != FTE_OK)
				return NULL;
			char *s = arena_alloc(&p->tp->ast, e->lit.n + more.n + 1);
			if (s == NULL)
				return perr(p, FTE_ENOMEM, "out of memory"), NULL;
			memcpy(s, e->lit.s, e->lit.n);
			memcpy(s + e->lit.n, more.s, more.n);
			e->lit = v_str(s, e->lit.n + more.n);
			lex(p);
		}
	} else if (p->tok == T_INT) {
		e->lit = v_int(V_INT, strtoll(p->tok_s, NULL, 10));
		lex(p);
	} else if (p->tok == T_NAME) {
		if (is_tok(p, T_NAME, "true") || is_tok(p, T_NAME, "True"))
			e->lit = v_int(V_BOOL, 1);
		else if (is_tok(p, T_NAME, "false") || is_tok(p, T_NAME, "False"))
			e->lit = v_int(V_BOOL, 0);
		else if (is_tok(p, T_NAME, "none") || is_tok(p, T_NAME, "None"))
			e->lit.t = V_NONE;
		else {
			e->k = E_NAME;
			if ((e->name = tok_dup(p)) == NULL)
				return NULL;
		}
		lex(p);
		if (e->k == E_NAME && accept(p, T_OP, "(")) {
			e->k = E_CALL;
			if (parse_args(p, e) != FTE_OK)
				return NULL;
			int macro = 0;
			for (const struct macro *m = p->tp->macros; m != NULL && !macro; m = m->next)
				macro = strcmp(m->name, e->name) == 0;
			if (!macro && !known(global_funcs, sizeof(global_funcs) / sizeof(*global_funcs), e->name)) {
				char msg[96];
				snprintf(msg, sizeof(msg), "unsupported function '%s'", e->name);
				p->tok_s = p->src + e->pos;
				return perr(p, FTE_ENOTSUP, msg), NULL;
			}
		}
	} else if (accept(p, T_OP, "(")) {
		e = parse_expr(p);
		if (e == NULL || !expect(p, T_OP, ")"))
			return NULL;
	} else if (accept(p, T_OP, "[")) {
		e->k = E_LIST;
		struct expr *items[64];
		size_t n = 0;
		if (!accept(p, T_OP, "]")) {
			do {
				if (n == 64)
					return perr(p, FTE_ENOTSUP, "list literal over 64 items"), NULL;
				if ((items[n++] = parse_expr(p)) == NULL)
					return NULL;
			} while (accept(p, T_OP, ","));
			if (!expect(p, T_OP, "]"))
				return NULL;
		}
		if ((e->args = arena_alloc(&p->tp->ast, (n + 1) * sizeof(*e->args))) == NULL)
			return perr(p, FTE_ENOMEM, "out of memory"), NULL;
		memcpy(e->args, items, n * sizeof(*items));
		e->nargs = n;
	} else {
		perr(p, FTE_EINVAL, p->tok == T_END ? "expression expected" : "unexpected token");
		return NULL;
	}
	return e;
}

static struct expr *
parse_postfix(struct parser *p)
{
	struct expr *e = parse_primary(p);

	while (e != NULL) {
		struct expr *x;
		if (accept(p, T_OP, ".")) {
			if (p->tok != T_NAME)
				return perr(p, FTE_EINVAL, "attribute name expected"), NULL;
			if ((x = new_expr(p, E_ATTR)) == NULL || (x->name = tok_dup(p)) == NULL)
				return NULL;
			lex(p);
			x->a = e;
			if (accept(p, T_OP, "(")) {
				x->k = E_METHOD;
				if (check_name(p, "method", x->name) != FTE_OK || parse_args(p, x) != FTE_OK)
					return NULL;
			}
		} else if (accept(p, T_OP, "[")) {
			if ((x = new_expr(p, E_INDEX)) == NULL)
				return NULL;
			x->a = e;
			if (!is_tok(p, T_OP, ":") && (x->b = parse_expr(p)) == NULL)
				return NULL;
			if (accept(p, T_OP, ":")) {
				x->k = E_SLICE;
				if (!is_tok(p, T_OP, "]") && !is_tok(p, T_OP, ":") && (x->c = parse_expr(p)) == NULL)
					return NULL;
				if (accept(p, T_OP, ":") && !is_tok(p, T_OP, "]") && (x->d = parse_expr(p)) == NULL)
					return NULL;
			}
			if (!expect(p, T_OP, "]"))
				return NULL;
		} else if (accept(p, T_OP, "|")) {
			if (p->tok != T_NAME)
				return perr(p, FTE_EINVAL, "filter name expected"), NULL;
			if ((x = new_expr(p, E_FILTER)) == NULL || (x->name = tok_dup(p)) == NULL ||
			    check_name(p, "filter", x->name) != FTE_OK)
				return NULL;
			lex(p);
			x->a = e;
			if (accept(p, T_OP, "(") && parse_args(p, x) != FTE_OK)
				return NULL;
		} else if (accept(p, T_NAME, "is")) {
			if ((x = new_expr(p, E_TEST)) == NULL)
				return NULL;
			x->negate = accept(p, T_NAME, "not");
			if (p->tok != T_NAME && !is_tok(p, T_NAME, "none"))
				return perr(p, FTE_EINVAL, "test name expected"), NULL;
			if ((x->name = tok_dup(p)) == NULL || check_name(p, "test", x->name) != FTE_OK)
				return NULL;
			lex(p);
			x->a = e;
		} else {
			break;
		}
		e = x;
	}
	return e;
}

static struct expr *
parse_unary(struct parser *p)
{
	if (accept(p, T_OP, "-")) {
		struct expr *e = new_expr(p, E_NEG);
		if (e == NULL || p->depth >= MAX_DEPTH)
			return perr(p, FTE_ENOTSUP, "expression nested too deeply"), NULL;
		p->depth++;
		e->a = parse_unary(p);
		p->depth--;
		return e->a != NULL ? e : NULL;
	}
	return parse_postfix(p);
}

static struct expr *
bin(struct parser *p, const char *op, struct expr *a, struct expr *b)
{
	struct expr *e;

	if (a == NULL || b == NULL || (e = new_expr(p, E_BIN)) == NULL)
		return NULL;
	snprintf(e->op, sizeof(e->op), "%s", op);
	e->a = a;
	e->b = b;
	return e;
}

static struct expr *
parse_mul(struct parser *p)
{
	struct expr *e = parse_unary(p);

	while (e != NULL) {
		if (accept(p, T_OP, "*"))
			e = bin(p, "*", e, parse_unary(p));
		else if (accept(p, T_OP, "%"))
			e = bin(p, "%", e, parse_unary(p));
		else if (accept(p, T_OP, "//"))
			e = bin(p, "//", e, parse_unary(p));
		else
			break;
	}
	return e;
}

static struct expr *
parse_add(struct parser *p)
{
	struct expr *e = parse_mul(p);

	while (e != NULL) {
		if (accept(p, T_OP, "+"))
			e = bin(p, "+", e, parse_mul(p));
		else if (accept(p, T_OP, "-"))
			e = bin(p, "-", e, parse_mul(p));
		else
			break;
	}
	return e;
}

static struct expr *
parse_concat(struct parser *p)
{
	struct expr *e = parse_add(p);

	while (e != NULL && accept(p, T_OP, "~"))
		e = bin(p, "~", e, parse_add(p));
	return e;
}

static struct expr *
parse_compare(struct parser *p)
{
	static const char *const ops[] = { "==", "!=", "<=", ">=", "<", ">" };
	struct expr *e = parse_concat(p);

	while (e != NULL) {
		size_t i;
		for (i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
			if (is_tok(p, T_OP, ops[i]))
				break;
		if (i < sizeof(ops) / sizeof(ops[0])) {
			lex(p);
			e = bin(p, ops[i], e, parse_concat(p));
		} else if (accept(p, T_NAME, "in")) {
			e = bin(p, "in", e, parse_concat(p));
		} else if (is_tok(p, T_NAME, "not")) {
			/* "not in": peek at the next word, else leave "not" be */
			struct parser save = *p;
			lex(p);
			if (!accept(p, T_NAME, "in")) {
				*p = save;
				break;
			}
			e = bin(p, "ni", e, parse_concat(p));
		} else {
			break;
		}
	}
	return e;
}

static struct expr *
parse_not(struct parser *p)
{
	if (accept(p, T_NAME, "not")) {
		struct expr *e = new_expr(p, E_NOT);
		if (e == NULL || p->depth >= MAX_DEPTH)
			return perr(p, FTE_ENOTSUP, "expression nested too deeply"), NULL;
		p->depth++;
		e->a = parse_not(p);
		p->depth--;
		return e->a != NULL ? e : NULL;
	}
	return parse_compare(p);
}

static struct expr *
parse_logic(struct parser *p, int level)
{
	struct expr *e = level ? parse_not(p) : parse_logic(p, 1);
	const char *word = level ? "and" : "or";

	while (e != NULL && accept(p, T_NAME, word)) {
		struct expr *x = new_expr(p, level ? E_AND : E_OR);
		if (x == NULL)
			return NULL;
		x->a = e;
		if ((x->b = level ? parse_not(p) : parse_logic(p, 1)) == NULL)
			return NULL;
		e = x;
	}
	return e;
}

static struct expr *
parse_expr(struct parser *p)
{
	if (p->depth >= MAX_DEPTH)
		return perr(p, FTE_ENOTSUP, "expression nested too deeply"), NULL;
	p->depth++;
	struct expr *e = parse_logic(p, 0);
	p->depth--;

	if (e != NULL && accept(p, T_NAME, "if")) {
		struct expr *x = new_expr(p, E_COND);
		if (x == NULL)
			return NULL;
		x->a = e;
		if ((x->b = parse_logic(p, 0)) == NULL)
			return NULL;
		if (accept(p, T_NAME, "else") && (x->c = parse_expr(p)) == NULL)
			return NULL;
		e = x;
	}
	return e;
}

static int
nodes_push(struct parser *p, struct nodes *l, struct node *n)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 8;
		struct node **v = arena_alloc(&p->tp->ast, cap * sizeof(*v));
		if (v == NULL)
			return perr(p, FTE_ENOMEM, "out of memory");
		if (l->n)
			memcpy(v, l->v, l->n * sizeof(*v));
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = n;
	return FTE_OK;
}

static struct node *
new_node(struct parser *p, enum nk k)
{
	struct node *n = arena_alloc(&p->tp->ast, sizeof(*n));

	if (n == NULL)
		perr(p, FTE_ENOMEM, "out of memory");
	else
		n->k = k, n->pos = p->pos;
	return n;
}

/* next_tag finds the next "{{", "{%" or "{#" at or after p->pos; it returns
 * the offset (len if none) and applies lstrip_blocks to the text before. */
static size_t
next_tag(const struct parser *p, size_t *text_end)
{
	const char *s = p->src;
	size_t i = p->pos;

	for (; i + 1 < p->len; i++)
		if (s[i] == '{' && (s[i + 1] == '{' || s[i + 1] == '%' || s[i + 1] == '#'))
			break;
	if (i + 1 >= p->len) {
		*text_end = p->len;
		return p->len;
	}
	size_t end = i;
	if (i + 2 < p->len && s[i + 2] == '-') {
		while (end > p->pos && isspace((unsigned char)s[end - 1]))
			end--;
	} else if (s[i + 1] != '{' && !(i + 2 < p->len && s[i + 2] == '+')) {
		/* lstrip_blocks: blanks from the line start to a block tag go */
		size_t j = end;
		while (j > p->pos && (s[j - 1] == ' ' || s[j - 1] == '\t'))
			j--;
		if (j == 0 || s[j - 1] == '\n')
			end = j;
	}
	*text_end = end;
	return i;
}

/* find_close finds the end of a tag: in {{ }} and {% %} a quoted string
 * may hold the closing characters ("'}}'" in Mistral-Nemo's template). */
static const char *
find_close(const char *s, const char *close)
{
	if (close[1] == '}' && close[0] == '#')
		return strstr(s, close);
	for (; *s != '\0'; s++) {
		if (*s == '\'' || *s == '"') {
			const char *q = s + 1;
			while (*q != '\0' && *q != *s)
				q += *q == '\\' && q[1] != '\0' ? 2 : 1;
			if (*q == '\0')
				return NULL;
			s = q;
		} else if (s[0] == close[0] && s[1] == close[1]) {
			return s;
		}
	}
	return NULL;
}

static int parse_nodes(struct parser *p, struct nodes *out, const char *const *stop, int *which);

/* parse_body parses nodes until a block tag whose first word is in stop
 * (NULL-terminated); that word's index is returned in *which (-1 at EOF). */
static int
parse_body(struct parser *p, struct nodes *out, const char *const *stop, int *which)
{
	*which = -1;
	if (p->depth >= MAX_DEPTH)
		return perr(p, FTE_ENOTSUP, "blocks nested too deeply");
	p->depth++;
	int rc = parse_nodes(p, out, stop, which);
	p->depth--;
	return rc;
}

/* parse_macro parses "name(a, b='x') %}" and the body to endmacro; the
 * macro is the template's from then on (Jinja's are too, at top level). */
static int
parse_macro(struct parser *p)
{
	static const char *const ends[] = { "endmacro", NULL };
	struct macro *m = arena_alloc(&p->tp->ast, sizeof(*m));
	const char *params[16];
	struct expr *defaults[16] = { NULL };
	int w;

	if (m == NULL)
		return perr(p, FTE_ENOMEM, "out of memory");
	if (p->tok != T_NAME)
		return perr(p, FTE_EINVAL, "macro name expected");
	if ((m->name = tok_dup(p)) == NULL)
		return p->err;
	lex(p);
	if (!expect(p, T_OP, "("))
		return p->err;
	if (!accept(p, T_OP, ")")) {
		do {
			if (m->n == 16)
				return perr(p, FTE_ENOTSUP, "macro with more than 16 parameters");
			if (p->tok != T_NAME)
				return perr(p, FTE_EINVAL, "parameter name expected");
			if ((params[m->n] = tok_dup(p)) == NULL)
				return p->err;
			lex(p);
			if (accept(p, T_OP, "=") && (defaults[m->n] = parse_expr(p)) == NULL)
				return p->err;
			m->n++;
		} while (accept(p, T_OP, ","));
		if (!expect(p, T_OP, ")"))
			return p->err;
	}
	if (p->tok != T_END)
		return perr(p, FTE_EINVAL, "unexpected text in {% macro %}");
	m->params = arena_alloc(&p->tp->ast, (m->n + 1) * sizeof(*m->params));
	m->defaults = arena_alloc(&p->tp->ast, (m->n + 1) * sizeof(*m->defaults));
	if (m->params == NULL || m->defaults == NULL)
		return perr(p, FTE_ENOMEM, "out of memory");
	memcpy(m->params, params, m->n * sizeof(*params));
	memcpy(m->defaults, defaults, m->n * sizeof(*defaults));
	if (parse_body(p, &m->body, ends, &w) != FTE_OK)
		return p->err;
	if (w != 0)
		return perr(p, FTE_EINVAL, "{% macro %} without {% endmacro %}");
	m->next = p->tp->macros;
	p->tp->macros = m;
	return FTE_OK;
}

static int
parse_nodes(struct parser *p, struct nodes *out, const char *const *stop, int *which)
{
	while (p->pos < p->len && p->err == FTE_OK) {
		size_t text_end, at = next_tag(p, &text_end);
		size_t start = p->pos;
		if (p->trim_next) {
			/* trim_blocks: one newline after a block tag; '-': all blanks */
			if (p->trim_next == 2)
				while (start < text_end && isspace((unsigned char)p->src[start]))
					start++;
			else if (start < text_end && p->src[start] == '\n')
				start++;
			p->trim_next = 0;
		}
		if (text_end > start) {
			struct node *n = new_node(p, N_TEXT);
			if (n == NULL)
				return p->err;
			n->text = p->src + start;
			n->len = text_end - start;
			if (nodes_push(p, out, n) != FTE_OK)
				return p->err;
		}
		if (at >= p->len) {
			p->pos = p->len;
			break;
		}
		char kind = p->src[at + 1];
		const char *close = kind == '{' ? "}}" : kind == '%' ? "%}" : "#}";
		const char *end = find_close(p->src + at + 2, close);
		if (end == NULL) {
			p->pos = at;
			p->tok_s = p->src + at;
			return perr(p, FTE_EINVAL, "unclosed tag");
		}
		const char *body = p->src + at + 2;
		if (*body == '-' || *body == '+')
			body++;
		const char *body_end = end;
		int strip_after = end > body && end[-1] == '-';
		if (strip_after)
			body_end--;
		p->pos = (size_t)(end + 2 - p->src);
		p->trim_next = strip_after ? 2 : kind == '%' || kind == '#' ? 1 : 0;
		if (kind == '#')
			continue;
		p->tp_pos = body;
		p->tag_end = body_end;
		lex(p);
		if (kind == '{') {
			struct node *n = new_node(p, N_OUT);
			if (n == NULL || (n->e = parse_expr(p)) == NULL)
				return p->err;
			if (p->tok != T_END)
				return perr(p, FTE_EINVAL, "unexpected text in {{ }}");
			if (nodes_push(p, out, n) != FTE_OK)
				return p->err;
			continue;
		}
		if (p->tok != T_NAME)
			return perr(p, FTE_EINVAL, "statement expected");
		for (int i = 0; stop != NULL && stop[i] != NULL; i++) {
			if (is_tok(p, T_NAME, stop[i])) {
				*which = i;
				lex(p);
				return FTE_OK;
			}
		}
		if (accept(p, T_NAME, "for")) {
			struct node *n = new_node(p, N_FOR);
			static const char *const ends[] = { "endfor", "else", NULL };
			int w;
			if (n == NULL)
				return p->err;
			if (p->tok != T_NAME)
				return perr(p, FTE_EINVAL, "loop variable expected");
			if ((n->var = tok_dup(p)) == NULL)
				return p->err;
			lex(p);
			if (accept(p, T_OP, ",")) {
				if (p->tok != T_NAME)
					return perr(p, FTE_EINVAL, "loop variable expected");
				if ((n->var2 = tok_dup(p)) == NULL)
					return p->err;
				lex(p);
				if (is_tok(p, T_OP, ","))
					return perr(p, FTE_ENOTSUP, "loops over more than two names are not supported");
			}
			/* the iterable has no "x if c else y": an "if" is the loop filter */
			if (!expect(p, T_NAME, "in") || (n->e = parse_logic(p, 0)) == NULL)
				return p->err;
			if (accept(p, T_NAME, "if") && (n->filter = parse_expr(p)) == NULL)
				return p->err;
			if (p->tok != T_END)
				return perr(p, FTE_ENOTSUP, "unsupported {% for %} form");
			if ((n->bodies = arena_alloc(&p->tp->ast, 2 * sizeof(*n->bodies))) == NULL)
				return perr(p, FTE_ENOMEM, "out of memory");
			if (parse_body(p, &n->bodies[0], ends, &w) != FTE_OK)
				return p->err;
			if (w == 1 && parse_body(p, &n->else_body, ends, &w) != FTE_OK)
				return p->err;
			if (w != 0)
				return perr(p, FTE_EINVAL, "{% for %} without {% endfor %}");
			if (nodes_push(p, out, n) != FTE_OK)
				return p->err;
		} else if (accept(p, T_NAME, "if")) {
			struct node *n = new_node(p, N_IF);
			static const char *const ends[] = { "endif", "elif", "else", NULL };
			struct expr *conds[64];
			struct nodes bodies[64];
			int w = 1;
			size_t nb = 0;
			if (n == NULL)
				return p->err;
			memset(bodies, 0, sizeof(bodies));
			while (w == 1) {       /* the if, then each elif */
				if (nb == 64)
					return perr(p, FTE_ENOTSUP, "more than 64 elif branches");
				if ((conds[nb] = parse_expr(p)) == NULL)
					return p->err;
				if (parse_body(p, &bodies[nb++], ends, &w) != FTE_OK)
					return p->err;
			}
			if (w == 2 && parse_body(p, &n->else_body, ends, &w) != FTE_OK)
				return p->err;
			if (w != 0)
				return perr(p, FTE_EINVAL, "{% if %} without {% endif %}");
			n->conds = arena_alloc(&p->tp->ast, nb * sizeof(*n->conds));
			n->bodies = arena_alloc(&p->tp->ast, nb * sizeof(*n->bodies));
			if (n->conds == NULL || n->bodies == NULL)
				return perr(p, FTE_ENOMEM, "out of memory");
			memcpy(n->conds, conds, nb * sizeof(*conds));
			memcpy(n->bodies, bodies, nb * sizeof(*bodies));
			n->nb = nb;
			if (nodes_push(p, out, n) != FTE_OK)
				return p->err;
		} else if (accept(p, T_NAME, "set")) {
			struct node *n = new_node(p, N_SET);
			if (n == NULL)
				return p->err;
			if (p->tok != T_NAME)
				return perr(p, FTE_EINVAL, "variable name expected");
			if ((n->var = tok_dup(p)) == NULL)
				return p->err;
			lex(p);
			if (accept(p, T_OP, ".")) {     /* set ns.attr = ... */
				if (p->tok != T_NAME)
					return perr(p, FTE_EINVAL, "attribute name expected");
				if ((n->var2 = tok_dup(p)) == NULL)
					return p->err;
				lex(p);
			}
			if (!expect(p, T_OP, "=") || (n->e = parse_expr(p)) == NULL)
				return p->err;
			if (p->tok != T_END)
				return perr(p, FTE_ENOTSUP, "unsupported {% set %} form");
			if (nodes_push(p, out, n) != FTE_OK)
				return p->err;
		} else if (accept(p, T_NAME, "macro")) {
			if (parse_macro(p) != FTE_OK)
				return p->err;
		} else if (accept(p, T_NAME, "generation")) {
			/* transformers' assistant-token marker: the body renders as is */
			static const char *const ends[] = { "endgeneration", NULL };
			struct node *n = new_node(p, N_GEN);
			int w;
			if (n == NULL)
				return p->err;
			if ((n->bodies = arena_alloc(&p->tp->ast, sizeof(*n->bodies))) == NULL)
				return perr(p, FTE_ENOMEM, "out of memory");
			if (p->tok != T_END)
				return perr(p, FTE_EINVAL, "unexpected text in {% generation %}");
			if (parse_body(p, &n->bodies[0], ends, &w) != FTE_OK)
				return p->err;
			if (w != 0)
				return perr(p, FTE_EINVAL, "{% generation %} without {% endgeneration %}");
			if (nodes_push(p, out, n) != FTE_OK)
				return p->err;
		} else if (is_tok(p, T_NAME, "break") || is_tok(p, T_NAME, "continue")) {
			struct node *n = new_node(p, p->tok_s[0] == 'b' ? N_BREAK : N_CONTINUE);
			if (n == NULL)
				return p->err;
			lex(p);
			if (p->tok != T_END)
				return perr(p, FTE_EINVAL, "unexpected text after break or continue");
			if (nodes_push(p, out, n) != FTE_OK)
				return p->err;
		} else {
			char msg[80];
			snprintf(msg, sizeof(msg), "unsupported statement {%% %.*s %%}", (int)p->tok_n, p->tok_s);
			return perr(p, FTE_ENOTSUP, msg);
		}
	}
	return p->err;
}

/* ---- rendering ---- */

struct var {
	const char *name;
	struct val v;
};

struct render {
	const struct fte_template *tp;
	struct arena ar;
	struct var vars[256];
	size_t nvars;
	size_t frame;           /* a macro sees its own variables from here, */
	size_t nglobals;        /* and the render's arguments below this */
	struct buf out;
	size_t iterations, max_iterations;
	int calls;              /* macro calls under way */
};

/* break and continue unwind render_nodes to their loop as these codes. */
enum { R_BREAK = 100, R_CONTINUE };

/* A template is code from the model's files: each render is bounded in
 * loop iterations, output bytes and working memory (strings and lists it
 * builds), so nested loops over messages cannot take the daemon's CPU or
 * memory. */
static int
budget_exceeded(size_t n, const char *what)
{
	return fte_error_set(FTE_ERANGE, "chat template exceeded its budget of %zu %s", n, what);
}

static int
rerr(int err, size_t pos, const char *what)
{
	return fte_error_set(err, "chat template: %s at offset %zu", what, pos);
}

static int
var_push(struct render *r, const char *name, struct val v, size_t pos)
{
	if (r->nvars == sizeof(r->vars) / sizeof(r->vars[0]))
		return rerr(FTE_ERANGE, pos, "too many variables");
	r->vars[r->nvars++] = (struct var){ name, v };
	return FTE_OK;
}

static struct val
dict_get(const struct val *d, const char *key, size_t klen)
{
	if (d->t == V_DICT)
		for (size_t i = 0; i < d->n; i++)
			if (strlen(d->keys[i]) == klen && memcmp(d->keys[i], key, klen) == 0)
				return d->items[i];
	return (struct val){ .t = V_UNDEF };
}

static struct val
lookup(const struct render *r, const char *name)
{
	for (size_t i = r->nvars; i-- > r->frame;)
		if (strcmp(r->vars[i].name, name) == 0)
			return r->vars[i].v;
	for (size_t i = r->frame < r->nglobals ? r->frame : r->nglobals; i-- > 0;)
		if (strcmp(r->vars[i].name, name) == 0)
			return r->vars[i].v;
	/* the global functions are defined ("if strftime_now is defined") */
	for (size_t i = 0; i < sizeof(global_funcs) / sizeof(global_funcs[0]); i++)
		if (strcmp(global_funcs[i], name) == 0)
			return (struct val){ .t = V_FUNC, .s = global_funcs[i] };
	return (struct val){ .t = V_UNDEF };
}

/* dump_value writes v as Python prints it inside a container (repr,
 * indent < 0) or as json.dumps(v, ensure_ascii=False, indent=indent - 1)
 * does (indent 0: indent=None, on one line), which is transformers' tojson. */
static int
dump_value(struct buf *b, const struct val *v, int indent, int level)
{
	int json = indent >= 0, rc = FTE_OK;
	char tmp[32];

	switch (v->t) {
	case V_UNDEF: case V_FUNC:
		return json ? FTE_EINVAL : buf_add(b, v->t == V_FUNC ? "<function>" : "Undefined", v->t == V_FUNC ? 10 : 9);
	case V_NONE:
		return json ? buf_add(b, "null", 4) : buf_add(b, "None", 4);
	case V_BOOL:
		return buf_add(b, v->i ? (json ? "true" : "True") : (json ? "false" : "False"), v->i ? 4 : 5);
	case V_INT:
		return buf_add(b, tmp, (size_t)snprintf(tmp, sizeof(tmp), "%lld", v->i));
	case V_STR: {
		/* repr quotes with ' unless the text has ' and no " */
		char q = json || (memchr(v->s, '\'', v->n) && !memchr(v->s, '"', v->n)) ? '"' : '\'';
		rc = buf_add(b, &q, 1);
		for (size_t i = 0; i < v->n && rc == FTE_OK; i++) {
			unsigned char c = (unsigned char)v->s[i];
			const char *esc = c == '\n' ? "\\n" : c == '\r' ? "\\r" : c == '\t' ? "\\t" :
			    c == '\\' ? "\\\\" : c == (unsigned char)q ? (q == '"' ? "\\\"" : "\\'") :
			    json && c == '\b' ? "\\b" : json && c == '\f' ? "\\f" : NULL;
			if (esc != NULL)
				rc = buf_add(b, esc, strlen(esc));
			else if (c < 0x20 || (!json && c == 0x7f))
				rc = buf_add(b, tmp, (size_t)snprintf(tmp, sizeof(tmp), json ? "\\u%04x" : "\\x%02x", c));
			else
				rc = buf_add(b, (const char *)&c, 1);
		}
		return rc == FTE_OK ? buf_add(b, &q, 1) : rc;
	}
	case V_LIST: case V_DICT: {
		int dict = v->t == V_DICT;
		if (level >= MAX_DEPTH)
			return FTE_ERANGE;
		if ((rc = buf_add(b, dict ? "{" : "[", 1)) != FTE_OK)
			return rc;
		for (size_t i = 0; i < v->n && rc == FTE_OK; i++) {
			if (i > 0)
				rc = buf_add(b, indent > 0 ? "," : ", ", indent > 0 ? 1 : 2);
			if (rc == FTE_OK && indent > 0) {
				rc = buf_add(b, "\n", 1);
				for (int k = 0; k < (indent - 1) * (level + 1) && rc == FTE_OK; k++)
					rc = buf_add(b, " ", 1);
			}
			if (rc == FTE_OK && dict) {
				struct val key = v_str(v->keys[i], strlen(v->keys[i]));
				if ((rc = dump_value(b, &key, indent, level + 1)) == FTE_OK)
					rc = buf_add(b, ": ", 2);
			}
			if (rc == FTE_OK)
				rc = dump_value(b, &v->items[i], indent, level + 1);
		}
		if (rc == FTE_OK && indent > 0 && v->n > 0) {
			rc = buf_add(b, "\n", 1);
			for (int k = 0; k < (indent - 1) * level && rc == FTE_OK; k++)
				rc = buf_add(b, " ", 1);
		}
		return rc == FTE_OK ? buf_add(b, dict ? "}" : "]", 1) : rc;
	}
	}
	return FTE_EINVAL;
}

/* dump is dump_value into the render's arena. */
static int
dump(struct render *r, const struct val *v, int indent, struct val *out)
{
	struct buf b = { .limit = r->tp->max_bytes };
	int rc = dump_value(&b, v, indent, 0);
	char *s = rc == FTE_OK ? arena_alloc(&r->ar, b.n + 1) : NULL;

	if (s != NULL)
		memcpy(s, b.p, b.n);
	free(b.p);
	if (rc == FTE_EINVAL)
		return fte_error_set(FTE_EINVAL, "chat template: tojson of an undefined value or a function");
	if (rc == FTE_ERANGE)
		return fte_error_set(FTE_ERANGE, "chat template: value nested too deeply to print");
	if (b.over)
		r->ar.over = 1;
	if (s == NULL)
		return FTE_ENOMEM;
	*out = v_str(s, b.n);
	return FTE_OK;
}

/* to_str renders a value as Jinja prints it. */
static int
to_str(struct render *r, const struct val *v, struct val *out)
{
	char tmp[32];

	switch (v->t) {
	case V_UNDEF: *out = v_str("", 0); return FTE_OK;
	case V_NONE: *out = v_str("None", 4); return FTE_OK;
	case V_BOOL: *out = v->i ? v_str("True", 4) : v_str("False", 5); return FTE_OK;
	case V_STR: *out = *v; return FTE_OK;
	case V_INT: {
		int n = snprintf(tmp, sizeof(tmp), "%lld", v->i);
		char *s = arena_alloc(&r->ar, (size_t)n + 1);
		if (s == NULL)
			return FTE_ENOMEM;
		memcpy(s, tmp, (size_t)n);
		*out = v_str(s, (size_t)n);
		return FTE_OK;
	}
	case V_LIST: case V_DICT: case V_FUNC:
		break;
	}
	return dump(r, v, -1, out);
}

static int
concat(struct render *r, const struct val *a, const struct val *b, struct val *out)
{
	char *s = arena_alloc(&r->ar, a->n + b->n + 1);

	if (s == NULL)
		return FTE_ENOMEM;
	memcpy(s, a->s, a->n);
	memcpy(s + a->n, b->s, b->n);
	*out = v_str(s, a->n + b->n);
	return FTE_OK;
}

static int
v_equal(const struct val *a, const struct val *b)
{
	int an = a->t == V_INT || a->t == V_BOOL, bn = b->t == V_INT || b->t == V_BOOL;

	if (an && bn)
		return a->i == b->i;
	if (a->t == V_STR && b->t == V_STR)
		return a->n == b->n && memcmp(a->s, b->s, a->n) == 0;
	if (a->t != b->t)
		return 0;
	if (a->t == V_LIST || a->t == V_DICT) {
		if (a->n != b->n)
			return 0;
		for (size_t i = 0; i < a->n; i++) {
			struct val bv = a->t == V_LIST ? b->items[i] : dict_get(b, a->keys[i], strlen(a->keys[i]));
			if (bv.t == V_UNDEF || !v_equal(&a->items[i], &bv))
				return 0;
		}
	}
	if (a->t == V_FUNC)
		return a->s == b->s;
	return 1;               /* none == none; equal lists and mappings */
}

static int eval(struct render *r, const struct expr *e, struct val *out);

/* dict_items is d.items() / d | items: a list of [key, value] pairs. */
static int
dict_items(struct render *r, const struct val *d, struct val *out)
{
	struct val *pairs = arena_alloc(&r->ar, (2 * d->n + 1) * sizeof(*pairs));
	struct val *list = arena_alloc(&r->ar, (d->n + 1) * sizeof(*list));

	if (pairs == NULL || list == NULL)
		return FTE_ENOMEM;
	for (size_t i = 0; i < d->n; i++) {
		pairs[2 * i] = v_str(d->keys[i], strlen(d->keys[i]));
		pairs[2 * i + 1] = d->items[i];
		list[i] = (struct val){ .t = V_LIST, .items = &pairs[2 * i], .n = 2 };
	}
	*out = (struct val){ .t = V_LIST, .items = list, .n = d->n };
	return FTE_OK;
}

static int
strip(const struct val *v, int left, int right, struct val *out)
{
	size_t a = 0, b = v->n;

	while (left && a < b && isspace((unsigned char)v->s[a]))
		a++;
	while (right && b > a && isspace((unsigned char)v->s[b - 1]))
		b--;
	*out = v_str(v->s + a, b - a);
	return FTE_OK;
}

static int
change_case(struct render *r, const struct val *v, int upper, struct val *out)
{
	char *s = arena_alloc(&r->ar, v->n + 1);

	if (s == NULL)
		return FTE_ENOMEM;
	for (size_t i = 0; i < v->n; i++)
		s[i] = (char)(upper ? toupper((unsigned char)v->s[i]) : tolower((unsigned char)v->s[i]));
	*out = v_str(s, v->n);
	return FTE_OK;
}

/* apply_test is "v is name(args)" (selectattr's tests too) in *res. */
static int
apply_test(const struct expr *e, const char *name, const struct val *a, const struct val *args,
    size_t nargs, int *res)
{
	if (strcmp(name, "defined") == 0)
		*res = a->t != V_UNDEF;
	else if (strcmp(name, "undefined") == 0)
		*res = a->t == V_UNDEF;
	else if (strcmp(name, "none") == 0)
		*res = a->t == V_NONE;
	else if (strcmp(name, "string") == 0)
		*res = a->t == V_STR;
	else if (strcmp(name, "number") == 0)
		*res = a->t == V_INT || a->t == V_BOOL;
	else if (strcmp(name, "integer") == 0)
		*res = a->t == V_INT;
	else if (strcmp(name, "boolean") == 0)
		*res = a->t == V_BOOL;
	else if (strcmp(name, "mapping") == 0)
		*res = a->t == V_DICT;
	else if (strcmp(name, "sequence") == 0 || strcmp(name, "iterable") == 0)
		*res = a->t == V_LIST || a->t == V_STR || a->t == V_DICT;
	else if (strcmp(name, "true") == 0 || strcmp(name, "false") == 0)
		*res = a->t == V_BOOL && a->i == (name[0] == 't');
	else if (nargs == 1 && (strcmp(name, "equalto") == 0 || strcmp(name, "eq") == 0 || strcmp(name, "==") == 0))
		*res = v_equal(a, &args[0]);
	else if (nargs == 1 && (strcmp(name, "ne") == 0 || strcmp(name, "!=") == 0))
		*res = !v_equal(a, &args[0]);
	else if (nargs == 1 && strcmp(name, "in") == 0) {
		const struct val *b = &args[0];
		*res = 0;
		if (b->t == V_STR && a->t == V_STR)
			*res = a->n == 0 || memmem(b->s, b->n, a->s, a->n) != NULL;
		else if (b->t == V_LIST)
			for (size_t i = 0; i < b->n && !*res; i++)
				*res = v_equal(a, &b->items[i]);
		else if (b->t == V_DICT && a->t == V_STR)
			*res = dict_get(b, a->s, a->n).t != V_UNDEF;
	} else {
		char m[96];
		snprintf(m, sizeof(m), "unsupported test 'is %s'", name);
		return rerr(FTE_ENOTSUP, e->pos, m);
	}
	return FTE_OK;
}

/* new_list allocates a list of n items in the render's arena. */
static int
new_list(struct render *r, size_t n, struct val *out)
{
	struct val *items = arena_alloc(&r->ar, (n + 1) * sizeof(*items));

	if (items == NULL)
		return FTE_ENOMEM;
	*out = (struct val){ .t = V_LIST, .items = items, .n = n };
	return FTE_OK;
}

/* filter_list is select/reject(test, args) and selectattr/rejectattr(attr,
 * test, args); no test keeps the truthy items. */
static int
filter_list(struct render *r, const struct expr *e, const struct val *a, const struct val *args,
    struct val *out)
{
	int attr = strstr(e->name, "attr") != NULL, keep = e->name[0] == 's', rc;
	size_t skip = attr ? 1 : 0, k = 0;

	if (a->t != V_LIST || (attr && (e->nargs < 1 || args[0].t != V_STR)) ||
	    (e->nargs > skip && args[skip].t != V_STR))
		return rerr(FTE_EINVAL, e->pos, "select/reject filters need a list, an attribute and a test name");
	if ((rc = new_list(r, a->n, out)) != FTE_OK)
		return rc;
	for (size_t i = 0; i < a->n; i++) {
		struct val v = attr ? dict_get(&a->items[i], args[0].s, args[0].n) : a->items[i];
		int res;
		if (e->nargs > skip) {
			char name[32];
			snprintf(name, sizeof(name), "%.*s", (int)args[skip].n, args[skip].s);
			if ((rc = apply_test(e, name, &v, args + skip + 1, e->nargs - skip - 1, &res)) != FTE_OK)
				return rc;
		} else {
			res = v_truthy(&v);
		}
		if (res == keep)
			out->items[k++] = a->items[i];
	}
	out->n = k;
	return FTE_OK;
}

/* strip_chars is Python's str.strip/lstrip/rstrip with a set of chars. */
static int
strip_chars(const struct val *v, const struct val *chars, int left, int right, struct val *out)
{
	size_t a = 0, b = v->n;

	while (left && a < b && memchr(chars->s, v->s[a], chars->n))
		a++;
	while (right && b > a && memchr(chars->s, v->s[b - 1], chars->n))
		b--;
	*out = v_str(v->s + a, b - a);
	return FTE_OK;
}

/* split is str.split(sep), or on runs of blanks when sep is NULL. */
static int
split(struct render *r, const struct val *v, const struct val *sep, struct val *out)
{
	size_t n = 0, cap = 8;
	struct val *items = arena_alloc(&r->ar, cap * sizeof(*items));
	const char *s = v->s, *end = v->s + v->n;

	if (items == NULL)
		return FTE_ENOMEM;
	for (;;) {
		const char *a = s, *b;
		if (sep == NULL) {
			while (a < end && isspace((unsigned char)*a))
				a++;
			if (a == end)
				break;
			for (b = a; b < end && !isspace((unsigned char)*b); b++)
				;
		} else {
			b = memmem(a, (size_t)(end - a), sep->s, sep->n);
			if (b == NULL)
				b = end;
		}
		if (n == cap) {
			struct val *more = arena_alloc(&r->ar, 2 * cap * sizeof(*more));
			if (more == NULL)
				return FTE_ENOMEM;
			memcpy(more, items, n * sizeof(*items));
			items = more;
			cap *= 2;
		}
		items[n++] = v_str(a, (size_t)(b - a));
		if (b == end)
			break;
		s = b + (sep ? sep->n : 1);
	}
	*out = (struct val){ .t = V_LIST, .items = items, .n = n };
	return FTE_OK;
}

/* replace is str.replace(old, new) (and the filter). */
static int
replace(struct render *r, const struct expr *e, const struct val *v, const struct val *old,
    const struct val *new, struct val *out)
{
	struct buf b = { .limit = r->tp->max_bytes };
	const char *s = v->s, *end = v->s + v->n, *hit;
	int rc = FTE_OK;

	if (old->n == 0)
		return rerr(FTE_ENOTSUP, e->pos, "replace of an empty string");
	while (rc == FTE_OK && (hit = memmem(s, (size_t)(end - s), old->s, old->n)) != NULL) {
		if ((rc = buf_add(&b, s, (size_t)(hit - s))) == FTE_OK)
			rc = buf_add(&b, new->s, new->n);
		s = hit + old->n;
	}
	if (rc == FTE_OK)
		rc = buf_add(&b, s, (size_t)(end - s));
	char *t = rc == FTE_OK ? arena_alloc(&r->ar, b.n + 1) : NULL;
	if (t != NULL && b.n)
		memcpy(t, b.p, b.n);
	free(b.p);
	if (b.over)
		r->ar.over = 1;
	if (t == NULL)
		return FTE_ENOMEM;
	*out = v_str(t, b.n);
	return FTE_OK;
}

/* join is the join(sep) filter. */
static int
join(struct render *r, const struct val *a, const struct val *sep, struct val *out)
{
	struct val acc = v_str("", 0), s;
	int rc;

	for (size_t i = 0; i < a->n; i++) {
		if (i > 0 && (rc = concat(r, &acc, sep, &acc)) != FTE_OK)
			return rc;
		if ((rc = to_str(r, &a->items[i], &s)) != FTE_OK || (rc = concat(r, &acc, &s, &acc)) != FTE_OK)
			return rc;
	}
	*out = acc;
	return FTE_OK;
}

static int
dict_keys(struct render *r, const struct val *d, struct val *out)
{
	int rc = new_list(r, d->n, out);

	for (size_t i = 0; rc == FTE_OK && i < d->n; i++)
		out->items[i] = v_str(d->keys[i], strlen(d->keys[i]));
	return rc;
}

static int string_op(struct render *r, const struct expr *e, const struct val *v, const struct val *args,
    size_t nargs, struct val *out);

/* apply_op applies a filter or a method to a. */
static int
apply_op(struct render *r, const struct expr *e, const struct val *a, const struct val *args,
    struct val *out)
{
	const char *m = e->name;
	int filter = e->k == E_FILTER;

	if (!filter && a->t == V_DICT && strcmp(m, "get") == 0 && e->nargs >= 1 && args[0].t == V_STR) {
		*out = dict_get(a, args[0].s, args[0].n);
		if (out->t == V_UNDEF)
			*out = e->nargs > 1 ? args[1] : (struct val){ .t = V_NONE };
		return FTE_OK;
	}
	if (filter && strcmp(m, "default") == 0) {
		*out = a->t != V_UNDEF ? *a : e->nargs > 0 ? args[0] : v_str("", 0);
		return FTE_OK;
	}
	if (filter && strcmp(m, "string") == 0)
		return to_str(r, a, out);
	if (filter && strcmp(m, "safe") == 0) {        /* no autoescape: nothing to mark */
		*out = *a;
		return FTE_OK;
	}
	if (filter && strcmp(m, "tojson") == 0) {
		int indent = 0;
		for (size_t i = 0; i < e->nargs; i++)
			if (e->kw[i] != NULL && strcmp(e->kw[i], "indent") == 0 && args[i].t == V_INT)
				indent = 1 + (int)(args[i].i < 0 ? 0 : args[i].i > 16 ? 16 : args[i].i);
		return dump(r, a, indent, out);
	}
	if (filter && (strcmp(m, "selectattr") == 0 || strcmp(m, "rejectattr") == 0 ||
	    strcmp(m, "select") == 0 || strcmp(m, "reject") == 0))
		return filter_list(r, e, a, args, out);
	if (filter && strcmp(m, "list") == 0) {
		if (a->t == V_LIST) {
			*out = *a;
			return FTE_OK;
		}
		if (a->t == V_DICT)
			return dict_keys(r, a, out);
	}
	if (filter && strcmp(m, "join") == 0 && a->t == V_LIST) {
		struct val sep = e->nargs > 0 && args[0].t == V_STR ? args[0] : v_str("", 0);
		return join(r, a, &sep, out);
	}
	if (filter && (strcmp(m, "first") == 0 || strcmp(m, "last") == 0) && a->t == V_LIST) {
		*out = a->n == 0 ? (struct val){ .t = V_UNDEF } : a->items[m[0] == 'f' ? 0 : a->n - 1];
		return FTE_OK;
	}
	if (a->t == V_DICT && strcmp(m, "items") == 0)
		return dict_items(r, a, out);
	if (!filter && a->t == V_DICT && strcmp(m, "keys") == 0)
		return dict_keys(r, a, out);
	if (a->t == V_STR && strcmp(m, "replace") == 0 && e->nargs == 2 && args[0].t == V_STR && args[1].t == V_STR)
		return replace(r, e, a, &args[0], &args[1], out);
	if (!filter && a->t == V_STR && strcmp(m, "split") == 0 && (e->nargs == 0 || args[0].t == V_STR)) {
		if (e->nargs == 1 && args[0].n == 0)
			return rerr(FTE_EINVAL, e->pos, "empty separator");
		return split(r, a, e->nargs ? &args[0] : NULL, out);
	}
	if (!filter && a->t == V_STR && e->nargs == 1 && args[0].t == V_STR &&
	    (strcmp(m, "strip") == 0 || strcmp(m, "lstrip") == 0 || strcmp(m, "rstrip") == 0))
		return strip_chars(a, &args[0], m[0] != 'r', m[0] != 'l', out);
	return string_op(r, e, a, args, e->nargs, out);
}

/* string_op applies a str method or filter name to v. */
static int
string_op(struct render *r, const struct expr *e, const struct val *v, const struct val *args,
    size_t nargs, struct val *out)
{
	const char *m = e->name;

	if (strcmp(m, "length") == 0 || strcmp(m, "count") == 0) {
		*out = v_int(V_INT, (long long)v->n);
		return v->t == V_STR || v->t == V_LIST || v->t == V_DICT ? FTE_OK :
		    rerr(FTE_EINVAL, e->pos, "length of a value that has none");
	}
	if (v->t != V_STR)
		return rerr(FTE_EINVAL, e->pos, "string method on a value that is not a string");
	if (strcmp(m, "strip") == 0 || strcmp(m, "trim") == 0)
		return strip(v, 1, 1, out);
	if (strcmp(m, "lstrip") == 0)
		return strip(v, 1, 0, out);
	if (strcmp(m, "rstrip") == 0)
		return strip(v, 0, 1, out);
	if (strcmp(m, "upper") == 0)
		return change_case(r, v, 1, out);
	if (strcmp(m, "lower") == 0)
		return change_case(r, v, 0, out);
	if ((strcmp(m, "startswith") == 0 || strcmp(m, "endswith") == 0) && nargs == 1 && args[0].t == V_STR) {
		const struct val *a = &args[0];
		int start = m[0] == 's';
		*out = v_int(V_BOOL, a->n <= v->n &&
		    memcmp(start ? v->s : v->s + v->n - a->n, a->s, a->n) == 0);
		return FTE_OK;
	}
	char msg[96];
	snprintf(msg, sizeof(msg), "unsupported method or filter '%s'", m);
	return rerr(FTE_ENOTSUP, e->pos, msg);
}

static int
eval_args(struct render *r, const struct expr *e, struct val *args)
{
	int rc;

	for (size_t i = 0; i < e->nargs; i++)
		if ((rc = eval(r, e->args[i], &args[i])) != FTE_OK)
			return rc;
	return FTE_OK;
}

static int
eval_index(const struct expr *e, const struct val *a, const struct val *k, struct val *out)
{
	if (a->t == V_DICT && k->t == V_STR) {
		*out = dict_get(a, k->s, k->n);
		return FTE_OK;
	}
	if ((a->t == V_LIST || a->t == V_STR) && k->t == V_INT) {
		long long i = k->i < 0 ? k->i + (long long)a->n : k->i;
		if (i < 0 || i >= (long long)a->n)
			return rerr(FTE_ERANGE, e->pos, "index out of range");
		*out = a->t == V_LIST ? a->items[i] : v_str(a->s + i, 1);
		return FTE_OK;
	}
	if (a->t == V_UNDEF) {
		*out = *a;
		return FTE_OK;
	}
	return rerr(FTE_EINVAL, e->pos, "bad subscript");
}

static int
eval_bin(struct render *r, const struct expr *e, struct val *a, struct val *b, struct val *out)
{
	const char *op = e->op;
	int an = a->t == V_INT || a->t == V_BOOL, bn = b->t == V_INT || b->t == V_BOOL;

	if (strcmp(op, "~") == 0) {
		struct val x, y;
		int rc;
		if ((rc = to_str(r, a, &x)) != FTE_OK || (rc = to_str(r, b, &y)) != FTE_OK)
			return rc;
		return concat(r, &x, &y, out);
	}
	if (strcmp(op, "==") == 0 || strcmp(op, "!=") == 0) {
		*out = v_int(V_BOOL, v_equal(a, b) == (op[0] == '='));
		return FTE_OK;
	}
	if (strcmp(op, "in") == 0 || strcmp(op, "ni") == 0) {
		int found = 0;
		if (b->t == V_STR && a->t == V_STR)
			found = memmem(b->s, b->n, a->s, a->n) != NULL || a->n == 0;
		else if (b->t == V_LIST)
			for (size_t i = 0; i < b->n && !found; i++)
				found = v_equal(a, &b->items[i]);
		else if (b->t == V_DICT && a->t == V_STR)
			found = dict_get(b, a->s, a->n).t != V_UNDEF;
		else if (b->t != V_UNDEF)       /* an undefined value iterates as empty */
			return rerr(FTE_EINVAL, e->pos, "'in' needs a string, list or mapping");
		*out = v_int(V_BOOL, found == (op[0] == 'i'));
		return FTE_OK;
	}
	if (op[0] == '<' || op[0] == '>') {
		int c;
		if (an && bn)
			c = a->i < b->i ? -1 : a->i > b->i;
		else if (a->t == V_STR && b->t == V_STR) {
			c = memcmp(a->s, b->s, a->n < b->n ? a->n : b->n);
			if (c == 0)
				c = a->n < b->n ? -1 : a->n > b->n;
		} else
			return rerr(FTE_EINVAL, e->pos, "cannot order these values");
		*out = v_int(V_BOOL, op[1] == '=' ? (op[0] == '<' ? c <= 0 : c >= 0) : (op[0] == '<' ? c < 0 : c > 0));
		return FTE_OK;
	}
	if (op[0] == '+' && a->t == V_STR && b->t == V_STR)
		return concat(r, a, b, out);
	if (op[0] == '+' && a->t == V_LIST && b->t == V_LIST) {
		struct val *items = arena_alloc(&r->ar, (a->n + b->n + 1) * sizeof(*items));
		if (items == NULL)
			return FTE_ENOMEM;
		memcpy(items, a->items, a->n * sizeof(*items));
		memcpy(items + a->n, b->items, b->n * sizeof(*items));
		*out = (struct val){ .t = V_LIST, .items = items, .n = a->n + b->n };
		return FTE_OK;
	}
	if (!an || !bn)
		return rerr(FTE_EINVAL, e->pos, "arithmetic on values that are not numbers (use ~ to join text)");
	if ((op[0] == '%' || op[0] == '/') && b->i == 0)
		return rerr(FTE_EINVAL, e->pos, "division by zero");
	long long x = op[0] == '+' ? a->i + b->i : op[0] == '-' ? a->i - b->i : op[0] == '*' ? a->i * b->i :
	    op[0] == '%' ? ((a->i % b->i) + b->i) % b->i : a->i / b->i;
	*out = v_int(V_INT, x);
	return FTE_OK;
}

static int render_nodes(struct render *r, const struct nodes *l);

/* call_macro renders m's body with its parameters bound, into a string:
 * the body sees its parameters and the render's arguments, not the
 * caller's variables, as in Jinja. */
static int
call_macro(struct render *r, const struct expr *e, const struct macro *m, struct val *out)
{
	struct val args[16];
	size_t frame = r->frame, nvars = r->nvars;
	struct buf saved = r->out;
	int rc;

	if (e->nargs > m->n)
		return rerr(FTE_EINVAL, e->pos, "too many arguments to a macro");
	for (size_t i = 0; i < m->n; i++)
		args[i] = (struct val){ .t = V_UNDEF };
	for (size_t i = 0; i < e->nargs; i++) {
		size_t k = i;
		if (e->kw[i] != NULL)
			for (k = 0; k < m->n && strcmp(m->params[k], e->kw[i]) != 0; k++)
				;
		if (k == m->n)
			return rerr(FTE_EINVAL, e->pos, "unknown macro argument");
		if ((rc = eval(r, e->args[i], &args[k])) != FTE_OK)
			return rc;
	}
	for (size_t i = 0; i < m->n; i++)
		if (args[i].t == V_UNDEF && m->defaults[i] != NULL && (rc = eval(r, m->defaults[i], &args[i])) != FTE_OK)
			return rc;
	/* a macro calls only those defined before it, so this bounds the
	 * stack a chain of them takes */
	if (r->calls >= 32)
		return rerr(FTE_ERANGE, e->pos, "macro calls nested too deeply");
	r->calls++;
	r->frame = r->nvars;
	for (size_t i = 0; i < m->n; i++)
		if ((rc = var_push(r, m->params[i], args[i], e->pos)) != FTE_OK)
			goto out;
	/* the macro's text goes to a buffer of its own, charged to the budget */
	r->out = (struct buf){ .limit = r->tp->max_bytes };
	rc = render_nodes(r, &m->body);
	if (rc == R_BREAK || rc == R_CONTINUE)
		rc = rerr(FTE_EINVAL, e->pos, "break or continue outside a loop");
	if (rc == FTE_OK) {
		char *t = arena_alloc(&r->ar, r->out.n + 1);
		if (t == NULL)
			rc = FTE_ENOMEM;
		else {
			if (r->out.n)
				memcpy(t, r->out.p, r->out.n);
			*out = v_str(t, r->out.n);
		}
	}
	if (r->out.over)
		r->ar.over = 1;
	free(r->out.p);
	r->out = saved;
out:
	r->calls--;
	r->frame = frame;
	r->nvars = nvars;
	return rc;
}

/* strftime_now is transformers' global, in UTC (the daemon's clock need
 * not be the user's). */
static int
strftime_now(struct render *r, const struct val *fmt, struct val *out)
{
	char f[128], t[256];
	time_t now = r->tp->clock ? (time_t)r->tp->clock : time(NULL);
	struct tm tm;

	if (fmt->n >= sizeof(f))
		return fte_error_set(FTE_EINVAL, "chat template: strftime_now format too long");
	memcpy(f, fmt->s, fmt->n);
	f[fmt->n] = '\0';
	size_t n = gmtime_r(&now, &tm) ? strftime(t, sizeof(t), f, &tm) : 0;
	char *s = arena_alloc(&r->ar, n + 1);
	if (s == NULL)
		return FTE_ENOMEM;
	memcpy(s, t, n);
	*out = v_str(s, n);
	return FTE_OK;
}

static int
eval(struct render *r, const struct expr *e, struct val *out)
{
	struct val a, b, args[16];
	int rc;

	switch (e->k) {
	case E_LIT:
		*out = e->lit;
		return FTE_OK;
	case E_NAME:
		*out = lookup(r, e->name);
		return FTE_OK;
	case E_ATTR:
		if ((rc = eval(r, e->a, &a)) != FTE_OK)
			return rc;
		*out = dict_get(&a, e->name, strlen(e->name));
		return FTE_OK;
	case E_INDEX:
		if ((rc = eval(r, e->a, &a)) != FTE_OK || (rc = eval(r, e->b, &b)) != FTE_OK)
			return rc;
		return eval_index(e, &a, &b, out);
	case E_SLICE: {
		struct val lo, hi, step = v_int(V_INT, 1);
		if ((rc = eval(r, e->a, &a)) != FTE_OK)
			return rc;
		if (a.t != V_LIST && a.t != V_STR)
			return rerr(FTE_EINVAL, e->pos, "slice of a value that is not a list or string");
		if (e->d && (rc = eval(r, e->d, &step)) != FTE_OK)
			return rc;
		if (step.t != V_INT || step.i == 0)
			return rerr(FTE_EINVAL, e->pos, "slice step must be a non-zero integer");
		long long n = (long long)a.n, back = step.i < 0;
		/* Python's defaults and clamping, for either direction */
		lo = v_int(V_INT, back ? n - 1 : 0);
		hi = v_int(V_INT, back ? -1 : n);
		if ((e->b && (rc = eval(r, e->b, &lo)) != FTE_OK) || (e->c && (rc = eval(r, e->c, &hi)) != FTE_OK))
			return rc;
		if (lo.t != V_INT || hi.t != V_INT)
			return rerr(FTE_EINVAL, e->pos, "slice bounds must be integers");
		long long x = lo.i, y = hi.i;
		if (e->b && x < 0)
			x += n;
		if (e->c && y < 0)
			y += n;
		if (back) {
			x = x < -1 ? -1 : x > n - 1 ? n - 1 : x;
			y = y < -1 ? -1 : y > n - 1 ? n - 1 : y;
		} else {
			x = x < 0 ? 0 : x > n ? n : x;
			y = y < 0 ? 0 : y > n ? n : y;
		}
		if (step.i == 1) {
			*out = a;
			out->n = (size_t)(y > x ? y - x : 0);
			if (a.t == V_LIST)
				out->items = a.items + x;
			else
				out->s = a.s + x;
			return FTE_OK;
		}
		size_t k = 0, cnt = (size_t)(back ? (x > y ? (x - y - 1) / -step.i + 1 : 0) :
		    (y > x ? (y - x - 1) / step.i + 1 : 0));
		if (a.t == V_LIST) {
			if ((rc = new_list(r, cnt, out)) != FTE_OK)
				return rc;
			for (long long i = x; back ? i > y : i < y; i += step.i)
				out->items[k++] = a.items[i];
			return FTE_OK;
		}
		char *t = arena_alloc(&r->ar, cnt + 1);
		if (t == NULL)
			return FTE_ENOMEM;
		for (long long i = x; back ? i > y : i < y; i += step.i)
			t[k++] = a.s[i];
		*out = v_str(t, cnt);
		return FTE_OK;
	}
	case E_CALL:
		if (strcmp(e->name, "namespace") == 0) {
			/* A mapping whose attributes "set ns.x = v" updates in place. */
			struct val *items = arena_alloc(&r->ar, (e->nargs + 1) * sizeof(*items));
			const char **keys = arena_alloc(&r->ar, (e->nargs + 1) * sizeof(*keys));
			if (items == NULL || keys == NULL)
				return FTE_ENOMEM;
			for (size_t i = 0; i < e->nargs; i++) {
				if (e->kw[i] == NULL)
					return rerr(FTE_ENOTSUP, e->pos, "namespace() takes only name=value arguments");
				keys[i] = e->kw[i];
				if ((rc = eval(r, e->args[i], &items[i])) != FTE_OK)
					return rc;
			}
			*out = (struct val){ .t = V_DICT, .items = items, .keys = keys, .n = e->nargs };
			return FTE_OK;
		}
		for (const struct macro *m = r->tp->macros; m != NULL; m = m->next)
			if (strcmp(m->name, e->name) == 0)
				return call_macro(r, e, m, out);
		if (strcmp(e->name, "strftime_now") == 0) {
			if (e->nargs != 1 || (rc = eval(r, e->args[0], &a)) != FTE_OK || a.t != V_STR)
				return e->nargs != 1 || a.t != V_STR ? rerr(FTE_EINVAL, e->pos, "strftime_now takes a format") : rc;
			return strftime_now(r, &a, out);
		}
		if (strcmp(e->name, "raise_exception") == 0) {
			struct val msg = v_str("(no message)", 12);
			if (e->nargs > 0 && (rc = eval(r, e->args[0], &a)) == FTE_OK && a.t == V_STR)
				msg = a;
			return fte_error_set(FTE_EINVAL, "chat template raised an exception: %.*s", (int)msg.n, msg.s);
		}
		{
			char m[96];
			snprintf(m, sizeof(m), "unsupported function '%s'", e->name);
			return rerr(FTE_ENOTSUP, e->pos, m);
		}
	case E_METHOD:
	case E_FILTER:
		if ((rc = eval(r, e->a, &a)) != FTE_OK || (rc = eval_args(r, e, args)) != FTE_OK)
			return rc;
		return apply_op(r, e, &a, args, out);
	case E_TEST: {
		int res;
		if ((rc = eval(r, e->a, &a)) != FTE_OK || (rc = apply_test(e, e->name, &a, NULL, 0, &res)) != FTE_OK)
			return rc;
		*out = v_int(V_BOOL, res != e->negate);
		return FTE_OK;
	}
	case E_NOT:
		if ((rc = eval(r, e->a, &a)) != FTE_OK)
			return rc;
		*out = v_int(V_BOOL, !v_truthy(&a));
		return FTE_OK;
	case E_NEG:
		if ((rc = eval(r, e->a, &a)) != FTE_OK)
			return rc;
		if (a.t != V_INT)
			return rerr(FTE_EINVAL, e->pos, "negation of a value that is not a number");
		*out = v_int(V_INT, -a.i);
		return FTE_OK;
	case E_AND:
	case E_OR:      /* Python semantics: the deciding operand is the result */
		if ((rc = eval(r, e->a, &a)) != FTE_OK)
			return rc;
		if (v_truthy(&a) == (e->k == E_OR)) {
			*out = a;
			return FTE_OK;
		}
		return eval(r, e->b, out);
	case E_BIN:
		if ((rc = eval(r, e->a, &a)) != FTE_OK || (rc = eval(r, e->b, &b)) != FTE_OK)
			return rc;
		return eval_bin(r, e, &a, &b, out);
	case E_COND:
		if ((rc = eval(r, e->b, &b)) != FTE_OK)
			return rc;
		if (v_truthy(&b))
			return eval(r, e->a, out);
		if (e->c == NULL) {
			*out = (struct val){ .t = V_UNDEF };
			return FTE_OK;
		}
		return eval(r, e->c, out);
	case E_LIST: {
		struct val *items = arena_alloc(&r->ar, (e->nargs + 1) * sizeof(*items));
		if (items == NULL)
			return FTE_ENOMEM;
		for (size_t i = 0; i < e->nargs; i++)
			if ((rc = eval(r, e->args[i], &items[i])) != FTE_OK)
				return rc;
		*out = (struct val){ .t = V_LIST, .items = items, .n = e->nargs };
		return FTE_OK;
	}
	}
	return rerr(FTE_EINVAL, e->pos, "bad expression");
}

/* set_attr is "set ns.x = v" on a namespace() that declared x. */
static int
set_attr(struct render *r, const struct node *n, const struct val *v)
{
	for (size_t i = r->nvars; i-- > 0;) {
		if (strcmp(r->vars[i].name, n->var) != 0)
			continue;
		struct val *d = &r->vars[i].v;
		for (size_t k = 0; d->t == V_DICT && k < d->n; k++) {
			if (strcmp(d->keys[k], n->var2) == 0) {
				d->items[k] = *v;
				return FTE_OK;
			}
		}
		break;
	}
	return rerr(FTE_ENOTSUP, n->pos, "set of an attribute not declared in namespace()");
}

/* bind_item binds the loop variable(s) to one item of a for loop. */
static int
bind_item(struct render *r, const struct node *n, const struct val *item)
{
	int rc;

	if (n->var2 != NULL) {  /* for k, v in pairs */
		if (item->t != V_LIST || item->n != 2)
			return rerr(FTE_EINVAL, n->pos, "for a, b: an item is not a pair");
		if ((rc = var_push(r, n->var2, item->items[1], n->pos)) != FTE_OK)
			return rc;
		item = &item->items[0];
	}
	return var_push(r, n->var, *item, n->pos);
}

static int
render_for(struct render *r, const struct node *n)
{
	static const char *const keys[] = {
		"index", "index0", "first", "last", "length", "revindex", "revindex0", "previtem", "nextitem",
	};
	struct val seq;
	int rc;

	if ((rc = eval(r, n->e, &seq)) != FTE_OK)
		return rc;
	if (seq.t == V_UNDEF || seq.t == V_NONE)
		seq = (struct val){ .t = V_LIST };
	if (seq.t == V_DICT && (rc = dict_keys(r, &seq, &seq)) != FTE_OK)
		return rc;      /* iterating a mapping gives its keys */
	if (seq.t != V_LIST)
		return rerr(FTE_EINVAL, n->pos, "for loop over a value that is not a list");
	size_t depth = r->nvars;
	if (n->filter != NULL) {        /* filtered first: loop.* count what is left */
		struct val kept, c;
		size_t k = 0;
		if ((rc = new_list(r, seq.n, &kept)) != FTE_OK)
			return rc;
		for (size_t i = 0; i < seq.n; i++) {
			r->nvars = depth;
			if ((rc = bind_item(r, n, &seq.items[i])) != FTE_OK || (rc = eval(r, n->filter, &c)) != FTE_OK)
				return rc;
			if (v_truthy(&c))
				kept.items[k++] = seq.items[i];
		}
		r->nvars = depth;
		kept.n = k;
		seq = kept;
	}
	if (seq.n == 0)
		return render_nodes(r, &n->else_body);
	/* one loop object per loop, not per iteration: the memory budget is
	 * for what the template builds */
	struct val *lv = arena_alloc(&r->ar, 9 * sizeof(*lv));
	if (lv == NULL)
		return FTE_ENOMEM;
	for (size_t i = 0; i < seq.n; i++) {
		long long len = (long long)seq.n, k = (long long)i;
		lv[0] = v_int(V_INT, k + 1);
		lv[1] = v_int(V_INT, k);
		lv[2] = v_int(V_BOOL, i == 0);
		lv[3] = v_int(V_BOOL, i + 1 == seq.n);
		lv[4] = v_int(V_INT, len);
		lv[5] = v_int(V_INT, len - k);
		lv[6] = v_int(V_INT, len - k - 1);
		lv[7] = i > 0 ? seq.items[i - 1] : (struct val){ .t = V_UNDEF };
		lv[8] = i + 1 < seq.n ? seq.items[i + 1] : (struct val){ .t = V_UNDEF };
		struct val loop = { .t = V_DICT, .items = lv, .keys = (const char **)keys, .n = 9 };
		if (r->max_iterations != 0 && ++r->iterations > r->max_iterations)
			return budget_exceeded(r->max_iterations, "loop iterations");
		r->nvars = depth;       /* a set inside the loop stays inside it */
		if ((rc = bind_item(r, n, &seq.items[i])) != FTE_OK ||
		    (rc = var_push(r, "loop", loop, n->pos)) != FTE_OK)
			return rc;
		rc = render_nodes(r, &n->bodies[0]);
		if (rc == R_BREAK)
			break;
		if (rc != FTE_OK && rc != R_CONTINUE)
			return rc;
	}
	r->nvars = depth;
	return FTE_OK;
}

static int
render_nodes(struct render *r, const struct nodes *l)
{
	struct val v, s;
	int rc;

	for (size_t i = 0; i < l->n; i++) {
		const struct node *n = l->v[i];
		switch (n->k) {
		case N_TEXT:
			if (buf_add(&r->out, n->text, n->len) != FTE_OK)
				return FTE_ENOMEM;
			break;
		case N_OUT:
			if ((rc = eval(r, n->e, &v)) != FTE_OK || (rc = to_str(r, &v, &s)) != FTE_OK)
				return rc;
			if (buf_add(&r->out, s.s, s.n) != FTE_OK)
				return FTE_ENOMEM;
			break;
		case N_FOR:
			if ((rc = render_for(r, n)) != FTE_OK)
				return rc;
			break;
		case N_IF: {
			size_t b;
			for (b = 0; b < n->nb; b++) {
				if ((rc = eval(r, n->conds[b], &v)) != FTE_OK)
					return rc;
				if (v_truthy(&v))
					break;
			}
			if ((rc = render_nodes(r, b < n->nb ? &n->bodies[b] : &n->else_body)) != FTE_OK)
				return rc;
			break;
		}
		case N_GEN:     /* the targets come from prefixes, see below */
			if ((rc = render_nodes(r, &n->bodies[0])) != FTE_OK)
				return rc;
			break;
		case N_BREAK:
			return R_BREAK;
		case N_CONTINUE:
			return R_CONTINUE;
		case N_SET:
			if ((rc = eval(r, n->e, &v)) != FTE_OK)
				return rc;
			if (n->var2 == NULL) {
				if ((rc = var_push(r, n->var, v, n->pos)) != FTE_OK)
					return rc;
			} else if ((rc = set_attr(r, n, &v)) != FTE_OK) {
				return rc;
			}
			break;
		}
	}
	return FTE_OK;
}

/* render_run renders tp over messages and tools (values in r's arena,
 * which it frees) into a malloc'd *text. */
static int
render_run(struct render *r, const fte_template *tp, struct val messages, struct val tools,
    int add_generation_prompt, char **text)
{
	int rc;

	r->tp = tp;
	r->max_iterations = tp->max_iterations;
	r->out.limit = tp->max_bytes;
	r->vars[0] = (struct var){ "messages", messages };
	r->vars[1] = (struct var){ "bos_token", v_str(tp->bos, strlen(tp->bos)) };
	r->vars[2] = (struct var){ "eos_token", v_str(tp->eos, strlen(tp->eos)) };
	r->vars[3] = (struct var){ "add_generation_prompt", v_int(V_BOOL, add_generation_prompt != 0) };
	/* transformers passes these as None when the caller has none. */
	r->vars[4] = (struct var){ "tools", tools };
	r->vars[5] = (struct var){ "documents", { .t = V_NONE } };
	r->nvars = r->nglobals = 6;
	/* the conversation itself is not the template's spending */
	r->ar.limit = tp->max_bytes ? r->ar.total + tp->max_bytes : 0;
	rc = render_nodes(r, &tp->root);
	if (rc == R_BREAK || rc == R_CONTINUE)
		rc = fte_error_set(FTE_EINVAL, "chat template: break or continue outside a loop");
	if (rc == FTE_OK && r->out.p == NULL && buf_add(&r->out, "", 0) != FTE_OK)
		rc = FTE_ENOMEM;
	arena_free(&r->ar);
	if (rc != FTE_OK) {
		free(r->out.p);
		if (r->out.over)
			return budget_exceeded(tp->max_bytes, "bytes of output");
		if (r->ar.over)
			return budget_exceeded(tp->max_bytes, "bytes of working memory");
		return rc == FTE_ENOMEM ? fte_error_set(rc, "chat template: out of memory") : rc;
	}
	*text = r->out.p;
	return FTE_OK;
}

int
fte_template_render_chat(const fte_template *tp, const fte_message *msgs, size_t n,
    int add_generation_prompt, char **text)
{
	static const char *const keys[] = { "role", "content" };
	struct render r = { 0 };

	if (tp == NULL || text == NULL || (msgs == NULL && n > 0))
		return fte_error_set(FTE_EINVAL, "fte_template_render_chat: NULL argument");
	if (tp->kind != TPL_CHAT)
		return fte_error_set(FTE_EINVAL, "fte_template_render_chat: not a chat template");
	struct val *list = arena_alloc(&r.ar, (n + 1) * sizeof(*list));
	struct val *fields = arena_alloc(&r.ar, (2 * n + 1) * sizeof(*fields));
	if (list == NULL || fields == NULL) {
		arena_free(&r.ar);
		return fte_error_set(FTE_ENOMEM, "chat template: out of memory");
	}
	for (size_t i = 0; i < n; i++) {
		const char *role = msgs[i].role ? msgs[i].role : "", *c = msgs[i].content ? msgs[i].content : "";
		fields[2 * i] = v_str(role, strlen(role));
		fields[2 * i + 1] = v_str(c, strlen(c));
		list[i] = (struct val){ .t = V_DICT, .items = &fields[2 * i], .keys = (const char **)keys, .n = 2 };
	}
	return render_run(&r, tp, (struct val){ .t = V_LIST, .items = list, .n = n },
	    (struct val){ .t = V_NONE }, add_generation_prompt, text);
}

/* json_val converts JSON into a template value in the arena (strings
 * point into j, which outlives the render). */
static int
json_val(struct arena *ar, const json_t *j, int depth, struct val *out)
{
	size_t i, n;
	const char *key;
	json_t *v;
	int rc;

	if (depth > MAX_DEPTH)
		return fte_error_set(FTE_ERANGE, "conversation nested too deeply");
	switch (json_typeof(j)) {
	case JSON_STRING:
		*out = v_str(json_string_value(j), json_string_length(j));
		return FTE_OK;
	case JSON_INTEGER:
		*out = v_int(V_INT, (long long)json_integer_value(j));
		return FTE_OK;
	case JSON_TRUE: case JSON_FALSE:
		*out = v_int(V_BOOL, json_is_true(j));
		return FTE_OK;
	case JSON_NULL:
		*out = (struct val){ .t = V_NONE };
		return FTE_OK;
	case JSON_REAL:
		return fte_error_set(FTE_ENOTSUP, "conversation: numbers with a fraction are not supported");
	case JSON_ARRAY:
		n = json_array_size(j);
		*out = (struct val){ .t = V_LIST, .n = n, .items = arena_alloc(ar, (n + 1) * sizeof(struct val)) };
		if (out->items == NULL)
			return fte_error_set(FTE_ENOMEM, "conversation: out of memory");
		json_array_foreach(j, i, v)
			if ((rc = json_val(ar, v, depth + 1, &out->items[i])) != FTE_OK)
				return rc;
		return FTE_OK;
	case JSON_OBJECT:
		n = json_object_size(j);
		*out = (struct val){ .t = V_DICT, .n = n, .items = arena_alloc(ar, (n + 1) * sizeof(struct val)),
		    .keys = arena_alloc(ar, (n + 1) * sizeof(char *)) };
		if (out->items == NULL || out->keys == NULL)
			return fte_error_set(FTE_ENOMEM, "conversation: out of memory");
		i = 0;
		json_object_foreach((json_t *)j, key, v) {
			out->keys[i] = key;
			if ((rc = json_val(ar, v, depth + 1, &out->items[i++])) != FTE_OK)
				return rc;
		}
		return FTE_OK;
	}
	return fte_error_set(FTE_EINVAL, "conversation: bad JSON value");
}

/* render_json renders a {"messages": [...], "tools": [...]} object. */
static int
render_json(const fte_template *tp, const json_t *conv, int add_generation_prompt, char **text)
{
	struct render r = { 0 };
	struct val msgs, tools = { .t = V_NONE };
	const json_t *m = json_object_get(conv, "messages"), *t = json_object_get(conv, "tools");
	int rc;

	if (tp->kind != TPL_CHAT)
		return fte_error_set(FTE_EINVAL, "chat template: not a chat template");
	if (!json_is_array(m))
		return fte_error_set(FTE_EINVAL, "conversation: messages: expected an array");
	if ((rc = json_val(&r.ar, m, 0, &msgs)) != FTE_OK ||
	    (t != NULL && !json_is_null(t) && (rc = json_val(&r.ar, t, 0, &tools)) != FTE_OK)) {
		arena_free(&r.ar);
		return rc;
	}
	return render_run(&r, tp, msgs, tools, add_generation_prompt, text);
}

int
fte_template_render_json(const fte_template *tp, const char *conversation, int add_generation_prompt,
    char **text)
{
	json_error_t jerr;

	if (tp == NULL || conversation == NULL || text == NULL)
		return fte_error_set(FTE_EINVAL, "fte_template_render_json: NULL argument");
	json_t *conv = json_loads(conversation, 0, &jerr);
	if (conv == NULL)
		return fte_error_set(FTE_EINVAL, "conversation: invalid JSON at line %d: %s", jerr.line, jerr.text);
	int rc = render_json(tp, conv, add_generation_prompt, text);
	json_decref(conv);
	return rc;
}

void
fte_template_set_clock(fte_template *tp, long long unix_seconds)
{
	tp->clock = unix_seconds;
}

void
fte_template_set_budget(fte_template *tp, size_t iterations, size_t bytes)
{
	tp->max_iterations = iterations;
	tp->max_bytes = bytes;
}

int
fte_template_probe(const fte_template *tp, size_t n_messages, size_t content_bytes)
{
	/* with and without a system message first, then user and assistant */
	static const char *const roles[2][3] = {
		{ "system", "user", "assistant" }, { "user", "assistant", "user" },
	};
	fte_message *m = calloc(n_messages ? n_messages : 1, sizeof(*m));
	char *content = malloc(content_bytes + 1), *text;
	int rc = FTE_OK;

	if (m == NULL || content == NULL) {
		free(m);
		free(content);
		return fte_error_set(FTE_ENOMEM, "chat template probe: out of memory");
	}
	memset(content, 'x', content_bytes);
	content[content_bytes] = '\0';
	for (size_t k = 0; k < 2 && rc == FTE_OK; k++) {
		for (size_t i = 0; i < n_messages; i++)
			m[i] = (fte_message){ i == 0 ? roles[k][0] : roles[k][1 + (i - 1) % 2], content };
		rc = fte_template_render_chat(tp, m, n_messages, 1, &text);
		if (rc == FTE_OK)
			free(text);
		else if (rc != FTE_ERANGE && rc != FTE_ENOMEM)
			rc = FTE_OK;    /* raise_exception on these roles: not a cost */
	}
	free(m);
	free(content);
	return rc;
}

/* ---- constructing templates ---- */

static void
segs_free(struct segs *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i].text);
	free(s->v);
}

void
fte_template_free(fte_template *tp)
{
	if (tp == NULL)
		return;
	segs_free(&tp->with_input);
	segs_free(&tp->no_input);
	free(tp->src);
	free(tp->bos);
	free(tp->eos);
	arena_free(&tp->ast);
	free(tp);
}

static int
parse_format(const char *format, struct segs *out)
{
	static const char *const names[] = { NULL, "instruction", "input", "output" };
	size_t n = strlen(format), cap = n + 2;
	struct segs s = { calloc(cap, sizeof(struct seg)), 0 };
	struct buf text = { 0 };
	int seen[4] = { 0 };

	if (s.v == NULL)
		return fte_error_set(FTE_ENOMEM, "template: out of memory");
	for (size_t i = 0; i <= n; i++) {
		enum field f = F_TEXT;
		size_t skip = 0;
		if (i < n && format[i] == '{' && format[i + 1] == '{') {
			if (buf_add(&text, "{", 1) != FTE_OK)
				goto nomem;
			i++;
			continue;
		}
		if (i < n && format[i] == '}' && format[i + 1] == '}') {
			if (buf_add(&text, "}", 1) != FTE_OK)
				goto nomem;
			i++;
			continue;
		}
		if (i < n && format[i] == '{') {
			const char *close = strchr(format + i, '}');
			for (int k = 1; k < 4 && close != NULL; k++)
				if ((size_t)(close - format - i - 1) == strlen(names[k]) &&
				    memcmp(format + i + 1, names[k], strlen(names[k])) == 0)
					f = (enum field)k;
			if (f == F_TEXT || seen[f]++) {
				segs_free(&s);
				free(text.p);
				return fte_error_set(FTE_EINVAL, "template: %s placeholder at offset %zu (use {instruction}, {input}, {output} once each; {{ for a brace)",
				    f == F_TEXT ? "unknown" : "repeated", i);
			}
			skip = (size_t)(close - format - i);
		} else if (i < n) {
			if (buf_add(&text, format + i, 1) != FTE_OK)
				goto nomem;
			continue;
		}
		if (text.n > 0) {
			s.v[s.n].f = F_TEXT;
			s.v[s.n++].text = text.p;
			text = (struct buf){ 0 };
		}
		if (f != F_TEXT)
			s.v[s.n++].f = f;
		i += skip;
	}
	*out = s;
	return FTE_OK;
nomem:
	segs_free(&s);
	free(text.p);
	return fte_error_set(FTE_ENOMEM, "template: out of memory");
}

int
fte_template_custom(const char *format, fte_template **out)
{
	fte_template *tp;
	int rc;

	if (format == NULL || out == NULL)
		return fte_error_set(FTE_EINVAL, "fte_template_custom: NULL argument");
	if ((tp = calloc(1, sizeof(*tp))) == NULL)
		return fte_error_set(FTE_ENOMEM, "template: out of memory");
	tp->kind = TPL_CUSTOM;
	if ((rc = parse_format(format, &tp->with_input)) != FTE_OK ||
	    (rc = parse_format(format, &tp->no_input)) != FTE_OK) {
		fte_template_free(tp);
		return rc;
	}
	*out = tp;
	return FTE_OK;
}

int
fte_template_alpaca(fte_template **out)
{
	static const char with_input[] =
	    "Below is an instruction that describes a task, paired with an input that provides further context. "
	    "Write a response that appropriately completes the request.\n\n"
	    "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n{output}";
	static const char no_input[] =
	    "Below is an instruction that describes a task. "
	    "Write a response that appropriately completes the request.\n\n"
	    "### Instruction:\n{instruction}\n\n### Response:\n{output}";
	fte_template *tp;
	int rc;

	if (out == NULL)
		return fte_error_set(FTE_EINVAL, "fte_template_alpaca: NULL argument");
	if ((tp = calloc(1, sizeof(*tp))) == NULL)
		return fte_error_set(FTE_ENOMEM, "template: out of memory");
	tp->kind = TPL_CUSTOM;
	if ((rc = parse_format(with_input, &tp->with_input)) != FTE_OK ||
	    (rc = parse_format(no_input, &tp->no_input)) != FTE_OK) {
		fte_template_free(tp);
		return rc;
	}
	*out = tp;
	return FTE_OK;
}

int
fte_template_chat(const char *source, const char *bos_token, const char *eos_token, fte_template **out)
{
	fte_template *tp;
	int which;

	if (source == NULL || out == NULL)
		return fte_error_set(FTE_EINVAL, "fte_template_chat: NULL argument");
	if ((tp = calloc(1, sizeof(*tp))) == NULL)
		return fte_error_set(FTE_ENOMEM, "chat template: out of memory");
	tp->kind = TPL_CHAT;
	tp->max_iterations = FTE_TEMPLATE_ITERATIONS_DEFAULT;
	tp->max_bytes = FTE_TEMPLATE_BYTES_DEFAULT;
	tp->src = strdup(source);
	tp->bos = strdup(bos_token ? bos_token : "");
	tp->eos = strdup(eos_token ? eos_token : "");
	if (tp->src == NULL || tp->bos == NULL || tp->eos == NULL) {
		fte_template_free(tp);
		return fte_error_set(FTE_ENOMEM, "chat template: out of memory");
	}
	static const char *const strays[] = {
		"endfor", "endif", "elif", "else", "endmacro", "endgeneration", NULL,
	};
	struct parser p = { .tp = tp, .src = tp->src, .len = strlen(tp->src) };
	int rc = parse_body(&p, &tp->root, strays, &which);
	if (rc == FTE_OK && which != -1) {
		char msg[64];
		snprintf(msg, sizeof(msg), "{%% %s %%} without its opening tag", strays[which]);
		rc = perr(&p, FTE_EINVAL, msg);
	}
	if (rc != FTE_OK) {
		fte_template_free(tp);
		return rc;
	}
	*out = tp;
	return FTE_OK;
}

static const char *
token_text(const json_t *v)
{
	return json_is_object(v) ? json_string_value(json_object_get(v, "content")) : json_string_value(v);
}

int
fte_template_chat_load(const char *path, fte_template **out)
{
	char file[4096];
	struct stat st;

	if (path == NULL || out == NULL)
		return fte_error_set(FTE_EINVAL, "fte_template_chat_load: NULL argument");
	const char *base = strrchr(path, '/');
	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
		snprintf(file, sizeof(file), "%s/tokenizer_config.json", path);
	else if (strcmp(base ? base + 1 : path, "tokenizer_config.json") == 0)
		snprintf(file, sizeof(file), "%s", path);
	else
		snprintf(file, sizeof(file), "%.*stokenizer_config.json", base ? (int)(base - path + 1) : 0, path);
	json_t *cfg = NULL;
	int lrc = fte__json_load(file, &cfg);
	if (lrc != FTE_OK)
		return lrc;
	/* chat_template is a string, or a list of {name, template}. */
	const json_t *ct = json_object_get(cfg, "chat_template");
	const char *src = json_string_value(ct);
	if (json_is_array(ct)) {
		size_t i;
		json_t *v;
		json_array_foreach(ct, i, v) {
			const char *name = json_string_value(json_object_get(v, "name"));
			if (src == NULL || (name != NULL && strcmp(name, "default") == 0))
				src = json_string_value(json_object_get(v, "template"));
		}
	}
	int rc;
	if (src == NULL)
		rc = fte_error_set(FTE_ENOENT, "%s: no chat_template", file);
	else if ((rc = fte_template_chat(src, token_text(json_object_get(cfg, "bos_token")),
	    token_text(json_object_get(cfg, "eos_token")), out)) != FTE_OK) {
		char msg[1024];
		snprintf(msg, sizeof(msg), "%s", fte_last_error());
		fte_error_set(rc, "%s: %s", file, msg);
	}
	json_decref(cfg);
	return rc;
}

/* ---- records ---- */

static int
render_segs(const struct segs *s, const fte_record *rec, char **prompt, char **response)
{
	struct buf b[2] = { { 0 }, { 0 } };
	int part = 0, has_output = 0;

	for (size_t i = 0; i < s->n; i++) {
		const char *t = s->v[i].f == F_TEXT ? s->v[i].text :
		    s->v[i].f == F_INSTRUCTION ? rec->instruction :
		    s->v[i].f == F_INPUT ? rec->input : rec->output;
		if (s->v[i].f == F_OUTPUT)
			part = 1, has_output = 1;
		if (t != NULL && buf_add(&b[part], t, strlen(t)) != FTE_OK)
			goto nomem;
	}
	if (!has_output && rec->output != NULL && buf_add(&b[1], rec->output, strlen(rec->output)) != FTE_OK)
		goto nomem;
	for (int k = 0; k < 2; k++)
		if (b[k].p == NULL && buf_add(&b[k], "", 0) != FTE_OK)
			goto nomem;
	*prompt = b[0].p;
	*response = b[1].p;
	return FTE_OK;
nomem:
	free(b[0].p);
	free(b[1].p);
	return fte_error_set(FTE_ENOMEM, "template: out of memory");
}

static int
render_chat_record(const fte_template *tp, const fte_record *rec, char **prompt, char **response)
{
	const char *in = rec->input ? rec->input : "";
	const char *ins = rec->instruction ? rec->instruction : "";
	char *user = malloc(strlen(ins) + strlen(in) + 3), *full;
	int rc;

	if (user == NULL)
		return fte_error_set(FTE_ENOMEM, "chat template: out of memory");
	sprintf(user, *in ? "%s\n\n%s" : "%s", ins, in);
	fte_message msgs[2] = { { "user", user }, { "assistant", rec->output ? rec->output : "" } };
	if ((rc = fte_template_render_chat(tp, msgs, 1, 1, prompt)) != FTE_OK) {
		free(user);
		return rc;
	}
	rc = fte_template_render_chat(tp, msgs, 2, 0, &full);
	free(user);
	if (rc != FTE_OK) {
		free(*prompt);
		return rc;
	}
	size_t pl = strlen(*prompt);
	if (strncmp(full, *prompt, pl) != 0) {
		free(*prompt);
		free(full);
		return fte_error_set(FTE_ENOTSUP, "chat template: the generation prompt is not a prefix of the conversation, so the response span is unknown");
	}
	*response = strdup(full + pl);
	free(full);
	if (*response == NULL) {
		free(*prompt);
		return fte_error_set(FTE_ENOMEM, "chat template: out of memory");
	}
	return FTE_OK;
}

int
fte_template_render(const fte_template *tp, const fte_record *rec, char **prompt, char **response)
{
	if (tp == NULL || rec == NULL || prompt == NULL || response == NULL)
		return fte_error_set(FTE_EINVAL, "fte_template_render: NULL argument");
	if (tp->kind == TPL_CHAT)
		return render_chat_record(tp, rec, prompt, response);
	int rc = render_segs(rec->input && *rec->input ? &tp->with_input : &tp->no_input, rec, prompt, response);
	if (rc != FTE_OK)
		return rc;
	/* Blanks ending the prompt go to the response: BPE joins a space to
	 * the word after it, so a prompt ending in one would end on a token in
	 * generation that training never put there. */
	size_t pl = strlen(*prompt), keep = pl;
	while (keep > 0 && ((*prompt)[keep - 1] == ' ' || (*prompt)[keep - 1] == '\t'))
		keep--;
	if (keep < pl) {
		size_t rl = strlen(*response), move = pl - keep;
		char *r = malloc(move + rl + 1);

		if (r == NULL) {
			free(*prompt);
			free(*response);
			return fte_error_set(FTE_ENOMEM, "template: out of memory");
		}
		memcpy(r, *prompt + keep, move);
		memcpy(r + move, *response, rl + 1);
		free(*response);
		*response = r;
		(*prompt)[keep] = '\0';
	}
	return FTE_OK;
}

int
fte_template_encode(const fte_template *tp, const fte_tokenizer *tok, const fte_record *rec,
    int **ids, size_t *n_ids, size_t *n_prompt)
{
	char *prompt, *response, *full;
	int *p_ids = NULL, *f_ids = NULL, rc;
	size_t np, nf;
	unsigned flags = tp != NULL && tp->kind == TPL_CHAT ? FTE_TOK_PARSE_SPECIAL : FTE_TOK_ADD_SPECIAL;

	if (tok == NULL || ids == NULL || n_ids == NULL || n_prompt == NULL)
		return fte_error_set(FTE_EINVAL, "fte_template_encode: NULL argument");
	if ((rc = fte_template_render(tp, rec, &prompt, &response)) != FTE_OK)
		return rc;
	size_t pl = strlen(prompt), rl = strlen(response);
	if ((full = malloc(pl + rl + 1)) == NULL) {
		free(prompt);
		free(response);
		return fte_error_set(FTE_ENOMEM, "template: out of memory");
	}
	memcpy(full, prompt, pl);
	memcpy(full + pl, response, rl + 1);
	/* The example is encoded whole, exactly as the text will be seen; the
	 * prompt's ids up to where the two encodings part are the prompt. */
	if ((rc = fte_tokenizer_encode_flags(tok, prompt, pl, flags, &p_ids, &np)) != FTE_OK ||
	    (rc = fte_tokenizer_encode_flags(tok, full, pl + rl, flags, &f_ids, &nf)) != FTE_OK)
		goto out;
	size_t k = 0;
	while (k < np && k < nf && p_ids[k] == f_ids[k])
		k++;
	int eos = fte_tokenizer_eos(tok);
	const char *eos_text = eos >= 0 ? fte_tokenizer_token(tok, eos, NULL) : NULL;
	int turn_ended = tp->kind == TPL_CHAT && eos_text != NULL && *eos_text && strstr(response, eos_text) != NULL;
	int add_eos = eos >= 0 && !turn_ended;
	if (add_eos) {
		int *g = realloc(f_ids, (nf + 1) * sizeof(int));
		if (g == NULL) {
			rc = fte_error_set(FTE_ENOMEM, "template: out of memory");
			goto out;
		}
		f_ids = g;
		f_ids[nf++] = eos;
	}
	*ids = f_ids;
	*n_ids = nf;
	*n_prompt = k;
	f_ids = NULL;
out:
	free(p_ids);
	free(f_ids);
	free(prompt);
	free(response);
	free(full);
	return rc;
}

int
fte_template_encode_prompt(const fte_template *tp, const fte_tokenizer *tok,
    const fte_record *rec, int **ids, size_t *n_ids)
{
	fte_record r;
	char *prompt, *response;
	int rc;

	if (rec == NULL || tok == NULL)
		return fte_error_set(FTE_EINVAL, "fte_template_encode_prompt: NULL argument");
	r = *rec;
	r.output = "";
	if ((rc = fte_template_render(tp, &r, &prompt, &response)) != FTE_OK)
		return rc;
	unsigned flags = tp->kind == TPL_CHAT ? FTE_TOK_PARSE_SPECIAL : FTE_TOK_ADD_SPECIAL;
	rc = fte_tokenizer_encode_flags(tok, prompt, strlen(prompt), flags, ids, n_ids);
	free(prompt);
	free(response);
	return rc;
}

/* ---- conversations as training rows ---- */

/* render_upto renders the first k messages of conv. */
static int
render_upto(const fte_template *tp, const json_t *conv, size_t k, int gen, char **text)
{
	json_t *part = json_copy((json_t *)conv), *msgs = json_array();
	const json_t *all = json_object_get(conv, "messages");
	int rc;

	if (part == NULL || msgs == NULL) {
		json_decref(part);
		json_decref(msgs);
		return fte_error_set(FTE_ENOMEM, "conversation: out of memory");
	}
	for (size_t i = 0; i < k; i++)
		json_array_append(msgs, json_array_get(all, i));
	json_object_set_new(part, "messages", msgs);
	rc = render_json(tp, part, gen, text);
	json_decref(part);
	return rc;
}

/* end_of_turn finds the template's end-of-turn token: the first special
 * token the template writes after an assistant message's content
 * (<|im_end|>, <|eot_id|>, <end_of_turn>, </s>...); -1 if it writes none. */
static int
end_of_turn(const fte_template *tp, const fte_tokenizer *tok, int *eot)
{
	static const char *const probes[] = {
		"{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}, {\"role\": \"assistant\", \"content\": \"Hello\"}]}",
		"{\"messages\": [{\"role\": \"system\", \"content\": \"S\"}, {\"role\": \"user\", \"content\": \"Hi\"}, "
		    "{\"role\": \"assistant\", \"content\": \"Hello\"}]}",
	};
	int rc = FTE_OK;

	*eot = -1;
	for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) {
		char *text;
		json_t *conv = json_loads(probes[i], 0, NULL);
		if (conv == NULL)
			return fte_error_set(FTE_ENOMEM, "chat template: out of memory");
		rc = render_json(tp, conv, 0, &text);
		json_decref(conv);
		if (rc != FTE_OK)
			continue;       /* e.g. a template that requires a system message */
		const char *after = strstr(text, "Hello");
		int *ids = NULL;
		size_t n = 0;
		if (after != NULL)
			after += 5;
		if (after != NULL && (rc = fte_tokenizer_encode_flags(tok, after, strlen(after),
		    FTE_TOK_PARSE_SPECIAL, &ids, &n)) == FTE_OK) {
			for (size_t k = 0; k < n && *eot < 0; k++)
				if (fte_tokenizer_is_special(tok, ids[k]))
					*eot = ids[k];
		}
		free(ids);
		free(text);
		return rc;
	}
	return rc;
}

/* common_ids counts the leading ids text[0..len) encodes to that are also
 * the leading ids of full: BPE may merge across len, and then the merged
 * token belongs to what follows. */
static int
common_ids(const fte_tokenizer *tok, const char *text, size_t len, const int *full, size_t n_full, size_t *k)
{
	int *ids;
	size_t n;
	int rc = fte_tokenizer_encode_flags(tok, text, len, FTE_TOK_PARSE_SPECIAL, &ids, &n);

	if (rc != FTE_OK)
		return rc;
	for (*k = 0; *k < n && *k < n_full && ids[*k] == full[*k]; (*k)++)
		;
	free(ids);
	return FTE_OK;
}

int
fte_template_encode_conversation(const fte_template *tp, const fte_tokenizer *tok, const char *conversation,
    int train_on_last, int **ids, unsigned char **mask, size_t *n_ids)
{
	json_error_t jerr;
	json_t *conv;
	char *full = NULL, *eot_text = NULL;
	int *f_ids = NULL, eot, rc;
	unsigned char *m = NULL;
	size_t nf = 0;

	if (tp == NULL || tok == NULL || conversation == NULL || ids == NULL || mask == NULL || n_ids == NULL)
		return fte_error_set(FTE_EINVAL, "fte_template_encode_conversation: NULL argument");
	if (tp->kind != TPL_CHAT)
		return fte_error_set(FTE_EINVAL, "fte_template_encode_conversation: not a chat template");
	if ((conv = json_loads(conversation, 0, &jerr)) == NULL)
		return fte_error_set(FTE_EINVAL, "conversation: invalid JSON at line %d: %s", jerr.line, jerr.text);
	const json_t *msgs = json_object_get(conv, "messages");
	size_t n_msgs = json_array_size(msgs), last = n_msgs;
	for (size_t i = 0; i < n_msgs; i++)
		if (strcmp(json_string_value(json_object_get(json_array_get(msgs, i), "role")) ?: "", "assistant") == 0)
			last = i;
	if ((rc = render_json(tp, conv, 0, &full)) != FTE_OK ||
	    (rc = fte_tokenizer_encode_flags(tok, full, strlen(full), FTE_TOK_PARSE_SPECIAL, &f_ids, &nf)) != FTE_OK ||
	    (rc = end_of_turn(tp, tok, &eot)) != FTE_OK)
		goto out;
	const char *spelled = eot >= 0 ? fte_tokenizer_token(tok, eot, NULL) : NULL;
	if (spelled != NULL && (eot_text = strdup(spelled)) == NULL) {
		rc = fte_error_set(FTE_ENOMEM, "conversation: out of memory");
		goto out;
	}
	if ((m = calloc(nf + 1, 1)) == NULL) {
		rc = fte_error_set(FTE_ENOMEM, "conversation: out of memory");
		goto out;
	}
	size_t fl = strlen(full);
	for (size_t k = 0; k < n_msgs && rc == FTE_OK; k++) {
		const json_t *msg = json_array_get(msgs, k), *w = json_object_get(msg, "weight");
		const char *role = json_string_value(json_object_get(msg, "role"));
		if (role == NULL || strcmp(role, "assistant") != 0 || (train_on_last && k != last) ||
		    (json_is_integer(w) && json_integer_value(w) == 0))
			continue;
		/* the target starts where the generation prompt for this turn
		 * ends, which must be how the whole conversation begins */
		char *prompt = NULL, *upto = NULL;
		size_t start, end, a, b;
		if ((rc = render_upto(tp, conv, k, 1, &prompt)) != FTE_OK)
			break;
		start = strlen(prompt);
		if (strncmp(prompt, full, start) != 0) {
			free(prompt);
			rc = fte_error_set(FTE_ENOTSUP, "chat template: message %zu: the generation prompt is not how the "
			    "conversation renders up to it, so the turn cannot be trained as it is served", k + 1);
			break;
		}
		free(prompt);
		/* it ends with the end-of-turn token, or where the conversation
		 * up to it ends when the template writes none */
		const char *hit = eot_text != NULL && *eot_text ? strstr(full + start, eot_text) : NULL;
		if (hit != NULL) {
			end = (size_t)(hit - full) + strlen(eot_text);
		} else {
			if ((rc = render_upto(tp, conv, k + 1, 0, &upto)) != FTE_OK)
				break;
			end = strlen(upto);
			if (end > fl || strncmp(upto, full, end) != 0) {
				free(upto);
				rc = fte_error_set(FTE_ENOTSUP, "chat template: message %zu: the turn renders differently "
				    "once later messages follow, and the template has no end-of-turn token", k + 1);
				break;
			}
			free(upto);
		}
		if ((rc = common_ids(tok, full, start, f_ids, nf, &a)) != FTE_OK ||
		    (rc = common_ids(tok, full, end, f_ids, nf, &b)) != FTE_OK)
			break;
		/* a token merged across the end still ends the turn */
		if (b < nf && end < fl && b < a + 1)
			b = a + 1;
		for (size_t i = a; i < b && i < nf; i++)
			m[i] = 1;
	}
	if (rc != FTE_OK)
		goto out;
	*ids = f_ids;
	*mask = m;
	*n_ids = nf;
	f_ids = NULL;
	m = NULL;
out:
	json_decref(conv);
	free(full);
	free(eot_text);
	free(f_ids);
	free(m);
	return rc;
}

int
fte_template_stop_ids(const fte_template *tp, const fte_tokenizer *tok, const int *eos_ids, size_t n_eos,
    int **ids, size_t *n)
{
	int eot = -1, rc, *v;
	size_t k = 0;

	if (tok == NULL || ids == NULL || n == NULL || (eos_ids == NULL && n_eos > 0))
		return fte_error_set(FTE_EINVAL, "fte_template_stop_ids: NULL argument");
	if (tp != NULL && tp->kind == TPL_CHAT && (rc = end_of_turn(tp, tok, &eot)) != FTE_OK)
		return rc;
	if ((v = malloc((n_eos + 2) * sizeof(*v))) == NULL)
		return fte_error_set(FTE_ENOMEM, "stop ids: out of memory");
	int cand[2] = { fte_tokenizer_eos(tok), eot };
	for (size_t i = 0; i < n_eos + 2; i++) {
		int id = i < n_eos ? eos_ids[i] : cand[i - n_eos], dup = id < 0;
		for (size_t j = 0; j < k && !dup; j++)
			dup = v[j] == id;
		if (!dup)
			v[k++] = id;
	}
	*ids = v;
	*n = k;
	return FTE_OK;
}
