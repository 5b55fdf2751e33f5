package latchkey_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"latchkey"
)

// One close in four languages (tests/close.rs, ffi-tests, the Python tests
// run the same scenario): Client.Close is the library's close. A hold of
// the client is free in Redis as soon as Close returns, its Hold says it
// ended by a close (ErrClosed, never ErrLost), and a waiter of the client
// returns promptly with the library's LATCHKEY_CLOSED.
func TestCloseIsTheLibrarysClose(t *testing.T) {
	c, err := latchkey.Open(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	other := openClient(t)
	held, waited := uniqueName(t), uniqueName(t)
	h, err := newMutex(t, c, held).Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	blocker := newMutex(t, other, waited)
	if err := blocker.Lock(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer blocker.Unlock()
	done := make(chan error, 1)
	waiter := newMutex(t, c, waited)
	go func() {
		_, err := waiter.Acquire(context.Background())
		done <- err
	}()
	waitUntil(t, "the waiter to subscribe", func() bool {
		n, err := subscribers(redisURL, waited)
		return err == nil && n > 0
	})

	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	fresh, err := newMutex(t, other, held).TryAcquire()
	if err != nil || fresh == nil {
		t.Fatalf("TryAcquire of %s right after Close = %v, %v: still held", held, fresh, err)
	}
	defer fresh.Unlock()
	select {
	case err := <-done:
		var e *latchkey.Error
		if !errors.As(err, &e) || e.Status != latchkey.StatusClosed || !errors.Is(err, latchkey.ErrClosed) {
			t.Fatalf("the waiter after Close = %v, want the library's closed status", err)
		}
		if !strings.Contains(e.Message, "closed") {
			t.Errorf("message %q does not say the client was closed", e.Message)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not end the waiter within 10 s")
	}
	if err := h.Check(); !errors.Is(err, latchkey.ErrClosed) || errors.Is(err, latchkey.ErrLost) {
		t.Fatalf("Check of a hold that Close ended = %v, want ErrClosed (not held, not lost)", err)
	}
	if r := h.Remaining(); r != 0 {
		t.Fatalf("Remaining of a closed hold = %v", r)
	}
}
