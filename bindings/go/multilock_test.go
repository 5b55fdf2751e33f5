package latchkey_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"latchkey"
)

func newMultiLock(t testing.TB, c *latchkey.Client, names []string, opts ...latchkey.MutexOption) *latchkey.MultiLock {
	t.Helper()
	m, err := c.NewMultiLock(names, opts...)
	if err != nil {
		t.Fatalf("NewMultiLock(%q): %v", names, err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func isLocked(t *testing.T, c *latchkey.Client, name string) bool {
	t.Helper()
	locked, err := c.IsLocked(name)
	if err != nil {
		t.Fatal(err)
	}
	return locked
}

func waitForSubscriber(t *testing.T, name string) {
	t.Helper()
	waitUntil(t, "a waiter for "+name, func() bool {
		n, err := subscribers(redisURL, name)
		return err == nil && n > 0
	})
}

// Goroutines with their own clients take {x, y}, {y, x} and {z, y} over
// and over: taken in the caller's order the first two would deadlock; here
// all finish, and no two holders of one name overlap.
func TestMultiLockOppositeOrdersNeverDeadlockOrOverlap(t *testing.T) {
	base := uniqueName(t)
	x, y, z := base+"-x", base+"-y", base+"-z"
	var mu sync.Mutex
	holders := map[string]int{}
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for _, names := range [][]string{{x, y}, {y, x}, {z, y}} {
		m := newMultiLock(t, openClient(t), names)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				h, err := m.Acquire(ctx)
				cancel()
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				for _, n := range h.Names() {
					if holders[n]++; holders[n] != 1 {
						errs <- fmt.Errorf("two holders of %s", n)
					}
				}
				mu.Unlock()
				runtime.Gosched() // let another goroutine in while held
				mu.Lock()
				for _, n := range h.Names() {
					holders[n]--
				}
				mu.Unlock()
				if err := h.Check(); err != nil {
					errs <- err
				}
				if err := h.Unlock(); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// When one lock is held elsewhere, a try or a timed acquisition takes
// none; once it is free, all are taken, each with its fencing token.
func TestMultiLockAllOrNothing(t *testing.T) {
	c := openClient(t)
	base := uniqueName(t)
	a, b, cc := base+"-a", base+"-b", base+"-c"
	middle := newMutex(t, c, b)
	if err := middle.Lock(context.Background()); err != nil {
		t.Fatal(err)
	}
	m := newMultiLock(t, c, []string{cc, b, a})
	if got := m.Names(); !slices.Equal(got, []string{a, b, cc}) {
		t.Fatalf("Names = %q", got)
	}
	if h, err := m.TryAcquire(); h != nil || err != nil {
		t.Fatalf("TryAcquire with %s held = %v, %v; want nil, nil", b, h, err)
	}
	if isLocked(t, c, a) {
		t.Fatal("the first lock was not given back")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := m.Acquire(ctx)
	if !errors.Is(err, latchkey.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Acquire with %s held = %v; want ErrTimeout and DeadlineExceeded", b, err)
	}
	if !strings.Contains(err.Error(), "multi-lock ['"+a+"'") {
		t.Errorf("the error %q does not name the multi-lock", err)
	}
	if isLocked(t, c, a) || isLocked(t, c, cc) {
		t.Fatal("a timed-out Acquire left a lock held")
	}
	if err := middle.Unlock(); err != nil {
		t.Fatal(err)
	}
	h, err := m.TryAcquire()
	if err != nil || h == nil {
		t.Fatalf("TryAcquire of free locks = %v, %v", h, err)
	}
	if !slices.Equal(h.Names(), []string{a, b, cc}) {
		t.Fatalf("MultiHold.Names = %q", h.Names())
	}
	tokens := h.FencingTokens()
	if len(tokens) != 3 || slices.Contains(tokens, 0) {
		t.Fatalf("FencingTokens = %v", tokens)
	}
	if other, err := newMutex(t, c, cc).TryAcquire(); other != nil || err != nil {
		t.Fatalf("a Mutex of %s while the multi-lock holds it = %v, %v", cc, other, err)
	}
	if err := h.Unlock(); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{a, b, cc} {
		if isLocked(t, c, n) {
			t.Fatalf("%s still locked after Unlock", n)
		}
	}
	if err := h.Unlock(); !errors.Is(err, latchkey.ErrNotHeld) {
		t.Fatalf("second Unlock = %v, want ErrNotHeld", err)
	}
	waitClosed(t, "Lost after Unlock", h.Lost())
}

// Losing one lease loses the whole: Lost closes, Err and Check say ErrLost
// naming the lock, and Unlock says ErrNotHeld and releases the others.
func TestMultiLockOneLostLeaseLosesTheWhole(t *testing.T) {
	c := openClient(t)
	base := uniqueName(t)
	p, q := base+"-p", base+"-q"
	h, err := newMultiLock(t, c, []string{q, p}, latchkey.WithTTL(600*time.Millisecond)).Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if deleted, err := c.ForceUnlock(q); err != nil || !deleted {
		t.Fatalf("ForceUnlock = %v, %v", deleted, err)
	}
	waitClosed(t, "Lost after ForceUnlock", h.Lost())
	if err := h.Err(); !errors.Is(err, latchkey.ErrLost) || !strings.Contains(err.Error(), q) {
		t.Fatalf("Err = %v, want ErrLost naming %s", err, q)
	}
	if err := h.Check(); !errors.Is(err, latchkey.ErrLost) {
		t.Fatalf("Check = %v, want ErrLost", err)
	}
	if !isLocked(t, c, p) {
		t.Fatal("the other lease was dropped before Unlock")
	}
	if err := h.Unlock(); !errors.Is(err, latchkey.ErrNotHeld) {
		t.Fatalf("Unlock after the loss = %v, want ErrNotHeld", err)
	}
	if isLocked(t, c, p) {
		t.Fatal("Unlock after the loss did not release the other lock")
	}
	if err := h.Err(); !errors.Is(err, latchkey.ErrLost) {
		t.Fatalf("Err after Unlock = %v, want ErrLost still", err)
	}
}

func TestMultiLockBadInput(t *testing.T) {
	c := openClient(t)
	name := uniqueName(t)
	tooMany := make([]string, latchkey.MaxMultiLockNames+1)
	for i := range tooMany {
		tooMany[i] = name + strconv.Itoa(i)
	}
	for _, tc := range []struct {
		what  string
		names []string
		opts  []latchkey.MutexOption
	}{
		{"no names", nil, nil},
		{"an empty list", []string{}, nil},
		{"an empty name", []string{name, ""}, nil},
		{"a NUL byte", []string{"a\x00b"}, nil},
		{"too many names", tooMany, nil},
		{"WithReentrant", []string{name}, []latchkey.MutexOption{latchkey.WithReentrant(true)}},
		{"a ttl below 10 ms", []string{name}, []latchkey.MutexOption{latchkey.WithTTL(time.Millisecond)}},
	} {
		if m, err := c.NewMultiLock(tc.names, tc.opts...); m != nil || !errors.Is(err, latchkey.ErrInvalidArgument) {
			t.Errorf("NewMultiLock with %s = %v, %v; want ErrInvalidArgument", tc.what, m, err)
		}
	}
	m := newMultiLock(t, c, []string{"é", "z", "Z", "z"})
	if got := m.Names(); !slices.Equal(got, []string{"Z", "z", "é"}) {
		t.Fatalf("Names = %q; want sorted by bytes, each once", got)
	}
}

// A cancelled ctx ends the wait promptly, and the locks taken before the
// held one are given back.
func TestMultiLockAcquireEndsWithItsContext(t *testing.T) {
	c := openClient(t)
	base := uniqueName(t)
	a, b := base+"-a", base+"-b"
	blocker := newMutex(t, c, b)
	if err := blocker.Lock(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer blocker.Unlock()
	m := newMultiLock(t, c, []string{b, a})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := m.Acquire(ctx)
		done <- err
	}()
	waitForSubscriber(t, b)
	if !isLocked(t, c, a) {
		t.Fatalf("the waiter does not hold %s while it waits for %s", a, b)
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, latchkey.ErrCancelled) || !errors.Is(err, context.Canceled) {
			t.Fatalf("Acquire after cancel = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("cancel did not end the wait")
	}
	if isLocked(t, c, a) {
		t.Fatal("a cancelled Acquire left a lock held")
	}
}

// MultiLock.Close ends its waits (ErrClosed), releases its holds (Lost
// closes, Err says ErrClosed) and refuses later calls.
func TestMultiLockClose(t *testing.T) {
	c := openClient(t)
	base := uniqueName(t)
	a, b := base+"-a", base+"-b"
	m, err := c.NewMultiLock([]string{a, b})
	if err != nil {
		t.Fatal(err)
	}
	h, err := m.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := m.Acquire(context.Background())
		done <- err
	}()
	waitForSubscriber(t, a)
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, latchkey.ErrClosed) {
			t.Fatalf("a wait ended by Close = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not end the wait")
	}
	waitClosed(t, "Lost after Close", h.Lost())
	if !errors.Is(h.Err(), latchkey.ErrClosed) || !errors.Is(h.Unlock(), latchkey.ErrClosed) || !errors.Is(h.Check(), latchkey.ErrClosed) {
		t.Fatalf("Err, Unlock, Check after Close = %v, %v, %v", h.Err(), h.Unlock(), h.Check())
	}
	if h, err := m.TryAcquire(); h != nil || !errors.Is(err, latchkey.ErrClosed) {
		t.Fatalf("TryAcquire after Close = %v, %v", h, err)
	}
	if isLocked(t, c, a) || isLocked(t, c, b) {
		t.Fatal("Close left a lock held")
	}
	if err := m.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
}

// Client.Close is the library's close: the multi-lock's locks are free
// when it returns, and the hold says it ended by a close, not a loss.
func TestMultiLockClientClose(t *testing.T) {
	c, err := latchkey.Open(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	observer := openClient(t)
	base := uniqueName(t)
	a, b := base+"-a", base+"-b"
	m, err := c.NewMultiLock([]string{a, b})
	if err != nil {
		t.Fatal(err)
	}
	h, err := m.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if !isClosed(h.Lost()) {
		t.Fatal("Lost is open after Client.Close returned")
	}
	if err := h.Check(); !errors.Is(err, latchkey.ErrClosed) || errors.Is(err, latchkey.ErrLost) {
		t.Fatalf("Check after Client.Close = %v, want ErrClosed", err)
	}
	if isLocked(t, observer, a) || isLocked(t, observer, b) {
		t.Fatal("Client.Close left a lock held")
	}
	if _, err := m.Acquire(context.Background()); !errors.Is(err, latchkey.ErrClosed) {
		t.Fatalf("Acquire after Client.Close = %v", err)
	}
}

// The garbage collector never releases a held multi-lock; once it is lost,
// the dropped hold is freed, which releases its other lock, and every
// handle comes back.
func TestMultiLockGarbageCollection(t *testing.T) {
	c := openClient(t)
	before := settledHandles()
	base := uniqueName(t)
	a, b := base+"-a", base+"-b"
	lost := func() <-chan struct{} {
		m, err := c.NewMultiLock([]string{a, b}, latchkey.WithTTL(600*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		h, err := m.Acquire(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return h.Lost() // neither the MultiLock nor the MultiHold is kept
	}()
	for range 5 {
		runtime.GC()
	}
	if !isLocked(t, c, a) || !isLocked(t, c, b) {
		t.Fatal("the garbage collector released a held multi-lock")
	}
	if _, err := c.ForceUnlock(b); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, "Lost after ForceUnlock", lost)
	waitUntil(t, "the dropped lost hold to release the other lock and its handle to come back", func() bool {
		runtime.GC()
		locked, _ := c.IsLocked(a)
		return !locked && latchkey.LiveHandles() == before
	})
}

func ExampleClient_NewMultiLock() {
	client, err := latchkey.Open(url())
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	// Both accounts or neither, in whatever order they are named: every
	// multi-lock takes its locks in the same order, so none deadlocks.
	transfer, err := client.NewMultiLock([]string{"example:account:7", "example:account:3"}, latchkey.WithTTL(10*time.Second))
	if err != nil {
		log.Fatal(err)
	}
	defer transfer.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	both, err := transfer.Acquire(ctx)
	if err != nil {
		log.Fatal(err) // errors.Is(err, latchkey.ErrTimeout): a lock stayed held; none is
	}
	fmt.Println(both.Names(), len(both.FencingTokens()))
	// ... move the money; both.Lost() closes if any lease is lost ...
	if err := both.Unlock(); err != nil {
		log.Fatal(err) // errors.Is(err, latchkey.ErrNotHeld): a lease was lost meanwhile
	}
	// Output:
	// [example:account:3 example:account:7] 2
}
