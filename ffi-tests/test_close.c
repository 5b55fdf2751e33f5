/*
 * latchkey_client_close, the one close of all four languages (tests/close.rs,
 * the Python and Go tests run the same scenario): a lock held through the
 * client is free in Redis as soon as the close returns, its guard says not
 * held (not lost), and a waiter of the client returns LATCHKEY_CLOSED.
 * Before, freeing a client released nothing and ended no wait.
 *
 * Also: an invalid URL's error never shows a password given as ?pass=.
 */
#include <pthread.h>
#include <string.h>

#include "check.h"

struct waiter {
    latchkey_lock *lock;
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
    w->status = latchkey_lock_acquire(w->lock, -1, NULL, &guard, NULL);
    latchkey_guard_free(guard);
    return NULL;
}

static void close_releases_holds_and_ends_waits(void) {
    latchkey_client *client = NULL, *other = NULL;
    latchkey_lock *held_lock = NULL, *waited_lock = NULL, *blocker_lock = NULL, *fresh_lock = NULL;
    latchkey_guard *held = NULL, *blocker = NULL, *fresh = NULL;
    latchkey_error *err = NULL;
    bool lost = true;

    CHECK_OK(latchkey_client_open(test_server.url, NULL, &client, NULL));
    CHECK_OK(latchkey_client_open(test_server.url, NULL, &other, NULL));
    CHECK_OK(latchkey_lock_new(client, "close-held", NULL, &held_lock, NULL));
    CHECK_OK(latchkey_lock_new(client, "close-waited", NULL, &waited_lock, NULL));
    CHECK_OK(latchkey_lock_new(other, "close-waited", NULL, &blocker_lock, NULL));
    CHECK_OK(latchkey_lock_new(other, "close-held", NULL, &fresh_lock, NULL));
    CHECK_OK(latchkey_lock_acquire(held_lock, -1, NULL, &held, NULL));
    CHECK_OK(latchkey_lock_acquire(blocker_lock, -1, NULL, &blocker, NULL));

    struct waiter w;
    memset(&w, 0, sizeof w);
    w.lock = waited_lock;
    w.status = LATCHKEY_OK;
    pthread_mutex_init(&w.mutex, NULL);
    pthread_cond_init(&w.cond, NULL);
    pthread_t thread;
    CHECK(pthread_create(&thread, NULL, wait_for_lock, &w) == 0);
    pthread_mutex_lock(&w.mutex);
    while (!w.started) pthread_cond_wait(&w.cond, &w.mutex);
    pthread_mutex_unlock(&w.mutex);

    /* Parked or about to be: either way the close ends the wait. */
    CHECK_OK(latchkey_client_close(client, NULL));
    CHECK_OK(latchkey_lock_try_acquire(fresh_lock, &fresh, NULL));
    CHECK(fresh != NULL);
    CHECK(pthread_join(thread, NULL) == 0);
    CHECK_STATUS(LATCHKEY_CLOSED, w.status);
    CHECK_STATUS(LATCHKEY_NOT_HELD, latchkey_guard_check(held, NULL));
    CHECK_OK(latchkey_guard_lost(held, &lost, NULL));
    CHECK(!lost);
    CHECK_STATUS(LATCHKEY_CLOSED, latchkey_lock_try_acquire(held_lock, &held, &err));
    CHECK(strstr(latchkey_error_message(err), "closed") != NULL);
    latchkey_error_free(err);
    CHECK_OK(latchkey_client_close(client, NULL));
    test_pass("close releases the client's holds at once and ends its waits with CLOSED");

    pthread_mutex_destroy(&w.mutex);
    pthread_cond_destroy(&w.cond);
    latchkey_guard_free(held);
    CHECK_OK(latchkey_guard_release(fresh, NULL));
    latchkey_guard_free(fresh);
    CHECK_OK(latchkey_guard_release(blocker, NULL));
    latchkey_guard_free(blocker);
    latchkey_lock_free(fresh_lock);
    latchkey_lock_free(blocker_lock);
    latchkey_lock_free(waited_lock);
    latchkey_lock_free(held_lock);
    latchkey_client_free(other);
    latchkey_client_free(client);
}

static void an_invalid_url_never_shows_its_password(void) {
    const char *urls[] = {
        "unix:///tmp/no-such.sock?pass=S3CRETpw&db=x",
        "redis://127.0.0.1:notaport/?pass=S3CRETpw",
        "redis://127.0.0.1/?password=S3CRETpw",
        "unix:///tmp/no-such.sock?password=S3CRETpw",
    };
    for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++) {
        latchkey_client *client = NULL;
        latchkey_error *err = NULL;
        CHECK_STATUS(LATCHKEY_INVALID_ARGUMENT, latchkey_client_open(urls[i], NULL, &client, &err));
        CHECK(client == NULL);
        CHECK(strstr(latchkey_error_message(err), "S3CRETpw") == NULL);
        CHECK(strstr(latchkey_last_error(), "S3CRETpw") == NULL);
        latchkey_error_free(err);
    }
    test_pass("an invalid URL's error never shows a ?pass= or ?password= secret");
}

int main(void) {
    test_start_server();
    close_releases_holds_and_ends_waits();
    an_invalid_url_never_shows_its_password();
    test_stop_server();
    return 0;
}
