package server_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime/pprof"
	"testing"

	"upkeep.dev/upkeep/reconcile/server"
	"upkeep.dev/upkeep/reconcile/server/loadtest"
)

// discardWriter is the least a ResponseWriter can be: it keeps one header
// map across requests (as a connection's reused buffers would) and drops
// the body, so the benchmark measures the handler alone.
type discardWriter struct {
	h    http.Header
	code int
	n    int
}

func (d *discardWriter) Header() http.Header  { return d.h }
func (d *discardWriter) WriteHeader(code int) { d.code = code }
func (d *discardWriter) Write(p []byte) (int, error) {
	d.n += len(p)
	return len(p), nil
}

func BenchmarkVersionHandler(b *testing.B) {
	h := server.New(serving(b, "0123456789abcdef0123456789abcdef01234567"), server.Options{})
	for _, path := range []string{
		"/v1/webapi/automaticupgrades/channel/stable/cloud/version",
		"/v1/stable/cloud/version",
	} {
		req := httptest.NewRequest(http.MethodGet, path, nil)

		b.Run("discard"+path, func(b *testing.B) {
			w := &discardWriter{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				h.ServeHTTP(w, req)
			}
			if w.code != http.StatusOK || w.h.Get("Content-Type") != "text/plain; charset=utf-8" {
				b.Fatalf("answered %d %v", w.code, w.h)
			}
		})

		b.Run("recorder"+path, func(b *testing.B) {
			b.ReportAllocs()
			var rec *httptest.ResponseRecorder
			for b.Loop() {
				rec = httptest.NewRecorder()
				h.ServeHTTP(rec, req)
			}
			if rec.Code != http.StatusOK || rec.Body.String() != "v17.3.0" {
				b.Fatalf("answered %d %q", rec.Code, rec.Body)
			}
		})
	}
}

// BenchmarkVersionOverLoopback is the whole round trip an updater makes:
// client, loopback TCP (kept alive), net/http's server and the handler.
func BenchmarkVersionOverLoopback(b *testing.B) {
	s := start(b, serving(b, "rev1"), nil)
	url := s.URL + "/v1/stable/cloud/version"
	client := s.Client()
	b.ReportAllocs()
	for b.Loop() {
		resp, err := client.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
}

// BenchmarkRolloutAnswer compares the plain channel answer with the
// per-agent answer of a channel under rollout (identity in headers, in the
// query, and the group-scoped channel), all through the handler.
func BenchmarkRolloutAnswer(b *testing.B) {
	answers := &answerTable{}
	answers.set(canaryStep)
	h := server.New(rolloutBackend(), server.Options{Answers: answers.get})
	for _, tc := range []struct {
		name, path string
		header     []string
		body       string
	}{
		{"plain", "/v1/webapi/automaticupgrades/channel/plain/version", nil, "v1.2.0"},
		{"agent-canary", "/v1/webapi/automaticupgrades/channel/prod/version", []string{"Upkeep-Agent-Id", "c-1", "Upkeep-Group", "canary-hosts"}, "v1.1.0"},
		{"agent-held", "/v1/webapi/automaticupgrades/channel/prod/version", []string{"Upkeep-Agent-Id", "e-1", "Upkeep-Group", "eu-prod"}, "v1.0.0"},
		{"agent-query", "/v1/prod/version?agent=c-1&group=canary-hosts", nil, "v1.1.0"},
		{"group-scoped", "/v1/webapi/automaticupgrades/channel/group/eu-prod/version", nil, "v1.0.0"},
	} {
		req := httptest.NewRequest(http.MethodGet, tc.path, nil)
		for i := 0; i+1 < len(tc.header); i += 2 {
			req.Header.Set(tc.header[i], tc.header[i+1])
		}
		b.Run(tc.name, func(b *testing.B) {
			w := &bodyWriter{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				w.body = w.body[:0]
				h.ServeHTTP(w, req)
			}
			if w.code != http.StatusOK || string(w.body) != tc.body {
				b.Fatalf("answered %d %q, want %q", w.code, w.body, tc.body)
			}
		})
	}
}

// bodyWriter keeps the last body, in a reused buffer, so the benchmark
// can check the answer without allocating per request.
type bodyWriter struct {
	h    http.Header
	code int
	body []byte
}

func (d *bodyWriter) Header() http.Header  { return d.h }
func (d *bodyWriter) WriteHeader(code int) { d.code = code }
func (d *bodyWriter) Write(p []byte) (int, error) {
	d.body = append(d.body, p...)
	return len(p), nil
}

// BenchmarkServeVsFloor measures upkeep's server (its handler behind
// NewHTTPServer, every limit set) against the floor: a plain net/http
// server answering a fixed body, in one process over real loopback TCP.
// Both get the same load: conns keep-alive connections, each sending
// Teleport's /version request and reading the whole answer before the
// next, from a minimal raw-TCP client (so the client costs little of the
// shared CPU). Rounds alternate floor, upkeep, floor, ... so that noise
// from the machine falls on both; the ratio of one run is the figure,
// absolute numbers are not (the client shares the cores).
func BenchmarkServeVsFloor(b *testing.B) {
	body := []byte("v17.3.0")
	upkeep := server.NewHTTPServer("", server.New(serving(b, "rev1"), server.Options{}))
	upkeep.ErrorLog = nil
	floor := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write(body)
	})}
	var addrs [2]string
	for i, tg := range []struct {
		name string
		srv  *http.Server
	}{{"floor", floor}, {"upkeep", upkeep}} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		// Labelled, so a CPU profile tells the two servers apart
		// (-tagfocus server=upkeep); connection goroutines inherit it.
		go pprof.Do(context.Background(), pprof.Labels("server", tg.name), func(context.Context) { _ = tg.srv.Serve(ln) })
		b.Cleanup(func() { tg.srv.Close() })
		addrs[i] = ln.Addr().String()
	}
	loadtest.Comparison{
		FloorAddr: addrs[0], UpkeepAddr: addrs[1],
		Path: "/v1/webapi/automaticupgrades/channel/stable/cloud/version", Body: body,
		Conns: 16, Rounds: 20, InProcess: true,
	}.Run(b)
}
