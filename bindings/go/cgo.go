package latchkey

// The plumbing between Go and C: errors, strings, durations, handle
// lifetimes. The C helpers live in helpers.h.
//
// Errors always come from the `err_out` of the same C call: a goroutine may
// move to another OS thread between two cgo calls, so the thread-local
// latchkey_last_error is never used.

/*
#include <stdlib.h>
#include "helpers.h"
*/
import "C"

import (
	"fmt"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"
)

// takeError turns a failed call's status and error object into an *Error and
// frees the object. A nil object (the call was given no err_out, or the
// message was dropped on purpose) still gives an error with the status.
func takeError(status C.latchkey_status, cerr *C.latchkey_error) error {
	if status == C.LATCHKEY_OK && cerr == nil {
		return nil
	}
	if cerr == nil {
		return &Error{Status: Status(status), Message: Status(status).String()}
	}
	v := C.lk_error_read(cerr)
	msg := C.GoString(v.message)
	C.latchkey_error_free(cerr)
	st := Status(v.status)
	if st == StatusOK {
		st = Status(status)
	}
	return &Error{Status: st, Message: msg}
}

// resultError is takeError for the helpers' lk_result.
func resultError(r C.lk_result) error {
	if r.status == C.LATCHKEY_OK {
		return nil
	}
	return takeError(r.status, r.err)
}

// cString copies s to C memory (free it with freeCString). Go strings may
// hold NUL bytes, which a C string cannot: those are invalid arguments.
func cString(what, s string) (*C.char, error) {
	if i := strings.IndexByte(s, 0); i >= 0 {
		// The value itself is not shown: it may be a URL with a password.
		return nil, invalidArgument(fmt.Sprintf("%s contains a NUL byte (at byte %d)", what, i))
	}
	return C.CString(s), nil
}

func freeCString(p *C.char) {
	C.free(unsafe.Pointer(p))
}

// millis converts a non-negative duration to whole milliseconds, rounding
// up, so that a positive duration never becomes 0. Range checks are the
// library's job; only what a uint64 cannot carry is refused here.
func millis(what string, d time.Duration) (C.uint64_t, error) {
	if d < 0 {
		return 0, invalidArgument(fmt.Sprintf("%s must not be negative, got %v", what, d))
	}
	return C.uint64_t((d + time.Millisecond - 1) / time.Millisecond), nil
}

// refcount guards a C handle that must not be freed while a call uses it:
// every call holds a reference, Close drops the owner's, and the last one
// out frees the handle. Close therefore never waits for a blocked call.
type refcount struct {
	n      atomic.Int64
	closed atomic.Bool
	free   func()
}

func (r *refcount) init(free func()) {
	r.free = free
	r.n.Store(1)
}

// acquire takes a reference; false once Close was called.
func (r *refcount) acquire() bool {
	if r.closed.Load() {
		return false
	}
	for {
		n := r.n.Load()
		if n <= 0 {
			return false
		}
		if r.n.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

func (r *refcount) release() {
	if r.n.Add(-1) == 0 {
		r.free()
	}
}

// close drops the owner's reference, once; reports whether this call did.
func (r *refcount) close() bool {
	if !r.closed.CompareAndSwap(false, true) {
		return false
	}
	r.release()
	return true
}

// Version is the version of the C library the program runs with
// ("MAJOR.MINOR.PATCH").
func Version() string {
	return C.GoString(C.latchkey_version())
}

// HeaderVersion is the version of include/latchkey.h the binding was
// compiled against; it equals Version unless a different shared library is
// loaded at run time.
const HeaderVersion = C.LATCHKEY_VERSION_STRING
