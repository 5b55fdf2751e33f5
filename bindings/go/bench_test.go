package latchkey_test

import (
	"context"
	"testing"
)

// Uncontended acquire+release cycles (go test -bench . -run '^$'). The
// figures to compare against are the Redis round trip and the C library's
// own cycle (make bench); the binding should add little to the cgo calls.

func BenchmarkLockUnlock(b *testing.B) {
	c := openClient(b)
	m := newMutex(b, c, uniqueName(b))
	ctx := context.Background()
	for b.Loop() {
		if err := m.Lock(ctx); err != nil {
			b.Fatal(err)
		}
		if err := m.Unlock(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLockUnlockCancellable(b *testing.B) {
	c := openClient(b)
	m := newMutex(b, c, uniqueName(b))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for b.Loop() {
		if err := m.Lock(ctx); err != nil {
			b.Fatal(err)
		}
		if err := m.Unlock(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkTryLockUnlock(b *testing.B) {
	c := openClient(b)
	m := newMutex(b, c, uniqueName(b))
	for b.Loop() {
		if ok, err := m.TryLock(); !ok || err != nil {
			b.Fatal(ok, err)
		}
		if err := m.Unlock(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkTryLockHeld(b *testing.B) {
	c := openClient(b)
	name := uniqueName(b)
	holder, m := newMutex(b, c, name), newMutex(b, c, name)
	if err := holder.Lock(context.Background()); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if ok, err := m.TryLock(); ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}
