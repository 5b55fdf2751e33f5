package latchkey

import (
	"context"
	"sync"
)

// Locker returns a sync.Locker over m, for code that takes a sync.Locker
// (sync.Cond, a cache or pool that accepts any Locker, a function written
// for sync.Mutex). Its Lock is m.Lock(context.Background()) and its Unlock
// is m.Unlock(), so it shares the local semantics of the Mutex methods: one
// hold at a time per Mutex, a second Lock waits in this process for the
// first hold's Unlock, and m's Check, FencingToken, Lost and friends refer
// to the hold the Locker took. Every call to Locker returns a value over the
// same m; they all share its one hold.
//
// Lock blocks without a deadline: until the lock is acquired in Redis
// (without polling: a release wakes it), or until m or its Client is closed.
// An outage while waiting is ridden out.
//
// sync.Locker has no error return, so a failure panics, as etcd's
// concurrency.NewLocker does. The panic value is the error the Mutex method
// returned: always an *Error (an error value), so a recover can test it
// with errors.Is:
//
//   - Lock panics when m or its Client is closed (ErrClosed), when Redis
//     cannot be reached or does not answer within the client's command
//     timeout as Lock starts (ErrConnection), when the server refuses the
//     credentials (ErrAuth) or answers with an error (ErrServer, for
//     example an ACL user without a permission latchkey needs). After such
//     a panic m holds nothing.
//   - Unlock panics when the lease was lost before it (ErrNotHeld: the
//     section it protected may have overlapped another holder's), when m
//     holds nothing (ErrNotHeld, like sync.Mutex's unlock of an unlocked
//     mutex), when m or its Client was closed meanwhile (ErrClosed), or when
//     the release could not reach Redis (ErrConnection; the lease then runs
//     out by itself). Even after such a panic the hold is over and the next
//     Lock may proceed.
//
// Code that must not panic, or that wants a deadline or cancellation, uses
// m.Lock(ctx) and m.Unlock() and checks their errors. To notice a lost
// lease while holding the lock, watch m.Lost() (or call m.Check()) between
// the Locker's Lock and Unlock.
func (m *Mutex) Locker() sync.Locker {
	return locker{m}
}

// locker is the sync.Locker that Mutex.Locker returns.
type locker struct {
	m *Mutex
}

// Lock acquires the lock, waiting without a deadline, and panics with the
// *Error of Mutex.Lock if it fails.
func (l locker) Lock() {
	if err := l.m.Lock(context.Background()); err != nil {
		panic(err)
	}
}

// Unlock releases the lock and panics with the *Error of Mutex.Unlock if it
// fails.
func (l locker) Unlock() {
	if err := l.m.Unlock(); err != nil {
		panic(err)
	}
}
