/*
 * The semaphore from C: threads with their own clients take one or two
 * permits of a semaphore of three over and over and never hold more than
 * three at once (counted by the holders); several permits per hold and
 * what is available; a waiter on another thread woken by a release;
 * permits taken away reported lost (the callback awaited with a condition
 * variable, not a sleep); bad sizes and counts refused, taking nothing.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "check.h"

#define THREADS 4
#define ROUNDS 25

static pthread_mutex_t counter_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t counter_cond = PTHREAD_COND_INITIALIZER;
static unsigned in_use, most, lost_calls;

static void *contend(void *arg) {
    uint32_t permits = 1 + (uint32_t)(size_t)arg % 2;
    latchkey_client *client = NULL;
    latchkey_semaphore *pool = NULL;
    CHECK_OK(latchkey_client_open(test_server.url, NULL, &client, NULL));
    CHECK_OK(latchkey_semaphore_new(client, "c-bounded", 3, NULL, &pool, NULL));
    for (int i = 0; i < ROUNDS; i++) {
        latchkey_guard *guard = NULL;
        CHECK_OK(latchkey_semaphore_acquire(pool, permits, -1, NULL, &guard, NULL));
        pthread_mutex_lock(&counter_mutex);
        in_use += permits;
        if (in_use > most) most = in_use;
        pthread_mutex_unlock(&counter_mutex);
        sched_yield();
        pthread_mutex_lock(&counter_mutex);
        in_use -= permits;
        pthread_mutex_unlock(&counter_mutex);
        CHECK_OK(latchkey_guard_release(guard, NULL));
        latchkey_guard_free(guard);
    }
    latchkey_semaphore_free(pool);
    latchkey_client_free(client);
    return NULL;
}

static void *wait_for_one(void *arg) {
    latchkey_semaphore *pool = arg;
    latchkey_guard *guard = NULL;
    CHECK_OK(latchkey_semaphore_acquire(pool, 1, 30000, NULL, &guard, NULL));
    CHECK_OK(latchkey_guard_release(guard, NULL));
    latchkey_guard_free(guard);
    return NULL;
}

static void on_lost(void *user, const char *name, const char *owner_token, uint64_t fencing_token,
                    const char *reason) {
    (void)user, (void)owner_token, (void)fencing_token, (void)reason;
    CHECK(strcmp(name, "c-taken") == 0);
    pthread_mutex_lock(&counter_mutex);
    lost_calls++;
    pthread_cond_broadcast(&counter_cond);
    pthread_mutex_unlock(&counter_mutex);
}

int main(void) {
    test_start_server();
    latchkey_client *client = NULL;
    latchkey_semaphore *pool = NULL, *taken = NULL;
    latchkey_lock_options *options = NULL;
    latchkey_guard *three = NULL, *two = NULL, *none = NULL, *held = NULL;
    uint32_t available = 99;
    bool released = false;
    pthread_t threads[THREADS], waiter;

    for (size_t i = 0; i < THREADS; i++)
        CHECK(pthread_create(&threads[i], NULL, contend, (void *)i) == 0);
    for (size_t i = 0; i < THREADS; i++) CHECK(pthread_join(threads[i], NULL) == 0);
    CHECK(most <= 3 && most >= 2);
    test_pass("threads never hold more permits than the semaphore has");

    CHECK_OK(latchkey_client_open(test_server.url, NULL, &client, NULL));
    CHECK_OK(latchkey_semaphore_new(client, "c-pool", 5, NULL, &pool, NULL));
    CHECK_OK(latchkey_semaphore_acquire(pool, 3, 0, NULL, &three, NULL));
    CHECK_OK(latchkey_semaphore_available(pool, &available, NULL));
    CHECK(available == 2);
    CHECK_STATUS(LATCHKEY_TIMEOUT, latchkey_semaphore_try_acquire(pool, 3, &none, NULL));
    CHECK(none == NULL);
    CHECK_OK(latchkey_semaphore_try_acquire(pool, 2, &two, NULL));
    CHECK_OK(latchkey_guard_release(three, NULL));
    latchkey_guard_free(three);
    latchkey_guard_free(two); /* releases */
    CHECK_OK(latchkey_semaphore_available(pool, &available, NULL));
    CHECK(available == 5);
    test_pass("several permits per hold; available counts them");

    CHECK_OK(latchkey_semaphore_acquire(pool, 5, 0, NULL, &held, NULL));
    CHECK(pthread_create(&waiter, NULL, wait_for_one, pool) == 0);
    CHECK_OK(latchkey_guard_release(held, NULL));
    CHECK(pthread_join(waiter, NULL) == 0);
    latchkey_guard_free(held);
    test_pass("a waiter is woken by a release");

    CHECK_OK(latchkey_lock_options_new(&options, NULL));
    CHECK_OK(latchkey_lock_options_set_ttl_ms(options, 600, NULL));
    CHECK_OK(latchkey_lock_options_set_on_lost(options, on_lost, NULL, NULL, NULL));
    CHECK_OK(latchkey_semaphore_new(client, "c-taken", 2, options, &taken, NULL));
    latchkey_lock_options_free(options);
    CHECK_OK(latchkey_semaphore_acquire(taken, 1, 0, NULL, &held, NULL));
    CHECK_OK(latchkey_semaphore_force_release_all(taken, &released, NULL));
    CHECK(released);
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 60;
    pthread_mutex_lock(&counter_mutex);
    while (lost_calls == 0)
        if (pthread_cond_timedwait(&counter_cond, &counter_mutex, &deadline) == ETIMEDOUT) break;
    CHECK(lost_calls == 1);
    pthread_mutex_unlock(&counter_mutex);
    CHECK_STATUS(LATCHKEY_LOST, latchkey_guard_check(held, NULL));
    CHECK_STATUS(LATCHKEY_NOT_HELD, latchkey_guard_release(held, NULL));
    latchkey_guard_free(held);
    test_pass("permits taken away are reported lost");

    latchkey_semaphore *bad = NULL;
    CHECK_STATUS(LATCHKEY_INVALID_ARGUMENT, latchkey_semaphore_new(client, "s", 0, NULL, &bad, NULL));
    CHECK_STATUS(LATCHKEY_INVALID_ARGUMENT, latchkey_semaphore_new(client, "", 1, NULL, &bad, NULL));
    CHECK(bad == NULL);
    CHECK_STATUS(LATCHKEY_INVALID_ARGUMENT, latchkey_semaphore_acquire(pool, 0, 0, NULL, &none, NULL));
    CHECK_STATUS(LATCHKEY_INVALID_ARGUMENT, latchkey_semaphore_try_acquire(pool, 6, &none, NULL));
    CHECK_STATUS(LATCHKEY_INVALID_ARGUMENT, latchkey_semaphore_available(NULL, &available, NULL));
    CHECK_STATUS(LATCHKEY_INVALID_ARGUMENT,
                 latchkey_semaphore_available((latchkey_semaphore *)client, &available, NULL));
    CHECK_OK(latchkey_semaphore_available(pool, &available, NULL));
    CHECK(available == 5);
    test_pass("bad sizes, counts and handles are refused and take nothing");

    latchkey_semaphore_free(taken);
    latchkey_semaphore_free(pool);
    latchkey_client_free(client);
    test_wait_for_library_threads();
    test_stop_server();
    return 0;
}
