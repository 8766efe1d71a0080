/*
 * testhook.h - pauses at named points, for tests only.
 *
 * FTUNED_TEST_HOOKS (read once, at the first hook) lists the points to
 * pause at: "pause:NAME[,pause:NAME...]".  At such a point the daemon
 * creates $FTUNED_TEST_HOOKS_DIR/NAME.reached and waits until NAME.go
 * exists there, so a test can act (or kill the daemon) exactly there; the
 * point passes freely while NAME.go exists, and pauses again once the test
 * removes it.  Unset, a hook costs one comparison.  Never set it in
 * production.
 *
 * Points: after_register (train_job.c: the tuned model is registered, the
 * job not yet SUCCEEDED); export (rpc_model.c: the export's target was
 * checked, nothing written yet).
 */
#ifndef FT_TESTHOOK_H
#define FT_TESTHOOK_H

void testhook_pause(const char *name);

#endif
