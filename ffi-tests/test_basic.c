/*
 * The everyday API from C: open, lock, acquire, inspect, extend, fencing,
 * release, reentrancy, fair locks, force-unlock, the err_out convention,
 * and handles that outlive the ones they were made from.
 */
#include <ctype.h>
#include <string.h>

#include "check.h"

static latchkey_client *open_client(const char *prefix) {
    latchkey_client_options *options = NULL;
    latchkey_client *client = NULL;
    CHECK_OK(latchkey_client_options_new(&options, NULL));
    CHECK_OK(latchkey_client_options_set_connect_timeout_ms(options, 2000, NULL));
    CHECK_OK(latchkey_client_options_set_command_timeout_ms(options, 5000, NULL));
    CHECK_OK(latchkey_client_options_set_pool_size(options, 4, NULL));
    if (prefix != NULL) CHECK_OK(latchkey_client_options_set_prefix(options, prefix, NULL));
    CHECK_OK(latchkey_client_open(test_server.url, options, &client, NULL));
    latchkey_client_options_free(options);
    return client;
}

static void test_version_and_names(void) {
    CHECK(strcmp(latchkey_version(), LATCHKEY_VERSION_STRING) == 0);
    char expected[32];
    snprintf(expected, sizeof expected, "%d.%d.%d", LATCHKEY_VERSION_MAJOR, LATCHKEY_VERSION_MINOR,
             LATCHKEY_VERSION_PATCH);
    CHECK(strcmp(latchkey_version(), expected) == 0);
    CHECK(LATCHKEY_OK == 0 && LATCHKEY_INVALID_ARGUMENT == 1 && LATCHKEY_TIMEOUT == 2);
    CHECK(LATCHKEY_NOT_HELD == 3 && LATCHKEY_LOST == 4 && LATCHKEY_CANCELLED == 5);
    CHECK(LATCHKEY_CONNECTION == 6 && LATCHKEY_SERVER == 7 && LATCHKEY_PANIC == 8);
    CHECK(LATCHKEY_NO_QUORUM == 9);
    CHECK(LATCHKEY_AUTH == 10);
    CHECK(strcmp(latchkey_status_name(LATCHKEY_OK), "ok") == 0);
    CHECK(strcmp(latchkey_status_name(LATCHKEY_NOT_HELD), "not held") == 0);
    CHECK(strcmp(latchkey_status_name(12345), "unknown status") == 0);
    test_pass("version macros, latchkey_version and status names agree");
}

static void test_acquire_inspect_release(void) {
    latchkey_client *client = open_client("ffi");
    const char *prefix = NULL;
    CHECK_OK(latchkey_client_prefix(client, &prefix, NULL));
    CHECK(strcmp(prefix, "ffi") == 0);

    latchkey_lock *lock = NULL, *other = NULL;
    CHECK_OK(latchkey_lock_new(client, "basic", NULL, &lock, NULL));
    CHECK_OK(latchkey_lock_new(client, "basic", NULL, &other, NULL));
    const char *name = NULL;
    CHECK_OK(latchkey_lock_name(lock, &name, NULL));
    CHECK(strcmp(name, "basic") == 0);

    latchkey_guard *guard = NULL, *none = NULL;
    CHECK_OK(latchkey_lock_acquire(lock, 5000, NULL, &guard, NULL));
    const char *token = NULL;
    uint64_t fencing = 0, remaining = 0;
    bool lost = true;
    CHECK_OK(latchkey_guard_owner_token(guard, &token, NULL));
    CHECK(strlen(token) == 32);
    for (const char *c = token; *c; c++) CHECK(isxdigit((unsigned char)*c));
    CHECK_OK(latchkey_guard_fencing_token(guard, &fencing, NULL));
    CHECK(fencing > 0);
    CHECK_OK(latchkey_guard_remaining_ms(guard, &remaining, NULL));
    CHECK(remaining > 0 && remaining <= 30000);
    CHECK_OK(latchkey_guard_lost(guard, &lost, NULL));
    CHECK(!lost);
    CHECK_OK(latchkey_guard_check(guard, NULL));
    CHECK_OK(latchkey_guard_name(guard, &name, NULL));
    CHECK(strcmp(name, "basic") == 0);

    /* Held: every way of trying from another handle says so. */
    CHECK_STATUS(LATCHKEY_TIMEOUT, latchkey_lock_try_acquire(other, &none, NULL));
    CHECK_STATUS(LATCHKEY_TIMEOUT, latchkey_lock_acquire(other, 0, NULL, &none, NULL));
    CHECK_STATUS(LATCHKEY_TIMEOUT, latchkey_lock_acquire(other, 50, NULL, &none, NULL));
    CHECK(none == NULL);
    CHECK(strstr(latchkey_last_error(), "basic") != NULL);

    latchkey_lock_info info;
    bool locked = false;
    CHECK_OK(latchkey_client_inspect(client, "basic", &info, NULL));
    CHECK(info.locked);
    CHECK(strcmp(info.owner_token, token) == 0);
    CHECK(info.fencing_token == fencing);
    CHECK(info.ttl_ms > 0 && info.ttl_ms <= 30000);
    CHECK(!info.reentrant && info.hold_count == 1);
    CHECK_OK(latchkey_client_is_locked(client, "basic", &locked, NULL));
    CHECK(locked);

    /* Extending to a minute leaves more than the original 30 s. */
    CHECK_OK(latchkey_guard_extend(guard, 60000, NULL));
    CHECK_OK(latchkey_client_inspect(client, "basic", &info, NULL));
    CHECK(info.ttl_ms > 30000 && info.ttl_ms <= 60000);

    /* A shorter extend leaves the lease whole, in the guard and in Redis
     * (before: the guard's lease was cut to 1 s, Redis kept a minute). */
    uint64_t left = 0;
    CHECK_OK(latchkey_guard_extend(guard, 1000, NULL));
    CHECK_OK(latchkey_guard_remaining_ms(guard, &left, NULL));
    CHECK(left > 30000);
    CHECK_OK(latchkey_client_inspect(client, "basic", &info, NULL));
    CHECK(info.ttl_ms > 30000 && (uint64_t)info.ttl_ms >= left);

    /* extend_by adds to what is left. */
    uint64_t before = left;
    CHECK_OK(latchkey_guard_extend_by(guard, 20000, NULL));
    CHECK_OK(latchkey_guard_remaining_ms(guard, &left, NULL));
    CHECK(left > before + 15000 && left <= before + 20000);
    CHECK_OK(latchkey_client_inspect(client, "basic", &info, NULL));
    CHECK((uint64_t)info.ttl_ms >= left);

    CHECK_OK(latchkey_guard_release(guard, NULL));
    CHECK_OK(latchkey_client_inspect(client, "basic", &info, NULL));
    CHECK(!info.locked && info.owner_token[0] == '\0' && info.fencing_token == 0);
    CHECK(info.ttl_ms == 0 && info.hold_count == 0);
    CHECK_OK(latchkey_client_is_locked(client, "basic", &locked, NULL));
    CHECK(!locked);

    /* Released: tokens stay readable, the rest says it is not held. */
    uint64_t again = 0;
    CHECK_OK(latchkey_guard_fencing_token(guard, &again, NULL));
    CHECK(again == fencing);
    CHECK_OK(latchkey_guard_owner_token(guard, &token, NULL));
    CHECK(strlen(token) == 32);
    CHECK_STATUS(LATCHKEY_NOT_HELD, latchkey_guard_release(guard, NULL));
    CHECK_STATUS(LATCHKEY_NOT_HELD, latchkey_guard_check(guard, NULL));
    CHECK_STATUS(LATCHKEY_NOT_HELD, latchkey_guard_extend(guard, 1000, NULL));
    CHECK_STATUS(LATCHKEY_NOT_HELD, latchkey_guard_extend_by(guard, 1000, NULL));
    CHECK_OK(latchkey_guard_lost(guard, &lost, NULL));
    CHECK(lost);
    CHECK_OK(latchkey_guard_remaining_ms(guard, &remaining, NULL));
    CHECK(remaining == 0);
    latchkey_guard_free(guard);

    /* Free again: the other handle gets it, with a larger fencing token. */
    CHECK_OK(latchkey_lock_try_acquire(other, &guard, NULL));
    CHECK_OK(latchkey_guard_fencing_token(guard, &again, NULL));
    CHECK(again > fencing);
    /* Freeing an unreleased guard releases it. */
    latchkey_guard_free(guard);
    CHECK_OK(latchkey_client_is_locked(client, "basic", &locked, NULL));
    CHECK(!locked);

    latchkey_lock_free(other);
    latchkey_lock_free(lock);
    latchkey_client_free(client);
    test_pass("acquire, inspect, extend, release, tokens after release, free releases");
}

static void test_fenced_write_and_read(void) {
    latchkey_client *client = open_client(NULL);
    latchkey_lock *lock = NULL;
    latchkey_guard *first = NULL, *second = NULL;
    uint64_t old_token = 0, new_token = 0, highest = 0, read_token = 99;
    bool written = false, found = false;
    uint8_t *value = NULL;
    size_t value_len = 0;

    CHECK_OK(latchkey_lock_new(client, "ledger", NULL, &lock, NULL));
    CHECK_OK(latchkey_lock_acquire(lock, -1, NULL, &first, NULL));
    CHECK_OK(latchkey_guard_fencing_token(first, &old_token, NULL));
    CHECK_OK(latchkey_guard_release(first, NULL));
    CHECK_OK(latchkey_lock_acquire(lock, -1, NULL, &second, NULL));
    CHECK_OK(latchkey_guard_fencing_token(second, &new_token, NULL));
    CHECK(new_token > old_token);

    CHECK_OK(latchkey_client_fenced_read(client, "ledger-state", &found, &read_token, &value,
                                         &value_len, NULL));
    CHECK(!found && read_token == 0 && value == NULL && value_len == 0);

    CHECK_OK(latchkey_client_fenced_write(client, "ledger-state", new_token,
                                          (const uint8_t *)"v2", 2, &written, &highest, NULL));
    CHECK(written && highest == new_token);
    /* The paused holder with the older token is refused. */
    CHECK_OK(latchkey_client_fenced_write(client, "ledger-state", old_token,
                                          (const uint8_t *)"v1", 2, &written, &highest, NULL));
    CHECK(!written && highest == new_token);

    CHECK_OK(latchkey_client_fenced_read(client, "ledger-state", &found, &read_token, &value,
                                         &value_len, NULL));
    CHECK(found && read_token == new_token && value_len == 2 && memcmp(value, "v2", 2) == 0);
    latchkey_bytes_free(value, value_len);

    /* An empty value comes back as NULL. */
    CHECK_OK(latchkey_client_fenced_write(client, "empty", new_token, NULL, 0, &written,
                                          &highest, NULL));
    CHECK(written);
    CHECK_OK(latchkey_client_fenced_read(client, "empty", &found, &read_token, &value, &value_len,
                                         NULL));
    CHECK(found && value == NULL && value_len == 0);
    latchkey_bytes_free(NULL, 0);

    latchkey_guard_free(first);
    latchkey_guard_free(second);
    latchkey_lock_free(lock);
    latchkey_client_free(client);
    test_pass("fenced write refuses older tokens; fenced read returns the value");
}

static void test_reentrant_and_force_unlock(void) {
    latchkey_client *client = open_client(NULL);
    latchkey_lock_options *options = NULL;
    latchkey_lock *lock = NULL, *stranger = NULL;
    latchkey_guard *outer = NULL, *inner = NULL, *none = NULL;
    latchkey_lock_info info;
    bool deleted = true;

    CHECK_OK(latchkey_lock_options_new(&options, NULL));
    CHECK_OK(latchkey_lock_options_set_reentrant(options, true, NULL));
    CHECK_OK(latchkey_lock_options_set_ttl_ms(options, 10000, NULL));
    CHECK_OK(latchkey_lock_options_set_retry_jitter_ms(options, 1, NULL));
    CHECK_OK(latchkey_lock_options_set_renew_every_ms(options, 2000, NULL));
    CHECK_OK(latchkey_lock_new(client, "nested", options, &lock, NULL));
    CHECK_OK(latchkey_lock_new(client, "nested", options, &stranger, NULL));
    latchkey_lock_options_free(options);

    CHECK_OK(latchkey_lock_acquire(lock, 1000, NULL, &outer, NULL));
    CHECK_OK(latchkey_lock_acquire(lock, 1000, NULL, &inner, NULL));
    CHECK_STATUS(LATCHKEY_TIMEOUT, latchkey_lock_try_acquire(stranger, &none, NULL));
    CHECK_OK(latchkey_client_inspect(client, "nested", &info, NULL));
    CHECK(info.locked && info.reentrant && info.hold_count == 2);
    CHECK(info.ttl_ms > 0 && info.ttl_ms <= 10000);
    CHECK_OK(latchkey_guard_release(inner, NULL));
    CHECK_OK(latchkey_client_inspect(client, "nested", &info, NULL));
    CHECK(info.locked && info.hold_count == 1);
    CHECK_OK(latchkey_guard_release(outer, NULL));
    CHECK_OK(latchkey_client_inspect(client, "nested", &info, NULL));
    CHECK(!info.locked);

    CHECK_OK(latchkey_client_force_unlock(client, "nested", &deleted, NULL));
    CHECK(!deleted);
    CHECK_OK(latchkey_lock_acquire(stranger, 1000, NULL, &none, NULL));
    CHECK_OK(latchkey_client_force_unlock(client, "nested", &deleted, NULL));
    CHECK(deleted);
    CHECK_STATUS(LATCHKEY_NOT_HELD, latchkey_guard_release(none, NULL));

    latchkey_guard_free(none);
    latchkey_guard_free(inner);
    latchkey_guard_free(outer);
    latchkey_lock_free(stranger);
    latchkey_lock_free(lock);
    latchkey_client_free(client);
    test_pass("reentrant holds nest per handle; force-unlock deletes any holder's lock");
}

static void test_fair_lock(void) {
    latchkey_client *client = open_client(NULL);
    latchkey_lock_options *options = NULL;
    latchkey_lock *first = NULL, *second = NULL, *refused = NULL;
    latchkey_guard *held = NULL, *none = NULL;
    latchkey_error *err = NULL;

    CHECK_OK(latchkey_lock_options_new(&options, NULL));
    CHECK_OK(latchkey_lock_options_set_fair(options, true, NULL));
    CHECK_OK(latchkey_lock_new(client, "fair", options, &first, NULL));
    CHECK_OK(latchkey_lock_new(client, "fair", options, &second, NULL));
    CHECK_OK(latchkey_lock_acquire(first, 1000, NULL, &held, NULL));
    CHECK_STATUS(LATCHKEY_TIMEOUT, latchkey_lock_try_acquire(second, &none, NULL));
    CHECK_OK(latchkey_guard_release(held, NULL));
    latchkey_guard_free(held);
    CHECK_OK(latchkey_lock_try_acquire(second, &held, NULL));
    CHECK_OK(latchkey_guard_release(held, NULL));
    latchkey_guard_free(held);

    /* Fair and reentrant together are refused, with the reason. */
    CHECK_OK(latchkey_lock_options_set_reentrant(options, true, NULL));
    CHECK_STATUS(LATCHKEY_INVALID_ARGUMENT, latchkey_lock_new(client, "fair", options, &refused, &err));
    CHECK(refused == NULL);
    CHECK(strstr(latchkey_error_message(err), "fair and reentrant") != NULL);
    latchkey_error_free(err);
    latchkey_lock_options_free(options);

    latchkey_lock_free(second);
    latchkey_lock_free(first);
    latchkey_client_free(client);
    test_pass("a fair lock: a try does not jump a holder; fair and reentrant are refused");
}

static void test_err_out(void) {
    latchkey_client *client = open_client(NULL);
    latchkey_lock *lock = NULL;
    latchkey_guard *guard = NULL;
    latchkey_error *err = NULL;

    CHECK_STATUS(LATCHKEY_INVALID_ARGUMENT, latchkey_lock_new(client, "", NULL, &lock, &err));
    CHECK(err != NULL && lock == NULL);
    CHECK(latchkey_error_status(err) == LATCHKEY_INVALID_ARGUMENT);
    CHECK(strstr(latchkey_error_message(err), "latchkey_lock_new") != NULL);
    CHECK(strstr(latchkey_error_message(err), "empty") != NULL);
    CHECK(strcmp(latchkey_error_message(err), latchkey_last_error()) == 0);
    latchkey_error_free(err);

    err = NULL;
    CHECK_OK(latchkey_lock_new(client, "err-out", NULL, &lock, &err));
    CHECK(err == NULL);
    CHECK(strcmp(latchkey_last_error(), "") == 0);
    CHECK_OK(latchkey_lock_acquire(lock, 1000, NULL, &guard, &err));
    CHECK_OK(latchkey_guard_release(guard, &err));
    CHECK_STATUS(LATCHKEY_NOT_HELD, latchkey_guard_release(guard, &err));
    CHECK(latchkey_error_status(err) == LATCHKEY_NOT_HELD);
    CHECK(strstr(latchkey_error_message(err), "already released") != NULL);
    /* A successful call sets *err_out to NULL: keep the old error to free it. */
    latchkey_error *old = err;
    const char *name = NULL;
    CHECK_OK(latchkey_lock_name(lock, &name, &err));
    CHECK(err == NULL);
    latchkey_error_free(old);

    latchkey_guard_free(guard);
    latchkey_lock_free(lock);
    latchkey_client_free(client);
    test_pass("err_out: set on failure with status and message, NULL on success");
}

static void test_spin_limits(void) {
    /* Spinning off, the longest spin limit, and the default (no option). */
    const uint64_t limits[] = {0, 10000};
    for (size_t i = 0; i <= sizeof limits / sizeof limits[0]; i++) {
        latchkey_client_options *options = NULL;
        latchkey_client *client = NULL;
        latchkey_lock *lock = NULL, *other = NULL;
        latchkey_guard *guard = NULL, *none = NULL;
        CHECK_OK(latchkey_client_options_new(&options, NULL));
        if (i < sizeof limits / sizeof limits[0]) {
            CHECK_OK(latchkey_client_options_set_spin_us(options, limits[i], NULL));
        }
        CHECK_OK(latchkey_client_open(test_server.url, options, &client, NULL));
        latchkey_client_options_free(options);
        CHECK_OK(latchkey_lock_new(client, "spin", NULL, &lock, NULL));
        CHECK_OK(latchkey_lock_new(client, "spin", NULL, &other, NULL));
        CHECK_OK(latchkey_lock_acquire(lock, 5000, NULL, &guard, NULL));
        CHECK_STATUS(LATCHKEY_TIMEOUT, latchkey_lock_try_acquire(other, &none, NULL));
        CHECK(none == NULL);
        CHECK_OK(latchkey_guard_release(guard, NULL));
        CHECK_OK(latchkey_lock_try_acquire(other, &none, NULL));
        CHECK_OK(latchkey_guard_release(none, NULL));
        latchkey_guard_free(none);
        latchkey_guard_free(guard);
        latchkey_lock_free(other);
        latchkey_lock_free(lock);
        latchkey_client_free(client);
    }
    test_pass("spin limits 0 and 10000 us and the default each take and release a lock");
}

static void test_handles_outlive_their_parents(void) {
    latchkey_client *client = open_client(NULL);
    latchkey_lock *lock = NULL;
    latchkey_guard *guard = NULL;
    CHECK_OK(latchkey_lock_new(client, "orphans", NULL, &lock, NULL));
    latchkey_client_free(client);
    CHECK_OK(latchkey_lock_acquire(lock, 1000, NULL, &guard, NULL));
    latchkey_lock_free(lock);
    CHECK_OK(latchkey_guard_check(guard, NULL));
    CHECK_OK(latchkey_guard_release(guard, NULL));
    latchkey_guard_free(guard);
    test_pass("locks and guards outlive the client and lock they came from");
}

static void test_unreachable_server(void) {
    latchkey_client_options *options = NULL;
    latchkey_client *client = NULL;
    latchkey_lock *lock = NULL;
    latchkey_guard *guard = NULL;
    latchkey_error *err = NULL;
    CHECK_OK(latchkey_client_options_new(&options, NULL));
    CHECK_OK(latchkey_client_options_set_connect_timeout_ms(options, 1000, NULL));
    /* Port 1 on loopback: nothing listens there, so connecting is refused. */
    CHECK_OK(latchkey_client_open("redis://127.0.0.1:1", options, &client, NULL));
    CHECK_OK(latchkey_lock_new(client, "unreachable", NULL, &lock, NULL));
    CHECK_STATUS(LATCHKEY_CONNECTION, latchkey_lock_acquire(lock, 1000, NULL, &guard, &err));
    CHECK(guard == NULL && latchkey_error_status(err) == LATCHKEY_CONNECTION);
    CHECK(strstr(latchkey_error_message(err), "127.0.0.1:1") != NULL);
    latchkey_error_free(err);
    latchkey_lock_free(lock);
    latchkey_client_free(client);
    latchkey_client_options_free(options);
    test_pass("an unreachable server is LATCHKEY_CONNECTION");
}

int main(void) {
    test_start_server();
    test_version_and_names();
    test_acquire_inspect_release();
    test_fenced_write_and_read();
    test_reentrant_and_force_unlock();
    test_fair_lock();
    test_err_out();
    test_spin_limits();
    test_handles_outlive_their_parents();
    test_unreachable_server();
    test_stop_server();
    return 0;
}
