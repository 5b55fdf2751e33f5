// The header works from C++: it compiles with strict flags, the functions
// have C linkage (this program links and runs), and the status enum has a
// fixed 32-bit type.
#include "latchkey.h"

#include <cstdio>
#include <cstring>

static_assert(sizeof(latchkey_status) == 4, "latchkey_status is 32 bits");
static_assert(LATCHKEY_OK == 0 && LATCHKEY_PANIC == 8, "fixed status numbers");

int main() {
    if (std::strcmp(latchkey_version(), LATCHKEY_VERSION_STRING) != 0) {
        std::fprintf(stderr, "version mismatch: %s vs %s\n", latchkey_version(),
                     LATCHKEY_VERSION_STRING);
        return 1;
    }
    latchkey_client *client = nullptr;
    latchkey_error *err = nullptr;
    latchkey_status status = latchkey_client_open("not a url", nullptr, &client, &err);
    if (status != LATCHKEY_INVALID_ARGUMENT || latchkey_error_status(err) != status) {
        std::fprintf(stderr, "unexpected status %s\n", latchkey_status_name(status));
        return 1;
    }
    latchkey_error_free(err);
    std::printf("ok - the header compiles and links as C++ (%s)\n", latchkey_version());
    return 0;
}
