package latchkey_test

import (
	"bufio"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// A lock held by another language (the Rust command-line tool) excludes Go,
// and Go sees its holder.
func TestInteropHeldByRust(t *testing.T) {
	c := openClient(t)
	name := uniqueName(t)
	cmd := exec.Command(cliPath(t), "--url", redisURL, "hold", name)
	killWithParent(cmd)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer stdin.Close()

	lines := bufio.NewScanner(stdout)
	if !lines.Scan() {
		t.Fatalf("latchkey hold printed nothing: %s", stderr.String())
	}
	var fence uint64
	var token string
	if _, err := fmt.Sscanf(lines.Text(), "acquired %d %s", &fence, &token); err != nil {
		t.Fatalf("latchkey hold printed %q: %v", lines.Text(), err)
	}

	m := newMutex(t, c, name)
	if ok, err := m.TryLock(); ok || err != nil {
		t.Fatalf("TryLock while Rust holds = %v, %v", ok, err)
	}
	info, err := c.Inspect(name)
	if err != nil || info == nil {
		t.Fatalf("Inspect = %v, %v", info, err)
	}
	if info.Owner != token || info.FencingToken != fence {
		t.Fatalf("Inspect = %+v; Rust holds with token %s fencing %d", *info, token, fence)
	}

	// Go waits; closing the tool's stdin makes it release, which wakes Go.
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- m.Lock(ctx)
	}()
	time.Sleep(100 * time.Millisecond)
	stdin.Close()
	if err := <-done; err != nil {
		t.Fatalf("Lock after Rust released: %v", err)
	}
	if m.FencingToken() <= fence {
		t.Fatalf("Go's fencing token %d is not above Rust's %d", m.FencingToken(), fence)
	}
	if err := m.Unlock(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("latchkey hold: %v: %s", err, stderr.String())
	}
}

// A lock held by Go is seen by the Rust tool, with Go's owner token.
func TestInteropHeldByGo(t *testing.T) {
	c := openClient(t)
	name := uniqueName(t)
	m := newMutex(t, c, name)
	if err := m.Lock(context.Background()); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(cliPath(t), "--url", redisURL, "inspect", name).CombinedOutput()
	if err != nil {
		t.Fatalf("latchkey inspect: %v: %s", err, out)
	}
	want := fmt.Sprintf("held owner=%s fencing=%d ", m.Token(), m.FencingToken())
	if !strings.HasPrefix(string(out), want) {
		t.Fatalf("latchkey inspect printed %q, want it to start with %q", out, want)
	}
	if err := m.Unlock(); err != nil {
		t.Fatal(err)
	}
	out, err = exec.Command(cliPath(t), "--url", redisURL, "inspect", name).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "free" {
		t.Fatalf("latchkey inspect after Unlock: %q, %v", out, err)
	}
}
