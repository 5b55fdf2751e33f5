/*
 * A program built the way a user builds one: against the installed header
 * and library found through pkg-config. It checks that the library it runs
 * with is the one it was compiled against, and takes and gives back a lock
 * on its own redis-server.
 */
#include <stdio.h>
#include <string.h>

#include <latchkey.h>

#include "redis_fixture.h"

int main(void) {
    redis_fixture server;
    latchkey_client *client = NULL;
    latchkey_lock *lock = NULL;
    latchkey_guard *guard = NULL;
    latchkey_error *err = NULL;
    uint64_t token = 0;
    int rc = 1;

    if (strcmp(latchkey_version(), LATCHKEY_VERSION_STRING) != 0) {
        fprintf(stderr, "header %s but library %s\n", LATCHKEY_VERSION_STRING, latchkey_version());
        return 1;
    }
    if (redis_fixture_start(&server) != 0) return 1;
    if (latchkey_client_open(server.url, NULL, &client, &err) == LATCHKEY_OK &&
        latchkey_lock_new(client, "installed", NULL, &lock, &err) == LATCHKEY_OK &&
        latchkey_lock_acquire(lock, 5000, NULL, &guard, &err) == LATCHKEY_OK &&
        latchkey_guard_fencing_token(guard, &token, &err) == LATCHKEY_OK &&
        latchkey_guard_release(guard, &err) == LATCHKEY_OK) {
        printf("installed latchkey %s: acquired and released with fencing token %llu\n",
               latchkey_version(), (unsigned long long)token);
        rc = 0;
    } else {
        fprintf(stderr, "%s: %s\n", latchkey_status_name(latchkey_error_status(err)),
                latchkey_error_message(err));
    }
    latchkey_error_free(err);
    latchkey_guard_free(guard);
    latchkey_lock_free(lock);
    latchkey_client_free(client);
    redis_fixture_stop(&server);
    return rc;
}
