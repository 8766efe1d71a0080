/*
 * notify.h - the systemd notification protocol (sd_notify), spoken
 * directly over $NOTIFY_SOCKET so the daemon needs no libsystemd.
 */
#ifndef FT_NOTIFY_H
#define FT_NOTIFY_H

#include <stdint.h>

/* notify_send sends a state string such as "READY=1" to the service
 * manager.  Without $NOTIFY_SOCKET it does nothing and returns 0; it
 * returns -1 if the message could not be sent. */
int notify_send(const char *state);

/* notify_watchdog_usec returns the watchdog interval systemd asked for
 * ($WATCHDOG_USEC, when $WATCHDOG_PID is ours or unset), or 0. */
uint64_t notify_watchdog_usec(void);

#endif
