/*
 * A lost lease is reported everywhere: a second client force-unlocks the
 * lock, the holder's renewal finds it gone, the callback runs on the
 * watchdog thread (awaited with a condition variable, not a sleep), and
 * the guard reports LATCHKEY_LOST / LATCHKEY_NOT_HELD. The callback's user
 * data is freed exactly once, after the last handle that could call it.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "check.h"

struct lost_report {
    pthread_mutex_t mutex;
    pthread_cond_t cond;
    int calls;
    int frees;
    char name[64];
    char reason[512];
    uint64_t fencing_token;
};

static struct lost_report report = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0,
                                    "", "", 0};

static void on_lost(void *user, const char *name, const char *owner_token, uint64_t fencing_token,
                    const char *reason) {
    struct lost_report *r = user;
    (void)owner_token;
    pthread_mutex_lock(&r->mutex);
    r->calls++;
    snprintf(r->name, sizeof r->name, "%s", name);
    snprintf(r->reason, sizeof r->reason, "%s", reason);
    r->fencing_token = fencing_token;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->mutex);
}

static void free_report(void *user) {
    struct lost_report *r = user;
    pthread_mutex_lock(&r->mutex);
    r->frees++;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->mutex);
}

/* Waits until *counter > 0. The bound only turns a hang into a failure. */
static void await(int *counter) {
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 60;
    pthread_mutex_lock(&report.mutex);
    while (*counter == 0) {
        int rc = pthread_cond_timedwait(&report.cond, &report.mutex, &deadline);
        if (rc == ETIMEDOUT) break;
    }
    int seen = *counter;
    pthread_mutex_unlock(&report.mutex);
    CHECK(seen > 0);
}

int main(void) {
    test_start_server();
    latchkey_client *holder_client = NULL, *admin = NULL;
    latchkey_lock_options *options = NULL;
    latchkey_lock *lock = NULL;
    latchkey_guard *guard = NULL;
    latchkey_error *err = NULL;
    uint64_t fencing = 0, remaining = 99;
    bool deleted = false, lost = false;

    CHECK_OK(latchkey_client_open(test_server.url, NULL, &holder_client, NULL));
    CHECK_OK(latchkey_client_open(test_server.url, NULL, &admin, NULL));
    CHECK_OK(latchkey_lock_options_new(&options, NULL));
    /* A short ttl renews often (every ttl/3), so the loss is found soon. */
    CHECK_OK(latchkey_lock_options_set_ttl_ms(options, 600, NULL));
    CHECK_OK(latchkey_lock_options_set_auto_renew(options, true, NULL));
    CHECK_OK(latchkey_lock_options_set_on_lost(options, on_lost, &report, free_report, NULL));
    CHECK_OK(latchkey_lock_new(holder_client, "fragile", options, &lock, NULL));
    latchkey_lock_options_free(options);
    CHECK_OK(latchkey_lock_acquire(lock, 1000, NULL, &guard, NULL));
    CHECK_OK(latchkey_guard_fencing_token(guard, &fencing, NULL));

    CHECK_OK(latchkey_client_force_unlock(admin, "fragile", &deleted, NULL));
    CHECK(deleted);
    await(&report.calls);

    pthread_mutex_lock(&report.mutex);
    CHECK(report.calls == 1);
    CHECK(strcmp(report.name, "fragile") == 0);
    CHECK(report.fencing_token == fencing);
    CHECK(strstr(report.reason, "fragile") != NULL);
    pthread_mutex_unlock(&report.mutex);
    test_pass("the lost-lease callback runs after another client deletes the lock");

    CHECK_STATUS(LATCHKEY_LOST, latchkey_guard_check(guard, &err));
    CHECK(latchkey_error_status(err) == LATCHKEY_LOST);
    CHECK(strlen(latchkey_error_message(err)) > 0);
    latchkey_error_free(err);
    CHECK_OK(latchkey_guard_lost(guard, &lost, NULL));
    CHECK(lost);
    CHECK_OK(latchkey_guard_remaining_ms(guard, &remaining, NULL));
    CHECK(remaining == 0);
    CHECK_STATUS(LATCHKEY_NOT_HELD, latchkey_guard_extend(guard, 1000, NULL));
    CHECK_STATUS(LATCHKEY_NOT_HELD, latchkey_guard_release(guard, NULL));
    test_pass("the guard reports the loss: check LOST, extend and release NOT_HELD");

    /* The lock handle still holds the callback: not freed yet. */
    latchkey_guard_free(guard);
    pthread_mutex_lock(&report.mutex);
    CHECK(report.frees == 0);
    pthread_mutex_unlock(&report.mutex);
    latchkey_lock_free(lock);
    await(&report.frees);
    latchkey_client_free(admin);
    latchkey_client_free(holder_client);
    pthread_mutex_lock(&report.mutex);
    CHECK(report.frees == 1 && report.calls == 1);
    pthread_mutex_unlock(&report.mutex);
    test_pass("the callback's user data is freed once, after its last handle");

    test_stop_server();
    return 0;
}
