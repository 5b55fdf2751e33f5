/*
 * A private redis-server for one test program: a free port on 127.0.0.1,
 * a temporary directory, no persistence. Started before any thread of the
 * test, stopped (and its directory removed) at the end. The server is
 * started by tools/redis_fixture.py, the fixture every test suite uses,
 * which stays with it and stops it when this process goes away.
 */
#ifndef LATCHKEY_REDIS_FIXTURE_H
#define LATCHKEY_REDIS_FIXTURE_H

#include <sys/types.h>

typedef struct redis_fixture {
    pid_t pid;
    int port;
    int tls_port;   /* with "--tls-port auto" among the extra arguments, else 0 */
    char dir[256];  /* the server's temporary directory, also usable by tests */
    char url[64];   /* "redis://127.0.0.1:PORT" */
    pid_t tool_pid; /* tools/redis_fixture.py, which owns the server */
    int tool_fd;    /* its stdin: "stop", or end of input, stops the server */
} redis_fixture;

/*
 * Starts redis-server (or $REDIS_SERVER) and returns once it logged
 * "Ready to accept connections". Returns 0, or -1 with a message on stderr.
 */
int redis_fixture_start(redis_fixture *fixture);

/*
 * The same with extra redis-server arguments (a NULL-terminated array, at
 * most REDIS_FIXTURE_MAX_EXTRA of them), e.g. "--tls-port", "auto", ...:
 * the tool then picks a free TLS port too, set in tls_port.
 */
#define REDIS_FIXTURE_MAX_EXTRA 32
int redis_fixture_start_with(redis_fixture *fixture, const char *const *extra);

/* Stops the server and removes its directory. Safe to call twice. */
void redis_fixture_stop(redis_fixture *fixture);

#endif
