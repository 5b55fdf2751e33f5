package latchkey

// What the library reports from its own threads (the renewal watchdog, or
// whichever thread frees the last reference): a lost lease, a handle it no
// longer needs. Its callbacks queue the reports (reports.c) and one
// goroutine, dispatchReports, delivers them, so the watchdog never waits
// for Go. The //export functions are the delivery; C calls them directly
// only when it cannot allocate a queue entry. The preamble may declare but
// not define C code (cgo copies it into a header).

/*
#include <stdint.h>
#include "helpers.h"
*/
import "C"

import (
	"runtime/cgo"
	"sync"
	"sync/atomic"
)

// liveHandles counts the cgo.Handles given to the library and not yet freed
// by it (tests check that every one comes back).
var liveHandles atomic.Int64

func newHandle(v any) cgo.Handle {
	liveHandles.Add(1)
	return cgo.NewHandle(v)
}

func deleteHandle(h cgo.Handle) {
	h.Delete()
	liveHandles.Add(-1)
}

var startDispatch sync.Once

// dispatchReports delivers the library's queued reports, in order, for the
// life of the process (one goroutine, blocked in C between reports). It is
// started before the first lock is made.
func dispatchReports() {
	for {
		r := C.lk_report_pop()
		if r.kind == C.LK_REPORT_LOST {
			latchkeyGoLost(C.uintptr_t(r.user), (*C.char)(r.owner_token), (*C.char)(r.reason))
		} else {
			latchkeyGoUserFree(C.uintptr_t(r.user))
		}
		C.lk_report_free(r.report)
	}
}

// latchkeyGoLost delivers a lost-lease report of a Mutex: it records the
// loss and closes the Lost channel of the one hold the owner token names.
//
//export latchkeyGoLost
func latchkeyGoLost(user C.uintptr_t, ownerToken *C.char, reason *C.char) {
	if ms, ok := cgo.Handle(user).Value().(*multiState); ok {
		ms.lost() // a lease of a multi-lock (multilock.go)
		return
	}
	if st, ok := cgo.Handle(user).Value().(*mutexState); ok && ownerToken != nil && st.client != nil {
		st.client.lost(C.GoString(ownerToken), C.GoString(reason))
	}
}

// latchkeyGoUserFree is called exactly once per handle, when no lost-lease
// callback can run any more.
//
//export latchkeyGoUserFree
func latchkeyGoUserFree(user C.uintptr_t) {
	deleteHandle(cgo.Handle(user))
}
