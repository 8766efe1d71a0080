/* ft_enum.c - ft.proto's enums as words (ft_enum.h). */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "ft.pb-c.h"
#include "ft_enum.h"

/* The enums written in capitals: codes and job states were words of
 * their own before they were enums, and SQLite stores job states so. */
static const ProtobufCEnumDescriptor *const capitals[] = {
	&ft__code__descriptor,
	&ft__job_state__descriptor,
};

/* The length of d's prefix: that of its 0 value's name before
 * "UNSPECIFIED", or 0 when it has none (Code's 0 is OK). */
static size_t
prefix_len(const ProtobufCEnumDescriptor *d)
{
	const ProtobufCEnumValue *z = protobuf_c_enum_descriptor_get_value(d, 0);
	size_t n = z ? strlen(z->name) : 0, u = strlen("UNSPECIFIED");

	return n >= u && strcmp(z->name + n - u, "UNSPECIFIED") == 0 ? n - u : 0;
}

static int
in_capitals(const ProtobufCEnumDescriptor *d)
{
	for (size_t i = 0; i < sizeof(capitals) / sizeof(capitals[0]); i++)
		if (capitals[i] == d)
			return 1;
	return 0;
}

const char *
ft_enum_word(const ProtobufCEnumDescriptor *d, int v, char buf[FT_ENUM_WORD_MAX])
{
	const ProtobufCEnumValue *e = protobuf_c_enum_descriptor_get_value(d, v);
	size_t p = prefix_len(d), i = 0;
	int lower = !in_capitals(d);

	if (e == NULL)
		return NULL;
	if (p > 0 && v == 0) {
		buf[0] = '\0';
		return buf;
	}
	for (const char *s = e->name + p; *s && i + 1 < FT_ENUM_WORD_MAX; s++)
		buf[i++] = lower ? (char)tolower((unsigned char)*s) : *s;
	buf[i] = '\0';
	return buf;
}

int
ft_enum_parse(const ProtobufCEnumDescriptor *d, const char *w, int *v)
{
	char buf[FT_ENUM_WORD_MAX];

	for (unsigned i = 0; i < d->n_values; i++) {
		if (ft_enum_word(d, d->values[i].value, buf) != NULL && strcasecmp(buf, w) == 0) {
			*v = d->values[i].value;
			return 0;
		}
	}
	return -1;
}

char *
ft_enum_words(const ProtobufCEnumDescriptor *d, const char *sep, char *buf, size_t len)
{
	char w[FT_ENUM_WORD_MAX];
	size_t o = 0;

	buf[0] = '\0';
	/* protobuf-c keeps values sorted by number */
	for (unsigned i = 0; i < d->n_values && o < len; i++) {
		if (ft_enum_word(d, d->values[i].value, w) == NULL || w[0] == '\0')
			continue;
		o += (size_t)snprintf(buf + o, len - o, "%s%s", o ? sep : "", w);
	}
	return buf;
}
