/*
 * Cancel handles: a waiting acquire ends with LATCHKEY_CANCELLED when
 * another thread triggers the handle, in both directions (a helper thread
 * waits, or the main thread waits), and the handle can be reset and reused.
 * No sleeps: a trigger that comes before the wait still cancels it.
 */
#include <pthread.h>
#include <string.h>

#include "check.h"

struct waiter {
    latchkey_lock *lock;
    latchkey_cancel *cancel;
    latchkey_status status;
    pthread_mutex_t mutex;
    pthread_cond_t cond;
    bool started;
};

static void *wait_for_lock(void *arg) {
    struct waiter *w = arg;
    latchkey_guard *guard = NULL;
    pthread_mutex_lock(&w->mutex);
    w->started = true;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->mutex);
    w->status = latchkey_lock_acquire(w->lock, -1, w->cancel, &guard, NULL);
    latchkey_guard_free(guard);
    return NULL;
}

static void *trigger(void *arg) {
    CHECK_OK(latchkey_cancel_trigger((latchkey_cancel *)arg, NULL));
    return NULL;
}

int main(void) {
    test_start_server();
    latchkey_client *client = NULL;
    latchkey_lock *lock = NULL, *other = NULL;
    latchkey_guard *held = NULL, *guard = NULL;
    latchkey_cancel *cancel = NULL;
    latchkey_error *err = NULL;
    bool triggered = true;

    CHECK_OK(latchkey_client_open(test_server.url, NULL, &client, NULL));
    CHECK_OK(latchkey_lock_new(client, "cancel-me", NULL, &lock, NULL));
    CHECK_OK(latchkey_lock_new(client, "cancel-me", NULL, &other, NULL));
    CHECK_OK(latchkey_cancel_new(&cancel, NULL));
    CHECK_OK(latchkey_cancel_is_triggered(cancel, &triggered, NULL));
    CHECK(!triggered);
    CHECK_OK(latchkey_lock_acquire(lock, -1, NULL, &held, NULL));

    /* A helper thread waits for ever; this thread cancels it. */
    struct waiter w;
    memset(&w, 0, sizeof w);
    w.lock = other;
    w.cancel = cancel;
    w.status = LATCHKEY_OK;
    pthread_mutex_init(&w.mutex, NULL);
    pthread_cond_init(&w.cond, NULL);
    pthread_t thread;
    CHECK(pthread_create(&thread, NULL, wait_for_lock, &w) == 0);
    pthread_mutex_lock(&w.mutex);
    while (!w.started) pthread_cond_wait(&w.cond, &w.mutex);
    pthread_mutex_unlock(&w.mutex);
    CHECK_OK(latchkey_cancel_trigger(cancel, NULL));
    CHECK(pthread_join(thread, NULL) == 0);
    CHECK_STATUS(LATCHKEY_CANCELLED, w.status);
    pthread_mutex_destroy(&w.mutex);
    pthread_cond_destroy(&w.cond);
    test_pass("a waiting acquire is cancelled from another thread");

    /* Triggered stays triggered (even for a free lock) until reset. */
    CHECK_OK(latchkey_cancel_is_triggered(cancel, &triggered, NULL));
    CHECK(triggered);
    CHECK_STATUS(LATCHKEY_CANCELLED, latchkey_lock_acquire(other, 0, cancel, &guard, &err));
    CHECK(latchkey_error_status(err) == LATCHKEY_CANCELLED);
    CHECK(strstr(latchkey_error_message(err), "cancel-me") != NULL);
    latchkey_error_free(err);
    CHECK_OK(latchkey_cancel_reset(cancel, NULL));
    CHECK_OK(latchkey_cancel_is_triggered(cancel, &triggered, NULL));
    CHECK(!triggered);
    CHECK_STATUS(LATCHKEY_TIMEOUT, latchkey_lock_acquire(other, 0, cancel, &guard, NULL));
    CHECK_STATUS(LATCHKEY_TIMEOUT, latchkey_lock_acquire(other, 20, cancel, &guard, NULL));
    test_pass("a triggered handle stays triggered until reset; reset handles time out");

    /* This thread waits; a helper thread cancels. */
    pthread_t canceller;
    CHECK(pthread_create(&canceller, NULL, trigger, cancel) == 0);
    CHECK_STATUS(LATCHKEY_CANCELLED, latchkey_lock_acquire(other, -1, cancel, &guard, NULL));
    CHECK(pthread_join(canceller, NULL) == 0);
    CHECK(guard == NULL);
    test_pass("the calling thread's wait is cancelled by a helper thread");

    /* After reset and release, the same handle lets an acquire succeed. */
    CHECK_OK(latchkey_cancel_reset(cancel, NULL));
    CHECK_OK(latchkey_guard_release(held, NULL));
    CHECK_OK(latchkey_lock_acquire(other, -1, cancel, &guard, NULL));
    CHECK_OK(latchkey_guard_release(guard, NULL));
    test_pass("a reset handle does not stop a successful acquire");

    latchkey_guard_free(guard);
    latchkey_guard_free(held);
    latchkey_cancel_free(cancel);
    latchkey_lock_free(other);
    latchkey_lock_free(lock);
    latchkey_client_free(client);
    test_stop_server();
    return 0;
}
