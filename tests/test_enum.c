/* test_enum.c - ft.proto's enums as words (proto/ft_enum.c): every value's
 * word parses back to it, in any case; the words stored in SQLite before
 * these were enums still read, and job specs packed with strings are
 * rewritten as enums; JSON shows words; and a model whose record
 * names an architecture this build does not know is refused with the name,
 * not run as Llama (daemon/registry.c). */
#include <strings.h>

#include "ft_enum.h"
#include "ft_json.h"
#include "ft_test.h"
#include "registry.h"
#include "store.h"

static const ProtobufCEnumDescriptor *const enums[] = {
	&ft__code__descriptor, &ft__job_state__descriptor, &ft__job_kind__descriptor,
	&ft__model_kind__descriptor, &ft__model_format__descriptor, &ft__model_arch__descriptor,
	&ft__export_format__descriptor, &ft__dataset_kind__descriptor, &ft__job_type__descriptor,
	&ft__train_method__descriptor, &ft__lr_schedule__descriptor,
	&ft__eval_export_format__descriptor, &ft__eval_split__descriptor,
};

/* Each value's word parses back to the value, upper- or lower-cased too. */
static void
test_round_trip(void)
{
	for (size_t e = 0; e < sizeof(enums) / sizeof(enums[0]); e++) {
		const ProtobufCEnumDescriptor *d = enums[e];

		for (unsigned i = 0; i < d->n_values; i++) {
			char w[FT_ENUM_WORD_MAX], up[FT_ENUM_WORD_MAX];
			int v = -1, vu = -1;

			CHECK(ft_enum_word(d, d->values[i].value, w) != NULL);
			for (size_t k = 0; k <= strlen(w); k++)
				up[k] = (char)(w[k] >= 'a' && w[k] <= 'z' ? w[k] - 32 : w[k]);
			CHECK(ft_enum_parse(d, w, &v) == 0 && v == d->values[i].value);
			CHECK(ft_enum_parse(d, up, &vu) == 0 && vu == d->values[i].value);
		}
		CHECK(ft_enum_word(d, 1000, (char[FT_ENUM_WORD_MAX]){ 0 }) == NULL);
	}
}

/* The words rows hold, as written before the enums, read as the values. */
static void
test_stored_words(void)
{
	static const struct {
		const ProtobufCEnumDescriptor *d;
		const char *word;
		int value;
	} rows[] = {
		{ &ft__job_state__descriptor, "QUEUED", FT__JOB_STATE__JOB_STATE_QUEUED },
		{ &ft__job_state__descriptor, "CANCELLED", FT__JOB_STATE__JOB_STATE_CANCELLED },
		{ &ft__job_kind__descriptor, "train", FT__JOB_KIND__JOB_KIND_TRAIN },
		{ &ft__job_kind__descriptor, "eval", FT__JOB_KIND__JOB_KIND_EVAL },
		{ &ft__model_kind__descriptor, "tuned", FT__MODEL_KIND__MODEL_KIND_TUNED },
		{ &ft__model_format__descriptor, "llama2c", FT__MODEL_FORMAT__MODEL_FORMAT_LLAMA2C },
		{ &ft__model_format__descriptor, "lora", FT__MODEL_FORMAT__MODEL_FORMAT_LORA },
		{ &ft__model_arch__descriptor, "gpt2", FT__MODEL_ARCH__MODEL_ARCH_GPT2 },
		{ &ft__export_format__descriptor, "ollama", FT__EXPORT_FORMAT__EXPORT_FORMAT_OLLAMA },
		{ &ft__dataset_kind__descriptor, "instruct", FT__DATASET_KIND__DATASET_KIND_INSTRUCT },
		{ &ft__code__descriptor, "PERMISSION_DENIED", FT__CODE__PERMISSION_DENIED },
		{ &ft__job_state__descriptor, "", FT__JOB_STATE__JOB_STATE_UNSPECIFIED },
	};
	char w[FT_ENUM_WORD_MAX], words[128];
	int v;

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		CHECK(ft_enum_parse(rows[i].d, rows[i].word, &v) == 0 && v == rows[i].value);
		CHECK_STR(ft_enum_word(rows[i].d, rows[i].value, w), rows[i].word);
	}
	CHECK(ft_enum_parse(&ft__model_arch__descriptor, "mamba", &v) == -1);
	CHECK(ft_enum_parse(&ft__job_state__descriptor, "UNSPECIFIED", &v) == -1);
	CHECK(ft_enum_parse(&ft__code__descriptor, "", &v) == -1);   /* Code's 0 is OK */
	CHECK_STR(ft_enum_words(&ft__job_state__descriptor, "|", words, sizeof(words)),
	    "QUEUED|RUNNING|SUCCEEDED|FAILED|CANCELLED");
	CHECK_STR(ft_enum_words(&ft__export_format__descriptor, ", ", words, sizeof(words)),
	    "hf, gguf, ollama, peft");
	CHECK_STR(ft_enum_words(&ft__dataset_kind__descriptor, "|", words, 6), "instr");
}

/* JSON shows words: what the dashboard and ftctl --json read. */
static void
test_json(void)
{
	Ft__JobInfo j = FT__JOB_INFO__INIT;
	Ft__ModelInfo m = FT__MODEL_INFO__INIT;
	json_t *o;

	j.state = FT__JOB_STATE__JOB_STATE_RUNNING;
	j.kind = FT__JOB_KIND__JOB_KIND_EVAL;
	o = ft_json_message(&j.base);
	CHECK_STR(json_string_value(json_object_get(o, "state")), "RUNNING");
	CHECK_STR(json_string_value(json_object_get(o, "kind")), "eval");
	json_decref(o);
	m.format = FT__MODEL_FORMAT__MODEL_FORMAT_LORA;
	m.arch = 77;    /* a number from a newer peer: shown as the number */
	o = ft_json_message(&m.base);
	CHECK_STR(json_string_value(json_object_get(o, "format")), "lora");
	CHECK_STR(json_string_value(json_object_get(o, "kind")), "");
	CHECK(json_integer_value(json_object_get(o, "arch")) == 77);
	json_decref(o);
}

#define CONFIG(arch, rope) "{\"arch\":\"" arch "\",\"n_layers\":2,\"dim\":8,\"n_heads\":2," \
	"\"n_kv_heads\":2,\"head_dim\":4,\"ffn_dim\":16,\"vocab_size\":32,\"max_seq_len\":16," \
	"\"norm_eps\":1e-5,\"rope_theta\":10000,\"rope_style\":\"" rope "\"," \
	"\"tied_embeddings\":true,\"qkv_bias\":false,\"bos_id\":1,\"eos_id\":2}"

/* registry_model_config: known architectures map to the engine's, an
 * unknown one (or RoPE style) is refused with its name. */
static void
test_model_config(void)
{
	struct model_info m = { .name = "m" };
	char err[256] = "";
	fte_config c;

	m.config_json = CONFIG("gpt2", "half");
	CHECK(registry_model_config(&m, &c, err, sizeof(err)) == 0 && c.arch == FTE_ARCH_GPT2);
	m.config_json = CONFIG("llama", "interleaved");
	CHECK(registry_model_config(&m, &c, err, sizeof(err)) == 0 && c.arch == FTE_ARCH_LLAMA &&
	    c.rope_style == FTE_ROPE_INTERLEAVED);
	m.config_json = CONFIG("mamba", "half");
	CHECK(registry_model_config(&m, &c, err, sizeof(err)) == -1);
	CHECK(strstr(err, "'mamba'") != NULL && strstr(err, "llama, gpt2") != NULL);
	m.config_json = CONFIG("llama", "yarn");
	CHECK(registry_model_config(&m, &c, err, sizeof(err)) == -1 && strstr(err, "'yarn'") != NULL);
	m.config_json = "{\"arch\":\"llama\"}";
	CHECK(registry_model_config(&m, &c, NULL, 0) == -1);
	/* every row of the engine's table has a wire value whose word is its name */
	for (int a = 1; a < FTE_ARCH_END; a++) {
		char w[FT_ENUM_WORD_MAX];

		CHECK(registry_arch_engine(registry_arch_wire(a)) == a);
		CHECK(strcmp(ft_enum_word(&ft__model_arch__descriptor, registry_arch_wire(a), w),
		    fte_arch_get(a)->name) == 0);
	}
	m.config_json = CONFIG("qwen3", "half");
	CHECK(registry_model_config(&m, &c, err, sizeof(err)) == 0 && c.arch == FTE_ARCH_QWEN3);
	CHECK(registry_arch_engine(FT__MODEL_ARCH__MODEL_ARCH_UNSPECIFIED) == 0);
}

/* A JobSpec as schema 12 stored it (type, method, schedule as strings)
 * reads, after the 12 -> 13 migration's rewrite, with the enums set and
 * every other field as it was. */
static void
test_spec_upgrade(void)
{
	static const uint8_t old[] = {
		0x0a, 1, 'm',                           /* 1 base_model "m" */
		0x1a, 3, 'c', 'p', 't',                 /* 3 type "cpt" */
		0x22, 4, 'l', 'o', 'r', 'a',            /* 4 method "lora" */
		0x55, 0x6f, 0x12, 0x83, 0x3a,           /* 10 lr 0.001f */
		0x7a, 6, 'l', 'i', 'n', 'e', 'a', 'r',  /* 15 schedule "linear" */
		0xb0, 0x01, 3,                          /* 22 priority 3 */
		0xba, 0x01, 2, 'x', 'y',                /* 23 name "xy" */
	};
	static const uint8_t odd[] = {
		0x1a, 0,                                /* type "" */
		0x7a, 7, 'r', 'm', 's', 'p', 'r', 'o', 'p',  /* a schedule no build has */
	};
	uint8_t out[sizeof(old)];
	size_t n;
	Ft__JobSpec *s;

	CHECK(store_spec_upgrade(STORE_JOB_SPEC, old, sizeof(old), out, &n) == 0 && n < sizeof(old));
	CHECK((s = ft__job_spec__unpack(NULL, n, out)) != NULL);
	if (s != NULL) {
		CHECK(s->type == FT__JOB_TYPE__JOB_TYPE_CPT);
		CHECK(s->method == FT__TRAIN_METHOD__TRAIN_METHOD_LORA);
		CHECK(s->schedule == FT__LR_SCHEDULE__LR_SCHEDULE_LINEAR);
		CHECK_STR(s->base_model, "m");
		CHECK_STR(s->name, "xy");
		CHECK(s->priority == 3 && s->lr == 0.001f);
		ft__job_spec__free_unpacked(s, NULL);
	}
	/* the old bytes do not unpack as they are: the rewrite is needed */
	CHECK(ft__job_spec__unpack(NULL, sizeof(old), old) == NULL);
	CHECK(store_spec_upgrade(STORE_JOB_SPEC, odd, sizeof(odd), out, &n) == 0 && n == 0);
	CHECK(store_spec_upgrade(STORE_JOB_SPEC, old, 4, out, &n) == -1);   /* cut inside a field */
	/* an EvalSpec's split; its field 3 is not a JobSpec's type */
	{
		static const uint8_t ev[] = { 0x0a, 1, 'a', 0x1a, 3, 'a', 'l', 'l', 0x48, 5 };
		Ft__EvalSpec *e;

		CHECK(store_spec_upgrade(STORE_EVAL_SPEC, ev, sizeof(ev), out, &n) == 0);
		CHECK((e = ft__eval_spec__unpack(NULL, n, out)) != NULL);
		if (e != NULL) {
			CHECK(e->split == FT__EVAL_SPLIT__EVAL_SPLIT_ALL && e->limit == 5 &&
			    e->n_models == 1);
			ft__eval_spec__free_unpacked(e, NULL);
		}
		CHECK(store_spec_upgrade(STORE_JOB_SPEC, ev, sizeof(ev), out, &n) == 0 && n == 5);  /* "all" is no JobType: dropped */
	}
}

int
main(void)
{
	test_round_trip();
	test_stored_words();
	test_json();
	test_model_config();
	test_spec_upgrade();
	return ft_test_done();
}
