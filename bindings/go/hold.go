package latchkey

/*
#include "helpers.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"
)

// Hold is one acquisition of a lock, returned by Mutex.Acquire and
// Mutex.TryAcquire, or of permits of a semaphore, returned by
// Semaphore.Acquire and Semaphore.TryAcquire (Unlock then gives the permits
// back), or a leadership, returned by Election.Campaign (its fencing token
// is the term; Unlock resigns), or a reader's or writer's hold of an
// RWMutex (RLock, TryRLock, Lock, TryLock): its own owner token, fencing token, lease
// and Lost channel. Everything done through a Hold concerns that acquisition only:
// after its lease was lost, Check says ErrLost and Unlock says ErrNotHeld
// even if the same Mutex (or anyone else) holds the lock again since.
//
// A Hold is safe for concurrent use. It stays reachable from its Client
// until it ends (Unlock, loss, or Close of its Mutex or Client), so the
// garbage collector never releases a lock that is held: keep the Hold to
// unlock it.
type Hold struct {
	mutex *mutexState
	guard *guardRef
	token string // owner token, unique per acquisition
	fence uint64
	lost  chan struct{} // closed once, when the hold ends

	mu     sync.Mutex
	ending endKind
	reason string
}

// endKind says why a hold ended.
type endKind int

const (
	live endKind = iota
	endLost
	endUnlocked
	endClosed
)

// guardRef is the C guard of a hold, freed once. The hold's cleanup gets it
// (and not the Hold) so that it can free a guard the program dropped after
// the hold ended.
type guardRef struct {
	// Read-locked while a call uses p; write-locked to free it.
	mu sync.RWMutex
	p  *C.latchkey_guard // nil once freed
}

// releaseFree releases and frees the guard, once; ok is false if it had
// been freed already.
func (g *guardRef) releaseFree() (err error, ok bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.p == nil {
		return nil, false
	}
	r := C.lk_release_free(g.p)
	g.p = nil
	return resultError(r), true
}

// newHold records a fresh acquisition with its client. A closed client or
// Mutex gives the lock straight back.
func newHold(m *mutexState, r C.lk_acquired) (*Hold, error) {
	h := &Hold{
		mutex: m,
		guard: &guardRef{p: r.guard},
		fence: uint64(r.fencing_token),
		lost:  make(chan struct{}),
	}
	if r.owner_token != nil {
		h.token = C.GoString(r.owner_token)
	}
	if !m.client.addHold(h) {
		h.guard.releaseFree()
		return nil, m.closedError()
	}
	runtime.AddCleanup(h, freeEndedGuard, h.guard)
	// The watchdog may have reported the loss before the hold was
	// recorded, when nobody could match the report: ask the guard now
	// (unless a concurrent Close already released and freed it).
	h.guard.mu.RLock()
	if h.guard.p != nil {
		if r := C.lk_check(h.guard.p); r.status == C.LATCHKEY_LOST {
			defer h.end(endLost, messageOf(resultError(r)))
		} else {
			_ = resultError(r) // frees an unexpected error's message
		}
	}
	h.guard.mu.RUnlock()
	return h, nil
}

// freeEndedGuard is the cleanup of a Hold the program dropped. A live hold
// is in its client's registry, so this runs only for a hold that ended;
// the guard of a lost one is still allocated. Freeing it sends a release
// (which Redis refuses, by token, if someone else holds the lock), so not
// on the cleanup goroutine itself.
func freeEndedGuard(g *guardRef) {
	g.mu.RLock()
	allocated := g.p != nil
	g.mu.RUnlock()
	if allocated {
		go g.releaseFree()
	}
}

// messageOf is the library's message of err.
func messageOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return err.Error()
}

// end marks the hold ended (once) and closes its Lost channel; false if it
// had ended already.
func (h *Hold) end(kind endKind, reason string) bool {
	h.mu.Lock()
	if h.ending != live {
		h.mu.Unlock()
		return false
	}
	h.ending, h.reason = kind, reason
	close(h.lost)
	h.mu.Unlock()
	h.mutex.client.removeHold(h)
	return true
}

func (h *Hold) state() (endKind, string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.ending, h.reason
}

// endedError is the error of a call on a hold whose guard is gone.
func (h *Hold) endedError() error {
	kind, _ := h.state()
	if kind == endClosed {
		return h.mutex.closedError()
	}
	return &Error{Status: StatusNotHeld, Message: fmt.Sprintf("this hold of %s was unlocked", h.mutex.describe())}
}

// closeRelease is Close's release of a live hold.
func (h *Hold) closeRelease() error {
	h.end(endClosed, "")
	err, _ := h.guard.releaseFree()
	return err
}

// Name is the lock's (or semaphore's, or election's) name.
func (h *Hold) Name() string { return h.mutex.name }

// Token is this hold's owner token as stored in Redis (32 hex digits; what
// Client.Inspect reports as Owner while it holds). A semaphore's hold has
// its permits, ':', and 32 hex digits.
func (h *Hold) Token() string { return h.token }

// FencingToken is this hold's fencing token: strictly greater than every
// token issued before for this lock name. Pass it to the resource you
// protect (see Client.FencedWrite).
func (h *Hold) FencingToken() uint64 { return h.fence }

// Lost returns a channel that is closed, exactly once, when this hold ends:
// its lease was lost (the renewal thread found the lock gone or taken, or
// could not reach Redis before the lease ran out; or Extend or Check found
// it lost), it was unlocked, or its Mutex or Client was closed. A goroutine
// that waits on it therefore always ends. Err says which. Only auto-renewed
// leases are watched; the expiry of a lease without renewal is seen by
// Check.
func (h *Hold) Lost() <-chan struct{} { return h.lost }

// Err says why this hold ended, as context.Context's Err does: nil while
// Lost is open; once it is closed, an error matching ErrLost (with the
// reason) if the lease was lost, ErrNotHeld if the hold was unlocked, and
// ErrClosed if its Mutex or Client was closed. The answer is fixed when Lost
// closes: an Unlock after a loss leaves it ErrLost, and a loss reported
// after an Unlock does not change it (that Unlock said ErrNotHeld).
//
//	<-h.Lost()
//	if errors.Is(h.Err(), latchkey.ErrLost) {
//		// the lease was lost: stop writing
//	}
func (h *Hold) Err() error {
	kind, reason := h.state()
	switch kind {
	case live:
		return nil
	case endLost:
		return &Error{Status: StatusLost, Message: reason}
	case endClosed:
		return h.mutex.closedError()
	}
	return &Error{Status: StatusNotHeld, Message: fmt.Sprintf("this hold of %s was unlocked", h.mutex.describe())}
}

// Unlock releases the lock. It fails with ErrNotHeld when the lease had
// been lost (it expired or was force-unlocked, so someone else may have
// held the lock meanwhile; the lock is never deleted from under another
// owner) or the hold was unlocked already, and with ErrClosed when its Mutex
// or Client was closed (which released it). After any outcome the hold has
// ended and its Lost channel is closed.
func (h *Hold) Unlock() error {
	h.end(endUnlocked, "")
	h.mutex.tick.beforeBlockingCall()
	err, ok := h.guard.releaseFree()
	if !ok {
		return h.endedError()
	}
	if chaosVariant("go-unlock-ignores-loss") && errors.Is(err, ErrNotHeld) {
		return nil // the broken variant (chaos_on.go): the loss goes unsaid
	}
	return err
}

// Extend makes the lease last at least ttl from now, if it is still this
// hold's. A lease with more left keeps it (Redis never shortens a lease,
// and neither does the hold); a longer ttl becomes the ttl auto-renewal
// continues with. ExtendBy adds time instead. ErrNotHeld means the lease
// was lost (Lost is then closed).
func (h *Hold) Extend(ttl time.Duration) error {
	ms, err := millis("ttl", ttl)
	if err != nil {
		return err
	}
	return h.extendWith(func(g *C.latchkey_guard) C.lk_result { return C.lk_extend(g, ms) })
}

// ExtendBy adds additional to the time the lease has left (the form of
// redis-py's extend), if it is still this hold's: Remaining then says what
// it said before plus additional, less the drift allowance. The new length
// becomes the lease's ttl. ErrNotHeld means the lease was lost (Lost is
// then closed).
func (h *Hold) ExtendBy(additional time.Duration) error {
	ms, err := millis("additional", additional)
	if err != nil {
		return err
	}
	return h.extendWith(func(g *C.latchkey_guard) C.lk_result { return C.lk_extend_by(g, ms) })
}

func (h *Hold) extendWith(extend func(*C.latchkey_guard) C.lk_result) error {
	h.mutex.tick.beforeBlockingCall()
	h.guard.mu.RLock()
	if h.guard.p == nil {
		h.guard.mu.RUnlock()
		return h.endedError()
	}
	r := extend(h.guard.p)
	h.guard.mu.RUnlock()
	if r.status == C.LATCHKEY_NOT_HELD || r.status == C.LATCHKEY_LOST {
		err := resultError(r)
		h.end(endLost, messageOf(err))
		return err
	}
	return resultError(r)
}

// Check tells whether this hold's lease is still held, from local state (no
// Redis round trip): nil, or ErrLost with the reason (renewal found the lock
// gone or taken, or could not confirm it before it ran out); ErrNotHeld once
// unlocked, ErrClosed once its Mutex or Client was closed.
func (h *Hold) Check() error {
	if kind, _ := h.state(); kind == endUnlocked || kind == endClosed {
		return h.endedError() // even while its release is still under way
	}
	h.guard.mu.RLock()
	if h.guard.p == nil {
		h.guard.mu.RUnlock()
		return h.endedError()
	}
	r := C.lk_check(h.guard.p)
	h.guard.mu.RUnlock()
	if r.status == C.LATCHKEY_LOST {
		err := resultError(r)
		h.end(endLost, messageOf(err))
		return err
	}
	return resultError(r)
}

// Remaining is how long this lease is certainly still held, on this
// machine's monotonic clock; 0 once lost, expired or ended.
func (h *Hold) Remaining() time.Duration {
	h.guard.mu.RLock()
	defer h.guard.mu.RUnlock()
	if h.guard.p == nil {
		return 0
	}
	r := C.lk_guard_remaining(h.guard.p)
	if r.status != C.LATCHKEY_OK {
		_ = takeError(r.status, r.err)
		return 0
	}
	return time.Duration(r.remaining_ms) * time.Millisecond
}
