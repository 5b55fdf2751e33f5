//go:build unix

package latchkey_test

import (
	"context"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"latchkey"
)

// Signals arriving while the library waits for Redis must not break calls.
// The Go runtime itself sends SIGURG to threads (goroutine preemption), also
// while they run C code; other signals (SIGCHLD, SIGWINCH, ...) go to any
// thread. A read on a socket with a timeout fails with EINTR when a signal
// handler runs, and the library would take that for a broken connection
// (and re-send a release that already ran: "no longer held"). The library
// blocks signals during its socket I/O and on its own threads
// (src/signals.rs); this storm of SIGURG to the process checks it, for the
// callers' threads and for the library's watchdog and listener threads.
func TestSignalsDuringCalls(t *testing.T) {
	c := openClient(t)
	contended := uniqueName(t)
	holder := newMutex(t, c, uniqueName(t), latchkey.WithTTL(400*time.Millisecond))
	if err := holder.Lock(context.Background()); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var storm sync.WaitGroup
	storm.Add(1)
	go func() {
		defer storm.Done()
		for {
			select {
			case <-stop:
				return
			default:
				syscall.Kill(os.Getpid(), syscall.SIGURG)
				time.Sleep(20 * time.Microsecond)
			}
		}
	}()

	deadline := time.Now().Add(time.Second)
	var wg sync.WaitGroup
	for g := 0; g < 3; g++ {
		name := contended // two goroutines contend (waiting, release messages)
		if g == 2 {
			name = uniqueName(t) // one takes and gives back a free lock
		}
		m := newMutex(t, c, name, latchkey.WithTTL(200*time.Millisecond))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; time.Now().Before(deadline); n++ {
				if err := m.Lock(context.Background()); err != nil {
					t.Errorf("Lock %d: %v", n, err)
					return
				}
				if err := m.Unlock(); err != nil {
					t.Errorf("Unlock %d: %v", n, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	storm.Wait()
	// The watchdog renewed the held lease (every 133 ms) through the storm.
	select {
	case <-holder.Lost():
		t.Fatalf("lease lost during the signals: %v", holder.Check())
	default:
	}
	if err := holder.Unlock(); err != nil {
		t.Fatal(err)
	}
}
