/*
 * fork(): holds are not inherited. A child that inherited a guard sees it
 * as lost, cannot release it (LATCHKEY_NOT_HELD, nothing sent to Redis),
 * and freeing it releases nothing; the parent still holds the lock. A
 * reentrant lock handle used in the child is another owner: it cannot nest
 * into the parent's hold.
 */
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

/* Runs `child` in a forked process; returns its exit status. */
static int in_child(int (*child)(latchkey_guard *, latchkey_lock *), latchkey_guard *guard,
                    latchkey_lock *lock) {
    fflush(stdout);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        /* Leave through exec, as the README recommends after a fork: the
         * child's copy of the parent's library threads' memory is not
         * the child's to free (valgrind would count it as lost). */
        int code = child(guard, lock);
        execl(code == 0 ? "/bin/true" : "/bin/false", code == 0 ? "true" : "false", (char *)NULL);
        _exit(code);
    }
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status));
    return WEXITSTATUS(status);
}

/* The child's checks report 0 or a number that says which failed; the
 * parent sees only success or failure (the exec keeps 0 / 1). */
static int child_drops_the_inherited_guard(latchkey_guard *guard, latchkey_lock *lock) {
    (void)lock;
    if (latchkey_guard_check(guard, NULL) != LATCHKEY_LOST) return 2;
    bool lost = false;
    if (latchkey_guard_lost(guard, &lost, NULL) != LATCHKEY_OK || !lost) return 3;
    if (latchkey_guard_release(guard, NULL) != LATCHKEY_NOT_HELD) return 4;
    latchkey_guard_free(guard);
    return 0;
}

static int child_tries_to_nest(latchkey_guard *guard, latchkey_lock *lock) {
    (void)guard;
    latchkey_guard *nested = NULL;
    latchkey_status status = latchkey_lock_try_acquire(lock, &nested, NULL);
    if (status == LATCHKEY_OK && nested != NULL) return 5; /* nested into the parent's hold */
    if (status != LATCHKEY_TIMEOUT && status != LATCHKEY_OK) return 6;
    return 0;
}

static void check_still_held(latchkey_client *client, const char *name, latchkey_guard *guard) {
    CHECK_OK(latchkey_guard_check(guard, NULL));
    bool held = false;
    CHECK_OK(latchkey_client_is_locked(client, name, &held, NULL));
    CHECK(held);
    bool confirmed = false;
    CHECK_OK(latchkey_guard_confirm(guard, &confirmed, NULL));
    CHECK(confirmed);
}

int main(void) {
    test_start_server();
    latchkey_client *client = NULL;
    CHECK_OK(latchkey_client_open(test_server.url, NULL, &client, NULL));

    latchkey_lock *plain = NULL;
    latchkey_guard *guard = NULL;
    CHECK_OK(latchkey_lock_new(client, "fork-plain", NULL, &plain, NULL));
    CHECK_OK(latchkey_lock_acquire(plain, 5000, NULL, &guard, NULL));
    CHECK(in_child(child_drops_the_inherited_guard, guard, plain) == 0);
    check_still_held(client, "fork-plain", guard);
    CHECK_OK(latchkey_guard_release(guard, NULL));
    latchkey_guard_free(guard);
    test_pass("a child cannot release or vouch for its parent's hold");

    latchkey_lock_options *options = NULL;
    CHECK_OK(latchkey_lock_options_new(&options, NULL));
    CHECK_OK(latchkey_lock_options_set_reentrant(options, true, NULL));
    latchkey_lock *reentrant = NULL;
    CHECK_OK(latchkey_lock_new(client, "fork-reentrant", options, &reentrant, NULL));
    latchkey_lock_options_free(options);
    CHECK_OK(latchkey_lock_acquire(reentrant, 5000, NULL, &guard, NULL));
    CHECK(in_child(child_tries_to_nest, guard, reentrant) == 0);
    check_still_held(client, "fork-reentrant", guard);
    CHECK_OK(latchkey_guard_release(guard, NULL));
    latchkey_guard_free(guard);
    test_pass("a reentrant handle is another owner in the child");

    latchkey_lock_free(plain);
    latchkey_lock_free(reentrant);
    latchkey_client_free(client);
    test_stop_server();
    return 0;
}
