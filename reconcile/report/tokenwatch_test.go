package report_test

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is a log sink the watcher and the test share.
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

func TestWatchReloadsOnItsOwnAndLogsABrokenFileOnce(t *testing.T) {
	tok, path := loadedTokenA(t)
	var logs lockedBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tok.Watch(ctx, 5*time.Millisecond, nil, slog.New(slog.NewTextHandler(&logs, nil)))
	}()
	defer func() { cancel(); <-done }()

	eventually := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 5s; log:\n%s", what, logs.String())
			}
		}
	}
	// Replaced by rename, as a Secret's volume and a careful operator do:
	// a file written in place can be read half written.
	replace := func(content string) {
		t.Helper()
		if err := os.WriteFile(path+".new", []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(path+".new", path); err != nil {
			t.Fatal(err)
		}
	}
	replace(tokenB + "\n")
	eventually("the new token accepted without a signal", func() bool { return tok.Match(tokenB) && !tok.Match(tokenA) })

	replace("short\n")
	eventually("the broken file logged", func() bool { return strings.Contains(logs.String(), "could not reload") })
	time.Sleep(50 * time.Millisecond) // about 10 more ticks on the same broken file
	if n := strings.Count(logs.String(), "could not reload"); n != 1 {
		t.Errorf("the same broken file logged %d times, want once:\n%s", n, logs.String())
	}
	if !tok.Match(tokenB) {
		t.Error("a broken file dropped the token in use")
	}

	replace(tokenB + "\n")
	eventually("the repaired file logged", func() bool { return strings.Contains(logs.String(), "reads again") })
}
