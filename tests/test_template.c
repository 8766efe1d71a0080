/*
 * test_template.c - prompt templates: Alpaca, custom placeholder strings,
 * and chat templates (the Jinja subset) against hand-written expected text;
 * then training examples (prompt ids, response ids, EOS) with real tokenizers;
 * then every template in ../shared/assets/templates against what jinja2
 * renders (tests/fixtures/gen_template_fixtures.py), byte for byte.
 */
#include <jansson.h>
#include <stdint.h>

#include "ft_test.h"
#include "fte.h"

static void
check_render(const fte_template *tp, const fte_record *rec, const char *want_prompt, const char *want_response)
{
	char *prompt = NULL, *response = NULL;
	int rc = fte_template_render(tp, rec, &prompt, &response);

	if (rc != FTE_OK)
		fprintf(stderr, "render: %s\n", fte_last_error());
	CHECK(rc == FTE_OK);
	CHECK_STR(prompt, want_prompt);
	CHECK_STR(response, want_response);
	free(prompt);
	free(response);
}

static void
test_alpaca(void)
{
	fte_template *tp;

	CHECK(fte_template_alpaca(&tp) == FTE_OK);
	check_render(tp, &(fte_record){ "Add the numbers.", "2 and 3", "5" },
	    "Below is an instruction that describes a task, paired with an input that provides further context. "
	    "Write a response that appropriately completes the request.\n\n"
	    "### Instruction:\nAdd the numbers.\n\n### Input:\n2 and 3\n\n### Response:\n", "5");
	const char *no_input =
	    "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n"
	    "### Instruction:\nSay hi.\n\n### Response:\n";
	check_render(tp, &(fte_record){ "Say hi.", NULL, "Hi!" }, no_input, "Hi!");
	check_render(tp, &(fte_record){ "Say hi.", "", "Hi!" }, no_input, "Hi!");
	fte_template_free(tp);
}

static void
test_custom(void)
{
	fte_template *tp;

	CHECK(fte_template_custom("Q: {instruction} {input}\nA: {output}\n--", &tp) == FTE_OK);
	/* The blank ending the prompt moves to the response (see fte_tok.h). */
	check_render(tp, &(fte_record){ "Why?", "(short)", "Because." }, "Q: Why? (short)\nA:", " Because.\n--");
	fte_template_free(tp);
	/* No {output}: the response follows the text; {{ }} are braces. */
	CHECK(fte_template_custom("{{json}} {instruction}=", &tp) == FTE_OK);
	check_render(tp, &(fte_record){ "x", NULL, "1" }, "{json} x=", "1");
	fte_template_free(tp);
	tp = NULL;
	CHECK(fte_template_custom("{instruction} {name}", &tp) == FTE_EINVAL);
	CHECK(strstr(fte_last_error(), "unknown") != NULL);
	CHECK(fte_template_custom("{output}{output}", &tp) == FTE_EINVAL);
	CHECK(tp == NULL);
}

static char *
chat(const fte_template *tp, const fte_message *m, size_t n, int gen)
{
	char *text = NULL;
	int rc = fte_template_render_chat(tp, m, n, gen, &text);

	if (rc != FTE_OK)
		fprintf(stderr, "render_chat: %s\n", fte_last_error());
	CHECK(rc == FTE_OK);
	return text;
}

static void
check_chat(const fte_template *tp, const fte_message *m, size_t n, int gen, const char *want)
{
	char *text = chat(tp, m, n, gen);

	CHECK_STR(text, want);
	free(text);
}

/* TinyLlama-1.1B-Chat's own template (Zephyr style), from its config. */
static void
test_zephyr(void)
{
	fte_template *tp;
	const char *dir = ft_test_asset("tokenizers/tinyllama-1.1b-chat");

	CHECK(fte_template_chat_load(dir, &tp) == FTE_OK);
	fte_message conv[] = { { "system", "Be brief." }, { "user", "Hi" }, { "assistant", "Hello" } };
	check_chat(tp, conv + 1, 1, 1, "<|user|>\nHi</s>\n<|assistant|>\n");
	check_chat(tp, conv + 1, 2, 0, "<|user|>\nHi</s>\n<|assistant|>\nHello</s>\n");
	check_chat(tp, conv, 2, 1, "<|system|>\nBe brief.</s>\n<|user|>\nHi</s>\n<|assistant|>\n");
	check_render(tp, &(fte_record){ "Add.", "2 3", "5" },
	    "<|user|>\nAdd.\n\n2 3</s>\n<|assistant|>\n", "5</s>\n");
	fte_template_free(tp);
	/* The tokenizer.json path finds the config beside it. */
	char path[4200];
	snprintf(path, sizeof(path), "%s/tokenizer.json", dir);
	CHECK(fte_template_chat_load(path, &tp) == FTE_OK);
	fte_template_free(tp);
	CHECK(fte_template_chat_load(ft_test_asset("hf/tiny-gpt2"), &tp) == FTE_ENOENT);
	CHECK(strstr(fte_last_error(), "chat_template") != NULL);
}

static const char chatml[] =
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

static void
test_chatml(void)
{
	fte_template *tp;

	CHECK(fte_template_chat(chatml, "<|im_start|>", "<|im_end|>", &tp) == FTE_OK);
	fte_message m[] = { { "user", "Hi" }, { "assistant", "Hello" } };
	check_chat(tp, m, 1, 1,
	    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
	    "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
	fte_message s[] = { { "system", "S" }, { "user", "U" } };
	check_chat(tp, s, 2, 0, "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n");
	check_render(tp, &(fte_record){ "Hi", NULL, "Hello" },
	    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
	    "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n", "Hello<|im_end|>\n");
	fte_template_free(tp);
}

/* Meta's Llama 2 chat template: set, slices, %, !=, .strip(), exceptions. */
static const char llama2[] =
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}"
    "{% set system_message = false %}{% endif %}{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}"
    "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}";

static void
test_llama2_chat(void)
{
	fte_template *tp;
	char *text;

	CHECK(fte_template_chat(llama2, "<s>", "</s>", &tp) == FTE_OK);
	fte_message m[] = { { "system", "Sys" }, { "user", " Hi " }, { "assistant", "Hello" }, { "user", "Again" } };
	check_chat(tp, m, 4, 0, "<s>[INST] <<SYS>>\nSys\n<</SYS>>\n\n Hi [/INST] Hello </s><s>[INST] Again [/INST]");
	check_chat(tp, m + 1, 2, 0, "<s>[INST] Hi [/INST] Hello </s>");
	fte_message bad[] = { { "user", "a" }, { "user", "b" } };
	CHECK(fte_template_render_chat(tp, bad, 2, 0, &text) == FTE_EINVAL);
	CHECK(strstr(fte_last_error(), "Conversation roles must alternate") != NULL);
	fte_template_free(tp);
}

/* Llama 3's template: a filter inside concatenation, bos_token by index. */
static const char llama3[] =
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}"
    "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";

/* Qwen2.5-style: whitespace control everywhere, tools branch not taken,
 * attribute access, undefined fields, "not", index arithmetic. */
static const char qwen[] =
    "{%- if tools %}\n    {{- '<|im_start|>system\\n' }}\n    {%- for tool in tools %}\n        {{- tool | tojson }}\n    {%- endfor %}\n"
    "{%- else %}\n    {%- if messages[0]['role'] == 'system' %}\n        {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}\n"
    "    {%- else %}\n        {{- '<|im_start|>system\\nYou are Qwen.<|im_end|>\\n' }}\n    {%- endif %}\n{%- endif %}\n"
    "{%- for message in messages %}\n"
    "    {%- if (message.role == \"user\") or (message.role == \"system\" and not loop.first) or (message.role == \"assistant\" and not message.tool_calls) %}\n"
    "        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}\n"
    "    {%- elif message.role == \"tool\" %}\n"
    "        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != \"tool\") %}\n            {{- '<|im_start|>user' }}\n        {%- endif %}\n"
    "    {%- endif %}\n{%- endfor %}\n"
    "{%- if add_generation_prompt %}\n    {{- '<|im_start|>assistant\\n' }}\n{%- endif %}\n";

static void
test_more_templates(void)
{
	fte_template *tp;
	fte_message m[] = { { "system", "S" }, { "user", " Hi\n" }, { "assistant", "Yo" } };

	CHECK(fte_template_chat(llama3, "<|begin_of_text|>", "<|eot_id|>", &tp) == FTE_OK);
	check_chat(tp, m + 1, 2, 1,
	    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
	    "<|start_header_id|>assistant<|end_header_id|>\n\nYo<|eot_id|>"
	    "<|start_header_id|>assistant<|end_header_id|>\n\n");
	fte_template_free(tp);
	CHECK(fte_template_chat(qwen, NULL, "<|im_end|>", &tp) == FTE_OK);
	check_chat(tp, m, 3, 0,
	    "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\n Hi\n<|im_end|>\n<|im_start|>assistant\nYo<|im_end|>\n");
	check_chat(tp, m + 1, 1, 1,
	    "<|im_start|>system\nYou are Qwen.<|im_end|>\n<|im_start|>user\n Hi\n<|im_end|>\n<|im_start|>assistant\n");
	fte_template_free(tp);
}

static void
test_jinja(void)
{
	static const struct { const char *src, *want; } cases[] = {
		{ "a  {{- 'b' -}}  c", "abc" },
		{ "{{ 1 + 2 * 3 }}|{{ 7 % 3 }}|{{ -2 + 5 }}|{{ 'x' ~ 1 ~ true }}", "7|1|3|x1True" },
		{ "{{ 'a' if 1 > 2 else 'b' }}{{ not true or 'y' }}{{ 0 and 'n' }}", "by0" },
		{ "{{ '  pad ' | trim }}|{{ 'AbC' | lower }}|{{ 'AbC'.upper() }}|{{ [1, 2, 3] | length }}", "pad|abc|ABC|3" },
		{ "{{ 'ell' in 'hello' }}{{ 'z' not in 'hello' }}{{ 'hello'.startswith('he') }}", "TrueTrueTrue" },
		{ "{{ undefined_name }}|{{ undefined_name is defined }}|{{ none is none }}|{{ x | default('d') }}", "|False|True|d" },
		{ "{% for m in messages %}{{ loop.index }}/{{ loop.length }}{% if not loop.last %},{% endif %}{% endfor %}", "1/2,2/2" },
		{ "{% for m in messages %}{{ m.role }}{% else %}none{% endfor %}", "useruser" },
		{ "{% for x in [] %}x{% else %}empty{% endfor %}", "empty" },
		{ "{{ messages[-1]['content'] }}{{ messages[0].content[:1] }}", "yx" },
		{ "{# comment #}{% set n = 2 %}{% if n == 1 %}one{% elif n == 2 %}two{% else %}many{% endif %}", "two" },
		{ "<{% if true %}\n  x\n{% endif %}\n>", "<  x\n>" },
		{ "  {% if true %}\nx\n  {% endif %}\ny", "x\ny" },
		{ "{{ \"dq\\t\" + 'sq\\'' }}", "dq\tsq'" },
		{ "{% set ns = namespace(found=false, n=0) %}{% for m in messages %}{% if m.content == 'y' %}{% set ns.found = true %}{% endif %}"
		  "{% set ns.n = ns.n + 1 %}{% endfor %}{{ ns.found }}{{ ns.n }}", "True2" },
		{ "{% for k, v in messages[0].items() %}{{ k }}={{ v }};{% endfor %}{% for k, v in messages[1] | items %}{{ v }}{% endfor %}", "role=user;content=x;usery" },
		{ "{{ tools is none }}{% if tools is not none %}t{% endif %}", "True" },
		/* expected text from jinja2 3.1 with transformers' settings */
		{ "{{ messages | tojson }}|{{ messages[0] | tojson(indent=2) }}|{{ [] | tojson(indent=0) }}|{{ messages[1:] | tojson(indent=0) }}",
		  "[{\"role\": \"user\", \"content\": \"x\"}, {\"role\": \"user\", \"content\": \"y\"}]|{\n  \"role\": \"user\",\n  \"content\": \"x\"\n}|[]|[\n{\n\"role\": \"user\",\n\"content\": \"y\"\n}\n]" },
		{ "{{ messages[0] | string }}{{ [\"it's\", none, true, 'q\\n'] }}",
		  "{'role': 'user', 'content': 'x'}[\"it's\", None, True, 'q\\n']" },
		{ "{{ 'abcdef'[::-1] }}{{ 'abcdef'[1::2] }}{{ 'abcdef'[-2:] }}{% for m in messages[::-1] %}{{ m.content }}{% endfor %}{{ [1,2,3,4,5][4:0:-2] | join(',') }}",
		  "fedcbabdfefyx5,3" },
		{ "{% macro tag(n, v='d') %}<{{ n }}={{ v }}>{% endmacro %}{{ tag('a') }}{{ tag('b', v='e') }}{{ tag(v='f', n='c') }}",
		  "<a=d><b=e><c=f>" },
		{ "{% for i in [1,2,3,4,5] if i != 2 %}{% if i == 5 %}{% break %}{% endif %}{% if i == 3 %}{% continue %}{% endif %}{{ i }}/{{ loop.length }}{{ loop.previtem }};{% endfor %}",
		  "1/4;4/43;" },
		{ "{{ messages | selectattr('role', 'equalto', 'user') | list | length }}{{ messages | rejectattr('content', 'equalto', 'x') | first | tojson }}",
		  "2{\"role\": \"user\", \"content\": \"y\"}" },
		{ "{{ ' a b  c '.split() | join('-') }}{{ 'a--b'.split('-') | join('+') }}{{ 'xxhixx'.strip('x') }}{{ 'a.b' | replace('.', '::') }}{{ messages[0] == messages[1] }}{{ messages[0] == messages[:1][0] }}",
		  "a-b-ca++bhia::bFalseTrue" },
	};
	fte_message m[] = { { "user", "x" }, { "user", "y" } };

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		fte_template *tp;
		int rc = fte_template_chat(cases[i].src, "<s>", "</s>", &tp);
		if (rc != FTE_OK)
			fprintf(stderr, "case %zu: %s\n", i, fte_last_error());
		CHECK(rc == FTE_OK);
		if (rc != FTE_OK)
			continue;
		check_chat(tp, m, 2, 0, cases[i].want);
		fte_template_free(tp);
	}
	static const struct { const char *src; int err; } bad[] = {
		{ "{% if true %}x", FTE_EINVAL },
		{ "{{ 'x' ", FTE_EINVAL },
		{ "{{ f( }}", FTE_EINVAL },
		{ "{% endif %}", FTE_EINVAL },
		{ "{% filter upper %}x{% endfilter %}", FTE_ENOTSUP },
		{ "{{ x | wordwrap }}", FTE_ENOTSUP },
		{ "{{ x.title() }}", FTE_ENOTSUP },
		{ "{{ x is divisibleby }}", FTE_ENOTSUP },
		{ "{{ range(3) }}", FTE_ENOTSUP },
		{ "{% for a, b, c in x %}{% endfor %}", FTE_ENOTSUP },
		{ "{{ 'unterminated }}", FTE_EINVAL },
		{ "{{ ((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((1"
		  "))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))) }}", FTE_ENOTSUP },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		fte_template *tp = NULL;
		int rc = fte_template_chat(bad[i].src, NULL, NULL, &tp);
		if (rc != bad[i].err)
			fprintf(stderr, "bad %zu: %s\n", i, fte_last_error());
		CHECK(rc == bad[i].err);
		CHECK(tp == NULL);
		CHECK(strstr(fte_last_error(), "offset") != NULL);
	}
	/* Errors found while rendering. */
	static const char *const runtime[] = { "{{ 1 + 'a' }}", "{{ messages[5] }}", "{{ 1 % 0 }}",
		"{% set ns = namespace(a=1) %}{% set ns.b = 2 %}", "{{ namespace(1) }}", "{% for a, b in messages %}{% endfor %}" };
	for (size_t i = 0; i < sizeof(runtime) / sizeof(runtime[0]); i++) {
		fte_template *tp;
		char *text = NULL;
		CHECK(fte_template_chat(runtime[i], NULL, NULL, &tp) == FTE_OK);
		CHECK(fte_template_render_chat(tp, m, 2, 0, &text) != FTE_OK);
		CHECK(text == NULL);
		fte_template_free(tp);
	}
}

static fte_tokenizer *
load(const char *rel)
{
	fte_tokenizer *t = NULL;

	CHECK(fte_tokenizer_load(ft_test_asset(rel), &t) == FTE_OK);
	return t;
}

/* check_example: the response ids decode to want_response and EOS ends
 * the example exactly once. */
static void
check_example(const fte_template *tp, const fte_tokenizer *t, const fte_record *rec,
    int want_bos, const char *want_response)
{
	int *ids = NULL;
	size_t n = 0, np = 0, len;
	char *text = NULL;
	int eos = fte_tokenizer_eos(t), rc = fte_template_encode(tp, t, rec, &ids, &n, &np);

	if (rc != FTE_OK)
		fprintf(stderr, "encode: %s\n", fte_last_error());
	CHECK(rc == FTE_OK);
	if (rc != FTE_OK)
		return;
	CHECK(np > 0 && np < n);
	CHECK((ids[0] == fte_tokenizer_bos(t)) == want_bos);
	CHECK(ids[n - 1] == eos || want_response == NULL);
	CHECK(fte_tokenizer_decode(t, ids + np, n - np, &text, &len) == FTE_OK);
	if (want_response != NULL)
		CHECK_STR(text, want_response);
	free(text);
	/* The generation prompt is the example's prompt part. */
	int *p;
	size_t pn;
	CHECK(fte_template_encode_prompt(tp, t, rec, &p, &pn) == FTE_OK);
	CHECK(pn >= np && memcmp(p, ids, np * sizeof(int)) == 0);
	free(p);
	free(ids);
}

static void
test_examples(void)
{
	fte_template *alpaca, *chatml_tp, *zephyr;
	fte_tokenizer *llama = load("llama2c/tokenizer.bin");
	fte_tokenizer *gpt2 = load("hf/tiny-gpt2/tokenizer.json");
	fte_tokenizer *smol = load("tokenizers/smollm2-135m-instruct/tokenizer.json");
	fte_tokenizer *tiny = load("tokenizers/tinyllama-1.1b-chat/tokenizer.json");
	fte_record rec = { "Name a color.", NULL, "Blue, like the sky." };

	CHECK(fte_template_alpaca(&alpaca) == FTE_OK);
	CHECK(fte_template_chat(chatml, "<|im_start|>", "<|im_end|>", &chatml_tp) == FTE_OK);
	CHECK(fte_template_chat_load(ft_test_asset("tokenizers/tinyllama-1.1b-chat"), &zephyr) == FTE_OK);
	if (llama == NULL || gpt2 == NULL || smol == NULL || tiny == NULL)
		goto out;
	check_example(alpaca, llama, &rec, 1, "Blue, like the sky.</s>");
	check_example(alpaca, gpt2, &rec, 0, "Blue, like the sky.<|endoftext|>");
	/* ChatML: the turn ends with <|im_end|>; SmolLM2's tokenizer.json
	 * alone names <|endoftext|> as EOS, which follows. */
	check_example(chatml_tp, smol, &rec, 0, "Blue, like the sky.<|im_end|>\n<|endoftext|>");
	/* Zephyr's turn already ends with </s>: no second EOS. */
	int *ids;
	size_t n, np, eos_count = 0;
	CHECK(fte_template_encode(zephyr, tiny, &rec, &ids, &n, &np) == FTE_OK);
	for (size_t i = 0; i < n; i++)
		eos_count += ids[i] == fte_tokenizer_eos(tiny);
	CHECK(eos_count == 2);  /* after the user turn and the assistant turn */
	CHECK(ids[0] != fte_tokenizer_bos(tiny));
	free(ids);
	/* Special-token spellings in a record are text for Alpaca. */
	fte_record sneaky = { "Say </s> twice", NULL, "</s></s>" };
	CHECK(fte_template_encode(alpaca, llama, &sneaky, &ids, &n, &np) == FTE_OK);
	eos_count = 0;
	for (size_t i = 0; i < n; i++)
		eos_count += ids[i] == fte_tokenizer_eos(llama);
	CHECK(eos_count == 1 && ids[n - 1] == fte_tokenizer_eos(llama));
	free(ids);
out:
	fte_template_free(alpaca);
	fte_template_free(chatml_tp);
	fte_template_free(zephyr);
	fte_tokenizer_free(llama);
	fte_tokenizer_free(gpt2);
	fte_tokenizer_free(smol);
	fte_tokenizer_free(tiny);
}

/* Renders over budget fail with a message naming the budget; the probe
 * refuses what a conversation at the request limits would take over it. */
static void
test_budget(void)
{
	static const char nest3[] = "{% for a in messages %}{% for b in messages %}{% for c in messages %}"
	    "x{% endfor %}{% endfor %}{% endfor %}";
	static const char nest2[] = "{% for a in messages %}{% for b in messages %}{% endfor %}{% endfor %}";
	static const char echo[] = "{% for m in messages %}{{ m.content }}{% endfor %}";
	static const char grow[] = "{% set ns = namespace(s='') %}{% for m in messages %}"
	    "{% set ns.s = ns.s ~ m.content ~ m.content %}{% endfor %}{{ ns.s|length }}";
	static const char gated[] = "{% for a in messages %}{% if a.content == 'boom' %}"
	    "{% for b in messages %}{% for c in messages %}{% endfor %}{% endfor %}{% endif %}"
	    "{{ a.content }}{% endfor %}";
	static const char raises[] = "{% if messages[0].role == 'system' %}{{ raise_exception('no system "
	    "role') }}{% endif %}{% for m in messages %}{{ m.content }}{% endfor %}";
	fte_message m[64];
	fte_template *tp;
	char *text = NULL, chunk[601];

	memset(chunk, 'y', 600);
	chunk[600] = '\0';
	for (size_t i = 0; i < 64; i++)
		m[i] = (fte_message){ i % 2 ? "assistant" : "user", "hi" };

	/* 50^3 = 125,000 iterations against the default 100,000 */
	CHECK(fte_template_chat(nest3, NULL, NULL, &tp) == FTE_OK);
	CHECK(fte_template_render_chat(tp, m, 50, 1, &text) == FTE_ERANGE);
	CHECK(text == NULL);
	CHECK_STR(fte_last_error(), "chat template exceeded its budget of 100000 loop iterations");
	text = chat(tp, m, 40, 1);      /* 40^3 + 40^2 + 40 = 65,640 */
	CHECK(text != NULL && strlen(text) == 64000);
	free(text);
	CHECK(fte_template_probe(tp, 256, 4096) == FTE_ERANGE);
	CHECK_STR(fte_last_error(), "chat template exceeded its budget of 100000 loop iterations");
	fte_template_free(tp);

	CHECK(fte_template_chat(nest2, NULL, NULL, &tp) == FTE_OK);
	fte_template_set_budget(tp, 1000, 0);
	text = chat(tp, m, 30, 1);      /* 930 iterations */
	free(text);
	CHECK(fte_template_render_chat(tp, m, 32, 1, &text) == FTE_ERANGE);  /* 1,056 */
	CHECK_STR(fte_last_error(), "chat template exceeded its budget of 1000 loop iterations");
	fte_template_free(tp);

	CHECK(fte_template_chat(echo, NULL, NULL, &tp) == FTE_OK);
	fte_template_set_budget(tp, 0, 1000);
	m[0].content = m[1].content = chunk;
	CHECK(fte_template_render_chat(tp, m, 2, 1, &text) == FTE_ERANGE);
	CHECK_STR(fte_last_error(), "chat template exceeded its budget of 1000 bytes of output");
	text = chat(tp, m, 1, 1);
	CHECK_STR(text, chunk);
	free(text);
	CHECK(fte_template_probe(tp, 2, 400) == FTE_OK);
	CHECK(fte_template_probe(tp, 2, 600) == FTE_ERANGE);
	fte_template_free(tp);

	CHECK(fte_template_chat(grow, NULL, NULL, &tp) == FTE_OK);
	fte_template_set_budget(tp, 0, 10000);
	for (size_t i = 0; i < 8; i++)
		m[i].content = chunk;
	CHECK(fte_template_render_chat(tp, m, 8, 1, &text) == FTE_ERANGE);
	CHECK_STR(fte_last_error(), "chat template exceeded its budget of 10000 bytes of working memory");
	fte_template_set_budget(tp, 0, 0);
	text = chat(tp, m, 8, 1);
	CHECK_STR(text, "9600");
	free(text);
	fte_template_free(tp);

	/* The probe's content does not take the branch; the budget still holds
	 * at render time. */
	CHECK(fte_template_chat(gated, NULL, NULL, &tp) == FTE_OK);
	CHECK(fte_template_probe(tp, 256, 4096) == FTE_OK);
	for (size_t i = 0; i < 64; i++)
		m[i].content = "boom";
	CHECK(fte_template_render_chat(tp, m, 64, 1, &text) == FTE_ERANGE);
	CHECK_STR(fte_last_error(), "chat template exceeded its budget of 100000 loop iterations");
	fte_template_free(tp);

	CHECK(fte_template_chat(raises, NULL, NULL, &tp) == FTE_OK);
	CHECK(fte_template_probe(tp, 256, 4096) == FTE_OK);
	fte_template_free(tp);
}

/* The templates of ../shared/assets/templates, by file name. */
static const char *const asset_templates[] = {
	"gemma-it", "gemma3-it", "llama-3.0-instruct", "llama-3.1-instruct", "llama-3.2-instruct",
	"mistral-7b-instruct-v0.3", "mistral-nemo-2407", "mixtral-8x7b-v0.1",
	"phi-3-mini-4k-instruct-2024-04", "phi-3-mini-4k-instruct-2024-07", "phi-4",
	"qwen2.5-instruct-b", "qwen2.5-instruct", "qwen3-coder", "qwen3", "smollm2-instruct",
	"smollm3-b", "tinyllama-zephyr",
};

/* read_asset_template returns the source of templates/<name>.jinja. */
static char *
read_asset_template(const char *name)
{
	char rel[256];
	size_t n;

	snprintf(rel, sizeof(rel), "templates/%s.jinja", name);
	return ft_test_file_read(ft_test_asset(rel), &n);
}

/* test_jinja2_fixtures: each case renders exactly as jinja2 did, or raises
 * the exception jinja2 raised. */
static void
test_jinja2_fixtures(void)
{
	for (size_t t = 0; t < sizeof(asset_templates) / sizeof(asset_templates[0]); t++) {
		char rel[256];
		json_error_t jerr;
		fte_template *tp = NULL;
		char *src = read_asset_template(asset_templates[t]);

		snprintf(rel, sizeof(rel), "templates/%s.json", asset_templates[t]);
		json_t *fx = json_load_file(ft_test_fixture(rel), 0, &jerr);
		CHECK(fx != NULL && src != NULL);
		if (fx == NULL || src == NULL) {
			free(src);
			continue;
		}
		int rc = fte_template_chat(src, json_string_value(json_object_get(fx, "bos_token")),
		    json_string_value(json_object_get(fx, "eos_token")), &tp);
		if (rc != FTE_OK)
			fprintf(stderr, "%s: %s\n", asset_templates[t], fte_last_error());
		CHECK(rc == FTE_OK);
		if (rc == FTE_OK)
			fte_template_set_clock(tp, json_integer_value(json_object_get(fx, "clock")));
		size_t i, good = 0, n = json_array_size(json_object_get(fx, "cases"));
		json_t *c;
		json_array_foreach(json_object_get(fx, "cases"), i, c) {
			const char *name = json_string_value(json_object_get(c, "conversation"));
			const char *want = json_string_value(json_object_get(c, "text"));
			const char *raised = json_string_value(json_object_get(c, "error"));
			json_t *conv = NULL, *v;
			size_t k;
			json_array_foreach(json_object_get(fx, "conversations"), k, v)
				if (strcmp(json_string_value(json_object_get(v, "name")), name) == 0)
					conv = v;
			char *js = json_dumps(conv, 0), *text = NULL, msg[1024];
			if (tp == NULL || js == NULL)
				goto next;
			rc = fte_template_render_json(tp, js, json_is_true(json_object_get(c, "add_generation_prompt")), &text);
			if (want != NULL && rc == FTE_OK && strcmp(text, want) == 0)
				good++;
			else if (raised != NULL && rc == FTE_EINVAL && (snprintf(msg, sizeof(msg),
			    "chat template raised an exception: %s", raised), strcmp(fte_last_error(), msg) == 0))
				good++;
			else
				fprintf(stderr, "%s/%s/%d: %s\n--- got\n%s\n--- want\n%s\n", asset_templates[t], name,
				    json_is_true(json_object_get(c, "add_generation_prompt")),
				    rc == FTE_OK ? "differs" : fte_last_error(), text ? text : "", want ? want : raised);
		next:
			free(text);
			free(js);
		}
		CHECK(good == n);
		json_decref(fx);
		fte_template_free(tp);
		free(src);
	}
}

/* Each template with a tokenizer of its family (or one whose vocabulary
 * spells its markers as text, which the contract must survive too). */
static const struct {
	const char *name, *tokenizer, *bos, *eos;
	const char *eot;        /* the token ending a turn; NULL: markers are text */
	int system_moves;       /* the system message joins the last user turn */
} pairs[] = {
	{ "gemma-it", "gemma-3", "<bos>", "<end_of_turn>", "<end_of_turn>", 0 },
	{ "gemma3-it", "gemma-3", "<bos>", "<end_of_turn>", "<end_of_turn>", 0 },
	{ "llama-3.0-instruct", "llama-3.1", "<|begin_of_text|>", "<|eot_id|>", "<|eot_id|>", 0 },
	{ "llama-3.1-instruct", "llama-3.1", "<|begin_of_text|>", "<|eot_id|>", "<|eot_id|>", 0 },
	{ "llama-3.2-instruct", "llama-3.1", "<|begin_of_text|>", "<|eot_id|>", "<|eot_id|>", 0 },
	{ "mistral-7b-instruct-v0.3", "tinyllama-1.1b-chat", "<s>", "</s>", "</s>", 0 },
	{ "mistral-nemo-2407", "tinyllama-1.1b-chat", "<s>", "</s>", "</s>", 1 },
	{ "mixtral-8x7b-v0.1", "tinyllama-1.1b-chat", "<s>", "</s>", "</s>", 0 },
	{ "phi-3-mini-4k-instruct-2024-04", "tinyllama-1.1b-chat", "<s>", "</s>", NULL, 0 },
	{ "phi-3-mini-4k-instruct-2024-07", "tinyllama-1.1b-chat", "<s>", "</s>", "</s>", 0 },
	{ "phi-4", "qwen3", "", "<|im_end|>", "<|im_end|>", 0 },
	{ "qwen2.5-instruct-b", "qwen3", "", "<|im_end|>", "<|im_end|>", 0 },
	{ "qwen2.5-instruct", "qwen3", "", "<|im_end|>", "<|im_end|>", 0 },
	{ "qwen3-coder", "qwen3", "", "<|im_end|>", "<|im_end|>", 0 },
	{ "qwen3", "qwen3", "", "<|im_end|>", "<|im_end|>", 0 },
	{ "smollm2-instruct", "smollm2-135m-instruct", "<|im_start|>", "<|im_end|>", "<|im_end|>", 0 },
	{ "smollm3-b", "llama-3.1", "<|begin_of_text|>", "<|eot_id|>", NULL, 0 },
	{ "tinyllama-zephyr", "tinyllama-1.1b-chat", "<s>", "</s>", "</s>", 0 },
};

static int contract_refusals;

/* first_target is the index of the first 1 in mask (n if none). */
static size_t
first_target(const unsigned char *mask, size_t n)
{
	size_t i = 0;

	while (i < n && !mask[i])
		i++;
	return i;
}

/* served_ids encodes the first k messages of conv with the generation
 * prompt: what /v1/chat/completions feeds the model. */
static int *
served_ids(const fte_template *tp, const fte_tokenizer *t, const json_t *conv, size_t k, size_t *n)
{
	json_t *part = json_deep_copy(conv);
	char *js, *text = NULL;
	int *ids = NULL;

	while (json_array_size(json_object_get(part, "messages")) > k)
		json_array_remove(json_object_get(part, "messages"), k);
	js = json_dumps(part, 0);
	if (fte_template_render_json(tp, js, 1, &text) == FTE_OK)
		CHECK(fte_tokenizer_encode_flags(t, text, strlen(text), FTE_TOK_PARSE_SPECIAL, &ids, n) == FTE_OK);
	free(text);
	free(js);
	json_decref(part);
	return ids;
}

/* check_contract: for one conversation, the ids before the first target
 * (of all turns, of the last, and with the first turn weighted 0) are
 * what serving feeds the model, and every target span ends on the
 * end-of-turn token. */
static void
check_contract(const char *name, const fte_template *tp, const fte_tokenizer *t, json_t *conv, int eot,
    int system_moves)
{
	const json_t *msgs = json_object_get(conv, "messages");
	size_t first = SIZE_MAX, last = SIZE_MAX;
	int has_system = strcmp(json_string_value(json_object_get(json_array_get(msgs, 0), "role")), "system") == 0;

	for (size_t i = 0; i < json_array_size(msgs); i++)
		if (strcmp(json_string_value(json_object_get(json_array_get(msgs, i), "role")), "assistant") == 0) {
			if (first == SIZE_MAX)
				first = i;
			last = i;
		}
	if (first == SIZE_MAX)
		return;
	for (int mode = 0; mode < 3; mode++) {
		json_t *c = json_deep_copy(conv);
		if (mode == 2) {        /* the first turn weighted out */
			if (first == last) {
				json_decref(c);
				break;
			}
			json_object_set_new(json_array_get(json_object_get(c, "messages"), first), "weight", json_integer(0));
		}
		char *js = json_dumps(c, 0);
		int *ids = NULL, *want;
		unsigned char *mask = NULL;
		size_t n = 0, nw = 0, k = mode == 0 ? first : last;
		int rc = fte_template_encode_conversation(tp, t, js, mode == 1, &ids, &mask, &n);
		if (system_moves && has_system && rc == FTE_ENOTSUP) {
			/* served, the system text goes before the last user turn, which
			 * training cannot reproduce for a turn that more messages
			 * follow: refused, not trained on a prompt serving never shows */
			CHECK(strstr(fte_last_error(), "the generation prompt is not how") != NULL);
			contract_refusals++;
			free(js);
			json_decref(c);
			continue;
		}
		if (rc != FTE_OK)
			fprintf(stderr, "%s mode %d: %s\n", name, mode, fte_last_error());
		CHECK(rc == FTE_OK);
		want = rc == FTE_OK ? served_ids(tp, t, c, k, &nw) : NULL;
		size_t f = rc == FTE_OK ? first_target(mask, n) : 0;
		int same = want != NULL && f == nw && memcmp(ids, want, nw * sizeof(int)) == 0;
		if (rc == FTE_OK && !same)
			fprintf(stderr, "%s mode %d: %zu ids before the first target, serving feeds %zu\n", name, mode, f, nw);
		CHECK(same);
		/* each span ends on the end-of-turn token */
		size_t spans = 0, ends_ok = 0;
		for (size_t i = 0; rc == FTE_OK && i < n; i++)
			if (mask[i] && (i + 1 == n || !mask[i + 1])) {
				spans++;
				ends_ok += eot < 0 || ids[i] == eot;
			}
		if (rc == FTE_OK && !(spans > 0 && ends_ok == spans))
			fprintf(stderr, "%s mode %d: %zu spans, %zu end on %d\n", name, mode, spans, ends_ok, eot);
		CHECK(spans > 0 && ends_ok == spans);
		if (mode == 1)
			CHECK(spans == 1);
		free(want);
		free(ids);
		free(mask);
		free(js);
		json_decref(c);
	}
}

static void
test_contract(void)
{
	for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
		char rel[256], *src = read_asset_template(pairs[i].name);
		fte_template *tp = NULL;
		fte_tokenizer *t;
		json_t *fx;

		snprintf(rel, sizeof(rel), "tokenizers/%s/tokenizer.json", pairs[i].tokenizer);
		t = load(rel);
		snprintf(rel, sizeof(rel), "templates/%s.json", pairs[i].name);
		fx = json_load_file(ft_test_fixture(rel), 0, NULL);
		CHECK(fx != NULL && t != NULL && fte_template_chat(src, pairs[i].bos, pairs[i].eos, &tp) == FTE_OK);
		if (tp != NULL && fx != NULL && t != NULL) {
			int *stop, eot = -1;
			size_t ns, k;
			json_t *conv;
			CHECK(fte_template_stop_ids(tp, t, NULL, 0, &stop, &ns) == FTE_OK && ns >= 1);
			if (pairs[i].eot != NULL) {     /* the stop ids end with the end of turn */
				int *e = NULL;
				size_t ne = 0;
				CHECK(fte_tokenizer_encode_flags(t, pairs[i].eot, strlen(pairs[i].eot),
				    FTE_TOK_PARSE_SPECIAL, &e, &ne) == FTE_OK && ne == 1);
				eot = ne == 1 ? e[0] : -2;
				CHECK(stop[ns - 1] == eot);
				free(e);
			}
			fte_template_set_clock(tp, json_integer_value(json_object_get(fx, "clock")));
			json_array_foreach(json_object_get(fx, "conversations"), k, conv) {
				/* the conversations jinja2 rendered without an exception */
				size_t j;
				json_t *c;
				int raised = 0;
				json_array_foreach(json_object_get(fx, "cases"), j, c)
					raised |= json_equal(json_object_get(c, "conversation"), json_object_get(conv, "name")) &&
					    json_object_get(c, "error") != NULL;
				if (!raised)
					check_contract(pairs[i].name, tp, t, conv, eot, pairs[i].system_moves);
			}
			free(stop);
		}
		if (pairs[i].system_moves)
			CHECK(contract_refusals > 0);
		fte_template_free(tp);
		fte_tokenizer_free(t);
		json_decref(fx);
		free(src);
	}
}

/* test_stop_ids: a config's list, the tokenizer's EOS and the template's
 * end of turn, once each (Llama 3: 128001 and 128009). */
static void
test_stop_ids(void)
{
	char *src = read_asset_template("llama-3.1-instruct");
	fte_tokenizer *t = load("tokenizers/llama-3.1/tokenizer.json");
	fte_template *tp = NULL;
	static const int cfg[] = { 128001, 128008, 128009 };
	int *ids = NULL;
	size_t n = 0;

	CHECK(fte_template_chat(src, "<|begin_of_text|>", "<|eot_id|>", &tp) == FTE_OK);
	CHECK(fte_template_stop_ids(tp, t, cfg, 3, &ids, &n) == FTE_OK);
	CHECK(n == 3 && ids[0] == 128001 && ids[1] == 128008 && ids[2] == 128009);
	free(ids);
	CHECK(fte_template_stop_ids(tp, t, NULL, 0, &ids, &n) == FTE_OK);
	CHECK(n >= 1 && ids[n - 1] == 128009);
	free(ids);
	fte_template_free(tp);
	fte_tokenizer_free(t);
	free(src);
}

int
main(void)
{
	test_alpaca();
	test_custom();
	test_chatml();
	test_llama2_chat();
	test_more_templates();
	test_jinja();
	test_zephyr();
	test_examples();
	test_budget();
	test_jinja2_fixtures();
	test_contract();
	test_stop_ids();
	return ft_test_done();
}
