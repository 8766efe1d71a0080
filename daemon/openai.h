/*
 * openai.h - the OpenAI-compatible API under /v1/ on the daemon's HTTP
 * server: GET /v1/models, POST /v1/completions and /v1/chat/completions
 * (streamed as server-sent events with "stream": true), answered from the
 * deployed models (deploy.h), with errors in OpenAI's shape
 * {"error": {"message", "type", "param", "code"}}.
 */
#ifndef FT_OPENAI_H
#define FT_OPENAI_H

#include <civetweb.h>

#include "ftuned.h"

/* openai_register installs the /v1/ handlers on ctx.  Keys (Authorization:
 * Bearer) are checked by the handlers: required when http_listen is not a
 * loopback address or serve_require_key is 1, otherwise optional (a key
 * that is sent must still be valid, and its usage is counted). */
void openai_register(struct mg_context *ctx, struct ftuned *d);

#endif
