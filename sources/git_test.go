package sources

import (
	"context"
	"crypto/rand"
	"errors"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func readString(t testing.TB, fsys fs.FS, name string) string {
	t.Helper()
	b, err := fs.ReadFile(fsys, name)
	if err != nil {
		t.Fatalf("reading %s: %v", name, err)
	}
	return string(b)
}

func newTestGit(t testing.TB, o GitOptions) Source {
	t.Helper()
	if o.CacheDir == "" {
		o.CacheDir = t.TempDir()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	src, err := NewGit(o)
	if err != nil {
		t.Fatal(err)
	}
	return src
}

func fetch(t testing.TB, src Source) Revision {
	t.Helper()
	rev, err := src.Fetch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return rev
}

// forgetProcessCache drops this process's handle on a cache directory, as a
// restart would; the directory itself stays.
func forgetProcessCache(src Source) {
	g := src.(*gitSource)
	cachesMu.Lock()
	delete(caches, g.dir)
	cachesMu.Unlock()
}

// TestGitFollowsBranch runs one history over each transport: clone, a new
// commit, a force-push, an idle fetch, and a restart on the same cache.
func TestGitFollowsBranch(t *testing.T) {
	for _, transport := range []string{"file", "http"} {
		t.Run(transport, func(t *testing.T) {
			r := newRemoteRepo(t, "fleet.git")
			first := r.commit("first", map[string]string{"channels/stable.yaml": "version: 1.0.0\n"})
			r.push("main")
			url, log := "file://"+r.bare, &requestLog{}
			if transport == "http" {
				url = serveGit(t, r.root, log.wrap).URL + "/fleet.git"
			}
			cacheDir := t.TempDir()
			src := newTestGit(t, GitOptions{URL: url, Branch: "main", CacheDir: cacheDir})

			rev1 := fetch(t, src)
			if rev1.ID != first || rev1.ID != testGit(t, r.bare, "rev-parse", "main") {
				t.Fatalf("clone: ID %s, want git rev-parse main = %s", rev1.ID, first)
			}
			if got := readString(t, rev1.Files, "channels/stable.yaml"); got != "version: 1.0.0\n" {
				t.Fatalf("clone: content %q", got)
			}

			second := r.commit("second", map[string]string{"channels/stable.yaml": "version: 1.1.0\n", "groups/eu.yaml": "kind: Group\n"})
			r.push("main")
			rev2 := fetch(t, src)
			if rev2.ID != second {
				t.Fatalf("after a new commit: ID %s, want %s", rev2.ID, second)
			}
			if got := readString(t, rev2.Files, "channels/stable.yaml"); got != "version: 1.1.0\n" {
				t.Fatalf("after a new commit: content %q", got)
			}
			if got := readString(t, rev1.Files, "channels/stable.yaml"); got != "version: 1.0.0\n" {
				t.Fatalf("the earlier revision changed under its reader: %q", got)
			}

			// Rewrite history: drop "second", push a different commit over it.
			testGit(t, r.dir, "reset", "-q", "--hard", first)
			rewritten := r.commit("rewritten", map[string]string{"channels/stable.yaml": "version: 1.0.1\n"})
			r.push("main")
			rev3 := fetch(t, src)
			if rev3.ID != rewritten {
				t.Fatalf("after a force-push: ID %s, want %s", rev3.ID, rewritten)
			}
			if _, err := fs.Stat(rev3.Files, "groups/eu.yaml"); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("after a force-push: a file of the dropped commit is still there (%v)", err)
			}

			// Roll back to an older commit: no new objects, only the ref moves.
			testGit(t, r.dir, "reset", "-q", "--hard", first)
			r.push("main")
			if rev := fetch(t, src); rev.ID != first || readString(t, rev.Files, "channels/stable.yaml") != "version: 1.0.0\n" {
				t.Fatalf("after a push back to an older commit: ID %s, want %s", rev.ID, first)
			}
			testGit(t, r.dir, "reset", "-q", "--hard", rewritten)
			r.push("main")
			fetch(t, src)

			log.take()
			if rev := fetch(t, src); rev.ID != rewritten {
				t.Fatalf("idle fetch: ID %s, want %s", rev.ID, rewritten)
			}

			// A restart reuses the clone: nothing but the ref advertisement is
			// downloaded.
			forgetProcessCache(src)
			restarted := newTestGit(t, GitOptions{URL: url, Branch: "main", CacheDir: cacheDir})
			log.take()
			if rev := fetch(t, restarted); rev.ID != rewritten || readString(t, rev.Files, "channels/stable.yaml") != "version: 1.0.1\n" {
				t.Fatalf("after a restart: ID %s, want %s", rev.ID, rewritten)
			}
			if transport == "http" {
				if reqs := log.take(); slices.ContainsFunc(reqs, func(s string) bool { return strings.HasPrefix(s, "POST") }) {
					t.Fatalf("after a restart the clone was downloaded again: %v", reqs)
				}
			}
		})
	}
}

func TestGitDefaultBranch(t *testing.T) {
	r := newRemoteRepo(t, "fleet.git")
	r.commit("on main", map[string]string{"a.yaml": "main\n"})
	r.push("main")
	trunk := r.commit("on trunk", map[string]string{"a.yaml": "trunk\n"})
	r.push("trunk")
	testGit(t, r.bare, "symbolic-ref", "HEAD", "refs/heads/trunk")
	srv := serveGit(t, r.root, nil)

	src := newTestGit(t, GitOptions{URL: srv.URL + "/fleet.git"})
	rev := fetch(t, src)
	if rev.ID != trunk || readString(t, rev.Files, "a.yaml") != "trunk\n" {
		t.Fatalf("without a branch the remote's HEAD branch (trunk) must be followed; got %s", rev.ID)
	}
}

func TestGitErrors(t *testing.T) {
	r := newRemoteRepo(t, "fleet.git")
	r.commit("first", map[string]string{"a.yaml": "a\n"})
	r.push("main")
	srv := serveGit(t, r.root, nil)

	// A server that accepts connections and never answers.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	var held []net.Conn
	var heldMu sync.Mutex
	t.Cleanup(func() {
		silent.Close()
		heldMu.Lock()
		defer heldMu.Unlock()
		for _, c := range held {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			heldMu.Lock()
			held = append(held, c)
			heldMu.Unlock()
		}
	}()
	// A port nobody listens on.
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	closedURL := "http://" + closed.Addr().String() + "/fleet.git"
	closed.Close()

	big := make([]byte, 256<<10) // random, so it does not compress
	rand.Read(big)
	large := newRemoteRepo(t, "large.git")
	large.commit("large", map[string]string{"blob.bin": string(big)})
	large.push("main")
	largeSrv := serveGit(t, large.root, nil)

	redirecting := serveGit(t, r.root, func(http.Handler) http.Handler {
		return http.RedirectHandler("http://upkeep.invalid/fleet.git/info/refs?service=git-upload-pack", http.StatusFound)
	})

	tests := []struct {
		scenario string
		o        GitOptions
		want     string
		within   time.Duration
	}{
		{"an unknown branch is named in the error",
			GitOptions{URL: srv.URL + "/fleet.git", Branch: "nope"}, `branch "nope" not found on the remote`, 10 * time.Second},
		{"an unknown repository says to check the URL",
			GitOptions{URL: srv.URL + "/missing.git", Branch: "main"}, "check the URL", 10 * time.Second},
		{"a server that never answers fails within the timeout",
			GitOptions{URL: "http://" + silent.Addr().String() + "/fleet.git", Branch: "main", Timeout: 300 * time.Millisecond}, "no answer within 300ms", 2 * time.Second},
		{"a refused connection fails at once",
			GitOptions{URL: closedURL, Branch: "main"}, "connection refused", 5 * time.Second},
		{"a missing local repository is reported",
			GitOptions{URL: filepath.Join(t.TempDir(), "nothing.git"), Branch: "main"}, "nothing.git", 10 * time.Second},
		{"a fetch above MaxFetchBytes is stopped",
			GitOptions{URL: largeSrv.URL + "/large.git", Branch: "main", MaxFetchBytes: 64 << 10}, "more than 65536 bytes", 10 * time.Second},
		{"a redirect to plain http off the machine is refused",
			GitOptions{URL: redirecting.URL + "/fleet.git", Branch: "main"}, "refusing plain http:// to upkeep.invalid", 10 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			src := newTestGit(t, tt.o)
			start := time.Now()
			_, err := src.Fetch(context.Background())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
			t.Logf("error: %v", err)
			if took := time.Since(start); took > tt.within {
				t.Fatalf("took %s, want under %s", took, tt.within)
			}
		})
	}
}

func TestGitTokenAuth(t *testing.T) {
	r := newRemoteRepo(t, "private.git")
	head := r.commit("first", map[string]string{"a.yaml": "a\n"})
	r.push("main")
	const token = "ghs_secretToken123"
	var mu sync.Mutex
	var seen []string
	srv := serveGit(t, r.root, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			user, pass, ok := req.BasicAuth()
			mu.Lock()
			seen = append(seen, user+":"+pass)
			mu.Unlock()
			if !ok || user != "x-access-token" || pass != token {
				w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
				http.Error(w, "bad credentials", http.StatusUnauthorized)
				return
			}
			next.ServeHTTP(w, req)
		})
	})
	tokenFile := filepath.Join(t.TempDir(), "token")
	must(t, os.WriteFile(tokenFile, []byte(token+"\n"), 0o600))

	src := newTestGit(t, GitOptions{URL: srv.URL + "/private.git", Branch: "main", TokenFile: tokenFile})
	if rev := fetch(t, src); rev.ID != head {
		t.Fatalf("ID %s, want %s", rev.ID, head)
	}
	mu.Lock()
	if len(seen) == 0 || seen[0] != "x-access-token:"+token {
		t.Fatalf("server saw credentials %q, want the token as basic auth", seen)
	}
	mu.Unlock()

	// The file is read at each fetch: a rotated (here: revoked) token is used
	// at once, and the error names the file, not the token.
	const wrong = "ghs_revokedToken456"
	must(t, os.WriteFile(tokenFile, []byte(wrong), 0o600))
	r.commit("second", nil)
	r.push("main")
	_, err := src.Fetch(context.Background())
	if err == nil || !strings.Contains(err.Error(), tokenFile) {
		t.Fatalf("got %v, want an authentication error naming %s", err, tokenFile)
	}
	if strings.Contains(err.Error(), wrong) || strings.Contains(err.Error(), token) {
		t.Fatalf("the error leaks the token: %v", err)
	}
	t.Logf("error: %v", err)

	noToken := newTestGit(t, GitOptions{URL: srv.URL + "/private.git", Branch: "main"})
	if _, err := noToken.Fetch(context.Background()); err == nil || !strings.Contains(err.Error(), "set TokenFile") {
		t.Fatalf("without a token: got %v, want a hint to set TokenFile", err)
	}
}

// TestGitConcurrentUse reads revisions while fetches run (run with -race).
func TestGitConcurrentUse(t *testing.T) {
	r := newRemoteRepo(t, "fleet.git")
	r.commit("first", map[string]string{"a.yaml": "0\n"})
	r.push("main")
	srv := serveGit(t, r.root, nil)
	src := newTestGit(t, GitOptions{URL: srv.URL + "/fleet.git", Branch: "main"})
	old := fetch(t, src)

	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 3 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if got := readString(t, old.Files, "a.yaml"); got != "0\n" {
					t.Errorf("old revision changed: %q", got)
					return
				}
			}
		})
	}
	for i := 1; i <= 5; i++ {
		want := r.commit("next", map[string]string{"a.yaml": strings.Repeat("x", i) + "\n"})
		r.push("main")
		var revs [2]Revision
		var fetchers sync.WaitGroup
		for j := range revs {
			fetchers.Go(func() { revs[j] = fetch(t, src) })
		}
		fetchers.Wait()
		for _, rev := range revs {
			if rev.ID != want {
				t.Fatalf("concurrent fetch: ID %s, want %s", rev.ID, want)
			}
			readString(t, rev.Files, "a.yaml")
		}
	}
	close(stop)
	wg.Wait()
}
