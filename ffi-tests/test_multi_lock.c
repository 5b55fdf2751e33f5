/*
 * Multi-locks from C: two threads with their own clients take {x, y} and
 * {y, x} over and over without deadlock or overlap; an acquisition that
 * cannot take every lock holds none; a lost lease loses the whole (the
 * loss awaited by asking the guard, with a bound only against a hang);
 * bad input is refused.
 */
#include <pthread.h>
#include <string.h>

#include "check.h"

#define ROUNDS 20

static pthread_mutex_t counter_mutex = PTHREAD_MUTEX_INITIALIZER;
static int holders;

static void *contend(void *arg) {
    const char *const *names = arg;
    latchkey_client *client = NULL;
    latchkey_multi_lock *multi = NULL;
    CHECK_OK(latchkey_client_open(test_server.url, NULL, &client, NULL));
    CHECK_OK(latchkey_multi_lock_new(client, names, 2, NULL, &multi, NULL));
    for (int i = 0; i < ROUNDS; i++) {
        latchkey_multi_guard *guard = NULL;
        CHECK_OK(latchkey_multi_lock_acquire(multi, 30000, NULL, &guard, NULL));
        pthread_mutex_lock(&counter_mutex);
        CHECK(++holders == 1);
        pthread_mutex_unlock(&counter_mutex);
        sched_yield();
        pthread_mutex_lock(&counter_mutex);
        holders--;
        pthread_mutex_unlock(&counter_mutex);
        CHECK_OK(latchkey_multi_guard_check(guard, NULL));
        CHECK_OK(latchkey_multi_guard_release(guard, NULL));
        latchkey_multi_guard_free(guard);
    }
    latchkey_multi_lock_free(multi);
    latchkey_client_free(client);
    return NULL;
}

int main(void) {
    test_start_server();
    static const char *const forward[] = {"c-x", "c-y"};
    static const char *const backward[] = {"c-y", "c-x"};
    pthread_t a, b;
    CHECK(pthread_create(&a, NULL, contend, (void *)forward) == 0);
    CHECK(pthread_create(&b, NULL, contend, (void *)backward) == 0);
    CHECK(pthread_join(a, NULL) == 0 && pthread_join(b, NULL) == 0);
    test_pass("overlapping sets named in opposite orders never deadlock or overlap");

    latchkey_client *client = NULL;
    latchkey_lock *middle = NULL;
    latchkey_guard *held = NULL;
    latchkey_multi_lock *multi = NULL, *bad = NULL;
    latchkey_multi_guard *all = NULL, *none = NULL;
    latchkey_lock_options *options = NULL;
    bool locked = true, deleted = false;
    size_t count = 0;
    uint64_t token = 0;
    static const char *const three[] = {"c-c", "c-b", "c-a"};

    CHECK_OK(latchkey_client_open(test_server.url, NULL, &client, NULL));
    CHECK_OK(latchkey_lock_new(client, "c-b", NULL, &middle, NULL));
    CHECK_OK(latchkey_lock_acquire(middle, 0, NULL, &held, NULL));
    CHECK_OK(latchkey_lock_options_new(&options, NULL));
    CHECK_OK(latchkey_lock_options_set_ttl_ms(options, 600, NULL));
    CHECK_OK(latchkey_multi_lock_new(client, three, 3, options, &multi, NULL));
    latchkey_lock_options_free(options);
    CHECK_STATUS(LATCHKEY_TIMEOUT, latchkey_multi_lock_try_acquire(multi, &none, NULL));
    CHECK_STATUS(LATCHKEY_TIMEOUT, latchkey_multi_lock_acquire(multi, 100, NULL, &none, NULL));
    CHECK(none == NULL);
    CHECK_OK(latchkey_client_is_locked(client, "c-a", &locked, NULL));
    CHECK(!locked);
    CHECK_OK(latchkey_guard_release(held, NULL));
    CHECK_OK(latchkey_multi_lock_acquire(multi, 0, NULL, &all, NULL));
    CHECK_OK(latchkey_multi_guard_count(all, &count, NULL));
    CHECK(count == 3);
    CHECK_OK(latchkey_multi_guard_fencing_token(all, 2, &token, NULL));
    CHECK(token > 0);
    bool lost = true;
    uint64_t remaining = 0;
    CHECK_OK(latchkey_multi_guard_lost(all, &lost, NULL));
    CHECK(!lost);
    CHECK_OK(latchkey_multi_guard_remaining_ms(all, &remaining, NULL));
    CHECK(remaining > 0 && remaining <= 600);
    CHECK_STATUS(LATCHKEY_INVALID_ARGUMENT,
                 latchkey_multi_guard_fencing_token(all, 3, &token, NULL));
    test_pass("all or nothing; tokens per lock");

    CHECK_OK(latchkey_client_force_unlock(client, "c-b", &deleted, NULL));
    CHECK(deleted);
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    while (latchkey_multi_guard_check(all, NULL) == LATCHKEY_OK) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        CHECK(now.tv_sec - start.tv_sec < 30);
        sched_yield();
    }
    CHECK_STATUS(LATCHKEY_LOST, latchkey_multi_guard_check(all, NULL));
    CHECK_OK(latchkey_multi_guard_lost(all, &lost, NULL));
    CHECK(lost);
    CHECK_OK(latchkey_multi_guard_remaining_ms(all, &remaining, NULL));
    CHECK(remaining == 0);
    CHECK_STATUS(LATCHKEY_NOT_HELD, latchkey_multi_guard_release(all, NULL));
    CHECK_OK(latchkey_client_is_locked(client, "c-a", &locked, NULL));
    CHECK(!locked);
    test_pass("one lost lease loses the whole; release frees the others");

    CHECK_STATUS(LATCHKEY_INVALID_ARGUMENT, latchkey_multi_lock_new(client, three, 0, NULL, &bad, NULL));
    static const char *const with_null[] = {"a", NULL};
    CHECK_STATUS(LATCHKEY_INVALID_ARGUMENT,
                 latchkey_multi_lock_new(client, with_null, 2, NULL, &bad, NULL));
    CHECK(bad == NULL);
    CHECK_STATUS(LATCHKEY_INVALID_ARGUMENT,
                 latchkey_multi_guard_check((latchkey_multi_guard *)multi, NULL));
    test_pass("bad input is refused");

    latchkey_multi_guard_free(all);
    latchkey_guard_free(held);
    latchkey_lock_free(middle);
    latchkey_multi_lock_free(multi);
    latchkey_client_free(client);
    test_wait_for_library_threads();
    test_stop_server();
    return 0;
}
