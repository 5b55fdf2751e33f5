package latchkey_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// externalProgram is the program of the module TestExternalModule makes: it
// takes a lock through the binding, as a user's program would, and checks
// in Redis that it held it.
const externalProgram = `package main

import (
	"fmt"
	"os"

	"latchkey"
)

func main() {
	client, err := latchkey.Open(os.Getenv("LATCHKEY_URL"))
	if err != nil {
		fail(err)
	}
	defer client.Close()
	m, err := client.NewMutex("external-module")
	if err != nil {
		fail(err)
	}
	defer m.Close()
	l := m.Locker()
	l.Lock()
	info, err := client.Inspect("external-module")
	if err != nil {
		fail(err)
	}
	fmt.Println("held by this program:", info != nil && info.Owner == m.Token())
	l.Unlock()
	held, err := client.IsLocked("external-module")
	if err != nil {
		fail(err)
	}
	fmt.Println("held after Unlock:", held)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}
`

// documentedRequireReplace is the go.mod block of README.md's "From a
// module of your own" steps, with the checkout's path put in.
func documentedRequireReplace(t *testing.T, repo string) string {
	t.Helper()
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	const placeholder = "/path/to/latchkey"
	var block []string
	in := false
	for _, line := range strings.Split(string(readme), "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(trimmed, "```") && in:
			if strings.Contains(strings.Join(block, "\n"), "replace latchkey =>") {
				return strings.ReplaceAll(strings.Join(block, "\n"), placeholder, repo) + "\n"
			}
			block, in = nil, false
		case strings.HasPrefix(trimmed, "```"):
			in = true
		case in:
			block = append(block, trimmed)
		}
	}
	t.Fatal("README.md has no code block with `replace latchkey =>`")
	return ""
}

// A module outside the repository, set up as README.md says (require and
// replace in go.mod, nothing else), builds against the binding with the
// network off and takes a lock on the suite's redis-server.
func TestExternalModule(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go is not on PATH: %v", err)
	}
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir() // outside the repository tree: no go.mod above it
	if strings.HasPrefix(dir, repo+string(filepath.Separator)) {
		t.Fatalf("the temporary directory %s is inside the repository %s", dir, repo)
	}
	goMod := "module lockuser\n\ngo 1.24\n\n" + documentedRequireReplace(t, repo)
	if !strings.Contains(goMod, "replace latchkey => "+filepath.Join(repo, "bindings", "go")) {
		t.Fatalf("the documented replace directive does not point at bindings/go:\n%s", goMod)
	}
	for name, text := range map[string]string{"go.mod": goMod, "main.go": externalProgram} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	program := filepath.Join(dir, "lockuser")
	build := exec.Command(goTool, "build", "-o", program, ".")
	build.Dir = dir
	// Nothing may be downloaded: the module needs only what the replace
	// directive points at. GOWORK=off: no go.work of the caller applies.
	build.Env = append(os.Environ(), "GOPROXY=off", "GOFLAGS=-mod=mod", "GOWORK=off", "GOTOOLCHAIN=local")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build in %s: %v\ngo.mod:\n%s\n%s", dir, err, goMod, out)
	}
	run := exec.Command(program)
	run.Env = append(os.Environ(), "LATCHKEY_URL="+redisURL)
	out, err := run.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", program, err, out)
	}
	want := "held by this program: true\nheld after Unlock: false\n"
	if string(out) != want {
		t.Fatalf("the external program printed %q, want %q", out, want)
	}
}
