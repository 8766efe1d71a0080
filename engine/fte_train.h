/*
 * fte_train.h - training (forward, backward, AdamW, LoRA, checkpoints) and
 * inference (teacher-forced loss, generation with a KV cache).
 *
 * A trainer borrows a model and owns everything a run needs besides it:
 * gradients, AdamW moments, activations for one micro-batch of B x T tokens,
 * LoRA adapters when the run uses them, and a seeded random generator.
 * One training step is: zero gradients, forward + backward over each
 * micro-batch (gradient accumulation), clip by global norm, one AdamW update.
 *
 * Batches are token ids with targets; a target of -1 is masked (not trained
 * on), and the loss is the mean cross-entropy over unmasked targets of the
 * whole step.  Optional segment ids pack several documents into one row:
 * a token attends only to earlier tokens of its own segment, and positions
 * restart at 0 where a segment begins.
 *
 * A trainer is used by one thread at a time; the model must outlive it and
 * must not be changed by others while it runs.
 */
#ifndef FTE_TRAIN_H
#define FTE_TRAIN_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "fte_model.h"

/* LoRA target modules, a bit set.  GPT-2's equivalents: q, k, v (split from
 * c_attn), o (attn.c_proj), up (mlp.c_fc), down (mlp.c_proj); it has no gate. */
enum fte_lora_target {
	FTE_LORA_Q = 1 << 0,
	FTE_LORA_K = 1 << 1,
	FTE_LORA_V = 1 << 2,
	FTE_LORA_O = 1 << 3,
	FTE_LORA_GATE = 1 << 4,
	FTE_LORA_UP = 1 << 5,
	FTE_LORA_DOWN = 1 << 6,
	FTE_LORA_ALL = (1 << 7) - 1,
};

typedef struct fte_lora_config {
	int rank;            /* r; 0 means full fine-tuning */
	float alpha;         /* the adapter output is scaled by alpha / r */
	float dropout;       /* probability, on the adapter's input, in [0, 1) */
	unsigned targets;    /* enum fte_lora_target bits */
} fte_lora_config;

enum fte_schedule {
	FTE_SCHEDULE_CONSTANT = 0,
	FTE_SCHEDULE_LINEAR = 1,  /* linear decay to 0 at total_steps */
	FTE_SCHEDULE_COSINE = 2,  /* half cosine to 0 at total_steps */
};

typedef struct fte_train_config {
	int batch;           /* B: rows per micro-batch (the most a step gets) */
	int seq;             /* T: tokens per row, <= the model's max_seq_len */
	float lr;            /* peak learning rate */
	float beta1, beta2, eps;
	float weight_decay;  /* decoupled, as torch.optim.AdamW */
	int decay_1d;        /* nonzero: decay norms and biases too (torch's
	                      * default); zero: decay only matrices */
	float clip;          /* clip the global gradient norm to this; 0 = off */
	int schedule;        /* enum fte_schedule */
	int warmup_steps;    /* lr rises linearly from 0 over these steps */
	int total_steps;     /* for the linear and cosine schedules */
	uint64_t seed;       /* LoRA init and dropout */
	int recompute;       /* nonzero: keep only each layer's input and rerun
	                      * the layer's forward in backward (about a third
	                      * more compute, activations / n_layers) */
	fte_lora_config lora;
} fte_train_config;

/* fte_train_config_default fills cfg with defaults: B 1, T 256, lr 1e-4,
 * betas 0.9/0.999, eps 1e-8, weight decay 0, no decay of 1-D tensors, no
 * clipping (0), constant schedule, no warmup, seed 1234, no recomputation,
 * no LoRA (rank 0, alpha 16, dropout 0, targets q and v). */
void fte_train_config_default(fte_train_config *cfg);

/* fte_lora_targets_parse turns a comma-separated list of q,k,v,o,gate,up,
 * down (or "all") into enum fte_lora_target bits.  Returns FTE_EINVAL with a
 * message naming an unknown word. */
int fte_lora_targets_parse(const char *list, unsigned *out);

typedef struct fte_memory {
	size_t weights;      /* model parameters (and LoRA adapters) */
	size_t grads;        /* gradients of trainable tensors */
	size_t optimizer;    /* AdamW first and second moments */
	size_t activations;  /* saved activations and backward scratch */
	size_t total;
} fte_memory;

/* fte_train_memory computes, without allocating, the bytes a trainer for
 * model shape mcfg and run cfg will hold (the model's own weights included),
 * so a caller can refuse a job that will not fit.  FTE_EINVAL on a bad
 * configuration. */
int fte_train_memory(const fte_config *mcfg, const fte_train_config *cfg,
    fte_memory *out);

typedef struct fte_trainer fte_trainer;

/* One micro-batch: B rows of T tokens, row-major.  targets[i] is the token
 * to predict after tokens[i], or -1 (masked).  segments may be NULL; else
 * segments[i] is the document id of token i, equal ids contiguous in a row. */
typedef struct fte_batch {
	const int *tokens;
	const int *targets;
	const int *segments;
	int B, T;
} fte_batch;

typedef struct fte_step_stats {
	int step;            /* steps completed, this one included */
	float loss;          /* mean loss of the step, before its update */
	float lr;            /* learning rate used by this step */
	float grad_norm;     /* global gradient norm before clipping */
	int tokens;          /* unmasked targets in the step */
	double tokens_per_s; /* all tokens processed / wall time of the step */
} fte_step_stats;

/* Called after each step; a nonzero return cancels the run: the step that
 * just finished stays applied and fte_trainer_step returns FTE_ECANCELED. */
typedef int (*fte_progress_fn)(void *arg, const fte_step_stats *st);

/* fte_trainer_create allocates a trainer for model m (borrowed, must outlive
 * the trainer).  With cfg->lora.rank > 0 the base weights are frozen: they get
 * no gradient or optimizer memory and are never written; adapters start as
 * PEFT does (A kaiming-uniform, B zero).  Otherwise every tensor trains.
 * Returns FTE_EINVAL for a bad configuration, FTE_ENOMEM. */
int fte_trainer_create(fte_model *m, const fte_train_config *cfg,
    fte_trainer **out);

/* fte_trainer_free releases the trainer (not the model). NULL is allowed. */
void fte_trainer_free(fte_trainer *t);

/* fte_trainer_set_abort makes steps poll *flag (may be NULL): once it is
 * nonzero the next step, or the next micro-batch of a step, returns
 * FTE_ECANCELED without updating the weights. */
void fte_trainer_set_abort(fte_trainer *t, const atomic_int *flag);

/* fte_trainer_set_progress installs a callback run after each step. */
void fte_trainer_set_progress(fte_trainer *t, fte_progress_fn fn, void *arg);

/* fte_trainer_step runs one optimizer step over n micro-batches (gradient
 * accumulation: their gradients add, weighted so the loss is the mean over
 * all unmasked targets of the step).  Each micro-batch must have B <= cfg
 * batch and T <= cfg seq and ids inside the vocabulary (FTE_EINVAL
 * otherwise).  A step whose targets are all masked has loss 0 and zero
 * gradients (AdamW still decays and advances its step).  FTE_ENUMERIC if the
 * loss or gradient norm is not finite (weights are left untouched).  Fills
 * *st when st is not NULL. */
int fte_trainer_step(fte_trainer *t, const fte_batch *micro, int n,
    fte_step_stats *st);

/* fte_trainer_backward is the first half of a step: it zeroes the
 * gradients, runs forward and backward over the micro-batches and writes the
 * mean loss to *loss, without updating anything.  With logits not NULL (and
 * n == 1) the pre-softmax logits (B*T x V) are copied there.  For tests and
 * for callers that inspect gradients. */
int fte_trainer_backward(fte_trainer *t, const fte_batch *micro, int n,
    float *logits, float *loss);

/* fte_trainer_eval computes the mean loss over the unmasked targets of the
 * micro-batches with the model as it trains (adapters included, dropout
 * off), without touching gradients, optimizer or random state: validation
 * loss during a run.  Same batch rules as fte_trainer_step. */
int fte_trainer_eval(fte_trainer *t, const fte_batch *micro, int n, float *loss);

/* fte_trainer_num_trainable returns how many trainable tensors there are;
 * fte_trainer_trainable gives the i-th parameter and its gradient (views
 * into trainer or model memory, valid until fte_trainer_free).  Full
 * fine-tuning lists the model's tensors in fte_model_tensor order; LoRA lists
 * adapters layer by layer, modules in the order q, k, v, o, gate, up, down,
 * each A (r, in) then B (out, r), named like
 * "layers.0.attn.wq.lora_A.weight" / "layers.0.ffn.w2.lora_B.weight". */
int fte_trainer_num_trainable(const fte_trainer *t);
int fte_trainer_trainable(fte_trainer *t, int i, fte_tensor **param,
    fte_tensor **grad);

/* fte_trainer_steps returns how many optimizer steps have been applied. */
int fte_trainer_steps(const fte_trainer *t);

/* fte_trainer_lora_merge adds each adapter's scale * B @ A into its base
 * weight (for export) and zeroes B, so the model alone computes what the
 * adapted model did.  FTE_EINVAL when the trainer has no adapters. */
int fte_trainer_lora_merge(fte_trainer *t);

/* fte_trainer_save writes the full training state (trainable tensors, AdamW
 * moments, step, random generator, and the caller's data_pos) to path,
 * atomically: path.tmp is written, fsynced, renamed over path and the
 * directory fsynced.  FTE_EIO on failure, path untouched. */
int fte_trainer_save(fte_trainer *t, const char *path, uint64_t data_pos);

/* fte_trainer_restore loads a state written by fte_trainer_save into a
 * trainer created with the same model shape and LoRA configuration, so the
 * run continues exactly where it stopped; *data_pos (may be NULL) receives
 * the saved data position.  FTE_EFORMAT with a message for a truncated,
 * corrupt or mismatched file (the trainer is then unchanged), FTE_EIO. */
int fte_trainer_restore(fte_trainer *t, const char *path, uint64_t *data_pos);

/* fte_model_loss computes teacher-forced cross-entropy of model m on one
 * sequence of n tokens (2 <= n <= max_seq_len + 1): every position but the
 * last predicts the next token.  *sum receives the summed loss in nats and *count
 * the number of predictions (n - 1). */
int fte_model_loss(fte_model *m, const int *tokens, int n, double *sum,
    int *count);

/* fte_model_loss_rows computes, with model m alone (no adapters), the
 * teacher-forced cross-entropy of each row of batch b separately: sum[r]
 * receives the loss in nats summed over row r's unmasked targets and
 * count[r] their number (both arrays hold b->B entries).  One forward pass
 * with inference activations serves every row, so evaluation batches
 * examples of different lengths: a row padded at its end with any valid ids
 * and masked targets has the sum it has alone, up to float rounding (the
 * model is causal).  T may be at most max_seq_len.  FTE_EINVAL for bad
 * ids or sizes, FTE_ENOMEM. */
int fte_model_loss_rows(fte_model *m, const fte_batch *b, double *sum,
    int *count);

typedef struct fte_sampler {
	float temperature;   /* 0: greedy (argmax) */
	int top_k;           /* keep the k most likely tokens; 0 = all */
	float top_p;         /* nucleus: smallest set with mass >= p; 1 = all */
	uint64_t seed;
	int max_new_tokens;
	int stop_at_eos;     /* stop after the model's eos_id */
	int stop_at_bos;     /* stop when bos_id is produced (llama2.c models) */
	const int *stop_ids; /* also stop at any of these n_stop_ids (a config's
	                      * eos list, the end-of-turn token); borrowed */
	size_t n_stop_ids;
} fte_sampler;

/* fte_sampler_default: greedy, top_k 0, top_p 1, seed 1, 256 new tokens,
 * stop at EOS and at BOS, no other stop ids.  A stop token is not output. */
void fte_sampler_default(fte_sampler *s);

/* Called with each generated token; a nonzero return stops generation (the
 * caller's own stop sequences). */
typedef int (*fte_token_fn)(void *arg, int token);

/* Log-probabilities of one position under the model's own distribution:
 * the log-softmax of its logits at temperature 1, before any sampling
 * transform (temperature, top-k, top-p), as OpenAI reports them. */
#define FTE_TOP_LOGPROBS_MAX 20

typedef struct fte_logprob {
	float logprob;                       /* of the token at this position */
	int n_top;                           /* entries in top_id and top_lp */
	int top_id[FTE_TOP_LOGPROBS_MAX];    /* the most likely tokens, best first */
	float top_lp[FTE_TOP_LOGPROBS_MAX];
} fte_logprob;

/* fte_model_logprobs is the teacher-forced view of n tokens (2 <= n <=
 * max_seq_len + 1): out[i] (n - 1 entries) gives tokens[i + 1]'s
 * log-probability after tokens[0..i] and the k (0 to FTE_TOP_LOGPROBS_MAX)
 * most likely tokens there (fewer where a probability underflows to 0).
 * It holds what fte_model_loss holds, within fte_generate_memory.
 * FTE_EINVAL, FTE_ENOMEM. */
int fte_model_logprobs(fte_model *m, const int *tokens, int n, int k, fte_logprob *out);

/* Called with each generated token and its log-probabilities. */
typedef int (*fte_logprob_fn)(void *arg, int token, const fte_logprob *lp);

/* fte_generate_logprobs is fte_generate calling fn with each token's
 * log-probability and the k most likely alternatives (0 to
 * FTE_TOP_LOGPROBS_MAX) at its position. */
int fte_generate_logprobs(fte_model *m, const int *prompt, int n_prompt,
    const fte_sampler *s, int k, fte_logprob_fn fn, void *arg, int *out, int *n_out);

/* fte_generate_memory computes, without allocating, the most bytes one
 * fte_generate call on a model of shape c holds besides the model itself:
 * the KV cache, one position's buffers, the sampler's buffer and the
 * activations of the longest prompt's prefill. */
size_t fte_generate_memory(const fte_config *c);

/* fte_model_generate_memory is fte_generate_memory for model m as it runs,
 * its attached adapter's activations included (fte_adapter_attach). */
size_t fte_model_generate_memory(const fte_model *m);

/* fte_generate extends prompt (n_prompt >= 1 ids) with a KV cache until
 * max_new_tokens, a stop token (not passed to fn, not counted), the
 * callback's stop, or the context length.  The generated ids are written to
 * out (room for max_new_tokens; may be NULL) and their number to *n_out.
 * Returns FTE_EINVAL for bad ids or sampler values, FTE_ENOMEM. */
int fte_generate(fte_model *m, const int *prompt, int n_prompt,
    const fte_sampler *s, fte_token_fn fn, void *arg, int *out, int *n_out);

#endif
