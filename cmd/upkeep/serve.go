package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"

	"upkeep.dev/upkeep/reconcile"
	"upkeep.dev/upkeep/reconcile/fleet"
	"upkeep.dev/upkeep/reconcile/fleet/sqlstore"
	"upkeep.dev/upkeep/reconcile/report"
	"upkeep.dev/upkeep/reconcile/rollout"
	"upkeep.dev/upkeep/reconcile/server"
	"upkeep.dev/upkeep/reconcile/webui"
	"upkeep.dev/upkeep/sources"
	"upkeep.dev/upkeep/sources/netpolicy"
	"upkeep.dev/upkeep/spec"
)

type serveFlags struct {
	source, branch, listen        string
	interval, fetchTimeout        time.Duration
	tlsCert, tlsKey               string
	tokenFile, sshKeyFile         string
	knownHosts, webhookSecretFile string
	reportTokenFile               string
	cacheDir                      string
	store, stateDir               string
	staleAfter                    time.Duration
	history                       int
	allowPlainHTTP                bool
	ui, uiOperate                 bool
	logFormat, logLevel           string
	load                          spec.Options
}

func newServeCmd() *cobra.Command {
	var f serveFlags
	cmd := &cobra.Command{
		Use:   "serve --source DIR|URL",
		Short: "Serve a fleet repository as a version server (Teleport protocol and JSON)",
		Long: `serve pulls the fleet repository on an interval (or at once when the Git
webhook fires), validates every revision, and serves the newest valid one.
An invalid revision is never served: the last good one stays, and the
failure shows in /status, the metrics and the log.`,
		RunE: func(cmd *cobra.Command, _ []string) error { return runServe(cmd.Context(), f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.source, "source", "", "fleet repository: a folder, or a Git URL (https://, ssh://, git@host:path, file://)")
	fl.StringVar(&f.branch, "branch", "", "Git branch to serve (default: the remote's default branch)")
	fl.DurationVar(&f.interval, "interval", 30*time.Second, "how often to pull the source")
	fl.DurationVar(&f.fetchTimeout, "fetch-timeout", 60*time.Second, "time limit for one pull of the source")
	fl.StringVar(&f.listen, "listen", "127.0.0.1:8080", "address to listen on")
	fl.StringVar(&f.tlsCert, "tls-cert", "", "TLS certificate file (PEM); required to listen beyond loopback")
	fl.StringVar(&f.tlsKey, "tls-key", "", "TLS private key file (PEM)")
	fl.BoolVar(&f.allowPlainHTTP, "allow-plain-http", false, "serve plain HTTP beyond loopback (only behind a TLS-terminating proxy)")
	fl.StringVar(&f.tokenFile, "token-file", "", "file holding the HTTPS Git token")
	fl.StringVar(&f.sshKeyFile, "ssh-key-file", "", "file holding the SSH private key for ssh:// sources")
	fl.StringVar(&f.knownHosts, "known-hosts", "", "known_hosts file for ssh:// sources")
	fl.StringVar(&f.webhookSecretFile, "webhook-secret-file", "", "file holding the secret of POST /v1/hooks/git (GitHub X-Hub-Signature-256); unset disables the hook")
	fl.StringVar(&f.reportTokenFile, "report-token-file", "", "file of bearer tokens, one per line ('#' comments), that updaters send to POST /v1/reports and operators to GET /v1/fleet; re-read on SIGHUP and every 30s (a file that fails to load keeps the tokens before); unset disables both")
	fl.StringVar(&f.cacheDir, "cache-dir", defaultCacheDir(), "where Git sources are cloned")
	fl.StringVar(&f.store, "store", "", "the fleet store every replica shares: sqlite:///path/fleet.db, or postgres://user@host/db?sslmode=verify-full for many replicas (put the password in PGPASSWORD or ~/.pgpass; one in the URL is never logged); default sqlite://<state-dir>/fleet.db")
	fl.StringVar(&f.stateDir, "state-dir", defaultStateDir(), "where the default SQLite fleet store lives")
	fl.DurationVar(&f.staleAfter, "stale-after", report.DefaultStaleAfter, "an agent not heard from for this long is shown stale (kept, never deleted)")
	fl.IntVar(&f.history, "history", fleet.DefaultHistoryPerAgent, "how many past reports the store keeps per agent")
	fl.BoolVar(&f.ui, "ui", true, "serve the fleet page at /ui/ (needs --report-token-file: it signs in with those tokens)")
	fl.BoolVar(&f.uiOperate, "ui-operate", false, "show halt and resume buttons on the fleet page's rollouts (the same step as POST /v1/rollouts/<channel>/halt|resume); read-only without")
	fl.IntVar(&f.load.MaxRepositoryBytes, "max-repository-bytes", spec.MaxRepositorySize, "limit repository-bytes: the most bytes of YAML the fleet repository may hold; a load costs time and memory in proportion (at worst some 1.7 s of CPU and 50 MB per MiB), so raise it knowingly; 0 means the default")
	fl.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	fl.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	return cmd
}

func runServe(ctx context.Context, f serveFlags) error {
	server.SetHeapFloor(server.DefaultHeapFloor) // fewer collections under load; see its doc
	log, err := newLogger(f.logFormat, f.logLevel)
	if err != nil {
		return err
	}
	if f.source == "" {
		return usageError{errors.New("--source is required: a folder or a Git URL")}
	}
	if f.interval < time.Second {
		return usageError{fmt.Errorf("--interval %s is too short: use 1s or more", f.interval)}
	}
	if (f.tlsCert == "") != (f.tlsKey == "") {
		return usageError{errors.New("--tls-cert and --tls-key go together")}
	}
	if f.tlsCert == "" && !f.allowPlainHTTP && !isLoopback(f.listen) {
		return usageError{fmt.Errorf("--listen %s is beyond loopback: give --tls-cert and --tls-key, or --allow-plain-http behind a TLS-terminating proxy", f.listen)}
	}
	var secret []byte
	if f.webhookSecretFile != "" {
		if secret, err = readSecretFile(f.webhookSecretFile); err != nil {
			return fmt.Errorf("--webhook-secret-file: %w", err)
		}
	}
	var reportTokens *report.Tokens
	if f.reportTokenFile != "" {
		if reportTokens, err = report.LoadTokens(f.reportTokenFile); err != nil {
			return fmt.Errorf("--report-token-file: %w", err)
		}
	}
	if f.uiOperate && (!f.ui || reportTokens == nil) {
		return usageError{errors.New("--ui-operate needs the fleet page: --ui and --report-token-file")}
	}
	if f.staleAfter < time.Minute {
		return usageError{fmt.Errorf("--stale-after %s is too short: updaters report every pass, minutes apart; use 1m or more", f.staleAfter)}
	}
	if f.history < 1 || f.history > 1000 {
		return usageError{fmt.Errorf("--history %d: keep 1 to 1000 reports per agent", f.history)}
	}
	storeURL, err := storeURL(f)
	if err != nil {
		return err
	}
	src, err := newSource(f)
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, os.Interrupt)
	defer stop()

	openCtx, cancelOpen := context.WithTimeout(ctx, 60*time.Second)
	store, err := sqlstore.Open(openCtx, storeURL, fleet.Options{StaleAfter: f.staleAfter, HistoryPerAgent: f.history})
	cancelOpen()
	if err != nil {
		return fmt.Errorf("--store: %w", err) // Open's errors never carry the password
	}
	defer store.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	rec := reconcile.New(src, reconcile.Options{Logger: log, Registerer: reg, Load: f.load.Load})
	desired := desiredSource(rec)
	engine, err := rollout.NewEngine(store, rollout.Options{Source: desired, Registerer: reg, Logger: log})
	if err != nil {
		return err
	}
	cache, err := rollout.NewCache(store, rollout.CacheOptions{Source: desired, Registerer: reg, Logger: log})
	if err != nil {
		return err
	}
	handler := server.New(rec, server.Options{WebhookSecret: secret, Registerer: reg, Logger: log, ReportTokens: reportTokens,
		Store: store, Answers: cache.Answers})
	root := handler
	if f.ui && reportTokens != nil {
		page, err := webui.New(webui.Options{Backend: rec, Store: store, Tokens: reportTokens, Answers: cache.Answers,
			Operate: f.uiOperate, API: handler, SecureCookie: f.tlsCert != "" || !isLoopback(f.listen), Logger: log})
		if err != nil {
			return err
		}
		root = withPage(page, handler)
	} else if f.ui {
		log.Info("the fleet page /ui/ is off: it signs in with the fleet API's tokens; give --report-token-file")
	}
	srv := server.NewHTTPServer(f.listen, root)

	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		return err
	}
	served := make(chan error, 1)
	go func() {
		if f.tlsCert != "" {
			served <- srv.ServeTLS(ln, f.tlsCert, f.tlsKey)
		} else {
			served <- srv.Serve(ln)
		}
	}()
	scheme := "http"
	if f.tlsCert != "" {
		scheme = "https"
	}
	log.Info("upkeep serve started", "version", buildVersion(), "source", src.String(),
		"url", scheme+"://"+ln.Addr().String(), "interval", f.interval, "webhook", secret != nil, "reports", reportTokens != nil,
		"ui", f.ui && reportTokens != nil, "uiOperate", f.uiOperate,
		"store", store.URL(), "storeEngine", store.Engine(), "holder", engine.Holder())

	// The sync loop, the rollout engine (every replica runs it; only the
	// store's leader steps) and the answer cache stop together.
	syncCtx, stopSync := context.WithCancel(ctx)
	synced := make(chan struct{})
	var loops sync.WaitGroup
	loops.Go(func() { rec.Run(syncCtx, f.interval) })
	loops.Go(func() { _ = engine.Run(syncCtx) })
	loops.Go(func() { _ = cache.Run(syncCtx) })
	if reportTokens != nil {
		// Rotating a token needs no restart: the file is re-read on SIGHUP
		// and every 30 s; one that fails to load keeps the tokens before.
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
		loops.Go(func() { reportTokens.Watch(syncCtx, report.TokenReloadInterval, hup, log) })
	}
	go func() {
		loops.Wait()
		close(synced)
	}()
	defer func() {
		// Hand the leader lease over at once rather than after its TTL.
		rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := engine.Resign(rctx); err != nil {
			log.Warn("could not give the rollout leader lease up; another replica takes it when it expires", "error", err)
		}
	}()

	select {
	case err = <-served:
		stopSync()
		<-synced
		return fmt.Errorf("listening on %s: %w", f.listen, err)
	case <-ctx.Done():
	}
	log.Info("stopping: draining connections")
	stopSync()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = srv.Shutdown(shutdownCtx)
	<-synced
	if err != nil {
		return fmt.Errorf("graceful stop: %w", err)
	}
	log.Info("stopped")
	return nil
}

// withPage sends /ui and /ui/… to the fleet page, the rest to the
// version server; no channel route starts with /ui.
func withPage(page, api http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := r.URL.Path; p == "/ui" || strings.HasPrefix(p, webui.Prefix) {
			page.ServeHTTP(w, r)
			return
		}
		api.ServeHTTP(w, r)
	})
}

func newSource(f serveFlags) (reconcile.Source, error) {
	if !isGitURL(f.source) {
		st, err := os.Stat(f.source)
		if err != nil {
			return nil, fmt.Errorf("--source %s: %w", f.source, err)
		}
		if !st.IsDir() {
			return nil, fmt.Errorf("--source %s is not a folder or a Git URL", f.source)
		}
		return sources.NewFolder(f.source), nil
	}
	return sources.NewGit(sources.GitOptions{
		URL:            f.source,
		Branch:         f.branch,
		CacheDir:       f.cacheDir,
		TokenFile:      f.tokenFile,
		SSHKeyFile:     f.sshKeyFile,
		KnownHostsFile: f.knownHosts,
		Timeout:        f.fetchTimeout,
	})
}

func isGitURL(s string) bool {
	if strings.Contains(s, "://") {
		return true
	}
	// scp-like syntax: user@host:path
	at, colon := strings.Index(s, "@"), strings.Index(s, ":")
	return at > 0 && colon > at
}

// isLoopback reports whether a listen address only accepts local connections.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	return err == nil && netpolicy.IsLoopback(host)
}

// readSecretFile reads a small secret, bounded so a wrong path (a log, a
// device) cannot exhaust memory.
func readSecretFile(path string) ([]byte, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	const limit = 64 << 10
	b, err := io.ReadAll(io.LimitReader(fh, limit+1))
	if err != nil {
		return nil, err
	}
	if len(b) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes: is it the right file?", path, limit)
	}
	b = []byte(strings.TrimSpace(string(b)))
	if len(b) == 0 {
		return nil, fmt.Errorf("%s is empty", path)
	}
	return b, nil
}

func defaultCacheDir() string {
	if d := os.Getenv("STATE_DIRECTORY"); d != "" { // systemd StateDirectory=
		return filepath.Join(strings.Split(d, ":")[0], "git")
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "upkeep", "git")
	}
	return filepath.Join(os.TempDir(), "upkeep-git")
}

// storeURL is --store, or the SQLite file in --state-dir.
func storeURL(f serveFlags) (string, error) {
	if f.store != "" {
		return f.store, nil
	}
	if f.stateDir == "" {
		return "", usageError{errors.New("--state-dir is empty: name a folder for the fleet store, or give --store")}
	}
	dir, err := filepath.Abs(f.stateDir)
	if err != nil {
		return "", fmt.Errorf("--state-dir %s: %w", f.stateDir, err)
	}
	return "sqlite://" + filepath.Join(dir, "fleet.db"), nil
}

// defaultStateDir is systemd's StateDirectory= when set, /var/lib/upkeep
// for root, else the user's state folder, so `make run` needs no privilege.
func defaultStateDir() string {
	if d := os.Getenv("STATE_DIRECTORY"); d != "" {
		return strings.Split(d, ":")[0]
	}
	if os.Geteuid() == 0 {
		return "/var/lib/upkeep"
	}
	if d := os.Getenv("XDG_STATE_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "upkeep")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "state", "upkeep")
	}
	return filepath.Join(os.TempDir(), "upkeep-state")
}

// desiredSource is the rollout engine's and cache's view of the served
// snapshot, rebuilt only when the snapshot changes.
func desiredSource(rec *reconcile.Reconciler) rollout.Source {
	var mu sync.Mutex
	var last *reconcile.Snapshot
	var ds []rollout.Desired
	return func() []rollout.Desired {
		s := rec.Snapshot()
		if s == nil {
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		if s != last {
			last = s
			ds = rollout.DesiredFrom(s.State, s.Revision, func(channel string) string {
				if c := s.Channel(channel); c != nil {
					return c.Version
				}
				return ""
			})
		}
		return ds
	}
}
