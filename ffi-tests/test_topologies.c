/*
 * The other deployments from C. Redlock: a client over three masters (three
 * private servers) takes and gives back locks like a single-server client,
 * excludes a second Redlock client, reports each master's view, and refuses
 * bad master lists; with the default restart delay, masters younger than the
 * ttl grant nothing that counts until they have run a ttl. Sentinel and
 * Cluster clients open without connecting
 * and report an unreachable deployment as LATCHKEY_CONNECTION (their
 * behaviour against real deployments is tested in Rust). Waiting for
 * replicas on a server that has none fails the acquire with a timeout.
 */
#include <string.h>

#include "check.h"

#define MASTERS 3

/* The default restart delay (the largest ttl in use): the client cannot
 * tell masters that just started from ones that restarted and lost their
 * locks, so no lock is granted until they have run a ttl. The restart
 * delay is for Redlock only. */
static void test_fresh_masters_grant_nothing_for_a_ttl(const char **urls) {
    latchkey_client *patient = NULL, *none = NULL;
    latchkey_lock_options *long_ttl = NULL, *short_ttl = NULL;
    latchkey_lock *lock = NULL;
    latchkey_guard *guard = NULL;
    latchkey_client_options *options = NULL;

    /* A ttl far longer than the masters have run: not granted, and the
     * error says why (no master says the lock is held). */
    CHECK_OK(latchkey_client_open_redlock(urls, MASTERS, NULL, &patient, NULL));
    CHECK_OK(latchkey_lock_options_new(&long_ttl, NULL));
    CHECK_OK(latchkey_lock_options_set_ttl_ms(long_ttl, 3600 * 1000, NULL));
    CHECK_OK(latchkey_lock_new(patient, "fresh", long_ttl, &lock, NULL));
    latchkey_error *err = NULL;
    CHECK_STATUS(LATCHKEY_NO_QUORUM, latchkey_lock_try_acquire(lock, &guard, &err));
    CHECK(strstr(latchkey_error_message(err), "restart delay") != NULL);
    CHECK(latchkey_error_is_busy(err)); /* not now, rather than not at all */
    latchkey_error_free(err);
    CHECK(guard == NULL);
    latchkey_lock_free(lock);
    latchkey_client_free(patient);

    /* A short ttl, on a client that never used a longer one: a waiter gets
     * the lock once the masters have run that ttl. */
    CHECK_OK(latchkey_client_open_redlock(urls, MASTERS, NULL, &patient, NULL));
    CHECK_OK(latchkey_lock_options_new(&short_ttl, NULL));
    CHECK_OK(latchkey_lock_options_set_ttl_ms(short_ttl, 2000, NULL));
    CHECK_OK(latchkey_lock_new(patient, "fresh", short_ttl, &lock, NULL));
    CHECK_OK(latchkey_lock_acquire(lock, 60000, NULL, &guard, NULL));
    CHECK_OK(latchkey_guard_release(guard, NULL));
    latchkey_guard_free(guard);
    latchkey_lock_free(lock);
    latchkey_client_free(patient);
    latchkey_lock_options_free(long_ttl);
    latchkey_lock_options_free(short_ttl);

    CHECK_OK(latchkey_client_options_new(&options, NULL));
    CHECK_OK(latchkey_client_options_set_redlock_restart_delay_ms(options, 0, NULL));
    CHECK_STATUS(LATCHKEY_INVALID_ARGUMENT,
                 latchkey_client_open(urls[0], options, &none, NULL));
    CHECK(strstr(latchkey_last_error(), "Redlock only") != NULL);
    CHECK(none == NULL);
    latchkey_client_options_free(options);
    test_pass("masters younger than the ttl grant nothing that counts until they ran a ttl");
}

int main(void) {
    test_start_server();
    redis_fixture others[MASTERS - 1];
    const char *urls[MASTERS];
    urls[0] = test_server.url;
    for (int i = 0; i < MASTERS - 1; i++) {
        if (redis_fixture_start(&others[i]) != 0) {
            for (int j = 0; j < i; j++) redis_fixture_stop(&others[j]);
            test_stop_server();
            return 1;
        }
        urls[i + 1] = others[i].url;
    }

    latchkey_client *client = NULL, *rival = NULL, *none = NULL;
    latchkey_lock *lock = NULL, *rival_lock = NULL;
    latchkey_guard *guard = NULL, *rival_guard = NULL;
    latchkey_lock_info info;
    uint64_t fencing = 0;
    test_fresh_masters_grant_nothing_for_a_ttl(urls);

    /* Fresh test servers: no restart to wait out. */
    latchkey_client_options *trusting = NULL;
    CHECK_OK(latchkey_client_options_new(&trusting, NULL));
    CHECK_OK(latchkey_client_options_set_redlock_restart_delay_ms(trusting, 0, NULL));
    CHECK_OK(latchkey_client_open_redlock(urls, MASTERS, trusting, &client, NULL));
    CHECK_OK(latchkey_client_open_redlock(urls, MASTERS, trusting, &rival, NULL));
    latchkey_client_options_free(trusting);
    CHECK_OK(latchkey_lock_new(client, "quorum", NULL, &lock, NULL));
    CHECK_OK(latchkey_lock_new(rival, "quorum", NULL, &rival_lock, NULL));

    CHECK_OK(latchkey_lock_acquire(lock, 5000, NULL, &guard, NULL));
    CHECK_OK(latchkey_guard_fencing_token(guard, &fencing, NULL));
    CHECK(fencing > 0);
    CHECK_STATUS(LATCHKEY_TIMEOUT, latchkey_lock_try_acquire(rival_lock, &rival_guard, NULL));
    CHECK_OK(latchkey_client_inspect(client, "quorum", &info, NULL));
    CHECK(info.locked && info.fencing_token == fencing);
    CHECK_OK(latchkey_guard_check(guard, NULL));

    latchkey_master_state *masters = NULL;
    size_t count = 0;
    const char *token = NULL;
    CHECK_OK(latchkey_guard_owner_token(guard, &token, NULL));
    CHECK_OK(latchkey_client_inspect_masters(client, "quorum", &masters, &count, NULL));
    CHECK(count == MASTERS && masters != NULL);
    for (size_t i = 0; i < count; i++) {
        CHECK(masters[i].server != NULL && strstr(masters[i].server, "127.0.0.1") != NULL);
        CHECK(masters[i].holder != NULL && strcmp(masters[i].holder, token) == 0);
        CHECK(masters[i].error == NULL);
        CHECK(masters[i].ttl_ms > 0 && masters[i].ttl_ms <= 30000);
    }
    latchkey_master_states_free(masters, count);

    CHECK_OK(latchkey_guard_release(guard, NULL));
    CHECK_OK(latchkey_client_inspect_masters(client, "quorum", &masters, &count, NULL));
    CHECK(count == 0 && masters == NULL);
    CHECK_OK(latchkey_lock_acquire(rival_lock, 5000, NULL, &rival_guard, NULL));
    CHECK_OK(latchkey_guard_release(rival_guard, NULL));
    test_pass("a Redlock client over three masters locks, excludes and releases");

    /* Bad master lists. */
    const char *two[2] = {urls[0], urls[1]};
    const char *with_null[3] = {urls[0], NULL, urls[2]};
    const char *with_bad[3] = {urls[0], "http://nowhere", urls[2]};
    CHECK_STATUS(LATCHKEY_INVALID_ARGUMENT, latchkey_client_open_redlock(two, 2, NULL, &none, NULL));
    CHECK(strstr(latchkey_last_error(), "odd number") != NULL);
    CHECK_STATUS(LATCHKEY_INVALID_ARGUMENT, latchkey_client_open_redlock(NULL, 3, NULL, &none, NULL));
    CHECK_STATUS(LATCHKEY_INVALID_ARGUMENT, latchkey_client_open_redlock(NULL, 0, NULL, &none, NULL));
    CHECK_STATUS(LATCHKEY_INVALID_ARGUMENT,
                 latchkey_client_open_redlock(with_null, 3, NULL, &none, NULL));
    CHECK(strstr(latchkey_last_error(), "urls[1]") != NULL);
    CHECK_STATUS(LATCHKEY_INVALID_ARGUMENT,
                 latchkey_client_open_redlock(with_bad, 3, NULL, &none, NULL));
    CHECK_STATUS(LATCHKEY_INVALID_ARGUMENT,
                 latchkey_client_open_redlock(urls, MASTERS, NULL, NULL, NULL));
    CHECK(none == NULL);
    test_pass("bad master lists are LATCHKEY_INVALID_ARGUMENT");

    /* Sentinel and Cluster: nothing listens on port 1. */
    const char *nowhere[1] = {"redis://127.0.0.1:1"};
    latchkey_client *remote = NULL;
    latchkey_lock *remote_lock = NULL;
    latchkey_guard *remote_guard = NULL;
    CHECK_OK(latchkey_client_open_sentinel(nowhere, 1, "mymaster", NULL, &remote, NULL));
    CHECK_OK(latchkey_lock_new(remote, "far", NULL, &remote_lock, NULL));
    CHECK_STATUS(LATCHKEY_CONNECTION,
                 latchkey_lock_acquire(remote_lock, 1000, NULL, &remote_guard, NULL));
    CHECK(strstr(latchkey_last_error(), "mymaster") != NULL);
    latchkey_lock_free(remote_lock);
    latchkey_client_free(remote);
    CHECK_STATUS(LATCHKEY_INVALID_ARGUMENT,
                 latchkey_client_open_sentinel(nowhere, 1, "", NULL, &remote, NULL));
    CHECK_STATUS(LATCHKEY_INVALID_ARGUMENT,
                 latchkey_client_open_sentinel(nowhere, 0, "mymaster", NULL, &remote, NULL));
    CHECK_OK(latchkey_client_open_cluster(nowhere, 1, NULL, &remote, NULL));
    CHECK_OK(latchkey_lock_new(remote, "far", NULL, &remote_lock, NULL));
    CHECK_STATUS(LATCHKEY_CONNECTION,
                 latchkey_lock_acquire(remote_lock, 1000, NULL, &remote_guard, NULL));
    latchkey_lock_free(remote_lock);
    latchkey_client_free(remote);
    CHECK_STATUS(LATCHKEY_INVALID_ARGUMENT,
                 latchkey_client_open_cluster(nowhere, 0, NULL, &remote, NULL));
    CHECK(remote_guard == NULL);
    test_pass("Sentinel and Cluster clients open lazily; unreachable is LATCHKEY_CONNECTION");

    /* WAIT for a replica on a server without replicas: the acquire times
     * out and gives the lock back. */
    latchkey_client_options *options = NULL;
    latchkey_client *waiting = NULL;
    latchkey_lock *waiting_lock = NULL;
    latchkey_guard *waiting_guard = NULL;
    bool locked = true;
    CHECK_OK(latchkey_client_options_new(&options, NULL));
    CHECK_OK(latchkey_client_options_set_wait_for_replicas(options, 1, 50, NULL));
    CHECK_OK(latchkey_client_open(test_server.url, options, &waiting, NULL));
    CHECK_STATUS(LATCHKEY_INVALID_ARGUMENT,
                 latchkey_client_open_redlock(urls, MASTERS, options, &remote, NULL));
    CHECK(strstr(latchkey_last_error(), "Redlock") != NULL);
    CHECK_OK(latchkey_client_options_set_wait_for_replicas(options, 0, 50, NULL));
    CHECK_STATUS(LATCHKEY_INVALID_ARGUMENT,
                 latchkey_client_open(test_server.url, options, &remote, NULL));
    CHECK_OK(latchkey_client_options_set_master_password(options, "s3cret", NULL));
    CHECK_OK(latchkey_client_options_set_master_db(options, 2, NULL));
    latchkey_client_options_free(options);
    CHECK_OK(latchkey_lock_new(waiting, "replicated", NULL, &waiting_lock, NULL));
    CHECK_STATUS(LATCHKEY_TIMEOUT,
                 latchkey_lock_acquire(waiting_lock, 1000, NULL, &waiting_guard, NULL));
    CHECK(waiting_guard == NULL);
    CHECK_OK(latchkey_client_is_locked(waiting, "replicated", &locked, NULL));
    CHECK(!locked);
    latchkey_lock_free(waiting_lock);
    latchkey_client_free(waiting);
    test_pass("waiting for a replica that does not exist times out and releases");

    latchkey_guard_free(rival_guard);
    latchkey_guard_free(guard);
    latchkey_lock_free(rival_lock);
    latchkey_lock_free(lock);
    latchkey_client_free(rival);
    latchkey_client_free(client);
    for (int i = 0; i < MASTERS - 1; i++) redis_fixture_stop(&others[i]);
    test_stop_server();
    return 0;
}
