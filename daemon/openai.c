/*
 * openai.c - the OpenAI-compatible subset under /v1/.
 *
 * The handler runs on a civetweb thread: it checks the key, reads a capped
 * body, validates the parameters the way OpenAI does (a bad one is a 400
 * naming it) and queues the generation on deploy.c's serving threads; then
 * it only copies text to the client, as one JSON reply or as server-sent
 * events in OpenAI's chunk format ending with "data: [DONE]".  A client
 * that goes away, streamed or not, cancels its generation, and its key is
 * billed for the tokens generated until then.  Who may call is decided as
 * for the dashboard (web_caller_identify): an API key, which acts as the
 * user who made it, or a loopback peer who may use the control socket
 * (not with serve_require_key); POSTs must be application/json from no
 * Origin but ours.
 *
 * Unknown parameters are ignored, as they are harmless for this subset
 * (clients send user, penalties, logit_bias defaults); n must be 1.
 * Log-probabilities come in OpenAI's two shapes (completions: parallel
 * arrays, with echo the prompt's tokens first; chat: logprobs.content[]),
 * each streamed chunk carrying the tokens whose text it carries.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <sodium.h>

#include "chat_template.h"
#include "deploy.h"
#include "log.h"
#include "openai.h"
#include "web.h"
#include "web_api.h"
#include "web_peer.h"

#define STOP_MAX 4                   /* stop strings, as OpenAI allows */
#define COMPLETION_DEFAULT_TOKENS 16 /* OpenAI's default for /v1/completions */
#define GONE_CHECK_MS 200            /* how often a waiting handler looks at its client */
#define COMPLETION_LOGPROBS_MAX 5    /* OpenAI's bounds on alternatives per token */
#define CHAT_TOP_LOGPROBS_MAX 20

/* One request's reply state. */
struct api_call {
	struct mg_connection *conn;
	struct ftuned *d;
	int status;                  /* sent, for the log */
	uint64_t tokens;             /* usage, counted against the key */
	uint32_t uid;                /* whom the request acts as */
	int64_t key_id;              /* its key, 0 for a peer */
	int fd;                      /* the client connection, to see it leave; -1 unknown */
	int gone;                    /* the client left: answer nothing more */
};

/* Copies len bytes of text into a JSON string, replacing bytes that are
 * not UTF-8 (a generation may stop inside a character) with U+FFFD. */
static json_t *
json_text(const char *text, size_t len)
{
	json_t *s = json_stringn(text, len);
	char *clean, *p;

	if (s != NULL || (clean = p = malloc(3 * len + 1)) == NULL)
		return s;
	for (size_t i = 0; i < len;) {
		unsigned char b = (unsigned char)text[i];
		size_t n = b < 0x80 ? 1 : (b & 0xe0) == 0xc0 ? 2 : (b & 0xf0) == 0xe0 ? 3 :
		    (b & 0xf8) == 0xf0 ? 4 : 0;
		json_t *one = n && i + n <= len ? json_stringn(text + i, n) : NULL;

		if (one != NULL) {
			memcpy(p, text + i, n);
			p += n;
			i += n;
			json_decref(one);
		} else {
			memcpy(p, "\xef\xbf\xbd", 3);
			p += 3;
			i++;
		}
	}
	s = json_stringn(clean, (size_t)(p - clean));
	free(clean);
	return s;
}

static void
send_json(struct api_call *c, int status, json_t *body)
{
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	size_t len;

	json_decref(body);
	if (text == NULL) {
		status = 500;
		text = strdup("{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\","
		    "\"param\":null,\"code\":null}}");
	}
	len = text ? strlen(text) : 0;
	mg_printf(c->conn, "HTTP/1.1 %d %s\r\n"
	    "Content-Type: application/json\r\n"
	    "Content-Length: %zu\r\n"
	    "Cache-Control: no-store\r\n"
	    "%s"
	    WEB_SECURITY_HEADERS "\r\n"
	    "Connection: close\r\n\r\n",
	    status, mg_get_response_code_text(c->conn, status), len,
	    status == 429 || status == 503 ? "Retry-After: 1\r\n" : "");
	if (text != NULL)
		mg_write(c->conn, text, len);
	free(text);
	c->status = status;
}

/* OpenAI's error shape: {"error": {"message", "type", "param", "code"}}. */
static json_t *
error_body(const char *message, const char *type, const char *param, const char *code)
{
	return json_pack("{s:{s:s,s:s,s:s?,s:s?}}", "error", "message", message, "type", type,
	    "param", param, "code", code);
}

static void
send_error(struct api_call *c, int status, const char *param, const char *code,
    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void
send_error(struct api_call *c, int status, const char *param, const char *code,
    const char *fmt, ...)
{
	const char *type = status == 401 ? "invalid_request_error" : status == 429 ? "requests" :
	    status >= 500 ? "server_error" : "invalid_request_error";
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	send_json(c, status, error_body(msg, type, param, code));
}

/* ---- authentication ---- */

/* Host and Origin, then the caller: 1 to go on, or 0 after answering. */
static int
authorize(struct api_call *c)
{
	const char *refusal, *reason = NULL;
	struct web_caller who;
	char why[160];
	int status;

	if ((status = web_request_refusal(c->conn, &refusal)) != 0) {
		send_error(c, status, NULL, status == 403 ? "cross_origin_refused" : "invalid_host",
		    "%s.", refusal);
		return 0;
	}
	if (web_caller_identify(c->conn, &who, why, sizeof(why)) != 0)
		reason = why;
	else if (who.by == WEB_CALLER_TOKEN)
		reason = "the dashboard token is not an API key";
	else if (who.by == WEB_CALLER_PEER && c->d->cfg.serve_require_key)
		reason = "serve_require_key is set";
	if (reason != NULL) {
		if (mg_get_header(c->conn, "Authorization") == NULL)
			send_error(c, 401, NULL, "invalid_api_key", "You didn't provide an API key (%s). "
			    "Send it as 'Authorization: Bearer KEY' (ftctl key create makes one).",
			    reason);
		else
			send_error(c, 401, NULL, "invalid_api_key", "Incorrect API key provided: it is "
			    "not an active key of this server.");
		return 0;
	}
	c->uid = who.uid;
	c->key_id = who.key_id;
	return 1;
}

/* ---- /v1/models ---- */

static json_t *
model_json(const struct deploy_info *m)
{
	return json_pack("{s:s,s:s,s:I,s:s,s:s,s:b}", "id", m->name, "object", "model", "created",
	    (json_int_t)m->created_at, "owned_by", "ftuned", "root", m->model, "loaded", m->loaded);
}

static void
models_list(struct api_call *c)
{
	struct deploy_info *v;
	size_t n;
	json_t *data;

	if (deploy_list(c->d, &v, &n) != 0) {
		send_error(c, 500, NULL, NULL, "the deployments could not be read");
		return;
	}
	data = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(data, model_json(&v[i]));
	free(v);
	send_json(c, 200, json_pack("{s:s,s:o}", "object", "list", "data", data));
}

static void
model_show(struct api_call *c, const char *name)
{
	struct deploy_info m;

	if (deploy_find(c->d, name, &m) != 0) {
		send_error(c, 404, "model", "model_not_found", "The model '%s' does not exist", name);
		return;
	}
	send_json(c, 200, model_json(&m));
}

/* ---- parameters ---- */

/* Reads the body, at most serve_max_body bytes, into a JSON object; NULL
 * after answering 413 or 400. */
static json_t *
body_read(struct api_call *c)
{
	const struct mg_request_info *ri = mg_get_request_info(c->conn);
	size_t max = (size_t)c->d->cfg.serve_max_body, n = 0;
	json_error_t jerr;
	json_t *j;
	char *buf;
	int r;

	if (ri->content_length > (long long)max) {
		send_error(c, 413, NULL, "request_too_large", "The request body is %lld bytes; this "
		    "server accepts at most %zu (serve_max_body).", ri->content_length, max);
		return NULL;
	}
	if ((buf = malloc(max + 1)) == NULL) {
		send_error(c, 500, NULL, NULL, "out of memory");
		return NULL;
	}
	while (n <= max && (r = mg_read(c->conn, buf + n, max + 1 - n)) > 0)
		n += (size_t)r;
	if (n > max) {
		free(buf);
		send_error(c, 413, NULL, "request_too_large", "The request body is over %zu bytes "
		    "(serve_max_body).", max);
		return NULL;
	}
	j = json_loadb(buf, n, JSON_REJECT_DUPLICATES, &jerr);
	free(buf);
	if (j == NULL || !json_is_object(j)) {
		if (j == NULL)
			send_error(c, 400, NULL, "invalid_json", "We could not parse the JSON body of "
			    "your request: %s (line %d, column %d).", jerr.text, jerr.line, jerr.column);
		else
			send_error(c, 400, NULL, "invalid_json", "The request body must be a JSON "
			    "object.");
		json_decref(j);
		return NULL;
	}
	return j;
}

/* What the request asks for, borrowed from its JSON. */
struct api_params {
	struct deploy_params p;
	const char *stop[STOP_MAX];
	char *conversation;              /* chat: canonical JSON, malloc'd */
	int stream;
	int include_usage;
	int chat;
	int echo;
};

static void
params_free(struct api_params *a)
{
	free(a->conversation);
}

/* A number member in [lo, hi] into *out (absent or null: unchanged). 0, or
 * -1 after a 400. */
static int
param_number(struct api_call *c, json_t *j, const char *key, double lo, double hi, int integer,
    double *out)
{
	json_t *v = json_object_get(j, key);
	double x;

	if (v == NULL || json_is_null(v))
		return 0;
	x = json_number_value(v);
	if (!json_is_number(v) || (integer && !json_is_integer(v)) || !(x >= lo && x <= hi)) {
		send_error(c, 400, key, "invalid_value", "'%s' must be %s between %g and %g.", key,
		    integer ? "an integer" : "a number", lo, hi);
		return -1;
	}
	*out = x;
	return 0;
}

/* The messages and tools as the dataset's canonical conversation
 * (chat_template.h), which the model's template renders. */
static int
params_messages(struct api_call *c, json_t *j, struct api_params *a)
{
	const char *param;
	char err[256];

	if (chat_request_conversation(json_object_get(j, "messages"), json_object_get(j, "tools"),
	    &a->conversation, &param, err, sizeof(err)) != 0) {
		send_error(c, 400, param, "invalid_value", "%s", err);
		return -1;
	}
	a->p.conversation = a->conversation;
	return 0;
}

static int
params_prompt(struct api_call *c, json_t *j, struct api_params *a)
{
	json_t *prompt = json_object_get(j, "prompt");

	if (json_is_array(prompt) && json_array_size(prompt) == 1)
		prompt = json_array_get(prompt, 0);
	if (!json_is_string(prompt) || json_string_length(prompt) == 0) {
		send_error(c, 400, "prompt", "invalid_value", "'prompt' must be a non-empty string "
		    "(or an array of one; token arrays are not supported).");
		return -1;
	}
	a->p.prompt = json_string_value(prompt);
	return 0;
}

static int
params_stop(struct api_call *c, json_t *j, struct api_params *a)
{
	json_t *stop = json_object_get(j, "stop"), *v;
	size_t i;

	if (stop == NULL || json_is_null(stop))
		return 0;
	if (json_is_string(stop)) {
		if (json_string_length(stop) > 0)
			a->stop[a->p.n_stop++] = json_string_value(stop);
		a->p.stop = a->stop;
		return 0;
	}
	if (!json_is_array(stop) || json_array_size(stop) > STOP_MAX) {
		send_error(c, 400, "stop", "invalid_value", "'stop' must be a string or an array of "
		    "up to %d strings.", STOP_MAX);
		return -1;
	}
	json_array_foreach(stop, i, v) {
		if (!json_is_string(v)) {
			send_error(c, 400, "stop", "invalid_value", "stop[%zu] must be a string.", i);
			return -1;
		}
		if (json_string_length(v) > 0)
			a->stop[a->p.n_stop++] = json_string_value(v);
	}
	a->p.stop = a->stop;
	return 0;
}

static int
param_bool(struct api_call *c, json_t *j, const char *key, int *out)
{
	json_t *v = json_object_get(j, key);

	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_boolean(v)) {
		send_error(c, 400, key, "invalid_type", "'%s' must be a boolean.", key);
		return -1;
	}
	*out = json_is_true(v);
	return 0;
}

/* Completions: logprobs = k alternatives (0 to 5) and echo; chat:
 * logprobs = true and top_logprobs (0 to 20), as OpenAI bounds them. */
static int
params_logprobs(struct api_call *c, json_t *j, struct api_params *a)
{
	double k = -1;

	if (!a->chat) {
		if (param_number(c, j, "logprobs", 0, COMPLETION_LOGPROBS_MAX, 1, &k) != 0 ||
		    param_bool(c, j, "echo", &a->echo) != 0)
			return -1;
		a->p.logprobs = k >= 0;
		a->p.top_logprobs = k >= 0 ? (int)k : 0;
		a->p.echo = a->echo;
		return 0;
	}
	if (param_bool(c, j, "logprobs", &a->p.logprobs) != 0 ||
	    param_number(c, j, "top_logprobs", 0, CHAT_TOP_LOGPROBS_MAX, 1, &k) != 0)
		return -1;
	if (k >= 0 && !a->p.logprobs) {
		send_error(c, 400, "top_logprobs", "invalid_value", "'top_logprobs' requires "
		    "'logprobs' to be true.");
		return -1;
	}
	a->p.top_logprobs = k >= 0 ? (int)k : 0;
	return 0;
}

/* Fills a from the body j; 0, or -1 after answering 400. */
static int
params_parse(struct api_call *c, json_t *j, struct api_params *a)
{
	double max_tokens = a->chat ? 0 : COMPLETION_DEFAULT_TOKENS, temperature = 1, top_p = 1;
	double n = 1, seed = -1;
	json_t *stream = json_object_get(j, "stream"), *opts = json_object_get(j, "stream_options");

	if ((a->p.model = json_string_value(json_object_get(j, "model"))) == NULL) {
		send_error(c, 400, "model", "invalid_value", "'model' is required: the name of a "
		    "deployed model (GET /v1/models).");
		return -1;
	}
	if ((a->chat ? params_messages(c, j, a) : params_prompt(c, j, a)) != 0 ||
	    params_stop(c, j, a) != 0 ||
	    param_number(c, j, "max_tokens", 1, 1 << 20, 1, &max_tokens) != 0 ||
	    (a->chat && param_number(c, j, "max_completion_tokens", 1, 1 << 20, 1, &max_tokens) != 0) ||
	    param_number(c, j, "temperature", 0, 2, 0, &temperature) != 0 ||
	    param_number(c, j, "top_p", 0, 1, 0, &top_p) != 0 ||
	    param_number(c, j, "n", 1, 128, 1, &n) != 0 ||
	    param_number(c, j, "seed", -9.2e18, 9.2e18, 1, &seed) != 0)
		return -1;
	if (n != 1) {
		send_error(c, 400, "n", "invalid_value", "Only n = 1 is supported.");
		return -1;
	}
	if (top_p <= 0) {
		send_error(c, 400, "top_p", "invalid_value", "'top_p' must be above 0.");
		return -1;
	}
	if (stream != NULL && !json_is_null(stream) && !json_is_boolean(stream)) {
		send_error(c, 400, "stream", "invalid_value", "'stream' must be a boolean.");
		return -1;
	}
	if (params_logprobs(c, j, a) != 0)
		return -1;
	a->stream = json_is_true(stream);
	a->include_usage = json_is_true(json_object_get(opts, "include_usage"));
	a->p.max_tokens = (int)max_tokens;
	a->p.temperature = (float)temperature;
	a->p.top_p = (float)top_p;
	if (json_is_integer(json_object_get(j, "seed")))
		a->p.seed = (uint64_t)json_integer_value(json_object_get(j, "seed"));
	else
		randombytes_buf(&a->p.seed, sizeof(a->p.seed));
	return 0;
}

/* ---- generation ---- */

static void
status_error(struct api_call *c, enum deploy_status st, const char *msg)
{
	switch (st) {
	case DEPLOY_NOT_FOUND:
		send_error(c, 404, "model", "model_not_found", "%s", msg);
		break;
	case DEPLOY_FULL:
		send_error(c, 429, NULL, "rate_limit_exceeded", "%s", msg);
		break;
	case DEPLOY_STOPPING:
	case DEPLOY_BUSY:
		send_error(c, 503, NULL, "service_unavailable", "%s", msg);
		break;
	case DEPLOY_BAD_REQUEST:
		send_error(c, 400, NULL, "invalid_value", "%s", msg);
		break;
	default:
		send_error(c, 500, NULL, NULL, "%s", msg);
		break;
	}
}

/* A chunk or reply's common head: id, object, created, model. */
static json_t *
reply_head(const char *id, const char *object, time_t created, const char *model)
{
	return json_pack("{s:s,s:s,s:I,s:s}", "id", id, "object", object, "created",
	    (json_int_t)created, "model", model);
}

static json_t *
usage_json(const struct deploy_result *r)
{
	return json_pack("{s:i,s:i,s:i}", "prompt_tokens", r->prompt_tokens, "completion_tokens",
	    r->completion_tokens, "total_tokens", r->prompt_tokens + r->completion_tokens);
}

/* ---- log-probabilities ---- */

static json_t *
bytes_json(const char *p, size_t len)
{
	json_t *a = json_array();

	for (size_t i = 0; i < len; i++)
		json_array_append_new(a, json_integer((unsigned char)p[i]));
	return a;
}

/* Appends n tokens to a completions logprobs object (tokens,
 * token_logprobs, top_logprobs, text_offset), their offsets moved by base. */
static void
lp_completion_add(json_t *o, const struct deploy_token *t, size_t n, size_t base)
{
	for (size_t i = 0; i < n; i++) {
		json_t *top = t[i].has_logprob ? json_object() : json_null();

		for (int k = 0; k < t[i].n_top; k++) {
			char *key = strndup(t[i].top_text[k], t[i].top_len[k]);

			/* two alternatives may read alike: the likelier stays */
			if (key != NULL && json_object_get(top, key) == NULL)
				json_object_set_new(top, key, json_real(t[i].top_lp[k]));
			free(key);
		}
		json_array_append_new(json_object_get(o, "tokens"), json_text(t[i].text, t[i].len));
		json_array_append_new(json_object_get(o, "token_logprobs"), t[i].has_logprob ?
		    json_real(t[i].logprob) : json_null());
		json_array_append_new(json_object_get(o, "top_logprobs"), top);
		json_array_append_new(json_object_get(o, "text_offset"),
		    json_integer((json_int_t)(base + t[i].offset)));
	}
}

static json_t *
lp_completion(void)
{
	return json_pack("{s:[],s:[],s:[],s:[]}", "tokens", "token_logprobs", "top_logprobs",
	    "text_offset");
}

/* Chat's shape: {"content": [{token, logprob, bytes, top_logprobs}], "refusal": null}. */
static json_t *
lp_chat(const struct deploy_token *t, size_t n)
{
	json_t *content = json_array();

	for (size_t i = 0; i < n; i++) {
		json_t *top = json_array();

		for (int k = 0; k < t[i].n_top; k++)
			json_array_append_new(top, json_pack("{s:o,s:f,s:o}", "token",
			    json_text(t[i].top_text[k], t[i].top_len[k]), "logprob",
			    (double)t[i].top_lp[k], "bytes", bytes_json(t[i].top_text[k],
			    t[i].top_len[k])));
		json_array_append_new(content, json_pack("{s:o,s:f,s:o,s:o}", "token",
		    json_text(t[i].text, t[i].len), "logprob", (double)t[i].logprob, "bytes",
		    bytes_json(t[i].text, t[i].len), "top_logprobs", top));
	}
	return json_pack("{s:o,s:n}", "content", content, "refusal");
}

/* The logprobs of output tokens [from, to) of job (for completions with
 * echo, the prompt's first when with_prompt); NULL without logprobs. */
static json_t *
lp_json(const struct api_params *a, struct deploy_job *job, size_t from, size_t to,
    int with_prompt)
{
	const struct deploy_token *pt, *t;
	const char *ptext;
	size_t np, plen, n;
	json_t *o;

	if (!a->p.logprobs)
		return NULL;
	t = deploy_job_tokens(job, 0, &n);
	if (a->chat)
		return lp_chat(t + from, to - from);
	o = lp_completion();
	pt = deploy_job_prompt(job, &np, &ptext, &plen);
	if (with_prompt)
		lp_completion_add(o, pt, np, 0);
	lp_completion_add(o, t + from, to - from, a->echo ? plen : 0);
	return o;
}

/* One choice of a chunk or reply; text NULL for none; lp (taken) NULL for none. */
static json_t *
choice_json(int chat, int stream, const char *text, size_t len, int first, const char *finish,
    json_t *lp)
{
	json_t *ch = json_pack("{s:i,s:o}", "index", 0, "logprobs", lp ? lp : json_null()), *msg;

	json_object_set_new(ch, "finish_reason", finish ? json_string(finish) : json_null());
	if (!chat) {
		json_object_set_new(ch, "text", json_text(text ? text : "", text ? len : 0));
		return ch;
	}
	msg = json_object();
	if (first || !stream)
		json_object_set_new(msg, "role", json_string("assistant"));
	if (text != NULL || (first && stream))
		json_object_set_new(msg, "content", json_text(text ? text : "", text ? len : 0));
	json_object_set_new(ch, stream ? "delta" : "message", msg);
	return ch;
}

/* deploy_job_wait that also returns once the job has started when
 * at_start is set, and gives up when the client leaves: then the job is
 * cancelled and c->gone set.  Returns 1 while the job runs. */
static int
job_wait(struct api_call *c, struct deploy_job *job, size_t off, int at_start, int *started,
    char **chunk, size_t *len)
{
	int running;

	for (;;) {
		running = deploy_job_wait_for(job, off, GONE_CHECK_MS, started, chunk, len);
		/* Whatever came: tokens come faster than GONE_CHECK_MS, and a
		 * non-streamed reply writes nothing that would fail before the end. */
		if (web_peer_gone(c->fd)) {
			deploy_job_cancel(job);
			c->gone = 1;
			return running;
		}
		if (*chunk != NULL || !running || (at_start && *started))
			return running;
	}
}

/* Sends one server-sent event; -1 when the client has gone. */
static int
sse_send(struct api_call *c, json_t *j)
{
	char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
	int rc = -1;

	json_decref(j);
	if (text != NULL && mg_printf(c->conn, "data: %s\n\n", text) > 0)
		rc = 0;
	free(text);
	return rc;
}

static int
sse_chunk(struct api_call *c, const struct api_params *a, const char *id, time_t created,
    const char *model, json_t *choice)
{
	json_t *j = reply_head(id, a->chat ? "chat.completion.chunk" : "text_completion", created,
	    model);

	json_object_set_new(j, "choices", choice ? json_pack("[o]", choice) : json_array());
	return sse_send(c, j);
}

static void
generate_stream(struct api_call *c, const struct api_params *a, struct deploy_job *job,
    const char *id, time_t created)
{
	const struct deploy_result *r = deploy_job_result(job);
	const char *ptext;
	size_t off = 0, len, sent = 0, n, np, plen;
	int started, running, first = 1, gone = 0;
	char *chunk;
	json_t *j;

	mg_printf(c->conn, "HTTP/1.1 200 OK\r\n"
	    "Content-Type: text/event-stream\r\n"
	    "Cache-Control: no-cache\r\n"
	    WEB_SECURITY_HEADERS "\r\n"
	    "Connection: close\r\n\r\n");
	c->status = 200;
	deploy_job_prompt(job, &np, &ptext, &plen);
	if (a->echo && np > 0)
		gone = sse_chunk(c, a, id, created, r->model, choice_json(0, 1, ptext, plen, 1,
		    NULL, lp_json(a, job, 0, 0, 1))) != 0;
	while (!gone) {
		running = job_wait(c, job, off, 0, &started, &chunk, &len);
		gone = c->gone;
		if (!gone && (chunk != NULL || (first && a->chat))) {
			deploy_job_tokens(job, off + len, &n);
			gone = sse_chunk(c, a, id, created, r->model,
			    choice_json(a->chat, 1, chunk, len, first, NULL,
			    lp_json(a, job, sent, n, 0))) != 0;
			sent = n;
			first = 0;
		}
		free(chunk);
		off += len;
		if (gone)
			deploy_job_cancel(job);
		if (!running)
			break;
	}
	if (gone)
		return;
	if (r->status != DEPLOY_OK) {
		sse_send(c, error_body(r->message, "server_error", NULL, r->status ==
		    DEPLOY_STOPPING ? "service_unavailable" : NULL));
	} else {
		deploy_job_tokens(job, off, &n);
		sse_chunk(c, a, id, created, r->model, choice_json(a->chat, 1, NULL, 0, 0,
		    r->finish_reason, n > sent ? lp_json(a, job, sent, n, 0) : NULL));
		if (a->include_usage) {
			j = reply_head(id, a->chat ? "chat.completion.chunk" : "text_completion",
			    created, r->model);
			json_object_set_new(j, "choices", json_array());
			json_object_set_new(j, "usage", usage_json(r));
			sse_send(c, j);
		}
	}
	mg_printf(c->conn, "data: [DONE]\n\n");
}

/* Puts the prompt's decoded text before the len bytes of *text. */
static int
echo_prepend(struct deploy_job *job, char **text, size_t *len)
{
	const char *ptext;
	size_t np, plen;
	char *all;

	deploy_job_prompt(job, &np, &ptext, &plen);
	if ((all = malloc(plen + *len + 1)) == NULL)
		return -1;
	memcpy(all, ptext, plen);
	if (*len > 0)
		memcpy(all + plen, *text, *len);
	all[plen + *len] = '\0';
	free(*text);
	*text = all;
	*len += plen;
	return 0;
}

/* Collects the whole output of a non-streamed job and answers it. */
static void
generate_whole(struct api_call *c, const struct api_params *a, struct deploy_job *job,
    const char *id, time_t created)
{
	const struct deploy_result *r = deploy_job_result(job);
	size_t off = 0, len, cap = 0, n, np, plen;
	char *text = NULL, *chunk, *nt;
	const char *ptext;
	int started, running, oom = 0;
	json_t *j;

	deploy_job_prompt(job, &np, &ptext, &plen);
	do {
		running = job_wait(c, job, off, 0, &started, &chunk, &len);
		if (chunk != NULL && off + len + 1 > cap) {
			cap = 2 * (off + len + 1);
			if ((nt = realloc(text, cap)) == NULL)
				oom = 1;
			else
				text = nt;
		}
		if (chunk != NULL && !oom)
			memcpy(text + off, chunk, len + 1);
		free(chunk);
		off += len;
	} while (running && !oom && !c->gone);
	if (c->gone) {
		c->status = 499;         /* nginx's "client closed request", for the log */
	} else if (oom) {
		deploy_job_cancel(job);
		send_error(c, 500, NULL, NULL, "out of memory");
	} else if (r->status != DEPLOY_OK) {
		status_error(c, r->status, r->message);
	} else if (a->echo && echo_prepend(job, &text, &off) != 0) {
		send_error(c, 500, NULL, NULL, "out of memory");
	} else {
		deploy_job_tokens(job, a->echo ? off - plen : off, &n);
		j = reply_head(id, a->chat ? "chat.completion" : "text_completion", created, r->model);
		json_object_set_new(j, "choices", json_pack("[o]", choice_json(a->chat, 0,
		    text ? text : "", text ? off : 0, 1, r->finish_reason,
		    lp_json(a, job, 0, n, 1))));
		json_object_set_new(j, "usage", usage_json(r));
		send_json(c, 200, j);
	}
	free(text);
}

static void
generate(struct api_call *c, int chat)
{
	const struct mg_request_info *ri = mg_get_request_info(c->conn);
	struct api_params *a = calloc(1, sizeof(*a));
	const struct deploy_result *r;
	struct deploy_job *job = NULL;
	enum deploy_status st;
	unsigned char raw[12];
	char id[48], hex[sizeof(raw) * 2 + 1], err[256], *chunk;
	time_t created = time(NULL);
	json_t *body = NULL;
	size_t len;
	int started;

	if (a == NULL) {
		send_error(c, 500, NULL, NULL, "out of memory");
		return;
	}
	a->chat = chat;
	if (!web_content_json(mg_get_header(c->conn, "Content-Type"))) {
		send_error(c, 415, NULL, "unsupported_content_type", "The request body must be JSON, "
		    "sent with 'Content-Type: application/json'.");
		goto out;
	}
	if ((body = body_read(c)) == NULL || params_parse(c, body, a) != 0)
		goto out;
	randombytes_buf(raw, sizeof(raw));
	sodium_bin2hex(hex, sizeof(hex), raw, sizeof(raw));
	snprintf(id, sizeof(id), "%s-%s", chat ? "chatcmpl" : "cmpl", hex);
	if ((st = deploy_submit(c->d->deploy, &a->p, &job, err, sizeof(err))) != DEPLOY_OK) {
		status_error(c, st, err);
		goto out;
	}
	r = deploy_job_result(job);
	c->fd = web_peer_conn_fd(ri->remote_addr, ri->remote_port, ri->server_port);
	/* Wait for the model and the prompt: their errors are plain replies,
	 * even for a stream. */
	job_wait(c, job, 0, 1, &started, &chunk, &len);
	free(chunk);
	if (c->gone)
		c->status = 499;
	else if (!started)
		status_error(c, r->status, r->message);
	else if (a->stream)
		generate_stream(c, a, job, id, created);
	else
		generate_whole(c, a, job, id, created);
	/* A cancelled job still counts what it made until it stopped. */
	while (deploy_job_wait(job, SIZE_MAX, &started, &chunk, &len))
		free(chunk);
	free(chunk);
	c->tokens = (uint64_t)(r->prompt_tokens + r->completion_tokens);
	deploy_job_release(job);
out:
	json_decref(body);
	params_free(a);
	free(a);
}

static int
v1_handler(struct mg_connection *conn, void *arg)
{
	const struct mg_request_info *ri = mg_get_request_info(conn);
	const char *uri = ri->local_uri ? ri->local_uri : "";
	int is_get = strcmp(ri->request_method, "GET") == 0;
	int is_post = strcmp(ri->request_method, "POST") == 0;
	struct api_call c = { .conn = conn, .d = arg, .fd = -1 };

	if (!authorize(&c))
		return c.status;
	if (strcmp(uri, "/v1/models") == 0 && is_get)
		models_list(&c);
	else if (strncmp(uri, "/v1/models/", 11) == 0 && is_get)
		model_show(&c, uri + 11);
	else if (strcmp(uri, "/v1/completions") == 0 && is_post)
		generate(&c, 0);
	else if (strcmp(uri, "/v1/chat/completions") == 0 && is_post)
		generate(&c, 1);
	else if (strcmp(uri, "/v1/models") == 0 || strncmp(uri, "/v1/models/", 11) == 0 ||
	    strcmp(uri, "/v1/completions") == 0 || strcmp(uri, "/v1/chat/completions") == 0)
		send_error(&c, 405, NULL, "method_not_allowed", "%s is not allowed on %s.",
		    ri->request_method, uri);
	else
		send_error(&c, 404, NULL, "unknown_url", "Unknown request URL: %s %s.",
		    ri->request_method, uri);
	if (c.key_id != 0)
		deploy_key_used(c.d, c.key_id, c.tokens);
	log_debug("http: uid %u %s %s -> %d", c.uid, ri->request_method, uri, c.status);
	return c.status;
}

void
openai_register(struct mg_context *ctx, struct ftuned *d)
{
	mg_set_request_handler(ctx, "/v1/", v1_handler, d);
}
