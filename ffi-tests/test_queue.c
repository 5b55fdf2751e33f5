/*
 * latchkey_client_inspect_queue from C: the holder and the waiters queued
 * for a lock in one call, the array's ownership (freed once, with its
 * count, by latchkey_queued_waiters_free; a second free, a wrong count or
 * the wrong free function is refused and frees nothing) and its arguments.
 * The waiter is a thread parked in latchkey_lock_acquire; the test waits
 * for it by asking until it is listed, never by sleeping a fixed time.
 */
#include <pthread.h>
#include <string.h>

#include "check.h"

#define INVALID LATCHKEY_INVALID_ARGUMENT

struct waiter {
    latchkey_lock *lock;
    latchkey_status status;
};

/* Waits for the lock (a minute at most), then gives it back. */
static void *wait_for_lock(void *arg) {
    struct waiter *w = arg;
    latchkey_guard *guard = NULL;
    w->status = latchkey_lock_acquire(w->lock, 60000, NULL, &guard, NULL);
    if (w->status == LATCHKEY_OK) w->status = latchkey_guard_release(guard, NULL);
    latchkey_guard_free(guard);
    return NULL;
}

/* Asks until `count` waiters are listed (30 s at most, every 10 ms). */
static void wait_until_listed(latchkey_client *client, const char *name, size_t count,
                              latchkey_lock_info *info, latchkey_queued_waiter **waiters,
                              size_t *listed, uint64_t *total) {
    for (int tries = 0;; tries++) {
        CHECK_OK(latchkey_client_inspect_queue(client, name, info, waiters, listed, total, NULL));
        if (*listed == count) return;
        CHECK_OK(latchkey_queued_waiters_free(*waiters, *listed));
        CHECK(tries < 3000);
        struct timespec pause = {0, 10 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
}

static void test_queue_of_a_held_lock(latchkey_client *client) {
    latchkey_lock *lock = NULL, *other = NULL;
    latchkey_guard *held = NULL;
    latchkey_lock_info info;
    latchkey_queued_waiter *waiters = NULL;
    size_t count = 99;
    uint64_t total = 99;
    const char *token = NULL;

    /* Free: not locked, nobody listed. */
    memset(&info, 0xff, sizeof info);
    CHECK_OK(latchkey_client_inspect_queue(client, "queued", &info, &waiters, &count, &total, NULL));
    CHECK(!info.locked && info.fencing_token == 0 && info.owner_token[0] == '\0');
    CHECK(waiters == NULL && count == 0 && total == 0);
    CHECK_OK(latchkey_queued_waiters_free(waiters, count));

    /* Held, nobody waiting. */
    CHECK_OK(latchkey_lock_new(client, "queued", NULL, &lock, NULL));
    CHECK_OK(latchkey_lock_new(client, "queued", NULL, &other, NULL));
    CHECK_OK(latchkey_lock_acquire(lock, 5000, NULL, &held, NULL));
    CHECK_OK(latchkey_guard_owner_token(held, &token, NULL));
    CHECK_OK(latchkey_client_inspect_queue(client, "queued", &info, &waiters, &count, &total, NULL));
    CHECK(info.locked && strcmp(info.owner_token, token) == 0 && info.hold_count == 1);
    CHECK(waiters == NULL && count == 0 && total == 0);
    test_pass("a free lock and a held one without waiters list nobody");

    /* One waiter parks: it is listed with its id and its entry's time. */
    struct waiter w = {other, LATCHKEY_PANIC};
    pthread_t thread;
    CHECK(pthread_create(&thread, NULL, wait_for_lock, &w) == 0);
    wait_until_listed(client, "queued", 1, &info, &waiters, &count, &total);
    CHECK(info.locked && strcmp(info.owner_token, token) == 0);
    CHECK(waiters != NULL && count == 1 && total == 1);
    CHECK(strncmp(waiters[0].id, "w:", 2) == 0 && strlen(waiters[0].id) > 2);
    CHECK(waiters[0].expires_in_ms > 0 && waiters[0].expires_in_ms <= 15000);
    test_pass("a parked waiter is listed with a w: id and at most 15 s left");

    /* Refused, and nothing freed: a wrong count, the other free function. */
    CHECK_STATUS(INVALID, latchkey_queued_waiters_free(waiters, count + 1));
    CHECK(strstr(latchkey_last_error(), "latchkey_client_inspect_queue") != NULL);
    CHECK_STATUS(INVALID, latchkey_master_states_free((latchkey_master_state *)(void *)waiters, count));
    CHECK(strncmp(waiters[0].id, "w:", 2) == 0);
    CHECK_OK(latchkey_queued_waiters_free(waiters, count));
    /* Freed: a second free is refused (the registry, not the memory, says so). */
    CHECK_STATUS(INVALID, latchkey_queued_waiters_free(waiters, count));
    test_pass("the array is freed once, with its count, by its own function");

    /* The release hands the lock to the waiter, which takes and releases it. */
    CHECK_OK(latchkey_guard_release(held, NULL));
    CHECK(pthread_join(thread, NULL) == 0);
    CHECK_OK(w.status);
    CHECK_OK(latchkey_client_inspect_queue(client, "queued", &info, &waiters, &count, &total, NULL));
    CHECK(!info.locked && waiters == NULL && count == 0 && total == 0);
    test_pass("after the handoff nobody is listed");

    latchkey_guard_free(held);
    latchkey_lock_free(other);
    latchkey_lock_free(lock);
}

static void test_arguments(latchkey_client *client) {
    latchkey_lock_info info;
    latchkey_queued_waiter *waiters = NULL;
    size_t count = 0;
    uint64_t total = 0;
    latchkey_error *err = NULL;
    CHECK_STATUS(INVALID, latchkey_client_inspect_queue(NULL, "n", &info, &waiters, &count, &total, NULL));
    CHECK_STATUS(INVALID, latchkey_client_inspect_queue(client, NULL, &info, &waiters, &count, &total, NULL));
    CHECK_STATUS(INVALID, latchkey_client_inspect_queue(client, "", &info, &waiters, &count, &total, NULL));
    CHECK_STATUS(INVALID, latchkey_client_inspect_queue(client, "n", NULL, &waiters, &count, &total, NULL));
    CHECK_STATUS(INVALID, latchkey_client_inspect_queue(client, "n", &info, NULL, &count, &total, NULL));
    CHECK_STATUS(INVALID, latchkey_client_inspect_queue(client, "n", &info, &waiters, NULL, &total, NULL));
    CHECK_STATUS(INVALID, latchkey_client_inspect_queue(client, "n", &info, &waiters, &count, NULL, &err));
    CHECK(latchkey_error_status(err) == INVALID);
    CHECK(strstr(latchkey_error_message(err), "total_out") != NULL);
    latchkey_error_free(err);
    CHECK_OK(latchkey_queued_waiters_free(NULL, 0));
    CHECK_OK(latchkey_queued_waiters_free(NULL, 5));
    test_pass("NULL and bad arguments are LATCHKEY_INVALID_ARGUMENT; NULL frees nothing");
}

int main(void) {
    test_start_server();
    latchkey_client *client = NULL;
    CHECK_OK(latchkey_client_open(test_server.url, NULL, &client, NULL));
    test_queue_of_a_held_lock(client);
    test_arguments(client);
    latchkey_client_free(client);
    test_stop_server();
    return 0;
}
