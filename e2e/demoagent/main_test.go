package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func get(t *testing.T, url string) (int, string, error) {
	t.Helper()
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	return resp.StatusCode, string(b), err
}

// start runs the agent as built with the given version and broken switch,
// on a free loopback port, and returns its base URL and its result.
func start(t *testing.T, ctx context.Context, v, brk string) (string, <-chan error) {
	t.Helper()
	oldV, oldB := version, broken
	version, broken = v, brk
	t.Cleanup(func() { version, broken = oldV, oldB })
	ready := make(chan string, 1)
	done := make(chan error, 1)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	go func() { done <- run(ctx, []string{"--listen", "127.0.0.1:0"}, log, ready) }()
	select {
	case addr := <-ready:
		return "http://" + addr, done
	case err := <-done:
		t.Fatalf("agent exited before listening: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("agent did not listen within 5s")
	}
	return "", nil
}

func TestAgent(t *testing.T) {
	t.Run("a healthy build reports its version on /healthz and /version and stops cleanly", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		url, done := start(t, ctx, "1.1.0", "false")
		if code, body, err := get(t, url+"/healthz"); err != nil || code != 200 || body != "ok 1.1.0\n" {
			t.Fatalf("/healthz = %d %q %v, want 200 \"ok 1.1.0\\n\"", code, body, err)
		}
		if code, body, err := get(t, url+"/version"); err != nil || code != 200 || body != "1.1.0\n" {
			t.Fatalf("/version = %d %q %v, want 200 \"1.1.0\\n\"", code, body, err)
		}
		time.Sleep(brokenAfter + 200*time.Millisecond) // a healthy build outlives a broken one
		if code, _, err := get(t, url+"/healthz"); err != nil || code != 200 {
			t.Fatalf("/healthz after %s = %d %v, want 200", brokenAfter, code, err)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("run after cancel = %v, want nil", err)
		}
	})

	t.Run("a broken build answers 500 and exits with an error after about a second", func(t *testing.T) {
		began := time.Now()
		url, done := start(t, context.Background(), "1.2.0", "true")
		if code, body, err := get(t, url+"/healthz"); err != nil || code != 500 || !strings.Contains(body, "1.2.0") {
			t.Fatalf("/healthz = %d %q %v, want 500 naming 1.2.0", code, body, err)
		}
		if code, body, _ := get(t, url+"/version"); code != 200 || body != "1.2.0\n" {
			t.Fatalf("/version = %d %q, want the version even when broken", code, body)
		}
		select {
		case err := <-done:
			if !errors.Is(err, errBroken) {
				t.Fatalf("run = %v, want errBroken", err)
			}
			if took := time.Since(began); took < brokenAfter/2 || took > 3*brokenAfter {
				t.Fatalf("broken build lived %s, want about %s", took, brokenAfter)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("broken build still running after 5s")
		}
		if _, _, err := get(t, url+"/healthz"); err == nil {
			t.Fatal("broken build still answers after exiting")
		}
	})

	t.Run("a taken port is an error that names the address and the way out", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		log := slog.New(slog.NewTextHandler(io.Discard, nil))
		err = run(context.Background(), []string{"--listen", ln.Addr().String()}, log, nil)
		if err == nil || !strings.Contains(err.Error(), ln.Addr().String()) || !strings.Contains(err.Error(), "--listen") {
			t.Fatalf("run on a taken port = %v", err)
		}
	})
}
