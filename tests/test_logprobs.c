/*
 * test_logprobs.c - the log-probabilities generation reports (KV-cache
 * decoding) equal the teacher-forced ones of one batched forward pass over
 * the same tokens, at any temperature and top-p (they are the model's own
 * distribution), and the echo view of a sequence sums to fte_model_loss.
 * On stories260K.
 */
#include "ft_test.h"
#include "fte.h"

#define NEW 40
#define K 5

struct seen {
	int n;
	int ids[NEW];
	fte_logprob lp[NEW];
};

static int
collect(void *arg, int token, const fte_logprob *lp)
{
	struct seen *s = arg;

	s->ids[s->n] = token;
	s->lp[s->n++] = *lp;
	return 0;
}

/* Generation with sampler sm from prompt, then the teacher-forced view of
 * prompt + output: every token's log-probability and top K within 2e-5,
 * relative below -1 (the two paths round the logits differently). */
static void
check_against_forced(fte_model *m, const int *prompt, int np, const fte_sampler *sm)
{
	struct seen s = { 0 };
	int all[512], out[NEW], n_out = 0, bad = 0, greedy_bad = 0;
	fte_logprob forced[512];
	double worst = 0.0;

	CHECK(fte_generate_logprobs(m, prompt, np, sm, K, collect, &s, out, &n_out) == FTE_OK);
	CHECK(n_out == s.n && n_out > 10);
	memcpy(all, prompt, (size_t)np * sizeof(int));
	memcpy(all + np, out, (size_t)n_out * sizeof(int));
	CHECK(fte_model_logprobs(m, all, np + n_out, K, forced) == FTE_OK);
	for (int i = 0; i < n_out; i++) {
		const fte_logprob *g = &s.lp[i], *f = &forced[np - 1 + i];
		double d = fabs(g->logprob - f->logprob) / fmax(1.0, fabs(f->logprob));

		worst = d > worst ? d : worst;
		if (g->n_top != K || f->n_top != K)
			bad++;
		for (int t = 0; t < K && t < g->n_top; t++) {
			d = fabs(g->top_lp[t] - f->top_lp[t]) / fmax(1.0, fabs(f->top_lp[t]));
			worst = d > worst ? d : worst;
			if (t > 0 && g->top_lp[t] > g->top_lp[t - 1])
				bad++;
			/* ids agree unless two alternatives tie within rounding */
			if (g->top_id[t] != f->top_id[t] && fabs(f->top_lp[t] -
			    f->top_lp[t + (t + 1 < K ? 1 : -1)]) > 1e-5)
				bad++;
		}
		if (sm->temperature == 0.0f && (g->top_id[0] != out[i] ||
		    g->top_lp[0] != g->logprob))
			greedy_bad++;
	}
	printf("temperature %g top_p %g: %d tokens, largest (relative) difference %.3g\n",
	    sm->temperature, sm->top_p, n_out, worst);
	CHECK(worst <= 2e-5);
	CHECK(bad == 0);
	CHECK(greedy_bad == 0);
}

int
main(void)
{
	char mp[4096], tp[4096];
	const char *text = "Once upon a time, there was a little dog named Max.";
	fte_model *m = NULL;
	fte_tokenizer *tok = NULL;
	fte_sampler sm;
	fte_logprob lp[64], one;
	int *ids = NULL, out[4], n_out;
	size_t n = 0;
	double sum = 0.0, lsum = 0.0;
	int count = 0;

	snprintf(mp, sizeof(mp), "%s", ft_test_asset("llama2c/stories260K.bin"));
	snprintf(tp, sizeof(tp), "%s", ft_test_asset("llama2c/tok512.bin"));
	fte_threads_set(2);
	CHECK(fte_llama2c_load(mp, &m) == FTE_OK);
	CHECK(fte_tokenizer_load(tp, &tok) == FTE_OK);
	if (m == NULL || tok == NULL)
		return ft_test_done();
	CHECK(fte_tokenizer_encode(tok, text, strlen(text), 1, &ids, &n) == FTE_OK);
	CHECK(n > 8 && n < 64);

	/* echo: the prompt's own log-probabilities sum to the loss */
	CHECK(fte_model_logprobs(m, ids, (int)n, 0, lp) == FTE_OK);
	CHECK(fte_model_loss(m, ids, (int)n, &lsum, &count) == FTE_OK);
	for (size_t i = 0; i + 1 < n; i++)
		sum -= lp[i].logprob;
	CHECK(count == (int)n - 1 && lp[0].n_top == 0);
	CHECK_NEAR(sum, lsum, 1e-9);

	fte_sampler_default(&sm);
	sm.max_new_tokens = NEW;
	check_against_forced(m, ids, (int)n, &sm);
	sm.temperature = 0.7f;
	sm.top_p = 0.9f;
	sm.seed = 7;
	check_against_forced(m, ids, (int)n, &sm);
	sm.temperature = 1.6f;
	sm.top_p = 1.0f;
	check_against_forced(m, ids, 1, &sm);

	/* at most FTE_TOP_LOGPROBS_MAX alternatives */
	sm.max_new_tokens = 4;
	CHECK(fte_generate_logprobs(m, ids, (int)n, &sm, FTE_TOP_LOGPROBS_MAX + 1, collect,
	    NULL, out, &n_out) == FTE_EINVAL);
	CHECK(fte_model_logprobs(m, ids, 2, FTE_TOP_LOGPROBS_MAX + 1, &one) == FTE_EINVAL);
	CHECK(fte_model_logprobs(m, ids, 2, FTE_TOP_LOGPROBS_MAX, &one) == FTE_OK);
	CHECK(one.n_top == FTE_TOP_LOGPROBS_MAX);
	free(ids);
	fte_tokenizer_free(tok);
	fte_model_free(m);
	return ft_test_done();
}
