package latchkey_test

// Regression tests of the hold, garbage-collection, Close and Lost rules,
// written with the Mutex API only so that each one also ran on the code
// before the fix (the report that came with the fix quotes what they printed
// there).

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"

	"latchkey"
)

// waitClosed waits (generously) for ch to be closed.
func waitClosed(t *testing.T, what string, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: not closed within 10 s", what)
	}
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// One Mutex shared by two goroutines. A's lease (no renewal) runs out; B
// locks through the same Mutex and extends its lease. A's Check must say
// Lost, A's Unlock must say NotHeld and leave B's lock alone, and nobody
// else may get in while B holds.
func TestSharedMutexLostHoldIsNotAnother(t *testing.T) {
	c := openClient(t)
	name := uniqueName(t)
	m := newMutex(t, c, name, latchkey.WithTTL(200*time.Millisecond), latchkey.WithAutoRenew(false))
	third := newMutex(t, openClient(t), name)
	if err := m.Lock(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "A's lease to run out in Redis", func() bool {
		owner, err := lockOwner(redisURL, name)
		return err == nil && owner == ""
	})

	bIn := make(chan string)
	finish := make(chan struct{})
	bDone := make(chan error, 1)
	go func() {
		if err := m.Lock(context.Background()); err != nil {
			bDone <- err
			return
		}
		if err := m.Extend(5 * time.Second); err != nil {
			bDone <- err
			return
		}
		bIn <- m.Token()
		<-finish
		bDone <- m.Unlock()
	}()
	// B's chance to get in through the Mutex before A is done with it.
	var bToken string
	select {
	case bToken = <-bIn:
		t.Logf("B acquired through the Mutex before A unlocked")
	case <-time.After(500 * time.Millisecond):
	}

	if err := m.Check(); !errors.Is(err, latchkey.ErrLost) {
		t.Errorf("A's Check() = %v, want ErrLost", err)
	}
	if err := m.Unlock(); !errors.Is(err, latchkey.ErrNotHeld) {
		t.Errorf("A's Unlock() = %v, want ErrNotHeld", err)
	}
	if bToken == "" {
		select {
		case bToken = <-bIn:
		case err := <-bDone:
			t.Fatalf("B: %v", err)
		case <-time.After(10 * time.Second):
			t.Fatal("B did not get the lock within 10 s of A's Unlock")
		}
	}
	if owner, err := lockOwner(redisURL, name); err != nil || owner != bToken {
		t.Errorf("Redis owner = %q (%v) while B holds with %q", owner, err, bToken)
	}
	if ok, err := third.TryLock(); ok || err != nil {
		t.Errorf("a third party's TryLock() = %v, %v while B holds", ok, err)
		if ok {
			third.Unlock()
		}
	}
	close(finish)
	if err := <-bDone; err != nil {
		t.Errorf("B's Unlock() = %v", err)
	}
}

// A Mutex that is locked and then never touched again (a leader that keeps
// serving) keeps its lock: the garbage collector must not release it, the
// watchdog keeps renewing it, and its Lost channel still reports a loss.
func TestCollectedMutexKeepsItsHold(t *testing.T) {
	c := openClient(t)
	admin := openClient(t)
	name := uniqueName(t)
	collected := make(chan struct{})
	lost := func() <-chan struct{} {
		m, err := c.NewMutex(name, latchkey.WithTTL(300*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Lock(context.Background()); err != nil {
			t.Fatal(err)
		}
		runtime.AddCleanup(m, func(ch chan struct{}) { close(ch) }, collected)
		return m.Lost()
	}()
	owner, err := lockOwner(redisURL, name)
	if err != nil || owner == "" {
		t.Fatalf("owner = %q, %v", owner, err)
	}
	waitUntil(t, "the Mutex to be collected", func() bool {
		runtime.GC()
		return isClosed(collected)
	})
	// Several ttls after the Mutex was collected, the lock is still the same
	// holder's (renewed, not released, not expired).
	until := time.Now().Add(1200 * time.Millisecond)
	for time.Now().Before(until) {
		runtime.GC()
		if now, err := lockOwner(redisURL, name); err != nil || now != owner {
			t.Fatalf("after the Mutex was collected the lock's owner is %q (%v), was %q", now, err, owner)
		}
		if isClosed(lost) {
			t.Fatal("Lost closed while the lock was still held")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if deleted, err := admin.ForceUnlock(name); err != nil || !deleted {
		t.Fatalf("ForceUnlock = %v, %v", deleted, err)
	}
	waitClosed(t, "Lost of the collected Mutex's hold after ForceUnlock", lost)
}

// Client.Close interrupts a Lock that waits with a context that never ends.
func TestCloseInterruptsLock(t *testing.T) {
	name := uniqueName(t)
	holder := newMutex(t, openClient(t), name)
	if err := holder.Lock(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer holder.Unlock()
	c, err := latchkey.Open(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	m, err := c.NewMutex(name)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- m.Lock(context.Background()) }()
	waitUntil(t, "the waiter to subscribe", func() bool {
		n, err := subscribers(redisURL, name)
		return err == nil && n > 0
	})
	c.Close()
	select {
	case err := <-done:
		if err == nil || errors.Is(err, latchkey.ErrInvalidArgument) {
			t.Fatalf("Lock interrupted by Close = %v, want the closed error", err)
		}
	case <-time.After(10 * time.Second):
		holder.Unlock() // let the goroutine end
		t.Fatal("Client.Close did not interrupt Lock(context.Background()) within 10 s")
	}
}

// Every hold's Lost channel closes exactly once: when the hold is lost, when
// it is unlocked, or when its client is closed.
func TestLostClosesWhenTheHoldEnds(t *testing.T) {
	c, err := latchkey.Open(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	name := uniqueName(t)
	m, err := c.NewMutex(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Lock(context.Background()); err != nil {
		t.Fatal(err)
	}
	first := m.Lost()
	if err := m.Unlock(); err != nil {
		t.Fatal(err)
	}
	if !isClosed(first) {
		t.Error("Lost of an unlocked hold is still open")
	}
	if err := m.Lock(context.Background()); err != nil {
		t.Fatal(err)
	}
	second := m.Lost()
	if isClosed(second) {
		t.Fatal("Lost of a live hold is closed")
	}
	c.Close()
	if !isClosed(second) {
		t.Error("Lost of a hold is still open after its client's Close")
	}
	if owner, err := lockOwner(redisURL, name); err != nil || owner != "" {
		t.Errorf("after Client.Close the lock is held by %q (%v)", owner, err)
	}
}

// Lost called before Lock belongs to the next hold: open until that hold
// ends.
func TestLostBeforeLock(t *testing.T) {
	c := openClient(t)
	name := uniqueName(t)
	m := newMutex(t, c, name, latchkey.WithTTL(600*time.Millisecond))
	lost := m.Lost()
	if isClosed(lost) {
		t.Fatal("Lost() before Lock is already closed")
	}
	if err := m.Lock(context.Background()); err != nil {
		t.Fatal(err)
	}
	if isClosed(lost) {
		t.Fatal("Lost() taken before Lock closed while the hold is live")
	}
	if _, err := c.ForceUnlock(name); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, "Lost() taken before Lock, after ForceUnlock", lost)
}

// A closed Mutex or Client is its own error, not an invalid argument.
func TestClosedIsItsOwnError(t *testing.T) {
	c, err := latchkey.Open(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	m, err := c.NewMutex(uniqueName(t))
	if err != nil {
		t.Fatal(err)
	}
	m.Close()
	if err := m.Lock(context.Background()); err == nil || errors.Is(err, latchkey.ErrInvalidArgument) {
		t.Errorf("Lock on a closed Mutex = %v, must not match ErrInvalidArgument", err)
	}
	c.Close()
	if _, err := c.Inspect("x"); err == nil || errors.Is(err, latchkey.ErrInvalidArgument) {
		t.Errorf("Inspect on a closed Client = %v, must not match ErrInvalidArgument", err)
	}
}

// A lost-lease report that the Go side cannot take at once (the scheduler,
// a stop-the-world pause, a busy lock) must not stall the library's
// watchdog thread, which renews every other lease of the client: a loss of
// one lock never costs another lock its lease.
func TestSlowLostReportDoesNotStallRenewals(t *testing.T) {
	c := openClient(t)
	admin := openClient(t)
	keep, drop := uniqueName(t), uniqueName(t)
	mk := newMutex(t, c, keep, latchkey.WithTTL(300*time.Millisecond))
	md := newMutex(t, c, drop, latchkey.WithTTL(300*time.Millisecond))
	if err := mk.Lock(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := md.Lock(context.Background()); err != nil {
		t.Fatal(err)
	}
	owner, err := lockOwner(redisURL, keep)
	if err != nil || owner != mk.Token() {
		t.Fatalf("owner %q (%v)", owner, err)
	}
	lost := md.Lost()
	resume := latchkey.StallClient(c)
	if _, err := admin.ForceUnlock(drop); err != nil {
		resume()
		t.Fatal(err)
	}
	// The watchdog finds drop gone within a renewal period (100 ms) and
	// reports it; keep must stay renewed for many of its ttls meanwhile.
	until := time.Now().Add(2 * time.Second)
	for time.Now().Before(until) {
		if now, err := lockOwner(redisURL, keep); err != nil || now != owner {
			resume()
			t.Fatalf("while a loss report waited, the other lock's owner became %q (%v), was %q", now, err, owner)
		}
		time.Sleep(20 * time.Millisecond)
	}
	resume()
	waitClosed(t, "Lost of the force-unlocked lock", lost)
	if err := mk.Check(); err != nil {
		t.Fatalf("the other lock's Check() = %v", err)
	}
}
