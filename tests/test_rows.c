/*
 * test_rows.c - SFT rows (daemon/rows.c): packing several records a row,
 * with segments that keep attention inside each record and restart its
 * positions, gives every record the loss it has alone: the summed loss of
 * the packed batch equals the unpacked one, for a Llama (RoPE) and a GPT-2
 * (learned positions) model; a record longer than the row is shortened
 * the same way in both.
 */
#include <stdint.h>

#include "fte.h"
#include "ft_test.h"
#include "rows.h"

enum { V = 48, T = 16, N = 6 };

/* The records: lengths, and which tokens are targets (two-turn
 * conversations have two target spans). */
static const uint32_t lens[N] = { 7, 11, 5, 9, 12, 24 };
static const char *const masks[N] = {
	"0001111",
	"00011000111",
	"00111",
	"000000111",
	"000011000111",
	"000000000000000111111111",
};

/* batch_sum runs every row of r through m and sums the loss and count. */
static void
batch_sum(fte_model *m, const struct rows *r, double *sum, int *count)
{
	fte_batch b = { r->tokens, r->targets, r->segments, (int)r->n, r->T };
	double s[16];
	int c[16];

	*sum = 0;
	*count = 0;
	CHECK(r->n <= 16);
	CHECK(fte_model_loss_rows(m, &b, s, c) == FTE_OK);
	for (size_t i = 0; i < r->n; i++) {
		*sum += s[i];
		*count += c[i];
	}
}

static void
test_packing(int arch)
{
	fte_config c = { .arch = arch, .n_layers = 2, .dim = 32, .n_heads = 4,
		.n_kv_heads = arch == FTE_ARCH_LLAMA ? 2 : 4, .head_dim = 8, .ffn_dim = 64,
		.vocab_size = V, .max_seq_len = T, .norm_eps = 1e-5f, .rope_theta = 10000.0f,
		.tied_embeddings = arch == FTE_ARCH_GPT2, .bos_id = 1, .eos_id = 2 };
	uint32_t n_prompt[N];
	int32_t ids[128];
	uint8_t mask[128];
	struct tokcache_form f = { .n = N, .len = lens, .n_prompt = n_prompt, .ids = ids,
		.mask = mask };
	struct rows one = { .T = T }, packed = { .T = T };
	double s_one, s_packed;
	int c_one, c_packed;
	fte_model *m;
	char err[128];
	size_t k = 0;
	uint64_t x = 12345;

	for (size_t i = 0; i < N; i++) {
		n_prompt[i] = (uint32_t)(strchr(masks[i], '1') - masks[i]);
		for (size_t t = 0; t < lens[i]; t++, k++) {
			x = x * 6364136223846793005ULL + 1442695040888963407ULL;
			ids[k] = t == 0 ? 1 : 3 + (int32_t)((x >> 33) % (V - 3));
			mask[k] = masks[i][t] == '1';
		}
	}
	f.n_ids = k;
	if (fte_model_create(&c, &m) != FTE_OK) {
		fprintf(stderr, "fte_model_create: %s\n", fte_last_error());
		CHECK(0);
		return;
	}
	CHECK(fte_model_init_random(m, 9) == FTE_OK);
	CHECK(rows_sft(&one, &f, 0, err, sizeof(err)) == 0);
	CHECK(rows_sft(&packed, &f, 1, err, sizeof(err)) == 0);
	CHECK(one.n == N && one.segments == NULL);
	/* positions 6+10 | 4+8 | 11 | 16 (the last shortened to T + 1 tokens) */
	CHECK(packed.n == 4);
	CHECK(one.truncated == 1 && packed.truncated == 1);
	if (packed.n == 4) {
		CHECK(packed.segments[0] == 0 && packed.segments[6] == 1 && packed.segments[15] == 1);
		CHECK(packed.segments[T] == 2 && packed.segments[T + 4] == 3 &&
		    packed.segments[T + 11] == 3 && packed.segments[T + 12] == -1);
		CHECK(packed.targets[T + 15] == -1 && packed.tokens[T + 4] == 1);
		CHECK(packed.segments[3 * T] == 5 && packed.segments[4 * T - 1] == 5);
	}
	batch_sum(m, &one, &s_one, &c_one);
	batch_sum(m, &packed, &s_packed, &c_packed);
	printf("arch %d: %zu rows unpacked, %zu packed; %d targets; loss %.9f vs %.9f\n", arch,
	    one.n, packed.n, c_one, s_one, s_packed);
	CHECK(c_one == c_packed);
	CHECK(c_one == 4 + 5 + 3 + 3 + 5 + 9);
	CHECK_NEAR(s_packed, s_one, 1e-4 * s_one);
	rows_free(&one);
	rows_free(&packed);
	fte_model_free(m);
}

int
main(void)
{
	test_packing(FTE_ARCH_LLAMA);
	test_packing(FTE_ARCH_GPT2);
	return ft_test_done();
}
