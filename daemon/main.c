/*
 * main.c - ftuned: start-up, the main loop, and shutdown.
 *
 * The main thread owns signals: they are blocked before any other thread
 * starts (nng's, civetweb's) and taken synchronously with sigtimedwait, so
 * no handler runs in signal context.  The same loop pings the systemd
 * watchdog, which therefore stops if the main loop ever gets stuck.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"
#include "auth.h"
#include "config.h"
#include "ftuned.h"
#include "log.h"
#include "datasets.h"
#include "fsutil.h"
#include "deploy.h"
#include "genstream.h"
#include "notify.h"
#include "queue.h"
#include "registry.h"
#include "rpc.h"
#include "screen.h"
#include "store.h"
#include "upload.h"
#include "web.h"

#define DEFAULT_CONFIG "/etc/ftuned/ftuned.conf"

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: ftuned [-dnv] [-f file] [--state-dir DIR] [--socket URL] [--http ADDR:PORT]\n"
	    "  -d               stay in the foreground and log to stderr\n"
	    "  -n               check the configuration and exit\n"
	    "  -v               with -n, print the resulting configuration\n"
	    "  -f FILE          configuration file (default " DEFAULT_CONFIG " if present)\n"
	    "  --state-dir DIR  override state_dir\n"
	    "  --socket URL     override socket (an nng address, e.g. ipc:///tmp/ftuned.sock)\n"
	    "  --http ADDR:PORT override http_listen (\"\" disables the dashboard)\n"
	    "  --new-dashboard-token  print a fresh dashboard token, store its hash, exit\n"
	    "  --version        print the version and exit\n");
}

/* The state directory is locked for the daemon's lifetime, so two daemons
 * never share one; the lock file holds the pid for scripts. */
static int
state_lock(const char *state_dir, char *err, size_t err_len)
{
	char path[PATH_MAX + 16], pid[32];
	int fd;

	snprintf(path, sizeof(path), "%s/ftuned.pid", state_dir);
	if ((fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0640)) < 0) {
		snprintf(err, err_len, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		snprintf(err, err_len, "%s: another ftuned is using this state directory", state_dir);
		close(fd);
		return -1;
	}
	snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) != 0 || write(fd, pid, strlen(pid)) < 0) {
		snprintf(err, err_len, "%s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd; /* kept open: closing would release the lock */
}

/* Removed while the lock is still held, so no other daemon's file goes. */
static void
unlink_pidfile(const char *state_dir)
{
	char path[PATH_MAX + 16];

	snprintf(path, sizeof(path), "%s/ftuned.pid", state_dir);
	unlink(path);
}

/* For ipc:// addresses, create the socket's directory. */
static int
socket_dir_make(const char *url, char *err, size_t err_len)
{
	char dir[PATH_MAX];
	char *slash;

	if (strncmp(url, "ipc://", 6) != 0)
		return 0;
	snprintf(dir, sizeof(dir), "%s", url + 6);
	if ((slash = strrchr(dir, '/')) == NULL || slash == dir)
		return 0;
	*slash = '\0';
	if (fs_mkdirs(dir, 0755) != 0) {
		snprintf(err, err_len, "%s: %s", dir, strerror(errno));
		return -1;
	}
	return 0;
}

/* Every connection, model file and job takes a descriptor, and the usual
 * soft limit (1024) is what one user's idle connections once exhausted:
 * raise it to the hard limit (LimitNOFILE= in the unit), and say so when
 * even that leaves little beyond the connection bounds. */
static void
nofile_raise(const struct ft_config *cfg)
{
	long long want = (long long)cfg->rpc_max_conns +
	    (cfg->remote_listen[0] ? cfg->remote_max_conns : 0) + 1024;
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			log_warn("RLIMIT_NOFILE: %s", strerror(errno));
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur != RLIM_INFINITY && (long long)rl.rlim_cur < want)
		log_warn("open file limit %llu is below the connection bounds plus 1024 (%lld): "
		    "raise LimitNOFILE or lower rpc_max_conns/remote_max_conns",
		    (unsigned long long)rl.rlim_cur, want);
}

/* Fork into the background; the parent exits once the child is serving
 * (or with the child's error), so scripts can use the daemon at once. */
static int
daemonize(int *ready_fd)
{
	int p[2];
	pid_t pid;
	char c;

	if (pipe(p) != 0 || (pid = fork()) < 0)
		return -1;
	if (pid > 0) {
		close(p[1]);
		_exit(read(p[0], &c, 1) == 1 && c == 'r' ? 0 : 1);
	}
	close(p[0]);
	if (setsid() < 0)
		return -1;
	*ready_fd = p[1];
	return 0;
}

/* The configuration file and the command line's overrides over it, read
 * the same way at start and on SIGHUP. */
struct config_source {
	const char *path;
	int explicit;                 /* -f given: the file must exist */
	const char *state_dir, *socket_url, *http;
};

static int
config_read(const struct config_source *src, struct ft_config *cfg, char *err, size_t err_len)
{
	config_defaults(cfg);
	if ((src->explicit || access(src->path, R_OK) == 0) &&
	    config_load(cfg, src->path, err, err_len) != 0)
		return -1;
	if ((src->state_dir && config_set(cfg, "state_dir", src->state_dir, err, err_len) != 0) ||
	    (src->socket_url && config_set(cfg, "socket", src->socket_url, err, err_len) != 0) ||
	    (src->http && config_set(cfg, "http_listen", src->http, err, err_len) != 0))
		return -1;
	return 0;
}

/* SIGHUP: the keys the config table marks reloadable (log_level, and the
 * remote_keys file read again); a changed key that is not reloadable is
 * logged as waiting for a restart, and a file that does not parse changes
 * nothing. */
static void
reload(const struct config_source *src, struct ftuned *d, struct rpc_server *rpc)
{
	struct auth *auth = rpc_server_auth(rpc);
	struct ft_config fresh;
	char err[PATH_MAX + 256], keys[PATH_MAX + 64] = "", kept[512];
	int n;

	if (config_read(src, &fresh, err, sizeof(err)) != 0) {
		log_error("SIGHUP: %s; configuration unchanged", err);
		return;
	}
	if (config_reload(&d->cfg, &fresh, kept, sizeof(kept)) > 0)
		log_warn("SIGHUP: %s changed but cannot be reloaded; restart ftuned to apply it", kept);
	log_init(d->cfg.log_level);
	if (auth != NULL && auth_reload(auth, d->cfg.remote_keys, &n, err, sizeof(err)) != 0)
		log_error("SIGHUP: %s; the previous remote keys stay", err);
	else if (auth != NULL)
		snprintf(keys, sizeof(keys), " and remote_keys (%d key%s from %s)", n,
		    n == 1 ? "" : "s", d->cfg.remote_keys);
	log_info("SIGHUP: log_level%s reloaded", keys);
}

static int
serve(const struct config_source *src, struct ftuned *d, struct rpc_server *rpc)
{
	uint64_t wd_usec = notify_watchdog_usec();
	struct timespec tick;
	sigset_t set;
	siginfo_t si;
	int sig;

	/* Ping at half the watchdog interval; otherwise wake once a second. */
	tick.tv_sec = wd_usec ? (time_t)(wd_usec / 2000000) : 1;
	tick.tv_nsec = wd_usec ? (long)((wd_usec / 2) % 1000000) * 1000 : 0;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	for (;;) {
		sig = sigtimedwait(&set, &si, &tick);
		if (sig == SIGTERM || sig == SIGINT) {
			log_info("signal %d: shutting down", sig);
			return 0;
		}
		if (sig == SIGHUP) {
			notify_send("RELOADING=1");
			reload(src, d, rpc);
			notify_send("READY=1");
		}
		if (wd_usec)
			notify_send("WATCHDOG=1");
	}
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "state-dir", required_argument, NULL, 'S' },
		{ "socket", required_argument, NULL, 'U' },
		{ "http", required_argument, NULL, 'H' },
		{ "version", no_argument, NULL, 'V' },
		{ "new-dashboard-token", no_argument, NULL, 'T' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct config_source src = { .path = DEFAULT_CONFIG };
	int foreground = 0, check_only = 0, verbose = 0, new_token = 0;
	int ch, lock_fd, ready_fd = -1, rc = 1;
	struct rpc_server *rpc = NULL;
	struct web_server *web = NULL;
	char err[PATH_MAX + 256];
	struct ftuned d;
	sigset_t set;

	while ((ch = getopt_long(argc, argv, "dnvf:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'd': foreground = 1; break;
		case 'n': check_only = 1; break;
		case 'v': verbose = 1; break;
		case 'f': src.path = optarg; src.explicit = 1; break;
		case 'S': src.state_dir = optarg; break;
		case 'U': src.socket_url = optarg; break;
		case 'H': src.http = optarg; break;
		case 'T': new_token = 1; break;
		case 'V': printf("ftuned %s\n", FTUNED_VERSION); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}

	memset(&d, 0, sizeof(d));
	if (config_read(&src, &d.cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "ftuned: %s\n", err);
		return 1;
	}
	/* Whatever the caller's umask (quickstart runs outside systemd), the
	 * state is the daemon's and its group's only: directories 0750, files
	 * 0640 at most. */
	umask(027);
	if (new_token) {
		char token[128];

		if (web_token_new(&d.cfg, token, sizeof(token), err, sizeof(err)) != 0) {
			fprintf(stderr, "ftuned: %s\n", err);
			return 1;
		}
		printf("%s\n", token);
		return 0;
	}
	if (check_only) {
		if (verbose)
			config_write(&d.cfg, stdout);
		printf("configuration OK\n");
		return 0;
	}
	log_init(d.cfg.log_level);
	nofile_raise(&d.cfg);
	d.training_threads = d.cfg.training_threads > 0 ? d.cfg.training_threads :
	    (int)sysconf(_SC_NPROCESSORS_ONLN);

	if (!foreground && daemonize(&ready_fd) != 0) {
		fprintf(stderr, "ftuned: cannot go to the background: %s\n", strerror(errno));
		return 1;
	}
	/* Before any thread starts, so every thread inherits the mask. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &set, NULL);

	d.started_ms = ftuned_now_ms();
	if (fs_mkdirs(d.cfg.state_dir, 0750) != 0) {
		log_error("state_dir %s: %s", d.cfg.state_dir, strerror(errno));
		return 1;
	}
	if ((lock_fd = state_lock(d.cfg.state_dir, err, sizeof(err))) < 0) {
		log_error("%s", err);
		return 1;
	}
	if (store_open(d.cfg.state_dir, &d.store, err, sizeof(err)) != 0) {
		log_error("state: %s", err);
		goto out;
	}
	if (registry_init(&d, err, sizeof(err)) != 0 || datasets_init(&d, err, sizeof(err)) != 0) {
		log_error("state: %s", err);
		goto out;
	}
	if (screen_rules_load(d.cfg.screen_rules, &d.screen, err, sizeof(err)) != 0) {
		log_error("%s", err);
		goto out;
	}
	if (audit_open(d.cfg.state_dir, &d.audit, err, sizeof(err)) != 0) {
		log_error("audit: %s", err);
		goto out;
	}
	if (uploads_start(&d, &d.uploads, err, sizeof(err)) != 0) {
		log_error("state: %s", err);
		goto out;
	}
	/* Serving first: a job the queue resumes reserves memory from it. */
	if (deploy_start(&d, &d.deploy, err, sizeof(err)) != 0) {
		log_error("%s", err);
		goto out;
	}
	if (queue_start(&d, &d.queue, err, sizeof(err)) != 0) {
		log_error("queue: %s", err);
		goto out;
	}
	/* The control socket last: a daemon that answers has every listener up
	 * (a dashboard that cannot start fails the start before anyone sees it). */
	if (socket_dir_make(d.cfg.socket_url, err, sizeof(err)) != 0 ||
	    genstream_start(&d, &d.genstream, err, sizeof(err)) != 0 ||
	    web_server_start(&d, &web, err, sizeof(err)) != 0 ||
	    rpc_server_start(&d, &rpc, err, sizeof(err)) != 0) {
		log_error("%s", err);
		goto out;
	}
	log_info("ftuned %s serving %s, dashboard %s, state %s, pid %ld",
	    FTUNED_VERSION, d.cfg.socket_url, d.http_url[0] ? d.http_url : "off",
	    d.cfg.state_dir, (long)getpid());
	notify_send("READY=1");
	if (ready_fd >= 0) {
		if (write(ready_fd, "r", 1) != 1)
			log_warn("could not signal readiness to the parent");
		close(ready_fd);
		ready_fd = -1;
	}
	rc = serve(&src, &d, rpc);
	notify_send("STOPPING=1");
out:
	deploy_stop(d.deploy);
	web_server_stop(web);
	rpc_server_stop(rpc);
	uploads_stop(d.uploads);
	genstream_stop(d.genstream);
	/* Jobs end (and release their memory) before serving is freed. */
	queue_stop(d.queue);
	deploy_free(d.deploy);
	audit_close(d.audit);
	screen_rules_free(d.screen);
	store_close(d.store);
	unlink_pidfile(d.cfg.state_dir);
	close(lock_fd);
	if (ready_fd >= 0)
		close(ready_fd);
	log_info("ftuned stopped");
	return rc;
}
