/*
 * ft_enum.h - ft.proto's enums as words: how SQLite stores a value, ftctl
 * parses it and the JSON shows it.  The names come from protobuf-c's
 * generated enum descriptors, so a new value is one line of ft.proto.
 *
 * A value's word is its name without the prefix its enum's 0 value shares
 * ("JOB_STATE_UNSPECIFIED": "JOB_STATE_"), in lower case except for the
 * enums whose words have always been capitals (Code, JobState): so
 * MODEL_ARCH_GPT2 is "gpt2", JOB_STATE_RUNNING "RUNNING" and Code's OK
 * "OK".  An UNSPECIFIED value is "" (not given).
 */
#ifndef FT_ENUM_H
#define FT_ENUM_H

#include <stddef.h>

#include <protobuf-c/protobuf-c.h>

#define FT_ENUM_WORD_MAX 32

/* ft_enum_word writes value v of enum d as its word into buf and returns
 * buf; NULL when d has no value v. */
const char *ft_enum_word(const ProtobufCEnumDescriptor *d, int v, char buf[FT_ENUM_WORD_MAX]);

/* ft_enum_parse reads word w (in any case; "" is the UNSPECIFIED value)
 * into *v.  0, or -1 when no value of d has that word. */
int ft_enum_parse(const ProtobufCEnumDescriptor *d, const char *w, int *v);

/* ft_enum_words writes the words of d's values, UNSPECIFIED left out, in
 * the order of their numbers, joined by sep ("instruct|text") into buf
 * (truncated to len).  Returns buf. */
char *ft_enum_words(const ProtobufCEnumDescriptor *d, const char *sep, char *buf, size_t len);

#endif
