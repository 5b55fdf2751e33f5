/*
 * Handle misuse is detected, not a crash: a handle of the wrong type (a
 * client passed as a lock, a lock as a cancel handle or a guard), a handle
 * used after it was freed and a handle freed twice each return
 * LATCHKEY_INVALID_ARGUMENT and leave the other handles usable. An err_out
 * that cannot be written (misaligned) never costs a leaked error object:
 * ASan and valgrind fail this program if one leaks.
 *
 * usage: test_handles [CASE]   (every case when none is given)
 */
#include <stdint.h>
#include <string.h>

#include "check.h"

#define INVALID LATCHKEY_INVALID_ARGUMENT

static latchkey_client *client;
static latchkey_lock *lock;

static void make_lock(latchkey_lock **out, const char *name) {
    CHECK_OK(latchkey_lock_new(client, name, NULL, out, NULL));
}

static void client_as_lock(void) {
    latchkey_guard *guard = NULL;
    const char *name = NULL;
    CHECK_STATUS(INVALID, latchkey_lock_acquire((const latchkey_lock *)client, 0, NULL, &guard,
                                                NULL));
    CHECK_STATUS(INVALID, latchkey_lock_name((const latchkey_lock *)client, &name, NULL));
    CHECK(guard == NULL && name == NULL);
    CHECK(strstr(latchkey_last_error(), "latchkey_client") != NULL);
    /* The lock given the client's place is refused too. */
    CHECK_STATUS(INVALID, latchkey_client_prefix((const latchkey_client *)lock, &name, NULL));
    test_pass("a client passed as a lock is an invalid argument");
}

static void lock_as_cancel(void) {
    latchkey_guard *guard = NULL;
    CHECK_STATUS(INVALID, latchkey_lock_acquire(lock, 0, (const latchkey_cancel *)lock, &guard,
                                                NULL));
    CHECK(guard == NULL);
    CHECK_STATUS(INVALID, latchkey_cancel_trigger((latchkey_cancel *)lock, NULL));
    CHECK_STATUS(INVALID, latchkey_cancel_free((latchkey_cancel *)lock));
    /* The lock survived all of that. */
    CHECK_OK(latchkey_lock_acquire(lock, 1000, NULL, &guard, NULL));
    CHECK_OK(latchkey_guard_release(guard, NULL));
    CHECK_OK(latchkey_guard_free(guard));
    test_pass("a lock passed as a cancel handle is an invalid argument");
}

static void lock_as_guard(void) {
    bool lost = false;
    CHECK_STATUS(INVALID, latchkey_guard_release((latchkey_guard *)lock, NULL));
    CHECK_STATUS(INVALID, latchkey_guard_lost((const latchkey_guard *)lock, &lost, NULL));
    CHECK_STATUS(INVALID, latchkey_guard_free((latchkey_guard *)lock));
    const char *name = NULL;
    CHECK_OK(latchkey_lock_name(lock, &name, NULL));
    CHECK(strcmp(name, "handles") == 0);
    test_pass("a lock passed as a guard is an invalid argument");
}

static void cancel_after_free(void) {
    latchkey_cancel *cancel = NULL;
    latchkey_guard *guard = NULL;
    bool triggered = false;
    CHECK_OK(latchkey_cancel_new(&cancel, NULL));
    CHECK_OK(latchkey_cancel_free(cancel));
    CHECK_STATUS(INVALID, latchkey_cancel_trigger(cancel, NULL));
    CHECK_STATUS(INVALID, latchkey_cancel_is_triggered(cancel, &triggered, NULL));
    CHECK_STATUS(INVALID, latchkey_lock_acquire(lock, 0, cancel, &guard, NULL));
    CHECK(guard == NULL);
    CHECK(strstr(latchkey_last_error(), "freed") != NULL);
    CHECK_STATUS(INVALID, latchkey_cancel_free(cancel));
    test_pass("a cancel handle used after free is an invalid argument");
}

static void double_lock_free(void) {
    latchkey_lock *other = NULL;
    const char *name = NULL;
    make_lock(&other, "freed-twice");
    CHECK_OK(latchkey_lock_free(other));
    CHECK_STATUS(INVALID, latchkey_lock_free(other));
    CHECK_STATUS(INVALID, latchkey_lock_name(other, &name, NULL));
    CHECK(name == NULL);
    test_pass("a lock freed twice is an invalid argument");
}

static void other_handles_after_free(void) {
    latchkey_guard *guard = NULL;
    latchkey_client *spare = NULL;
    latchkey_client_options *copts = NULL;
    latchkey_lock_options *lopts = NULL;
    latchkey_error *err = NULL;
    uint64_t token = 0;
    const char *prefix = NULL;

    CHECK_OK(latchkey_lock_acquire(lock, 1000, NULL, &guard, NULL));
    CHECK_OK(latchkey_guard_free(guard)); /* releases */
    CHECK_STATUS(INVALID, latchkey_guard_fencing_token(guard, &token, NULL));
    CHECK_STATUS(INVALID, latchkey_guard_free(guard));

    CHECK_OK(latchkey_client_open(test_server.url, NULL, &spare, NULL));
    CHECK_OK(latchkey_client_free(spare));
    CHECK_STATUS(INVALID, latchkey_client_prefix(spare, &prefix, NULL));
    CHECK_STATUS(INVALID, latchkey_client_free(spare));

    CHECK_OK(latchkey_client_options_new(&copts, NULL));
    CHECK_OK(latchkey_client_options_free(copts));
    CHECK_STATUS(INVALID, latchkey_client_options_set_pool_size(copts, 2, NULL));
    CHECK_STATUS(INVALID, latchkey_client_options_free(copts));

    CHECK_OK(latchkey_lock_options_new(&lopts, NULL));
    CHECK_OK(latchkey_lock_options_free(lopts));
    CHECK_STATUS(INVALID, latchkey_lock_options_set_ttl_ms(lopts, 1000, NULL));
    CHECK_STATUS(INVALID, latchkey_lock_new(client, "n", lopts, &lock, NULL));
    CHECK_STATUS(INVALID, latchkey_lock_options_free(lopts));

    CHECK_STATUS(INVALID, latchkey_lock_new(client, "", NULL, &lock, &err));
    CHECK(err != NULL);
    CHECK(latchkey_error_status(err) == INVALID);
    CHECK_OK(latchkey_error_free(err));
    CHECK(latchkey_error_status(err) == INVALID);
    CHECK(strcmp(latchkey_error_message(err), "") == 0);
    CHECK_STATUS(INVALID, latchkey_error_free(err));
    test_pass("guards, clients, options and errors used after free are invalid arguments");
}

static void misaligned_err_out(void) {
    /* Room for a pointer at an odd address. */
    union {
        uint64_t align;
        unsigned char bytes[2 * sizeof(void *)];
    } space;
    unsigned char *room = space.bytes;
    memset(room, 0x5a, sizeof space.bytes);
    latchkey_error **odd = (latchkey_error **)(void *)(room + 1);
    latchkey_lock *unused = NULL;
    for (int i = 0; i < 1000; i++) {
        CHECK_STATUS(INVALID, latchkey_lock_new(NULL, "n", NULL, &unused, odd));
    }
    for (size_t i = 0; i < sizeof space.bytes; i++) CHECK(room[i] == 0x5a);
    /* The message is still there for the thread. */
    CHECK(strstr(latchkey_last_error(), "client") != NULL);
    test_pass("a misaligned err_out is left alone and no error object leaks");
}

static const struct {
    const char *name;
    void (*run)(void);
} cases[] = {
    {"client_as_lock", client_as_lock},
    {"lock_as_cancel", lock_as_cancel},
    {"lock_as_guard", lock_as_guard},
    {"cancel_after_free", cancel_after_free},
    {"double_lock_free", double_lock_free},
    {"other_handles_after_free", other_handles_after_free},
    {"misaligned_err_out", misaligned_err_out},
};

int main(int argc, char **argv) {
    test_start_server();
    CHECK_OK(latchkey_client_open(test_server.url, NULL, &client, NULL));
    make_lock(&lock, "handles");
    int ran = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (argc > 1 && strcmp(argv[1], cases[i].name) != 0) continue;
        cases[i].run();
        ran++;
    }
    CHECK(ran > 0);
    CHECK_OK(latchkey_lock_free(lock));
    CHECK_OK(latchkey_client_free(client));
    test_stop_server();
    return 0;
}
