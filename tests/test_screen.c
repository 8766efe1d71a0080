/*
 * test_screen.c - each detector of screen.c on true and false positives
 * (a Luhn-invalid 16-digit number is no card, an IBAN with a wrong check
 * digit no IBAN), overlapping hits, rule-set parsing and its errors, and
 * screen_dataset's redact, drop and refuse on a parsed dataset.
 */
#include <stdlib.h>
#include <string.h>

#include "ft_test.h"
#include "screen.h"

static struct screen_rules *rules;

struct hits {
	char text[1024];
	int n;
};

static int
collect(void *arg, const struct screen_hit *h)
{
	struct hits *c = arg;
	size_t used = strlen(c->text);

	snprintf(c->text + used, sizeof(c->text) - used, "%s%s", c->n++ ? "," : "", h->rule);
	return 0;
}

/* The rules that hit s, in order, comma-separated. */
static const char *
hits_of(const char *s)
{
	static struct hits c;

	memset(&c, 0, sizeof(c));
	CHECK(screen_text(rules, s, strlen(s), collect, &c) == c.n);
	return c.text;
}

static const struct {
	const char *text;
	const char *want;
} cases[] = {
	/* e-mail */
	{ "write to jane.doe+x@example.co.uk today", "email" },
	{ "user@localhost and a@b are not addresses", "" },
	{ "the @ sign, foo@ and @bar", "" },
	/* phone */
	{ "call +44 20 7946 0958 now", "phone" },
	{ "or (555) 123-4567, or 555-123-4567", "phone,phone" },
	{ "in 1999-2004 there were 12-34 cases, +12", "" },
	/* payment cards, confirmed by Luhn */
	{ "card 4111 1111 1111 1111 exp 12/30", "card" },
	{ "card 4111-1111-1111-1111", "card" },
	{ "5500005555555559", "card" },
	{ "4111 1111 1111 1112 fails Luhn", "" },
	{ "1234567812345678 fails Luhn", "" },
	{ "0000 0000 0000 0000 is a placeholder", "" },
	/* IBAN, confirmed by mod-97 */
	{ "IBAN GB82 WEST 1234 5698 7654 32 please", "iban" },
	{ "DE89370400440532013000", "iban" },
	{ "GB83 WEST 1234 5698 7654 32 has a wrong check digit", "" },
	{ "DE88370400440532013000", "" },
	/* IPv4 */
	{ "server at 192.168.1.20 port 80", "ipv4" },
	{ "10.0.0.256 is no address, nor 1.2.3 nor 1.2.3.4.5", "" },
	{ "ping 10.0.0.1, and 8.8.8.8\n", "ipv4,ipv4" },
	{ "see section 19.6.1.1, and sections 5.2 and 8.1.2.1, or 8.2, 10.4.18,\n   8.1.2.2", "" },
	{ "text\n8.1.2.1 Negotiation\n", "" },
	/* private keys */
	{ "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----", "private_key" },
	{ "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn (cut off)", "private_key" },
	{ "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----", "" },
	/* API keys */
	{ "aws AKIAIOSFODNN7EXAMPLE", "aws_key" },
	{ "AKIAIOSFODNN7EXAMPL is short", "" },
	{ "token ghp_abcdefghijklmnopqrstuvwxyzABCDEFGHIJ", "github_token" },
	{ "ghp_short", "" },
	{ "xoxb-1234567890-abcdefghij", "slack_token" },
	{ "export OPENAI_API_KEY=sk-proj-abcdefghijklmnopqrstuvwx", "sk_key" },
	{ "a task-list and sk-short and desk-lamp-abcdefghijklmnopqrstuvwxyz", "" },
	/* ordinary text */
	{ "First Citizen: Before we proceed any further, hear me speak.", "" },
	{ "Version 3.11, 2024-05-01, 100 000 people, pi = 3.14159265358979", "" },
};

static void
test_detectors(void)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *got = hits_of(cases[i].text);

		if (strcmp(got, cases[i].want) != 0)
			fprintf(stderr, "case %zu '%s': got '%s', want '%s'\n", i, cases[i].text, got,
			    cases[i].want);
		CHECK_STR(got, cases[i].want);
	}
	CHECK(screen_luhn_ok("79927398713", 11) == 0);     /* too short for a card */
	CHECK(screen_luhn_ok("4012888888881881", 16) == 1);
	CHECK(screen_iban_ok("NL91ABNA0417164300", 18) == 1);
	CHECK(screen_iban_ok("NL91ABNA0417164301", 18) == 0);
}

static void
test_rules(void)
{
	static const char *const bad[] = {
		"rule email shout\n", "rule nosuch report\n", "block x report\n",
		"block x report (unclosed\n", "rule email report\nrule email redact\n",
		"frobnicate email report\n", "rule email report extra\n",
	};
	struct screen_rules *r;
	char err[256];
	const char *text = "# mine\n\nblock codename redact (?i)project\\s+bluebird\nrule email drop\n";

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		CHECK(screen_rules_parse("t.rules", bad[i], strlen(bad[i]), &r, err, sizeof(err)) == -1);
		CHECK(strncmp(err, "t.rules:", 8) == 0);
	}
	CHECK(screen_rules_parse("t.rules", text, strlen(text), &r, err, sizeof(err)) == 0);
	CHECK(strlen(screen_rules_hash(r)) == SCREEN_HASH_HEX);
	CHECK(strcmp(screen_rules_hash(r), screen_rules_hash(rules)) != 0);
	{
		struct hits c = { .n = 0 };
		const char *s = "About Project  Bluebird: mail a@example.org, card 4111111111111111";

		CHECK(screen_text(r, s, strlen(s), collect, &c) == 2);
		CHECK_STR(c.text, "codename,email");     /* cards are off in this set */
	}
	screen_rules_free(r);
}

/* A dataset with planted data: redact, drop and refuse. */
static void
test_dataset(void)
{
	const char *jsonl =
	    "{\"instruction\": \"Mail me at bob@example.com\", \"output\": \"Sure.\"}\n"
	    "{\"instruction\": \"Hello\", \"output\": \"Hi there.\"}\n"
	    "{\"instruction\": \"Pay\", \"input\": \"4111 1111 1111 1111\", \"output\": \"Done, bob@example.com.\"}\n";
	const char *drop = "rule email drop\nrule card report\n";
	const char *refuse = "rule card refuse\n";
	struct dataset_options opt = { .kind = DATASET_KIND_INSTRUCT };
	struct screen_result res = { 0 };
	struct dataset_report *rep;
	struct screen_rules *r;
	struct dataset *ds;
	char *report = NULL, err[256];

	CHECK(dataset_parse("d.jsonl", jsonl, strlen(jsonl), &opt, &ds, &rep, err, sizeof(err)) == 0);
	dataset_report_free(rep);
	CHECK(screen_dataset(rules, "d.jsonl", &ds, &res, &report) == 0);
	CHECK(res.hits == 3 && res.redacted == 3 && res.dropped == 0 && !res.refused);
	CHECK_STR(report, "d.jsonl:1: instruction: email (redact)\n"
	    "d.jsonl:3: input: card (redact)\nd.jsonl:3: output: email (redact)\n");
	CHECK_STR(dataset_sample(ds, 0)->instruction, "Mail me at [EMAIL]");
	CHECK_STR(dataset_sample(ds, 2)->input, "[CARD]");
	CHECK_STR(dataset_sample(ds, 2)->output, "Done, [EMAIL].");
	CHECK(dataset_sample(ds, 2)->line == 3);
	dataset_free(ds);
	free(report);
	report = NULL;

	CHECK(screen_rules_parse("drop", drop, strlen(drop), &r, err, sizeof(err)) == 0);
	CHECK(dataset_parse("d.jsonl", jsonl, strlen(jsonl), &opt, &ds, &rep, err, sizeof(err)) == 0);
	dataset_report_free(rep);
	res = (struct screen_result){ 0 };
	CHECK(screen_dataset(r, "d.jsonl", &ds, &res, &report) == 0);
	CHECK(res.dropped == 2 && dataset_count(ds) == 1 && !res.refused);
	CHECK_STR(dataset_sample(ds, 0)->instruction, "Hello");
	CHECK(strstr(report, "d.jsonl:3: input: card (report)\n") != NULL);
	screen_rules_free(r);
	dataset_free(ds);
	free(report);
	report = NULL;

	CHECK(screen_rules_parse("refuse", refuse, strlen(refuse), &r, err, sizeof(err)) == 0);
	CHECK(dataset_parse("d.jsonl", jsonl, strlen(jsonl), &opt, &ds, &rep, err, sizeof(err)) == 0);
	dataset_report_free(rep);
	res = (struct screen_result){ 0 };
	CHECK(screen_dataset(r, "d.jsonl", &ds, &res, &report) == 0);
	CHECK(res.refused == 1);
	CHECK_STR(report, "d.jsonl:3: input: card (refuse)\n");
	screen_rules_free(r);
	dataset_free(ds);
	free(report);
}

int
main(void)
{
	char err[256];

	CHECK(screen_rules_load("", &rules, err, sizeof(err)) == 0);
	test_detectors();
	test_rules();
	test_dataset();
	screen_rules_free(rules);
	return ft_test_done();
}
