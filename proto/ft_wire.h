/*
 * ft_wire.h - the only place bytes become messages and messages bytes.
 *
 * Requests and replies travel as packed protobuf (ft.proto) inside nng
 * messages.  Decoding checks the protocol version and that the request names
 * an RPC this build knows, so handlers only ever see well-formed requests.
 */
#ifndef FT_WIRE_H
#define FT_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "ft.pb-c.h"

/* Bumped on incompatible changes; both sides refuse other versions. */
#define FT_PROTOCOL_VERSION 1

/* ft_code_name returns the gRPC-style name of a status code ("NOT_FOUND"). */
const char *ft_code_name(int code);

/* ft_request_decode unpacks len bytes into a request.  On success it
 * returns FT__CODE__OK and *out owns the request (free with
 * ft_request_free).  On failure it returns INVALID_ARGUMENT (not protobuf,
 * no known RPC) or FAILED_PRECONDITION (other protocol version), writes a
 * reason into why, and stores in *request_id the id it could read (0 if
 * none) so the error reply can still be matched to the request. */
int ft_request_decode(const void *buf, size_t len, Ft__Request **out,
    uint64_t *request_id, char *why, size_t why_len)
    __attribute__((warn_unused_result));

/* ft_reply_decode unpacks a reply; returns FT__CODE__OK and sets *out
 * (free with ft_reply_free), or INVALID_ARGUMENT / FAILED_PRECONDITION
 * with a reason in why. */
int ft_reply_decode(const void *buf, size_t len, Ft__Reply **out,
    char *why, size_t why_len) __attribute__((warn_unused_result));

/* ft_request_encode / ft_reply_encode pack a message into a malloc'd
 * buffer owned by the caller.  They return 0, or -1 when out of memory. */
int ft_request_encode(const Ft__Request *req, uint8_t **buf, size_t *len)
    __attribute__((warn_unused_result));
int ft_reply_encode(const Ft__Reply *rep, uint8_t **buf, size_t *len)
    __attribute__((warn_unused_result));

/* FT_NONCE_BYTES is the length of a SignedRequest's nonce. */
#define FT_NONCE_BYTES 16

/* ft_signed_message builds the bytes a SignedRequest's signature covers:
 * the packed request, the timestamp as 8 bytes little-endian, the nonce.
 * *out is malloc'd (owned by the caller).  0, or -1 when out of memory. */
int ft_signed_message(const uint8_t *req, size_t req_len, int64_t timestamp,
    const uint8_t *nonce, size_t nonce_len, uint8_t **out, size_t *out_len)
    __attribute__((warn_unused_result));

/* ft_message_copy returns a deep copy of m made through its wire form,
 * unpacked with allocator a (NULL: malloc, freed with
 * protobuf_c_message_free_unpacked), or NULL when out of memory. */
ProtobufCMessage *ft_message_copy(const ProtobufCMessage *m, ProtobufCAllocator *a);

void ft_request_free(Ft__Request *req);
void ft_reply_free(Ft__Reply *rep);

#endif
