package latchkey

/*
#include "helpers.h"
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"
)

// Mutex is a named distributed lock. Make it with Client.NewMutex; Close it
// when done (a garbage-collected Mutex is closed as a backstop).
//
// Holds. A Mutex records the lock it holds: at most one hold, or for a
// reentrant Mutex a stack of nested holds. Unlock, Extend, Check,
// FencingToken, Token and Lost refer to the current (latest) hold.
//
// Concurrency. All methods are safe for concurrent use. Like sync.Mutex, a
// Mutex is not tied to a goroutine: one goroutine may Lock and another
// Unlock, and goroutines sharing one non-reentrant Mutex exclude each other
// (a Lock waits while the Mutex itself holds the lock, so locking it twice
// from one goroutine waits for ever, or until the context ends). Goroutines
// that need their own fencing token or Lost channel should each make their
// own Mutex for the name: Mutex values are cheap, and two Mutex values for
// one name exclude each other exactly as two processes do.
//
// Reentrancy. With WithReentrant(true) the owner is the Mutex, not the
// goroutine: while it holds the lock, every Lock on it (from any goroutine)
// succeeds at once and needs its own Unlock.
type Mutex struct {
	st      *mutexState
	cleanup runtime.Cleanup
}

// mutexState is everything a Mutex owns. The lost-lease callback reaches it
// through a cgo.Handle, so it must not point back at the Mutex (which would
// then never be garbage-collected).
type mutexState struct {
	lock      *C.latchkey_lock
	rc        refcount
	name      string
	reentrant bool

	mu          sync.Mutex
	holds       []*hold
	pendingLost map[uint64]struct{} // losses reported before their hold was recorded
	closed      bool
}

// hold is one acquisition: the C guard and what was read from it.
type hold struct {
	// Read-locked while a call uses guard; write-locked to free it. A hold
	// is taken off the Mutex's stack before it is freed, so nobody new can
	// find it then.
	mu    sync.RWMutex
	guard *C.latchkey_guard // nil once freed
	fence uint64
	token string

	// Under the Mutex's mu.
	lost   bool
	lostCh chan struct{} // made by Lost
}

// MutexOption configures Client.NewMutex. Values are checked by the library
// when the Mutex is made.
type MutexOption func(*mutexConfig)

type mutexConfig struct {
	ttl, retryJitter, renewEvery *time.Duration
	autoRenew, reentrant         *bool
}

// WithTTL sets the lease length (default 30 s; 10 ms to 30 days). With
// auto-renewal the lease is renewed every ttl/3; without it the lock is gone
// after ttl.
func WithTTL(ttl time.Duration) MutexOption {
	return func(c *mutexConfig) { c.ttl = &ttl }
}

// WithAutoRenew sets whether the client's renewal thread keeps the lease
// alive while it is held (default true). Only auto-renewed leases report
// their loss on Lost.
func WithAutoRenew(on bool) MutexOption {
	return func(c *mutexConfig) { c.autoRenew = &on }
}

// WithReentrant sets whether the Mutex may lock again while it holds the
// lock (default false). Each Lock then needs its own Unlock.
func WithReentrant(on bool) MutexOption {
	return func(c *mutexConfig) { c.reentrant = &on }
}

// WithRetryJitter sets the upper bound of the random pause before retrying
// when a holder's lease ran out (default 5 ms; 0 to 10 s).
func WithRetryJitter(d time.Duration) MutexOption {
	return func(c *mutexConfig) { c.retryJitter = &d }
}

// WithRenewEvery sets how often the renewal thread renews the lease
// (default ttl/3; above 0 and below the ttl).
func WithRenewEvery(d time.Duration) MutexOption {
	return func(c *mutexConfig) { c.renewEvery = &d }
}

// NewMutex makes a Mutex for the lock name (any UTF-8 string without NUL, up
// to 4096 bytes). Nothing is sent to Redis yet.
func (c *Client) NewMutex(name string, opts ...MutexOption) (*Mutex, error) {
	var cfg mutexConfig
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	var cc C.lk_lock_config
	durations := []struct {
		what string
		d    *time.Duration
		ms   *C.uint64_t
		set  *C.uchar
	}{
		{"ttl", cfg.ttl, &cc.ttl_ms, &cc.set_ttl},
		{"retry jitter", cfg.retryJitter, &cc.retry_jitter_ms, &cc.set_retry_jitter},
		{"renewal period", cfg.renewEvery, &cc.renew_every_ms, &cc.set_renew_every},
	}
	for _, d := range durations {
		if d.d != nil {
			ms, err := millis(d.what, *d.d)
			if err != nil {
				return nil, err
			}
			*d.ms, *d.set = ms, 1
		}
	}
	if cfg.autoRenew != nil {
		cc.set_auto_renew, cc.auto_renew = 1, cbool(*cfg.autoRenew)
	}
	st := &mutexState{name: name}
	if cfg.reentrant != nil {
		st.reentrant = *cfg.reentrant
		cc.set_reentrant, cc.reentrant = 1, cbool(*cfg.reentrant)
	}
	err := c.withName("lock name", name, func(p *C.latchkey_client, cname *C.char) error {
		h := newHandle(st)
		cc.handle = C.uintptr_t(h)
		r := C.lk_lock_new(p, cname, cc)
		if r.handle_taken == 0 {
			deleteHandle(h)
		}
		if r.status != C.LATCHKEY_OK {
			return takeError(r.status, r.err)
		}
		st.lock = r.lock
		return nil
	})
	if err != nil {
		return nil, err
	}
	lock := st.lock
	st.rc.init(func() { C.latchkey_lock_free(lock) })
	m := &Mutex{st: st}
	// A backstop for a forgotten Close (which may release the lock: a
	// network round trip, so not on the cleanup goroutine itself).
	m.cleanup = runtime.AddCleanup(m, func(st *mutexState) { go st.close() }, st)
	return m, nil
}

func cbool(b bool) C.uchar {
	if b {
		return 1
	}
	return 0
}

var errMutexClosed = &Error{Status: StatusInvalidArgument, Message: "the mutex is closed"}

func (st *mutexState) notLocked() error {
	return &Error{Status: StatusNotHeld, Message: fmt.Sprintf("mutex for lock '%s' is not locked", st.name)}
}

// Name is the lock's name.
func (m *Mutex) Name() string {
	return m.st.name
}

// Lock acquires the lock, waiting (without polling: a release in Redis wakes
// the waiter) until it is acquired or ctx ends. A cancelled ctx makes Lock
// return promptly with an error matching both ErrCancelled and
// context.Canceled; a ctx deadline, both ErrTimeout and
// context.DeadlineExceeded. context.Background() waits for ever.
//
// Lock fails with ErrConnection when Redis cannot be reached or does not
// answer within the client's command timeout, and with ErrServer when Redis
// answers with an error; an outage while waiting is ridden out until ctx
// ends.
func (m *Mutex) Lock(ctx context.Context) error {
	st := m.st
	if err := ctx.Err(); err != nil {
		return contextError(ctx, st.name, err)
	}
	timeout := C.int64_t(-1)
	deadline, hasDeadline := ctx.Deadline()
	if hasDeadline {
		d := time.Until(deadline)
		if d <= 0 {
			return contextError(ctx, st.name, context.DeadlineExceeded)
		}
		// Rounded up, so the library never gives up before ctx does.
		timeout = C.int64_t((d + time.Millisecond - 1) / time.Millisecond)
	}
	if !st.rc.acquire() {
		return errMutexClosed
	}
	defer st.rc.release()

	var r C.lk_acquired
	if ctx.Done() == nil {
		// A context that can never be cancelled: no cancel handle, no
		// watcher.
		r = C.lk_acquire(st.lock, timeout, nil)
	} else {
		made := C.lk_cancel_new()
		if made.status != C.LATCHKEY_OK {
			return takeError(made.status, made.err)
		}
		cancel := made.cancel
		// context.AfterFunc is the watcher goroutine, started only if ctx
		// ends: it triggers the C cancel handle, which wakes the acquire.
		triggered := make(chan struct{})
		stop := context.AfterFunc(ctx, func() {
			C.latchkey_cancel_trigger(cancel, nil)
			close(triggered)
		})
		r = C.lk_acquire(st.lock, timeout, cancel)
		if !stop() {
			<-triggered // the handle must outlive its trigger call
		}
		C.latchkey_cancel_free(cancel)
	}
	if r.status != C.LATCHKEY_OK {
		err := takeError(r.status, r.err)
		if r.status == C.LATCHKEY_CANCELLED || r.status == C.LATCHKEY_TIMEOUT {
			if cerr := ctx.Err(); cerr != nil {
				return contextError(ctx, st.name, cerr)
			}
			if hasDeadline && !time.Now().Before(deadline) {
				// The library's timeout fired just before ctx's timer.
				return contextError(ctx, st.name, context.DeadlineExceeded)
			}
		}
		return err
	}
	return st.push(r)
}

// TryLock makes one attempt, without waiting: true if it acquired the lock,
// false (and no error) if someone else holds it; an error (ErrConnection)
// if Redis cannot be reached or does not answer within the command timeout.
func (m *Mutex) TryLock() (bool, error) {
	st := m.st
	if !st.rc.acquire() {
		return false, errMutexClosed
	}
	r := C.lk_try_acquire(st.lock)
	st.rc.release()
	switch r.status {
	case C.LATCHKEY_OK:
		if err := st.push(r); err != nil {
			return false, err
		}
		return true, nil
	case C.LATCHKEY_TIMEOUT:
		return false, nil
	default:
		return false, takeError(r.status, r.err)
	}
}

// push records a new hold.
func (st *mutexState) push(r C.lk_acquired) error {
	h := &hold{guard: r.guard, fence: uint64(r.fencing_token)}
	if r.owner_token != nil {
		h.token = C.GoString(r.owner_token)
	}
	var stale *hold
	st.mu.Lock()
	if st.closed {
		st.mu.Unlock()
		_ = h.release()
		return errMutexClosed
	}
	if len(st.pendingLost) > 0 {
		// The watchdog reported this lease lost before we recorded it.
		if _, ok := st.pendingLost[h.fence]; ok {
			h.lost = true
		}
		// Fencing tokens grow: older reports can match no future hold.
		for f := range st.pendingLost {
			if f <= h.fence {
				delete(st.pendingLost, f)
			}
		}
	}
	if !st.reentrant && len(st.holds) > 0 {
		// A plain lock was acquired again, so the hold we still had was
		// no longer ours (its lease was lost or expired): drop it.
		stale = st.holds[0]
		st.markLostLocked(stale)
		st.holds[0] = nil
		st.holds = st.holds[:0]
	}
	st.holds = append(st.holds, h)
	st.mu.Unlock()
	if stale != nil {
		_ = stale.release() // NOT_HELD, as expected
	}
	return nil
}

// release releases and frees the hold's guard (once).
func (h *hold) release() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.guard == nil {
		return nil
	}
	r := C.lk_release_free(h.guard)
	h.guard = nil
	return resultError(r)
}

// Unlock releases the current hold. It fails with ErrNotHeld when the Mutex
// holds nothing, and also when the lease had been lost (it expired or was
// force-unlocked, so someone else may have held the lock meanwhile); the
// lock is never deleted from under another owner. After any outcome the
// hold is gone.
func (m *Mutex) Unlock() error {
	st := m.st
	st.mu.Lock()
	n := len(st.holds)
	if n == 0 {
		st.mu.Unlock()
		return st.notLocked()
	}
	h := st.holds[n-1]
	st.holds[n-1] = nil
	st.holds = st.holds[:n-1]
	st.mu.Unlock()
	return h.release()
}

// current returns the current hold with its read lock taken (the caller
// unlocks it), or nil.
func (st *mutexState) current() *hold {
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.holds) == 0 {
		return nil
	}
	h := st.holds[len(st.holds)-1]
	h.mu.RLock()
	return h
}

// Extend sets the current hold's lease to ttl from now, if it is still ours;
// auto-renewal continues with the new ttl. ErrNotHeld means the lease was
// lost (Lost is then closed).
func (m *Mutex) Extend(ttl time.Duration) error {
	st := m.st
	ms, err := millis("ttl", ttl)
	if err != nil {
		return err
	}
	h := st.current()
	if h == nil {
		return st.notLocked()
	}
	r := C.lk_extend(h.guard, ms)
	h.mu.RUnlock()
	if r.status == C.LATCHKEY_NOT_HELD || r.status == C.LATCHKEY_LOST {
		st.markLost(h)
	}
	return resultError(r)
}

// Check tells whether the current hold's lease is still held, from local
// state (no Redis round trip): nil, or ErrLost with the reason (renewal
// found the lock gone or taken, or could not confirm it before it ran out);
// ErrNotHeld when the Mutex holds nothing.
func (m *Mutex) Check() error {
	st := m.st
	h := st.current()
	if h == nil {
		return st.notLocked()
	}
	r := C.lk_check(h.guard)
	h.mu.RUnlock()
	if r.status == C.LATCHKEY_LOST {
		st.markLost(h)
	}
	return resultError(r)
}

// Remaining is how long the current lease is certainly still ours, on this
// machine's monotonic clock; 0 when lost, expired or not held.
func (m *Mutex) Remaining() time.Duration {
	h := m.st.current()
	if h == nil {
		return 0
	}
	r := C.lk_guard_remaining(h.guard)
	h.mu.RUnlock()
	if r.status != C.LATCHKEY_OK {
		_ = takeError(r.status, r.err)
		return 0
	}
	return time.Duration(r.remaining_ms) * time.Millisecond
}

// FencingToken is the current hold's fencing token (strictly greater than
// every token issued before for this lock name), or 0 when the Mutex holds
// nothing. Pass it to the resource you protect (see Client.FencedWrite).
func (m *Mutex) FencingToken() uint64 {
	st := m.st
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.holds) == 0 {
		return 0
	}
	return st.holds[len(st.holds)-1].fence
}

// Token is the current hold's owner token as stored in Redis (32 hex
// digits; what Client.Inspect reports as Owner), or "" when the Mutex holds
// nothing.
func (m *Mutex) Token() string {
	st := m.st
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.holds) == 0 {
		return ""
	}
	return st.holds[len(st.holds)-1].token
}

var closedChan = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

// Lost returns a channel that is closed when the current hold's lease is
// lost: the renewal thread found the lock gone or taken (say, by
// Client.ForceUnlock), or could not reach Redis before the lease ran out; a
// failed Extend closes it too. Only auto-renewed leases (the default) are
// watched. The channel belongs to the hold that is current when Lost is
// called; Unlock does not close it. When the Mutex holds nothing, the
// channel is already closed.
//
//	if err := m.Lock(ctx); err != nil { ... }
//	defer m.Unlock()
//	select {
//	case <-m.Lost():
//		return errors.New("lease lost: stop writing")
//	case result := <-work:
//		...
//	}
func (m *Mutex) Lost() <-chan struct{} {
	st := m.st
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.holds) == 0 {
		return closedChan
	}
	h := st.holds[len(st.holds)-1]
	if h.lostCh == nil {
		h.lostCh = make(chan struct{})
		if h.lost {
			close(h.lostCh)
		}
	}
	return h.lostCh
}

func (st *mutexState) markLost(h *hold) {
	st.mu.Lock()
	st.markLostLocked(h)
	st.mu.Unlock()
}

func (st *mutexState) markLostLocked(h *hold) {
	if !h.lost {
		h.lost = true
		if h.lostCh != nil {
			close(h.lostCh)
		}
	}
}

// onLost runs on the watchdog thread (through latchkeyGoLost) when the lease
// with this fencing token is lost. Nested holds of a reentrant lock share
// one key and one fencing token, so all of them are lost together.
func (st *mutexState) onLost(fencingToken uint64) {
	st.mu.Lock()
	defer st.mu.Unlock()
	found := false
	for _, h := range st.holds {
		if h.fence == fencingToken {
			st.markLostLocked(h)
			found = true
		}
	}
	if !found && !st.closed {
		if st.pendingLost == nil {
			st.pendingLost = make(map[uint64]struct{})
		}
		st.pendingLost[fencingToken] = struct{}{}
	}
}

// Close releases whatever the Mutex still holds and frees it. A Lock in
// progress on another goroutine keeps the handle alive until it returns,
// and then fails (giving back what it acquired). The errors are those of
// the releases. Closing twice is harmless.
func (m *Mutex) Close() error {
	m.cleanup.Stop()
	return m.st.close()
}

func (st *mutexState) close() error {
	st.mu.Lock()
	if st.closed {
		st.mu.Unlock()
		return nil
	}
	st.closed = true
	holds := st.holds
	st.holds = nil
	st.pendingLost = nil
	st.mu.Unlock()
	var errs []error
	for i := len(holds) - 1; i >= 0; i-- {
		if err := holds[i].release(); err != nil {
			errs = append(errs, err)
		}
	}
	st.rc.close()
	return errors.Join(errs...)
}
