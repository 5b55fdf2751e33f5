package latchkey_test

import (
	"errors"
	"strings"
	"testing"

	"latchkey"
)

// Every character with a meaning in a URL, raw and percent-encoded.
const (
	awkwardPassword        = "p/@:%#?w0rd"
	awkwardPasswordEncoded = "p%2F%40%3A%25%23%3Fw0rd"
)

func assertNoSecret(t *testing.T, text string) {
	t.Helper()
	for _, secret := range []string{awkwardPassword, awkwardPasswordEncoded, "se/cret", "w0rd"} {
		if strings.Contains(text, secret) {
			t.Errorf("%q shows in %q", secret, text)
		}
	}
}

func TestRefusedCredentialsAreErrAuth(t *testing.T) {
	hostPort := strings.TrimPrefix(redisURL, "redis://")
	// No such user on the test server: Redis answers WRONGPASS.
	client := openClientAt(t, "redis://nobody:"+awkwardPasswordEncoded+"@"+hostPort)
	_, err := client.IsLocked("credentials-probe")
	if !errors.Is(err, latchkey.ErrAuth) {
		t.Fatalf("IsLocked with refused credentials: %v, want ErrAuth", err)
	}
	if errors.Is(err, latchkey.ErrConnection) {
		t.Errorf("an authentication failure also matches ErrConnection: %v", err)
	}
	var lkErr *latchkey.Error
	if !errors.As(err, &lkErr) || lkErr.Status != latchkey.StatusAuth {
		t.Errorf("error %#v, want Status %v", err, latchkey.StatusAuth)
	}
	if !strings.Contains(err.Error(), "authentication") {
		t.Errorf("message does not say authentication: %v", err)
	}
	assertNoSecret(t, err.Error())
}

func TestRawAwkwardPasswordsNeverShow(t *testing.T) {
	hostPort := strings.TrimPrefix(redisURL, "redis://")
	for _, password := range []string{"se/cret", "se@cret", "se#cret", "se?cret", awkwardPassword} {
		client, err := latchkey.Open("redis://bob:" + password + "@" + hostPort + "/0")
		if err != nil {
			if !errors.Is(err, latchkey.ErrInvalidArgument) {
				t.Errorf("%q: %v, want ErrInvalidArgument", password, err)
			}
			assertNoSecret(t, err.Error())
			continue
		}
		_, err = client.IsLocked("credentials-probe")
		if err == nil {
			t.Errorf("%q: IsLocked succeeded with a wrong password", password)
		} else {
			assertNoSecret(t, err.Error())
		}
		client.Close()
	}
}

// A unix socket URL authenticates with ?pass=; an invalid one used to be
// echoed verbatim in the error, password included.
func TestInvalidURLNeverShowsAQueryPassword(t *testing.T) {
	for _, url := range []string{
		"unix:///tmp/no-such.sock?db=x&pass=S3CRETpw",
		"redis://127.0.0.1:notaport/?pass=S3CRETpw",
		"redis://127.0.0.1/?password=S3CRETpw",
	} {
		c, err := latchkey.Open(url)
		if err == nil {
			c.Close()
			t.Fatalf("Open(%q) succeeded", url)
		}
		if !errors.Is(err, latchkey.ErrInvalidArgument) || strings.Contains(err.Error(), "S3CRETpw") {
			t.Fatalf("Open of an invalid URL = %v", err)
		}
	}
}
