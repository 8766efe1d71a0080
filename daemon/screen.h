/*
 * screen.h - screening of training data for personal data and secrets.
 *
 * A rule set is a text file (config key screen_rules; "" = the built-in
 * defaults, screen_default_rules), one rule a line, '#' starts a comment:
 *
 *   rule DETECTOR ACTION            a built-in detector
 *   block NAME ACTION PATTERN       a PCRE2 pattern (UTF, the rest of the line)
 *
 * DETECTOR is one of email, phone, card (Luhn-checked), iban (mod-97
 * checked), ipv4 (octets <= 255), private_key (a PEM private-key block),
 * aws_key, github_token, slack_token, sk_key.  ACTION is report (name the
 * hit), redact (replace it with a typed placeholder such as [EMAIL]; block
 * rules use their NAME in capitals), drop (leave the record out) or refuse
 * (refuse the dataset).  Detectors a file does not name are off.  The rule
 * set's identity is the BLAKE2b-256 of its text, recorded with every
 * dataset screened by it.
 */
#ifndef FT_SCREEN_H
#define FT_SCREEN_H

#include <stddef.h>
#include <stdint.h>

#include "dataset.h"

enum screen_action { SCREEN_REPORT, SCREEN_REDACT, SCREEN_DROP, SCREEN_REFUSE };

#define SCREEN_HASH_HEX 64

extern const char screen_default_rules[];

struct screen_rules;

/* screen_rules_parse compiles a rule set from text (name for messages).
 * Returns 0 and sets *out, or -1 with "name:line: why" in err. */
int screen_rules_parse(const char *name, const char *text, size_t len,
    struct screen_rules **out, char *err, size_t err_len) __attribute__((warn_unused_result));

/* screen_rules_load reads the rule set at path, or the defaults for "". */
int screen_rules_load(const char *path, struct screen_rules **out, char *err, size_t err_len)
    __attribute__((warn_unused_result));

void screen_rules_free(struct screen_rules *r);

/* screen_rules_hash is the rule set's BLAKE2b-256, 64 hex digits. */
const char *screen_rules_hash(const struct screen_rules *r);

/* One hit in a string. */
struct screen_hit {
	size_t off, len;
	const char *rule;             /* the rule's name */
	const char *placeholder;      /* "[EMAIL]" */
	enum screen_action action;
};

/* screen_text finds the rules' hits in s (UTF-8, len bytes), in order and
 * not overlapping (the earlier, then the longer wins), and calls fn for
 * each; fn returns nonzero to stop.  Returns the number of hits, or -1 when
 * out of memory. */
int screen_text(const struct screen_rules *r, const char *s, size_t len,
    int (*fn)(void *arg, const struct screen_hit *h), void *arg);

/* screen_action_name is "report", "redact", "drop" or "refuse". */
const char *screen_action_name(enum screen_action a);

struct screen_result {
	size_t hits, redacted, dropped;
	size_t report_lines, unreported;
	int refused;                  /* a refuse rule hit */
};

/* screen_dataset screens every field of every record of *ds (file names
 * the report's lines, "file:line: field: rule (action)", the first 50
 * appended to *report) and replaces *ds by the screened copy: hits of
 * redact rules replaced by their placeholders, records with a drop hit
 * left out.  res counts (it is added to, so two files can share one).
 * Returns 0, or -1 when out of memory (*ds is then unchanged). */
int screen_dataset(const struct screen_rules *r, const char *file, struct dataset **ds,
    struct screen_result *res, char **report) __attribute__((warn_unused_result));

/* The checks the detectors confirm a shape with, exposed for tests. */
int screen_luhn_ok(const char *s, size_t len);      /* digits, spaces and dashes */
int screen_iban_ok(const char *s, size_t len);      /* letters, digits, spaces */

#endif
