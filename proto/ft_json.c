/* ft_json.c - ft.proto's messages as JSON, for ftctl --json and the
 * daemon's JSON API alike, so both show the same objects the same way. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ft_enum.h"
#include "ft_json.h"

json_t *
ft_json_text(const char *s)
{
	size_t n = strlen(s), o = 0;
	json_t *v = json_stringn(s, n);
	char *buf;

	if (v != NULL || (buf = malloc(3 * n + 1)) == NULL)
		return v ? v : json_string("");
	/* Each byte that does not start a valid sequence becomes U+FFFD. */
	for (size_t i = 0; i < n;) {
		unsigned char c = (unsigned char)s[i];
		size_t len = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 :
		    (c & 0xf8) == 0xf0 ? 4 : 0;
		json_t *one = len && i + len <= n ? json_stringn(s + i, len) : NULL;

		if (one != NULL) {
			memcpy(buf + o, s + i, len);
			o += len;
			i += len;
			json_decref(one);
		} else {
			memcpy(buf + o, "\xef\xbf\xbd", 3);
			o += 3;
			i++;
		}
	}
	v = json_stringn(buf, o);
	free(buf);
	return v ? v : json_string("");
}

static size_t
scalar_size(ProtobufCType type)
{
	switch (type) {
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
	case PROTOBUF_C_TYPE_DOUBLE:
		return 8;
	case PROTOBUF_C_TYPE_STRING:
	case PROTOBUF_C_TYPE_MESSAGE:
		return sizeof(void *);
	case PROTOBUF_C_TYPE_BYTES:
		return sizeof(ProtobufCBinaryData);
	case PROTOBUF_C_TYPE_BOOL:
		return sizeof(protobuf_c_boolean);
	default:
		return 4;
	}
}

/* pb_value converts one value of field f stored at p. */
static json_t *
json_value(const ProtobufCFieldDescriptor *f, const void *p)
{
	char buf[32];

	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
		return json_integer(*(const int32_t *)p);
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		return json_integer(*(const uint32_t *)p);
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		return json_integer(*(const int64_t *)p);
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		return json_integer((json_int_t)*(const uint64_t *)p);
	case PROTOBUF_C_TYPE_FLOAT:
		if (!isfinite(*(const float *)p))
			return json_null();
		/* Seven digits, so 2.314f prints as 2.314, not 2.3139998912. */
		snprintf(buf, sizeof(buf), "%.7g", *(const float *)p);
		return json_real(strtod(buf, NULL));
	case PROTOBUF_C_TYPE_DOUBLE:
		return isfinite(*(const double *)p) ? json_real(*(const double *)p) : json_null();
	case PROTOBUF_C_TYPE_BOOL:
		return json_boolean(*(const protobuf_c_boolean *)p);
	case PROTOBUF_C_TYPE_ENUM: {
		char w[FT_ENUM_WORD_MAX];

		/* by its word (ft_enum.h); a number this build does not know as such */
		return ft_enum_word(f->descriptor, *(const int *)p, w) != NULL ? json_string(w) :
		    json_integer(*(const int *)p);
	}
	case PROTOBUF_C_TYPE_STRING: {
		const char *s = *(char *const *)p;
		size_t n = strlen(f->name);
		json_t *j;

		if (s == NULL)
			s = "";
		if (n > 5 && strcmp(f->name + n - 5, "_json") == 0 && s[0] != '\0' &&
		    (j = json_loads(s, JSON_DECODE_ANY, NULL)) != NULL)
			return j;
		return ft_json_text(s);
	}
	case PROTOBUF_C_TYPE_BYTES: {
		const ProtobufCBinaryData *b = p;
		json_t *j = json_stringn((const char *)b->data, b->len);

		/* Bytes that are not UTF-8 text are shown by their size. */
		return j != NULL ? j : json_pack("{s:I}", "bytes", (json_int_t)b->len);
	}
	case PROTOBUF_C_TYPE_MESSAGE:
		return ft_json_message(*(const ProtobufCMessage *const *)p);
	}
	return json_null();
}

json_t *
ft_json_message(const ProtobufCMessage *m)
{
	const ProtobufCMessageDescriptor *d;
	json_t *obj = json_object();

	if (m == NULL || obj == NULL)
		return obj;
	d = m->descriptor;
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		const char *p = (const char *)m + f->offset;
		const char *key = f->name;
		char name[64];
		json_t *v;

		if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF &&
		    *(const uint32_t *)((const char *)m + f->quantifier_offset) != f->id)
			continue;
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n = *(const size_t *)((const char *)m + f->quantifier_offset);
			const char *arr = *(char *const *)p;

			v = json_array();
			for (size_t k = 0; k < n && v != NULL; k++)
				json_array_append_new(v, json_value(f, arr + k * scalar_size(f->type)));
		} else {
			if (f->type == PROTOBUF_C_TYPE_MESSAGE && *(void *const *)p == NULL)
				continue;
			v = json_value(f, p);
		}
		if (f->type == PROTOBUF_C_TYPE_STRING && f->label != PROTOBUF_C_LABEL_REPEATED &&
		    v != NULL && !json_is_string(v)) {
			/* An embedded "_json" field: named without the suffix. */
			snprintf(name, sizeof(name), "%.*s", (int)strlen(key) - 5, key);
			key = name;
		}
		json_object_set_new(obj, key, v);
	}
	return obj;
}
