// Command contend takes a distributed lock COUNT times and, while holding
// it, does a deliberately non-atomic update of a shared counter file: read
// the number, write it back plus one. Run several copies (and the workers of
// the other languages: see examples/demo.sh) at once: if the lock works, the
// counter ends at the total number of acquisitions.
//
//	usage: contend URL NAME COUNT COUNTER_FILE
//	  e.g. contend redis://127.0.0.1:6379 demo 10 /tmp/counter
//
// Build it with `make go-example` (into target/examples-go/contend; the
// static library is linked in, so it runs without LD_LIBRARY_PATH).
package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"latchkey"
)

func main() {
	if len(os.Args) != 5 {
		fmt.Fprintf(os.Stderr, "usage: %s URL NAME COUNT COUNTER_FILE\n", os.Args[0])
		os.Exit(2)
	}
	url, name, counter := os.Args[1], os.Args[2], os.Args[4]
	count, err := strconv.Atoi(os.Args[3])
	if err != nil || count < 0 {
		fmt.Fprintf(os.Stderr, "contend: COUNT must be a number >= 0, got '%s'\n", os.Args[3])
		os.Exit(2)
	}
	if err := run(url, name, count, counter); err != nil {
		fmt.Fprintln(os.Stderr, "contend:", err)
		os.Exit(1)
	}
}

func run(url, name string, count int, counter string) error {
	client, err := latchkey.Open(url)
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	defer client.Close()
	m, err := client.NewMutex(name)
	if err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	defer m.Close()

	pid := os.Getpid()
	for i := 0; i < count; i++ {
		// Wait as long as it takes: context.Background() never ends.
		if err := m.Lock(context.Background()); err != nil {
			return fmt.Errorf("acquire: %w", err)
		}
		value, err := readCounter(counter)
		if err == nil {
			err = os.WriteFile(counter, []byte(strconv.FormatUint(value+1, 10)), 0o644)
		}
		if err != nil {
			m.Unlock()
			return fmt.Errorf("cannot update %s: %w", counter, err)
		}
		fmt.Printf("[%-6s pid %6d] holds '%s' fencing token %d, counter %d -> %d\n",
			"go", pid, name, m.FencingToken(), value, value+1)
		// ErrNotHeld here would mean the lease was lost while we held it.
		if err := m.Unlock(); err != nil {
			return fmt.Errorf("release: %w", err)
		}
	}
	return nil
}

// readCounter reads the counter; a missing or empty file counts as 0.
func readCounter(path string) (uint64, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	text := strings.TrimSpace(string(data))
	if text == "" {
		return 0, nil
	}
	return strconv.ParseUint(text, 10, 64)
}
