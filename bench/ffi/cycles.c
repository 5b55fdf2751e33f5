/* lk_ffi_cycles as a shared library for Python's ctypes (bench/ffi/run.sh). */
#include "cycles.h"

int latchkey_ffi_cycles(const latchkey_lock *lock, int n) { return lk_ffi_cycles(lock, n); }
