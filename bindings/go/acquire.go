package latchkey

// Acquiring: the C calls, the context, and the cancel handle through which
// a context, Mutex.Close or Client.Close interrupts a wait.

/*
#include "helpers.h"
*/
import "C"

import (
	"context"
	"errors"
	"time"
)

// Acquire acquires the lock and returns the new Hold, waiting (without
// polling: a release in Redis wakes the waiter) until it is acquired or ctx
// ends. It does not wait for holds taken by Lock on this Mutex: it competes
// for the lock in Redis like any other owner. The errors are those of Lock;
// a Mutex or Client closed while waiting ends the wait with ErrClosed.
func (m *Mutex) Acquire(ctx context.Context) (*Hold, error) {
	return m.st.acquire(ctx, 0)
}

// TryAcquire makes one attempt, without waiting: the new Hold, or nil (and
// no error) if someone else holds the lock; an error (ErrConnection) if
// Redis cannot be reached or does not answer within the command timeout.
func (m *Mutex) TryAcquire() (*Hold, error) {
	return m.st.tryAcquire(0)
}

// cAcquire is the C acquire of a lock, or of permits of a semaphore.
func (st *mutexState) cAcquire(permits uint32, timeout C.int64_t, cancel *C.latchkey_cancel) C.lk_acquired {
	if st.sem != nil {
		return C.lk_semaphore_acquire(st.sem, C.uint32_t(permits), timeout, cancel)
	}
	return C.lk_acquire(st.lock, timeout, cancel)
}

// acquire waits for the lock (permits: 0) or for permits of a semaphore.
func (st *mutexState) acquire(ctx context.Context, permits uint32) (*Hold, error) {
	var r C.lk_acquired
	err := st.wait(ctx, func(timeout C.int64_t, cancel *C.latchkey_cancel) (C.latchkey_status, *C.latchkey_error) {
		r = st.cAcquire(permits, timeout, cancel)
		return r.status, r.err
	})
	if err != nil {
		return nil, err
	}
	return newHold(st, r)
}

// wait runs call, the C acquire of whatever st is for (given the timeout
// in milliseconds, -1 for ever, and the cancel handle that ctx, Close and
// Client.Close trigger), and turns its failure into ctx's error, ErrClosed
// or the library's error; nil when call returned LATCHKEY_OK.
func (st *mutexState) wait(ctx context.Context, call func(C.int64_t, *C.latchkey_cancel) (C.latchkey_status, *C.latchkey_error)) error {
	if err := ctx.Err(); err != nil {
		return contextError(ctx, st.describe(), err)
	}
	timeout := C.int64_t(-1)
	deadline, hasDeadline := ctx.Deadline()
	if hasDeadline {
		d := time.Until(deadline)
		if d <= 0 {
			return contextError(ctx, st.describe(), context.DeadlineExceeded)
		}
		// Rounded up, so the library never gives up before ctx does.
		timeout = C.int64_t((d + time.Millisecond - 1) / time.Millisecond)
	}
	if !st.rc.acquire() {
		return st.closedError()
	}
	defer st.rc.release()

	// Every wait has a cancel handle, registered with the client, so that
	// Close can interrupt it even when ctx never ends.
	made := C.lk_cancel_new()
	if made.status != C.LATCHKEY_OK {
		return takeError(made.status, made.err)
	}
	cancel := made.cancel
	defer C.latchkey_cancel_free(cancel)
	if !st.client.startWait(cancel, st) {
		return st.closedError()
	}
	var status C.latchkey_status
	var cerr *C.latchkey_error
	st.tick.beforeBlockingCall()
	if ctx.Done() == nil {
		status, cerr = call(timeout, cancel)
	} else {
		// context.AfterFunc is the watcher goroutine, started only if ctx
		// ends: it triggers the cancel handle, which wakes the acquire.
		triggered := make(chan struct{})
		stop := context.AfterFunc(ctx, func() {
			// At ctx's deadline the library's own timeout (that deadline,
			// rounded up) ends the call within a millisecond and says why
			// it was not acquired: held (ErrTimeout, reported below as
			// ctx's error) or not yet grantable (ErrNoQuorum, naming the
			// restart delay). Only other ends of ctx cancel the wait.
			if !hasDeadline || !errors.Is(ctx.Err(), context.DeadlineExceeded) {
				C.latchkey_cancel_trigger(cancel, nil)
			}
			close(triggered)
		})
		status, cerr = call(timeout, cancel)
		if !stop() {
			<-triggered // the handle must outlive its trigger call
		}
	}
	st.client.endWait(cancel)
	if status != C.LATCHKEY_OK {
		err := takeError(status, cerr)
		if status == C.LATCHKEY_CANCELLED || status == C.LATCHKEY_TIMEOUT {
			if ctxErr := ctx.Err(); ctxErr != nil {
				return contextError(ctx, st.describe(), ctxErr)
			}
			if status == C.LATCHKEY_CANCELLED {
				// Nothing but ctx and Close trigger the handle.
				return st.closedError()
			}
			if hasDeadline && !time.Now().Before(deadline) {
				// The library's timeout fired just before ctx's timer.
				return contextError(ctx, st.describe(), context.DeadlineExceeded)
			}
		}
		return err
	}
	return nil
}

func (st *mutexState) tryAcquire(permits uint32) (*Hold, error) {
	if !st.rc.acquire() {
		return nil, st.closedError()
	}
	st.tick.beforeBlockingCall()
	var r C.lk_acquired
	if st.sem != nil {
		r = C.lk_semaphore_try_acquire(st.sem, C.uint32_t(permits))
	} else {
		r = C.lk_try_acquire(st.lock)
	}
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

// addMutex records a new Mutex so that Close can close it; false once the
// client is closed.
func (st *clientState) addMutex(m *mutexState) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.closed {
		return false
	}
	st.mutexes[m] = struct{}{}
	return true
}
