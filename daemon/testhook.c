/* testhook.c - pauses at named points, for tests only.  See testhook.h. */
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "testhook.h"

static pthread_once_t once = PTHREAD_ONCE_INIT;
static const char *hooks, *dir;

static void
hooks_read(void)
{
	hooks = getenv("FTUNED_TEST_HOOKS");
	dir = getenv("FTUNED_TEST_HOOKS_DIR");
	if (hooks != NULL && dir == NULL)
		dir = ".";
}

/* Whether "pause:name" is an item of the comma-separated hooks list. */
static int
hook_listed(const char *name)
{
	size_t n = strlen(name);

	for (const char *p = hooks; *p;) {
		size_t len = strcspn(p, ",");

		if (len == n + 6 && strncmp(p, "pause:", 6) == 0 && strncmp(p + 6, name, n) == 0)
			return 1;
		p += len + (p[len] == ',');
	}
	return 0;
}

void
testhook_pause(const char *name)
{
	struct timespec ts = { 0, 10 * 1000 * 1000 };
	char reached[PATH_MAX], go[PATH_MAX];
	int fd;

	pthread_once(&once, hooks_read);
	if (hooks == NULL || !hook_listed(name))
		return;
	snprintf(reached, sizeof(reached), "%s/%s.reached", dir, name);
	snprintf(go, sizeof(go), "%s/%s.go", dir, name);
	log_warn("test hook: paused at %s until %s exists", name, go);
	if ((fd = open(reached, O_WRONLY | O_CREAT | O_CLOEXEC, 0600)) >= 0)
		close(fd);
	while (access(go, F_OK) != 0)
		nanosleep(&ts, NULL);
	unlink(reached);
}
