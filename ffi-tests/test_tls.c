/*
 * TLS from C (the latchkey_client_options_set_tls_* setters), against
 * redis-servers started with a TLS port and certificates made for the test
 * by tools/tls_certs.py; the same cases as tests/tls.rs and the Python and
 * Go binding tests: a good chain (a waiter on another client woken by the
 * release, so its release listener speaks TLS too), a server signed by
 * another CA, a certificate for another name, mutual TLS, the insecure
 * switch, and options that cannot work. The waiter is waited for by
 * asking until it is queued, never by sleeping a fixed time.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <string.h>
#include <sys/wait.h>

#include "check.h"

#ifndef TLS_CERTS_TOOL
#define TLS_CERTS_TOOL "tools/tls_certs.py"
#endif

#define INVALID LATCHKEY_INVALID_ARGUMENT

/* The certificates' directory (removed at exit) and a server that asks for
 * client certificates, besides test_server (which does not). */
static char certs_dir[] = "/tmp/latchkey-ffi-tls-XXXXXX";
static redis_fixture mtls_server;

/* certs_dir/file into out. */
static void cert_path(char *out, size_t size, const char *file) {
    int n = snprintf(out, size, "%s/%s", certs_dir, file);
    CHECK(n > 0 && (size_t)n < size);
}

static void remove_certs(void) {
    DIR *dir = opendir(certs_dir);
    struct dirent *entry;
    char path[512];
    if (dir == NULL) return;
    while ((entry = readdir(dir)) != NULL) {
        if (entry->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "%s/%s", certs_dir, entry->d_name);
        unlink(path);
    }
    closedir(dir);
    rmdir(certs_dir);
}

/* Runs python3 tools/tls_certs.py DIR (its JSON line goes to /dev/null). */
static void make_certs(void) {
    CHECK(mkdtemp(certs_dir) != NULL);
    atexit(remove_certs);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0) dup2(devnull, STDOUT_FILENO);
        execlp("python3", "python3", TLS_CERTS_TOOL, certs_dir, (char *)NULL);
        _exit(127);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        test_fail(__FILE__, __LINE__, "python3 " TLS_CERTS_TOOL " made the certificates",
                  "its message is above (it needs the openssl command)");
    }
}

/* A redis-server with a TLS port (tls-auth-clients `auth_clients`). */
static int start_tls_server(redis_fixture *server, const char *auth_clients) {
    char cert[512], key[512], ca[512];
    cert_path(cert, sizeof cert, "server.crt");
    cert_path(key, sizeof key, "server.key");
    cert_path(ca, sizeof ca, "ca.crt");
    const char *extra[] = {"--tls-port",        "auto", "--tls-cert-file",    cert,
                           "--tls-key-file",    key,    "--tls-ca-cert-file", ca,
                           "--tls-auth-clients", auth_clients, NULL};
    if (redis_fixture_start_with(server, extra) != 0) return -1;
    if (server->tls_port <= 0) {
        fprintf(stderr, "redis_fixture: no tls_port in the tool's answer\n");
        redis_fixture_stop(server);
        return -1;
    }
    return 0;
}

static void tls_url(char *out, size_t size, const redis_fixture *server, const char *host) {
    int n = snprintf(out, size, "rediss://%s:%d", host, server->tls_port);
    CHECK(n > 0 && (size_t)n < size);
}

/* Which TLS options a client gets; NULL / false leaves one unset. */
struct tls {
    const char *ca_file;     /* a file of certs_dir */
    const char *client_cert; /* with client_key */
    const char *client_key;
    const char *server_name;
    bool insecure;
};

/* Client options with short timeouts and the TLS options of `tls`. */
static latchkey_client_options *tls_options(const struct tls *tls) {
    latchkey_client_options *options = NULL;
    char path[512], key[512];
    CHECK_OK(latchkey_client_options_new(&options, NULL));
    CHECK_OK(latchkey_client_options_set_connect_timeout_ms(options, 5000, NULL));
    CHECK_OK(latchkey_client_options_set_command_timeout_ms(options, 5000, NULL));
    if (tls->ca_file != NULL) {
        /* A path outside certs_dir is given as is. */
        if (tls->ca_file[0] == '/') {
            snprintf(path, sizeof path, "%s", tls->ca_file);
        } else {
            cert_path(path, sizeof path, tls->ca_file);
        }
        CHECK_OK(latchkey_client_options_set_tls_ca_file(options, path, NULL));
    }
    if (tls->client_cert != NULL) {
        cert_path(path, sizeof path, tls->client_cert);
        cert_path(key, sizeof key, tls->client_key);
        CHECK_OK(latchkey_client_options_set_tls_client_cert(options, path, key, NULL));
    }
    if (tls->server_name != NULL) {
        CHECK_OK(latchkey_client_options_set_tls_server_name(options, tls->server_name, NULL));
    }
    if (tls->insecure) {
        CHECK_OK(latchkey_client_options_set_tls_insecure_skip_verify(options, true, NULL));
    }
    return options;
}

static latchkey_client *open_tls(const char *url, const struct tls *tls) {
    latchkey_client_options *options = tls_options(tls);
    latchkey_client *client = NULL;
    CHECK_OK(latchkey_client_open(url, options, &client, NULL));
    latchkey_client_options_free(options);
    return client;
}

/* Checks that err's status is `status` and its message has every needle
 * (a NULL-terminated list); frees err. */
static void check_error(int line, latchkey_error *err, latchkey_status status, ...) {
    char detail[2048];
    const char *message = latchkey_error_message(err);
    va_list needles;
    if (latchkey_error_status(err) != status) {
        snprintf(detail, sizeof detail, "status %s, expected %s: %s",
                 latchkey_status_name(latchkey_error_status(err)), latchkey_status_name(status),
                 message ? message : "(no message)");
        test_fail(__FILE__, line, "the error's status", detail);
    }
    va_start(needles, status);
    for (const char *needle = va_arg(needles, const char *); needle != NULL;
         needle = va_arg(needles, const char *)) {
        if (message == NULL || strstr(message, needle) == NULL) {
            snprintf(detail, sizeof detail, "\"%s\" lacks \"%s\"", message ? message : "", needle);
            va_end(needles);
            test_fail(__FILE__, line, "the error's message", detail);
        }
    }
    va_end(needles);
    latchkey_error_free(err);
}

struct waiter {
    latchkey_lock *lock;
    latchkey_status status;
    uint64_t fencing_token;
};

/* Waits for the lock (30 s at most), notes its token, gives it back. */
static void *wait_for_lock(void *arg) {
    struct waiter *w = arg;
    latchkey_guard *guard = NULL;
    w->status = latchkey_lock_acquire(w->lock, 30000, NULL, &guard, NULL);
    if (w->status == LATCHKEY_OK) w->status = latchkey_guard_fencing_token(guard, &w->fencing_token, NULL);
    if (w->status == LATCHKEY_OK) w->status = latchkey_guard_release(guard, NULL);
    latchkey_guard_free(guard);
    return NULL;
}

/* Asks (over TLS) until someone waits for `name` (30 s at most). */
static void wait_until_queued(latchkey_client *client, const char *name) {
    for (int tries = 0;; tries++) {
        latchkey_lock_info info;
        latchkey_queued_waiter *waiters = NULL;
        size_t listed = 0;
        uint64_t total = 0;
        CHECK_OK(latchkey_client_inspect_queue(client, name, &info, &waiters, &listed, &total, NULL));
        CHECK_OK(latchkey_queued_waiters_free(waiters, listed));
        if (listed > 0) return;
        CHECK(tries < 3000);
        struct timespec pause = {0, 10 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
}

static void locks_are_taken_handed_over_and_released_over_tls(void) {
    char url_name[128], url_ip[128];
    const struct tls tls = {.ca_file = "ca.crt"};
    tls_url(url_name, sizeof url_name, &test_server, "localhost");
    tls_url(url_ip, sizeof url_ip, &test_server, "127.0.0.1");
    latchkey_client *holder = open_tls(url_name, &tls);
    latchkey_client *waiter = open_tls(url_ip, &tls);
    latchkey_lock *lock = NULL, *other = NULL;
    latchkey_guard *guard = NULL;
    uint64_t first_token = 0;
    bool locked = true;

    CHECK_OK(latchkey_lock_new(holder, "tls-job", NULL, &lock, NULL));
    CHECK_OK(latchkey_lock_new(waiter, "tls-job", NULL, &other, NULL));
    CHECK_OK(latchkey_lock_acquire(lock, 5000, NULL, &guard, NULL));
    CHECK_OK(latchkey_guard_fencing_token(guard, &first_token, NULL));
    CHECK_OK(latchkey_guard_check(guard, NULL));

    struct waiter w = {other, LATCHKEY_PANIC, 0};
    pthread_t thread;
    CHECK(pthread_create(&thread, NULL, wait_for_lock, &w) == 0);
    wait_until_queued(holder, "tls-job");
    CHECK_OK(latchkey_guard_release(guard, NULL));
    /* The waiter, on the other client, was woken by the release on its own
     * TLS release listener. */
    CHECK(pthread_join(thread, NULL) == 0);
    CHECK_OK(w.status);
    CHECK(w.fencing_token > first_token);
    CHECK_OK(latchkey_client_is_locked(holder, "tls-job", &locked, NULL));
    CHECK(!locked);
    test_pass("a lock is taken, handed over to a waiter and released over TLS (CA file)");

    latchkey_guard_free(guard);
    latchkey_lock_free(other);
    latchkey_lock_free(lock);
    latchkey_client_free(waiter);
    latchkey_client_free(holder);
}

static void a_server_signed_by_another_ca_is_refused_naming_the_cause(void) {
    char url[128];
    const struct tls tls = {.ca_file = "other-ca.crt"};
    tls_url(url, sizeof url, &test_server, "localhost");
    latchkey_client *client = open_tls(url, &tls);
    latchkey_lock *lock = NULL;
    latchkey_guard *guard = NULL;
    latchkey_error *err = NULL;
    CHECK_OK(latchkey_lock_new(client, "x", NULL, &lock, NULL));
    CHECK_STATUS(LATCHKEY_CONNECTION, latchkey_lock_try_acquire(lock, &guard, &err));
    CHECK(guard == NULL);
    /* The thread's last error is the same message. */
    CHECK(strstr(latchkey_last_error(), "not signed by a CA this client trusts") != NULL);
    check_error(__LINE__, err, LATCHKEY_CONNECTION, "not signed by a CA this client trusts",
                "tls_ca_file", (const char *)NULL);
    test_pass("a server signed by another CA is refused, and the message says so");
    latchkey_lock_free(lock);
    latchkey_client_free(client);
}

static void the_certificate_must_name_the_server_or_the_name_given(void) {
    char url[128];
    bool locked = true;
    latchkey_error *err = NULL;
    const struct tls wrong = {.ca_file = "ca.crt", .server_name = "redis.elsewhere.test"};
    const struct tls right = {.ca_file = "ca.crt", .server_name = "localhost"};
    tls_url(url, sizeof url, &test_server, "127.0.0.1");
    latchkey_client *client = open_tls(url, &wrong);
    CHECK_STATUS(LATCHKEY_CONNECTION, latchkey_client_is_locked(client, "x", &locked, &err));
    check_error(__LINE__, err, LATCHKEY_CONNECTION, "not valid for the host name",
                (const char *)NULL);
    latchkey_client_free(client);
    client = open_tls(url, &right);
    CHECK_OK(latchkey_client_is_locked(client, "x", &locked, NULL));
    CHECK(!locked);
    latchkey_client_free(client);
    test_pass("the certificate must carry the server's name, or the one given");
}

static void mutual_tls_needs_the_client_certificate(void) {
    char url[128];
    bool locked = true;
    latchkey_error *err = NULL;
    const struct tls without = {.ca_file = "ca.crt"};
    const struct tls with = {
        .ca_file = "ca.crt", .client_cert = "client.crt", .client_key = "client.key"};
    CHECK(start_tls_server(&mtls_server, "yes") == 0);
    tls_url(url, sizeof url, &mtls_server, "localhost");

    latchkey_client *client = open_tls(url, &without);
    CHECK_STATUS(LATCHKEY_CONNECTION, latchkey_client_is_locked(client, "x", &locked, &err));
    check_error(__LINE__, err, LATCHKEY_CONNECTION, (const char *)NULL);
    latchkey_client_free(client);

    client = open_tls(url, &with);
    latchkey_lock *lock = NULL;
    latchkey_guard *guard = NULL;
    CHECK_OK(latchkey_lock_new(client, "mtls", NULL, &lock, NULL));
    CHECK_OK(latchkey_lock_acquire(lock, 5000, NULL, &guard, NULL));
    CHECK_OK(latchkey_guard_release(guard, NULL));
    latchkey_guard_free(guard);
    latchkey_lock_free(lock);
    latchkey_client_free(client);
    test_pass("mutual TLS: refused without the client certificate, locks with it");
}

static void skipping_verification_accepts_any_certificate(void) {
    char url[128];
    bool locked = true;
    const struct tls tls = {.server_name = "redis.elsewhere.test", .insecure = true};
    tls_url(url, sizeof url, &test_server, "127.0.0.1");
    latchkey_client *client = open_tls(url, &tls);
    CHECK_OK(latchkey_client_is_locked(client, "x", &locked, NULL));
    CHECK(!locked);
    latchkey_client_free(client);
    test_pass("the insecure switch accepts a certificate for another name, from no CA given");
}

/* Opening with `url` and `tls` fails with LATCHKEY_INVALID_ARGUMENT, the
 * message holding `needle`. */
static void check_refused(int line, const char *url, const struct tls *tls, const char *needle) {
    latchkey_client_options *options = tls_options(tls);
    latchkey_client *client = (latchkey_client *)&client;
    latchkey_error *err = NULL;
    latchkey_status status = latchkey_client_open(url, options, &client, &err);
    latchkey_client_options_free(options);
    if (status != INVALID) {
        char detail[256];
        snprintf(detail, sizeof detail, "%s with its TLS options returned %s", url,
                 latchkey_status_name(status));
        test_fail(__FILE__, line, "the open is refused", detail);
    }
    CHECK(client == (latchkey_client *)&client);
    check_error(line, err, INVALID, needle, (const char *)NULL);
}

static void bad_tls_options_fail_the_open_and_name_what_is_wrong(void) {
    const char *tls_url_ = "rediss://localhost:6380";
    const struct tls ca = {.ca_file = "ca.crt"};
    check_refused(__LINE__, test_server.url, &ca, "no URL is rediss://");
    const struct tls insecure = {.insecure = true};
    check_refused(__LINE__, test_server.url, &insecure, "no URL is rediss://");
    const struct tls missing = {.ca_file = "/no/such/ca.pem"};
    check_refused(__LINE__, tls_url_, &missing, "/no/such/ca.pem");
    const struct tls not_a_cert = {.ca_file = "client.key"};
    check_refused(__LINE__, tls_url_, &not_a_cert, "no PEM certificate");
    const struct tls mismatched = {
        .ca_file = "ca.crt", .client_cert = "client.crt", .client_key = "server.key"};
    check_refused(__LINE__, tls_url_, &mismatched, "do not go together");
    const struct tls bad_name = {.ca_file = "ca.crt", .server_name = "not a name"};
    check_refused(__LINE__, tls_url_, &bad_name, "not a valid TLS server name");

    /* Sentinel: every URL rediss:// (the nodes they lead to too) or none. */
    const char *mixed[] = {"rediss://localhost:26379", "redis://localhost:26380"};
    latchkey_client *client = (latchkey_client *)&client;
    latchkey_error *err = NULL;
    CHECK_STATUS(INVALID, latchkey_client_open_sentinel(mixed, 2, "m", NULL, &client, &err));
    CHECK(client == (latchkey_client *)&client);
    check_error(__LINE__, err, INVALID, "rediss:// or none", (const char *)NULL);

    /* The setters' own arguments. */
    latchkey_client_options *options = NULL;
    CHECK_OK(latchkey_client_options_new(&options, NULL));
    CHECK_STATUS(INVALID, latchkey_client_options_set_tls_ca_file(NULL, "ca.crt", NULL));
    CHECK_STATUS(INVALID, latchkey_client_options_set_tls_ca_file(options, NULL, NULL));
    CHECK_STATUS(INVALID, latchkey_client_options_set_tls_client_cert(options, "c", NULL, NULL));
    CHECK_STATUS(INVALID, latchkey_client_options_set_tls_client_cert(options, NULL, "k", NULL));
    CHECK_STATUS(INVALID, latchkey_client_options_set_tls_server_name(options, NULL, NULL));
    CHECK_STATUS(INVALID, latchkey_client_options_set_tls_insecure_skip_verify(NULL, true, NULL));
    latchkey_client_options_free(options);
    test_pass("TLS options that cannot work fail the open with LATCHKEY_INVALID_ARGUMENT");
}

int main(void) {
    make_certs();
    test_server_owner = getpid();
    if (start_tls_server(&test_server, "no") != 0) return 1;
    locks_are_taken_handed_over_and_released_over_tls();
    a_server_signed_by_another_ca_is_refused_naming_the_cause();
    the_certificate_must_name_the_server_or_the_name_given();
    mutual_tls_needs_the_client_certificate();
    skipping_verification_accepts_any_certificate();
    bad_tls_options_fail_the_open_and_name_what_is_wrong();
    test_wait_for_library_threads();
    redis_fixture_stop(&mtls_server);
    test_stop_server();
    return 0;
}
