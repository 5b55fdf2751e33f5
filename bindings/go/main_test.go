package latchkey_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

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
	cmd   *exec.Cmd      // tools/redis_fixture.py, which owns the server
	stdin io.WriteCloser // its commands; "stop" or the end of input stops the server
	dir   string
	port  int
	url   string
	// tlsPort: with "--tls-port auto" among the extra arguments, the TLS
	// port the fixture picked (0 otherwise).
	tlsPort int
}

// startRedis starts redis-server on a free port in a temporary directory,
// without persistence, and waits for its "Ready to accept connections" line.
func startRedis() (*redisServer, error) {
	return launchRedis("", nil)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// launchRedis starts one server with extra arguments, or, when
// sentinelConf is not empty, a sentinel with that configuration (port, bind
// and dir are added), through tools/redis_fixture.py: the fixture every
// test suite of the repository uses. The fixture picks the port (retrying
// when it is taken meanwhile) and stops the server when this process goes
// away, however it goes.
func launchRedis(sentinelConf string, extra []string) (*redisServer, error) {
	tool, err := filepath.Abs("../../tools/redis_fixture.py")
	if err != nil {
		return nil, err
	}
	args := []string{tool, "start", "--prefix", "latchkey-go-redis-"}
	if sentinelConf != "" {
		args = append(args, "--sentinel", "--")
		args = append(args, strings.Split(strings.TrimSpace(sentinelConf), "\n")...)
	} else {
		args = append(args, "--")
		args = append(args, extra...)
	}
	cmd := exec.Command("python3", args...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("python3 %s: %v", tool, err)
	}
	line, readErr := bufio.NewReader(stdout).ReadString('\n')
	var state struct {
		Port    int    `json:"port"`
		Pid     int    `json:"pid"`
		Dir     string `json:"dir"`
		URL     string `json:"url"`
		TLSPort int    `json:"tls_port"`
	}
	if readErr == nil {
		readErr = json.Unmarshal([]byte(line), &state)
	}
	srv := &redisServer{cmd: cmd, stdin: stdin, dir: state.Dir, port: state.Port, url: state.URL, tlsPort: state.TLSPort}
	if readErr != nil || state.Port == 0 {
		srv.stop()
		return nil, fmt.Errorf("redis-server did not start (python3 %s, message above; Debian: apt-get install redis-server): %q %v", tool, line, readErr)
	}
	return srv, nil
}

func (s *redisServer) stop() {
	// The fixture kills the server, removes its directory and exits.
	io.WriteString(s.stdin, "stop\n")
	s.stdin.Close()
	s.cmd.Wait()
	if s.dir != "" {
		os.RemoveAll(s.dir)
	}
}

// startServer starts a redis-server (extra arguments) or, with a
// sentinelConf, a sentinel for the test, and stops it when the test ends.
func startServer(t testing.TB, sentinelConf string, extra ...string) *redisServer {
	t.Helper()
	srv, err := launchRedis(sentinelConf, extra)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.stop)
	return srv
}

// startMasters starts n private servers (Redlock masters) and returns their
// URLs; each is stopped when the test ends.
func startMasters(t testing.TB, n int) []string {
	t.Helper()
	urls := make([]string, 0, n)
	for i := 0; i < n; i++ {
		urls = append(urls, startServer(t, "").url)
	}
	return urls
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
