/* The chaos checker's C worker: the same loop as the Rust worker
 * (tools/chaos/workers/rust/main.rs) through the C ABI. Acquire (blocking,
 * with a timeout, one try, or cancelled from another thread), a fenced
 * write of the fencing token to the storage server, hold, check, release;
 * every call goes to a JSON-lines history with CLOCK_MONOTONIC times.
 *
 * usage: c-worker --deployment SPEC --storage URL --names A,B --ttl-ms N
 *        --seed N --id ID --history FILE --until-ns N
 *        [--command-timeout-ms N] [--long-percent N] [--renew-percent N] [--fair 0|1] [--semaphore N]
 * With --fair 1 every lock is fair (latchkey_lock_options_set_fair) and every
 * acquire line says "fair":true. With --semaphore N (N > 0) every name is a
 * semaphore of N permits (latchkey_semaphore_new) and each hold takes 1 of
 * them, sometimes 2; its acquire line says "size":N,"permits":P.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <latchkey.h>

#define MAX_NAMES 8
#define MAX_URLS 16

static int history_fd = -1;
static const char *worker_id = "c";
static pthread_mutex_t history_mutex = PTHREAD_MUTEX_INITIALIZER;

static uint64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t wall_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* splitmix64: a seed replays the same operations. */
static uint64_t rng_state;
static uint64_t rng_next(void) {
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static uint64_t rng_below(uint64_t n) { return n ? rng_next() % n : 0; }

/* Appends `text` as a JSON string (the text comes from us or the library). */
static void json_string(char *out, size_t cap, const char *text) {
    size_t n = strlen(out);
    if (n + 2 >= cap) return;
    out[n++] = '"';
    for (const char *p = text ? text : ""; *p && n + 8 < cap; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"' || c == '\\') {
            out[n++] = '\\';
            out[n++] = (char)c;
        } else if (c < 0x20) {
            n += (size_t)snprintf(out + n, cap - n, "\\u%04x", c);
        } else {
            out[n++] = (char)c;
        }
    }
    out[n++] = '"';
    out[n] = '\0';
}

/* One history line: `fields` is the JSON members after the common ones. */
static void log_line(const char *fields) {
    char line[8192];
    int n = snprintf(line, sizeof line, "{\"w\":\"%s\",\"lang\":\"c\",\"wall\":%" PRIu64 "%s}\n",
                     worker_id, wall_ns(), fields);
    if (n <= 0) return;
    if ((size_t)n >= sizeof line) n = (int)sizeof line - 1;
    pthread_mutex_lock(&history_mutex);
    ssize_t written = write(history_fd, line, (size_t)n);
    (void)written;
    pthread_mutex_unlock(&history_mutex);
}

static const char *status_kind(latchkey_status status) {
    switch (status) {
        case LATCHKEY_TIMEOUT: return "Timeout";
        case LATCHKEY_NOT_HELD: return "NotHeld";
        case LATCHKEY_LOST: return "Lost";
        case LATCHKEY_CANCELLED: return "Cancelled";
        case LATCHKEY_CONNECTION: return "Connection";
        case LATCHKEY_SERVER: return "Server";
        case LATCHKEY_NO_QUORUM: return "NoQuorum";
        case LATCHKEY_INVALID_ARGUMENT: return "InvalidArgument";
        default: return "Other";
    }
}

static void on_lost(void *user, const char *name, const char *owner_token, uint64_t fence,
                    const char *reason) {
    (void)user;
    char fields[4096] = ",\"op\":\"lost\",\"name\":";
    json_string(fields, sizeof fields, name);
    strcat(fields, ",\"hold\":");
    json_string(fields, sizeof fields, owner_token);
    size_t n = strlen(fields);
    snprintf(fields + n, sizeof fields - n, ",\"fence\":%" PRIu64 ",\"t\":%" PRIu64 ",\"reason\":",
             fence, mono_ns());
    json_string(fields, sizeof fields, reason);
    log_line(fields);
}

struct canceller {
    latchkey_cancel *cancel;
    uint64_t after_ms;
    pthread_mutex_t mutex;
    pthread_cond_t done_cond;
    int done;
};

static void *cancel_later(void *arg) {
    struct canceller *c = arg;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    uint64_t ns = (uint64_t)until.tv_nsec + c->after_ms * 1000000u;
    until.tv_sec += (time_t)(ns / 1000000000u);
    until.tv_nsec = (long)(ns % 1000000000u);
    pthread_mutex_lock(&c->mutex);
    while (!c->done) {
        if (pthread_cond_timedwait(&c->done_cond, &c->mutex, &until) == ETIMEDOUT) break;
    }
    pthread_mutex_unlock(&c->mutex);
    latchkey_cancel_trigger(c->cancel, NULL);
    return NULL;
}

static int split(char *text, char **parts, int max) {
    int n = 0;
    for (char *p = strtok(text, ","); p && n < max; p = strtok(NULL, ",")) parts[n++] = p;
    return n;
}

static latchkey_status open_client(char *spec, const latchkey_client_options *options,
                                   latchkey_client **client, latchkey_error **err) {
    char *urls[MAX_URLS];
    char *rest = strchr(spec, ':');
    if (!rest) return LATCHKEY_INVALID_ARGUMENT;
    *rest++ = '\0';
    if (strcmp(spec, "single") == 0) return latchkey_client_open(rest, options, client, err);
    if (strcmp(spec, "redlock") == 0) {
        int n = split(rest, urls, MAX_URLS);
        return latchkey_client_open_redlock((const char *const *)urls, (size_t)n, options, client, err);
    }
    if (strcmp(spec, "cluster") == 0) {
        int n = split(rest, urls, MAX_URLS);
        return latchkey_client_open_cluster((const char *const *)urls, (size_t)n, options, client, err);
    }
    if (strcmp(spec, "sentinel") == 0) {
        char *list = strchr(rest, ':');
        if (!list) return LATCHKEY_INVALID_ARGUMENT;
        *list++ = '\0';
        int n = split(list, urls, MAX_URLS);
        return latchkey_client_open_sentinel((const char *const *)urls, (size_t)n, rest, options,
                                             client, err);
    }
    return LATCHKEY_INVALID_ARGUMENT;
}

static const char *arg(int argc, char **argv, const char *key, const char *fallback) {
    for (int i = 1; i + 1 < argc; i += 2)
        if (strncmp(argv[i], "--", 2) == 0 && strcmp(argv[i] + 2, key) == 0) return argv[i + 1];
    return fallback;
}

static void sleep_ms(uint64_t ms) {
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

int main(int argc, char **argv) {
    const char *spec_arg = arg(argc, argv, "deployment", NULL);
    const char *storage_url = arg(argc, argv, "storage", NULL);
    const char *names_arg = arg(argc, argv, "names", NULL);
    const char *history = arg(argc, argv, "history", NULL);
    const char *ttl_arg = arg(argc, argv, "ttl-ms", NULL);
    const char *until_arg = arg(argc, argv, "until-ns", NULL);
    if (!spec_arg || !storage_url || !names_arg || !history || !ttl_arg || !until_arg) {
        fprintf(stderr, "usage: c-worker --deployment SPEC --storage URL --names A,B --ttl-ms N "
                        "--seed N --id ID --history FILE --until-ns N\n");
        return 2;
    }
    worker_id = arg(argc, argv, "id", "c");
    rng_state = strtoull(arg(argc, argv, "seed", "1"), NULL, 10);
    uint64_t ttl_ms = strtoull(ttl_arg, NULL, 10);
    uint64_t until = strtoull(until_arg, NULL, 10);
    uint64_t timeout_ms = strtoull(arg(argc, argv, "command-timeout-ms", "1000"), NULL, 10);
    uint64_t long_percent = strtoull(arg(argc, argv, "long-percent", "15"), NULL, 10);
    if (long_percent > 85) long_percent = 85;
    uint64_t renew_percent = strtoull(arg(argc, argv, "renew-percent", "70"), NULL, 10);
    /* Whether every lock is fair (first come, first served). */
    bool fair = strtoull(arg(argc, argv, "fair", "0"), NULL, 10) != 0;
    /* Semaphores of this size instead of locks (0: locks). */
    uint32_t sem_size = (uint32_t)strtoull(arg(argc, argv, "semaphore", "0"), NULL, 10);
    history_fd = open(history, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
    if (history_fd < 0) {
        perror(history);
        return 2;
    }

    latchkey_error *err = NULL;
    latchkey_client_options *copts = NULL;
    latchkey_client *client = NULL, *storage = NULL;
    char spec[4096], names_buf[1024];
    snprintf(spec, sizeof spec, "%s", spec_arg);
    snprintf(names_buf, sizeof names_buf, "%s", names_arg);
    if (latchkey_client_options_new(&copts, NULL) != LATCHKEY_OK ||
        latchkey_client_options_set_connect_timeout_ms(copts, timeout_ms, NULL) != LATCHKEY_OK ||
        latchkey_client_options_set_command_timeout_ms(copts, timeout_ms, NULL) != LATCHKEY_OK ||
        open_client(spec, copts, &client, &err) != LATCHKEY_OK ||
        latchkey_client_open(storage_url, copts, &storage, &err) != LATCHKEY_OK) {
        fprintf(stderr, "c-worker: %s\n", err ? latchkey_error_message(err) : "cannot open clients");
        return 2;
    }
    char *names[MAX_NAMES];
    int name_count = split(names_buf, names, MAX_NAMES);
    /* Per name: a lock renewed by the watchdog [0] and one that is not [1]. */
    latchkey_lock *locks[MAX_NAMES][2] = {{NULL}};
    latchkey_semaphore *sems[MAX_NAMES][2] = {{NULL}};
    for (int i = 0; i < name_count; i++) {
        for (int renewed = 0; renewed < 2; renewed++) {
            latchkey_lock_options *lopts = NULL;
            if (latchkey_lock_options_new(&lopts, NULL) != LATCHKEY_OK ||
                latchkey_lock_options_set_ttl_ms(lopts, ttl_ms, NULL) != LATCHKEY_OK ||
                latchkey_lock_options_set_auto_renew(lopts, renewed == 0, NULL) != LATCHKEY_OK ||
                latchkey_lock_options_set_fair(lopts, fair, NULL) != LATCHKEY_OK ||
                latchkey_lock_options_set_on_lost(lopts, on_lost, NULL, NULL, NULL) != LATCHKEY_OK ||
                (sem_size ? latchkey_semaphore_new(client, names[i], sem_size, lopts, &sems[i][renewed], &err)
                          : latchkey_lock_new(client, names[i], lopts, &locks[i][renewed], &err)) != LATCHKEY_OK) {
                fprintf(stderr, "c-worker: cannot make lock %s\n", names[i]);
                return 2;
            }
            latchkey_lock_options_free(lopts);
        }
    }
    char fields[4096];
    snprintf(fields, sizeof fields, ",\"op\":\"start\",\"t\":%" PRIu64, mono_ns());
    log_line(fields);
    for (uint64_t seq = 1; mono_ns() < until; seq++) {
        int which = (int)rng_below((uint64_t)name_count);
        const char *name = names[which];
        int renew = rng_below(100) < renew_percent;
        latchkey_lock *lock = locks[which][renew ? 0 : 1];
        latchkey_semaphore *sem = sems[which][renew ? 0 : 1];
        uint32_t permits = sem_size > 1 && rng_below(100) < 25 ? 2 : 1;
        uint64_t roll = rng_below(100);
        const char *mode = roll < 10 ? "blocking" : roll < 60 ? "timeout" : roll < 85 ? "try" : "cancel";
        uint64_t wait_ms = 100 + rng_below(3 * ttl_ms);
        uint64_t cancel_after = rng_below(2 * ttl_ms);
        latchkey_guard *guard = NULL;
        latchkey_error *aerr = NULL;
        uint64_t t0 = mono_ns();
        latchkey_status status;
        int64_t deadline = -1;
        if (strcmp(mode, "blocking") == 0) {
            status = sem ? latchkey_semaphore_acquire(sem, permits, -1, NULL, &guard, &aerr)
                         : latchkey_lock_acquire(lock, -1, NULL, &guard, &aerr);
        } else if (strcmp(mode, "try") == 0) {
            deadline = 0;
            status = sem ? latchkey_semaphore_try_acquire(sem, permits, &guard, &aerr)
                         : latchkey_lock_try_acquire(lock, &guard, &aerr);
        } else if (strcmp(mode, "timeout") == 0) {
            deadline = (int64_t)wait_ms;
            status = sem ? latchkey_semaphore_acquire(sem, permits, (int64_t)wait_ms, NULL, &guard, &aerr)
                         : latchkey_lock_acquire(lock, (int64_t)wait_ms, NULL, &guard, &aerr);
        } else {
            deadline = (int64_t)(wait_ms < cancel_after ? wait_ms : cancel_after);
            struct canceller c = {NULL, cancel_after, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
            pthread_t thread;
            latchkey_cancel_new(&c.cancel, NULL);
            pthread_create(&thread, NULL, cancel_later, &c);
            status = sem ? latchkey_semaphore_acquire(sem, permits, (int64_t)wait_ms, c.cancel, &guard, &aerr)
                         : latchkey_lock_acquire(lock, (int64_t)wait_ms, c.cancel, &guard, &aerr);
            pthread_mutex_lock(&c.mutex);
            c.done = 1;
            pthread_cond_signal(&c.done_cond);
            pthread_mutex_unlock(&c.mutex);
            pthread_join(thread, NULL);
            latchkey_cancel_free(c.cancel);
        }
        uint64_t t1 = mono_ns();
        int n = snprintf(fields, sizeof fields,
                         ",\"op\":\"acquire\",\"seq\":%" PRIu64 ",\"name\":\"%s\",\"mode\":\"%s\","
                         "\"renew\":%s,\"ttl_ms\":%" PRIu64 ",\"t0\":%" PRIu64 ",\"t1\":%" PRIu64,
                         seq, name, mode, renew ? "true" : "false", ttl_ms, t0, t1);
        if (deadline >= 0)
            n += snprintf(fields + n, sizeof fields - (size_t)n, ",\"deadline_ms\":%" PRId64, deadline);
        if (fair) n += snprintf(fields + n, sizeof fields - (size_t)n, ",\"fair\":true");
        if (sem)
            n += snprintf(fields + n, sizeof fields - (size_t)n, ",\"size\":%u,\"permits\":%u",
                          (unsigned)sem_size, (unsigned)permits);
        if (status != LATCHKEY_OK) {
            snprintf(fields + n, sizeof fields - (size_t)n, ",\"ok\":false,\"err\":\"%s\",\"msg\":",
                     status_kind(status));
            json_string(fields, sizeof fields, aerr ? latchkey_error_message(aerr) : "");
            latchkey_error_free(aerr);
            log_line(fields);
            sleep_ms(rng_below(50));
            continue;
        }
        const char *hold = NULL;
        uint64_t fence = 0;
        latchkey_guard_owner_token(guard, &hold, NULL);
        latchkey_guard_fencing_token(guard, &fence, NULL);
        snprintf(fields + n, sizeof fields - (size_t)n,
                 ",\"ok\":true,\"hold\":\"%s\",\"fence\":%" PRIu64, hold, fence);
        log_line(fields);
        char common[512];
        snprintf(common, sizeof common, ",\"seq\":%" PRIu64 ",\"name\":\"%s\",\"hold\":\"%s\",\"fence\":%" PRIu64,
                 seq, name, hold, fence);

        /* The fenced write of this hold's token to the storage server. */
        char resource[256], value[256];
        snprintf(resource, sizeof resource, "res-%s", name);
        snprintf(value, sizeof value, "%s:%" PRIu64, worker_id, seq);
        bool written = false;
        uint64_t highest = 0;
        t0 = mono_ns();
        status = latchkey_client_fenced_write(storage, resource, fence, (const uint8_t *)value,
                                              strlen(value), &written, &highest, NULL);
        t1 = mono_ns();
        if (status == LATCHKEY_OK)
            snprintf(fields, sizeof fields, ",\"op\":\"write\"%s,\"t0\":%" PRIu64 ",\"t1\":%" PRIu64
                     ",\"ok\":%s,\"highest\":%" PRIu64, common, t0, t1, written ? "true" : "false", highest);
        else
            snprintf(fields, sizeof fields, ",\"op\":\"write\"%s,\"t0\":%" PRIu64 ",\"t1\":%" PRIu64
                     ",\"ok\":false,\"err\":\"%s\"", common, t0, t1, status_kind(status));
        log_line(fields);

        /* The guard's own fenced write (to the lock deployment, with the
         * hold's token). */
        snprintf(resource, sizeof resource, "gres-%s", name);
        t0 = mono_ns();
        status = latchkey_guard_fenced_write(guard, resource, (const uint8_t *)value, strlen(value),
                                             &written, &highest, NULL);
        t1 = mono_ns();
        if (status == LATCHKEY_OK)
            snprintf(fields, sizeof fields, ",\"op\":\"gwrite\"%s,\"t0\":%" PRIu64 ",\"t1\":%" PRIu64
                     ",\"ok\":%s,\"highest\":%" PRIu64, common, t0, t1, written ? "true" : "false", highest);
        else
            snprintf(fields, sizeof fields, ",\"op\":\"gwrite\"%s,\"t0\":%" PRIu64 ",\"t1\":%" PRIu64
                     ",\"ok\":false,\"err\":\"%s\"", common, t0, t1, status_kind(status));
        log_line(fields);

        roll = rng_below(100);
        uint64_t hold_ms = roll < long_percent ? ttl_ms + rng_below(ttl_ms)
                           : roll < long_percent + 15 ? ttl_ms / 3 + rng_below(ttl_ms)
                                                      : rng_below(ttl_ms / 4);
        sleep_ms(hold_ms);
        t0 = mono_ns();
        status = latchkey_guard_check(guard, NULL);
        t1 = mono_ns();
        n = snprintf(fields, sizeof fields, ",\"op\":\"check\"%s,\"t0\":%" PRIu64 ",\"t1\":%" PRIu64 ",\"ok\":%s",
                     common, t0, t1, status == LATCHKEY_OK ? "true" : "false");
        if (status != LATCHKEY_OK)
            snprintf(fields + n, sizeof fields - (size_t)n, ",\"err\":\"%s\"", status_kind(status));
        log_line(fields);
        t0 = mono_ns();
        status = latchkey_guard_release(guard, NULL);
        t1 = mono_ns();
        n = snprintf(fields, sizeof fields, ",\"op\":\"release\"%s,\"t0\":%" PRIu64 ",\"t1\":%" PRIu64 ",\"ok\":%s",
                     common, t0, t1, status == LATCHKEY_OK ? "true" : "false");
        if (status != LATCHKEY_OK)
            snprintf(fields + n, sizeof fields - (size_t)n, ",\"err\":\"%s\"", status_kind(status));
        log_line(fields);
        latchkey_guard_free(guard);
    }
    snprintf(fields, sizeof fields, ",\"op\":\"stop\",\"t\":%" PRIu64, mono_ns());
    log_line(fields);
    for (int i = 0; i < name_count; i++) {
        latchkey_lock_free(locks[i][0]);
        latchkey_lock_free(locks[i][1]);
        latchkey_semaphore_free(sems[i][0]);
        latchkey_semaphore_free(sems[i][1]);
    }
    latchkey_client_free(client);
    latchkey_client_free(storage);
    latchkey_client_options_free(copts);
    close(history_fd);
    return 0;
}
