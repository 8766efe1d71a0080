/*
 * ftctl.h - what ftctl's command files share: the command and option
 * tables, the RPC call with its error reporting, and output helpers.
 *
 * A command is one row of a table: its name, positional arguments, options
 * and function.  A row with subcommands ("model", "data", "job") is a group.
 * main() matches words by prefix, parses the options of the leaf command
 * into a zeroed argument struct (each option names the offset of its field),
 * checks the positional count, and calls the command with the positionals;
 * `ftctl help` and the bash completion are generated from the same tables.
 */
#ifndef FTCTL_H
#define FTCTL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "call.h"
#include "ft_json.h"

/* Exit status. */
enum { EXIT_OK = 0, EXIT_REFUSED = 1, EXIT_USAGE = 2, EXIT_UNREACHABLE = 3 };

/* Returned by a command for a usage error: main prints the command's usage
 * and exits EXIT_USAGE.  A command that has explained the problem itself
 * (a file it cannot read) returns EXIT_USAGE instead. */
#define FTCTL_USAGE (-1)

/* template_arg reads a --template value that names a local file (a Jinja
 * chat template, or a custom one) into a malloc'd *text; any other value
 * (alpaca, chat, template text) leaves *text NULL, to be sent as it is.
 * EXIT_OK, or EXIT_USAGE after saying why the file cannot be read. */
int template_arg(const char *cmd, const char *value, char **text);

/* Global options, which may stand anywhere on the line. */
struct opts {
	const char *socket;
	int json;
	int timeout_ms;
	const char *key_file;   /* signs requests (for tcp:// daemons): --key, $FTUNED_KEY */
};

enum opt_type {
	OPT_FLAG,       /* int, set to 1 */
	OPT_STR,        /* char *, pointing into argv ("" when not given) */
	OPT_U32,        /* uint32_t */
	OPT_U64,        /* uint64_t */
	OPT_I32,        /* int32_t */
	OPT_FLOAT,      /* float */
	OPT_DOUBLE,     /* double */
};

#define OPT_REQUIRED 0x1  /* the command refuses to run without it */
#define OPT_FILE 0x2      /* the value is a local file (for completion) */

struct ftctl_option {
	const char *name;       /* without the leading "--" */
	enum opt_type type;
	size_t offset;          /* of the value in the command's argument struct */
	const char *metavar;    /* "N", "FILE"; NULL for flags */
	const char *choices;    /* "sft|cpt": the only values accepted, or NULL */
	int flags;              /* OPT_REQUIRED, OPT_FILE */
	const char *help;
};

/* What a command's positional arguments are, for completion. */
enum arg_kind { ARG_NONE, ARG_FILE, ARG_MODEL, ARG_DATA, ARG_JOB, ARG_COMMAND };

struct command {
	const char *name;
	const char *args;       /* positionals in the usage line: "PATH", "[TEXT]" */
	int min_args, max_args; /* number of positionals accepted */
	enum arg_kind arg_kind;
	const char *help;       /* one line; more lines after a '\n' go to `help CMD` */
	const struct ftctl_option *options;  /* ends with a NULL name; may be NULL */
	size_t args_size;       /* bytes of the argument struct options fill */
	/* argv holds the argc positionals; args the parsed options. */
	int (*fn)(const struct opts *o, void *args, int argc, char **argv);
	const struct command *sub;  /* a group's commands, ending with a NULL name */
};

extern const struct command model_commands[];
extern const struct command data_commands[];
extern const struct command job_commands[];

/* call sends req and waits for the reply.  Returns EXIT_OK with *rep set
 * (free with ft_reply_free) when the daemon answered OK with the body the
 * RPC promises; otherwise prints why ("ftctl: NOT_FOUND: ...", as JSON too
 * with --json), frees the reply and returns EXIT_REFUSED or
 * EXIT_UNREACHABLE. */
int call(const struct opts *o, Ft__Request *req, Ft__Reply **rep)
    __attribute__((warn_unused_result));

/* call_raw is call without the judgement: EXIT_OK with *rep set whatever
 * the reply's code, or EXIT_UNREACHABLE after printing why. */
int call_raw(const struct opts *o, Ft__Request *req, Ft__Reply **rep)
    __attribute__((warn_unused_result));

/* refusal_print reports a reply whose code is not OK, on stderr and, with
 * --json, as {"error": {"code", "message"}} on stdout. */
void refusal_print(const struct opts *o, const Ft__Reply *rep);

/* json_print writes j to stdout, indented, and releases it. */
void json_print(json_t *j);

/* json_fields_print prints an object's members as "key: value" lines,
 * nested objects indented under their key and arrays joined by commas. */
void json_fields_print(FILE *f, const json_t *j, int indent);

/* json_inline_print prints an object's scalar members as "key value"
 * pairs separated by commas, wrapped within width columns. */
void json_inline_print(FILE *f, const json_t *j, int indent, int width);

/* Human-friendly renderings into buf. */
void size_format(uint64_t bytes, char *buf, size_t len);     /* "1.5 MiB" */
void count_format(uint64_t n, char *buf, size_t len);        /* "260K", "1.1B" */
void duration_format(uint64_t ms, char *buf, size_t len);    /* "3m 12s" */
void clock_format(double seconds, char *buf, size_t len);    /* "1:02:03", "0:42" */
void time_format(int64_t unix_s, char *buf, size_t len);     /* local "2026-11-26 14:03" */
void age_format(int64_t unix_s, char *buf, size_t len);      /* "5m" since then */
void user_format(uint32_t uid, char *buf, size_t len);       /* login name or uid */

/* term_width is the width of the terminal on stdout; when stdout is not a
 * terminal, $COLUMNS if set (20 or more), else 100. */
int term_width(void);

/* A table printed with columns as wide as their widest cell; when the lines
 * would pass the width, the columns marked shrinkable are cut, widest
 * first, and their cut cells end in '~', then optional columns are left
 * out. */
struct table;

/* table_new takes the headings and one letter per column: 'l' left, 'r'
 * right aligned, 's' left and shrinkable; 'L' and 'R' mark optional
 * columns, dropped from the right when cutting is not enough.  At most 15
 * columns.  Returns NULL when out of memory. */
struct table *table_new(int ncols, const char *const *heads, const char *align);

/* table_add appends a row of ncols strings, copied.  Returns 0, or -1 when
 * out of memory. */
int table_add(struct table *t, ...);

/* table_print prints the table within width columns and frees it. */
void table_print(struct table *t, FILE *f, int width);

/* table_print_indent is table_print with every line indented by indent
 * spaces (within the same width), for a table inside a show section. */
void table_print_indent(struct table *t, FILE *f, int width, int indent);

#endif
