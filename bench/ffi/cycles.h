/*
 * The uncontended acquire+release cycle run n times by C, inside one call
 * from Go or Python: what the cycle costs in that process without any
 * binding code or FFI crossing between the round trips (bench/ffi).
 */
#ifndef LATCHKEY_FFI_CYCLES_H
#define LATCHKEY_FFI_CYCLES_H

#include "latchkey.h"

static inline int lk_ffi_cycles(const latchkey_lock *lock, int n) {
	for (int i = 0; i < n; i++) {
		latchkey_guard *guard = NULL;
		if (latchkey_lock_acquire(lock, -1, NULL, &guard, NULL) != LATCHKEY_OK) return 1;
		latchkey_status status = latchkey_guard_release(guard, NULL);
		latchkey_guard_free(guard);
		if (status != LATCHKEY_OK) return 1;
	}
	return 0;
}

#endif
