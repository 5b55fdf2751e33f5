/*
 * A panic inside the library comes back as LATCHKEY_PANIC with a message,
 * on any thread, and the library keeps working afterwards. (Rust's panic
 * hook also prints the panic on stderr: that line is expected.)
 */
#include <pthread.h>
#include <string.h>

#include "check.h"

static void *panic_here(void *arg) {
    latchkey_error *err = NULL;
    *(latchkey_status *)arg = latchkey_debug_panic(&err);
    CHECK(latchkey_error_status(err) == LATCHKEY_PANIC);
    latchkey_error_free(err);
    return NULL;
}

int main(void) {
    test_start_server();
    latchkey_error *err = NULL;
    CHECK_STATUS(LATCHKEY_PANIC, latchkey_debug_panic(&err));
    CHECK(latchkey_error_status(err) == LATCHKEY_PANIC);
    CHECK(strstr(latchkey_error_message(err), "latchkey_debug_panic") != NULL);
    CHECK(strstr(latchkey_error_message(err), "deliberate panic") != NULL);
    CHECK(strcmp(latchkey_last_error(), latchkey_error_message(err)) == 0);
    CHECK(strcmp(latchkey_status_name(LATCHKEY_PANIC), "internal panic") == 0);
    latchkey_error_free(err);
    CHECK_STATUS(LATCHKEY_PANIC, latchkey_debug_panic(NULL));
    test_pass("a panic becomes LATCHKEY_PANIC with a message");

    latchkey_status status = LATCHKEY_OK;
    pthread_t thread;
    CHECK(pthread_create(&thread, NULL, panic_here, &status) == 0);
    CHECK(pthread_join(thread, NULL) == 0);
    CHECK_STATUS(LATCHKEY_PANIC, status);
    test_pass("a panic on another thread is caught there");

    latchkey_client *client = NULL;
    latchkey_lock *lock = NULL;
    latchkey_guard *guard = NULL;
    CHECK_OK(latchkey_client_open(test_server.url, NULL, &client, NULL));
    CHECK_OK(latchkey_lock_new(client, "after-panic", NULL, &lock, NULL));
    CHECK_OK(latchkey_lock_acquire(lock, 1000, NULL, &guard, NULL));
    CHECK_OK(latchkey_guard_release(guard, NULL));
    latchkey_guard_free(guard);
    latchkey_lock_free(lock);
    latchkey_client_free(client);
    test_pass("the library works after a panic");
    test_stop_server();
    return 0;
}
