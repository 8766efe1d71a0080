/* ft_wire.c - packing and unpacking of the control protocol's envelopes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ft_wire.h"

const char *
ft_code_name(int code)
{
	const ProtobufCEnumValue *v;

	v = protobuf_c_enum_descriptor_get_value(&ft__code__descriptor, code);
	return v != NULL ? v->name : "UNKNOWN";
}

static int
encode(const ProtobufCMessage *m, uint8_t **buf, size_t *len)
{
	size_t n = protobuf_c_message_get_packed_size(m);
	uint8_t *b = malloc(n > 0 ? n : 1);

	if (b == NULL)
		return -1;
	protobuf_c_message_pack(m, b);
	*buf = b;
	*len = n;
	return 0;
}

int
ft_request_encode(const Ft__Request *req, uint8_t **buf, size_t *len)
{
	return encode(&req->base, buf, len);
}

int
ft_reply_encode(const Ft__Reply *rep, uint8_t **buf, size_t *len)
{
	return encode(&rep->base, buf, len);
}

static int
check_version(uint32_t version, char *why, size_t why_len)
{
	if (version == FT_PROTOCOL_VERSION)
		return FT__CODE__OK;
	snprintf(why, why_len, "protocol version %u not supported (this side speaks %u)",
	    version, FT_PROTOCOL_VERSION);
	return FT__CODE__FAILED_PRECONDITION;
}

int
ft_request_decode(const void *buf, size_t len, Ft__Request **out,
    uint64_t *request_id, char *why, size_t why_len)
{
	Ft__Request *req;
	int rc;

	*request_id = 0;
	req = ft__request__unpack(NULL, len, buf);
	if (req == NULL) {
		snprintf(why, why_len, "malformed request: not a protobuf ft.Request (%zu bytes)", len);
		return FT__CODE__INVALID_ARGUMENT;
	}
	*request_id = req->request_id;
	if ((rc = check_version(req->protocol_version, why, why_len)) != FT__CODE__OK) {
		ft__request__free_unpacked(req, NULL);
		return rc;
	}
	/* An RPC added by a newer client arrives as an unknown field. */
	if (req->body_case == FT__REQUEST__BODY__NOT_SET) {
		snprintf(why, why_len, "request names no RPC this daemon knows");
		ft__request__free_unpacked(req, NULL);
		return FT__CODE__INVALID_ARGUMENT;
	}
	*out = req;
	return FT__CODE__OK;
}

int
ft_reply_decode(const void *buf, size_t len, Ft__Reply **out, char *why,
    size_t why_len)
{
	Ft__Reply *rep;
	int rc;

	rep = ft__reply__unpack(NULL, len, buf);
	if (rep == NULL) {
		snprintf(why, why_len, "malformed reply: not a protobuf ft.Reply (%zu bytes)", len);
		return FT__CODE__INVALID_ARGUMENT;
	}
	if ((rc = check_version(rep->protocol_version, why, why_len)) != FT__CODE__OK) {
		ft__reply__free_unpacked(rep, NULL);
		return rc;
	}
	*out = rep;
	return FT__CODE__OK;
}

int
ft_signed_message(const uint8_t *req, size_t req_len, int64_t timestamp,
    const uint8_t *nonce, size_t nonce_len, uint8_t **out, size_t *out_len)
{
	size_t n = req_len + 8 + nonce_len;
	uint8_t *m = malloc(n);
	uint64_t ts = (uint64_t)timestamp;

	if (m == NULL)
		return -1;
	if (req_len > 0)
		memcpy(m, req, req_len);
	for (int i = 0; i < 8; i++)
		m[req_len + i] = (uint8_t)(ts >> (8 * i));
	if (nonce_len > 0)
		memcpy(m + req_len + 8, nonce, nonce_len);
	*out = m;
	*out_len = n;
	return 0;
}

void
ft_request_free(Ft__Request *req)
{
	if (req != NULL)
		ft__request__free_unpacked(req, NULL);
}

void
ft_reply_free(Ft__Reply *rep)
{
	if (rep != NULL)
		ft__reply__free_unpacked(rep, NULL);
}

ProtobufCMessage *
ft_message_copy(const ProtobufCMessage *m, ProtobufCAllocator *a)
{
	size_t len = protobuf_c_message_get_packed_size(m);
	uint8_t *buf = malloc(len + 1);
	ProtobufCMessage *c;

	if (buf == NULL)
		return NULL;
	protobuf_c_message_pack(m, buf);
	c = protobuf_c_message_unpack(m->descriptor, a, len, buf);
	free(buf);
	return c;
}
