package latchkey

/*
#include "helpers.h"

typedef struct {
	latchkey_status status;
	latchkey_error *err;
	latchkey_rwlock *rwlock;
	unsigned char handle_taken; // as lk_lock_made's
} lk_rwlock_made;

// A read-write lock with the options of cfg (reentrant and fair are
// refused by the library): one cgo call.
static inline lk_rwlock_made lk_rwlock_new(const latchkey_client *client, const char *name, lk_lock_config cfg) {
	lk_rwlock_made r = {0};
	latchkey_lock_options *options = lk_options_make(cfg, &r.status, &r.err, &r.handle_taken);
	if (options == NULL) return r;
	r.status = latchkey_rwlock_new(client, name, options, &r.rwlock, &r.err);
	latchkey_lock_options_free(options);
	return r;
}

// Take a read lease (write 0) or the write lock, then read the new guard's
// tokens: one cgo call.
static inline lk_acquired lk_rwlock_acquire(const latchkey_rwlock *rw, int write, int64_t timeout_ms,
                                            const latchkey_cancel *cancel) {
	lk_acquired r = {0};
	r.status = write ? latchkey_rwlock_write(rw, timeout_ms, cancel, &r.guard, &r.err)
	                 : latchkey_rwlock_read(rw, timeout_ms, cancel, &r.guard, &r.err);
	if (r.status == LATCHKEY_OK) lk_fill_guard(&r);
	return r;
}

// One attempt; "not available" (LATCHKEY_TIMEOUT) needs no message.
static inline lk_acquired lk_rwlock_try(const latchkey_rwlock *rw, int write) {
	lk_acquired r = {0};
	r.status = write ? latchkey_rwlock_try_write(rw, &r.guard, &r.err) : latchkey_rwlock_try_read(rw, &r.guard, &r.err);
	if (r.status == LATCHKEY_OK) {
		lk_fill_guard(&r);
	} else if (r.status == LATCHKEY_TIMEOUT) {
		latchkey_error_free(r.err);
		r.err = NULL;
	}
	return r;
}
*/
import "C"

import (
	"context"
	"runtime"
)

// RWMutex is a named distributed read-write lock: any number of readers, or
// one writer, hold it at a time, as with sync.RWMutex, but across processes
// and languages. Make it with Client.NewRWMutex; Close it when done.
//
// Every acquisition (RLock, TryRLock for a reader; Lock, TryLock for the
// writer) returns a Hold of its own, as Mutex.Acquire does: its own lease,
// renewed while held (unless WithAutoRenew(false)), reported lost as a
// lock's is (the Hold's Lost channel closes, Check says ErrLost), and given
// back by Redis when its holder dies and the lease ends (a dead reader
// frees only its own share). Unlock ends it. Readers and writers draw
// fencing tokens from one counter, so a writer's token is above every hold
// before it.
//
// Writers are preferred: a writer that waits stops new readers, so a
// stream of readers never starves writers; the readers already inside
// finish, then the writer goes, then the waiting readers together. A writer
// that gives up (its ctx ends) lets readers in again at once. Waiters are
// woken by releases (no polling).
//
// Not reentrant: a goroutine that holds a read lease and asks for another
// waits behind a waiting writer, which waits for the first lease; a reader
// never upgrades to a writer, and a writer that asks to read waits for
// itself. Take one Hold per piece of work.
//
// An RWMutex and a Mutex, Semaphore or Election of one name share no key.
// Read-write locks are refused on Redlock clients (NewRWMutex fails with
// ErrInvalidArgument).
//
// An RWMutex is safe for concurrent use. Its holds follow a Mutex's rules:
// a live Hold stays reachable from its Client until it ends (Unlock, loss,
// or Close of its RWMutex or Client), so the garbage collector never
// releases a hold behind the program's back; an RWMutex the program dropped
// without Close frees only what holds nothing.
type RWMutex struct {
	st      *mutexState
	cleanup runtime.Cleanup
}

// NewRWMutex makes an RWMutex for the name (any UTF-8 string without NUL,
// up to 4096 bytes). The options are NewMutex's: WithTTL, WithAutoRenew,
// WithRenewEvery and WithRetryJitter apply to each hold's lease;
// WithReentrant(true) and WithFair(true) make it fail with
// ErrInvalidArgument. Nothing is sent to Redis yet.
func (c *Client) NewRWMutex(name string, opts ...MutexOption) (*RWMutex, error) {
	_, cc, err := lockConfig(opts)
	if err != nil {
		return nil, err
	}
	st := newMutexState(c, name)
	err = c.makeState(st, "read-write lock name", func(p *C.latchkey_client, cname *C.char, cc C.lk_lock_config) (C.latchkey_status, *C.latchkey_error, C.uchar) {
		r := C.lk_rwlock_new(p, cname, cc)
		st.rw = r.rwlock
		return r.status, r.err, r.handle_taken
	}, cc)
	if err != nil {
		return nil, err
	}
	rw := &RWMutex{st: st}
	// A forgotten Close: free what holds nothing (as for a Mutex).
	rw.cleanup = runtime.AddCleanup(rw, func(st *mutexState) { st.abandon() }, st)
	return rw, nil
}

// Name is the read-write lock's name.
func (rw *RWMutex) Name() string { return rw.st.name }

// RLock takes a read lease and returns its Hold, waiting (without polling)
// while a writer holds or waits for the lock, until ctx ends, exactly as
// Mutex.Lock waits: a cancelled ctx returns promptly with an error matching
// both ErrCancelled and context.Canceled; a ctx deadline, both ErrTimeout
// and context.DeadlineExceeded; context.Background() waits for ever, or
// until the RWMutex or its Client is closed (ErrClosed).
func (rw *RWMutex) RLock(ctx context.Context) (*Hold, error) {
	return rw.st.acquireWith(ctx, rw.side(0))
}

// Lock takes the lock for writing (no reader, no other writer) and returns
// its Hold, waiting as RLock does; while it waits, new readers wait too.
func (rw *RWMutex) Lock(ctx context.Context) (*Hold, error) {
	return rw.st.acquireWith(ctx, rw.side(1))
}

// TryRLock makes one attempt at a read lease, without waiting: the new
// Hold, or nil (and no error) if a writer holds or waits for the lock, as
// Semaphore.TryAcquire; ErrConnection if Redis cannot be reached or does
// not answer within the command timeout.
func (rw *RWMutex) TryRLock() (*Hold, error) {
	st := rw.st
	return st.tryWith(func() C.lk_acquired { return C.lk_rwlock_try(st.rw, 0) })
}

// TryLock makes one attempt at the write lock, without waiting: the new
// Hold, or nil (and no error) if readers or another writer hold it.
func (rw *RWMutex) TryLock() (*Hold, error) {
	st := rw.st
	return st.tryWith(func() C.lk_acquired { return C.lk_rwlock_try(st.rw, 1) })
}

// side is the blocking C acquire of one side (write: 0 to read, 1 to write).
func (rw *RWMutex) side(write C.int) func(C.int64_t, *C.latchkey_cancel) C.lk_acquired {
	st := rw.st
	return func(timeout C.int64_t, cancel *C.latchkey_cancel) C.lk_acquired {
		return C.lk_rwlock_acquire(st.rw, write, timeout, cancel)
	}
}

// Close interrupts the acquires in progress through this RWMutex (they fail
// with ErrClosed), releases every hold still held through it (their Lost
// channels close) and frees it. The errors are those of the releases.
// Closing twice is harmless.
func (rw *RWMutex) Close() error {
	rw.cleanup.Stop()
	return rw.st.close()
}

// acquireWith waits (st.wait) for a hold that the blocking C acquire call
// makes, and records it: what Mutex.Acquire and Semaphore.Acquire do
// (mutexState.acquire), for any kind of hold.
func (st *mutexState) acquireWith(ctx context.Context, call func(C.int64_t, *C.latchkey_cancel) C.lk_acquired) (*Hold, error) {
	var r C.lk_acquired
	err := st.wait(ctx, func(timeout C.int64_t, cancel *C.latchkey_cancel) (C.latchkey_status, *C.latchkey_error) {
		r = call(timeout, cancel)
		return r.status, r.err
	})
	if err != nil {
		return nil, err
	}
	return newHold(st, r)
}

// tryWith makes one attempt with the C call: the new Hold, or nil and no
// error when it was not available (LATCHKEY_TIMEOUT, its message freed by
// the call): what Mutex.TryAcquire and Semaphore.TryAcquire do
// (mutexState.tryAcquire), for any kind of hold.
func (st *mutexState) tryWith(call func() C.lk_acquired) (*Hold, error) {
	if !st.rc.acquire() {
		return nil, st.closedError()
	}
	st.tick.beforeBlockingCall()
	r := call()
	st.rc.release()
	switch r.status {
	case C.LATCHKEY_OK:
		return newHold(st, r)
	case C.LATCHKEY_TIMEOUT:
		return nil, nil
	default:
		return nil, takeError(r.status, r.err)
	}
}
