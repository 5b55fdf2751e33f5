/*
 * fork(): holds are not inherited. A child that inherited a guard sees it
 * as lost, cannot release it (LATCHKEY_NOT_HELD, nothing sent to Redis),
 * and freeing it releases nothing; the parent still holds the lock. A
 * reentrant lock handle used in the child is another owner: it cannot nest
 * into the parent's hold.
 *
 * And a fork storm: children forked while the parent's library threads are
 * parked (idle watchdog and release listener) and while they are busy (many
 * short leases renewed, a waiter parked and woken), each child opening its
 * own client and using a contended lock, must all finish: no hang, no crash.
 * LATCHKEY_FORK_CHILDREN sets how many children each phase forks (1000 by
 * default; run-tests.sh asks for 50 under valgrind, where each child runs
 * instrumented too). LATCHKEY_FORK_BUSY=0 leaves out the busy phase:
 * run-tests.sh does so under ASan, whose allocator (GCC 12's libasan) has
 * no fork handler: a child forked while a parent thread refills its
 * allocator cache waits for ever on that lock in its first malloc (seen
 * once in 3000 busy forks, the child's stack in
 * SizeClassAllocator64::GetFromAllocator). The idle phase runs there in
 * full: parked library threads do not allocate.
 *
 * Before src/sync.rs, with parking_lot's process-wide table of parked
 * threads inherited by every child, 200 children per phase hung or crashed
 * in 4 of 5 runs (1 or 2 children of the busy phase each; a hung child's
 * main thread parked for good in Parker::park).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
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

/* ---- fork storm ---------------------------------------------------------- */

#define STORM_PARALLEL 8        /* children alive at once */
#define STORM_CHILD_LIMIT_S 20  /* a child not done by then is a hang */
#define STORM_USES 5            /* contended acquires per child */
#define STORM_LEASES 64         /* short leases the busy parent renews */

/* What a multiprocessing worker does: its own client, a contended lock a
 * few times, everything freed. Leaves through exec like in_child. */
static int storm_child(void) {
    latchkey_client *client = NULL;
    if (latchkey_client_open(test_server.url, NULL, &client, NULL) != LATCHKEY_OK) return 10;
    latchkey_lock *lock = NULL;
    if (latchkey_lock_new(client, "fork-storm-contended", NULL, &lock, NULL) != LATCHKEY_OK)
        return 11;
    for (int i = 0; i < STORM_USES; i++) {
        latchkey_guard *guard = NULL;
        if (latchkey_lock_acquire(lock, 30000, NULL, &guard, NULL) != LATCHKEY_OK) return 12;
        if (latchkey_guard_release(guard, NULL) != LATCHKEY_OK) return 13;
        latchkey_guard_free(guard);
    }
    latchkey_lock_free(lock);
    latchkey_client_free(client);
    return 0;
}

struct storm_result {
    int done, hung, crashed, failed;
};

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void storm_fork_one(pid_t *pid, double *started) {
    fflush(stdout);
    fflush(stderr);
    pid_t child = fork();
    CHECK(child >= 0);
    if (child == 0) {
        int code = storm_child();
        if (code != 0) fprintf(stderr, "fork storm child %d: failed at step %d: %s\n", (int)getpid(),
                               code, latchkey_last_error());
        execl(code == 0 ? "/bin/true" : "/bin/false", code == 0 ? "true" : "false", (char *)NULL);
        _exit(code);
    }
    *pid = child;
    *started = now_s();
}

/* Forks `count` children, STORM_PARALLEL at a time; kills and counts any
 * child still running after STORM_CHILD_LIMIT_S. */
static struct storm_result storm(int count) {
    struct storm_result result = {0, 0, 0, 0};
    pid_t pids[STORM_PARALLEL];
    double started[STORM_PARALLEL];
    int forked = 0, alive = 0;
    for (int i = 0; i < STORM_PARALLEL; i++) pids[i] = 0;
    while (forked < count || alive > 0) {
        for (int i = 0; i < STORM_PARALLEL && forked < count; i++) {
            if (pids[i] != 0) continue;
            storm_fork_one(&pids[i], &started[i]);
            forked++;
            alive++;
        }
        bool reaped = false;
        for (int i = 0; i < STORM_PARALLEL; i++) {
            if (pids[i] == 0) continue;
            int status = 0;
            pid_t got = waitpid(pids[i], &status, WNOHANG);
            CHECK(got >= 0);
            if (got == 0) {
                if (now_s() - started[i] < STORM_CHILD_LIMIT_S) continue;
                fprintf(stderr, "fork storm: child %d hung; killing it\n", (int)pids[i]);
                kill(pids[i], SIGKILL);
                CHECK(waitpid(pids[i], &status, 0) == pids[i]);
                result.hung++;
            } else if (WIFSIGNALED(status)) {
                fprintf(stderr, "fork storm: child %d died of signal %d\n", (int)pids[i],
                        WTERMSIG(status));
                result.crashed++;
            } else if (WEXITSTATUS(status) != 0) {
                result.failed++;
            } else {
                result.done++;
            }
            pids[i] = 0;
            alive--;
            reaped = true;
        }
        if (!reaped) {
            struct timespec pause = {0, 1000000};
            nanosleep(&pause, NULL);
        }
    }
    return result;
}

static void check_storm(const char *phase, struct storm_result r, int count) {
    printf("# fork storm (%s): %d children: %d done, %d hung, %d crashed, %d failed\n", phase,
           count, r.done, r.hung, r.crashed, r.failed);
    fflush(stdout);
    CHECK(r.hung == 0);
    CHECK(r.crashed == 0);
    CHECK(r.failed == 0);
    CHECK(r.done == count);
}

/* The busy parent: a waiter parked on a lock that another thread takes and
 * gives back, so the release listener wakes it again and again. */
static atomic_bool storm_stop;
static latchkey_lock *storm_busy_lock;

static void *storm_cycler(void *unused) {
    (void)unused;
    while (!atomic_load(&storm_stop)) {
        latchkey_guard *guard = NULL;
        latchkey_status status = latchkey_lock_acquire(storm_busy_lock, 1000, NULL, &guard, NULL);
        CHECK(status == LATCHKEY_OK || status == LATCHKEY_TIMEOUT);
        if (status != LATCHKEY_OK) continue;
        struct timespec hold = {0, 2000000};
        nanosleep(&hold, NULL);
        CHECK_OK(latchkey_guard_release(guard, NULL));
        latchkey_guard_free(guard);
    }
    return NULL;
}

static int storm_children(void) {
    const char *env = getenv("LATCHKEY_FORK_CHILDREN");
    int count = env != NULL ? atoi(env) : 1000;
    return count > 0 ? count : 1000;
}

static void fork_storm_busy(latchkey_client *client, int count);

static void fork_storm(latchkey_client *client) {
    int count = storm_children();

    /* Idle: one auto-renewed hold whose renewal is far off (the watchdog
     * parked), and a release listener that has subscribed once and waits. */
    latchkey_lock_options *long_ttl = NULL;
    CHECK_OK(latchkey_lock_options_new(&long_ttl, NULL));
    CHECK_OK(latchkey_lock_options_set_ttl_ms(long_ttl, 600000, NULL));
    latchkey_lock *held_lock = NULL;
    latchkey_guard *held = NULL;
    CHECK_OK(latchkey_lock_new(client, "fork-storm-held", long_ttl, &held_lock, NULL));
    latchkey_lock_options_free(long_ttl);
    CHECK_OK(latchkey_lock_acquire(held_lock, 5000, NULL, &held, NULL));
    latchkey_guard *parked = NULL;
    CHECK_STATUS(LATCHKEY_TIMEOUT, latchkey_lock_acquire(held_lock, 50, NULL, &parked, NULL));
    check_storm("parent idle", storm(count), count);
    test_pass("children forked while the parent's library threads are parked all finish");

    const char *busy = getenv("LATCHKEY_FORK_BUSY");
    if (busy != NULL && strcmp(busy, "0") == 0) {
        printf("# fork storm (parent busy): left out (LATCHKEY_FORK_BUSY=0)\n");
    } else {
        fork_storm_busy(client, count);
    }
    CHECK_OK(latchkey_guard_check(held, NULL));
    CHECK_OK(latchkey_guard_release(held, NULL));
    latchkey_guard_free(held);
    latchkey_lock_free(held_lock);
}

static void fork_storm_busy(latchkey_client *client, int count) {

    /* Busy: many short leases renewed every few tens of milliseconds, a
     * waiter parked and woken by releases, while the children fork. */
    latchkey_lock_options *short_ttl = NULL;
    CHECK_OK(latchkey_lock_options_new(&short_ttl, NULL));
    CHECK_OK(latchkey_lock_options_set_ttl_ms(short_ttl, 300, NULL));
    latchkey_lock *leases[STORM_LEASES];
    latchkey_guard *renewed[STORM_LEASES];
    for (int i = 0; i < STORM_LEASES; i++) {
        char name[64];
        snprintf(name, sizeof name, "fork-storm-lease-%d", i);
        CHECK_OK(latchkey_lock_new(client, name, short_ttl, &leases[i], NULL));
        CHECK_OK(latchkey_lock_acquire(leases[i], 5000, NULL, &renewed[i], NULL));
    }
    latchkey_lock_options_free(short_ttl);
    CHECK_OK(latchkey_lock_new(client, "fork-storm-busy", NULL, &storm_busy_lock, NULL));
    atomic_store(&storm_stop, false);
    pthread_t cyclers[2];
    for (int i = 0; i < 2; i++) CHECK(pthread_create(&cyclers[i], NULL, storm_cycler, NULL) == 0);
    check_storm("parent busy", storm(count), count);
    atomic_store(&storm_stop, true);
    for (int i = 0; i < 2; i++) CHECK(pthread_join(cyclers[i], NULL) == 0);
    test_pass("children forked while the parent renews leases and wakes waiters all finish");

    for (int i = 0; i < STORM_LEASES; i++) {
        /* A lease may have been lost under load; only its freeing matters. */
        latchkey_guard_release(renewed[i], NULL);
        latchkey_guard_free(renewed[i]);
        latchkey_lock_free(leases[i]);
    }
    latchkey_lock_free(storm_busy_lock);
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

    fork_storm(client);

    latchkey_lock_free(plain);
    latchkey_lock_free(reentrant);
    latchkey_client_free(client);
    test_stop_server();
    return 0;
}
