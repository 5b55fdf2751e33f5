/*
 * Attack, not wired into run-tests.sh: fork() from a thread-local
 * destructor while another thread creates and frees handles.
 *
 * The handle registry (src/ffi/handles.rs) takes its table's write lock in
 * a pthread_atfork prepare handler and keeps the guard in a Rust
 * thread-local until the child/parent handler drops it. A thread whose
 * Rust thread-locals are already destroyed (a pthread_key destructor, a
 * C++ thread_local destructor registered before the thread's first fork)
 * cannot keep it: the guard is dropped at once and the fork goes on
 * without the lock. A child forked while another thread held the table
 * (for the few instructions of a handle's creation or free) then has the
 * table locked for ever, and its first latchkey call that makes or frees a
 * handle hangs.
 *
 * Before the guard moved to a static (src/ffi/handles.rs HeldAcrossFork):
 * 42 of 400 children hung in one run (the counts were not yet split; the
 * destructor's forks are the ones without the thread-local). After: 0.
 *
 * Build and run (no Redis needed):
 *   cc -std=c99 -Wall -Wextra -Wpedantic -Werror -D_DEFAULT_SOURCE \
 *      -D_XOPEN_SOURCE=700 -Iinclude ffi-tests/attack_fork_tls.c \
 *      -Ltarget/release -llatchkey -Wl,-rpath,$PWD/target/release -pthread \
 *      -o /tmp/attack_fork_tls && /tmp/attack_fork_tls
 * Exit status 0: every child finished; 1: some child hung (killed after
 * 5 s), with how many of how many forks. Takes seconds when none hangs.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "latchkey.h"

static atomic_int stop;
static int hung_first, hung_in_destructor;

static void *churn(void *unused) {
    (void)unused;
    while (!atomic_load(&stop)) {
        latchkey_lock_options *options = NULL;
        if (latchkey_lock_options_new(&options, NULL) == LATCHKEY_OK) {
            latchkey_lock_options_free(options);
        }
    }
    return NULL;
}

/* Forks a child that makes and frees one handle; returns 1 if it hung. */
static int fork_and_use(void) {
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        exit(2);
    }
    if (pid == 0) {
        latchkey_lock_options *options = NULL;
        if (latchkey_lock_options_new(&options, NULL) == LATCHKEY_OK) {
            latchkey_lock_options_free(options);
        }
        _exit(0);
    }
    for (int waited_ms = 0; waited_ms < 5000; waited_ms++) {
        int status = 0;
        if (waitpid(pid, &status, WNOHANG) == pid) return 0;
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return 1;
}

static pthread_key_t key;

static void fork_in_destructor(void *value) {
    (void)value;
    if (fork_and_use()) hung_in_destructor++;
}

static void *forker(void *unused) {
    (void)unused;
    /* A first fork on this thread sets up the thread-local that keeps the
     * registry's guard across fork; it is destroyed before the pthread_key
     * destructor below runs. */
    if (fork_and_use()) hung_first++;
    pthread_setspecific(key, (void *)1);
    return NULL;
}

int main(void) {
    const int forks = 200;
    pthread_key_create(&key, fork_in_destructor);
    pthread_t churner;
    pthread_create(&churner, NULL, churn, NULL);
    for (int i = 0; i < forks; i++) {
        pthread_t thread;
        pthread_create(&thread, NULL, forker, NULL);
        pthread_join(thread, NULL);
    }
    atomic_store(&stop, 1);
    pthread_join(churner, NULL);
    printf("children hung: %d of %d forked from a thread-local destructor, %d of %d others\n",
           hung_in_destructor, forks, hung_first, forks);
    return hung_in_destructor + hung_first ? 1 : 0;
}
