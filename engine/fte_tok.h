/*
 * fte_tok.h - tokenizers: Hugging Face tokenizer.json (byte-level and
 * SentencePiece-style BPE) and llama2.c tokenizer.bin, behind one interface;
 * and prompt templates (below).
 *
 * A loaded tokenizer is never modified: encode and decode may run on it from
 * several threads at once.  Encoding follows Hugging Face tokenizers: added
 * tokens are split out first, the normalizer runs on each remaining piece,
 * then the pre-tokenizer, BPE and the post-processor.  Hugging Face BPE with
 * neither byte_fallback nor an unk token drops characters missing from the
 * vocabulary; so does this one.
 */
#ifndef FTE_TOK_H
#define FTE_TOK_H

#include <stddef.h>

typedef struct fte_tokenizer fte_tokenizer;

/* fte_tokenizer_load reads a tokenizer.json, a llama2.c tokenizer.bin,
 * OpenAI's GPT-2 encoder.json + vocab.bpe (either path names the pair), a
 * SentencePiece tokenizer.model, a GGUF file's vocabulary (any file that
 * starts with GGUF's magic, tokenizer.gguf in a directory), or a directory
 * holding one of those (tokenizer.json first).  BOS/EOS come from
 * tokenizer_config.json beside a tokenizer.json, from a GGUF's own ids, else
 * from the post-processor and well-known names.  On success *out
 * owns it; broken files fail with a message naming the file. */
int fte_tokenizer_load(const char *path, fte_tokenizer **out);

/* fte_tokenizer_load_memory parses size bytes of a tokenizer.json,
 * tokenizer.bin or GGUF file; name labels error messages.  No tokenizer_config.json is
 * consulted, so BOS/EOS come from the post-processor and well-known names. */
int fte_tokenizer_load_memory(const char *name, const void *data, size_t size,
    fte_tokenizer **out);

/* fte_tokenizer_free releases a tokenizer. NULL is allowed. */
void fte_tokenizer_free(fte_tokenizer *t);

/* fte_tokenizer_encode turns len bytes of UTF-8 text into token ids.  With
 * add_special the tokenizer's own post-processing runs (for example BOS for
 * Llama 2); without it only the text's tokens are produced.  On success
 * *ids is a malloc'd array of *n_ids ids, owned by the caller. */
int fte_tokenizer_encode(const fte_tokenizer *t, const char *text, size_t len,
    int add_special, int **ids, size_t *n_ids);

/* fte_tokenizer_decode turns ids back into text, as the tokenizer's decoder
 * does (byte fallback, metaspace, skipping nothing).  On success *text is a
 * malloc'd NUL-terminated string of *len bytes, owned by the caller.  Byte
 * fallback tokens that do not form UTF-8 become U+FFFD as in Hugging Face;
 * byte-level tokens give their bytes as they are (a partial character at
 * the end of a prefix of ids stays partial). */
int fte_tokenizer_decode(const fte_tokenizer *t, const int *ids, size_t n_ids,
    char **text, size_t *len);

/* Vocabulary size and special ids (-1 when the tokenizer has none). */
int fte_tokenizer_vocab_size(const fte_tokenizer *t);
int fte_tokenizer_bos(const fte_tokenizer *t);
int fte_tokenizer_eos(const fte_tokenizer *t);

/* Flags for the _flags variants of encode and decode. */
enum fte_tok_flags {
	FTE_TOK_ADD_SPECIAL = 1,   /* encode: run the post-processor (BOS, ...) */
	FTE_TOK_PARSE_SPECIAL = 2, /* encode: special tokens written in the text
	                            * (e.g. "<|im_end|>") become their ids */
	FTE_TOK_SKIP_SPECIAL = 4,  /* decode: leave special tokens out */
};

/* fte_tokenizer_encode_flags is fte_tokenizer_encode with explicit flags.
 * fte_tokenizer_encode(t, ..., add_special, ...) is FTE_TOK_PARSE_SPECIAL
 * plus FTE_TOK_ADD_SPECIAL when add_special, as Hugging Face encodes.
 * Without FTE_TOK_PARSE_SPECIAL, user text that spells a special token is
 * tokenized as plain text.  Text must be valid UTF-8 for tokenizer.json
 * tokenizers (FTE_EINVAL otherwise); llama2.c ones byte-fall-back any bytes. */
int fte_tokenizer_encode_flags(const fte_tokenizer *t, const char *text, size_t len,
    unsigned flags, int **ids, size_t *n_ids);

/* fte_tokenizer_decode_flags is fte_tokenizer_decode with
 * FTE_TOK_SKIP_SPECIAL allowed.  An id outside the vocabulary is FTE_ERANGE.
 * Special tokens decode to their text ("<s>"). */
int fte_tokenizer_decode_flags(const fte_tokenizer *t, const int *ids, size_t n_ids,
    unsigned flags, char **text, size_t *len);

/* fte_tokenizer_token returns token id's string as the vocabulary spells it
 * (U+2581 for spaces in SentencePiece vocabularies, byte-level characters in
 * GPT-2 ones) and its length in *len (may be NULL); NULL for an unknown id.
 * The string belongs to the tokenizer. */
const char *fte_tokenizer_token(const fte_tokenizer *t, int id, size_t *len);

/* fte_tokenizer_token_id returns the id of an added token or vocabulary
 * string (e.g. "<|im_end|>"), or -1. */
int fte_tokenizer_token_id(const fte_tokenizer *t, const char *token);

/* fte_tokenizer_is_special is 1 for special tokens (BOS, EOS, ChatML markers). */
int fte_tokenizer_is_special(const fte_tokenizer *t, int id);

/*
 * Prompt templates turn an instruction record into prompt text and response
 * text, so that training knows which tokens to learn (the response, then
 * EOS) and generation builds the same prompt.  Three kinds:
 *   - Alpaca (the default): "Below is an instruction that describes a
 *     task..." with or without the "### Input:" section;
 *   - custom: a string with {instruction}, {input} and {output} placeholders;
 *     the prompt is everything before {output}, the response {output} and
 *     what follows it ({output} missing: the response follows the text);
 *   - chat: the model's own Jinja chat_template (tokenizer_config.json),
 *     rendered by a Jinja subset (for/if/elif/else/set, macro, break/
 *     continue, generation, "for k, v", loop filters, loop.*, slices with a
 *     step, + - * % ~, comparisons, and/or/not/in, "x if c else y", the
 *     tests, filters, methods and functions listed in template.c, tojson
 *     and Python printing of lists and mappings) with trim_blocks and
 *     lstrip_blocks as transformers uses; anything else is refused when
 *     the template is compiled, with the construct named.  The record becomes a user message
 *     (instruction, then a blank line and the input if any) and an assistant
 *     message (output); the prompt is the conversation up to the assistant
 *     turn with add_generation_prompt, and the response is the rest.
 */
typedef struct fte_template fte_template;

/* One instruction record; input may be NULL or "", output is ignored when
 * building a generation prompt. */
typedef struct fte_record {
	const char *instruction;
	const char *input;
	const char *output;
} fte_record;

/* One chat message for fte_template_render_chat. */
typedef struct fte_message {
	const char *role;       /* "system", "user", "assistant" */
	const char *content;
} fte_message;

/* fte_template_alpaca returns the Alpaca template in *out. */
int fte_template_alpaca(fte_template **out);

/* fte_template_custom parses a string with {instruction}, {input} and
 * {output} placeholders (each at most once; {{ and }} write braces).
 * Another {name} is FTE_EINVAL. */
int fte_template_custom(const char *format, fte_template **out);

/* fte_template_chat compiles Jinja chat-template source with the tokens it
 * names as bos_token and eos_token (NULL for ""); syntax errors and
 * unsupported constructs are FTE_EINVAL / FTE_ENOTSUP with the offset. */
int fte_template_chat(const char *source, const char *bos_token, const char *eos_token,
    fte_template **out);

/* fte_template_chat_load reads chat_template, bos_token and eos_token from
 * tokenizer_config.json: path is that file, a model directory, or a file in
 * that directory (e.g. its tokenizer.json).  FTE_ENOENT if it has none. */
int fte_template_chat_load(const char *path, fte_template **out);

/*
 * Every chat render has a budget, so that a model's template cannot take the
 * process's CPU or memory: loop iterations (each pass through a loop body,
 * in macros too) and bytes, both of output and of the strings and
 * lists built on the way.  A render over budget fails with FTE_ERANGE and
 * "chat template exceeded its budget of N loop iterations" (or "N bytes of
 * output", "N bytes of working memory").  0 means no limit.
 */
#define FTE_TEMPLATE_ITERATIONS_DEFAULT 100000
#define FTE_TEMPLATE_BYTES_DEFAULT ((size_t)16 << 20)

/* fte_template_set_budget sets a chat template's budget (the defaults
 * above when compiled). */
void fte_template_set_budget(fte_template *tp, size_t iterations, size_t bytes);

/* fte_template_probe renders tp with a worst-case conversation: n_messages
 * messages of content_bytes each (a system message then alternating user
 * and assistant turns, and alternating from a user turn), with the
 * generation prompt.  FTE_ERANGE (the budget message) if a render exceeds
 * the budget, FTE_ENOMEM if memory ran out; a template that raises an
 * exception on these conversations passes.  Branches on message content are
 * not explored: the budget still bounds every render at request time. */
int fte_template_probe(const fte_template *tp, size_t n_messages, size_t content_bytes);

/* fte_template_free releases a template. NULL is allowed. */
void fte_template_free(fte_template *tp);

/* fte_template_render writes the prompt and the response text of rec as
 * malloc'd strings (the response without EOS).  Spaces and tabs that would
 * end an Alpaca or custom prompt begin the response instead, so the prompt
 * a model is trained on and the one it generates from end on the same
 * token (BPE joins a space to the word after it).  The chat kind fails with
 * the template's own message when it raises an exception. */
int fte_template_render(const fte_template *tp, const fte_record *rec,
    char **prompt, char **response);

/* fte_template_render_chat renders a whole conversation with a chat
 * template (FTE_EINVAL for other kinds) into a malloc'd *text. */
int fte_template_render_chat(const fte_template *tp, const fte_message *msgs, size_t n,
    int add_generation_prompt, char **text);

/* fte_template_render_json renders a conversation given as JSON text,
 * {"messages": [...], "tools": [...]} ("tools" optional), the messages as
 * transformers passes them (role, content, tool_calls, tool_call_id, name,
 * any other field) into a malloc'd *text. */
int fte_template_render_json(const fte_template *tp, const char *conversation,
    int add_generation_prompt, char **text);

/* fte_template_set_clock fixes the time strftime_now() renders (UTC;
 * 0, the default: the current time). */
void fte_template_set_clock(fte_template *tp, long long unix_seconds);

/*
 * The token-level contract between training and serving.  A conversation
 * is rendered whole with the chat template and encoded once (special
 * tokens parsed, no extra BOS); the targets are the assistant turns: each
 * starts where rendering the messages before it with the generation prompt
 * ends (that text must begin the whole rendering, or the turn is refused
 * with FTE_ENOTSUP) and ends with the template's end-of-turn token (the
 * first special token it writes after an assistant's content).  Both ends
 * are found by encoding the prefix and comparing ids with the whole
 * encoding, so a BPE merge across a boundary goes to the target.  The ids
 * before a turn's first target are therefore, id for id, what
 * fte_template_render_json(..., add_generation_prompt=1) of the messages
 * before it encodes to: what serving feeds the model.
 */

/* fte_template_encode_conversation encodes conversation (JSON as for
 * fte_template_render_json; an assistant message with "weight": 0 is not a
 * target) into malloc'd *ids and *mask (mask[i] 1: ids[i] is a target):
 * every assistant turn, or only the last when train_on_last. */
int fte_template_encode_conversation(const fte_template *tp, const fte_tokenizer *tok,
    const char *conversation, int train_on_last, int **ids, unsigned char **mask, size_t *n_ids);

/* fte_template_stop_ids gives the ids that end generation: each of
 * eos_ids (a config's eos_token_id, a number or a list), the tokenizer's
 * EOS and the chat template's end-of-turn token (tp NULL or not a chat
 * template: none), without repeats, in a malloc'd *ids. */
int fte_template_stop_ids(const fte_template *tp, const fte_tokenizer *tok, const int *eos_ids,
    size_t n_eos, int **ids, size_t *n);

/* fte_template_encode builds one training example: *ids is the encoding of
 * prompt + response followed by the tokenizer's EOS (unless the response
 * text already ends its turn with the EOS token, as chat templates do), and
 * *n_prompt is how many leading ids belong to the prompt: the loss covers
 * ids[n_prompt..].  Alpaca/custom text gets the tokenizer's BOS and treats
 * special-token spellings in the record as text; chat text spells its own
 * special tokens, which are parsed, and gets no extra BOS. */
int fte_template_encode(const fte_template *tp, const fte_tokenizer *tok, const fte_record *rec,
    int **ids, size_t *n_ids, size_t *n_prompt);

/* fte_template_encode_prompt encodes the generation prompt for rec (its
 * output is ignored), ready for the model to continue. */
int fte_template_encode_prompt(const fte_template *tp, const fte_tokenizer *tok,
    const fte_record *rec, int **ids, size_t *n_ids);

/*
 * Tokenizer training (tok_train.c): a GPT-2-style byte-level BPE learned
 * from text, for models trained from scratch.  The text is split by the
 * ByteLevel pre-tokenizer (GPT-2's regex); the most frequent adjacent pair
 * of symbols is merged first, ties going to the pair whose left symbol's
 * bytes, then right symbol's bytes, sort first, so the same text always
 * gives the same files.  Ids: <|endoftext|> is 0 (BOS and EOS), <|pad|> 1
 * when asked for, then the 256 bytes in byte order, then merged symbols.
 */
typedef struct fte_tok_train_config {
	int vocab_size;         /* total ids, special tokens included (257..2^24) */
	int min_frequency;      /* pairs seen fewer times are not merged (0: 1) */
	int add_pad;            /* also add <|pad|> as a special token */
} fte_tok_train_config;

/* fte_tokenizer_train learns a tokenizer from n texts (lens[i] bytes of
 * valid UTF-8 each; FTE_EINVAL otherwise) and writes out_dir/tokenizer.json
 * (Hugging Face format: BPE model, ByteLevel pre-tokenizer and decoder, no
 * post-processor) and out_dir/tokenizer_config.json (bos_token and
 * eos_token <|endoftext|>), creating out_dir if needed.  Special-token
 * spellings in the texts separate documents and are not learned from.  The
 * vocabulary has exactly cfg->vocab_size ids unless the text runs out of
 * pairs seen min_frequency times first. */
int fte_tokenizer_train(const char *const *texts, const size_t *lens, size_t n,
    const fte_tok_train_config *cfg, const char *out_dir);

/* fte_tokenizer_train_files is fte_tokenizer_train on the contents of n
 * files, read one at a time. */
int fte_tokenizer_train_files(const char *const *paths, size_t n,
    const fte_tok_train_config *cfg, const char *out_dir);

#endif
