package latchkey_test

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"latchkey"
)

// recoverError runs f and returns the error it panicked with (nil if it did
// not panic); a panic with anything but an *latchkey.Error fails the test.
func recoverError(t *testing.T, f func()) (err error) {
	t.Helper()
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		var lkErr *latchkey.Error
		e, ok := r.(error)
		if !ok || !errors.As(e, &lkErr) {
			t.Fatalf("panicked with %T %v, want an *latchkey.Error", r, r)
		}
		err = e
	}()
	f()
	return nil
}

// Two Lockers over Mutexes of one name exclude each other through Redis: the
// second Lock returns only once the first hold is unlocked.
func TestLockerExcludes(t *testing.T) {
	c := openClient(t)
	name := uniqueName(t)
	first := newMutex(t, c, name).Locker()
	second := newMutex(t, c, name).Locker()

	first.Lock()
	var firstUnlocked atomic.Bool
	acquired := make(chan bool)
	go func() {
		second.Lock() // waits for the first hold's release
		acquired <- firstUnlocked.Load()
		second.Unlock()
		close(acquired)
	}()
	firstUnlocked.Store(true)
	first.Unlock()
	if after := <-acquired; !after {
		t.Fatal("the second Locker acquired while the first held the lock")
	}
	<-acquired // the second Unlock did not panic
	if held, err := c.IsLocked(name); err != nil || held {
		t.Fatalf("IsLocked after both unlocks = %v, %v", held, err)
	}
}

// The Locker and the Mutex methods share the Mutex's one hold.
func TestLockerSharesTheMutexHold(t *testing.T) {
	c := openClient(t)
	name := uniqueName(t)
	m := newMutex(t, c, name)
	var l sync.Locker = m.Locker()
	l.Lock()
	info, err := c.Inspect(name)
	if err != nil || info == nil || info.Owner != m.Token() || m.FencingToken() == 0 {
		t.Fatalf("Inspect = %+v, %v; the Mutex's token %q, fencing token %d", info, err, m.Token(), m.FencingToken())
	}
	if ok, err := m.TryLock(); ok || err != nil {
		t.Fatalf("TryLock while the Locker holds = %v, %v; want false, nil", ok, err)
	}
	if err := m.Unlock(); err != nil { // the Locker's hold, through the Mutex
		t.Fatal(err)
	}
	if err := recoverError(t, l.Unlock); !errors.Is(err, latchkey.ErrNotHeld) {
		t.Fatalf("Locker Unlock after the Mutex's Unlock panicked with %v, want ErrNotHeld", err)
	}
}

// A lease lost before Unlock panics with ErrNotHeld, and the Mutex can be
// locked again afterwards.
func TestLockerUnlockOfALostLeasePanics(t *testing.T) {
	c := openClient(t)
	name := uniqueName(t)
	// Renewed every 200 ms: the watchdog notices the loss at its next renewal.
	m := newMutex(t, c, name, latchkey.WithTTL(600*time.Millisecond))
	l := m.Locker()
	l.Lock()
	lost := m.Lost()
	if deleted, err := c.ForceUnlock(name); err != nil || !deleted {
		t.Fatalf("ForceUnlock = %v, %v", deleted, err)
	}
	select {
	case <-lost:
	case <-time.After(10 * time.Second):
		t.Fatal("Lost not closed 10 s after ForceUnlock")
	}
	if err := m.Check(); !errors.Is(err, latchkey.ErrLost) {
		t.Fatalf("Check after the loss = %v, want ErrLost", err)
	}
	if err := recoverError(t, l.Unlock); !errors.Is(err, latchkey.ErrNotHeld) {
		t.Fatalf("Unlock of a lost lease panicked with %v, want ErrNotHeld", err)
	}
	// The hold is over: the next Lock does not wait for it.
	l.Lock()
	l.Unlock()
}

// Lock on a closed Mutex, or through a closed Client, panics with ErrClosed.
func TestLockerLockWhenClosedPanics(t *testing.T) {
	c := openClient(t)
	m := newMutex(t, c, uniqueName(t))
	l := m.Locker()
	m.Close()
	if err := recoverError(t, l.Lock); !errors.Is(err, latchkey.ErrClosed) {
		t.Fatalf("Lock on a closed Mutex panicked with %v, want ErrClosed", err)
	}

	other := openClient(t)
	waiting := newMutex(t, other, uniqueName(t))
	holder := newMutex(t, c, waiting.Name())
	holder.Locker().Lock()
	defer holder.Locker().Unlock()
	// The Client closes while the Locker waits: Lock panics with ErrClosed
	// instead of waiting for ever.
	done := make(chan error)
	go func() {
		done <- recoverError(t, waiting.Locker().Lock)
	}()
	waitUntil(t, "the waiter to subscribe", func() bool {
		n, err := subscribers(redisURL, waiting.Name())
		return err == nil && n > 0
	})
	other.Close()
	if err := <-done; !errors.Is(err, latchkey.ErrClosed) {
		t.Fatalf("Lock interrupted by Close panicked with %v, want ErrClosed", err)
	}
}
