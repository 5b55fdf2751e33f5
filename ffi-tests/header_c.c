/*
 * The header compiles cleanly as strict C (see the Makefile's flags) and
 * its types are what the documentation says.
 */
#include "latchkey.h"

typedef char status_is_32_bits[sizeof(latchkey_status) == 4 ? 1 : -1];
typedef char owner_token_fits[LATCHKEY_OWNER_TOKEN_SIZE == 33 ? 1 : -1];
typedef char major_is_a_number[LATCHKEY_VERSION_MAJOR >= 0 ? 1 : -1];

/* Every callback type accepts a plain C function. */
static void on_lost(void *user, const char *name, const char *owner_token, uint64_t token,
                    const char *reason) {
    (void)user;
    (void)name;
    (void)owner_token;
    (void)token;
    (void)reason;
}

static void user_free(void *user) { (void)user; }

int header_c_uses(latchkey_lock_options *options);
int header_c_uses(latchkey_lock_options *options) {
    latchkey_lost_callback callback = on_lost;
    latchkey_user_free release = user_free;
    return (int)latchkey_lock_options_set_on_lost(options, callback, NULL, release, NULL);
}
