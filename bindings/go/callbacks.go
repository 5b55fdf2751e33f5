package latchkey

// The functions the library calls back, from its own threads (the renewal
// watchdog, or whichever thread frees the last reference). The file holds
// only //export functions: cgo copies this preamble into a header, so it may
// declare but not define C code.

/*
#include <stdint.h>
*/
import "C"

import (
	"runtime/cgo"
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

// latchkeyGoLost is the lost-lease callback of every Mutex. It runs on the
// client's watchdog thread, so it only records the loss and closes the
// channel of the one hold that the owner token names.
//
//export latchkeyGoLost
func latchkeyGoLost(user C.uintptr_t, ownerToken *C.char, reason *C.char) {
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
