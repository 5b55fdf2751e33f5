/*
 * The read-write lock from C: readers share and keep the writer out; a
 * writer waiting on another thread stops new readers (awaited by asking
 * until a new reader is refused, with a bound only against a hang), goes
 * once the reader inside leaves, and its release lets readers in; tokens
 * increase across readers and writers; bad input is refused.
 */
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "check.h"

static latchkey_rwlock *shared_lock;
static uint64_t writer_token;

static void *write_once(void *arg) {
    (void)arg;
    latchkey_guard *guard = NULL;
    CHECK_OK(latchkey_rwlock_write(shared_lock, 30000, NULL, &guard, NULL));
    CHECK_OK(latchkey_guard_fencing_token(guard, &writer_token, NULL));
    CHECK_OK(latchkey_guard_release(guard, NULL));
    latchkey_guard_free(guard);
    return NULL;
}

int main(void) {
    test_start_server();
    latchkey_client *client = NULL;
    latchkey_rwlock *lock = NULL, *bad = NULL;
    latchkey_guard *first = NULL, *second = NULL, *none = NULL, *probe = NULL, *after = NULL;
    latchkey_lock_options *options = NULL;
    uint64_t first_token = 0, after_token = 0;
    pthread_t writer;

    CHECK_OK(latchkey_client_open(test_server.url, NULL, &client, NULL));
    CHECK_OK(latchkey_rwlock_new(client, "c-config", NULL, &lock, NULL));
    shared_lock = lock;
    CHECK_OK(latchkey_rwlock_read(lock, 0, NULL, &first, NULL));
    CHECK_OK(latchkey_rwlock_try_read(lock, &second, NULL));
    CHECK_STATUS(LATCHKEY_TIMEOUT, latchkey_rwlock_try_write(lock, &none, NULL));
    CHECK(none == NULL);
    CHECK_OK(latchkey_guard_release(second, NULL));
    test_pass("readers share and keep the writer out");

    CHECK(pthread_create(&writer, NULL, write_once, NULL) == 0);
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        latchkey_status status = latchkey_rwlock_try_read(lock, &probe, NULL);
        if (status == LATCHKEY_TIMEOUT) break; /* the writer waits */
        CHECK(status == LATCHKEY_OK);
        CHECK_OK(latchkey_guard_release(probe, NULL));
        latchkey_guard_free(probe);
        probe = NULL;
        clock_gettime(CLOCK_MONOTONIC, &now);
        CHECK(now.tv_sec - start.tv_sec < 30);
        sched_yield();
    }
    CHECK_OK(latchkey_guard_fencing_token(first, &first_token, NULL));
    CHECK_OK(latchkey_guard_release(first, NULL));
    CHECK(pthread_join(writer, NULL) == 0);
    CHECK(writer_token > first_token);
    CHECK_OK(latchkey_rwlock_read(lock, 30000, NULL, &after, NULL));
    CHECK_OK(latchkey_guard_fencing_token(after, &after_token, NULL));
    CHECK(after_token > writer_token);
    test_pass("a waiting writer stops new readers and goes first; tokens increase");

    latchkey_guard *write_hold = NULL, *downgraded = NULL, *other = NULL;
    uint64_t downgraded_token = 0;
    CHECK_STATUS(LATCHKEY_INVALID_ARGUMENT, latchkey_rwlock_downgrade(lock, after, &downgraded, NULL));
    CHECK_OK(latchkey_guard_check(after, NULL)); /* a read hold is refused and stays held */
    CHECK_OK(latchkey_guard_release(after, NULL));
    CHECK_OK(latchkey_rwlock_write(lock, 30000, NULL, &write_hold, NULL));
    CHECK_OK(latchkey_rwlock_downgrade(lock, write_hold, &downgraded, NULL));
    CHECK_OK(latchkey_guard_fencing_token(downgraded, &downgraded_token, NULL));
    CHECK(downgraded_token > after_token);
    CHECK_OK(latchkey_rwlock_try_read(lock, &other, NULL));
    CHECK_STATUS(LATCHKEY_TIMEOUT, latchkey_rwlock_try_write(lock, &none, NULL));
    CHECK_STATUS(LATCHKEY_NOT_HELD, latchkey_guard_release(write_hold, NULL));
    CHECK_STATUS(LATCHKEY_NOT_HELD, latchkey_rwlock_downgrade(lock, write_hold, &none, NULL));
    CHECK_OK(latchkey_guard_release(other, NULL));
    CHECK_OK(latchkey_guard_release(downgraded, NULL));
    latchkey_guard_free(other);
    latchkey_guard_free(downgraded);
    latchkey_guard_free(write_hold);
    test_pass("a writer downgrades to a reader; other readers come in, writers do not");

    CHECK_OK(latchkey_lock_options_new(&options, NULL));
    CHECK_OK(latchkey_lock_options_set_fair(options, true, NULL));
    CHECK_STATUS(LATCHKEY_INVALID_ARGUMENT, latchkey_rwlock_new(client, "r", options, &bad, NULL));
    latchkey_lock_options_free(options);
    CHECK_STATUS(LATCHKEY_INVALID_ARGUMENT, latchkey_rwlock_new(client, "", NULL, &bad, NULL));
    CHECK(bad == NULL);
    CHECK_STATUS(LATCHKEY_INVALID_ARGUMENT,
                 latchkey_rwlock_try_read((latchkey_rwlock *)client, &none, NULL));
    CHECK_STATUS(LATCHKEY_INVALID_ARGUMENT, latchkey_rwlock_read(lock, 0, NULL, NULL, NULL));
    test_pass("bad input is refused");

    latchkey_guard_free(after);
    latchkey_guard_free(second);
    latchkey_guard_free(first);
    latchkey_rwlock_free(lock);
    latchkey_client_free(client);
    test_wait_for_library_threads();
    test_stop_server();
    return 0;
}
