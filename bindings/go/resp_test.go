package latchkey_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	neturl "net/url"
	"strconv"
	"strings"
	"time"
)

// redisDo sends one command to the Redis at rawURL over a fresh connection
// (after AUTH and SELECT when the URL has a password or a database) and
// returns its reply: a string, an int64, nil, or a []any of those. The
// tests use it to look at Redis from outside the library (who holds a key,
// who is subscribed), so a bug in the library cannot hide itself.
func redisDo(rawURL string, args ...string) (any, error) {
	u, err := neturl.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return nil, err
	}
	commands := [][]string{args}
	if db := strings.TrimPrefix(u.Path, "/"); db != "" && db != "0" {
		commands = append([][]string{{"SELECT", db}}, commands...)
	}
	if pw, ok := u.User.Password(); ok {
		commands = append([][]string{{"AUTH", pw}}, commands...)
	}
	var b strings.Builder
	for _, cmd := range commands {
		fmt.Fprintf(&b, "*%d\r\n", len(cmd))
		for _, a := range cmd {
			fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
		}
	}
	if _, err := conn.Write([]byte(b.String())); err != nil {
		return nil, err
	}
	r := bufio.NewReader(conn)
	var reply any
	for range commands {
		if reply, err = readReply(r); err != nil {
			return nil, err
		}
	}
	return reply, nil
}

func readReply(r *bufio.Reader) (any, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return nil, fmt.Errorf("empty reply line")
	}
	body := line[1:]
	switch line[0] {
	case '+':
		return body, nil
	case '-':
		return nil, fmt.Errorf("redis: %s", body)
	case ':':
		return strconv.ParseInt(body, 10, 64)
	case '$':
		n, err := strconv.Atoi(body)
		if err != nil || n < 0 {
			return nil, err
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(body)
		if err != nil || n < 0 {
			return nil, err
		}
		items := make([]any, n)
		for i := range items {
			if items[i], err = readReply(r); err != nil {
				return nil, err
			}
		}
		return items, nil
	}
	return nil, fmt.Errorf("unexpected reply %q", line)
}

// lockOwner is the owner token stored in the plain lock key of name (with
// the default prefix), or "" when the key does not exist.
func lockOwner(rawURL, name string) (string, error) {
	v, err := redisDo(rawURL, "GET", "latchkey:{"+name+"}")
	if err != nil || v == nil {
		return "", err
	}
	s, _ := v.(string)
	return s, nil
}

// subscribers is how many connections listen on the release channel of
// name: a waiting Lock subscribes before it parks.
func subscribers(rawURL, name string) (int64, error) {
	v, err := redisDo(rawURL, "PUBSUB", "NUMSUB", "latchkey:{"+name+"}:ch")
	if err != nil {
		return 0, err
	}
	items, ok := v.([]any)
	if !ok || len(items) != 2 {
		return 0, fmt.Errorf("PUBSUB NUMSUB replied %v", v)
	}
	n, _ := items[1].(int64)
	return n, nil
}
