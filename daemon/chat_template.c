/* chat_template.c - chat templates with the configured render budget, the
 * worst-case probe at import, and models' prompt formats. */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "chat_template.h"

int
chat_template_load(const struct ft_config *cfg, const char *path, fte_template **out)
{
	int rc = fte_template_chat_load(path, out);

	if (rc == FTE_OK)
		fte_template_set_budget(*out, (size_t)cfg->template_max_iterations,
		    (size_t)cfg->template_max_bytes);
	return rc;
}

int
chat_template_check(const struct ft_config *cfg, const char *path, char *err, size_t err_len)
{
	size_t each = (size_t)cfg->serve_max_body / CHAT_MESSAGES_MAX;
	fte_template *tp;
	int rc;

	if (chat_template_load(cfg, path, &tp) != FTE_OK)
		return 0;
	rc = fte_template_probe(tp, CHAT_MESSAGES_MAX, each);
	fte_template_free(tp);
	if (rc == FTE_OK)
		return 0;
	snprintf(err, err_len, "the model's chat template is refused: on %d messages of %zu bytes "
	    "(the API's limits) %s", CHAT_MESSAGES_MAX, each, fte_last_error());
	return -1;
}

/* ---- a model's prompt format ---- */

int
chat_format_of_model(const struct ft_config *cfg, const char *lineage_json, const char *dir,
    char **spec)
{
	json_t *lin = lineage_json ? json_loads(lineage_json, 0, NULL) : NULL;
	const char *t = json_string_value(json_object_get(json_object_get(lin, "hyperparameters"),
	    "template"));
	fte_template *tp;

	if (t != NULL && t[0] != '\0') {
		*spec = strdup(t);
	} else if (chat_template_load(cfg, dir, &tp) == FTE_OK) {
		fte_template_free(tp);
		*spec = strdup("chat");
	} else {
		*spec = strdup("alpaca");
	}
	json_decref(lin);
	return *spec ? 0 : -1;
}

int
chat_format_check(const struct ft_config *cfg, const char *spec, const char *dir, char *err,
    size_t err_len)
{
	fte_template *tp = NULL;
	int rc;

	if (strcmp(spec, "alpaca") == 0)
		return 0;
	if (strcmp(spec, "chat") == 0) {
		if ((rc = chat_template_load(cfg, dir, &tp)) == FTE_ENOENT) {
			snprintf(err, err_len, "--template chat: the model has no chat template");
			return -1;
		}
	} else {
		rc = strstr(spec, "{%") != NULL ? fte_template_chat(spec, NULL, NULL, &tp) :
		    fte_template_custom(spec, &tp);
	}
	fte_template_free(tp);
	if (rc != FTE_OK) {
		snprintf(err, err_len, "--template: %s", fte_last_error());
		return -1;
	}
	return 0;
}

/* config_eos_ids appends the eos_token_id (a number or a list) of dir/name,
 * read without following links, to ids. */
static void
config_eos_ids(const char *dir, const char *name, int *ids, size_t *n, size_t max)
{
	char path[PATH_MAX];
	struct stat st;
	json_t *j = NULL, *v, *e;
	size_t i;
	int fd;

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >= sizeof(path) ||
	    (fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
		j = json_loadfd(fd, 0, NULL);
	close(fd);
	v = json_object_get(j, "eos_token_id");
	if (json_is_integer(v) && *n < max)
		ids[(*n)++] = (int)json_integer_value(v);
	json_array_foreach(v, i, e)
		if (json_is_integer(e) && *n < max)
			ids[(*n)++] = (int)json_integer_value(e);
	json_decref(j);
}

int
chat_format_open(const struct ft_config *cfg, const char *spec, const char *dir,
    const char *config_dir, const fte_tokenizer *tok, struct chat_format *out, char *err,
    size_t err_len)
{
	int eos[16], rc;
	size_t n_eos = 0;

	memset(out, 0, sizeof(*out));
	if (strcmp(spec, "alpaca") == 0) {
		rc = fte_template_alpaca(&out->tp);
	} else if (strcmp(spec, "chat") == 0) {
		out->chat = 1;
		rc = chat_template_load(cfg, dir, &out->tp);
		if (rc == FTE_ENOENT) {
			snprintf(err, err_len, "template chat: the model has no chat template "
			    "(tokenizer_config.json's chat_template)");
			return -1;
		}
	} else if (strstr(spec, "{%") != NULL) {
		int bos = fte_tokenizer_bos(tok), eo = fte_tokenizer_eos(tok);

		out->chat = 1;
		rc = fte_template_chat(spec, bos >= 0 ? fte_tokenizer_token(tok, bos, NULL) : NULL,
		    eo >= 0 ? fte_tokenizer_token(tok, eo, NULL) : NULL, &out->tp);
		if (rc == FTE_OK)
			fte_template_set_budget(out->tp, (size_t)cfg->template_max_iterations,
			    (size_t)cfg->template_max_bytes);
	} else {
		rc = fte_template_custom(spec, &out->tp);
	}
	if (rc != FTE_OK) {
		snprintf(err, err_len, "template: %s", fte_last_error());
		out->tp = NULL;
		return -1;
	}
	config_eos_ids(config_dir ? config_dir : dir, "config.json", eos, &n_eos, 8);
	config_eos_ids(config_dir ? config_dir : dir, "generation_config.json", eos, &n_eos, 16);
	if (fte_template_stop_ids(out->chat ? out->tp : NULL, tok, eos, n_eos, &out->stop_ids,
	    &out->n_stop) != FTE_OK) {
		snprintf(err, err_len, "template: %s", fte_last_error());
		chat_format_free(out);
		return -1;
	}
	return 0;
}

void
chat_format_free(struct chat_format *f)
{
	fte_template_free(f->tp);
	free(f->stop_ids);
	memset(f, 0, sizeof(*f));
}

char *
chat_format_record_json(const struct dataset_record *r)
{
	json_t *conv, *msgs;
	char *user = NULL, *text;

	if (r->chat != NULL)
		return strdup(r->chat);
	msgs = json_array();
	if (asprintf(&user, "%s%s%s", r->instruction, r->input[0] ? "\n\n" : "", r->input) < 0)
		user = NULL;
	if (r->system[0] != '\0')
		json_array_append_new(msgs, json_pack("{s:s,s:s}", "role", "system", "content", r->system));
	json_array_append_new(msgs, json_pack("{s:s,s:s?}", "role", "user", "content", user));
	json_array_append_new(msgs, json_pack("{s:s,s:s}", "role", "assistant", "content", r->output));
	conv = json_pack("{s:o}", "messages", msgs);
	text = conv != NULL && user != NULL ? json_dumps(conv, JSON_COMPACT) : NULL;
	json_decref(conv);
	free(user);
	return text;
}

/* alpaca_fill makes the one-turn record of n messages that end before the
 * answer: the last user message is the instruction, the other messages
 * but the system message are the input's "role: content" lines (*buf,
 * malloc'd, holds them). */
static int
alpaca_fill(const fte_message *msgs, size_t n, fte_record *rec, char **buf)
{
	size_t last = n, len = 0;
	char *p;

	*buf = NULL;
	for (size_t i = 0; i < n; i++)
		if (strcmp(msgs[i].role, "user") == 0)
			last = i;
	if (last == n)
		return fte_error_set(FTE_EINVAL, "the conversation has no user message");
	for (size_t i = 0; i < n; i++)
		if (i != last && strcmp(msgs[i].role, "system") != 0)
			len += strlen(msgs[i].role) + strlen(msgs[i].content) + 3;
	if (len > 0) {
		if ((*buf = p = malloc(len + 1)) == NULL)
			return fte_error_set(FTE_ENOMEM, "out of memory");
		for (size_t i = 0; i < n; i++)
			if (i != last && strcmp(msgs[i].role, "system") != 0)
				p += sprintf(p, "%s%s: %s", p == *buf ? "" : "\n", msgs[i].role,
				    msgs[i].content);
	}
	rec->instruction = msgs[last].content;
	rec->input = *buf;
	return FTE_OK;
}

/* record_alpaca is r as the one-turn record the Alpaca and custom formats
 * render: an instruction record as it is, a conversation through
 * alpaca_fill with its last message the output.  *conv and *buf hold what
 * rec points into. */
static int
record_alpaca(const struct dataset_record *r, fte_record *rec, json_t **conv, char **buf)
{
	fte_message m[CHAT_MESSAGES_MAX];
	json_t *msgs, *v;
	size_t n, i;

	*conv = NULL;
	*buf = NULL;
	if (r->chat == NULL) {
		*rec = (fte_record){ r->instruction, r->input, r->output };
		return FTE_OK;
	}
	if ((*conv = json_loads(r->chat, 0, NULL)) == NULL)
		return fte_error_set(FTE_EINVAL, "the conversation is not JSON");
	msgs = json_object_get(*conv, "messages");
	if ((n = json_array_size(msgs)) < 2 || n - 1 > CHAT_MESSAGES_MAX)
		return fte_error_set(FTE_EINVAL, "the conversation has %zu messages", n);
	json_array_foreach(msgs, i, v)
		if (i + 1 < n)
			m[i] = (fte_message){ json_string_value(json_object_get(v, "role")),
				json_string_value(json_object_get(v, "content")) };
	rec->output = json_string_value(json_object_get(json_array_get(msgs, n - 1), "content"));
	return alpaca_fill(m, n - 1, rec, buf);
}

int
chat_format_encode(const struct chat_format *f, const fte_tokenizer *tok,
    const struct dataset_record *r, int train_on_last, int **ids, unsigned char **mask,
    size_t *n_ids)
{
	fte_record rec;
	json_t *conv;
	char *buf, *json;
	size_t n_prompt;
	int rc;

	if (f->chat) {
		if ((json = chat_format_record_json(r)) == NULL)
			return fte_error_set(FTE_ENOMEM, "out of memory");
		rc = fte_template_encode_conversation(f->tp, tok, json, train_on_last, ids, mask, n_ids);
		free(json);
		return rc;
	}
	if ((rc = record_alpaca(r, &rec, &conv, &buf)) == FTE_OK &&
	    (rc = fte_template_encode(f->tp, tok, &rec, ids, n_ids, &n_prompt)) == FTE_OK) {
		if ((*mask = malloc(*n_ids ? *n_ids : 1)) == NULL) {
			free(*ids);
			rc = fte_error_set(FTE_ENOMEM, "out of memory");
		} else {
			for (size_t i = 0; i < *n_ids; i++)
				(*mask)[i] = i >= n_prompt;
		}
	}
	json_decref(conv);
	free(buf);
	return rc;
}

/* messages_alpaca is conversation conv, which ends before the answer, as
 * the one-turn record of the Alpaca and custom formats (alpaca_fill). */
static int
messages_alpaca(const json_t *conv, fte_record *rec, char **buf)
{
	fte_message m[CHAT_MESSAGES_MAX];
	json_t *msgs = json_object_get(conv, "messages"), *v;
	size_t i, n = json_array_size(msgs);

	*buf = NULL;
	if (n == 0 || n > CHAT_MESSAGES_MAX)
		return fte_error_set(FTE_EINVAL, "the conversation has %zu messages", n);
	json_array_foreach(msgs, i, v)
		m[i] = (fte_message){ json_string_value(json_object_get(v, "role")),
			json_string_value(json_object_get(v, "content")) };
	*rec = (fte_record){ "", NULL, "" };
	return alpaca_fill(m, n, rec, buf);
}

int
chat_format_conversation_prompt(const struct chat_format *f, const fte_tokenizer *tok,
    const char *conversation, char **text, int **ids, size_t *n_ids)
{
	fte_record rec;
	json_t *conv;
	char *buf = NULL, *t = NULL, *resp = NULL;
	int rc;

	if (f->chat) {
		rc = fte_template_render_json(f->tp, conversation, 1, &t);
		/* chat text spells its own special tokens and BOS */
		if (rc == FTE_OK && ids != NULL)
			rc = fte_tokenizer_encode_flags(tok, t, strlen(t), FTE_TOK_PARSE_SPECIAL, ids, n_ids);
	} else {
		if ((conv = json_loads(conversation, 0, NULL)) == NULL)
			return fte_error_set(FTE_EINVAL, "the conversation is not JSON");
		if ((rc = messages_alpaca(conv, &rec, &buf)) == FTE_OK && text != NULL)
			rc = fte_template_render(f->tp, &rec, &t, &resp);
		if (rc == FTE_OK && ids != NULL)
			rc = fte_template_encode_prompt(f->tp, tok, &rec, ids, n_ids);
		json_decref(conv);
		free(buf);
		free(resp);
	}
	if (rc == FTE_OK && text != NULL)
		*text = t;
	else
		free(t);
	return rc;
}

/* turns_drop removes conversation conv's earliest turn: the messages after
 * the system message up to the next user message that follows an
 * assistant's.  0, or -1 when only the last exchange is left. */
static int
turns_drop(json_t *conv)
{
	json_t *msgs = json_object_get(conv, "messages");
	size_t n = json_array_size(msgs), first, k;
	int answered = 0;

#define ROLE(i) json_string_value(json_object_get(json_array_get(msgs, (i)), "role"))
	first = n > 0 && strcmp(ROLE(0), "system") == 0;
	for (k = first; k < n; k++) {
		if (answered && strcmp(ROLE(k), "user") == 0)
			break;
		answered |= strcmp(ROLE(k), "assistant") == 0;
	}
#undef ROLE
	if (k >= n)
		return -1;
	while (k-- > first)
		json_array_remove(msgs, first);
	return 0;
}

int
chat_format_encode_fit(const struct chat_format *f, const fte_tokenizer *tok,
    const struct dataset_record *r, int train_on_last, size_t max_ids, int **ids,
    unsigned char **mask, size_t *n_ids, size_t *dropped)
{
	struct dataset_record short_r = *r;
	json_t *conv = NULL;
	size_t targets = 0;
	int rc;

	*dropped = 0;
	for (;;) {
		if ((rc = chat_format_encode(f, tok, &short_r, train_on_last, ids, mask,
		    n_ids)) != FTE_OK)
			break;
		if (*n_ids <= max_ids)
			break;
		free(*ids);
		free(*mask);
		*ids = NULL;
		*mask = NULL;
		if (conv == NULL && (r->chat == NULL || (conv = json_loads(r->chat, 0, NULL)) == NULL)) {
			rc = fte_error_set(FTE_ERANGE, "one turn of %zu tokens", *n_ids);
			break;
		}
		if (turns_drop(conv) != 0) {
			rc = fte_error_set(FTE_ERANGE, "its last exchange alone is %zu tokens", *n_ids);
			break;
		}
		(*dropped)++;
		if (short_r.chat != r->chat)
			free(short_r.chat);
		if ((short_r.chat = json_dumps(conv, JSON_COMPACT | JSON_SORT_KEYS)) == NULL) {
			short_r.chat = r->chat;
			rc = fte_error_set(FTE_ENOMEM, "out of memory");
			break;
		}
	}
	if (short_r.chat != r->chat)
		free(short_r.chat);
	json_decref(conv);
	if (rc != FTE_OK)
		return rc;
	for (size_t i = 0; i < *n_ids; i++)
		targets += (*mask)[i];
	if (targets == 0) {
		free(*ids);
		free(*mask);
		*ids = NULL;
		*mask = NULL;
		return fte_error_set(FTE_ERANGE, "no turn to train on is left");
	}
	return FTE_OK;
}

int
chat_format_record_prompt(const struct chat_format *f, const fte_tokenizer *tok,
    const struct dataset_record *r, char **text, int **ids, size_t *n_ids)
{
	fte_record rec;
	json_t *conv = NULL, *msgs;
	char *buf = NULL, *json, *t = NULL, *resp = NULL;
	int rc;

	if (f->chat) {
		/* the conversation without its last message */
		if ((json = chat_format_record_json(r)) == NULL)
			return fte_error_set(FTE_ENOMEM, "out of memory");
		conv = json_loads(json, 0, NULL);
		free(json);
		msgs = json_object_get(conv, "messages");
		json_array_remove(msgs, json_array_size(msgs) - 1);
		json = conv ? json_dumps(conv, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
		json_decref(conv);
		if (json == NULL)
			return fte_error_set(FTE_ENOMEM, "out of memory");
		rc = chat_format_conversation_prompt(f, tok, json, text, ids, n_ids);
		free(json);
		return rc;
	}
	if ((rc = record_alpaca(r, &rec, &conv, &buf)) == FTE_OK && text != NULL)
		rc = fte_template_render(f->tp, &rec, &t, &resp);
	if (rc == FTE_OK && ids != NULL)
		rc = fte_template_encode_prompt(f->tp, tok, &rec, ids, n_ids);
	json_decref(conv);
	free(buf);
	free(resp);
	if (rc == FTE_OK && text != NULL)
		*text = t;
	else
		free(t);
	return rc;
}

int
chat_format_messages_prompt(const struct chat_format *f, const fte_tokenizer *tok,
    const fte_message *msgs, size_t n, int **ids, size_t *n_ids)
{
	fte_record rec = { "", NULL, "" };
	char *text, *buf;
	int rc;

	if (f->chat) {
		if ((rc = fte_template_render_chat(f->tp, msgs, n, 1, &text)) != FTE_OK)
			return rc;
		rc = fte_tokenizer_encode_flags(tok, text, strlen(text), FTE_TOK_PARSE_SPECIAL, ids, n_ids);
		free(text);
		return rc;
	}
	if ((rc = alpaca_fill(msgs, n, &rec, &buf)) == FTE_OK)
		rc = fte_template_encode_prompt(f->tp, tok, &rec, ids, n_ids);
	free(buf);
	return rc;
}

/* ---- a chat request's conversation ---- */

/* request_content is a message's content as a string: a string, or text
 * parts joined; NULL after an error. */
static json_t *
request_content(json_t *content, size_t i, char *err, size_t err_len)
{
	json_t *part;
	json_t *s;
	size_t k;
	char *joined;

	if (json_is_string(content))
		return json_string(json_string_value(content));
	if (!json_is_array(content)) {
		snprintf(err, err_len, "messages[%zu].content must be a string or an array of text "
		    "parts.", i);
		return NULL;
	}
	s = json_string("");
	json_array_foreach(content, k, part) {
		const char *type = json_string_value(json_object_get(part, "type"));
		json_t *text = json_object_get(part, "text");

		if (!json_is_string(text) || type == NULL || strcmp(type, "text") != 0) {
			snprintf(err, err_len, "messages[%zu].content[%zu]: only text parts are "
			    "supported.", i, k);
			json_decref(s);
			return NULL;
		}
		if (asprintf(&joined, "%s%s", json_string_value(s), json_string_value(text)) < 0) {
			snprintf(err, err_len, "out of memory");
			json_decref(s);
			return NULL;
		}
		json_string_set(s, joined);
		free(joined);
	}
	return s;
}

/* request_message is message i of a request in the dataset's canonical
 * form; NULL after an error. */
static json_t *
request_message(json_t *m, size_t i, char *err, size_t err_len)
{
	const char *role = json_string_value(json_object_get(m, "role"));
	json_t *content = json_object_get(m, "content"), *calls = json_object_get(m, "tool_calls");
	json_t *name = json_object_get(m, "name"), *call_id = json_object_get(m, "tool_call_id");
	json_t *c;
	json_t *out, *v;
	size_t k;

	if (role == NULL || (strcmp(role, "system") != 0 && strcmp(role, "developer") != 0 &&
	    strcmp(role, "user") != 0 && strcmp(role, "assistant") != 0 && strcmp(role, "tool") != 0)) {
		snprintf(err, err_len, "messages[%zu].role must be system, developer, user, assistant "
		    "or tool.", i);
		return NULL;
	}
	if (calls != NULL && json_is_null(calls))
		calls = NULL;
	if (calls != NULL && (strcmp(role, "assistant") != 0 || !json_is_array(calls))) {
		snprintf(err, err_len, "messages[%zu].tool_calls: %s.", i, json_is_array(calls) ?
		    "only an assistant message makes tool calls" : "must be an array");
		return NULL;
	}
	json_array_foreach(calls, k, c) {
		json_t *fn = json_object_get(c, "function");

		if (!json_is_string(json_object_get(fn, "name")) ||
		    json_object_get(fn, "arguments") == NULL) {
			snprintf(err, err_len, "messages[%zu].tool_calls[%zu] must be {\"type\": "
			    "\"function\", \"function\": {\"name\", \"arguments\"}}.", i, k);
			return NULL;
		}
	}
	if ((name != NULL && !json_is_string(name)) || (call_id != NULL && (!json_is_string(call_id) ||
	    strcmp(role, "tool") != 0))) {
		snprintf(err, err_len, "messages[%zu].%s.", i, name != NULL && !json_is_string(name) ?
		    "name must be a string" : "tool_call_id must be a string, on a tool message");
		return NULL;
	}
	/* an assistant's tool calls may come without content */
	if ((content == NULL || json_is_null(content)) && calls != NULL)
		v = json_string("");
	else if ((v = request_content(content, i, err, err_len)) == NULL)
		return NULL;
	/* templates know system; developer is OpenAI's newer name for it */
	out = json_pack("{s:s,s:o}", "role", strcmp(role, "developer") == 0 ? "system" : role,
	    "content", v);
	if (name != NULL)
		json_object_set(out, "name", name);
	if (calls != NULL)
		json_object_set(out, "tool_calls", calls);
	if (call_id != NULL)
		json_object_set(out, "tool_call_id", call_id);
	return out;
}

int
chat_request_conversation(json_t *messages, json_t *tools, char **conv,
    const char **param, char *err, size_t err_len)
{
	json_t *m, *t;
	json_t *msgs, *c, *one;
	size_t i;

	*param = "messages";
	if (!json_is_array(messages) || json_array_size(messages) == 0 ||
	    json_array_size(messages) > CHAT_MESSAGES_MAX) {
		snprintf(err, err_len, "'messages' must be an array of 1 to %d messages.",
		    CHAT_MESSAGES_MAX);
		return -1;
	}
	msgs = json_array();
	json_array_foreach(messages, i, m) {
		if ((one = request_message(m, i, err, err_len)) == NULL) {
			json_decref(msgs);
			return -1;
		}
		json_array_append_new(msgs, one);
	}
	c = json_pack("{s:o}", "messages", msgs);
	if (tools != NULL && !json_is_null(tools)) {
		*param = "tools";
		if (!json_is_array(tools)) {
			snprintf(err, err_len, "'tools' must be an array of tool definitions.");
			json_decref(c);
			return -1;
		}
		json_array_foreach(tools, i, t)
			if (!json_is_object(t)) {
				snprintf(err, err_len, "tools[%zu] must be an object.", i);
				json_decref(c);
				return -1;
			}
		if (json_array_size(tools) > 0)
			json_object_set(c, "tools", tools);
	}
	*conv = c ? json_dumps(c, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	json_decref(c);
	if (*conv == NULL) {
		snprintf(err, err_len, "out of memory");
		return -1;
	}
	return 0;
}
