// Command demo-agent is the stand-in agent that upkeep's end-to-end tests
// update: a tiny HTTP server on a loopback port that reports its version.
// Its version and whether it is broken are set when it is built:
//
//	go build -ldflags "-X main.version=1.1.0" ./e2e/demoagent
//	go build -ldflags "-X main.version=1.2.0 -X main.broken=true" ./e2e/demoagent
//
// A broken build answers 500 on /healthz and exits 1 about a second after
// it starts, so both an HTTP health check and systemd (ActiveState, NRestarts
// under Restart=on-failure) see it fail.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// Set at build time with -ldflags -X.
var (
	version = "0.0.0-dev"
	broken  = "false" // "true": fail health and exit 1 after brokenAfter
)

// brokenAfter is how long a broken build lives: long enough for systemd to
// count the start as successful, short enough that Restart=on-failure loops.
const brokenAfter = time.Second

// defaultListen is used when neither --listen nor DEMO_AGENT_LISTEN is set.
const defaultListen = "127.0.0.1:9800"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(ctx, os.Args[1:], log, nil); err != nil {
		log.Error("demo-agent stopped", "version", version, "err", err)
		os.Exit(1)
	}
}

// errBroken is how a broken build ends.
var errBroken = errors.New("this build is broken on purpose (built with -X main.broken=true)")

// run serves until ctx ends (nil) or a broken build's time is up
// (errBroken). ready, when not nil, receives the listening address.
func run(ctx context.Context, args []string, log *slog.Logger, ready chan<- string) error {
	fs := flag.NewFlagSet("demo-agent", flag.ContinueOnError)
	listen := fs.String("listen", envOr("DEMO_AGENT_LISTEN", defaultListen), "address to listen on (env DEMO_AGENT_LISTEN)")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *showVersion {
		fmt.Println(version)
		return nil
	}
	isBroken := broken == "true"

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (set --listen or DEMO_AGENT_LISTEN to a free address)", *listen, err)
	}
	srv := &http.Server{Handler: handler(version, isBroken), ReadHeaderTimeout: 5 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info("demo-agent listening", "version", version, "addr", ln.Addr().String(), "broken", isBroken)
	if ready != nil {
		ready <- ln.Addr().String()
	}

	var dying <-chan time.Time
	if isBroken {
		dying = time.After(brokenAfter)
	}
	var result error
	select {
	case <-ctx.Done():
	case <-dying:
		result = errBroken
	case err := <-served:
		return err
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdownCtx)
	return result
}

// handler answers /healthz (200 "ok VERSION", or 500 when broken) and
// /version ("VERSION").
func handler(version string, broken bool) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		if broken {
			w.WriteHeader(http.StatusInternalServerError)
			io.WriteString(w, "broken "+version+"\n")
			return
		}
		io.WriteString(w, "ok "+version+"\n")
	})
	mux.HandleFunc("GET /version", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		io.WriteString(w, version+"\n")
	})
	return mux
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
