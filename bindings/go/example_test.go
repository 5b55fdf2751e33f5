package latchkey_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"sync"
	"time"

	"latchkey"
)

// url is where the examples find Redis: the test suite's private server, or
// a local one.
func url() string {
	if u := os.Getenv("LATCHKEY_URL"); u != "" {
		return u
	}
	return "redis://127.0.0.1:6379"
}

func Example() {
	client, err := latchkey.Open(url())
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	m, err := client.NewMutex("example:nightly-report", latchkey.WithTTL(10*time.Second))
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := m.Lock(ctx); err != nil {
		log.Fatal(err) // errors.Is(err, latchkey.ErrTimeout): someone else is running it
	}
	// ... work, handing m.FencingToken() to whatever you write to ...
	held, _ := client.IsLocked("example:nightly-report")
	fmt.Println("held:", held)
	if err := m.Unlock(); err != nil {
		log.Fatal(err) // errors.Is(err, latchkey.ErrNotHeld): the lease was lost meanwhile
	}
	held, _ = client.IsLocked("example:nightly-report")
	fmt.Println("held:", held)
	// Output:
	// held: true
	// held: false
}

func ExampleMutex_TryLock() {
	client, err := latchkey.Open(url())
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	a, _ := client.NewMutex("example:trylock")
	b, _ := client.NewMutex("example:trylock")
	defer a.Close()
	defer b.Close()

	ok, err := a.TryLock()
	fmt.Println("a:", ok, err)
	ok, err = b.TryLock()
	fmt.Println("b:", ok, err)
	a.Unlock()
	// Output:
	// a: true <nil>
	// b: false <nil>
}

func ExampleMutex_Lock_deadline() {
	client, err := latchkey.Open(url())
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	holder, _ := client.NewMutex("example:deadline")
	waiter, _ := client.NewMutex("example:deadline")
	defer holder.Close()
	defer waiter.Close()
	if err := holder.Lock(context.Background()); err != nil {
		log.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err = waiter.Lock(ctx)
	fmt.Println(errors.Is(err, latchkey.ErrTimeout), errors.Is(err, context.DeadlineExceeded))
	holder.Unlock()
	// Output:
	// true true
}

func ExampleMutex_Lost() {
	client, err := latchkey.Open(url())
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	m, _ := client.NewMutex("example:lost", latchkey.WithTTL(300*time.Millisecond))
	defer m.Close()
	if err := m.Lock(context.Background()); err != nil {
		log.Fatal(err)
	}
	defer m.Unlock()

	// An operator force-unlocks it; the watchdog notices at its next renewal.
	client.ForceUnlock("example:lost")

	select {
	case <-m.Lost():
		fmt.Println("lost:", errors.Is(m.Check(), latchkey.ErrLost))
	case <-time.After(5 * time.Second):
		fmt.Println("still held")
	}
	// Output:
	// lost: true
}

func ExampleClient_FencedWrite() {
	client, err := latchkey.Open(url())
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	client.ForceUnlock("example:fenced")
	m, _ := client.NewMutex("example:fenced")
	defer m.Close()
	if err := m.Lock(context.Background()); err != nil {
		log.Fatal(err)
	}
	defer m.Unlock()

	// The resource accepts a token at least as high as any it has seen.
	written, _, err := client.FencedWrite("example:fenced:resource", m.FencingToken(), []byte("report"))
	fmt.Println("written:", written, err)
	// A writer paused past its lease comes back with an older token.
	written, _, err = client.FencedWrite("example:fenced:resource", m.FencingToken()-1, []byte("stale"))
	fmt.Println("written:", written, err)
	value, _, _, _ := client.FencedRead("example:fenced:resource")
	fmt.Printf("value: %s\n", value)
	// Output:
	// written: true <nil>
	// written: false <nil>
	// value: report
}

func ExampleClient_Inspect() {
	client, err := latchkey.Open(url())
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	info, err := client.Inspect("orders:42")
	switch {
	case err != nil:
		log.Fatal(err)
	case info == nil:
		fmt.Println("free")
	default:
		fmt.Printf("held by %s, fencing token %d, expires in %v\n", info.Owner, info.FencingToken, info.TTL)
	}
	// Output:
	// free
}

func ExampleOpenRedlock() {
	// Three or five independent masters; a lock needs a majority.
	client, err := latchkey.OpenRedlock([]string{
		"redis://10.0.0.1:6379", "redis://10.0.0.2:6379", "redis://10.0.0.3:6379",
	}, latchkey.WithCommandTimeout(500*time.Millisecond))
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
}

// Each acquisition is its own Hold: two workers acquiring through one Mutex
// exclude each other through Redis, and each has its own tokens and Lost
// channel.
func ExampleMutex_Acquire() {
	client, err := latchkey.Open(url())
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	m, _ := client.NewMutex("example:acquire", latchkey.WithTTL(5*time.Second))
	defer m.Close()

	h, err := m.Acquire(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	other, _ := m.TryAcquire() // nil: h holds it
	fmt.Println("second hold while the first is held:", other != nil)

	done := make(chan struct{})
	go func() {
		defer close(done)
		<-h.Lost() // closes when h ends, for whatever reason
		fmt.Println("ended:", errors.Is(h.Check(), latchkey.ErrNotHeld))
	}()
	if err := h.Unlock(); err != nil {
		log.Fatal(err)
	}
	<-done
	// Output:
	// second hold while the first is held: false
	// ended: true
}

// A sync.Locker for code that expects one. Its Lock waits without a
// deadline; a failure panics with the *Error the Mutex method returned.
func ExampleMutex_Locker() {
	client, err := latchkey.Open(url())
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	m, err := client.NewMutex("example:locker")
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()

	var l sync.Locker = m.Locker()
	l.Lock()
	held, _ := client.IsLocked("example:locker")
	fmt.Println("held:", held)
	l.Unlock()
	held, _ = client.IsLocked("example:locker")
	fmt.Println("held:", held)

	// sync.Locker has no error return: unlocking what is not held panics.
	func() {
		defer func() {
			err, _ := recover().(error)
			fmt.Println("second Unlock panics with ErrNotHeld:", errors.Is(err, latchkey.ErrNotHeld))
		}()
		l.Unlock()
	}()
	// Output:
	// held: true
	// held: false
	// second Unlock panics with ErrNotHeld: true
}
