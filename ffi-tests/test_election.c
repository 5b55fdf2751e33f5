/*
 * Leader election from C: a candidate campaigns and leads (its guard's
 * fencing token is the term), the leader and its value are read back,
 * a second candidate times out, an observer on another thread is woken
 * by the resignation and by the next leader's announcement (no sleeps:
 * it blocks in latchkey_election_observe), terms increase, and bad input
 * is refused.
 */
#include <pthread.h>
#include <string.h>

#include "check.h"

static latchkey_election *shared_election;
static uint64_t observed_terms[2];
static int observed;

/* Observes until a new leader is seen: nobody (term 0, after the
 * resignation), then the next leader; or the next leader at once, when
 * its campaign was faster than the first look. */
static void *observe(void *arg) {
    uint64_t known = *(uint64_t *)arg, first = known;
    while (observed < 2) {
        bool found = true;
        uint64_t term = 99;
        uint8_t *value = NULL;
        size_t len = 0;
        CHECK_OK(latchkey_election_observe(shared_election, known, 30000, NULL, &found, &term,
                                           &value, &len, NULL));
        CHECK(found == (term != 0));
        latchkey_bytes_free(value, len);
        observed_terms[observed++] = term;
        known = term;
        if (term != 0 && term != first) break;
    }
    return NULL;
}

int main(void) {
    test_start_server();
    latchkey_client *client = NULL;
    latchkey_election *election = NULL, *bad = NULL;
    latchkey_guard *leadership = NULL, *other = NULL, *next = NULL;
    uint64_t term = 0, next_term = 0, read_term = 0;
    bool found = false;
    uint8_t *value = NULL;
    size_t len = 0;
    pthread_t observer;

    CHECK_OK(latchkey_client_open(test_server.url, NULL, &client, NULL));
    CHECK_OK(latchkey_election_new(client, "c-primary", NULL, &election, NULL));
    shared_election = election;
    CHECK_OK(latchkey_election_leader(election, &found, &read_term, &value, &len, NULL));
    CHECK(!found && read_term == 0 && value == NULL && len == 0);

    CHECK_OK(latchkey_election_campaign(election, (const uint8_t *)"node-a", 6, -1, NULL,
                                        &leadership, NULL));
    CHECK_OK(latchkey_guard_fencing_token(leadership, &term, NULL));
    CHECK_OK(latchkey_election_leader(election, &found, &read_term, &value, &len, NULL));
    CHECK(found && read_term == term && len == 6 && memcmp(value, "node-a", 6) == 0);
    CHECK_OK(latchkey_bytes_free(value, len));
    CHECK_STATUS(LATCHKEY_TIMEOUT, latchkey_election_campaign(election, NULL, 0, 0, NULL, &other,
                                                              NULL));
    CHECK(other == NULL);
    test_pass("a candidate leads, its value is read back, a second one times out");

    CHECK(pthread_create(&observer, NULL, observe, &term) == 0);
    CHECK_OK(latchkey_guard_check(leadership, NULL));
    CHECK_OK(latchkey_guard_release(leadership, NULL)); /* resigns */
    CHECK_OK(latchkey_election_campaign(election, (const uint8_t *)"node-b", 6, 10000, NULL, &next,
                                        NULL));
    CHECK(pthread_join(observer, NULL) == 0);
    CHECK_OK(latchkey_guard_fencing_token(next, &next_term, NULL));
    CHECK(next_term > term);
    /* The observer saw nobody, then the next leader; or, if the next
     * campaign was faster than its look, the next leader at once. */
    CHECK((observed == 2 && observed_terms[0] == 0 && observed_terms[1] == next_term) ||
          (observed == 1 && observed_terms[0] == next_term));
    test_pass("an observer is woken by a resignation and the next leader");

    CHECK_STATUS(LATCHKEY_INVALID_ARGUMENT, latchkey_election_new(client, "", NULL, &bad, NULL));
    CHECK(bad == NULL);
    CHECK_STATUS(LATCHKEY_INVALID_ARGUMENT,
                 latchkey_election_campaign(election, NULL, 3, 0, NULL, &other, NULL));
    static uint8_t huge[65537];
    CHECK_STATUS(LATCHKEY_INVALID_ARGUMENT,
                 latchkey_election_campaign(election, huge, sizeof huge, 0, NULL, &other, NULL));
    CHECK_STATUS(LATCHKEY_INVALID_ARGUMENT,
                 latchkey_election_leader((latchkey_election *)client, &found, &read_term, &value,
                                          &len, NULL));
    CHECK(other == NULL);
    test_pass("bad input is refused");

    latchkey_guard_free(next);
    latchkey_guard_free(leadership);
    latchkey_election_free(election);
    latchkey_client_free(client);
    test_wait_for_library_threads();
    test_stop_server();
    return 0;
}
