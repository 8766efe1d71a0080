/* test_config.c - the config table: defaults, parsing, and errors that
 * name the line. */
#include <stdlib.h>
#include <unistd.h>

#include <civetweb.h>

#include "config.h"
#include "ft_test.h"
#include "log.h"

static const char *
write_file(const char *text)
{
	static char path[] = "/tmp/ft_test_config_XXXXXX";
	int fd;

	strcpy(path, "/tmp/ft_test_config_XXXXXX");
	fd = mkstemp(path);
	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		abort();
	close(fd);
	return path;
}

static int
load(struct ft_config *cfg, const char *text, char *err, size_t len)
{
	const char *path = write_file(text);
	int rc;

	config_defaults(cfg);
	rc = config_load(cfg, path, err, len);
	unlink(path);
	return rc;
}

int
main(void)
{
	struct ft_config cfg;
	char err[512];

	config_defaults(&cfg);
	CHECK_STR(cfg.state_dir, "/var/lib/ftuned");
	CHECK_STR(cfg.http_listen, "127.0.0.1:8631");
	CHECK(cfg.rpc_contexts == 8);
	CHECK(cfg.rpc_max_message == 16 << 20);
	CHECK(cfg.log_level == LOG_LEVEL_INFO);

	CHECK(load(&cfg, "# comment\n\nstate_dir = /srv/ft\n  rpc_contexts=3  \n"
	    "rpc_max_message = 2M\nlog_level = debug\nhttp_listen =\n", err, sizeof(err)) == 0);
	CHECK_STR(cfg.state_dir, "/srv/ft");
	CHECK(cfg.rpc_contexts == 3);
	CHECK(cfg.rpc_max_message == 2 << 20);
	CHECK(cfg.log_level == LOG_LEVEL_DEBUG);
	CHECK_STR(cfg.http_listen, "");

	CHECK(load(&cfg, "state_dir = /a\nbogus = 1\n", err, sizeof(err)) != 0);
	CHECK(strstr(err, ":2: unknown key 'bogus'") != NULL);
	CHECK(load(&cfg, "rpc_contexts = 0\n", err, sizeof(err)) != 0);
	CHECK(strstr(err, ":1: rpc_contexts: 0 is out of range [1, 256]") != NULL);
	CHECK(load(&cfg, "\nhttp_threads = lots\n", err, sizeof(err)) != 0);
	CHECK(strstr(err, ":2: http_threads: 'lots' is not a number") != NULL);
	CHECK(load(&cfg, "rpc_max_message = 5X\n", err, sizeof(err)) != 0);
	CHECK(strstr(err, "is not a size") != NULL);
	CHECK(load(&cfg, "rpc_max_message = 99999999999G\n", err, sizeof(err)) != 0);
	CHECK(load(&cfg, "log_level = loud\n", err, sizeof(err)) != 0);
	CHECK(strstr(err, "not one of debug, info, warn, error") != NULL);
	CHECK(load(&cfg, "just words\n", err, sizeof(err)) != 0);
	CHECK(strstr(err, ":1: expected 'key = value'") != NULL);

	/* Every value the daemon would refuse at start (or misuse) is refused
	 * when the file is read, naming its line: ftuned -n, start and SIGHUP
	 * all read through config_load. */
	static const struct { const char *line, *why; } refused[] = {
		{ "http_auth = basic", "http_auth: 'basic': expected auto or token" },
		{ "http_auth =", "http_auth: '': expected auto or token" },
		{ "remote_listen = ipc:///tmp/r.sock", "remote_listen: 'ipc:///tmp/r.sock': expected tcp://ADDR:PORT" },
		{ "remote_listen = tcp://127.0.0.1", "remote_listen: 'tcp://127.0.0.1': expected tcp://ADDR:PORT" },
		{ "remote_listen = 127.0.0.1:8632", "remote_listen: '127.0.0.1:8632' is not an nng address" },
		{ "socket = ws://127.0.0.1:9/x", "socket: 'ws://127.0.0.1:9/x': expected ipc:///PATH or tcp://ADDR:PORT" },
		{ "socket = /run/ftuned.sock", "socket: '/run/ftuned.sock' is not an nng address" },
		{ "http_listen = localhost:8631", "http_listen: 'localhost:8631': expected ADDR:PORT" },
		{ "http_listen = 127.0.0.1:70000", "http_listen: '127.0.0.1:70000': expected ADDR:PORT" },
		{ "http_listen = 127.0.0.1", "http_listen: '127.0.0.1': expected ADDR:PORT" },
		{ "state_dir = var/lib/ftuned", "state_dir: 'var/lib/ftuned' is not an absolute path" },
		{ "web_root = web", "web_root: 'web' is not an absolute path" },
		{ "import_roots = /srv/a:srv/b", "import_roots: 'srv/b' is not an absolute path" },
		{ "export_roots = out", "export_roots: 'out' is not an absolute path" },
		{ "remote_keys = keys", "remote_keys: 'keys' is not an absolute path" },
		{ "admin_group = ft_no_such_group", "admin_group: no group 'ft_no_such_group'" },
		{ "http_tls_certificate = /nonexistent/cert.pem", "http_tls_certificate: /nonexistent/cert.pem: No such file" },
		{ "http_tls_certificate = cert.pem", "http_tls_certificate: 'cert.pem' is not an absolute path" },
	};
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		char text[256], want[256];

		snprintf(text, sizeof(text), "# line 1\n%s\n", refused[i].line);
		snprintf(want, sizeof(want), ":2: %s", refused[i].why);
		CHECK(load(&cfg, text, err, sizeof(err)) != 0);
		if (strstr(err, want) == NULL)
			fprintf(stderr, "'%s': got '%s', want '%s'\n", refused[i].line, err, want);
		CHECK(strstr(err, want) != NULL);
	}
	/* And the forms the daemon uses are accepted. */
	CHECK(load(&cfg, "remote_listen = tcp://127.0.0.1:0\nsocket = tcp://[::1]:5555\n"
	    "http_listen = [::1]:8631\nhttp_auth = token\nadmin_group = root\n"
	    "import_roots = /srv/a:/\nexport_roots =\n", err, sizeof(err)) == 0);
	CHECK_STR(cfg.remote_listen, "tcp://127.0.0.1:0");
	CHECK_STR(cfg.admin_group, "root");
	/* A readable certificate passes where civetweb has TLS, and is refused
	 * (as the daemon would) where it has none. */
	CHECK((load(&cfg, "http_tls_certificate = /etc/passwd\n", err, sizeof(err)) == 0) ==
	    (mg_check_feature(2) != 0));
	CHECK(config_listen_loopback("[::1]:8631", err, sizeof(err)) == 1);
	CHECK(config_listen_loopback("127.0.0.9:0", err, sizeof(err)) == 1);
	CHECK(config_listen_loopback("0.0.0.0:8631", err, sizeof(err)) == 0);

	/* SIGHUP: reloadable keys are copied; a changed key that is not
	 * reloadable is named and keeps its running value. */
	{
		struct ft_config fresh;
		char kept[256];

		config_defaults(&cfg);
		config_defaults(&fresh);
		CHECK(config_reload(&cfg, &fresh, kept, sizeof(kept)) == 0);
		CHECK_STR(kept, "");
		CHECK(config_set(&fresh, "log_level", "debug", err, sizeof(err)) == 0);
		CHECK(config_set(&fresh, "remote_keys", "/etc/keys2", err, sizeof(err)) == 0);
		CHECK(config_set(&fresh, "http_threads", "9", err, sizeof(err)) == 0);
		CHECK(config_set(&fresh, "socket", "ipc:///tmp/other.sock", err, sizeof(err)) == 0);
		CHECK(config_set(&fresh, "memory_budget", "1G", err, sizeof(err)) == 0);
		CHECK(config_reload(&cfg, &fresh, kept, sizeof(kept)) == 3);
		CHECK_STR(kept, "socket, http_threads, memory_budget");
		CHECK(cfg.log_level == LOG_LEVEL_DEBUG);
		CHECK_STR(cfg.remote_keys, "/etc/keys2");
		CHECK(cfg.http_threads == 16);
		CHECK_STR(cfg.socket_url, "ipc:///run/ftuned/ftuned.sock");
		CHECK(cfg.memory_budget == 0);
	}

	config_defaults(&cfg);
	CHECK(config_set(&cfg, "socket", "ipc:///tmp/x.sock", err, sizeof(err)) == 0);
	CHECK_STR(cfg.socket_url, "ipc:///tmp/x.sock");
	CHECK(config_set(&cfg, "nope", "1", err, sizeof(err)) != 0);
	CHECK(config_load(&cfg, "/nonexistent/ftuned.conf", err, sizeof(err)) != 0);
	CHECK(strstr(err, "/nonexistent/ftuned.conf: No such file") != NULL);

	/* The documented file that config_write prints parses back to the same values. */
	{
		char path[] = "/tmp/ft_test_cfgw_XXXXXX";
		struct ft_config back;
		int fd = mkstemp(path);
		FILE *f = fdopen(fd, "w");

		config_defaults(&cfg);
		CHECK(config_set(&cfg, "http_threads", "7", err, sizeof(err)) == 0);
		config_write(&cfg, f);
		fclose(f);
		config_defaults(&back);
		CHECK(config_load(&back, path, err, sizeof(err)) == 0);
		CHECK(back.http_threads == 7);
		CHECK(memcmp(&back, &cfg, sizeof(cfg)) == 0);
		unlink(path);
	}
	return ft_test_done();
}
