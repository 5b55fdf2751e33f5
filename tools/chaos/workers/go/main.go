// Command go-worker is the chaos checker's Go worker: the same loop as the
// Rust worker (tools/chaos/workers/rust/main.rs) through the Go binding's
// stable surface (Open, NewMutex, Acquire(ctx), TryAcquire, and the Hold's
// Unlock, Check, FencingToken, Lost and Err; FencedWrite). Every call goes
// to a JSON-lines history with CLOCK_MONOTONIC times. A loss is logged when
// the hold's Lost channel closes and Err says ErrLost, not at every ending
// (Lost closes at Unlock too).
//
// usage: go-worker --deployment SPEC --storage URL --names A,B --ttl-ms N
//
//	--seed N --id ID --history FILE --until-ns N
//	[--command-timeout-ms N] [--long-percent N] [--renew-percent N] [--fair 0|1]
//	[--semaphore N]
//
// With --fair 1 every mutex is fair (WithFair) and every acquire line says
// "fair": true. With --semaphore N (N > 0) every name is a semaphore of N
// permits (NewSemaphore) and each hold takes 1 of them, sometimes 2; its
// acquire line says "size": N, "permits": P.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"latchkey"
)

// monoNs reads CLOCK_MONOTONIC, the clock every worker shares on Linux.
func monoNs() uint64 {
	var ts syscall.Timespec
	syscall.Syscall(syscall.SYS_CLOCK_GETTIME, 1, uintptr(unsafe.Pointer(&ts)), 0)
	return uint64(ts.Sec)*1e9 + uint64(ts.Nsec)
}

// splitmix64: a seed replays the same operations.
type rng struct{ state uint64 }

func (r *rng) next() uint64 {
	r.state += 0x9e3779b97f4a7c15
	z := r.state
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

func (r *rng) below(n uint64) uint64 {
	if n == 0 {
		return 0
	}
	return r.next() % n
}

type history struct {
	mu     sync.Mutex
	file   *os.File
	worker string
}

func (h *history) log(fields map[string]any) {
	fields["w"] = h.worker
	fields["lang"] = "go"
	fields["wall"] = time.Now().UnixNano()
	line, err := json.Marshal(fields)
	if err != nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	_, _ = h.file.Write(append(line, '\n'))
}

var kinds = []struct {
	err  error
	name string
}{
	{latchkey.ErrTimeout, "Timeout"}, {latchkey.ErrNotHeld, "NotHeld"}, {latchkey.ErrLost, "Lost"},
	{latchkey.ErrCancelled, "Cancelled"}, {latchkey.ErrConnection, "Connection"},
	{latchkey.ErrServer, "Server"}, {latchkey.ErrNoQuorum, "NoQuorum"},
	{context.Canceled, "Cancelled"},
}

func kind(err error) string {
	for _, k := range kinds {
		if errors.Is(err, k.err) {
			return k.name
		}
	}
	return "Other"
}

func open(spec string, timeout time.Duration) (*latchkey.Client, error) {
	kind, rest, _ := strings.Cut(spec, ":")
	opts := []latchkey.Option{latchkey.WithConnectTimeout(timeout), latchkey.WithCommandTimeout(timeout)}
	switch kind {
	case "single":
		return latchkey.Open(rest, opts...)
	case "redlock":
		return latchkey.OpenRedlock(strings.Split(rest, ","), opts...)
	case "cluster":
		return latchkey.OpenCluster(strings.Split(rest, ","), opts...)
	case "sentinel":
		master, urls, _ := strings.Cut(rest, ":")
		return latchkey.OpenSentinel(strings.Split(urls, ","), master, opts...)
	}
	return nil, fmt.Errorf("unknown deployment kind %s", kind)
}

func main() {
	spec := flag.String("deployment", "", "")
	storageURL := flag.String("storage", "", "")
	names := flag.String("names", "", "")
	id := flag.String("id", "go", "")
	historyPath := flag.String("history", "", "")
	ttlMs := flag.Uint64("ttl-ms", 2000, "")
	seed := flag.Uint64("seed", 1, "")
	until := flag.Uint64("until-ns", 0, "")
	timeoutMs := flag.Uint64("command-timeout-ms", 1000, "")
	longPercent := flag.Uint64("long-percent", 15, "")
	renewPercent := flag.Uint64("renew-percent", 70, "")
	fair := flag.Uint64("fair", 0, "")
	semSize := flag.Uint64("semaphore", 0, "")
	flag.Parse()
	if err := run(*spec, *storageURL, strings.Split(*names, ","), *id, *historyPath, *ttlMs, *seed, *until,
		time.Duration(*timeoutMs)*time.Millisecond, min(*longPercent, 85), *renewPercent, *fair != 0, uint32(*semSize)); err != nil {
		fmt.Fprintln(os.Stderr, "go-worker:", err)
		os.Exit(2)
	}
}

// acquirer: a Mutex, or a Semaphore taking a number of permits.
type acquirer interface {
	Acquire(ctx context.Context) (*latchkey.Hold, error)
	TryAcquire() (*latchkey.Hold, error)
}

// permitsOf takes `permits` permits of a semaphore (set before each acquire).
type permitsOf struct {
	sem     *latchkey.Semaphore
	permits uint32
}

func (p *permitsOf) Acquire(ctx context.Context) (*latchkey.Hold, error) {
	return p.sem.Acquire(ctx, p.permits)
}

func (p *permitsOf) TryAcquire() (*latchkey.Hold, error) { return p.sem.TryAcquire(p.permits) }

func run(spec, storageURL string, names []string, id, historyPath string, ttlMs, seed, until uint64,
	timeout time.Duration, longPercent, renewPercent uint64, fair bool, semSize uint32) error {
	file, err := os.OpenFile(historyPath, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	h := &history{file: file, worker: id}
	client, err := open(spec, timeout)
	if err != nil {
		return err
	}
	storage, err := latchkey.Open(storageURL, latchkey.WithConnectTimeout(timeout), latchkey.WithCommandTimeout(timeout))
	if err != nil {
		return err
	}
	ttl := time.Duration(ttlMs) * time.Millisecond
	// Per name: a mutex renewed by the watchdog and one that is not.
	type pair struct{ renewed, plain acquirer }
	mutexes := make([]pair, len(names))
	for i, name := range names {
		if semSize > 0 {
			r, err := client.NewSemaphore(name, semSize, latchkey.WithTTL(ttl))
			if err != nil {
				return err
			}
			p, err := client.NewSemaphore(name, semSize, latchkey.WithTTL(ttl), latchkey.WithAutoRenew(false))
			if err != nil {
				return err
			}
			mutexes[i] = pair{&permitsOf{r, 1}, &permitsOf{p, 1}}
			continue
		}
		r, err := client.NewMutex(name, latchkey.WithTTL(ttl), latchkey.WithFair(fair))
		if err != nil {
			return err
		}
		p, err := client.NewMutex(name, latchkey.WithTTL(ttl), latchkey.WithAutoRenew(false), latchkey.WithFair(fair))
		if err != nil {
			return err
		}
		mutexes[i] = pair{r, p}
	}
	r := &rng{seed}
	h.log(map[string]any{"op": "start", "t": monoNs()})
	for seq := uint64(1); monoNs() < until; seq++ {
		i := r.below(uint64(len(names)))
		name := names[i]
		renew := r.below(100) < renewPercent
		m := mutexes[i].plain
		if renew {
			m = mutexes[i].renewed
		}
		if sem, ok := m.(*permitsOf); ok {
			sem.permits = 1
			if semSize > 1 && r.below(100) < 25 {
				sem.permits = 2
			}
		}
		roll := r.below(100)
		mode := "cancel"
		switch {
		case roll < 10:
			mode = "blocking"
		case roll < 60:
			mode = "timeout"
		case roll < 85:
			mode = "try"
		}
		waitMs := 100 + r.below(3*ttlMs)
		cancelAfter := r.below(2 * ttlMs)
		event := map[string]any{"op": "acquire", "seq": seq, "name": name, "mode": mode, "renew": renew,
			"ttl_ms": ttlMs}
		if fair {
			event["fair"] = true
		}
		if sem, ok := m.(*permitsOf); ok {
			event["size"], event["permits"] = semSize, sem.permits
		}
		t0 := monoNs()
		var held *latchkey.Hold
		var lockErr error
		switch mode {
		case "blocking":
			held, lockErr = m.Acquire(context.Background())
		case "try":
			event["deadline_ms"] = 0
			held, lockErr = m.TryAcquire()
			if lockErr == nil && held == nil {
				lockErr = latchkey.ErrTimeout
			}
		case "timeout":
			event["deadline_ms"] = waitMs
			ctx, cancel := context.WithTimeout(context.Background(), time.Duration(waitMs)*time.Millisecond)
			held, lockErr = m.Acquire(ctx)
			cancel()
		default:
			event["deadline_ms"] = min(waitMs, cancelAfter)
			ctx, cancel := context.WithTimeout(context.Background(), time.Duration(waitMs)*time.Millisecond)
			timer := time.AfterFunc(time.Duration(cancelAfter)*time.Millisecond, cancel)
			held, lockErr = m.Acquire(ctx)
			timer.Stop()
			cancel()
		}
		event["t0"], event["t1"] = t0, monoNs()
		if lockErr != nil {
			event["ok"], event["err"], event["msg"] = false, kind(lockErr), lockErr.Error()
			h.log(event)
			time.Sleep(time.Duration(r.below(50)) * time.Millisecond)
			continue
		}
		fence := held.FencingToken()
		hold := fmt.Sprintf("%s:%d", id, seq)
		event["ok"], event["hold"], event["fence"] = true, hold, fence
		h.log(event)
		// Lost closes at every ending (Unlock included), so this goroutine
		// always ends; Err says whether the ending was a loss. A loss that
		// Check itself found (Err says ErrLost then too) is the check's
		// line, not a report: the other languages' lost callbacks report
		// only what the renewal found.
		var asked atomic.Bool
		go func(held *latchkey.Hold) {
			<-held.Lost()
			if err := held.Err(); errors.Is(err, latchkey.ErrLost) && !asked.Load() {
				h.log(map[string]any{"op": "lost", "name": name, "fence": fence, "t": monoNs(),
					"reason": err.Error()})
			}
		}(held)
		common := func(op string) map[string]any {
			return map[string]any{"op": op, "seq": seq, "name": name, "hold": hold, "fence": fence}
		}
		e := common("write")
		t0 = monoNs()
		written, highest, werr := storage.FencedWrite("res-"+name, fence, []byte(hold))
		e["t0"], e["t1"] = t0, monoNs()
		if werr != nil {
			e["ok"], e["err"] = false, kind(werr)
		} else {
			e["ok"], e["highest"] = written, highest
		}
		h.log(e)
		roll = r.below(100)
		holdMs := r.below(ttlMs / 4)
		if roll < longPercent {
			holdMs = ttlMs + r.below(ttlMs)
		} else if roll < longPercent+15 {
			holdMs = ttlMs/3 + r.below(ttlMs)
		}
		time.Sleep(time.Duration(holdMs) * time.Millisecond)
		for _, op := range []string{"check", "release"} {
			e := common(op)
			t0 = monoNs()
			var err error
			if op == "check" {
				asked.Store(true)
				err = held.Check()
			} else {
				err = held.Unlock()
			}
			e["t0"], e["t1"], e["ok"] = t0, monoNs(), err == nil
			if err != nil {
				e["err"], e["msg"] = kind(err), err.Error()
			}
			h.log(e)
		}
	}
	h.log(map[string]any{"op": "stop", "t": monoNs()})
	return nil
}
