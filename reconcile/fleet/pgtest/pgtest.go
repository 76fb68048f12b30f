// Package pgtest starts real PostgreSQL servers for tests: initdb into a
// temporary directory, postgres on a free loopback port (and a unix socket
// in a directory of its own), a fresh database, a fast shutdown at the end.
// As root it runs both as the unprivileged user nobody, since PostgreSQL
// refuses to run as root. Tests skip when the binaries are missing, and
// fail under CI=true, naming the Debian package to install.
//
// Start gives a test a server of its own; Shared gives it a fresh database
// on one server per test process (initdb costs seconds; a database,
// milliseconds), stopped by Main.
package pgtest

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	neturl "net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx"
)

// Package is the Debian package that provides initdb and postgres.
const Package = "postgresql"

// startTimeout bounds initdb plus the server's start on a loaded machine.
const startTimeout = 60 * time.Second

// Server is a running PostgreSQL server.
type Server struct {
	dir     string // data directory
	sockDir string
	port    int
	cmd     *exec.Cmd
	done    chan struct{} // closed when the server exits
	log     *os.File
	dbs     atomic.Int64
	stopped sync.Once
}

// Start starts a server of the test's own, stopped when the test ends, and
// returns the URL of a fresh database on it.
func Start(t testing.TB) string {
	t.Helper()
	bin := binDir(t)
	srv, err := start(bin, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	url, err := srv.NewDatabase(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return url
}

var shared struct {
	mu   sync.Mutex
	srv  *Server
	dir  string
	err  error
	used bool
}

// Shared returns the URL of a fresh database on the test process's shared
// server, starting it on first use; the database is dropped when the test
// ends. Call Main from TestMain so the server stops when the tests do.
func Shared(t testing.TB) string {
	t.Helper()
	bin := binDir(t)
	shared.mu.Lock()
	if shared.srv == nil && shared.err == nil {
		shared.dir, shared.err = os.MkdirTemp("", "pgtest-")
		if shared.err == nil {
			shared.srv, shared.err = start(bin, shared.dir)
		}
	}
	srv, err := shared.srv, shared.err
	shared.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	url, err := srv.NewDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.DropDatabase(ctx, url); err != nil {
			t.Error(err)
		}
	})
	return url
}

// Main runs the tests and stops the shared server, if they started it:
// func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }.
func Main(m *testing.M) int {
	code := m.Run()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.srv != nil {
		shared.srv.Stop()
		os.RemoveAll(shared.dir)
	}
	return code
}

// binDir finds initdb and postgres: on PATH, in `pg_config --bindir`, or in
// Debian's /usr/lib/postgresql/<major>/bin. Missing, it skips the test, or
// fails it under CI.
func binDir(t testing.TB) string {
	t.Helper()
	if dir, err := findBinDir(); err == nil {
		return dir
	}
	msg := fmt.Sprintf("PostgreSQL's initdb and postgres are not installed: apt-get install %s (Debian 12 puts them in /usr/lib/postgresql/15/bin), or put them on PATH", Package)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + "; CI must run the PostgreSQL tests (e2e/hostdeps/debian-packages.txt lists the package)")
	}
	t.Skip(msg)
	return ""
}

func findBinDir() (string, error) {
	has := func(dir string) bool {
		for _, name := range []string{"initdb", "postgres"} {
			if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
				return false
			}
		}
		return true
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if q, err := exec.LookPath("postgres"); err == nil {
			// Debian links them into /usr/local/bin; use the real directory.
			p, _ = filepath.EvalSymlinks(p)
			q, _ = filepath.EvalSymlinks(q)
			if filepath.Dir(p) == filepath.Dir(q) {
				return filepath.Dir(p), nil
			}
		}
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		if dir := strings.TrimSpace(string(out)); has(dir) {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int { return major(b) - major(a) })
	for _, dir := range dirs {
		if has(dir) {
			return dir, nil
		}
	}
	return "", errors.New("initdb and postgres not found")
}

func major(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

// credential is who runs initdb and postgres: nobody when we are root
// (PostgreSQL refuses root), else ourselves (nil).
func credential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("nobody")
	if err != nil {
		return nil, fmt.Errorf("running as root, PostgreSQL needs an unprivileged user: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: false, Groups: []uint32{}}, nil
}

// start runs initdb in dir/data and starts postgres on it.
func start(bin, dir string) (*Server, error) {
	cred, err := credential()
	if err != nil {
		return nil, err
	}
	// A short socket directory: a unix socket's path is limited to 107 bytes.
	sockDir, err := os.MkdirTemp("", "pgs-")
	if err != nil {
		return nil, err
	}
	s := &Server{dir: filepath.Join(dir, "data"), sockDir: sockDir, done: make(chan struct{})}
	if err := os.Mkdir(s.dir, 0o700); err != nil {
		return nil, err
	}
	if cred != nil {
		// nobody must reach the data directory through the test's own
		// temporary directories (0700, root's) and own it and the sockets.
		for d := dir; d != "/" && d != filepath.Clean(os.TempDir()); d = filepath.Dir(d) {
			if fi, err := os.Stat(d); err == nil && fi.Mode().Perm()&0o001 == 0 {
				if err := os.Chmod(d, fi.Mode().Perm()|0o011); err != nil {
					return nil, err
				}
			}
		}
		for _, d := range []string{s.dir, sockDir} {
			if err := os.Chown(d, int(cred.Uid), int(cred.Gid)); err != nil {
				return nil, err
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	initdb := exec.CommandContext(ctx, filepath.Join(bin, "initdb"), "-D", s.dir, "-U", "postgres", "-A", "trust",
		"-E", "UTF8", "--locale=C", "--no-sync")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	initdb.Dir = s.dir
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb %s: %w\n%s", s.dir, err, out)
	}

	// A free port can be taken between our probe and postgres's bind:
	// try a few.
	var lastErr error
	for range 5 {
		if s.port, err = freePort(); err != nil {
			return nil, err
		}
		if lastErr = s.run(ctx, bin, cred); lastErr == nil {
			return s, nil
		}
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

// run starts postgres and waits until it accepts connections.
func (s *Server) run(ctx context.Context, bin string, cred *syscall.Credential) error {
	logPath := filepath.Join(filepath.Dir(s.dir), fmt.Sprintf("postgres-%d.log", s.port))
	log, err := os.Create(logPath)
	if err != nil {
		return err
	}
	s.log = log
	cmd := exec.Command(filepath.Join(bin, "postgres"), "-D", s.dir, "-p", strconv.Itoa(s.port),
		"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="+s.sockDir,
		"-c", "max_connections=200", "-c", "logging_collector=off")
	cmd.Stdout, cmd.Stderr = log, log
	// Pdeathsig: a test binary that dies without cleaning up does not leave
	// a server behind (SIGQUIT: immediate shutdown).
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGQUIT}
	if err := cmd.Start(); err != nil {
		log.Close()
		return fmt.Errorf("start postgres: %w", err)
	}
	s.cmd = cmd
	s.done = make(chan struct{})
	go func() { cmd.Wait(); close(s.done) }()

	db, err := sql.Open("pgx", s.url("postgres"))
	if err != nil {
		return err
	}
	defer db.Close()
	for {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := db.PingContext(pctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-s.done:
			out, _ := os.ReadFile(logPath)
			return fmt.Errorf("postgres exited at start (%v):\n%s", cmd.ProcessState, tail(out))
		case <-ctx.Done():
			s.Stop()
			out, _ := os.ReadFile(logPath)
			return fmt.Errorf("postgres did not accept connections within %s: %v\n%s", startTimeout, err, tail(out))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func tail(b []byte) []byte {
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return bytes.TrimSpace(b)
}

func (s *Server) url(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.port, db)
}

// Port is the server's TCP port on 127.0.0.1.
func (s *Server) Port() int { return s.port }

// NewDatabase creates a database of its own and returns its URL.
func (s *Server) NewDatabase(ctx context.Context) (string, error) {
	name := fmt.Sprintf("test_%d", s.dbs.Add(1))
	db, err := sql.Open("pgx", s.url("postgres"))
	if err != nil {
		return "", err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	return s.url(name), nil
}

// DropDatabase drops the database of url, closing its connections.
func (s *Server) DropDatabase(ctx context.Context, url string) error {
	u, err := neturl.Parse(url)
	if err != nil {
		return err
	}
	name := strings.TrimPrefix(u.Path, "/")
	db, err := sql.Open("pgx", s.url("postgres"))
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	return nil
}

// Stop shuts the server down fast (SIGINT: abort sessions, checkpoint),
// killing it if that takes over ten seconds.
func (s *Server) Stop() {
	s.stopped.Do(func() {
		if s.cmd != nil && s.cmd.Process != nil {
			s.cmd.Process.Signal(syscall.SIGINT)
			select {
			case <-s.done:
			case <-time.After(10 * time.Second):
				s.cmd.Process.Kill()
				<-s.done
			}
		}
		if s.log != nil {
			s.log.Close()
		}
		os.RemoveAll(s.sockDir)
	})
}
