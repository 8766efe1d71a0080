/* call.c - ftctl's transport: nng req0, one request, one reply. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <sodium.h>
#include <nng/protocol/reqrep0/req.h>

#include "call.h"

#define KEY_NAME_MAX 64

int
ft_key_generate(const char *name, const char *path, char *pk_hex, size_t pk_hex_len,
    char *err, size_t err_len)
{
	unsigned char pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
	char sk_hex[2 * crypto_sign_SECRETKEYBYTES + 1];
	FILE *f;
	int fd;

	if (sodium_init() < 0 || strlen(name) == 0 || strlen(name) >= KEY_NAME_MAX ||
	    strpbrk(name, " \t\n") != NULL || pk_hex_len < 2 * sizeof(pk) + 1) {
		snprintf(err, err_len, "key names are 1 to %d characters without spaces", KEY_NAME_MAX - 1);
		return -1;
	}
	if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600)) < 0 || (f = fdopen(fd, "w")) == NULL) {
		snprintf(err, err_len, "%s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	crypto_sign_keypair(pk, sk);
	sodium_bin2hex(sk_hex, sizeof(sk_hex), sk, sizeof(sk));
	sodium_bin2hex(pk_hex, pk_hex_len, pk, sizeof(pk));
	fprintf(f, "%s %s\n", name, sk_hex);
	sodium_memzero(sk, sizeof(sk));
	sodium_memzero(sk_hex, sizeof(sk_hex));
	if (fclose(f) != 0) {
		snprintf(err, err_len, "%s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

/* Reads "NAME SECRET_KEY_HEX" from a key file. */
static int
key_read(const char *path, char *name, unsigned char *sk, char *err, size_t err_len)
{
	char hex[2 * crypto_sign_SECRETKEYBYTES + 2];
	size_t n;
	FILE *f = fopen(path, "r");
	int ok;

	if (f == NULL) {
		snprintf(err, err_len, "key %s: %s", path, strerror(errno));
		return -1;
	}
	ok = fscanf(f, "%63s %129s", name, hex) == 2 &&
	    sodium_hex2bin(sk, crypto_sign_SECRETKEYBYTES, hex, strlen(hex), NULL, &n, NULL) == 0 &&
	    n == crypto_sign_SECRETKEYBYTES;
	fclose(f);
	sodium_memzero(hex, sizeof(hex));
	if (!ok)
		snprintf(err, err_len, "key %s: expected 'NAME SECRET_KEY_HEX' as ftctl keygen writes", path);
	return ok ? 0 : -1;
}

int
ft_request_sign(const char *key_file, uint8_t **buf, size_t *len, char *err, size_t err_len)
{
	Ft__SignedRequest s = FT__SIGNED_REQUEST__INIT;
	unsigned char sk[crypto_sign_SECRETKEYBYTES], sig[crypto_sign_BYTES];
	uint8_t nonce[FT_NONCE_BYTES], *msg, *out;
	char name[KEY_NAME_MAX];
	size_t msg_len;

	if (sodium_init() < 0 || key_read(key_file, name, sk, err, err_len) != 0)
		return -1;
	randombytes_buf(nonce, sizeof(nonce));
	s.request.data = *buf;
	s.request.len = *len;
	s.key_id = name;
	s.timestamp = (int64_t)time(NULL);
	s.nonce.data = nonce;
	s.nonce.len = sizeof(nonce);
	if (ft_signed_message(*buf, *len, s.timestamp, nonce, sizeof(nonce), &msg, &msg_len) != 0) {
		snprintf(err, err_len, "out of memory");
		sodium_memzero(sk, sizeof(sk));
		return -1;
	}
	crypto_sign_detached(sig, NULL, msg, msg_len, sk);
	sodium_memzero(sk, sizeof(sk));
	free(msg);
	s.signature.data = sig;
	s.signature.len = sizeof(sig);
	if ((out = malloc(ft__signed_request__get_packed_size(&s))) == NULL) {
		snprintf(err, err_len, "out of memory");
		return -1;
	}
	*len = ft__signed_request__pack(&s, out);
	free(*buf);
	*buf = out;
	return 0;
}

int
ft_call(const char *url, Ft__Request *req, int timeout_ms, const char *key_file,
    Ft__Reply **out, char *err, size_t err_len)
{
	nng_socket sock;
	nng_msg *msg = NULL;
	uint8_t *buf;
	size_t len;
	int rv, rc = -1;

	req->protocol_version = FT_PROTOCOL_VERSION;
	req->request_id = ((uint64_t)getpid() << 32) ^ (uint64_t)time(NULL);
	if (ft_request_encode(req, &buf, &len) != 0) {
		snprintf(err, err_len, "out of memory");
		return -1;
	}
	if (key_file != NULL && key_file[0] != '\0' && ft_request_sign(key_file, &buf, &len, err, err_len) != 0) {
		free(buf);
		return -1;
	}
	if ((rv = nng_req0_open(&sock)) != 0) {
		snprintf(err, err_len, "nng: %s", nng_strerror(rv));
		free(buf);
		return -1;
	}
	nng_socket_set_ms(sock, NNG_OPT_RECVTIMEO, timeout_ms);
	nng_socket_set_ms(sock, NNG_OPT_SENDTIMEO, timeout_ms);
	/* One attempt: a request is never resent behind the user's back. */
	nng_socket_set_ms(sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	if ((rv = nng_dial(sock, url, NULL, 0)) != 0) {
		snprintf(err, err_len, "cannot reach ftuned at %s: %s", url, nng_strerror(rv));
		goto out;
	}
	if ((rv = nng_send(sock, buf, len, 0)) != 0) {
		snprintf(err, err_len, "sending to %s: %s", url, nng_strerror(rv));
		goto out;
	}
	if ((rv = nng_recvmsg(sock, &msg, 0)) != 0) {
		snprintf(err, err_len, "no reply from %s: %s", url, nng_strerror(rv));
		goto out;
	}
	if (ft_reply_decode(nng_msg_body(msg), nng_msg_len(msg), out, err, err_len) == FT__CODE__OK)
		rc = 0;
out:
	if (msg != NULL)
		nng_msg_free(msg);
	nng_close(sock);
	free(buf);
	return rc;
}
