package sources

import (
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// testGit runs the real git CLI with a fixed identity and without the
// user's or the system's configuration.
func testGit(t testing.TB, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"GIT_AUTHOR_NAME=Upkeep Test", "GIT_AUTHOR_EMAIL=test@upkeep.invalid",
		"GIT_COMMITTER_NAME=Upkeep Test", "GIT_COMMITTER_EMAIL=test@upkeep.invalid",
		"GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1", "GIT_TERMINAL_PROMPT=0",
	)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// workRepo is a non-bare repository the test commits to.
type workRepo struct {
	t   testing.TB
	dir string
}

func newWorkRepo(t testing.TB) *workRepo {
	t.Helper()
	dir := t.TempDir()
	testGit(t, dir, "-c", "init.defaultBranch=main", "init", "-q")
	return &workRepo{t: t, dir: dir}
}

// commit writes files ("" content deletes), commits them and returns the hash.
func (r *workRepo) commit(msg string, files map[string]string) string {
	r.t.Helper()
	for name, content := range files {
		p := filepath.Join(r.dir, filepath.FromSlash(name))
		if content == "" {
			os.Remove(p)
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			r.t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			r.t.Fatal(err)
		}
	}
	testGit(r.t, r.dir, "add", "-A")
	testGit(r.t, r.dir, "commit", "-q", "--allow-empty", "-m", msg)
	return testGit(r.t, r.dir, "rev-parse", "HEAD")
}

// remoteRepo is a bare repository under root (the project root a server
// exports) fed by a work repository.
type remoteRepo struct {
	*workRepo
	root, bare string
}

func newRemoteRepo(t testing.TB, name string) *remoteRepo {
	t.Helper()
	root := t.TempDir()
	bare := filepath.Join(root, name)
	testGit(t, root, "-c", "init.defaultBranch=main", "init", "-q", "--bare", bare)
	w := newWorkRepo(t)
	testGit(t, w.dir, "remote", "add", "origin", bare)
	return &remoteRepo{workRepo: w, root: root, bare: bare}
}

// push pushes the work repository's HEAD to branch, forced.
func (r *remoteRepo) push(branch string) {
	r.t.Helper()
	testGit(r.t, r.dir, "push", "-q", "--force", "origin", "HEAD:refs/heads/"+branch)
}

// serveGit serves the bare repositories under root with git http-backend
// (the smart HTTP protocol) on 127.0.0.1. wrap may inspect or refuse
// requests. It returns the server's URL.
func serveGit(t testing.TB, root string, wrap func(http.Handler) http.Handler) *httptest.Server {
	t.Helper()
	gitBin, err := exec.LookPath("git")
	if err != nil {
		t.Skip("git not installed")
	}
	var h http.Handler = &cgi.Handler{
		Path: gitBin,
		Args: []string{"http-backend"},
		Env:  []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1", "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null"},
	}
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// requestLog records the requests a server sees.
type requestLog struct {
	mu   sync.Mutex
	reqs []string // "METHOD /path"
}

func (l *requestLog) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.mu.Lock()
		l.reqs = append(l.reqs, r.Method+" "+r.URL.Path)
		l.mu.Unlock()
		next.ServeHTTP(w, r)
	})
}

func (l *requestLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.reqs
	l.reqs = nil
	return r
}
