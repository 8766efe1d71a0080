/*
 * ft_json.h - any ft.proto message as a JSON object, through its
 * descriptor: every field under its proto name, repeated fields as arrays,
 * enums by their words (ft_enum.h), NaN and infinities as null, floats to
 * seven digits, a string field NAME_json (JSON carried as text) parsed
 * under NAME, an unset message left out.  ftctl --json and the dashboard's
 * API both use it.
 */
#ifndef FT_JSON_H
#define FT_JSON_H

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>

/* The flags ftctl --json and the dashboard's API print with: fifteen
 * significant digits, so a double read back from JSON text prints the same
 * in both. */
#define FT_JSON_DUMP_FLAGS JSON_REAL_PRECISION(15)

/* ft_json_message: m as a new JSON object (NULL only when out of memory). */
json_t *ft_json_message(const ProtobufCMessage *m);

/* ft_json_text: s as a JSON string, with any byte that is not valid UTF-8
 * (a model's output cut inside a character) shown as U+FFFD. */
json_t *ft_json_text(const char *s);

#endif
