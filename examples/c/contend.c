/*
 * contend: take a distributed lock COUNT times and, while holding it, do a
 * deliberately non-atomic update of a shared counter file: read the number,
 * write it back plus one. Run several copies (and the Rust tool's `worker`)
 * at once: if the lock works, the counter ends at the total number of
 * acquisitions.
 *
 * usage: contend URL NAME COUNT COUNTER_FILE
 *   e.g. contend redis://127.0.0.1:6379 demo 10 /tmp/counter
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "latchkey.h"

/* Reads the counter; a missing or empty file counts as 0. */
static int read_counter(const char *path, unsigned long long *value) {
    FILE *f = fopen(path, "r");
    *value = 0;
    if (f == NULL) return errno == ENOENT ? 0 : -1;
    if (fscanf(f, "%llu", value) != 1) *value = 0;
    fclose(f);
    return 0;
}

static int write_counter(const char *path, unsigned long long value) {
    FILE *f = fopen(path, "w");
    if (f == NULL) return -1;
    fprintf(f, "%llu", value);
    return fclose(f);
}

/* Prints a failed call's message and returns 1 (the exit status). */
static int fail(const char *what, latchkey_error *err) {
    fprintf(stderr, "contend: %s: %s: %s\n", what,
            latchkey_status_name(latchkey_error_status(err)), latchkey_error_message(err));
    latchkey_error_free(err);
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s URL NAME COUNT COUNTER_FILE\n", argv[0]);
        return 2;
    }
    const char *url = argv[1], *name = argv[2], *counter = argv[4];
    char *end = NULL;
    long count = strtol(argv[3], &end, 10);
    if (*argv[3] == '\0' || *end != '\0' || count < 0) {
        fprintf(stderr, "contend: COUNT must be a number >= 0, got '%s'\n", argv[3]);
        return 2;
    }

    latchkey_client *client = NULL;
    latchkey_lock *lock = NULL;
    latchkey_error *err = NULL;
    int status = 0;
    if (latchkey_client_open(url, NULL, &client, &err) != LATCHKEY_OK) return fail("open", err);
    if (latchkey_lock_new(client, name, NULL, &lock, &err) != LATCHKEY_OK) {
        latchkey_client_free(client);
        return fail("lock", err);
    }

    for (long i = 0; i < count && status == 0; i++) {
        latchkey_guard *guard = NULL;
        uint64_t token = 0;
        unsigned long long value = 0;
        /* Wait as long as it takes (a negative timeout), no cancel handle. */
        if (latchkey_lock_acquire(lock, -1, NULL, &guard, &err) != LATCHKEY_OK) {
            status = fail("acquire", err);
            break;
        }
        latchkey_guard_fencing_token(guard, &token, NULL);
        if (read_counter(counter, &value) != 0 || write_counter(counter, value + 1) != 0) {
            fprintf(stderr, "contend: cannot update %s\n", counter);
            status = 1;
        } else {
            printf("[c      pid %6d] holds '%s' fencing token %llu, counter %llu -> %llu\n",
                   (int)getpid(), name, (unsigned long long)token, value, value + 1);
            fflush(stdout);
        }
        /* NOT_HELD here would mean the lease was lost while we held it. */
        if (latchkey_guard_release(guard, &err) != LATCHKEY_OK && status == 0) {
            status = fail("release", err);
        }
        latchkey_guard_free(guard);
    }

    latchkey_lock_free(lock);
    latchkey_client_free(client);
    return status;
}
