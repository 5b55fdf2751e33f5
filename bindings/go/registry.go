package latchkey

// What a Client tracks so that Close can end everything and the garbage
// collector can end nothing that holds a lock: its live holds, its waits in
// progress (their cancel handles) and its Mutexes.

/*
#include "helpers.h"
*/
import "C"

import (
	"sync"
)

// clientState is everything a Client owns. Mutexes and holds point to it;
// it never points back to the Client wrapper, whose cleanup therefore runs
// as soon as the program drops the Client.
type clientState struct {
	p  *C.latchkey_client
	rc refcount

	mu      sync.Mutex
	closed  bool
	holds   map[string][]*Hold                 // live holds by owner token
	waits   map[*C.latchkey_cancel]*mutexState // acquires in progress
	mutexes map[*mutexState]struct{}
}

func newClientState(p *C.latchkey_client) *clientState {
	st := &clientState{
		p:       p,
		holds:   make(map[string][]*Hold),
		waits:   make(map[*C.latchkey_cancel]*mutexState),
		mutexes: make(map[*mutexState]struct{}),
	}
	st.rc.init(func() { C.latchkey_client_free(p) })
	return st
}

// rooted holds every client that has live holds, so that a hold stays
// reachable (its Lost channel deliverable, its lease renewed rather than
// collected) even when the program keeps neither the Client nor the Mutex:
// a leader that locks once and then only serves.
var rooted struct {
	sync.Mutex
	clients map[*clientState]struct{}
}

func root(st *clientState, on bool) {
	rooted.Lock()
	defer rooted.Unlock()
	if on {
		if rooted.clients == nil {
			rooted.clients = make(map[*clientState]struct{})
		}
		rooted.clients[st] = struct{}{}
	} else {
		delete(rooted.clients, st)
	}
}

var errClientClosed = &Error{Message: "the client is closed", sentinel: ErrClosed}

func (st *clientState) closedError() error {
	return errClientClosed
}

// addHold records a new live hold; false (and nothing recorded) once the
// client is closed.
func (st *clientState) addHold(h *Hold) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.closed || h.mutex.closed.Load() {
		return false
	}
	if len(st.holds) == 0 {
		root(st, true)
	}
	st.holds[h.token] = append(st.holds[h.token], h)
	return true
}

// removeHold forgets a hold that ended.
func (st *clientState) removeHold(h *Hold) {
	st.mu.Lock()
	defer st.mu.Unlock()
	list := st.holds[h.token]
	for i, x := range list {
		if x == h {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(st.holds, h.token)
		if len(st.holds) == 0 {
			root(st, false)
		}
	} else {
		st.holds[h.token] = list
	}
}

// lost handles the watchdog's report that the hold with this owner token
// lost its lease. Runs on the library's watchdog thread: it only records.
func (st *clientState) lost(ownerToken, reason string) {
	st.mu.Lock()
	list := append([]*Hold(nil), st.holds[ownerToken]...)
	st.mu.Unlock()
	for _, h := range list {
		h.end(endLost, reason)
	}
}

// takeHolds takes the live holds made through m out of the registry (all of
// them when m is nil).
func (st *clientState) takeHolds(m *mutexState) []*Hold {
	st.mu.Lock()
	defer st.mu.Unlock()
	var out []*Hold
	for token, list := range st.holds {
		kept := list[:0]
		for _, h := range list {
			if m == nil || h.mutex == m {
				out = append(out, h)
			} else {
				kept = append(kept, h)
			}
		}
		if len(kept) == 0 {
			delete(st.holds, token)
		} else {
			st.holds[token] = kept
		}
	}
	if len(st.holds) == 0 {
		root(st, false)
	}
	return out
}

// startWait registers an acquire's cancel handle, so that Close can
// interrupt it; false if the client or the Mutex is already closed.
func (st *clientState) startWait(cancel *C.latchkey_cancel, m *mutexState) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.closed || m.closed.Load() {
		return false
	}
	st.waits[cancel] = m
	return true
}

// endWait unregisters it; after this nobody triggers it, so it may be freed.
func (st *clientState) endWait(cancel *C.latchkey_cancel) {
	st.mu.Lock()
	delete(st.waits, cancel)
	st.mu.Unlock()
}

// interruptWaitsLocked triggers the cancel handles of the waits through m (all
// of them when m is nil). Called under st.mu, after the closed flag is set,
// so no new wait can start unseen.
func (st *clientState) interruptWaitsLocked(m *mutexState) {
	for cancel, owner := range st.waits {
		if m == nil || owner == m {
			C.latchkey_cancel_trigger(cancel, nil)
		}
	}
}

// close is Client.Close. What a close does to holds and waits is the
// library's (latchkey_client_close: every hold released at once, every
// wait ended with LATCHKEY_CLOSED); the binding only ends its own records
// of them afterwards.
func (st *clientState) close() error {
	st.mu.Lock()
	if st.closed {
		st.mu.Unlock()
		return nil
	}
	// No wait or hold can start unseen after this (startWait, addHold).
	st.closed = true
	mutexes := make([]*mutexState, 0, len(st.mutexes))
	for m := range st.mutexes {
		mutexes = append(mutexes, m)
	}
	st.mu.Unlock()

	var err error
	if st.rc.acquire() {
		var cerr *C.latchkey_error
		if status := C.latchkey_client_close(st.p, &cerr); status != C.LATCHKEY_OK {
			err = takeError(status, cerr)
		}
		st.rc.release()
	}
	for _, h := range st.takeHolds(nil) {
		h.end(endClosed, "")
		// The library released it already: freeing the guard sends nothing.
		_, _ = h.guard.releaseFree()
	}
	endMultiHolds(st) // multilock.go
	for _, m := range mutexes {
		m.shut()
	}
	st.rc.close()
	return err
}

// abandon is the garbage collector's Close: the program dropped the Client.
// It frees the C client, which holds nothing: Mutexes and holds made from
// it keep their own references in the library and keep working.
func (st *clientState) abandon() {
	st.rc.close()
}

// releaseAll releases holds that Mutex.Close took out of the registry.
func releaseAll(holds []*Hold) []error {
	var errs []error
	for _, h := range holds {
		if err := h.closeRelease(); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}
