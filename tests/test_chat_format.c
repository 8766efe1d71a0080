/*
 * test_chat_format.c - a model's prompt format as the daemon runs it
 * (daemon/chat_template.c): the template a model's lineage names, its stop
 * ids (every eos_token_id of config.json, the end-of-turn token), and that
 * what training encodes before a turn's target is, id for id, what serving
 * feeds the model for the same messages, in a chat template (SmolLM2's
 * ChatML, real tokenizer) and in Alpaca.
 */
#include <stdint.h>

#include <jansson.h>

#include "chat_template.h"
#include "dataset.h"
#include "ft_test.h"

static struct ft_config cfg;

/* The records: a conversation with a system message, two turns and one
 * not trained on; an instruction record with a system message; two turns
 * both trained on. */
static const char data[] =
    "{\"messages\": [{\"role\": \"system\", \"content\": \"Answer in French.\"},"
    " {\"role\": \"user\", \"content\": \"My name is Ann.\"},"
    " {\"role\": \"assistant\", \"content\": \"Bonjour Ann.\", \"weight\": 0},"
    " {\"role\": \"user\", \"content\": \"Who am I?\"},"
    " {\"role\": \"assistant\", \"content\": \"Ann.\"}]}\n"
    "{\"instruction\": \"Greet me.\", \"input\": \"twice\", \"output\": \"Hi hi.\", \"system\": \"Be brief.\"}\n"
    "{\"messages\": [{\"role\": \"user\", \"content\": \"My name is Ann.\"},"
    " {\"role\": \"assistant\", \"content\": \"Bonjour Ann.\"},"
    " {\"role\": \"user\", \"content\": \"Who am I?\"},"
    " {\"role\": \"assistant\", \"content\": \"Ann.\"}]}\n"
    "{\"messages\": [{\"role\": \"user\", \"content\": \"1+2?\"},"
    " {\"role\": \"assistant\", \"tool_calls\": [{\"id\": \"c1\", \"type\": \"function\","
    " \"function\": {\"name\": \"add\", \"arguments\": {\"a\": 1, \"b\": 2}}}]},"
    " {\"role\": \"tool\", \"tool_call_id\": \"c1\", \"content\": \"3\"},"
    " {\"role\": \"assistant\", \"content\": \"3.\"}],"
    " \"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"add\","
    " \"parameters\": {\"type\": \"object\"}}}]}\n";

/* prefix_equal: the ids before the first target equal the prompt. */
static int
prefix_equal(const int *ids, const unsigned char *mask, size_t n, const int *p, size_t np)
{
	size_t first = 0;

	while (first < n && !mask[first])
		first++;
	return first == np && memcmp(ids, p, np * sizeof(int)) == 0;
}

/* targets_text decodes the target ids of a record, with special tokens. */
static char *
targets_text(const fte_tokenizer *tok, const int *ids, const unsigned char *mask, size_t n)
{
	int t[512];
	size_t k = 0, len;
	char *text = NULL;

	for (size_t i = 0; i < n && k < 512; i++)
		if (mask[i])
			t[k++] = ids[i];
	if (fte_tokenizer_decode(tok, t, k, &text, &len) != FTE_OK)
		return NULL;
	return text;
}

static void
check_format(const char *spec, const char *dir, const fte_tokenizer *tok, const struct dataset *ds,
    const char *want_targets0, const char *want_targets1)
{
	const fte_message msgs[] = {
		{ "system", "Answer in French." }, { "user", "My name is Ann." },
		{ "assistant", "Bonjour Ann." }, { "user", "Who am I?" },
	};
	const fte_message one[] = { { "system", "Be brief." }, { "user", "Greet me.\n\ntwice" } };
	struct chat_format f;
	int *ids, *p, *q;
	unsigned char *mask;
	size_t n, np, nq;
	char err[256], *text;

	CHECK(chat_format_open(&cfg, spec, dir, NULL, tok, &f, err, sizeof(err)) == 0);
	/* the conversation: trained as the chat request is served */
	CHECK(chat_format_encode(&f, tok, dataset_sample(ds, 0), 0, &ids, &mask, &n) == FTE_OK);
	CHECK(chat_format_messages_prompt(&f, tok, msgs, 4, &p, &np) == FTE_OK);
	CHECK(chat_format_record_prompt(&f, tok, dataset_sample(ds, 0), &text, &q, &nq) == FTE_OK);
	CHECK(prefix_equal(ids, mask, n, p, np));
	CHECK(nq == np && memcmp(p, q, np * sizeof(int)) == 0);
	free(text);
	text = targets_text(tok, ids, mask, n);
	printf("%s: %zu ids, targets '%s'\n", spec, n, text ? text : "(null)");
	CHECK_STR(text, want_targets0);
	free(text);
	free(ids);
	free(mask);
	free(p);
	free(q);
	/* the instruction record: in a chat template its system message and
	 * its input (after a blank line) are the conversation's; Alpaca keeps
	 * its Input section, which no chat request can spell */
	CHECK(chat_format_encode(&f, tok, dataset_sample(ds, 1), 0, &ids, &mask, &n) == FTE_OK);
	CHECK(chat_format_messages_prompt(&f, tok, one, 2, &p, &np) == FTE_OK);
	CHECK(prefix_equal(ids, mask, n, p, np) == f.chat);
	text = targets_text(tok, ids, mask, n);
	CHECK_STR(text, want_targets1);
	free(text);
	free(ids);
	free(mask);
	free(p);
	chat_format_free(&f);
}

/* The tool conversation before its answer as a client sends it: content
 * null beside the tool calls, text parts, a developer message. */
static const char tool_request[] =
    "{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"1+\"},"
    " {\"type\": \"text\", \"text\": \"2?\"}]},"
    " {\"role\": \"assistant\", \"content\": null, \"tool_calls\": [{\"id\": \"c1\","
    " \"type\": \"function\", \"function\": {\"name\": \"add\", \"arguments\": {\"a\": 1, \"b\": 2}}}]},"
    " {\"role\": \"tool\", \"tool_call_id\": \"c1\", \"content\": \"3\"}],"
    " \"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"add\","
    " \"parameters\": {\"type\": \"object\"}}}], \"tool_choice\": \"auto\"}";

/* check_tools: a chat request with tool calls, a tool result and tools is
 * the stored conversation before its answer, and what serving feeds the
 * model is, id for id, what training holds before that answer (Qwen2.5's
 * template, which renders tools and tool calls). */
static void
check_tools(const char *dir, const fte_tokenizer *tok, const struct dataset *ds)
{
	const struct dataset_record *r = dataset_sample(ds, 3);
	json_t *req = json_loads(tool_request, 0, NULL), *stored, *bad;
	struct chat_format f;
	const char *param;
	char err[256], *conv, *want, *text;
	int *ids, *p;
	unsigned char *mask;
	size_t n, np;

	CHECK(r->chat != NULL);
	CHECK(chat_request_conversation(json_object_get(req, "messages"),
	    json_object_get(req, "tools"), &conv, &param, err, sizeof(err)) == 0);
	stored = json_loads(r->chat, 0, NULL);
	json_array_remove(json_object_get(stored, "messages"), 3);
	want = json_dumps(stored, JSON_COMPACT | JSON_SORT_KEYS);
	CHECK_STR(conv, want);
	free(want);
	json_decref(stored);
	CHECK(chat_format_open(&cfg, "chat", dir, NULL, tok, &f, err, sizeof(err)) == 0);
	CHECK(chat_format_encode(&f, tok, r, 1, &ids, &mask, &n) == FTE_OK);   /* the answer */
	CHECK(chat_format_conversation_prompt(&f, tok, conv, &text, &p, &np) == FTE_OK);
	printf("tools: %zu ids, prompt %zu: ...%s\n", n, np, text + (strlen(text) > 120 ?
	    strlen(text) - 120 : 0));
	CHECK(strstr(text, "<tools>") != NULL && strstr(text, "<tool_call>") != NULL &&
	    strstr(text, "<tool_response>\n3\n</tool_response>") != NULL);
	CHECK(prefix_equal(ids, mask, n, p, np));
	free(text);
	free(ids);
	free(mask);
	free(p);
	free(conv);
	chat_format_free(&f);
	/* refusals name the member */
	bad = json_pack("[{s:s,s:s,s:[]}]", "role", "user", "content", "x", "tool_calls");
	CHECK(chat_request_conversation(bad, NULL, &conv, &param, err, sizeof(err)) == -1);
	CHECK_STR(err, "messages[0].tool_calls: only an assistant message makes tool calls.");
	json_decref(bad);
	bad = json_pack("[{s:s,s:s}]", "role", "user", "content", "x");
	stored = json_string("add");
	CHECK(chat_request_conversation(bad, stored, &conv, &param, err, sizeof(err)) == -1);
	CHECK_STR(param, "tools");
	json_decref(stored);
	json_decref(bad);
	json_decref(req);
}

int
main(void)
{
	char tokjson[4096];
	const char *jinja;
	struct dataset_options opt = { .kind = DATASET_KIND_INSTRUCT };
	struct dataset_report *rep;
	struct dataset *ds = NULL;
	struct chat_format f;
	fte_tokenizer *tok;
	size_t len;
	char *src, *spec, err[256], cmd[8192];
	char dir[4096];
	json_t *tc;
	int eot;

	snprintf(tokjson, sizeof(tokjson), "%s",
	    ft_test_asset("tokenizers/smollm2-135m-instruct/tokenizer.json"));
	jinja = ft_test_asset("templates/smollm2-instruct.jinja");
	src = ft_test_file_read(jinja, &len);
	snprintf(dir, sizeof(dir), "%s", ft_test_tmp("smol"));
	snprintf(cmd, sizeof(cmd), "mkdir -p '%s' && cp '%s' '%s/'", dir, tokjson, dir);
	CHECK(src != NULL && system(cmd) == 0);
	tc = json_pack("{s:s,s:s,s:s}", "bos_token", "<|im_start|>", "eos_token", "<|im_end|>",
	    "chat_template", src ? src : "");
	CHECK(json_dump_file(tc, ft_test_tmp("smol/tokenizer_config.json"), 0) == 0);
	json_decref(tc);
	free(src);
	/* a config listing two eos ids, as Llama 3 Instruct's does */
	ft_test_file_write(ft_test_tmp("smol/config.json"), "{\"eos_token_id\": [0, 7]}", 24);
	if (fte_tokenizer_load(ft_test_tmp("smol/tokenizer.json"), &tok) != FTE_OK) {
		fprintf(stderr, "%s\n", fte_last_error());
		CHECK(0);
		return ft_test_done();
	}
	CHECK(dataset_parse("d.jsonl", data, sizeof(data) - 1, &opt, &ds, &rep, err, sizeof(err)) == 0);
	dataset_report_free(rep);

	/* the template a model runs with */
	CHECK(chat_format_of_model(&cfg, NULL, dir, &spec) == 0);
	CHECK_STR(spec, "chat");
	free(spec);
	CHECK(chat_format_of_model(&cfg, "{\"hyperparameters\": {\"template\": \"alpaca\"}}", dir,
	    &spec) == 0);
	CHECK_STR(spec, "alpaca");
	free(spec);
	CHECK(chat_format_of_model(&cfg, "{}", ft_test_tmp("none"), &spec) == 0);
	CHECK_STR(spec, "alpaca");
	free(spec);
	CHECK(chat_format_check(&cfg, "chat", ft_test_tmp("none"), err, sizeof(err)) == -1);
	CHECK_STR(err, "--template chat: the model has no chat template");
	CHECK(chat_format_check(&cfg, "{{ x", dir, err, sizeof(err)) == 0);   /* custom: braces */
	CHECK(chat_format_check(&cfg, "{% if %}", dir, err, sizeof(err)) == -1);

	/* stop ids: the config's list, the end-of-turn token */
	eot = fte_tokenizer_token_id(tok, "<|im_end|>");
	CHECK(chat_format_open(&cfg, "chat", dir, NULL, tok, &f, err, sizeof(err)) == 0);
	CHECK(f.n_stop == 3 && f.stop_ids[0] == 0 && f.stop_ids[1] == 7 && f.stop_ids[2] == eot);
	chat_format_free(&f);
	/* a LoRA adapter's directory has the tokenizer files but no
	 * config.json: its base's list still stops it */
	snprintf(cmd, sizeof(cmd), "mkdir -p '%s' && cp '%s/tokenizer.json' '%s/tokenizer_config.json' "
	    "'%s/'", ft_test_tmp("adapter"), dir, dir, ft_test_tmp("adapter"));
	CHECK(system(cmd) == 0);
	CHECK(chat_format_open(&cfg, "chat", ft_test_tmp("adapter"), NULL, tok, &f, err,
	    sizeof(err)) == 0);
	CHECK(f.n_stop == 1 && f.stop_ids[0] == eot);
	chat_format_free(&f);
	CHECK(chat_format_open(&cfg, "chat", ft_test_tmp("adapter"), dir, tok, &f, err,
	    sizeof(err)) == 0);
	CHECK(f.n_stop == 3 && f.stop_ids[0] == 0 && f.stop_ids[1] == 7 && f.stop_ids[2] == eot);
	chat_format_free(&f);

	/* --train-on all and last */
	{
		int *ids;
		unsigned char *mask;
		size_t n;
		char *text;

		CHECK(chat_format_open(&cfg, "chat", dir, NULL, tok, &f, err, sizeof(err)) == 0);
		for (int last = 0; last < 2; last++) {
			CHECK(chat_format_encode(&f, tok, dataset_sample(ds, 2), last, &ids, &mask, &n) ==
			    FTE_OK);
			text = targets_text(tok, ids, mask, n);
			CHECK_STR(text, last ? "Ann.<|im_end|>" : "Bonjour Ann.<|im_end|>Ann.<|im_end|>");
			free(text);
			free(ids);
			free(mask);
		}
		chat_format_free(&f);
	}
	/* a conversation longer than a row loses its earliest turns, never its
	 * system message, and what is left is trained as it would be served */
	{
		const fte_message later[] = { { "system", "Answer in French." }, { "user", "Who am I?" } };
		int *ids, *p;
		unsigned char *mask;
		size_t n, np, dropped, full;
		char *text;

		CHECK(chat_format_open(&cfg, "chat", dir, NULL, tok, &f, err, sizeof(err)) == 0);
		CHECK(chat_format_encode_fit(&f, tok, dataset_sample(ds, 0), 0, 1000, &ids, &mask, &full,
		    &dropped) == FTE_OK && dropped == 0);
		free(ids);
		free(mask);
		CHECK(chat_format_encode_fit(&f, tok, dataset_sample(ds, 0), 0, full - 1, &ids, &mask, &n,
		    &dropped) == FTE_OK);
		CHECK(dropped == 1 && n < full);
		CHECK(chat_format_messages_prompt(&f, tok, later, 2, &p, &np) == FTE_OK);
		CHECK(prefix_equal(ids, mask, n, p, np));
		text = targets_text(tok, ids, mask, n);
		CHECK_STR(text, "Ann.<|im_end|>");
		printf("fit: %zu ids of %zu after dropping %zu turn\n", n, full, dropped);
		free(text);
		free(ids);
		free(mask);
		free(p);
		/* two turns both trained on: the later is kept */
		CHECK(chat_format_encode(&f, tok, dataset_sample(ds, 2), 0, &ids, &mask, &full) == FTE_OK);
		free(ids);
		free(mask);
		CHECK(chat_format_encode_fit(&f, tok, dataset_sample(ds, 2), 0, full - 1, &ids, &mask, &n,
		    &dropped) == FTE_OK && dropped == 1);
		text = targets_text(tok, ids, mask, n);
		CHECK_STR(text, "Ann.<|im_end|>");
		free(text);
		free(ids);
		free(mask);
		/* the last exchange alone, or a one-turn record, does not fit */
		CHECK(chat_format_encode_fit(&f, tok, dataset_sample(ds, 0), 0, 10, &ids, &mask, &n,
		    &dropped) == FTE_ERANGE);
		CHECK(strstr(fte_last_error(), "its last exchange alone is") != NULL);
		ids = NULL;
		mask = NULL;
		CHECK(chat_format_encode_fit(&f, tok, dataset_sample(ds, 1), 0, 10, &ids, &mask, &n,
		    &dropped) == FTE_ERANGE);
		free(ids);      /* nothing is left allocated, or pointed at once freed */
		free(mask);
		chat_format_free(&f);
	}
	/* every assistant turn but the weight-0 one, with its end of turn */
	check_format("chat", dir, tok, ds, "Ann.<|im_end|>", "Hi hi.<|im_end|>");
	/* Alpaca: the last answer and EOS; the earlier turns in the input */
	check_format("alpaca", dir, tok, ds, "Ann.<|im_end|>", "Hi hi.<|im_end|>");
	fte_tokenizer_free(tok);

	/* tools, in Qwen2.5's template with Qwen3's tokenizer (the same special tokens) */
	snprintf(dir, sizeof(dir), "%s", ft_test_tmp("qwen"));
	snprintf(cmd, sizeof(cmd), "mkdir -p '%s' && cp '%s' '%s/'", dir,
	    ft_test_asset("tokenizers/qwen3/tokenizer.json"), dir);
	src = ft_test_file_read(ft_test_asset("templates/qwen2.5-instruct.jinja"), &len);
	CHECK(src != NULL && system(cmd) == 0);
	tc = json_pack("{s:s,s:s}", "eos_token", "<|im_end|>", "chat_template", src ? src : "");
	CHECK(json_dump_file(tc, ft_test_tmp("qwen/tokenizer_config.json"), 0) == 0);
	json_decref(tc);
	free(src);
	CHECK(fte_tokenizer_load(ft_test_tmp("qwen/tokenizer.json"), &tok) == FTE_OK);
	check_tools(dir, tok, ds);

	dataset_free(ds);
	fte_tokenizer_free(tok);
	ft_test_tmp_remove();
	return ft_test_done();
}
