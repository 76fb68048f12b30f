package report_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"upkeep.dev/upkeep/reconcile/report"
)

func tokenFile(t testing.TB, token string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "report-token")
	if err := os.WriteFile(p, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// recorder is a real HTTP server on 127.0.0.1 that keeps what it was sent
// and answers with reply.
type recorder struct {
	*httptest.Server
	mu       sync.Mutex
	paths    []string
	auth     []string
	bodies   [][]byte
	ctypes   []string
	replyFor func(w http.ResponseWriter, r *http.Request)
}

func newRecorder(t testing.TB, reply func(w http.ResponseWriter, r *http.Request)) *recorder {
	rec := &recorder{replyFor: reply}
	rec.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rec.mu.Lock()
		rec.paths = append(rec.paths, r.URL.Path)
		rec.auth = append(rec.auth, r.Header.Get("Authorization"))
		rec.bodies = append(rec.bodies, body)
		rec.ctypes = append(rec.ctypes, r.Header.Get("Content-Type"))
		rec.mu.Unlock()
		if rec.replyFor != nil {
			rec.replyFor(w, r)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(rec.Close)
	return rec
}

func TestClientRefusesUnsafeURLs(t *testing.T) {
	tf := tokenFile(t, tokenA)
	for _, tc := range []struct {
		scenario, url, err string
	}{
		{scenario: "plain http to a remote host is refused", url: "http://updates.example.com", err: "plain http:// to \"updates.example.com\" is refused: use https://"},
		{scenario: "plain http to a private address is refused", url: "http://10.0.0.5:8080", err: "use https://"},
		{scenario: "credentials in the URL are refused", url: "https://user:pw@updates.example.com", err: "carries credentials"},
		{scenario: "a query is refused", url: "https://updates.example.com/?x=1", err: "no query"},
		{scenario: "a URL without a scheme is refused", url: "updates.example.com", err: "no scheme"},
		{scenario: "another scheme is refused", url: "ftp://updates.example.com", err: "not supported"},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			_, err := report.NewClient(tc.url, report.ClientOptions{TokenFile: tf})
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("NewClient(%q) = %v, want %q", tc.url, err, tc.err)
			}
			if strings.Contains(err.Error(), "pw") {
				t.Errorf("the error shows the URL's password: %v", err)
			}
		})
	}
	for _, ok := range []string{"http://127.0.0.1:8080", "http://localhost:8080", "http://[::1]:8080", "https://updates.example.com"} {
		if _, err := report.NewClient(ok, report.ClientOptions{TokenFile: tf}); err != nil {
			t.Errorf("NewClient(%q): %v", ok, err)
		}
	}
}

func TestClientNeedsAToken(t *testing.T) {
	if _, err := report.NewClient("https://u.example.com", report.ClientOptions{}); err == nil || !strings.Contains(err.Error(), "token file") {
		t.Errorf("without a token file: %v", err)
	}
	empty := tokenFile(t, "")
	if _, err := report.NewClient("https://u.example.com", report.ClientOptions{TokenFile: empty}); err == nil || !strings.Contains(err.Error(), "is empty") {
		t.Errorf("with an empty token file: %v", err)
	}
	two := tokenFile(t, tokenA+"\n"+tokenB)
	if _, err := report.NewClient("https://u.example.com", report.ClientOptions{TokenFile: two}); err == nil || strings.Contains(err.Error(), tokenA) {
		t.Errorf("with two tokens: %v", err)
	}
}

func TestClientSends(t *testing.T) {
	rec := newRecorder(t, nil)
	tf := tokenFile(t, tokenA)
	// The updater's version server URL, in any of its forms, is enough.
	for _, base := range []string{rec.URL, rec.URL + "/", rec.URL + "/v1", rec.URL + "/v1/webapi/automaticupgrades/channel"} {
		c, err := report.NewClient(base, report.ClientOptions{TokenFile: tf})
		if err != nil {
			t.Fatal(err)
		}
		if c.String() != rec.URL+"/v1/reports" {
			t.Errorf("base %s: sends to %s", base, c)
		}
		if err := c.Send(context.Background(), hostReport()); err != nil {
			t.Fatalf("Send: %v", err)
		}
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for i := range rec.paths {
		if rec.paths[i] != "/v1/reports" || rec.auth[i] != "Bearer "+tokenA || rec.ctypes[i] != "application/json" {
			t.Errorf("request %d: %s auth %q type %q", i, rec.paths[i], rec.auth[i], rec.ctypes[i])
		}
		r, err := report.Decode(rec.bodies[i])
		if err != nil {
			t.Fatalf("the server could not decode what was sent: %v", err)
		}
		if r.AgentID != hostReport().AgentID {
			t.Errorf("sent %+v", r)
		}
	}
}

func TestClientRereadsTheTokenFile(t *testing.T) {
	rec := newRecorder(t, nil)
	tf := tokenFile(t, tokenA)
	c, err := report.NewClient(rec.URL, report.ClientOptions{TokenFile: tf})
	if err != nil {
		t.Fatal(err)
	}
	_ = c.Send(context.Background(), hostReport())
	if err := os.WriteFile(tf, []byte(tokenB), 0o600); err != nil {
		t.Fatal(err)
	}
	_ = c.Send(context.Background(), hostReport())
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.auth) != 2 || rec.auth[1] != "Bearer "+tokenB {
		t.Errorf("after rotation the client sent %q", rec.auth)
	}
}

func TestClientErrors(t *testing.T) {
	for _, tc := range []struct {
		scenario string
		reply    func(w http.ResponseWriter, r *http.Request)
		report   func(r *report.Report)
		timeout  time.Duration
		want     []string // in the error
		sent     int      // requests the server saw
	}{
		{
			scenario: "a refused token says to check it, without showing it, even when the server echoes it",
			reply: func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusUnauthorized)
				io.WriteString(w, "bad token "+r.Header.Get("Authorization"))
			},
			want: []string{"401 Unauthorized", "check the token file", "[token]"}, sent: 1,
		},
		{
			scenario: "reports disabled on the server say which flag enables them",
			reply: func(w http.ResponseWriter, r *http.Request) {
				http.Error(w, "reports are disabled", http.StatusNotFound)
			},
			want: []string{"404", "--report-token-file"}, sent: 1,
		},
		{
			scenario: "a redirect is not followed, so the token goes nowhere else",
			reply: func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/elsewhere" {
					w.WriteHeader(http.StatusAccepted)
					return
				}
				http.Redirect(w, r, "/elsewhere", http.StatusTemporaryRedirect)
			},
			want: []string{"307", "redirects are not followed", "/elsewhere"}, sent: 1,
		},
		{
			scenario: "a huge answer is read only so far",
			reply: func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusBadRequest)
				io.WriteString(w, strings.Repeat("x", 1<<20))
			},
			want: []string{"400 Bad Request", "…"}, sent: 1,
		},
		{
			scenario: "a server that does not answer times out",
			reply: func(w http.ResponseWriter, r *http.Request) {
				select {
				case <-r.Context().Done():
				case <-time.After(5 * time.Second):
				}
			},
			timeout: 200 * time.Millisecond,
			want:    []string{"timed out"}, sent: 1,
		},
		{
			scenario: "an invalid report is refused before sending",
			report:   func(r *report.Report) { r.CurrentVersion = "latest" },
			want:     []string{"currentVersion"}, sent: 0,
		},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			rec := newRecorder(t, tc.reply)
			c, err := report.NewClient(rec.URL, report.ClientOptions{TokenFile: tokenFile(t, tokenA), Timeout: tc.timeout})
			if err != nil {
				t.Fatal(err)
			}
			r := hostReport()
			if tc.report != nil {
				tc.report(&r)
			}
			start := time.Now()
			err = c.Send(context.Background(), r)
			if err == nil {
				t.Fatal("Send succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q: %v", w, err)
				}
			}
			if strings.Contains(err.Error(), tokenA) {
				t.Errorf("the error shows the token: %v", err)
			}
			if len(err.Error()) > 1500 {
				t.Errorf("the error is %d bytes long", len(err.Error()))
			}
			if tc.timeout > 0 && time.Since(start) > 2*time.Second {
				t.Errorf("Send took %s with a %s timeout", time.Since(start), tc.timeout)
			}
			rec.mu.Lock()
			defer rec.mu.Unlock()
			if len(rec.paths) != tc.sent {
				t.Errorf("the server saw %v, want %d requests", rec.paths, tc.sent)
			}
		})
	}
}

func TestClientCleansCommandOutput(t *testing.T) {
	rec := newRecorder(t, nil)
	c, err := report.NewClient(rec.URL, report.ClientOptions{TokenFile: tokenFile(t, tokenA)})
	if err != nil {
		t.Fatal(err)
	}
	r := hostReport()
	r.LastError = "dpkg: error\r\n\x1b[1m" + strings.Repeat("x", 10_000) + "\xff"
	if err := c.Send(context.Background(), r); err != nil {
		t.Fatalf("Send with raw command output: %v", err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	got, err := report.Decode(rec.bodies[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(got.LastError) > report.MaxErrorLength || !strings.HasPrefix(got.LastError, "dpkg: error\n\uFFFD[1mxxx") {
		t.Errorf("sent lastError %q…", got.LastError[:40])
	}
}

func TestClientFillsTheTime(t *testing.T) {
	rec := newRecorder(t, nil)
	c, err := report.NewClient(rec.URL, report.ClientOptions{TokenFile: tokenFile(t, tokenA)})
	if err != nil {
		t.Fatal(err)
	}
	r := hostReport()
	r.Time = time.Time{}
	if err := c.Send(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	got, err := report.Decode(rec.bodies[0])
	if err != nil || time.Since(got.Time) > time.Minute {
		t.Errorf("sent time %s, %v", got.Time, err)
	}
}
