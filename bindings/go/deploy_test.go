package latchkey_test

// The deployments and options that need more than the suite's one server:
// Redlock over 3 masters, Sentinel with an authenticated master in another
// database, Redis Cluster, waiting for replicas. Each test starts its own
// real servers (and sentinels, and a cluster) and checks Redis from outside
// the library.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"latchkey"
)

// waitReplicaInSync waits until replica reports its link to the master up.
func waitReplicaInSync(t *testing.T, replica *redisServer) {
	t.Helper()
	waitUntil(t, "the replica to sync", func() bool {
		v, err := redisDo(replica.url, "INFO", "replication")
		s, _ := v.(string)
		return err == nil && strings.Contains(s, "master_link_status:up")
	})
}

// WithWaitForReplicas: an acquire returns only once the replicas have the
// lock, and fails (giving the lock back) when fewer replicas exist.
func TestWaitForReplicas(t *testing.T) {
	master := startServer(t, "", "--repl-diskless-sync-delay", "0")
	replica := startServer(t, "", "--replicaof", "127.0.0.1", fmt.Sprint(master.port))
	waitReplicaInSync(t, replica)

	name := uniqueName(t)
	c := openClientAt(t, master.url, latchkey.WithWaitForReplicas(1, 5*time.Second))
	m := newMutex(t, c, name)
	h, err := m.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// No waiting here: WAIT already confirmed it on the replica.
	if owner, err := lockOwner(replica.url, name); err != nil || owner != h.Token() {
		t.Fatalf("replica owner right after Acquire = %q (%v), want %q", owner, err, h.Token())
	}
	if err := h.Unlock(); err != nil {
		t.Fatal(err)
	}

	// Two replicas asked for, one exists: no lock.
	strict := openClientAt(t, master.url, latchkey.WithWaitForReplicas(2, 200*time.Millisecond))
	m2 := newMutex(t, strict, name)
	if h, err := m2.Acquire(context.Background()); !errors.Is(err, latchkey.ErrTimeout) {
		t.Fatalf("Acquire waiting for 2 replicas of 1 = %v, %v; want ErrTimeout", h, err)
	}
	if owner, err := lockOwner(master.url, name); err != nil || owner != "" {
		t.Fatalf("after the failed acquire the master has owner %q (%v)", owner, err)
	}
}

// OpenSentinel finds the master through a sentinel; WithMasterPassword
// authenticates to it and WithMasterDB selects the database the lock goes
// to.
func TestSentinelMasterPasswordAndDB(t *testing.T) {
	const password = "s3cret-pw"
	master := startServer(t, "", "--requirepass", password)
	sentinel := startServer(t, fmt.Sprintf(
		"sentinel monitor mymaster 127.0.0.1 %d 1\nsentinel auth-pass mymaster %s\nsentinel down-after-milliseconds mymaster 1000\n",
		master.port, password))
	authURL := fmt.Sprintf("redis://:%s@127.0.0.1:%d", password, master.port)
	name := uniqueName(t)

	sc, err := latchkey.OpenSentinel([]string{sentinel.url}, "mymaster",
		latchkey.WithMasterPassword(password), latchkey.WithMasterDB(3))
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	m, err := sc.NewMutex(name)
	if err != nil {
		t.Fatal(err)
	}
	h, err := m.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if owner, err := lockOwner(authURL+"/3", name); err != nil || owner != h.Token() {
		t.Errorf("db 3 of the master: owner %q (%v), want %q", owner, err, h.Token())
	}
	if owner, err := lockOwner(authURL, name); err != nil || owner != "" {
		t.Errorf("db 0 of the master: owner %q (%v), want none", owner, err)
	}
	if info, err := sc.Inspect(name); err != nil || info == nil || info.Owner != h.Token() {
		t.Errorf("Inspect through Sentinel = %+v, %v", info, err)
	}
	if err := h.Unlock(); err != nil {
		t.Fatal(err)
	}
	if owner, err := lockOwner(authURL+"/3", name); err != nil || owner != "" {
		t.Errorf("after Unlock db 3 has owner %q (%v)", owner, err)
	}

	// Without the password the master refuses.
	nopw, err := latchkey.OpenSentinel([]string{sentinel.url}, "mymaster", latchkey.WithCommandTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer nopw.Close()
	m2, err := nopw.NewMutex(name)
	if err != nil {
		t.Fatal(err)
	}
	if h, err := m2.TryAcquire(); err == nil {
		t.Fatalf("TryAcquire without the master's password = %v, nil", h)
	}
}

// OpenRedlock over 3 masters: every master has the hold, another owner is
// refused, and the lock survives the loss of one master.
func TestRedlock(t *testing.T) {
	var servers []*redisServer
	var urls []string
	for i := 0; i < 3; i++ {
		s := startServer(t, "")
		servers = append(servers, s)
		urls = append(urls, s.url)
	}
	// Fresh test servers: no restart to wait out (TestRedlockFreshDeployment
	// covers the default delay).
	c, err := latchkey.OpenRedlock(urls, latchkey.WithCommandTimeout(500*time.Millisecond),
		latchkey.WithConnectTimeout(500*time.Millisecond), latchkey.WithRedlockRestartDelay(0))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	other, err := latchkey.OpenRedlock(urls, latchkey.WithCommandTimeout(500*time.Millisecond),
		latchkey.WithConnectTimeout(500*time.Millisecond), latchkey.WithRedlockRestartDelay(0))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	name := uniqueName(t)
	m, _ := c.NewMutex(name)
	rival, _ := other.NewMutex(name)
	h, err := m.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range servers {
		if owner, err := lockOwner(s.url, name); err != nil || owner != h.Token() {
			t.Errorf("%s: owner %q (%v), want %q", s.url, owner, err, h.Token())
		}
	}
	states, err := c.InspectMasters(name)
	if err != nil || len(states) != 3 {
		t.Fatalf("InspectMasters = %+v, %v", states, err)
	}
	for _, s := range states {
		if s.Holder != h.Token() || s.Err != "" {
			t.Errorf("master state %+v, want holder %s", s, h.Token())
		}
	}
	if r, err := rival.TryAcquire(); r != nil || err != nil {
		t.Fatalf("rival TryAcquire = %v, %v while held", r, err)
	}
	if err := h.Unlock(); err != nil {
		t.Fatal(err)
	}
	for _, s := range servers {
		if owner, _ := lockOwner(s.url, name); owner != "" {
			t.Errorf("%s still has owner %q after Unlock", s.url, owner)
		}
	}

	// One master of three gone: a quorum of two still grants the lock.
	servers[2].stop()
	r, err := rival.TryAcquire()
	if err != nil || r == nil {
		t.Fatalf("TryAcquire with 2 of 3 masters = %v, %v", r, err)
	}
	if err := r.Unlock(); err != nil {
		t.Fatal(err)
	}
	// Two gone: no quorum.
	servers[1].stop()
	if r, err := rival.TryAcquire(); r != nil || err == nil {
		t.Fatalf("TryAcquire with 1 of 3 masters = %v, %v; want an error", r, err)
	}
}

// With the default restart delay, masters younger than the ttl do not count
// toward a quorum (the client cannot tell a new deployment from one that
// restarted and lost its locks): no lock is granted until they have run a
// ttl (ErrNoQuorum, saying why), and a waiter gets it then.
func TestRedlockFreshDeployment(t *testing.T) {
	urls := startMasters(t, 3)
	c, err := latchkey.OpenRedlock(urls, latchkey.WithCommandTimeout(500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	m, err := c.NewMutex(uniqueName(t), latchkey.WithTTL(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if h, err := m.TryAcquire(); h != nil || !errors.Is(err, latchkey.ErrNoQuorum) ||
		!strings.Contains(err.Error(), "restart delay") {
		t.Fatalf("TryAcquire on masters younger than the ttl = %v, %v; want ErrNoQuorum naming the restart delay", h, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h, err := m.Acquire(ctx)
	if err != nil {
		t.Fatalf("Acquire once the masters have run a ttl: %v", err)
	}
	if err := h.Unlock(); err != nil {
		t.Fatal(err)
	}
}

// OpenCluster over a 3-master cluster: locks whose names fall in different
// slots are each held on exactly the master of their slot.
func TestCluster(t *testing.T) {
	if _, err := exec.LookPath("redis-cli"); err != nil {
		t.Fatalf("redis-cli is needed (Debian: apt-get install redis-tools): %v", err)
	}
	var nodes []*redisServer
	var addrs, urls []string
	for i := 0; i < 3; i++ {
		n := startServer(t, "", "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "2000")
		nodes = append(nodes, n)
		addrs = append(addrs, fmt.Sprintf("127.0.0.1:%d", n.port))
		urls = append(urls, n.url)
	}
	create := exec.Command("redis-cli", append(append([]string{"--cluster", "create"}, addrs...),
		"--cluster-replicas", "0", "--cluster-yes")...)
	if out, err := create.CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	for _, n := range nodes {
		waitUntil(t, "the cluster to be up on every node", func() bool {
			v, err := redisDo(n.url, "CLUSTER", "INFO")
			s, _ := v.(string)
			return err == nil && strings.Contains(s, "cluster_state:ok")
		})
	}
	c, err := latchkey.OpenCluster(urls[:1]) // one seed finds the rest
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	other, err := latchkey.OpenCluster(urls)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()

	var holds []*latchkey.Hold
	var names []string
	usedNodes := map[string]bool{}
	for i := 0; i < 12; i++ {
		name := fmt.Sprintf("%s:%d", uniqueName(t), i)
		m, err := c.NewMutex(name)
		if err != nil {
			t.Fatal(err)
		}
		h, err := m.Acquire(context.Background())
		if err != nil {
			t.Fatalf("Acquire %s: %v", name, err)
		}
		holders := 0
		for _, n := range nodes {
			// The master of another slot answers MOVED (an error here).
			if owner, err := lockOwner(n.url, name); err == nil && owner == h.Token() {
				holders++
				usedNodes[n.url] = true
			}
		}
		if holders != 1 {
			t.Errorf("%s is held on %d nodes, want exactly 1", name, holders)
		}
		rival, _ := other.NewMutex(name)
		if r, err := rival.TryAcquire(); r != nil || err != nil {
			t.Errorf("rival TryAcquire of %s = %v, %v while held", name, r, err)
		}
		holds = append(holds, h)
		names = append(names, name)
	}
	if len(usedNodes) < 2 {
		t.Errorf("12 names landed on %d masters; the test wants several slots' masters", len(usedNodes))
	}
	for i, h := range holds {
		if err := h.Unlock(); err != nil {
			t.Errorf("Unlock %s: %v", names[i], err)
		}
		if locked, err := other.IsLocked(names[i]); err != nil || locked {
			t.Errorf("IsLocked %s after Unlock = %v, %v", names[i], locked, err)
		}
	}
}

// WithRetryJitter reaches the library: its range is checked there (0 to
// 10 s), and a Mutex with no jitter at all works.
func TestRetryJitter(t *testing.T) {
	c := openClient(t)
	if _, err := c.NewMutex(uniqueName(t), latchkey.WithRetryJitter(11*time.Second)); !errors.Is(err, latchkey.ErrInvalidArgument) {
		t.Fatalf("NewMutex with an 11 s jitter = %v, want ErrInvalidArgument", err)
	}
	name := uniqueName(t)
	holder := newMutex(t, c, name, latchkey.WithTTL(100*time.Millisecond), latchkey.WithAutoRenew(false))
	waiter := newMutex(t, c, name, latchkey.WithRetryJitter(0))
	if err := holder.Lock(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The holder's lease runs out (no release message): the waiter retries
	// after the holder's ttl, with no pause of its own.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := waiter.Lock(ctx); err != nil {
		t.Fatal(err)
	}
	if err := waiter.Unlock(); err != nil {
		t.Fatal(err)
	}
}

// The latchkey_shared build tag links liblatchkey.so instead of the static
// library: build and run a few of these tests that way (the library's
// soname, liblatchkey.so.0, is provided through LD_LIBRARY_PATH from a
// temporary directory).
func TestSharedLibraryBuild(t *testing.T) {
	if latchkey.LinkMode == "shared" {
		t.Skip("this is the shared build")
	}
	so, err := filepath.Abs("../../target/release/liblatchkey.so")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(so); err != nil {
		t.Fatalf("%s is missing: run `cargo build --release` at the repository root: %v", so, err)
	}
	libdir := t.TempDir()
	if err := os.Symlink(so, filepath.Join(libdir, "liblatchkey.so.0")); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "test", "-tags", "latchkey_shared", "-count=1", "-v",
		"-run", "^(TestVersion|TestLockUnlock|TestSharedMutexHolds)$", ".")
	cmd.Env = append(os.Environ(), "LD_LIBRARY_PATH="+libdir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go test -tags latchkey_shared: %v\n%s", err, out)
	}
	for _, want := range []string{"linked shared", "--- PASS: TestLockUnlock", "--- PASS: TestSharedMutexHolds"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the shared build's output lacks %q:\n%s", want, out)
		}
	}
	// The test binary really loaded the shared library.
	if !strings.Contains(string(out), "library ") {
		t.Errorf("no version line:\n%s", out)
	}
}

// The binding's own C (reports.c, helpers.h) compiles cleanly with the
// project's C warnings as errors (cgo itself builds it with its defaults).
func TestCHelpersCompileCleanly(t *testing.T) {
	cc := os.Getenv("CC")
	if cc == "" {
		cc = "cc"
	}
	out, err := exec.Command(cc, "-std=c11", "-Wall", "-Wextra", "-Wpedantic", "-Werror",
		"-I../../include", "-c", "reports.c", "-o", filepath.Join(t.TempDir(), "reports.o")).CombinedOutput()
	if err != nil {
		t.Fatalf("%s reports.c: %v\n%s", cc, err, out)
	}
}
