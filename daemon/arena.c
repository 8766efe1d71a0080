/* arena.c - allocations freed together (arena.h). */
#include <stdlib.h>
#include <string.h>

#include "arena.h"

struct arena_block {
	struct arena_block *next;
	max_align_t align[];          /* the allocation follows, suitably aligned */
};

void *
arena_alloc(struct arena *a, size_t size)
{
	struct arena_block *b = calloc(1, sizeof(*b) + size);

	if (b == NULL)
		return NULL;
	b->next = a->blocks;
	a->blocks = b;
	return b->align;
}

char *
arena_strdup(struct arena *a, const char *s)
{
	size_t n = s ? strlen(s) : 0;
	char *p = arena_alloc(a, n + 1);

	if (p != NULL && n > 0)
		memcpy(p, s, n);
	return p;
}

static void *
allocator_alloc(void *data, size_t size)
{
	return arena_alloc(data, size);
}

static void
allocator_free(void *data, void *ptr)
{
	(void)data;
	(void)ptr; /* released with the arena */
}

ProtobufCAllocator
arena_allocator(struct arena *a)
{
	return (ProtobufCAllocator){ allocator_alloc, allocator_free, a };
}

void
arena_release(struct arena *a)
{
	while (a->blocks != NULL) {
		struct arena_block *next = a->blocks->next;

		free(a->blocks);
		a->blocks = next;
	}
}
