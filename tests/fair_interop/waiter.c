/* The C fair waiter of tests/fair_interop.rs (built by that test into its
 * temporary directory, against the static library cargo built for it).
 *
 * One process holds several waiters of one fair lock, all through one
 * client. Each line on stdin is a waiter's sequence number SEQ: a thread
 * starts at once and acquires NAME (fair, waiting up to 120 s); holding
 * it, it appends "SEQ LABEL FENCING_TOKEN\n" to RECORD with one write(2)
 * to a file opened with O_APPEND (so lines from every process stay whole
 * and in the order the holds happened), then releases. At the end of
 * input the process waits for its waiters and exits 0 if every one got
 * the lock, wrote its line and released; failures go to stderr. The test
 * starts a waiter only once the previous one is queued in Redis.
 *
 * usage: c-waiter URL NAME RECORD LABEL
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <latchkey.h>

#define MAX_WAITERS 256
#define ACQUIRE_TIMEOUT_MS 120000

static latchkey_client *client;
static const char *lock_name;
static const char *label;
static int record_fd = -1;

struct waiter {
    pthread_t thread;
    long seq;
    int failed;
};

/* Prints a failed call's message and frees the error; returns 1. */
static int report(long seq, const char *what, latchkey_error *err) {
    fprintf(stderr, "c-waiter %s: waiter %ld: %s: %s: %s\n", label, seq, what,
            latchkey_status_name(latchkey_error_status(err)), latchkey_error_message(err));
    latchkey_error_free(err);
    return 1;
}

static int wait_for_lock(long seq) {
    latchkey_lock_options *options = NULL;
    latchkey_lock *lock = NULL;
    latchkey_guard *guard = NULL;
    latchkey_error *err = NULL;
    uint64_t token = 0;
    int failed = 0;

    if (latchkey_lock_options_new(&options, &err) != LATCHKEY_OK) return report(seq, "options", err);
    if (latchkey_lock_options_set_fair(options, true, &err) != LATCHKEY_OK ||
        latchkey_lock_new(client, lock_name, options, &lock, &err) != LATCHKEY_OK) {
        latchkey_lock_options_free(options);
        return report(seq, "lock", err);
    }
    latchkey_lock_options_free(options);
    if (latchkey_lock_acquire(lock, ACQUIRE_TIMEOUT_MS, NULL, &guard, &err) != LATCHKEY_OK) {
        latchkey_lock_free(lock);
        return report(seq, "acquire", err);
    }
    latchkey_guard_fencing_token(guard, &token, NULL);
    char line[128];
    int n = snprintf(line, sizeof line, "%ld %s %" PRIu64 "\n", seq, label, token);
    if (n <= 0 || (size_t)n >= sizeof line || write(record_fd, line, (size_t)n) != n) {
        fprintf(stderr, "c-waiter %s: waiter %ld: cannot append to the record: %s\n", label, seq,
                strerror(errno));
        failed = 1;
    }
    if (latchkey_guard_release(guard, &err) != LATCHKEY_OK) failed = report(seq, "release", err);
    latchkey_guard_free(guard);
    latchkey_lock_free(lock);
    return failed;
}

static void *waiter_thread(void *arg) {
    struct waiter *w = arg;
    w->failed = wait_for_lock(w->seq);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s URL NAME RECORD LABEL\n", argv[0]);
        return 2;
    }
    lock_name = argv[2];
    label = argv[4];
    record_fd = open(argv[3], O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (record_fd < 0) {
        fprintf(stderr, "c-waiter %s: cannot open %s: %s\n", label, argv[3], strerror(errno));
        return 1;
    }
    latchkey_error *err = NULL;
    if (latchkey_client_open(argv[1], NULL, &client, &err) != LATCHKEY_OK) return report(-1, "open", err);

    static struct waiter waiters[MAX_WAITERS];
    size_t started = 0;
    int status = 0;
    char line[64];
    while (fgets(line, sizeof line, stdin) != NULL) {
        char *end = NULL;
        long seq = strtol(line, &end, 10);
        if (end == line || (*end != '\n' && *end != '\0') || seq < 0 || started == MAX_WAITERS) {
            fprintf(stderr, "c-waiter %s: bad command '%s' (or more than %d waiters)\n", label,
                    line, MAX_WAITERS);
            status = 1;
            break;
        }
        waiters[started].seq = seq;
        if (pthread_create(&waiters[started].thread, NULL, waiter_thread, &waiters[started]) != 0) {
            fprintf(stderr, "c-waiter %s: cannot start waiter %ld\n", label, seq);
            status = 1;
            break;
        }
        started++;
    }
    for (size_t i = 0; i < started; i++) {
        pthread_join(waiters[i].thread, NULL);
        if (waiters[i].failed) status = 1;
    }
    latchkey_client_free(client);
    close(record_fd);
    return status;
}
