package latchkey_test

// TLS from Go (WithTLSCAFile, WithTLSClientCert, WithTLSServerName,
// WithTLSInsecureSkipVerify) against redis-servers started with a TLS port
// and certificates made for the test by tools/tls_certs.py: the cases of
// tests/tls.rs and of the C and Python tests. Waiters are waited for by
// asking the server (plain port) until they subscribed, never by sleeping a
// fixed time.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"latchkey"
)

// tlsCerts makes the test certificates in a temporary directory and returns
// their paths by file name ("ca.crt", "server.key", ...).
func tlsCerts(t *testing.T) map[string]string {
	t.Helper()
	tool, err := filepath.Abs("../../tools/tls_certs.py")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("python3", tool, t.TempDir()).Output()
	if err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			t.Fatalf("python3 %s: %v: %s", tool, err, exit.Stderr)
		}
		t.Fatalf("python3 %s: %v", tool, err)
	}
	paths := map[string]string{}
	if err := json.Unmarshal(out, &paths); err != nil {
		t.Fatalf("python3 %s printed %q: %v", tool, out, err)
	}
	return paths
}

// startTLSServer starts a redis-server with a TLS port whose
// tls-auth-clients is authClients (yes, no, optional); it is stopped when
// the test ends.
func startTLSServer(t *testing.T, certs map[string]string, authClients string) *redisServer {
	t.Helper()
	srv := startServer(t, "",
		"--tls-port", "auto",
		"--tls-cert-file", certs["server.crt"],
		"--tls-key-file", certs["server.key"],
		"--tls-ca-cert-file", certs["ca.crt"],
		"--tls-auth-clients", authClients)
	if srv.tlsPort == 0 {
		t.Fatal("the fixture reported no tls_port")
	}
	return srv
}

func tlsURL(srv *redisServer, host string) string {
	return fmt.Sprintf("rediss://%s:%d", host, srv.tlsPort)
}

// openTLS opens a client with short timeouts and the options.
func openTLS(t *testing.T, url string, opts ...latchkey.Option) *latchkey.Client {
	t.Helper()
	opts = append([]latchkey.Option{
		latchkey.WithConnectTimeout(5 * time.Second),
		latchkey.WithCommandTimeout(5 * time.Second),
	}, opts...)
	return openClientAt(t, url, opts...)
}

func TestTLSLocksAreTakenHandedOverAndReleased(t *testing.T) {
	certs := tlsCerts(t)
	srv := startTLSServer(t, certs, "no")
	ca := latchkey.WithTLSCAFile(certs["ca.crt"])
	holder := openTLS(t, tlsURL(srv, "localhost"), ca)
	waiter := openTLS(t, tlsURL(srv, "127.0.0.1"), ca)
	name := uniqueName(t)
	m := newMutex(t, holder, name, latchkey.WithTTL(5*time.Second))
	hold, err := m.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	first := hold.FencingToken()
	other := newMutex(t, waiter, name, latchkey.WithTTL(5*time.Second))
	type result struct {
		token uint64
		err   error
	}
	done := make(chan result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		h, err := other.Acquire(ctx)
		if err != nil {
			done <- result{err: err}
			return
		}
		done <- result{h.FencingToken(), h.Unlock()}
	}()
	waitUntil(t, "the waiter to subscribe", func() bool {
		n, err := subscribers(srv.url, name)
		return err == nil && n > 0
	})
	if err := hold.Check(); err != nil {
		t.Fatal(err)
	}
	if err := hold.Unlock(); err != nil {
		t.Fatal(err)
	}
	// The waiter, on the other client, is woken by the release on its own
	// TLS listener.
	got := <-done
	if got.err != nil {
		t.Fatalf("the waiter: %v", got.err)
	}
	if got.token <= first {
		t.Errorf("the waiter's fencing token %d, want more than %d", got.token, first)
	}
	if locked, err := holder.IsLocked(name); err != nil || locked {
		t.Errorf("IsLocked after both releases = %v, %v", locked, err)
	}
}

func TestTLSServerSignedByAnotherCAIsRefusedNamingTheCause(t *testing.T) {
	certs := tlsCerts(t)
	srv := startTLSServer(t, certs, "no")
	c := openTLS(t, tlsURL(srv, "localhost"), latchkey.WithTLSCAFile(certs["other-ca.crt"]))
	m := newMutex(t, c, uniqueName(t))
	_, err := m.TryAcquire()
	if !errors.Is(err, latchkey.ErrConnection) {
		t.Fatalf("TryAcquire = %v, want ErrConnection", err)
	}
	if text := err.Error(); !strings.Contains(text, "not signed by a CA this client trusts") ||
		!strings.Contains(text, "tls_ca_file") {
		t.Errorf("message does not name the cause: %v", text)
	}
}

func TestTLSCertificateMustNameTheServerOrTheNameGiven(t *testing.T) {
	certs := tlsCerts(t)
	srv := startTLSServer(t, certs, "no")
	url := tlsURL(srv, "127.0.0.1")
	ca := latchkey.WithTLSCAFile(certs["ca.crt"])
	wrong := openTLS(t, url, ca, latchkey.WithTLSServerName("redis.elsewhere.test"))
	_, err := wrong.IsLocked("x")
	if !errors.Is(err, latchkey.ErrConnection) || !strings.Contains(err.Error(), "not valid for the host name") {
		t.Errorf("IsLocked with the wrong name = %v, want ErrConnection naming the cause", err)
	}
	right := openTLS(t, url, ca, latchkey.WithTLSServerName("localhost"))
	if locked, err := right.IsLocked("x"); err != nil || locked {
		t.Errorf("IsLocked with the certificate's name = %v, %v", locked, err)
	}
}

func TestTLSMutualNeedsTheClientCertificate(t *testing.T) {
	certs := tlsCerts(t)
	srv := startTLSServer(t, certs, "yes")
	url := tlsURL(srv, "localhost")
	ca := latchkey.WithTLSCAFile(certs["ca.crt"])
	without := openTLS(t, url, ca)
	if _, err := without.IsLocked("x"); !errors.Is(err, latchkey.ErrConnection) {
		t.Errorf("IsLocked without a client certificate = %v, want ErrConnection", err)
	}
	with := openTLS(t, url, ca, latchkey.WithTLSClientCert(certs["client.crt"], certs["client.key"]))
	m := newMutex(t, with, uniqueName(t))
	hold, err := m.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := hold.Unlock(); err != nil {
		t.Fatal(err)
	}
}

func TestTLSInsecureSkipVerifyAcceptsAnyCertificate(t *testing.T) {
	certs := tlsCerts(t)
	srv := startTLSServer(t, certs, "no")
	c := openTLS(t, tlsURL(srv, "127.0.0.1"),
		latchkey.WithTLSServerName("redis.elsewhere.test"), latchkey.WithTLSInsecureSkipVerify())
	if locked, err := c.IsLocked("x"); err != nil || locked {
		t.Errorf("IsLocked = %v, %v", locked, err)
	}
}

func TestTLSBadOptionsFailOpenNamingWhatIsWrong(t *testing.T) {
	certs := tlsCerts(t)
	const tls = "rediss://localhost:6380"
	open := func(url string, opts ...latchkey.Option) func() (*latchkey.Client, error) {
		return func() (*latchkey.Client, error) { return latchkey.Open(url, opts...) }
	}
	others := []string{"redis://127.0.0.1:2", "redis://127.0.0.1:3"}
	ca := latchkey.WithTLSCAFile(certs["ca.crt"])
	cases := []struct {
		what   string
		open   func() (*latchkey.Client, error)
		needle string
	}{
		{"a CA file and a redis:// URL", open(redisURL, ca), "no URL is rediss://"},
		{"insecure and a redis:// URL", open(redisURL, latchkey.WithTLSInsecureSkipVerify()), "no URL is rediss://"},
		{"a missing CA file", open(tls, latchkey.WithTLSCAFile("/no/such/ca.pem")), "/no/such/ca.pem"},
		{"a key as the CA file", open(tls, latchkey.WithTLSCAFile(certs["client.key"])), "no PEM certificate"},
		{"a certificate with another's key",
			open(tls, ca, latchkey.WithTLSClientCert(certs["client.crt"], certs["server.key"])), "do not go together"},
		{"an invalid server name", open(tls, ca, latchkey.WithTLSServerName("not a name")), "not a valid TLS server name"},
		{"a NUL in a path", open(tls, latchkey.WithTLSCAFile("ca\x00.crt")), "NUL"},
		{"Redlock without rediss://", func() (*latchkey.Client, error) {
			return latchkey.OpenRedlock(append([]string{redisURL}, others...), ca)
		}, "no URL is rediss://"},
		{"Cluster without rediss://", func() (*latchkey.Client, error) {
			return latchkey.OpenCluster([]string{redisURL}, latchkey.WithTLSServerName("localhost"))
		}, "no URL is rediss://"},
		{"Sentinel without rediss://", func() (*latchkey.Client, error) {
			return latchkey.OpenSentinel([]string{redisURL}, "m",
				latchkey.WithTLSClientCert(certs["client.crt"], certs["client.key"]))
		}, "no URL is rediss://"},
		{"Sentinel URLs mixed", func() (*latchkey.Client, error) {
			return latchkey.OpenSentinel([]string{"rediss://localhost:26379", "redis://localhost:26380"}, "m")
		}, "rediss:// or none"},
	}
	for _, tc := range cases {
		c, err := tc.open()
		if err == nil {
			c.Close()
			t.Errorf("%s: opened", tc.what)
			continue
		}
		if !errors.Is(err, latchkey.ErrInvalidArgument) || !strings.Contains(err.Error(), tc.needle) {
			t.Errorf("%s: %v, want ErrInvalidArgument with %q", tc.what, err, tc.needle)
		}
	}
}
