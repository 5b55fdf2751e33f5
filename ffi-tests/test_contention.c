/*
 * Mutual exclusion the hard way: forked processes (each with its own
 * client) and threads (sharing one client, some sharing one lock handle)
 * all do a deliberately non-atomic read-modify-write of a counter file
 * under one lock. The final count must equal the number of acquisitions,
 * and fencing tokens must grow from one holder to the next.
 */
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <sys/wait.h>

#include "check.h"

#define PROCESSES 3
#define THREADS 4
#define ROUNDS 20
#define LOCK_NAME "counter"

static char counter_path[512];
/* The last fencing token seen, read and written only under the lock. */
static uint64_t last_fencing_token;

static long read_counter(void) {
    long value = 0;
    FILE *f = fopen(counter_path, "r");
    if (f != NULL) {
        if (fscanf(f, "%ld", &value) != 1) value = 0;
        fclose(f);
    }
    return value;
}

static void write_counter(long value) {
    FILE *f = fopen(counter_path, "w");
    CHECK(f != NULL);
    fprintf(f, "%ld\n", value);
    CHECK(fclose(f) == 0);
}

/* One hold: read, give others a chance to interleave, write back plus one. */
static void critical_section(void) {
    long value = read_counter();
    sched_yield();
    write_counter(value + 1);
}

static void hold_rounds(latchkey_lock *lock, bool check_tokens) {
    for (int i = 0; i < ROUNDS; i++) {
        latchkey_guard *guard = NULL;
        uint64_t token = 0;
        CHECK_OK(latchkey_lock_acquire(lock, -1, NULL, &guard, NULL));
        CHECK_OK(latchkey_guard_fencing_token(guard, &token, NULL));
        if (check_tokens) {
            CHECK(token > last_fencing_token);
            last_fencing_token = token;
        }
        critical_section();
        CHECK_OK(latchkey_guard_release(guard, NULL));
        latchkey_guard_free(guard);
    }
}

/* A child process: its own client, made after the fork. */
static void child(void) {
    latchkey_client *client = NULL;
    latchkey_lock *lock = NULL;
    CHECK_OK(latchkey_client_open(test_server.url, NULL, &client, NULL));
    CHECK_OK(latchkey_lock_new(client, LOCK_NAME, NULL, &lock, NULL));
    hold_rounds(lock, false);
    latchkey_lock_free(lock);
    latchkey_client_free(client);
}

struct worker {
    pthread_t thread;
    latchkey_lock *lock;
};

static void *thread_main(void *arg) {
    struct worker *worker = arg;
    hold_rounds(worker->lock, true);
    return NULL;
}

static void *release_elsewhere(void *arg) {
    CHECK_OK(latchkey_guard_release((latchkey_guard *)arg, NULL));
    return NULL;
}

int main(void) {
    test_start_server();
    snprintf(counter_path, sizeof counter_path, "%s/counter", test_server.dir);
    write_counter(0);

    /* Fork first, while this process has no latchkey threads or handles:
     * a client must never be used across fork. */
    pid_t children[PROCESSES];
    for (int i = 0; i < PROCESSES; i++) {
        fflush(stdout);
        children[i] = fork();
        CHECK(children[i] >= 0);
        if (children[i] == 0) {
            child();
            test_wait_for_library_threads();
            _exit(0);
        }
    }

    latchkey_client *client = NULL;
    latchkey_lock *shared = NULL;
    CHECK_OK(latchkey_client_open(test_server.url, NULL, &client, NULL));
    CHECK_OK(latchkey_lock_new(client, LOCK_NAME, NULL, &shared, NULL));
    struct worker workers[THREADS];
    for (int i = 0; i < THREADS; i++) {
        /* Two threads share one handle; the others have their own. */
        workers[i].lock = shared;
        if (i >= 2) CHECK_OK(latchkey_lock_new(client, LOCK_NAME, NULL, &workers[i].lock, NULL));
        CHECK(pthread_create(&workers[i].thread, NULL, thread_main, &workers[i]) == 0);
    }
    for (int i = 0; i < THREADS; i++) CHECK(pthread_join(workers[i].thread, NULL) == 0);
    for (int i = 0; i < PROCESSES; i++) {
        int status = 0;
        CHECK(waitpid(children[i], &status, 0) == children[i]);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    long expected = (long)(PROCESSES + THREADS) * ROUNDS;
    long counted = read_counter();
    if (counted != expected) {
        fprintf(stderr, "counter is %ld after %ld acquisitions\n", counted, expected);
        CHECK(counted == expected);
    }
    test_pass("processes and threads never overlap: counter equals acquisitions");

    /* A guard is tied to no thread: acquire here, release there. */
    latchkey_guard *guard = NULL;
    pthread_t releaser;
    bool locked = true;
    CHECK_OK(latchkey_lock_acquire(shared, -1, NULL, &guard, NULL));
    CHECK(pthread_create(&releaser, NULL, release_elsewhere, guard) == 0);
    CHECK(pthread_join(releaser, NULL) == 0);
    CHECK_OK(latchkey_client_is_locked(client, LOCK_NAME, &locked, NULL));
    CHECK(!locked);
    latchkey_guard_free(guard);
    test_pass("a guard acquired on one thread is released on another");

    for (int i = 2; i < THREADS; i++) latchkey_lock_free(workers[i].lock);
    latchkey_lock_free(shared);
    latchkey_client_free(client);
    test_stop_server();
    return 0;
}
