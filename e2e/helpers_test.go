// Package e2e runs the built upkeep binary against real parts: Git
// repositories served over loopback by git http-backend, and (for the
// updaters) real package managers and systemd.
package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// upkeepBin is the binary under test, built once by TestMain.
var upkeepBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "upkeep-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	upkeepBin = filepath.Join(dir, "upkeep")
	build := exec.Command("go", "build", "-o", upkeepBin, "./cmd/upkeep")
	build.Dir = repoRoot()
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building upkeep:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}

// gitWork is a work tree whose commits are pushed to a bare repository that
// an HTTP server on loopback serves through git http-backend.
type gitWork struct {
	t    testing.TB
	dir  string
	bare string
	URL  string // clone URL of the bare repository
}

func newGitServer(t testing.TB) *gitWork {
	t.Helper()
	root := t.TempDir()
	g := &gitWork{t: t, dir: filepath.Join(root, "work"), bare: filepath.Join(root, "srv", "fleet.git")}
	run(t, root, "git", "init", "-q", "--bare", "-b", "main", g.bare)
	run(t, root, "git", "init", "-q", "-b", "main", g.dir)
	run(t, g.dir, "git", "remote", "add", "origin", g.bare)

	backend, err := exec.LookPath("git")
	if err != nil {
		t.Fatal(err)
	}
	h := &cgi.Handler{
		Path: backend,
		Args: []string{"http-backend"},
		Env:  []string{"GIT_PROJECT_ROOT=" + filepath.Dir(g.bare), "GIT_HTTP_EXPORT_ALL=1"},
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	g.URL = srv.URL + "/fleet.git"
	return g
}

// commit writes files (path → content; "" deletes), commits and pushes them.
func (g *gitWork) commit(msg string, files map[string]string) string {
	g.t.Helper()
	for name, content := range files {
		p := filepath.Join(g.dir, filepath.FromSlash(name))
		if content == "" {
			os.Remove(p)
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			g.t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			g.t.Fatal(err)
		}
	}
	run(g.t, g.dir, "git", "add", "-A")
	run(g.t, g.dir, "git", "commit", "-q", "-m", msg)
	run(g.t, g.dir, "git", "push", "-q", "origin", "main")
	return strings.TrimSpace(run(g.t, g.dir, "git", "rev-parse", "HEAD"))
}

func run(t testing.TB, dir string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"GIT_AUTHOR_NAME=e2e", "GIT_AUTHOR_EMAIL=e2e@example.com",
		"GIT_COMMITTER_NAME=e2e", "GIT_COMMITTER_EMAIL=e2e@example.com",
		"GIT_CONFIG_NOSYSTEM=1", "HOME="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// server is a running `upkeep serve`.
type server struct {
	cmd  *exec.Cmd
	URL  string
	logs *lockedBuffer
	done chan error
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startServe starts `upkeep serve` on a free loopback port and waits until
// it listens. It reads the address from the JSON start log line.
func startServe(t testing.TB, args ...string) *server {
	t.Helper()
	args = append([]string{"serve", "--listen", "127.0.0.1:0", "--log-format", "json", "--cache-dir", t.TempDir(), "--state-dir", t.TempDir()}, args...)
	cmd := exec.Command(upkeepBin, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &server{cmd: cmd, logs: &lockedBuffer{}, done: make(chan error, 1)}
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Bytes()
			s.logs.Write(append(append([]byte{}, line...), '\n'))
			var rec struct {
				Msg string `json:"msg"`
				URL string `json:"url"`
			}
			if json.Unmarshal(line, &rec) == nil && rec.URL != "" {
				select {
				case urls <- rec.URL:
				default:
				}
			}
		}
	}()
	go func() { s.done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-s.done
		if t.Failed() {
			t.Logf("upkeep serve log:\n%s", s.logs.String())
		}
	})
	select {
	case s.URL = <-urls:
	case err := <-s.done:
		s.done <- err
		t.Fatalf("upkeep serve exited: %v\n%s", err, s.logs.String())
	case <-time.After(20 * time.Second):
		t.Fatalf("upkeep serve did not start\n%s", s.logs.String())
	}
	return s
}

var client = &http.Client{Timeout: 5 * time.Second}

// get returns the status, body and response of GET url.
func get(t testing.TB, url string, header ...string) (int, string, *http.Response) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b), resp
}

// waitFor polls cond every 20 ms until it holds or the deadline passes, and
// returns how long it took.
func waitFor(t testing.TB, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > within {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}
