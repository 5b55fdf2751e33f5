package latchkey_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"latchkey"
)

func newRWMutex(t testing.TB, c *latchkey.Client, name string, opts ...latchkey.MutexOption) *latchkey.RWMutex {
	t.Helper()
	rw, err := c.NewRWMutex(name, opts...)
	if err != nil {
		t.Fatalf("NewRWMutex(%q): %v", name, err)
	}
	t.Cleanup(func() { rw.Close() })
	return rw
}

// writersWaiting is the length of the queue of waiting writers of the
// read-write lock name (src/keys.rs), which new readers respect.
func writersWaiting(name string) int64 {
	v, err := redisDo(redisURL, "ZCARD", "latchkey:rw:{"+name+"}:q")
	if err != nil {
		return 0
	}
	n, _ := v.(int64)
	return n
}

// mustHold is the Hold that take returns, or fails the test.
func mustHold(t *testing.T, what string, take func() (*latchkey.Hold, error)) *latchkey.Hold {
	t.Helper()
	h, err := take()
	if err != nil || h == nil {
		t.Fatalf("%s = %v, %v", what, h, err)
	}
	return h
}

// Readers (each with its own client) hold at once, and writers, over and
// over, are never inside with anyone: counted by the holders.
func TestRWMutexReadersShareAndAWriterIsAlone(t *testing.T) {
	name := uniqueName(t)
	var mu sync.Mutex
	inside := 0 // readers inside, or -1 while a writer is
	var together sync.WaitGroup
	together.Add(3)
	var wg sync.WaitGroup
	errs := make(chan error, 5)
	for i := range 5 {
		rw := newRWMutex(t, openClient(t), name)
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if i < 3 {
				// Three readers hold at once: each waits, holding, for the others.
				h, err := rw.RLock(ctx)
				if err != nil {
					errs <- err
					together.Done()
					return
				}
				together.Done()
				together.Wait()
				h.Unlock()
			} else {
				// Only then the writers: a writer waiting meanwhile would stop
				// the readers still to come, and the first would wait for ever.
				together.Wait()
			}
			for range 10 {
				if i < 3 {
					h, err := rw.RLock(ctx)
					if err != nil {
						errs <- err
						return
					}
					mu.Lock()
					if inside < 0 {
						errs <- errors.New("a reader inside with a writer")
					}
					inside++
					mu.Unlock()
					runtime.Gosched()
					mu.Lock()
					inside--
					mu.Unlock()
					h.Unlock()
				} else {
					h, err := rw.Lock(ctx)
					if err != nil {
						errs <- err
						return
					}
					mu.Lock()
					if inside != 0 {
						errs <- fmt.Errorf("a writer inside with %d", inside)
					}
					inside = -1
					mu.Unlock()
					runtime.Gosched()
					mu.Lock()
					inside = 0
					mu.Unlock()
					h.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestRWMutexHoldsAndWhatTheyExclude(t *testing.T) {
	name := uniqueName(t)
	rw := newRWMutex(t, openClient(t), name)
	if rw.Name() != name {
		t.Fatalf("Name = %q", rw.Name())
	}
	first := mustHold(t, "RLock", func() (*latchkey.Hold, error) { return rw.RLock(context.Background()) })
	second := mustHold(t, "TryRLock", rw.TryRLock)
	if !strings.HasPrefix(first.Token(), "1:") || first.Token() == second.Token() || first.Name() != name {
		t.Fatalf("tokens %q, %q; name %q", first.Token(), second.Token(), first.Name())
	}
	if second.FencingToken() <= first.FencingToken() {
		t.Fatal("fencing tokens do not increase")
	}
	if err := first.Check(); err != nil || first.Remaining() <= 0 {
		t.Fatalf("Check, Remaining = %v, %v", err, first.Remaining())
	}
	if err := first.Extend(time.Minute); err != nil {
		t.Fatal(err)
	}
	// The keys Rust, C and Python use (src/keys.rs): the readers' leases
	// in a sorted set, the writer's hold a plain lock's key.
	if v, err := redisDo(redisURL, "ZCOUNT", "latchkey:rwr:{"+name+"}", "-inf", "+inf"); err != nil || v != int64(2) {
		t.Fatalf("ZCOUNT latchkey:rwr:{%s} = %v, %v; want 2", name, v, err)
	}
	if h, err := rw.TryLock(); h != nil || err != nil {
		t.Fatalf("TryLock with readers inside = %v, %v; want nil, nil", h, err)
	}
	short, stop := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer stop()
	if _, err := rw.Lock(short); !errors.Is(err, latchkey.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Lock past its deadline = %v", err)
	} else if !strings.Contains(err.Error(), "read-write lock '"+name+"'") {
		t.Fatalf("the message does not name the read-write lock: %v", err)
	}
	first.Unlock()
	second.Unlock()
	w := mustHold(t, "TryLock", rw.TryLock)
	if w.FencingToken() <= second.FencingToken() {
		t.Fatal("the writer's fencing token is not above the readers'")
	}
	if v, err := redisDo(redisURL, "GET", "latchkey:rw:{"+name+"}"); err != nil || v != w.Token() {
		t.Fatalf("GET latchkey:rw:{%s} = %v, %v; want the writer's token", name, v, err)
	}
	if h, err := rw.TryRLock(); h != nil || err != nil {
		t.Fatalf("TryRLock with a writer inside = %v, %v", h, err)
	}
	if h, err := rw.TryLock(); h != nil || err != nil {
		t.Fatalf("TryLock with a writer inside = %v, %v", h, err)
	}
	if err := w.Unlock(); err != nil {
		t.Fatal(err)
	}
	if err := w.Unlock(); !errors.Is(err, latchkey.ErrNotHeld) {
		t.Fatalf("second Unlock = %v, want ErrNotHeld", err)
	}
}

// A waiting writer stops new readers; once the reader inside leaves, the
// writer goes, and after it the readers.
func TestRWMutexWaitingWriterStopsNewReaders(t *testing.T) {
	name := uniqueName(t)
	rw := newRWMutex(t, openClient(t), name)
	first := mustHold(t, "RLock", func() (*latchkey.Hold, error) { return rw.RLock(context.Background()) })
	other := newRWMutex(t, openClient(t), name)
	got := make(chan uint64, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		h, err := other.Lock(ctx)
		if err != nil {
			t.Error(err)
			got <- 0
			return
		}
		got <- h.FencingToken()
		h.Unlock()
	}()
	waitUntil(t, "the writer waits", func() bool { return writersWaiting(name) > 0 })
	if h, err := rw.TryRLock(); h != nil || err != nil {
		t.Fatalf("a new reader entered while a writer waited: %v, %v", h, err)
	}
	first.Unlock() // 30 s left on its lease: only the release lets the writer in
	var writer uint64
	select {
	case writer = <-got:
		if writer <= first.FencingToken() {
			t.Fatalf("writer token %d, reader's %d", writer, first.FencingToken())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the writer was not let in")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	after := mustHold(t, "RLock after the writer", func() (*latchkey.Hold, error) { return rw.RLock(ctx) })
	if after.FencingToken() <= writer {
		t.Fatal("the reader after the writer has an older token")
	}
	after.Unlock()
}

// A writer that gives up (a deadline, a cancel) lets readers in again.
func TestRWMutexWriterThatGivesUpLetsReadersIn(t *testing.T) {
	name := uniqueName(t)
	rw := newRWMutex(t, openClient(t), name)
	reader := mustHold(t, "RLock", func() (*latchkey.Hold, error) { return rw.RLock(context.Background()) })
	defer reader.Unlock()
	short, stop := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer stop()
	if _, err := rw.Lock(short); !errors.Is(err, latchkey.ErrTimeout) {
		t.Fatalf("Lock = %v, want ErrTimeout", err)
	}
	again := mustHold(t, "TryRLock after the writer timed out", rw.TryRLock)
	again.Unlock()

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := rw.Lock(ctx)
		done <- err
	}()
	waitUntil(t, "the writer waits", func() bool { return writersWaiting(name) > 0 })
	if h, err := rw.TryRLock(); h != nil || err != nil {
		t.Fatalf("TryRLock with a writer waiting = %v, %v", h, err)
	}
	cancel()
	if err := <-done; !errors.Is(err, latchkey.ErrCancelled) || !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Lock = %v", err)
	}
	waitUntil(t, "the writer left the queue", func() bool { return writersWaiting(name) == 0 })
	third := mustHold(t, "TryRLock after the writer was cancelled", rw.TryRLock)
	third.Unlock()
}

// A reader's and a writer's lease taken away are reported lost.
func TestRWMutexLostHolds(t *testing.T) {
	name := uniqueName(t)
	rw := newRWMutex(t, openClient(t), name, latchkey.WithTTL(600*time.Millisecond))
	reader := mustHold(t, "RLock", func() (*latchkey.Hold, error) { return rw.RLock(context.Background()) })
	if n, err := redisDo(redisURL, "DEL", "latchkey:rwr:{"+name+"}"); err != nil || n != int64(1) {
		t.Fatalf("DEL the readers' key = %v, %v", n, err)
	}
	waitClosed(t, "the reader's Lost", reader.Lost())
	if err := reader.Check(); !errors.Is(err, latchkey.ErrLost) {
		t.Fatalf("Check = %v, want ErrLost", err)
	}
	if err := reader.Unlock(); !errors.Is(err, latchkey.ErrNotHeld) {
		t.Fatalf("Unlock after the loss = %v, want ErrNotHeld", err)
	}
	writer := mustHold(t, "Lock", func() (*latchkey.Hold, error) { return rw.Lock(context.Background()) })
	if n, err := redisDo(redisURL, "DEL", "latchkey:rw:{"+name+"}"); err != nil || n != int64(1) {
		t.Fatalf("DEL the writer's key = %v, %v", n, err)
	}
	waitClosed(t, "the writer's Lost", writer.Lost())
	if err := writer.Err(); !errors.Is(err, latchkey.ErrLost) {
		t.Fatalf("Err = %v, want ErrLost", err)
	}
}

func TestRWMutexBadInputAndRedlock(t *testing.T) {
	c := openClient(t)
	name := uniqueName(t)
	for _, tc := range []struct {
		what string
		name string
		opts []latchkey.MutexOption
	}{
		{"an empty name", "", nil},
		{"WithReentrant", name, []latchkey.MutexOption{latchkey.WithReentrant(true)}},
		{"WithFair", name, []latchkey.MutexOption{latchkey.WithFair(true)}},
		{"a ttl below 10 ms", name, []latchkey.MutexOption{latchkey.WithTTL(time.Millisecond)}},
	} {
		if rw, err := c.NewRWMutex(tc.name, tc.opts...); rw != nil || !errors.Is(err, latchkey.ErrInvalidArgument) {
			t.Errorf("NewRWMutex with %s = %v, %v; want ErrInvalidArgument", tc.what, rw, err)
		}
	}
	redlock, err := latchkey.OpenRedlock(startMasters(t, 3))
	if err != nil {
		t.Fatal(err)
	}
	defer redlock.Close()
	if rw, err := redlock.NewRWMutex(name); rw != nil || !errors.Is(err, latchkey.ErrInvalidArgument) {
		t.Fatalf("NewRWMutex on Redlock = %v, %v; want ErrInvalidArgument", rw, err)
	}
}

// Close ends the waits (ErrClosed), releases the holds taken through it
// (their Lost channels close, Err says ErrClosed) and refuses later calls.
func TestRWMutexClose(t *testing.T) {
	name := uniqueName(t)
	rw, err := openClient(t).NewRWMutex(name)
	if err != nil {
		t.Fatal(err)
	}
	h := mustHold(t, "RLock", func() (*latchkey.Hold, error) { return rw.RLock(context.Background()) })
	done := make(chan error, 1)
	go func() {
		_, err := rw.Lock(context.Background())
		done <- err
	}()
	waitUntil(t, "the writer waits", func() bool { return writersWaiting(name) > 0 })
	if err := rw.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, latchkey.ErrClosed) || !strings.Contains(err.Error(), "read-write lock") {
			t.Fatalf("a wait ended by Close = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not end the wait")
	}
	waitClosed(t, "Lost after Close", h.Lost())
	if !errors.Is(h.Err(), latchkey.ErrClosed) || !errors.Is(h.Unlock(), latchkey.ErrClosed) {
		t.Fatalf("Err, Unlock after Close = %v, %v", h.Err(), h.Unlock())
	}
	if h, err := rw.TryRLock(); h != nil || !errors.Is(err, latchkey.ErrClosed) {
		t.Fatalf("TryRLock after Close = %v, %v", h, err)
	}
	if _, err := rw.RLock(context.Background()); !errors.Is(err, latchkey.ErrClosed) {
		t.Fatalf("RLock after Close = %v", err)
	}
	other := newRWMutex(t, openClient(t), name)
	w := mustHold(t, "TryLock after Close", other.TryLock)
	w.Unlock()
	if err := rw.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
}

// A hold the program dropped, with its RWMutex, stays until the Client is
// closed: the garbage collector never releases it.
func TestRWMutexHoldSurvivesGC(t *testing.T) {
	name := uniqueName(t)
	c, err := latchkey.Open(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	func() {
		rw, err := c.NewRWMutex(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := rw.RLock(context.Background()); err != nil {
			t.Fatal(err)
		}
	}()
	runtime.GC()
	runtime.GC()
	other := newRWMutex(t, openClient(t), name)
	if h, err := other.TryLock(); h != nil || err != nil {
		t.Fatalf("TryLock after GC = %v, %v: the collector released a read lease", h, err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	w := mustHold(t, "TryLock after the client's Close", other.TryLock)
	w.Unlock()
}

func ExampleClient_NewRWMutex() {
	client, err := latchkey.Open(url())
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	// Many readers of the configuration at once, or one writer.
	config, err := client.NewRWMutex("example:config", latchkey.WithTTL(10*time.Second))
	if err != nil {
		log.Fatal(err)
	}
	defer config.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	reader, err := config.RLock(ctx)
	if err != nil {
		log.Fatal(err) // errors.Is(err, latchkey.ErrTimeout): a writer held or waited throughout
	}
	another, _ := config.TryRLock()
	fmt.Println("readers share:", another != nil)
	writer, _ := config.TryLock()
	fmt.Println("a writer with readers inside:", writer != nil)
	another.Unlock()
	reader.Unlock()

	writer, err = config.Lock(ctx) // waits for the readers; new readers wait for it
	if err != nil {
		log.Fatal(err)
	}
	// ... write; writer.FencingToken() is above every hold before it ...
	if err := writer.Unlock(); err != nil {
		log.Fatal(err) // errors.Is(err, latchkey.ErrNotHeld): the lease was lost meanwhile
	}
	fmt.Println("written")
	// Output:
	// readers share: true
	// a writer with readers inside: false
	// written
}
