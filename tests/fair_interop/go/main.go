// Command go-waiter is the Go fair waiter of tests/fair_interop.rs (built
// by that test into its temporary directory, linking the static library
// cargo built for that test; `go build .` alone links target/release's, as
// the binding does).
//
// One process holds several waiters of one fair lock, all through one
// client. Each line on stdin is a waiter's sequence number SEQ: a goroutine
// starts at once and locks NAME (fair, waiting up to 120 s); holding it, it
// appends "SEQ LABEL FENCING_TOKEN\n" to RECORD with one write(2) to a file
// opened with O_APPEND (so lines from every process stay whole and in the
// order the holds happened), then unlocks. At the end of input the process
// waits for its waiters and exits 0 if every one got the lock, wrote its
// line and unlocked; failures go to stderr. The test starts a waiter only
// once the previous one is queued in Redis.
//
//	usage: go-waiter URL NAME RECORD LABEL
package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"latchkey"
)

const acquireTimeout = 120 * time.Second

func main() {
	if len(os.Args) != 5 {
		fmt.Fprintf(os.Stderr, "usage: %s URL NAME RECORD LABEL\n", os.Args[0])
		os.Exit(2)
	}
	url, name, record, label := os.Args[1], os.Args[2], os.Args[3], os.Args[4]
	if err := run(url, name, record, label); err != nil {
		fmt.Fprintf(os.Stderr, "go-waiter %s: %v\n", label, err)
		os.Exit(1)
	}
}

func run(url, name, record, label string) error {
	// os.File.Write of a short line is one write(2); O_APPEND puts it at the end.
	out, err := os.OpenFile(record, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer out.Close()
	client, err := latchkey.Open(url)
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	defer client.Close()

	var wg sync.WaitGroup
	var failed atomic.Int32
	input := bufio.NewScanner(os.Stdin)
	for input.Scan() {
		seq, err := strconv.Atoi(strings.TrimSpace(input.Text()))
		if err != nil {
			return fmt.Errorf("bad command %q", input.Text())
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := waitForLock(client, name, out, label, seq); err != nil {
				fmt.Fprintf(os.Stderr, "go-waiter %s: waiter %d: %v\n", label, seq, err)
				failed.Add(1)
			}
		}()
	}
	wg.Wait()
	if err := input.Err(); err != nil {
		return err
	}
	if n := failed.Load(); n > 0 {
		return fmt.Errorf("%d waiters failed", n)
	}
	return nil
}

func waitForLock(client *latchkey.Client, name string, out *os.File, label string, seq int) error {
	m, err := client.NewMutex(name, latchkey.WithFair(true))
	if err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	defer m.Close()
	ctx, cancel := context.WithTimeout(context.Background(), acquireTimeout)
	defer cancel()
	if err := m.Lock(ctx); err != nil {
		return fmt.Errorf("acquire: %w", err)
	}
	_, writeErr := fmt.Fprintf(out, "%d %s %d\n", seq, label, m.FencingToken())
	if err := m.Unlock(); err != nil {
		return fmt.Errorf("release: %w", err)
	}
	return writeErr
}
