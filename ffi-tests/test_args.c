/*
 * Bad input never crashes: every required pointer argument NULL, strings
 * that are not UTF-8, empty and oversized names, zero and huge TTLs and
 * timeouts, bad URLs and prefixes, double release, free(NULL). Each returns
 * its documented status, and output arguments stay untouched on failure.
 */
#include <string.h>

#include "check.h"

#define INVALID LATCHKEY_INVALID_ARGUMENT

/* An invalid UTF-8 string: a lone continuation byte. */
static const char bad_utf8[] = {'o', 'r', 'd', (char)0x80, 's', 0};

static void test_null_everywhere(latchkey_client *client, latchkey_lock *lock,
                                 latchkey_guard *guard) {
    latchkey_client_options *copts = NULL;
    latchkey_lock_options *lopts = NULL;
    latchkey_cancel *cancel = NULL;
    CHECK_OK(latchkey_client_options_new(&copts, NULL));
    CHECK_OK(latchkey_lock_options_new(&lopts, NULL));
    CHECK_OK(latchkey_cancel_new(&cancel, NULL));

    /* Sentinels: a failed call must leave its outputs alone. */
    latchkey_client *client_out = (latchkey_client *)&client_out;
    latchkey_lock *lock_out = (latchkey_lock *)&lock_out;
    latchkey_guard *guard_out = (latchkey_guard *)&guard_out;
    const char *str_out = "untouched";
    bool bool_out = true;
    uint64_t u64_out = 77;
    uint8_t *bytes_out = (uint8_t *)&bytes_out;
    size_t size_out = 77;
    latchkey_lock_info info, untouched;
    memset(&info, 0x5a, sizeof info);
    memcpy(&untouched, &info, sizeof info);
    const uint8_t value[] = "v";
    const char *test_url = test_server.url;

    /* Constructors and option setters. */
    CHECK_STATUS(INVALID, latchkey_client_options_new(NULL, NULL));
    CHECK_STATUS(INVALID, latchkey_client_options_set_connect_timeout_ms(NULL, 1, NULL));
    CHECK_STATUS(INVALID, latchkey_client_options_set_command_timeout_ms(NULL, 1, NULL));
    CHECK_STATUS(INVALID, latchkey_client_options_set_prefix(NULL, "p", NULL));
    CHECK_STATUS(INVALID, latchkey_client_options_set_prefix(copts, NULL, NULL));
    CHECK_STATUS(INVALID, latchkey_client_options_set_pool_size(NULL, 1, NULL));
    CHECK_STATUS(INVALID, latchkey_client_options_set_spin_us(NULL, 1, NULL));
    CHECK_STATUS(INVALID, latchkey_client_open(NULL, NULL, &client_out, NULL));
    CHECK_STATUS(INVALID, latchkey_client_open(test_server.url, NULL, NULL, NULL));
    CHECK_STATUS(INVALID, latchkey_client_open_redlock(NULL, 3, NULL, &client_out, NULL));
    CHECK_STATUS(INVALID, latchkey_client_open_sentinel(NULL, 1, "m", NULL, &client_out, NULL));
    CHECK_STATUS(INVALID, latchkey_client_open_sentinel(&test_url, 1, NULL, NULL, &client_out,
                                                        NULL));
    CHECK_STATUS(INVALID, latchkey_client_open_sentinel(&test_url, 1, "m", NULL, NULL, NULL));
    CHECK_STATUS(INVALID, latchkey_client_open_cluster(NULL, 1, NULL, &client_out, NULL));
    CHECK_STATUS(INVALID, latchkey_client_open_cluster(&test_url, 1, NULL, NULL, NULL));
    CHECK_STATUS(INVALID, latchkey_client_options_set_wait_for_replicas(NULL, 1, 1, NULL));
    CHECK_STATUS(INVALID, latchkey_client_options_set_master_password(NULL, "p", NULL));
    CHECK_STATUS(INVALID, latchkey_client_options_set_master_password(copts, NULL, NULL));
    CHECK_STATUS(INVALID, latchkey_client_options_set_master_db(NULL, 1, NULL));
    CHECK_STATUS(INVALID, latchkey_client_options_set_redlock_restart_delay_ms(NULL, 1, NULL));
    CHECK(!latchkey_error_is_busy(NULL));
    CHECK_STATUS(INVALID, latchkey_lock_options_new(NULL, NULL));
    CHECK_STATUS(INVALID, latchkey_lock_options_set_ttl_ms(NULL, 1000, NULL));
    CHECK_STATUS(INVALID, latchkey_lock_options_set_auto_renew(NULL, true, NULL));
    CHECK_STATUS(INVALID, latchkey_lock_options_set_reentrant(NULL, true, NULL));
    CHECK_STATUS(INVALID, latchkey_lock_options_set_retry_jitter_ms(NULL, 1, NULL));
    CHECK_STATUS(INVALID, latchkey_lock_options_set_renew_every_ms(NULL, 1, NULL));
    CHECK_STATUS(INVALID, latchkey_lock_options_set_on_lost(NULL, NULL, NULL, NULL, NULL));
    CHECK_STATUS(INVALID, latchkey_lock_new(NULL, "n", NULL, &lock_out, NULL));
    CHECK_STATUS(INVALID, latchkey_lock_new(client, NULL, NULL, &lock_out, NULL));
    CHECK_STATUS(INVALID, latchkey_lock_new(client, "n", lopts, NULL, NULL));
    CHECK_STATUS(INVALID, latchkey_cancel_new(NULL, NULL));

    /* Client calls. */
    CHECK_STATUS(INVALID, latchkey_client_prefix(NULL, &str_out, NULL));
    CHECK_STATUS(INVALID, latchkey_client_prefix(client, NULL, NULL));
    CHECK_STATUS(INVALID, latchkey_client_inspect(NULL, "n", &info, NULL));
    CHECK_STATUS(INVALID, latchkey_client_inspect(client, NULL, &info, NULL));
    CHECK_STATUS(INVALID, latchkey_client_inspect(client, "n", NULL, NULL));
    CHECK_STATUS(INVALID, latchkey_client_is_locked(NULL, "n", &bool_out, NULL));
    CHECK_STATUS(INVALID, latchkey_client_is_locked(client, NULL, &bool_out, NULL));
    CHECK_STATUS(INVALID, latchkey_client_is_locked(client, "n", NULL, NULL));
    CHECK_STATUS(INVALID, latchkey_client_force_unlock(NULL, "n", &bool_out, NULL));
    CHECK_STATUS(INVALID, latchkey_client_force_unlock(client, NULL, &bool_out, NULL));
    CHECK_STATUS(INVALID, latchkey_client_force_unlock(client, "n", NULL, NULL));
    latchkey_master_state *masters_out = (latchkey_master_state *)&masters_out;
    CHECK_STATUS(INVALID, latchkey_client_inspect_masters(NULL, "n", &masters_out, &size_out,
                                                          NULL));
    CHECK_STATUS(INVALID, latchkey_client_inspect_masters(client, NULL, &masters_out, &size_out,
                                                          NULL));
    CHECK_STATUS(INVALID, latchkey_client_inspect_masters(client, "n", NULL, &size_out, NULL));
    CHECK_STATUS(INVALID, latchkey_client_inspect_masters(client, "n", &masters_out, NULL, NULL));
    CHECK(masters_out == (latchkey_master_state *)&masters_out);
    CHECK_STATUS(INVALID, latchkey_client_fenced_write(NULL, "r", 1, value, 1, &bool_out,
                                                       &u64_out, NULL));
    CHECK_STATUS(INVALID, latchkey_client_fenced_write(client, NULL, 1, value, 1, &bool_out,
                                                       &u64_out, NULL));
    CHECK_STATUS(INVALID, latchkey_client_fenced_write(client, "r", 1, NULL, 1, &bool_out,
                                                       &u64_out, NULL));
    CHECK_STATUS(INVALID, latchkey_client_fenced_write(client, "r", 1, value, 1, NULL,
                                                       &u64_out, NULL));
    CHECK_STATUS(INVALID, latchkey_client_fenced_write(client, "r", 1, value, 1, &bool_out,
                                                       NULL, NULL));
    CHECK_STATUS(INVALID, latchkey_client_fenced_read(NULL, "r", &bool_out, &u64_out,
                                                      &bytes_out, &size_out, NULL));
    CHECK_STATUS(INVALID, latchkey_client_fenced_read(client, NULL, &bool_out, &u64_out,
                                                      &bytes_out, &size_out, NULL));
    CHECK_STATUS(INVALID, latchkey_client_fenced_read(client, "r", NULL, &u64_out, &bytes_out,
                                                      &size_out, NULL));
    CHECK_STATUS(INVALID, latchkey_client_fenced_read(client, "r", &bool_out, NULL, &bytes_out,
                                                      &size_out, NULL));
    CHECK_STATUS(INVALID, latchkey_client_fenced_read(client, "r", &bool_out, &u64_out, NULL,
                                                      &size_out, NULL));
    CHECK_STATUS(INVALID, latchkey_client_fenced_read(client, "r", &bool_out, &u64_out,
                                                      &bytes_out, NULL, NULL));

    /* Lock calls. */
    CHECK_STATUS(INVALID, latchkey_lock_name(NULL, &str_out, NULL));
    CHECK_STATUS(INVALID, latchkey_lock_name(lock, NULL, NULL));
    CHECK_STATUS(INVALID, latchkey_lock_acquire(NULL, 0, NULL, &guard_out, NULL));
    CHECK_STATUS(INVALID, latchkey_lock_acquire(lock, 0, cancel, NULL, NULL));
    CHECK_STATUS(INVALID, latchkey_lock_try_acquire(NULL, &guard_out, NULL));
    CHECK_STATUS(INVALID, latchkey_lock_try_acquire(lock, NULL, NULL));

    /* Guard calls. */
    CHECK_STATUS(INVALID, latchkey_guard_release(NULL, NULL));
    CHECK_STATUS(INVALID, latchkey_guard_extend(NULL, 1000, NULL));
    CHECK_STATUS(INVALID, latchkey_guard_extend_by(NULL, 1000, NULL));
    CHECK_STATUS(INVALID, latchkey_guard_check(NULL, NULL));
    CHECK_STATUS(INVALID, latchkey_guard_lost(NULL, &bool_out, NULL));
    CHECK_STATUS(INVALID, latchkey_guard_lost(guard, NULL, NULL));
    CHECK_STATUS(INVALID, latchkey_guard_remaining_ms(NULL, &u64_out, NULL));
    CHECK_STATUS(INVALID, latchkey_guard_remaining_ms(guard, NULL, NULL));
    CHECK_STATUS(INVALID, latchkey_guard_fencing_token(NULL, &u64_out, NULL));
    CHECK_STATUS(INVALID, latchkey_guard_fencing_token(guard, NULL, NULL));
    CHECK_STATUS(INVALID, latchkey_guard_owner_token(NULL, &str_out, NULL));
    CHECK_STATUS(INVALID, latchkey_guard_owner_token(guard, NULL, NULL));
    CHECK_STATUS(INVALID, latchkey_guard_name(NULL, &str_out, NULL));
    CHECK_STATUS(INVALID, latchkey_guard_name(guard, NULL, NULL));

    /* Cancel calls. */
    CHECK_STATUS(INVALID, latchkey_cancel_trigger(NULL, NULL));
    CHECK_STATUS(INVALID, latchkey_cancel_reset(NULL, NULL));
    CHECK_STATUS(INVALID, latchkey_cancel_is_triggered(NULL, &bool_out, NULL));
    CHECK_STATUS(INVALID, latchkey_cancel_is_triggered(cancel, NULL, NULL));

    /* The message names the function and the argument. */
    CHECK(strcmp(latchkey_last_error(), "latchkey_cancel_is_triggered: `triggered_out` is NULL") ==
          0);

    CHECK(client_out == (latchkey_client *)&client_out);
    CHECK(lock_out == (latchkey_lock *)&lock_out);
    CHECK(guard_out == (latchkey_guard *)&guard_out);
    CHECK(strcmp(str_out, "untouched") == 0);
    CHECK(bool_out && u64_out == 77 && size_out == 77);
    CHECK(bytes_out == (uint8_t *)&bytes_out);
    CHECK(memcmp(&info, &untouched, sizeof info) == 0);

    latchkey_cancel_free(cancel);
    latchkey_lock_options_free(lopts);
    latchkey_client_options_free(copts);
    test_pass("every required pointer argument NULL is LATCHKEY_INVALID_ARGUMENT");
}

static void test_bad_strings(latchkey_client *client) {
    latchkey_client_options *copts = NULL;
    latchkey_client *other = NULL;
    latchkey_lock *lock = NULL;
    latchkey_lock_info info;
    bool flag = false;
    uint64_t token = 0;
    uint8_t *bytes = NULL;
    size_t len = 0;
    char long_name[5000];
    memset(long_name, 'x', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';

    CHECK_STATUS(INVALID, latchkey_client_open(bad_utf8, NULL, &other, NULL));
    CHECK(strstr(latchkey_last_error(), "UTF-8") != NULL);
    CHECK_STATUS(INVALID, latchkey_client_open("http://127.0.0.1", NULL, &other, NULL));
    CHECK_STATUS(INVALID, latchkey_client_open("", NULL, &other, NULL));
    CHECK_STATUS(INVALID, latchkey_client_open("rediss://", NULL, &other, NULL));
    CHECK_STATUS(INVALID, latchkey_client_open("redis://u:s3cret@host:notaport", NULL, &other, NULL));
    CHECK(strstr(latchkey_last_error(), "s3cret") == NULL);

    CHECK_OK(latchkey_client_options_new(&copts, NULL));
    CHECK_STATUS(INVALID, latchkey_client_options_set_prefix(copts, bad_utf8, NULL));
    CHECK_STATUS(INVALID, latchkey_client_options_set_master_password(copts, bad_utf8, NULL));
    CHECK_OK(latchkey_client_options_set_prefix(copts, "a{b", NULL));
    CHECK_STATUS(INVALID, latchkey_client_open(test_server.url, copts, &other, NULL));
    CHECK_OK(latchkey_client_options_set_prefix(copts, "", NULL));
    CHECK_STATUS(INVALID, latchkey_client_open(test_server.url, copts, &other, NULL));
    latchkey_client_options_free(copts);
    CHECK(other == NULL);

    CHECK_STATUS(INVALID, latchkey_lock_new(client, bad_utf8, NULL, &lock, NULL));
    CHECK_STATUS(INVALID, latchkey_lock_new(client, "", NULL, &lock, NULL));
    CHECK_STATUS(INVALID, latchkey_lock_new(client, long_name, NULL, &lock, NULL));
    CHECK(strstr(latchkey_last_error(), "4096") != NULL);
    CHECK(lock == NULL);
    CHECK_STATUS(INVALID, latchkey_client_inspect(client, bad_utf8, &info, NULL));
    CHECK_STATUS(INVALID, latchkey_client_is_locked(client, "", &flag, NULL));
    CHECK_STATUS(INVALID, latchkey_client_force_unlock(client, bad_utf8, &flag, NULL));
    CHECK_STATUS(INVALID, latchkey_client_fenced_write(client, bad_utf8, 1, NULL, 0, &flag, &token,
                                                       NULL));
    CHECK_STATUS(INVALID, latchkey_client_fenced_read(client, "", &flag, &token, &bytes, &len,
                                                      NULL));
    /* Fencing tokens start at 1: 0 is never a real one. */
    CHECK_STATUS(INVALID, latchkey_client_fenced_write(client, "r", 0, NULL, 0, &flag, &token,
                                                       NULL));
    test_pass("non-UTF-8, empty and oversized strings, bad URLs and prefixes are refused");
}

static void test_bad_numbers(latchkey_client *client) {
    latchkey_client_options *copts = NULL;
    latchkey_lock_options *lopts = NULL;
    latchkey_client *other = NULL;
    latchkey_lock *lock = NULL;
    latchkey_guard *guard = NULL;

    CHECK_OK(latchkey_client_options_new(&copts, NULL));
    CHECK_OK(latchkey_client_options_set_connect_timeout_ms(copts, 0, NULL));
    CHECK_STATUS(INVALID, latchkey_client_open(test_server.url, copts, &other, NULL));
    CHECK_OK(latchkey_client_options_set_connect_timeout_ms(copts, 1000, NULL));
    CHECK_OK(latchkey_client_options_set_command_timeout_ms(copts, UINT64_MAX, NULL));
    CHECK_STATUS(INVALID, latchkey_client_open(test_server.url, copts, &other, NULL));
    CHECK_OK(latchkey_client_options_set_command_timeout_ms(copts, 1000, NULL));
    CHECK_OK(latchkey_client_options_set_pool_size(copts, 0, NULL));
    CHECK_STATUS(INVALID, latchkey_client_open(test_server.url, copts, &other, NULL));
    CHECK_OK(latchkey_client_options_set_pool_size(copts, SIZE_MAX, NULL));
    CHECK_STATUS(INVALID, latchkey_client_open(test_server.url, copts, &other, NULL));
    latchkey_client_options_free(copts);

    CHECK_OK(latchkey_lock_options_new(&lopts, NULL));
    CHECK_OK(latchkey_lock_options_set_ttl_ms(lopts, 0, NULL));
    CHECK_STATUS(INVALID, latchkey_lock_new(client, "n", lopts, &lock, NULL));
    CHECK(strstr(latchkey_last_error(), "ttl") != NULL);
    CHECK_OK(latchkey_lock_options_set_ttl_ms(lopts, UINT64_MAX, NULL));
    CHECK_STATUS(INVALID, latchkey_lock_new(client, "n", lopts, &lock, NULL));
    CHECK_OK(latchkey_lock_options_set_ttl_ms(lopts, 1000, NULL));
    CHECK_OK(latchkey_lock_options_set_retry_jitter_ms(lopts, UINT64_MAX, NULL));
    CHECK_STATUS(INVALID, latchkey_lock_new(client, "n", lopts, &lock, NULL));
    CHECK_OK(latchkey_lock_options_set_retry_jitter_ms(lopts, 0, NULL));
    CHECK_OK(latchkey_lock_options_set_renew_every_ms(lopts, 1000, NULL));
    CHECK_STATUS(INVALID, latchkey_lock_new(client, "n", lopts, &lock, NULL));
    CHECK_OK(latchkey_lock_options_set_renew_every_ms(lopts, 0, NULL));
    CHECK_STATUS(INVALID, latchkey_lock_new(client, "n", lopts, &lock, NULL));
    CHECK(lock == NULL);
    CHECK_OK(latchkey_lock_options_set_renew_every_ms(lopts, 300, NULL));
    CHECK_OK(latchkey_lock_new(client, "numbers", lopts, &lock, NULL));
    latchkey_lock_options_free(lopts);

    CHECK_OK(latchkey_lock_acquire(lock, INT64_MAX, NULL, &guard, NULL));
    CHECK_STATUS(INVALID, latchkey_guard_extend(guard, 0, NULL));
    CHECK_STATUS(INVALID, latchkey_guard_extend(guard, UINT64_MAX, NULL));
    CHECK_STATUS(INVALID, latchkey_guard_extend_by(guard, UINT64_MAX, NULL));
    CHECK_OK(latchkey_guard_check(guard, NULL));
    CHECK_OK(latchkey_guard_release(guard, NULL));
    CHECK_STATUS(LATCHKEY_NOT_HELD, latchkey_guard_release(guard, NULL));
    CHECK_STATUS(LATCHKEY_NOT_HELD, latchkey_guard_release(guard, NULL));
    latchkey_guard_free(guard);
    latchkey_lock_free(lock);
    test_pass("zero and huge ttls, timeouts, pool sizes; double release is NOT_HELD");
}

static void test_spin_limit(void) {
    latchkey_client_options *copts = NULL;
    latchkey_client *other = NULL;
    latchkey_error *err = NULL;

    CHECK_OK(latchkey_client_options_new(&copts, NULL));
    CHECK_OK(latchkey_client_options_set_spin_us(copts, 0, NULL));
    CHECK_OK(latchkey_client_options_set_spin_us(copts, 10000, NULL));
    CHECK_STATUS(INVALID, latchkey_client_options_set_spin_us(copts, 10001, &err));
    CHECK(err != NULL && latchkey_error_status(err) == INVALID);
    CHECK(strstr(latchkey_error_message(err), "latchkey_client_options_set_spin_us") != NULL);
    CHECK(strstr(latchkey_error_message(err), "at most 10000") != NULL);
    CHECK(strstr(latchkey_last_error(), "at most 10000") != NULL);
    latchkey_error_free(err);
    CHECK_STATUS(INVALID, latchkey_client_options_set_spin_us(copts, UINT64_MAX, NULL));
    /* A refused limit is not kept: the options still hold 10000, which opens. */
    CHECK_OK(latchkey_client_open(test_server.url, copts, &other, NULL));
    latchkey_client_free(other);
    latchkey_client_options_free(copts);
    test_pass("a spin limit above 10000 us is refused by its setter and not kept");
}

static void test_free_null_and_names(void) {
    latchkey_client_options_free(NULL);
    latchkey_client_free(NULL);
    latchkey_lock_options_free(NULL);
    latchkey_lock_free(NULL);
    latchkey_guard_free(NULL);
    latchkey_cancel_free(NULL);
    latchkey_error_free(NULL);
    latchkey_bytes_free(NULL, 0);
    latchkey_bytes_free(NULL, 12);
    latchkey_master_states_free(NULL, 0);
    latchkey_master_states_free(NULL, 3);
    CHECK(latchkey_error_status(NULL) == LATCHKEY_OK);
    CHECK(strcmp(latchkey_error_message(NULL), "") == 0);
    CHECK(strcmp(latchkey_status_name(-1), "unknown status") == 0);
    CHECK(strcmp(latchkey_status_name(LATCHKEY_CLOSED + 1), "unknown status") == 0);
    for (int s = LATCHKEY_OK; s <= LATCHKEY_CLOSED; s++) {
        CHECK(strcmp(latchkey_status_name(s), "unknown status") != 0);
    }
    test_pass("every *_free accepts NULL; status names cover every status");
}

int main(void) {
    test_start_server();
    latchkey_client *client = NULL;
    latchkey_lock *lock = NULL;
    latchkey_guard *guard = NULL;
    CHECK_OK(latchkey_client_open(test_server.url, NULL, &client, NULL));
    CHECK_OK(latchkey_lock_new(client, "args", NULL, &lock, NULL));
    CHECK_OK(latchkey_lock_acquire(lock, 1000, NULL, &guard, NULL));

    test_null_everywhere(client, lock, guard);
    test_bad_strings(client);
    test_bad_numbers(client);
    test_spin_limit();
    test_free_null_and_names();

    CHECK_OK(latchkey_guard_release(guard, NULL));
    latchkey_guard_free(guard);
    latchkey_lock_free(lock);
    latchkey_client_free(client);
    test_stop_server();
    return 0;
}
