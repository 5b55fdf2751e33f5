/*
 * The few helpers the C tests share: checks that print what failed (with
 * latchkey's message) and stop the test's redis-server, and a banner per
 * passed case. A check that fails in a forked child exits that child only.
 */
#ifndef LATCHKEY_CHECK_H
#define LATCHKEY_CHECK_H

#include <dirent.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "latchkey.h"
#include "redis_fixture.h"

static redis_fixture test_server;
static pid_t test_server_owner;

static inline void test_fail(const char *file, int line, const char *what, const char *detail) {
    fprintf(stderr, "%s:%d: check failed: %s%s%s\n", file, line, what, detail ? "\n  " : "",
            detail ? detail : "");
    fflush(stderr);
    if (getpid() == test_server_owner) {
        redis_fixture_stop(&test_server);
        exit(1);
    }
    _exit(1);
}

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) test_fail(__FILE__, __LINE__, #cond, NULL);                                   \
    } while (0)

/* Checks a call's status; on a mismatch shows the thread's last error. */
#define CHECK_STATUS(expected, call)                                                               \
    do {                                                                                           \
        latchkey_status check_status_ = (call);                                                    \
        if (check_status_ != (expected)) {                                                         \
            char check_detail_[2048];                                                              \
            snprintf(check_detail_, sizeof check_detail_, "returned %s (%d), expected %s: %s",     \
                     latchkey_status_name(check_status_), (int)check_status_,                      \
                     latchkey_status_name(expected), latchkey_last_error());                       \
            test_fail(__FILE__, __LINE__, #call, check_detail_);                                   \
        }                                                                                          \
    } while (0)

#define CHECK_OK(call) CHECK_STATUS(LATCHKEY_OK, call)

static inline void test_start_server(void) {
    test_server_owner = getpid();
    if (redis_fixture_start(&test_server) != 0) exit(1);
}

/*
 * Waits until the calling thread is the process's only thread. Once the last
 * client handle is freed, the library's threads (lease renewal, release
 * listener) end by themselves, a moment later; a process that exits before
 * then has valgrind list their stacks as "possibly lost". The bound only
 * keeps a thread that never ends from hanging the test.
 */
static inline void test_wait_for_library_threads(void) {
#ifdef __linux__
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        DIR *tasks = opendir("/proc/self/task");
        struct dirent *entry;
        int threads = 0;
        if (tasks == NULL) return;
        while ((entry = readdir(tasks)) != NULL) threads += entry->d_name[0] != '.';
        closedir(tasks);
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (threads <= 1 || now.tv_sec - start.tv_sec > 30) return;
        sched_yield();
    }
#endif
}

/* Call after freeing every handle. */
static inline void test_stop_server(void) {
    test_wait_for_library_threads();
    redis_fixture_stop(&test_server);
}

static inline void test_pass(const char *name) {
    printf("ok - %s\n", name);
    fflush(stdout);
}

#endif
