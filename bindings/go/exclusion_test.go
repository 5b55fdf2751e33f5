package latchkey_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"latchkey"
)

// Mutual exclusion among goroutines, checked without relying on the race
// detector (which knows nothing of Redis): a read-modify-write
// of a counter split into an atomic load and an atomic store loses updates
// as soon as two holders overlap, and an "inside" flag catches the overlap
// itself.
func TestExclusionGoroutines(t *testing.T) {
	const goroutines, rounds = 8, 100
	for _, shared := range []bool{false, true} {
		t.Run(fmt.Sprintf("shared=%v", shared), func(t *testing.T) {
			c := openClient(t)
			name := uniqueName(t)
			one := newMutex(t, c, name)
			var counter, inside, overlaps atomic.Int64
			var lastFence atomic.Uint64
			var wg sync.WaitGroup
			errs := make(chan error, goroutines)
			for g := 0; g < goroutines; g++ {
				m := one
				if !shared {
					m = newMutex(t, c, name)
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < rounds; i++ {
						if err := m.Lock(context.Background()); err != nil {
							errs <- err
							return
						}
						if !inside.CompareAndSwap(0, 1) {
							overlaps.Add(1)
						}
						if f := m.FencingToken(); f <= lastFence.Load() {
							errs <- fmt.Errorf("fencing token %d after %d", f, lastFence.Load())
						} else {
							lastFence.Store(f)
						}
						v := counter.Load()
						if i%10 == 0 {
							time.Sleep(50 * time.Microsecond) // widen the window
						}
						counter.Store(v + 1)
						inside.Store(0)
						if err := m.Unlock(); err != nil {
							errs <- err
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			if overlaps.Load() != 0 || counter.Load() != goroutines*rounds {
				t.Fatalf("counter = %d (want %d), %d overlapping holds", counter.Load(), goroutines*rounds, overlaps.Load())
			}
		})
	}
}

// The same with a plain int guarded by separate Mutex values: under -race
// this reports no race, because the race detector treats every cgo call as a
// synchronization point (runtime.cgocall), so an Unlock happens before the
// Lock that follows it. Users can protect in-process data with the lock
// under -race without false reports.
func TestRaceDetectorSeesLockOrdering(t *testing.T) {
	const goroutines, rounds = 4, 25
	c := openClient(t)
	name := uniqueName(t)
	counter := 0
	var wg sync.WaitGroup
	for g := 0; g < goroutines; g++ {
		m := newMutex(t, c, name)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < rounds; i++ {
				if err := m.Lock(context.Background()); err != nil {
					t.Error(err)
					return
				}
				counter++
				if err := m.Unlock(); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if counter != goroutines*rounds {
		t.Fatalf("counter = %d, want %d", counter, goroutines*rounds)
	}
}

// Mutual exclusion among processes: 4 copies of this test binary (as
// workers, see runWorker) and one Rust worker do a non-atomic
// read-modify-write of a counter file under the lock. The counter must end
// at the number of acquisitions, and no two holds may overlap in time.
func TestExclusionAcrossProcesses(t *testing.T) {
	const goWorkers, perGoWorker, perRustWorker = 4, 200, 100
	dir := t.TempDir()
	counter := filepath.Join(dir, "counter")
	if err := os.WriteFile(counter, []byte("0"), 0o644); err != nil {
		t.Fatal(err)
	}
	name := uniqueName(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var cmds []*exec.Cmd
	var logs []string
	for i := 0; i < goWorkers; i++ {
		log := filepath.Join(dir, fmt.Sprintf("go-%d.log", i))
		cmd := exec.Command(self)
		cmd.Env = append(os.Environ(),
			workerEnv+"=1",
			"WORKER_URL="+redisURL,
			"WORKER_NAME="+name,
			"WORKER_COUNT="+strconv.Itoa(perGoWorker),
			"WORKER_COUNTER="+counter,
			"WORKER_LOG="+log,
		)
		cmds = append(cmds, cmd)
		logs = append(logs, log)
	}
	rustLog := filepath.Join(dir, "rust.log")
	cmds = append(cmds, exec.Command(cliPath(t), "--url", redisURL, "worker", name,
		"--count", strconv.Itoa(perRustWorker), "--counter", counter, "--log", rustLog))
	logs = append(logs, rustLog)

	outputs := make([]strings.Builder, len(cmds))
	for i, cmd := range cmds {
		cmd.Stdout, cmd.Stderr = &outputs[i], &outputs[i]
		killWithParent(cmd)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
	}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Errorf("worker %d: %v\n%s", i, err, outputs[i].String())
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	want := goWorkers*perGoWorker + perRustWorker
	data, err := os.ReadFile(counter)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := strconv.Atoi(strings.TrimSpace(string(data))); got != want {
		t.Fatalf("counter = %q, want %d: updates were lost", data, want)
	}

	type interval struct {
		start, end int64
		fence      uint64
		who        string
	}
	var holds []interval
	for i, log := range logs {
		data, err := os.ReadFile(log)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			var iv interval
			if _, err := fmt.Sscan(line, &iv.start, &iv.end, &iv.fence); err != nil {
				t.Fatalf("%s: bad line %q", log, line)
			}
			iv.who = fmt.Sprintf("worker %d", i)
			holds = append(holds, iv)
		}
	}
	if len(holds) != want {
		t.Fatalf("%d holds logged, want %d", len(holds), want)
	}
	if !sharedMonotonic {
		t.Skip("no clock shared between processes here: interval checks skipped")
	}
	sort.Slice(holds, func(i, j int) bool { return holds[i].start < holds[j].start })
	for i := 1; i < len(holds); i++ {
		a, b := holds[i-1], holds[i]
		if b.start < a.end {
			t.Fatalf("holds overlap: %s [%d, %d] and %s [%d, %d]", a.who, a.start, a.end, b.who, b.start, b.end)
		}
		if b.fence <= a.fence {
			t.Fatalf("fencing tokens out of order: %s %d then %s %d", a.who, a.fence, b.who, b.fence)
		}
	}
}

// runWorker is the worker process of TestExclusionAcrossProcesses; it logs
// "start_ns end_ns fencing_token" per hold, like the Rust worker.
func runWorker() int {
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "worker:", err)
		return 1
	}
	count, err := strconv.Atoi(os.Getenv("WORKER_COUNT"))
	if err != nil {
		return fail(err)
	}
	counter := os.Getenv("WORKER_COUNTER")
	c, err := latchkey.Open(os.Getenv("WORKER_URL"))
	if err != nil {
		return fail(err)
	}
	defer c.Close()
	m, err := c.NewMutex(os.Getenv("WORKER_NAME"))
	if err != nil {
		return fail(err)
	}
	defer m.Close()
	var log strings.Builder
	for i := 0; i < count; i++ {
		if err := m.Lock(context.Background()); err != nil {
			return fail(err)
		}
		start := monotonicNs()
		data, err := os.ReadFile(counter)
		if err != nil {
			return fail(err)
		}
		v, _ := strconv.Atoi(strings.TrimSpace(string(data)))
		if err := os.WriteFile(counter, []byte(strconv.Itoa(v+1)), 0o644); err != nil {
			return fail(err)
		}
		end := monotonicNs()
		fmt.Fprintf(&log, "%d %d %d\n", start, end, m.FencingToken())
		if err := m.Unlock(); err != nil {
			return fail(err)
		}
	}
	if err := os.WriteFile(os.Getenv("WORKER_LOG"), []byte(log.String()), 0o644); err != nil {
		return fail(err)
	}
	return 0
}
