package latchkey_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"latchkey"
)

// Inspect lists the waiters parked for a held lock in the order a release
// hands the lock on, each with a "w:" id and the time its entry has left;
// the waiter a release hands the lock to leaves the list. The waiters are
// goroutines blocked in Lock; the test asks until they are listed, it
// never sleeps a fixed time for them.
func TestInspectQueue(t *testing.T) {
	c := openClient(t)
	name := uniqueName(t)
	holder := newMutex(t, c, name)
	if err := holder.Lock(context.Background()); err != nil {
		t.Fatal(err)
	}
	info, err := c.Inspect(name)
	if err != nil || info == nil || info.Owner != holder.Token() {
		t.Fatalf("Inspect = %+v, %v", info, err)
	}
	if len(info.Queue) != 0 || info.QueueLen != 0 {
		t.Fatalf("nobody waits yet, Inspect = %+v", *info)
	}
	queue := func() []latchkey.QueuedWaiter {
		info, err := c.Inspect(name)
		if err != nil || info == nil {
			t.Errorf("Inspect of the held lock = %+v, %v", info, err)
			return nil
		}
		return info.Queue
	}

	took := make(chan int, 2)
	release := make(chan struct{})
	var wg sync.WaitGroup
	firstQueued := ""
	for i := 0; i < 2; i++ {
		m := newMutex(t, c, name)
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := m.Lock(ctx); err != nil {
				t.Errorf("waiter %d: Lock = %v", i, err)
				return
			}
			took <- i
			<-release
			if err := m.Unlock(); err != nil {
				t.Errorf("waiter %d: Unlock = %v", i, err)
			}
		}()
		waitUntil(t, fmt.Sprintf("waiter %d is queued", i), func() bool { return len(queue()) == i+1 })
		if i == 0 {
			firstQueued = queue()[0].ID
		}
	}

	info, err = c.Inspect(name)
	if err != nil || info == nil || info.QueueLen != 2 || len(info.Queue) != 2 {
		t.Fatalf("Inspect with two waiters = %+v, %v", info, err)
	}
	for _, w := range info.Queue {
		if !strings.HasPrefix(w.ID, "w:") || len(w.ID) <= 2 {
			t.Errorf("waiter id %q", w.ID)
		}
		if w.ExpiresIn <= 0 || w.ExpiresIn > 15*time.Second {
			t.Errorf("waiter %s: ExpiresIn %v, want within (0, 15s]", w.ID, w.ExpiresIn)
		}
	}
	first, second := info.Queue[0], info.Queue[1]
	if first.ID == second.ID {
		t.Fatalf("two waiters share the id %s", first.ID)
	}
	// Listed in arrival order, the next to get the lock first (not by when
	// the entries run out: a waiter's next attempt renews its entry).
	if first.ID != firstQueued {
		t.Errorf("listed out of arrival order: %+v, first queued %s", info.Queue, firstQueued)
	}

	// The release hands the lock to the first listed waiter, which leaves
	// the queue; the other one is still listed.
	if err := holder.Unlock(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-took:
	case <-time.After(time.Minute):
		t.Fatal("no waiter took the lock after the release")
	}
	after := queue()
	if len(after) != 1 || after[0].ID != second.ID {
		t.Errorf("after the handoff the queue is %+v, want only %s", after, second.ID)
	}
	close(release)
	wg.Wait()
	if info, err := c.Inspect(name); err != nil || info != nil {
		t.Fatalf("Inspect after both waiters released = %+v, %v", info, err)
	}
	if latchkey.MaxReportedWaiters != 1000 {
		t.Errorf("MaxReportedWaiters = %d", latchkey.MaxReportedWaiters)
	}
}
