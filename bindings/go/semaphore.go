package latchkey

/*
#include "helpers.h"
*/
import "C"

import (
	"context"
	"runtime"
)

// MaxPermits is the most permits a Semaphore may have.
const MaxPermits = 1_000_000

// Semaphore is a named distributed counting semaphore whose permits are
// leases: every acquisition takes one or more permits as one lease of its
// own and returns a Hold for it, renewed while held (unless
// WithAutoRenew(false)), reported lost as a lock's lease is (the Hold's Lost
// channel closes, Check says ErrLost), and given back by Redis when its
// holder dies and the lease ends. Make it with Client.NewSemaphore; Close it
// when done.
//
// The Hold is the one Mutex.Acquire returns: Unlock gives its permits back,
// and Check, Lost, Err, Extend, ExtendBy, Remaining, FencingToken and Token
// work as for a lock (the owner token is the hold's permits, ':', and 32
// hex digits). Fencing tokens increase per semaphore.
//
// The size belongs to the handle: every attempt counts the permits in use
// against it, so handles of one name (in any process or language) should
// agree on it. Waiters are woken by releases (no polling). A Semaphore and a
// Mutex of one name share no key. Semaphores are refused on Redlock clients
// (NewSemaphore fails with ErrInvalidArgument): a majority per hold does not
// bound the holders.
//
// A Semaphore is safe for concurrent use. Its holds follow a Mutex's rules:
// a live Hold stays reachable from its Client until it ends (Unlock, loss,
// or Close of its Semaphore or Client), so the garbage collector never
// gives permits back behind the program's back; a Semaphore the program
// dropped without Close frees only what holds nothing.
type Semaphore struct {
	st      *mutexState
	cleanup runtime.Cleanup
}

// NewSemaphore makes a Semaphore of size permits (1 to MaxPermits) for the
// name (any UTF-8 string without NUL, up to 4096 bytes). The options are
// NewMutex's: WithTTL, WithAutoRenew, WithRenewEvery and WithRetryJitter
// apply to each hold's lease; WithReentrant(true) and WithFair(true) make
// it fail with ErrInvalidArgument, as do a size of 0 or above MaxPermits.
// Nothing is sent to Redis yet.
func (c *Client) NewSemaphore(name string, size uint32, opts ...MutexOption) (*Semaphore, error) {
	_, cc, err := lockConfig(opts)
	if err != nil {
		return nil, err
	}
	st := newMutexState(c, name)
	st.size = size
	err = c.makeState(st, "semaphore name", func(p *C.latchkey_client, cname *C.char, cc C.lk_lock_config) (C.latchkey_status, *C.latchkey_error, C.uchar) {
		r := C.lk_semaphore_new(p, cname, C.uint32_t(size), cc)
		st.sem = r.semaphore
		return r.status, r.err, r.handle_taken
	}, cc)
	if err != nil {
		return nil, err
	}
	s := &Semaphore{st: st}
	// A forgotten Close: free what holds nothing (as for a Mutex).
	s.cleanup = runtime.AddCleanup(s, func(st *mutexState) { st.abandon() }, st)
	return s, nil
}

// Name is the semaphore's name.
func (s *Semaphore) Name() string { return s.st.name }

// Size is the permits in all, as this handle counts them.
func (s *Semaphore) Size() uint32 { return s.st.size }

// Acquire takes permits permits and returns their Hold, waiting (without
// polling: a release in Redis wakes the waiter) until they are taken or ctx
// ends, exactly as Mutex.Lock waits: a cancelled ctx returns promptly with
// an error matching both ErrCancelled and context.Canceled; a ctx deadline,
// both ErrTimeout and context.DeadlineExceeded; context.Background() waits
// for ever, or until the Semaphore or its Client is closed (ErrClosed).
// ErrInvalidArgument for 0 permits or more than the size (nothing is
// taken); ErrConnection, ErrServer as for Lock.
func (s *Semaphore) Acquire(ctx context.Context, permits uint32) (*Hold, error) {
	return s.st.acquire(ctx, permits)
}

// TryAcquire makes one attempt, without waiting: the new Hold, or nil (and
// no error) if fewer than permits permits are free, as Mutex.TryAcquire;
// ErrInvalidArgument for 0 permits or more than the size; ErrConnection if
// Redis cannot be reached or does not answer within the command timeout.
func (s *Semaphore) TryAcquire(permits uint32) (*Hold, error) {
	return s.st.tryAcquire(permits)
}

// Available is the number of permits free now, as this handle counts them:
// its size less the permits in use (0 when more are in use). One round
// trip.
func (s *Semaphore) Available() (uint32, error) {
	st := s.st
	if !st.rc.acquire() {
		return 0, st.closedError()
	}
	st.tick.beforeBlockingCall()
	r := C.lk_semaphore_available(st.sem)
	st.rc.release()
	if r.status != C.LATCHKEY_OK {
		return 0, takeError(r.status, r.err)
	}
	return uint32(r.available), nil
}

// ForceReleaseAll is for operators: it takes every permit away from whoever
// holds it (any process, any language) and wakes the waiters, and says
// whether any was held. The holders find their leases lost at their next
// renewal (their Lost channels close, Check says ErrLost).
func (s *Semaphore) ForceReleaseAll() (bool, error) {
	st := s.st
	if !st.rc.acquire() {
		return false, st.closedError()
	}
	st.tick.beforeBlockingCall()
	r := C.lk_semaphore_force_release_all(st.sem)
	st.rc.release()
	if r.status != C.LATCHKEY_OK {
		return false, takeError(r.status, r.err)
	}
	return bool(r.released), nil
}

// Close interrupts the acquires in progress through this Semaphore (they
// fail with ErrClosed), gives back every permit still held through it
// (their Lost channels close) and frees it. The errors are those of the
// releases. Closing twice is harmless.
func (s *Semaphore) Close() error {
	s.cleanup.Stop()
	return s.st.close()
}
