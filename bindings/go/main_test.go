package latchkey_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"latchkey"
)

// redisURL is the private redis-server that TestMain starts for the suite.
var redisURL string

// workerEnv makes the test binary act as a worker process of
// TestExclusionAcrossProcesses instead of running tests.
const workerEnv = "LATCHKEY_GO_TEST_WORKER"

func TestMain(m *testing.M) {
	if os.Getenv(workerEnv) != "" {
		os.Exit(runWorker())
	}
	srv, err := startRedis()
	if err != nil {
		fmt.Fprintln(os.Stderr, "latchkey tests:", err)
		os.Exit(1)
	}
	redisURL = srv.url
	// The examples read it (they show a fixed URL otherwise).
	os.Setenv("LATCHKEY_URL", redisURL)
	code := m.Run()
	srv.stop()
	os.Exit(code)
}

type redisServer struct {
	cmd  *exec.Cmd
	dir  string
	port int
	url  string
}

// startRedis starts redis-server on a free port in a temporary directory,
// without persistence, and waits for its "Ready to accept connections" line.
func startRedis() (*redisServer, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("redis-server not found (Debian: apt-get install redis-server): %v", err)
	}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		srv, err := tryStartRedis(bin, nil, "")
		if err == nil {
			return srv, nil
		}
		lastErr = err // most likely the port was taken between probe and bind
	}
	return nil, lastErr
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tryStartRedis starts one server with extra arguments, or, when
// sentinelConf is not empty, a sentinel with that configuration (port, bind
// and dir are added).
func tryStartRedis(bin string, extra []string, sentinelConf string) (*redisServer, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "latchkey-go-redis-")
	if err != nil {
		return nil, err
	}
	marker := "Ready to accept connections"
	var cmd *exec.Cmd
	if sentinelConf != "" {
		conf := filepath.Join(dir, "sentinel.conf")
		text := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\n%s", port, dir, sentinelConf)
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		cmd = exec.Command(bin, conf, "--sentinel", "--logfile", "")
		marker = "+monitor master"
	} else {
		args := []string{"--port", fmt.Sprint(port), "--bind", "127.0.0.1",
			"--dir", dir, "--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", ""}
		cmd = exec.Command(bin, append(args, extra...)...)
	}
	killWithParent(cmd)
	out, err := cmd.StdoutPipe()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	srv := &redisServer{cmd: cmd, dir: dir, port: port, url: fmt.Sprintf("redis://127.0.0.1:%d", port)}
	ready := make(chan error, 1)
	go func() {
		var log strings.Builder
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			if strings.Contains(line, marker) {
				ready <- nil
				io.Copy(io.Discard, out) // keep draining
				return
			}
			log.WriteString(line + "\n")
		}
		ready <- fmt.Errorf("redis-server exited before it was ready:\n%s", log.String())
	}()
	select {
	case err := <-ready:
		if err == nil {
			return srv, nil
		}
		srv.stop()
		return nil, err
	case <-time.After(20 * time.Second):
		srv.stop()
		return nil, fmt.Errorf("redis-server did not get ready in 20 s")
	}
}

func (s *redisServer) stop() {
	s.cmd.Process.Kill()
	s.cmd.Wait()
	os.RemoveAll(s.dir)
}

// startServer starts a redis-server (extra arguments) or, with a
// sentinelConf, a sentinel for the test, and stops it when the test ends.
func startServer(t testing.TB, sentinelConf string, extra ...string) *redisServer {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server not found (Debian: apt-get install redis-server): %v", err)
	}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		srv, err := tryStartRedis(bin, extra, sentinelConf)
		if err == nil {
			t.Cleanup(srv.stop)
			return srv
		}
		lastErr = err
	}
	t.Fatal(lastErr)
	return nil
}

// Helpers shared by the tests.

var nameSeq atomic.Int64

// uniqueName gives each test its own lock names.
func uniqueName(t testing.TB) string {
	return fmt.Sprintf("go-test:%s:%d", t.Name(), nameSeq.Add(1))
}

func openClient(t testing.TB, opts ...latchkey.Option) *latchkey.Client {
	t.Helper()
	return openClientAt(t, redisURL, opts...)
}

func openClientAt(t testing.TB, url string, opts ...latchkey.Option) *latchkey.Client {
	t.Helper()
	c, err := latchkey.Open(url, opts...)
	if err != nil {
		t.Fatalf("Open(%s): %v", url, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func newMutex(t testing.TB, c *latchkey.Client, name string, opts ...latchkey.MutexOption) *latchkey.Mutex {
	t.Helper()
	m, err := c.NewMutex(name, opts...)
	if err != nil {
		t.Fatalf("NewMutex(%q): %v", name, err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// cliPath is the Rust command-line tool, built by `cargo build --release`.
func cliPath(t testing.TB) string {
	t.Helper()
	p, err := filepath.Abs("../../target/release/latchkey")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s is missing: run `cargo build --release` at the repository root (make go-test does): %v", p, err)
	}
	return p
}
