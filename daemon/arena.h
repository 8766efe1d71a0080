/*
 * arena.h - memory that is freed all at once: a reply's objects (rpc.c,
 * web_api.c, web_eval.c) are allocated here and released after it is sent.
 */
#ifndef FT_ARENA_H
#define FT_ARENA_H

#include <stddef.h>

#include <protobuf-c/protobuf-c.h>

struct arena_block;

struct arena {
	struct arena_block *blocks;   /* newest first */
};

#define ARENA_INIT { NULL }

/* arena_alloc returns zeroed memory that lives until arena_release, or NULL
 * when out of memory. */
void *arena_alloc(struct arena *a, size_t size);

/* arena_strdup copies s (NULL as ""); NULL when out of memory. */
char *arena_strdup(struct arena *a, const char *s);

/* arena_allocator: a protobuf-c allocator drawing on a, for messages built
 * or unpacked into it; its free does nothing (arena_release frees all). */
ProtobufCAllocator arena_allocator(struct arena *a);

/* arena_release frees everything a holds; a is then empty and reusable. */
void arena_release(struct arena *a);

#endif
