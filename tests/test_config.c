/* test_config.c - the config table: defaults, parsing, and errors that
 * name the line. */
#include <stdlib.h>
#include <unistd.h>

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
