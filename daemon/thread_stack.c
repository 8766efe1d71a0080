/*
 * thread_stack.c - a floor under explicit thread stack sizes.
 *
 * Debian's civetweb starts its threads with a fixed, compiled-in stack size
 * (about 100 KiB), and glibc carves every thread's static TLS out of that
 * stack: OpenBLAS's alone is 60 KiB, which leaves civetweb too little and
 * crashed it on the first request.  Calls from libcivetweb resolve to this
 * definition before libc's, so explicit stack sizes are raised to a floor;
 * threads that ask for no size (all of ftuned's own) keep glibc's default.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stddef.h>

#define THREAD_STACK_FLOOR ((size_t)1 << 20)

int
pthread_attr_setstacksize(pthread_attr_t *attr, size_t size)
{
	static int (*real)(pthread_attr_t *, size_t);

	if (real == NULL)
		*(void **)&real = dlsym(RTLD_NEXT, "pthread_attr_setstacksize");
	return real(attr, size < THREAD_STACK_FLOOR ? THREAD_STACK_FLOOR : size);
}
