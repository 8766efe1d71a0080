/*
 * test_rows.c - SFT rows (daemon/rows.c): packing several records a row,
 * with segments that keep attention inside each record and restart its
 * positions, gives every record the loss it has alone: the summed loss of
 * the packed batch equals the unpacked one, for a Llama (RoPE) and a GPT-2
 * (learned positions) model; a record longer than the row is written
 * again without its earliest turns (chat_format_encode_fit) the same way
 * in both, or cut from the start of its prompt when it cannot be.
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

/* refit_last: record 5 without its earliest turn, as
 * chat_format_encode_fit writes it: BOS, then its last 11 tokens (the
 * context of its answer and the answer). */
static int
refit_last(void *ctx, size_t i, size_t max, int **ids, unsigned char **mask, size_t *n,
    size_t *dropped)
{
	const struct tokcache_form *f = ctx;
	size_t start = 0, keep = 11;

	for (size_t k = 0; k < i; k++)
		start += f->len[k];
	if (i != 5 || keep + 1 > max)
		return -1;
	*ids = malloc((keep + 1) * sizeof(int));
	*mask = malloc(keep + 1);
	(*ids)[0] = f->ids[start];
	(*mask)[0] = 0;
	for (size_t t = 0; t < keep; t++) {
		(*ids)[t + 1] = f->ids[start + f->len[i] - keep + t];
		(*mask)[t + 1] = f->mask[start + f->len[i] - keep + t];
	}
	*n = keep + 1;
	*dropped = 1;
	return 0;
}

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
	struct rows one = { .T = T }, packed = { .T = T }, skip = { .T = T };
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
	CHECK(rows_sft(&one, &f, 0, refit_last, &f, err, sizeof(err)) == 0);
	CHECK(rows_sft(&packed, &f, 1, refit_last, &f, err, sizeof(err)) == 0);
	CHECK(one.n == N && one.segments == NULL);
	/* positions 6+10 | 4+8 | 11 | 11 (the last without its first turn) */
	CHECK(packed.n == 4);
	CHECK(one.shortened == 1 && packed.shortened == 1 && packed.turns_dropped == 1 &&
	    packed.cut == 0);
	if (packed.n == 4) {
		CHECK(packed.segments[0] == 0 && packed.segments[6] == 1 && packed.segments[15] == 1);
		CHECK(packed.segments[T] == 2 && packed.segments[T + 4] == 3 &&
		    packed.segments[T + 11] == 3 && packed.segments[T + 12] == -1);
		CHECK(packed.targets[T + 15] == -1 && packed.tokens[T + 4] == 1);
		CHECK(packed.segments[3 * T] == 5 && packed.segments[3 * T + 10] == 5 &&
		    packed.segments[3 * T + 11] == -1 && packed.tokens[3 * T] == 1);
		/* its tokens are the record's last, never cut inside */
		CHECK(packed.tokens[3 * T + 1] == ids[k - 11] && packed.targets[3 * T + 11] == -1 &&
		    packed.targets[3 * T + 10] == ids[k - 1]);
	}
	/* without a way to shorten it, the long record loses the start of its
	 * prompt (after BOS), then its end: 16 positions */
	CHECK(rows_sft(&skip, &f, 1, NULL, NULL, err, sizeof(err)) == 0);
	CHECK(skip.n == 4 && skip.cut == 1 && skip.shortened == 0);
	if (skip.n == 4)
		CHECK(skip.segments[4 * T - 1] == 5 && skip.tokens[3 * T] == 1 &&
		    skip.tokens[3 * T + 1] == ids[k - 24 + 8] && skip.targets[4 * T - 1] == ids[k - 1]);
	rows_free(&skip);
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
