package versionclient

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"upkeep.dev/upkeep/reconcile/calendar"
	"upkeep.dev/upkeep/reconcile/schedule"
)

// reply is what a test server answers.
type reply struct {
	status int // 0: 200
	body   string
	delay  time.Duration
}

// recorder is a real HTTP server on 127.0.0.1 that answers with a fixed
// reply and records what it was asked.
type recorder struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []*http.Request
}

func serve(t *testing.T, r reply) *recorder {
	t.Helper()
	rec := &recorder{}
	rec.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		rec.mu.Lock()
		rec.reqs = append(rec.reqs, req.Clone(req.Context()))
		rec.mu.Unlock()
		if r.delay > 0 {
			select {
			case <-time.After(r.delay):
			case <-req.Context().Done():
				return
			}
		}
		w.Header().Set("Content-Type", "text/plain")
		if r.status != 0 {
			w.WriteHeader(r.status)
		}
		w.Write([]byte(r.body))
	}))
	t.Cleanup(rec.Close)
	return rec
}

func (r *recorder) requests() []*http.Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*http.Request(nil), r.reqs...)
}

func newClient(t *testing.T, base string, o Options) *Client {
	t.Helper()
	c, err := New(base, o)
	if err != nil {
		t.Fatalf("New(%q): %v", base, err)
	}
	return c
}

func TestTarget(t *testing.T) {
	tests := []struct {
		scenario string
		reply    reply
		want     Target
		err      []string // substrings of the error; nil = success
	}{
		{"a v-prefixed version is read without the v", reply{body: "v1.2.3"}, Target{Version: "1.2.3"}, nil},
		{"a bare version with a trailing newline is read", reply{body: "1.2.3\n"}, Target{Version: "1.2.3"}, nil},
		{"surrounding white space and CRLF are trimmed", reply{body: "  v17.2.3\r\n"}, Target{Version: "17.2.3"}, nil},
		{"prerelease and build metadata are kept", reply{body: "v17.0.0-rc.1+build.5"}, Target{Version: "17.0.0-rc.1+build.5"}, nil},
		{"none means the channel offers no version", reply{body: "none"}, Target{None: true}, nil},
		{"none with a newline means no version too", reply{body: "none\n"}, Target{None: true}, nil},
		{"a captive portal's HTML page is an error quoting its start",
			reply{body: "<html><head><title>Hotel WiFi login</title></head><body>" + strings.Repeat("x", 500) + "</body></html>"}, Target{},
			[]string{"not a version", `body starts "<html><head><title>Hotel WiFi login</title></head><body>xxxxxxxx" (570 bytes in all)`}},
		{"an empty body is an error", reply{body: ""}, Target{}, []string{"empty version body"}},
		{"a blank body is an error", reply{body: " \n"}, Target{}, []string{"empty version body"}},
		{"a version without patch is an error", reply{body: "1.2"}, Target{}, []string{"not a version", `"1.2"`}},
		{"a lone v is an error", reply{body: "v"}, Target{}, []string{"not a version"}},
		{"a double v is an error", reply{body: "vv1.2.3"}, Target{}, []string{"not a version"}},
		{"a leading zero is an error", reply{body: "01.2.3"}, Target{}, []string{"not a version"}},
		{"text after the version is an error", reply{body: "1.2.3 is out"}, Target{}, []string{"not a version"}},
		{"NONE in capitals is not none", reply{body: "NONE"}, Target{}, []string{"not a version"}},
		{"terminal escapes in the body are quoted, not echoed", reply{body: "\x1b[2J\x1b[31mpwned"}, Target{},
			[]string{`"\x1b[2J\x1b[31mpwned"`}},
		{"a body over 4 KiB is an error, not truncated", reply{body: "v1.2.3" + strings.Repeat(" ", 5000)}, Target{},
			[]string{"larger than 4096 bytes", "is a proxy answering?"}},
		{"an unknown channel's 404 is an error with the status", reply{status: 404, body: "unknown channel\n"}, Target{},
			[]string{"status 404 Not Found", "check the channel or group name", `"unknown channel\n"`}},
		{"a server error's 500 is an error with the status and body", reply{status: 500, body: "boom"}, Target{},
			[]string{"status 500 Internal Server Error", `"boom"`}},
		{"a slow server hits the timeout", reply{body: "v1.2.3", delay: 3 * time.Second}, Target{},
			[]string{"timed out"}},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			srv := serve(t, tt.reply)
			c := newClient(t, srv.URL, Options{Timeout: 300 * time.Millisecond})
			start := time.Now()
			got, err := c.Target(t.Context(), "stable/cloud")
			if elapsed := time.Since(start); elapsed > 2*time.Second {
				t.Errorf("Target took %s; the 300ms timeout did not hold", elapsed)
			}
			if tt.err == nil {
				if err != nil {
					t.Fatalf("Target: %v", err)
				}
				if got != tt.want {
					t.Errorf("got %+v, want %+v", got, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("Target = %+v, want an error", got)
			}
			for _, s := range tt.err {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
			if !strings.Contains(err.Error(), "/v1/webapi/automaticupgrades/channel/stable/cloud/version") {
				t.Errorf("error %q does not name the URL", err)
			}
		})
	}
}

func TestCritical(t *testing.T) {
	tests := []struct {
		scenario string
		reply    reply
		want     bool
		err      string
	}{
		{"yes is critical", reply{body: "yes"}, true, ""},
		{"YES with a newline is critical", reply{body: "YES\n"}, true, ""},
		{"true is critical", reply{body: "true"}, true, ""},
		{"no is not critical", reply{body: "no"}, false, ""},
		{"False in mixed case is not critical", reply{body: " False \n"}, false, ""},
		{"maybe is an error", reply{body: "maybe"}, false, `not a critical flag: body starts "maybe"`},
		{"1 is an error", reply{body: "1"}, false, "not a critical flag"},
		{"an HTML page is an error", reply{body: "<!DOCTYPE html><html>"}, false, `"<!DOCTYPE html><html>"`},
		{"an empty body is an error", reply{body: ""}, false, `"" (empty)`},
		{"a 503 is an error", reply{status: 503, body: "down"}, false, "status 503 Service Unavailable"},
		{"a body over 4 KiB is an error", reply{body: strings.Repeat("y", 4097)}, false, "larger than 4096 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			srv := serve(t, tt.reply)
			c := newClient(t, srv.URL, Options{})
			got, err := c.Critical(t.Context(), "stable/cloud")
			if tt.err == "" {
				if err != nil || got != tt.want {
					t.Fatalf("Critical = %v, %v; want %v", got, err, tt.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("Critical = %v, %v; want an error containing %q", got, err, tt.err)
			}
			if !strings.Contains(err.Error(), "/critical") {
				t.Errorf("error %q does not name the URL", err)
			}
		})
	}
}

func TestURLs(t *testing.T) {
	tests := []struct {
		scenario string
		base     string // appended to the server's URL
		channel  string
		version  string // raw request path for the version
		schedule string // raw request path for group "eu-prod"
	}{
		{"a server root gets Teleport's webapi prefix", "", "stable/cloud",
			"/v1/webapi/automaticupgrades/channel/stable/cloud/version", "/v1/groups/eu-prod/schedule"},
		{"a trailing slash on the root changes nothing", "/", "stable/cloud",
			"/v1/webapi/automaticupgrades/channel/stable/cloud/version", "/v1/groups/eu-prod/schedule"},
		{"a base URL already ending in the full prefix is used as is", "/v1/webapi/automaticupgrades/channel/", "stable/cloud",
			"/v1/webapi/automaticupgrades/channel/stable/cloud/version", "/v1/groups/eu-prod/schedule"},
		{"a server mounted under a path keeps it", "/upkeep", "stable/cloud",
			"/upkeep/v1/webapi/automaticupgrades/channel/stable/cloud/version", "/upkeep/v1/groups/eu-prod/schedule"},
		{"a full prefix under a mount path keeps both", "/upkeep/v1/webapi/automaticupgrades/channel", "edge",
			"/upkeep/v1/webapi/automaticupgrades/channel/edge/version", "/upkeep/v1/groups/eu-prod/schedule"},
		{"a plain /v1 base gets the plain form", "/v1", "stable/cloud/v17",
			"/v1/stable/cloud/v17/version", "/v1/groups/eu-prod/schedule"},
		{"special characters in a channel segment are escaped, slashes kept", "", "a b/c%d?e#f;g",
			"/v1/webapi/automaticupgrades/channel/a%20b/c%25d%3Fe%23f%3Bg/version", "/v1/groups/eu-prod/schedule"},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			srv := serve(t, reply{body: "v1.0.0"})
			c := newClient(t, srv.URL+tt.base, Options{Version: "1.4.0", Token: "s3cret-token"})
			c.Target(t.Context(), tt.channel)
			c.Critical(t.Context(), tt.channel)
			c.Schedule(t.Context(), "eu-prod")
			reqs := srv.requests()
			if len(reqs) != 3 {
				t.Fatalf("server saw %d requests, want 3", len(reqs))
			}
			wantPaths := []string{tt.version, strings.TrimSuffix(tt.version, "version") + "critical", tt.schedule}
			for i, r := range reqs {
				if r.RequestURI != wantPaths[i] {
					t.Errorf("request %d: path %q, want %q", i, r.RequestURI, wantPaths[i])
				}
				if r.Method != http.MethodGet {
					t.Errorf("request %d: method %s", i, r.Method)
				}
				if ua := r.Header.Get("User-Agent"); ua != "upkeep-agent/1.4.0" {
					t.Errorf("request %d: User-Agent %q", i, ua)
				}
				if auth := r.Header.Get("Authorization"); auth != "Bearer s3cret-token" {
					t.Errorf("request %d: Authorization %q", i, auth)
				}
			}
			if a := reqs[2].Header.Get("Accept"); a != "application/json" {
				t.Errorf("schedule Accept = %q", a)
			}
		})
	}
}

func TestDefaultUserAgentAndNoToken(t *testing.T) {
	srv := serve(t, reply{body: "v1.0.0"})
	c := newClient(t, srv.URL, Options{})
	if _, err := c.Target(t.Context(), "edge"); err != nil {
		t.Fatal(err)
	}
	r := srv.requests()[0]
	if ua := r.Header.Get("User-Agent"); ua != "upkeep-agent/devel" {
		t.Errorf("User-Agent %q", ua)
	}
	if _, ok := r.Header["Authorization"]; ok {
		t.Errorf("Authorization sent without a token: %q", r.Header.Get("Authorization"))
	}
}

func TestTokenFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	t.Run("the token is read from the file, trailing newline dropped", func(t *testing.T) {
		srv := serve(t, reply{body: "v1.0.0"})
		c := newClient(t, srv.URL, Options{TokenFile: write("token", "file-token\n")})
		if _, err := c.Target(t.Context(), "edge"); err != nil {
			t.Fatal(err)
		}
		if got := srv.requests()[0].Header.Get("Authorization"); got != "Bearer file-token" {
			t.Errorf("Authorization = %q", got)
		}
	})
	for _, tt := range []struct {
		scenario string
		o        Options
		err      string
	}{
		{"a token and a token file together are refused", Options{Token: "a", TokenFile: write("t2", "b")}, "not both"},
		{"an empty token file is refused", Options{TokenFile: write("t3", "\n")}, "is empty"},
		{"a token file of several lines is refused without echoing it", Options{TokenFile: write("t4", "secret-one\nsecret-two\n")}, "more than one line"},
		{"an absent token file is refused", Options{TokenFile: filepath.Join(dir, "absent")}, "reading the token file"},
	} {
		t.Run(tt.scenario, func(t *testing.T) {
			_, err := New("https://updates.example.com", tt.o)
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("err = %v, want %q", err, tt.err)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error leaks the token: %v", err)
			}
		})
	}
}

func TestBadNamesAreRefusedBeforeAnyRequest(t *testing.T) {
	srv := serve(t, reply{body: "v1.0.0"})
	c := newClient(t, srv.URL, Options{})
	for _, tt := range []struct {
		scenario, name, err string
	}{
		{"an empty channel name", "", "channel name is empty"},
		{"an empty segment", "stable//cloud", "empty segment"},
		{"a trailing slash", "stable/", "empty segment"},
		{"a dot-dot segment that would climb the path", "../../groups/x", `".." segment`},
		{"a dot segment", "stable/./cloud", `"." segment`},
		{"a newline", "stable\ncloud", "control character"},
	} {
		t.Run(tt.scenario, func(t *testing.T) {
			_, err := c.Target(t.Context(), tt.name)
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("Target(%q) err = %v, want %q", tt.name, err, tt.err)
			}
			if _, err := c.Schedule(t.Context(), tt.name); err == nil {
				t.Errorf("Schedule(%q) succeeded", tt.name)
			}
		})
	}
	if n := len(srv.requests()); n != 0 {
		t.Errorf("server saw %d requests, want none", n)
	}
}

func TestNew(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	os.WriteFile(notPEM, []byte("hello"), 0o644)
	for _, tt := range []struct {
		scenario string
		base     string
		o        Options
		err      string // "" = accepted
	}{
		{"https to any host is accepted", "https://updates.example.com", Options{}, ""},
		{"http to 127.0.0.1 is accepted", "http://127.0.0.1:8080", Options{}, ""},
		{"http to another 127/8 address is accepted", "http://127.1.2.3", Options{}, ""},
		{"http to ::1 is accepted", "http://[::1]:8080/v1", Options{}, ""},
		{"http to localhost is accepted", "http://localhost:1", Options{}, ""},
		{"http to a public name is refused with advice to use https", "http://updates.example.com", Options{}, `plain http:// to "updates.example.com" is refused: use https://`},
		{"http to a private address is refused", "http://10.0.0.1:8080", Options{}, "use https://"},
		{"http to an IPv6 address other than ::1 is refused", "http://[::2]/", Options{}, "use https://"},
		{"http to a name merely starting with localhost is refused", "http://localhost.evil.example", Options{}, "use https://"},
		{"another scheme is refused", "ftp://updates.example.com", Options{}, `scheme "ftp" is not supported`},
		{"a URL without scheme is refused", "updates.example.com/v1", Options{}, "no scheme"},
		{"a URL without host is refused", "https:///v1", Options{}, "no host"},
		{"credentials in the URL are refused without echoing them", "https://bob:hunter2@updates.example.com", Options{}, "carries credentials"},
		{"a query string is refused", "https://updates.example.com/?channel=x", Options{}, "no query"},
		{"a negative timeout is refused", "https://updates.example.com", Options{Timeout: -time.Second}, "negative"},
		{"a missing CA file is refused", "https://updates.example.com", Options{CAFile: filepath.Join(dir, "absent.pem")}, "reading the CA file"},
		{"a CA file without certificates is refused", "https://updates.example.com", Options{CAFile: notPEM}, "holds no PEM certificate"},
	} {
		t.Run(tt.scenario, func(t *testing.T) {
			c, err := New(tt.base, tt.o)
			if tt.err == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				if strings.Contains(c.String(), "@") {
					t.Errorf("String() = %q", c.String())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("New err = %v, want %q", err, tt.err)
			}
			if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "bob") {
				t.Errorf("error leaks credentials: %v", err)
			}
		})
	}
}

func TestRedirectToPlainHTTPIsRefusedWithoutDialing(t *testing.T) {
	// 192.0.2.1 (TEST-NET-1) never answers: dialing it would hang until the
	// timeout, so a quick refusal proves nothing was dialed.
	srv := httptest.NewServer(http.RedirectHandler("http://192.0.2.1/v1/webapi/automaticupgrades/channel/edge/version", http.StatusFound))
	defer srv.Close()
	c := newClient(t, srv.URL, Options{Timeout: 5 * time.Second})
	start := time.Now()
	_, err := c.Target(t.Context(), "edge")
	if err == nil || !strings.Contains(err.Error(), "redirect to http://192.0.2.1/") || !strings.Contains(err.Error(), "use https://") {
		t.Fatalf("err = %v, want a refused redirect", err)
	}
	if elapsed := time.Since(start); elapsed > time.Second {
		t.Errorf("refusal took %s; something was dialed", elapsed)
	}
}

func TestRedirectsWithinLoopbackAreFollowed(t *testing.T) {
	target := serve(t, reply{body: "v2.0.0"})
	srv := httptest.NewServer(http.RedirectHandler(target.URL+"/v1/webapi/automaticupgrades/channel/edge/version", http.StatusMovedPermanently))
	defer srv.Close()
	got, err := newClient(t, srv.URL, Options{}).Target(t.Context(), "edge")
	if err != nil || got.Version != "2.0.0" {
		t.Fatalf("Target = %+v, %v", got, err)
	}
}

func writeCertPEM(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ca.pem")
	data := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// writeOtherCA writes a freshly made self-signed CA certificate (httptest's
// TLS servers all share one certificate, so another server is no other CA).
func writeOtherCA(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "other test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "other-ca.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestTLSWithCustomCA(t *testing.T) {
	var gotAuth string
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth = r.Header.Get("Authorization")
		w.Write([]byte("v17.1.0\n"))
	}))
	defer srv.Close()

	t.Run("the server's CA in the CA file is trusted", func(t *testing.T) {
		c := newClient(t, srv.URL, Options{CAFile: writeCertPEM(t, srv), Token: "tok"})
		got, err := c.Target(t.Context(), "stable/cloud")
		if err != nil || got.Version != "17.1.0" {
			t.Fatalf("Target = %+v, %v", got, err)
		}
		if gotAuth != "Bearer tok" {
			t.Errorf("Authorization = %q", gotAuth)
		}
	})
	t.Run("without the CA file the private certificate is refused with a hint", func(t *testing.T) {
		_, err := newClient(t, srv.URL, Options{Token: "tok"}).Target(t.Context(), "stable/cloud")
		if err == nil || !strings.Contains(err.Error(), "certificate") || !strings.Contains(err.Error(), "CA file") {
			t.Fatalf("err = %v, want a certificate error with a hint", err)
		}
		if strings.Contains(err.Error(), "tok\"") || strings.Contains(err.Error(), "Bearer") {
			t.Errorf("error leaks the token: %v", err)
		}
	})
	t.Run("another CA in the CA file is refused", func(t *testing.T) {
		_, err := newClient(t, srv.URL, Options{CAFile: writeOtherCA(t)}).Target(t.Context(), "stable/cloud")
		if err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("err = %v, want a certificate error", err)
		}
	})
}

func TestSchedule(t *testing.T) {
	good := `{"windows":[{"start":"2026-03-01T02:00:00Z","stop":"2026-03-01T06:00:00Z"}]}`
	for _, tt := range []struct {
		scenario string
		reply    reply
		windows  int
		err      string
	}{
		{"the group's windows are read", reply{body: good}, 1, ""},
		{"a group without windows gives none", reply{body: `{"windows":[]}`}, 0, ""},
		{"an HTML page is not a schedule", reply{body: "<html>login</html>"}, 0, `not a schedule: line 1:1: invalid JSON`},
		{"a reversed window names the field", reply{body: `{"windows":[{"start":"2026-03-01T06:00:00Z","stop":"2026-03-01T02:00:00Z"}]}`}, 0, "windows[0].stop"},
		{"a body over 1 MiB is an error", reply{body: `{"windows":[],"pad":"` + strings.Repeat("x", 1<<20) + `"}`}, 0, "larger than 1048576 bytes"},
		{"an unknown group's 404 is an error", reply{status: 404, body: "unknown group"}, 0, "status 404"},
		{"an unauthorized 401 suggests checking the token", reply{status: 401}, 0, "check the token"},
	} {
		t.Run(tt.scenario, func(t *testing.T) {
			srv := serve(t, tt.reply)
			ws, err := newClient(t, srv.URL, Options{}).Schedule(t.Context(), "eu-prod")
			if tt.err == "" {
				if err != nil || len(ws) != tt.windows {
					t.Fatalf("Schedule = %v, %v; want %d windows", ws, err, tt.windows)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("Schedule err = %v, want %q", err, tt.err)
			}
		})
	}
}

func TestGroupChannel(t *testing.T) {
	for _, tt := range []struct {
		scenario string
		reply    reply
		channel  string
		err      string
	}{
		{"the group's channel is read from its detail", reply{body: `{"name":"eu-prod","channel":"stable/cloud","timezone":"Europe/Berlin","revision":"abc"}` + "\n"}, "stable/cloud", ""},
		{"an unknown group's 404 is a clear error", reply{status: 404, body: `unknown group "eu-prod"`}, "", `asking the channel of group "eu-prod"`},
		{"an unknown group's 404 says to check the name", reply{status: 404}, "", "check the channel or group name"},
		{"malformed JSON is an error", reply{body: `{"name":"eu-prod","channel":`}, "", "not a group document"},
		{"an HTML page is an error", reply{body: "<html>login</html>"}, "", "not a group document"},
		{"a document without a channel is an error", reply{body: `{"name":"eu-prod"}`}, "", `want "name" and "channel"`},
		{"an answer for another group is an error", reply{body: `{"name":"us-prod","channel":"stable/cloud"}`}, "", `answered for group "us-prod"`},
		{"a malformed channel name is an error", reply{body: `{"name":"eu-prod","channel":"Stable//x"}`}, "", "not a channel name"},
		{"a body over 64 KiB is an error", reply{body: `{"name":"eu-prod","channel":"a","pad":"` + strings.Repeat("x", 64<<10) + `"}`}, "", "larger than 65536 bytes"},
	} {
		t.Run(tt.scenario, func(t *testing.T) {
			srv := serve(t, tt.reply)
			got, err := newClient(t, srv.URL+"/v1/webapi/automaticupgrades/channel", Options{}).GroupChannel(t.Context(), "eu-prod")
			if reqs := srv.requests(); len(reqs) != 1 || reqs[0].RequestURI != "/v1/groups/eu-prod" || reqs[0].Header.Get("Accept") != "application/json" {
				t.Fatalf("requests %v: want one GET /v1/groups/eu-prod accepting JSON", reqs)
			}
			if tt.err == "" {
				if err != nil || got != tt.channel {
					t.Fatalf("GroupChannel = %q, %v; want %q", got, err, tt.channel)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("GroupChannel = %q, %v; want an error containing %q", got, err, tt.err)
			}
		})
	}
}

func TestGroupChannelTransportAndNameRules(t *testing.T) {
	if _, err := New("http://updates.example.com", Options{}); err == nil {
		t.Fatal("New accepted plain http to a remote host")
	}
	c := newClient(t, "http://127.0.0.1:1", Options{})
	if _, err := c.GroupChannel(t.Context(), "a/b"); err == nil || !strings.Contains(err.Error(), "one segment") {
		t.Fatalf("GroupChannel(a/b) = %v, want a one-segment error before any request", err)
	}
}

// TestServerSourceKeepsTheLastGoodSchedule drives schedule.ServerSource
// through this client against a real server that then goes away.
func TestServerSourceKeepsTheLastGoodSchedule(t *testing.T) {
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	srv := serve(t, reply{body: `{"windows":[{"start":"2026-03-01T02:00:00Z","stop":"2026-03-01T06:00:00Z"}]}`})
	c := newClient(t, srv.URL, Options{Timeout: time.Second})
	saved := filepath.Join(t.TempDir(), "state", "schedule.json")
	src := &schedule.ServerSource{Fetch: c.Schedule, Group: "eu-prod", Path: saved}

	// A dry run's load judges the fetched schedule and saves nothing.
	if got := src.Load(t.Context(), now, false); got.State != schedule.Usable || got.Path != "" {
		t.Fatalf("load without saving: %v (path %q)", got, got.Path)
	}
	if _, err := os.Stat(saved); !os.IsNotExist(err) {
		t.Fatalf("load without saving wrote %s (stat: %v)", saved, err)
	}
	got := src.Load(t.Context(), now, true)
	if got.State != schedule.Usable || got.Err != nil || got.Path != saved {
		t.Fatalf("first load: %v (err %v, path %q)", got, got.Err, got.Path)
	}
	if _, err := os.Stat(saved); err != nil {
		t.Fatalf("schedule not saved: %v", err)
	}

	srv.Close() // the server goes down; a restarted updater reads the saved copy
	got = (&schedule.ServerSource{Fetch: c.Schedule, Group: "eu-prod", Path: saved}).Load(t.Context(), now, true)
	if got.State != schedule.Usable || got.Err == nil {
		t.Fatalf("with the server down: %v (err %v), want the saved Usable copy and the fetch error", got, got.Err)
	}
	want := []calendar.Interval{{Start: now.Add(2 * time.Hour), End: now.Add(6 * time.Hour)}}
	if len(got.Windows) != 1 || got.Windows[0] != want[0] {
		t.Errorf("windows %v, want %v", got.Windows, want)
	}
	if !strings.Contains(got.Message, "using the saved copy") {
		t.Errorf("message %q", got.Message)
	}

	// Later the saved window has ended: no window ahead, still with the error.
	got = src.Load(t.Context(), now.Add(7*time.Hour), true)
	if got.State != schedule.NoWindowAhead {
		t.Errorf("after the window: %v", got)
	}

	os.Remove(saved)
	got = src.Load(t.Context(), now, true)
	if got.State != schedule.Missing || got.Err == nil {
		t.Errorf("server down and nothing saved: %v (err %v), want Missing with the fetch error", got, got.Err)
	}
}

func TestServerSourceSavesAnEmptySchedule(t *testing.T) {
	srv := serve(t, reply{body: `{"windows":[]}`})
	c := newClient(t, srv.URL, Options{})
	saved := filepath.Join(t.TempDir(), "schedule.json")
	got := (&schedule.ServerSource{Fetch: c.Schedule, Group: "g", Path: saved}).Load(t.Context(), time.Now(), true)
	if got.State != schedule.NoWindowAhead {
		t.Fatalf("got %v", got)
	}
	if data, _ := os.ReadFile(saved); string(data) != `{"windows":[]}` {
		t.Errorf("saved %q", data)
	}
}

func BenchmarkParseVersion(b *testing.B) {
	body := []byte("v17.2.3\n")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseVersion(body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTarget is one version request over loopback HTTP, connection
// reused.
func BenchmarkTarget(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("v17.2.3\n")) }))
	defer srv.Close()
	c, err := New(srv.URL, Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Target(b.Context(), "stable/cloud"); err != nil {
			b.Fatal(err)
		}
	}
}
