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
	"sync/atomic"
	"time"
)

// Mutex is a named distributed lock. Make it with Client.NewMutex; Close it
// when done.
//
// Holds. Every acquisition is its own Hold, with its own owner token (which
// Redis checks), fencing token, lease and Lost channel. Acquire and
// TryAcquire return the Hold; keep it and call its methods, and nothing you
// do can touch another acquisition, whoever made it.
//
// The Lock, TryLock, Unlock, Extend, ExtendBy, Check, Remaining, FencingToken, Token
// and Lost methods of Mutex are a convenience with the local semantics of
// sync.Mutex: the Mutex holds at most one hold taken by Lock or TryLock, and
// a second Lock on the same Mutex waits here, in this process, until that
// hold is Unlocked, even if its lease was lost meanwhile. So the Mutex
// methods always refer to the hold Lock took, never to a later one. One
// goroutine may Lock and another Unlock; locking twice from one goroutine
// waits for ever (or until the context ends). A reentrant Mutex
// (WithReentrant) instead nests: every Lock succeeds at once while it holds
// the lock, needs its own Unlock, and the Mutex methods refer to the latest
// (innermost) hold.
//
// Acquire and TryAcquire do not take part in that local lock: two goroutines
// acquiring through one Mutex exclude each other through Redis, exactly as
// two processes do, each with its own Hold.
//
// A Mutex is safe for concurrent use. The garbage collector frees a Mutex
// the program dropped only as far as it holds nothing: a lock it holds stays
// held (and renewed) until it is unlocked, lost or closed.
type Mutex struct {
	st      *mutexState
	cleanup runtime.Cleanup
}

// mutexState is everything a Mutex (or a Semaphore, or an Election) owns.
// The lost-lease callback reaches it through a cgo.Handle, so it must not
// point back at the Mutex (which would then never be garbage-collected). A
// Semaphore's state has sem and size instead of lock, an Election's elect,
// an RWMutex's rw; their holds, waits, Close and garbage collection are a
// Mutex's.
type mutexState struct {
	lock      *C.latchkey_lock
	sem       *C.latchkey_semaphore
	elect     *C.latchkey_election
	rw        *C.latchkey_rwlock
	size      uint32
	label     string // a multi-lock's: what describe says (multilock.go)
	rc        refcount
	client    *clientState
	name      string
	reentrant bool
	closed    atomic.Bool   // set under client.mu
	done      chan struct{} // closed when the Mutex is closed

	// The local lock of Lock/TryLock (non-reentrant Mutex): a token in the
	// channel while a hold taken by Lock is not yet Unlocked.
	slot chan struct{}

	mu        sync.Mutex
	current   []*Hold       // holds taken by Lock/TryLock: one, or nested when reentrant
	abandoned bool          // the garbage collector freed the Mutex
	next      chan struct{} // a Lost channel handed out while nothing was held

	tick schedTick // see yieldEvery
}

// MutexOption configures Client.NewMutex. Values are checked by the library
// when the Mutex is made.
type MutexOption func(*mutexConfig)

type mutexConfig struct {
	ttl, retryJitter, renewEvery *time.Duration
	autoRenew, reentrant, fair   *bool
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

// WithFair sets whether the lock is fair (default false): first come, first
// served across processes and languages; no fair caller, not even TryLock,
// takes a free lock while a waiter that queued before it waits. A waiter
// that died holds the ones behind it up for at most about 20 s. Not with
// WithReentrant(true), and not on Redlock: NewMutex refuses both with
// ErrInvalidArgument.
func WithFair(on bool) MutexOption {
	return func(c *mutexConfig) { c.fair = &on }
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

// lockConfig is opts as the C helpers take them (the handle is set later).
func lockConfig(opts []MutexOption) (mutexConfig, C.lk_lock_config, error) {
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
				return cfg, cc, err
			}
			*d.ms, *d.set = ms, 1
		}
	}
	if cfg.autoRenew != nil {
		cc.set_auto_renew, cc.auto_renew = 1, cbool(*cfg.autoRenew)
	}
	if cfg.fair != nil {
		cc.set_fair, cc.fair = 1, cbool(*cfg.fair)
	}
	if cfg.reentrant != nil {
		cc.set_reentrant, cc.reentrant = 1, cbool(*cfg.reentrant)
	}
	return cfg, cc, nil
}

// NewMutex makes a Mutex for the lock name (any UTF-8 string without NUL, up
// to 4096 bytes). Nothing is sent to Redis yet.
func (c *Client) NewMutex(name string, opts ...MutexOption) (*Mutex, error) {
	cfg, cc, err := lockConfig(opts)
	if err != nil {
		return nil, err
	}
	st := newMutexState(c, name)
	if cfg.reentrant != nil {
		st.reentrant = *cfg.reentrant
	}
	err = c.makeState(st, "lock name", func(p *C.latchkey_client, cname *C.char, cc C.lk_lock_config) (C.latchkey_status, *C.latchkey_error, C.uchar) {
		r := C.lk_lock_new(p, cname, cc)
		st.lock = r.lock
		return r.status, r.err, r.handle_taken
	}, cc)
	if err != nil {
		return nil, err
	}
	m := &Mutex{st: st}
	// A forgotten Close: free what holds nothing. Holds made through the
	// Mutex do not need it (the library keeps what they use), stay
	// registered with the client and keep renewing until they end.
	m.cleanup = runtime.AddCleanup(m, func(st *mutexState) { st.abandon() }, st)
	return m, nil
}

// newMutexState is the state of a new Mutex, Semaphore or Election.
func newMutexState(c *Client, name string) *mutexState {
	startDispatch.Do(func() { go dispatchReports() })
	return &mutexState{name: name, client: c.st, done: make(chan struct{}), slot: make(chan struct{}, 1)}
}

// makeState makes st's C handle with newC (the lost-lease callback on a
// handle to st; newC sets st's lock, sem or elect and says whether the
// library took the handle) and records st with the client, so that Close
// closes it. what names the name in messages ("lock name").
func (c *Client) makeState(st *mutexState, what string, newC func(p *C.latchkey_client, cname *C.char, cc C.lk_lock_config) (C.latchkey_status, *C.latchkey_error, C.uchar), cc C.lk_lock_config) error {
	err := c.withName(what, st.name, func(p *C.latchkey_client, cname *C.char) error {
		h := newHandle(st)
		cc.handle = C.uintptr_t(h)
		status, cerr, taken := newC(p, cname, cc)
		if taken == 0 {
			deleteHandle(h)
		}
		if status != C.LATCHKEY_OK {
			return takeError(status, cerr)
		}
		return nil
	})
	if err != nil {
		return err
	}
	lock, sem, elect, rw := st.lock, st.sem, st.elect, st.rw
	st.rc.init(func() {
		switch {
		case sem != nil:
			C.latchkey_semaphore_free(sem)
		case elect != nil:
			C.latchkey_election_free(elect)
		case rw != nil:
			C.latchkey_rwlock_free(rw)
		default:
			C.latchkey_lock_free(lock)
		}
	})
	if !c.st.addMutex(st) {
		st.rc.close()
		return c.st.closedError()
	}
	return nil
}

func cbool(b bool) C.uchar {
	if b {
		return 1
	}
	return 0
}

// describe names what st is for, in messages: "lock 'x'", "semaphore 'x'"
// or "election 'x'".
func (st *mutexState) describe() string {
	if st.label != "" {
		return st.label
	}
	return fmt.Sprintf("%s '%s'", st.noun(), st.name)
}

func (st *mutexState) noun() string {
	switch {
	case st.sem != nil:
		return "semaphore"
	case st.elect != nil:
		return "election"
	case st.rw != nil:
		return "read-write lock"
	}
	return "lock"
}

func (st *mutexState) closedError() error {
	if st.client != nil {
		st.client.mu.Lock()
		closed := st.client.closed
		st.client.mu.Unlock()
		if closed {
			return st.client.closedError()
		}
	}
	if st.lock == nil {
		return &Error{Message: fmt.Sprintf("the %s is closed", st.describe()), sentinel: ErrClosed}
	}
	return &Error{Message: fmt.Sprintf("the mutex for lock '%s' is closed", st.name), sentinel: ErrClosed}
}

// isClosed tells whether st or its client was closed (or is being closed:
// both flags are set before the waits are interrupted).
func (st *mutexState) isClosed() bool {
	if st.closed.Load() {
		return true
	}
	st.client.mu.Lock()
	defer st.client.mu.Unlock()
	return st.client.closed
}

func (st *mutexState) notLocked() error {
	return &Error{Status: StatusNotHeld, Message: fmt.Sprintf("the mutex for lock '%s' is not locked", st.name)}
}

// Name is the lock's name.
func (m *Mutex) Name() string {
	return m.st.name
}

// Lock acquires the lock, waiting until it is acquired or ctx ends: first,
// unless the Mutex is reentrant, here until the hold of an earlier Lock on
// this Mutex is Unlocked, then (without polling: a release in Redis wakes
// the waiter) for the lock in Redis. A cancelled ctx makes Lock return
// promptly with an error matching both ErrCancelled and context.Canceled; a
// ctx deadline, both ErrTimeout and context.DeadlineExceeded.
// context.Background() waits for ever, or until the Mutex or its Client is
// closed (ErrClosed).
//
// Lock fails with ErrConnection when Redis cannot be reached or does not
// answer within the client's command timeout, and with ErrServer when Redis
// answers with an error; an outage while waiting is ridden out until ctx
// ends.
func (m *Mutex) Lock(ctx context.Context) error {
	st := m.st
	if !st.reentrant {
		select {
		case st.slot <- struct{}{}:
		case <-ctx.Done():
			return contextError(ctx, st.describe(), ctx.Err())
		case <-st.done:
			return st.closedError()
		}
	}
	h, err := st.acquire(ctx, 0)
	if err != nil {
		if !st.reentrant {
			<-st.slot
		}
		return err
	}
	st.push(h)
	return nil
}

// TryLock makes one attempt, without waiting: true if it acquired the lock,
// false (and no error) if someone else holds it or, unless the Mutex is
// reentrant, an earlier Lock on this Mutex is not yet Unlocked; an error
// (ErrConnection) if Redis cannot be reached or does not answer within the
// command timeout.
func (m *Mutex) TryLock() (bool, error) {
	st := m.st
	if !st.reentrant {
		select {
		case st.slot <- struct{}{}:
		default:
			if st.closed.Load() {
				return false, st.closedError()
			}
			return false, nil
		}
	}
	h, err := st.tryAcquire(0)
	if h == nil {
		if !st.reentrant {
			<-st.slot
		}
		return false, err
	}
	st.push(h)
	return true, nil
}

// push makes h the Mutex's current hold.
func (st *mutexState) push(h *Hold) {
	st.mu.Lock()
	if st.abandoned {
		st.mu.Unlock()
		return
	}
	st.current = append(st.current, h)
	if next := st.next; next != nil && len(st.current) == 1 {
		// Lost was called while nothing was held: that channel is this
		// hold's.
		st.next = nil
		go func() {
			<-h.lost
			close(next)
		}()
	}
	st.mu.Unlock()
}

// top is the current hold, or nil.
func (st *mutexState) top() *Hold {
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.current) == 0 {
		return nil
	}
	return st.current[len(st.current)-1]
}

// Unlock releases the hold of the last Lock (see Hold.Unlock for the
// errors) and lets the next Lock on this Mutex proceed. It fails with
// ErrNotHeld when the Mutex holds nothing.
func (m *Mutex) Unlock() error {
	st := m.st
	st.mu.Lock()
	n := len(st.current)
	if n == 0 {
		st.mu.Unlock()
		if st.closed.Load() {
			return st.closedError()
		}
		return st.notLocked()
	}
	h := st.current[n-1]
	st.current[n-1] = nil
	st.current = st.current[:n-1]
	st.mu.Unlock()
	err := h.Unlock()
	if !st.reentrant {
		<-st.slot
	}
	return err
}

// Extend is Hold.Extend of the current hold; ErrNotHeld when the Mutex holds
// nothing.
func (m *Mutex) Extend(ttl time.Duration) error {
	h := m.st.top()
	if h == nil {
		return m.st.notLocked()
	}
	return h.Extend(ttl)
}

// ExtendBy is Hold.ExtendBy of the current hold; ErrNotHeld when the Mutex
// holds nothing.
func (m *Mutex) ExtendBy(additional time.Duration) error {
	h := m.st.top()
	if h == nil {
		return m.st.notLocked()
	}
	return h.ExtendBy(additional)
}

// Check is Hold.Check of the current hold; ErrNotHeld when the Mutex holds
// nothing.
func (m *Mutex) Check() error {
	h := m.st.top()
	if h == nil {
		return m.st.notLocked()
	}
	return h.Check()
}

// Remaining is Hold.Remaining of the current hold; 0 when the Mutex holds
// nothing.
func (m *Mutex) Remaining() time.Duration {
	if h := m.st.top(); h != nil {
		return h.Remaining()
	}
	return 0
}

// FencingToken is the current hold's fencing token (strictly greater than
// every token issued before for this lock name), or 0 when the Mutex holds
// nothing. Pass it to the resource you protect (see Client.FencedWrite).
func (m *Mutex) FencingToken() uint64 {
	if h := m.st.top(); h != nil {
		return h.fence
	}
	return 0
}

// Token is the current hold's owner token as stored in Redis (32 hex
// digits; what Client.Inspect reports as Owner), or "" when the Mutex holds
// nothing.
func (m *Mutex) Token() string {
	if h := m.st.top(); h != nil {
		return h.token
	}
	return ""
}

// Lost is Hold.Lost of the current hold: closed, once, when that hold ends
// (lost, unlocked, or closed). Called while the Mutex holds nothing, it
// returns the channel of the next hold Lock or TryLock takes (closed if the
// Mutex is closed first).
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
	if n := len(st.current); n > 0 {
		return st.current[n-1].lost
	}
	if st.next == nil {
		st.next = make(chan struct{})
		if st.closed.Load() {
			close(st.next)
		}
	}
	return st.next
}

// Close interrupts the acquires in progress through this Mutex (they fail
// with ErrClosed), releases every lock still held through it (Lock's and
// Acquire's holds; their Lost channels close) and frees it. The errors are
// those of the releases. Closing twice is harmless.
func (m *Mutex) Close() error {
	m.cleanup.Stop()
	return m.st.close()
}

// close is the Close of a Mutex, Semaphore or Election: shut, then release
// every hold still held through it. Closing twice is harmless.
func (st *mutexState) close() error {
	if !st.shut() {
		return nil
	}
	errs := releaseAll(st.client.takeHolds(st))
	st.mu.Lock()
	st.current = nil
	st.mu.Unlock()
	return errors.Join(errs...)
}

// shut marks the Mutex closed (once), interrupts its waits and frees its C
// lock once no call uses it; false if it was closed already. Holds are the
// caller's business.
func (st *mutexState) shut() bool {
	c := st.client
	c.mu.Lock()
	if st.closed.Load() {
		c.mu.Unlock()
		return false
	}
	st.closed.Store(true)
	c.interruptWaitsLocked(st)
	delete(c.mutexes, st)
	c.mu.Unlock()
	close(st.done)
	st.mu.Lock()
	if st.next != nil {
		close(st.next)
		st.next = nil
	}
	st.mu.Unlock()
	st.rc.close()
	return true
}

// abandon is the garbage collector's Close: the program dropped the Mutex,
// so nothing can acquire through it any more. It frees the C lock (which
// holds nothing) and leaves the holds alone.
func (st *mutexState) abandon() {
	c := st.client
	c.mu.Lock()
	delete(c.mutexes, st)
	c.mu.Unlock()
	// Nobody can Unlock through the Mutex any more. Its live holds stay in
	// the client's registry until they end; forgetting them here lets the
	// collector free them then (the library's handle to this state lives as
	// long as their guards, so holds kept here would never be freed).
	st.mu.Lock()
	st.abandoned = true
	st.current = nil
	st.mu.Unlock()
	st.rc.close()
}
