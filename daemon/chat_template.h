/*
 * chat_template.h - models' chat templates as the daemon runs them: with the
 * render budget from the configuration, and probed at import with the
 * largest conversation the API accepts; and a model's prompt format, the
 * one template that training, evaluation and serving all render its
 * conversations with.
 *
 * A format is named by a spec: "alpaca"; "chat", the model's own Jinja
 * chat_template (tokenizer_config.json); Jinja source (any text with "{%"),
 * compiled with the tokenizer's BOS and EOS; or a custom string with
 * {instruction}, {input} and {output}.  A training job records its spec in
 * the tuned model's lineage (hyperparameters.template); a model without one (a base model)
 * runs with "chat" when its directory has a chat template, else "alpaca".
 *
 * Alpaca and custom formats have one turn and no system message: a
 * conversation's last user message is the instruction, the messages between
 * the system message and it are its input as "role: content" lines, and
 * only the last assistant message is a target.
 */
#ifndef FT_CHAT_TEMPLATE_H
#define FT_CHAT_TEMPLATE_H

#include <stddef.h>

#include <jansson.h>

#include "config.h"
#include "dataset.h"
#include "fte.h"

/* Most messages a chat request may carry (openai.c refuses more). */
#define CHAT_MESSAGES_MAX 256

/* chat_template_load is fte_template_chat_load (path: a model directory or
 * a file in it) with cfg's budget (template_max_iterations,
 * template_max_bytes).  FTE_* codes. */
int chat_template_load(const struct ft_config *cfg, const char *path, fte_template **out);

/* chat_template_check refuses (-1, reason in err) a chat template at path
 * whose render of a worst-case conversation, CHAT_MESSAGES_MAX messages
 * sharing serve_max_body bytes, exceeds the budget.  No template, or one
 * the daemon cannot compile (served with the Alpaca prompt), is 0. */
int chat_template_check(const struct ft_config *cfg, const char *path, char *err, size_t err_len);

/* A model's prompt format, opened for one tokenizer. */
struct chat_format {
	fte_template *tp;
	int chat;               /* tp is a Jinja chat template */
	int *stop_ids;          /* ids that end a generation (malloc'd) */
	size_t n_stop;
};

/* chat_format_of_model writes the spec model directory dir runs with into
 * a malloc'd *spec: the hyperparameters' "template" of lineage_json (NULL
 * or "{}" for a base model: what a tuned model was trained with), else "chat" when dir has a chat template, else "alpaca".
 * 0, or -1 when out of memory. */
int chat_format_of_model(const struct ft_config *cfg, const char *lineage_json, const char *dir,
    char **spec) __attribute__((warn_unused_result));

/* chat_format_check tells whether spec can run the model in dir, without
 * its tokenizer: 0, or -1 with the reason in err. */
int chat_format_check(const struct ft_config *cfg, const char *spec, const char *dir, char *err,
    size_t err_len) __attribute__((warn_unused_result));

/* chat_format_open compiles spec for the model in dir and its tokenizer
 * tok, with the stop ids: every eos_token_id of config_dir's config.json
 * and generation_config.json (config_dir NULL: dir's; for a LoRA adapter,
 * whose directory has no config.json, its base's:
 * registry_model_config_dir), the tokenizer's EOS and the chat template's
 * end-of-turn token.  0, or -1 with a message in err ("chat" without a
 * chat template in dir, a template that does not compile). */
int chat_format_open(const struct ft_config *cfg, const char *spec, const char *dir,
    const char *config_dir, const fte_tokenizer *tok, struct chat_format *out, char *err,
    size_t err_len)
    __attribute__((warn_unused_result));

/* chat_format_free releases what chat_format_open made; a zeroed format is
 * allowed. */
void chat_format_free(struct chat_format *f);

/* chat_format_encode encodes record r for training into malloc'd *ids and
 * *mask (1: a target): every assistant turn not weighted 0 and its
 * end-of-turn token, or only the last with train_on_last.  FTE_* codes. */
int chat_format_encode(const struct chat_format *f, const fte_tokenizer *tok,
    const struct dataset_record *r, int train_on_last, int **ids, unsigned char **mask,
    size_t *n_ids);

/* chat_format_encode_fit is chat_format_encode of r in at most max_ids
 * ids: while it is longer, its earliest turn is dropped (the messages
 * after the system message up to the next user message that follows an
 * answer; *dropped counts them), so what is left is a conversation as a
 * client could send it, its later turns with their context.  FTE_ERANGE
 * when its last exchange alone (or a one-turn record) is longer, or no
 * target is left; on failure *ids and *mask are NULL or untouched. */
int chat_format_encode_fit(const struct chat_format *f, const fte_tokenizer *tok,
    const struct dataset_record *r, int train_on_last, size_t max_ids, int **ids,
    unsigned char **mask, size_t *n_ids, size_t *dropped);

/* chat_format_record_prompt is the generation prompt of r: everything
 * before its last assistant message, as text in a malloc'd *text (NULL:
 * not wanted) and as ids in malloc'd *ids (ids NULL: not wanted). */
int chat_format_record_prompt(const struct chat_format *f, const fte_tokenizer *tok,
    const struct dataset_record *r, char **text, int **ids, size_t *n_ids);

/* chat_format_conversation_prompt is the generation prompt of
 * conversation (JSON {"messages": [...], "tools"?: [...]}, as
 * chat_request_conversation makes it, ending before the answer): in a
 * chat template rendered whole with the tools, in Alpaca or custom its
 * one-turn record.  As text in a malloc'd *text and ids in malloc'd *ids
 * (either NULL: not wanted). */
int chat_format_conversation_prompt(const struct chat_format *f, const fte_tokenizer *tok,
    const char *conversation, char **text, int **ids, size_t *n_ids);

/* chat_format_messages_prompt is the generation prompt of n messages (a
 * chat request), as ids in malloc'd *ids. */
int chat_format_messages_prompt(const struct chat_format *f, const fte_tokenizer *tok,
    const fte_message *msgs, size_t n, int **ids, size_t *n_ids);

/* chat_format_record_json writes record r as a conversation
 * {"messages": [...], "tools"?: [...]} into a malloc'd string: its
 * canonical JSON, or its one turn (the user message is the instruction,
 * then a blank line and the input when there is one).  NULL when out of
 * memory. */
char *chat_format_record_json(const struct dataset_record *r);

/* chat_request_conversation writes the messages and tools of a chat
 * completion request as a conversation in the dataset's canonical form
 * (dataset.h; sorted keys, content parts joined, developer as system, an
 * assistant's absent content "" beside its tool_calls), so that serving
 * renders exactly what training rendered, into a malloc'd *conv.  0, or
 * -1 with the request member at fault in *param ("messages", "tools") and
 * the reason in err. */
int chat_request_conversation(json_t *messages, json_t *tools, char **conv, const char **param,
    char *err, size_t err_len) __attribute__((warn_unused_result));

#endif
