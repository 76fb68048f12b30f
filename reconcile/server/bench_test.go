package server_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"upkeep.dev/upkeep/reconcile/server"
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
	const (
		conns  = 16
		rounds = 20 // pairs of rounds
		path   = "/v1/webapi/automaticupgrades/channel/stable/cloud/version"
	)
	body := []byte("v17.3.0")
	upkeep := server.NewHTTPServer("", server.New(serving(b, "rev1"), server.Options{}))
	upkeep.ErrorLog = nil
	floor := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write(body)
	})}
	targets := []struct {
		name string
		srv  *http.Server
		c    []*rawConn
		lat  []time.Duration
		took time.Duration
	}{{name: "floor", srv: floor}, {name: "upkeep", srv: upkeep}}
	for i := range targets {
		tg := &targets[i]
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		// Labelled, so a CPU profile tells the two servers apart
		// (-tagfocus server=upkeep); connection goroutines inherit it.
		go pprof.Do(context.Background(), pprof.Labels("server", tg.name), func(context.Context) { _ = tg.srv.Serve(ln) })
		b.Cleanup(func() { tg.srv.Close() })
		for range conns {
			c, err := dialRaw(ln.Addr().String(), path)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { c.Close() })
			// Warm the connection (and check the answer) before timing.
			if got, err := c.get(); err != nil || string(got) != string(body) {
				b.Fatalf("%s answered %q, %v", tg.name, got, err)
			}
			tg.c = append(tg.c, c)
		}
	}
	perConn := max(b.N/(rounds*conns), 1)
	var pairs []float64      // upkeep's req/s over the floor's, per pair of rounds
	var cpu [2]time.Duration // the process's CPU time in each target's rounds
	var mallocs [2]uint64    // and the heap allocations, client included
	var ms runtime.MemStats
	b.ResetTimer()
	for round := range rounds {
		var rps [2]float64
		for k := range 2 {
			i := k ^ (round & 1) // floor first in even rounds, upkeep first in odd ones
			tg := &targets[i]
			lat := make([][]time.Duration, conns)
			errs := make([]error, conns)
			var wg sync.WaitGroup
			runtime.ReadMemStats(&ms)
			m0 := ms.Mallocs
			c0 := processCPU()
			t0 := time.Now()
			for j, c := range tg.c {
				wg.Go(func() {
					own := make([]time.Duration, 0, perConn)
					for range perConn {
						s := time.Now()
						got, err := c.get()
						own = append(own, time.Since(s))
						if err != nil || len(got) != len(body) {
							errs[j] = fmt.Errorf("%s: %q %v", tg.name, got, err)
							break
						}
					}
					lat[j] = own
				})
			}
			wg.Wait()
			took := time.Since(t0)
			tg.took += took
			cpu[i] += processCPU() - c0
			runtime.ReadMemStats(&ms)
			mallocs[i] += ms.Mallocs - m0
			rps[i] = float64(conns*perConn) / took.Seconds()
			for j := range lat {
				if errs[j] != nil {
					b.Fatal(errs[j])
				}
				tg.lat = append(tg.lat, lat[j]...)
			}
		}
		pairs = append(pairs, rps[1]/rps[0])
	}
	b.StopTimer()
	var p99 [2]float64
	for i := range targets {
		tg := &targets[i]
		slices.Sort(tg.lat)
		p99[i] = float64(tg.lat[len(tg.lat)*99/100].Microseconds())
		b.ReportMetric(float64(len(tg.lat))/tg.took.Seconds(), tg.name+"-req/s")
		b.ReportMetric(p99[i], tg.name+"-p99-µs")
		b.ReportMetric(float64(mallocs[i])/float64(len(tg.lat)), tg.name+"-allocs/req")
	}
	slices.Sort(pairs)
	b.ReportMetric(pairs[len(pairs)/2], "ratio") // the median pair: robust to a noisy round
	b.ReportMetric(p99[1]-p99[0], "p99-diff-µs")
	// CPU per request, client included (the same client for both): less
	// sensitive than req/s to what else runs on the machine.
	b.ReportMetric(float64(cpu[1])/float64(cpu[0]), "cpu-ratio")
	b.ReportMetric(float64(cpu[1]-cpu[0])/float64(len(targets[1].lat)), "extra-cpu-ns/req")
	b.ReportMetric(0, "ns/op") // the per-request figures above are the result
}

// rawConn is a keep-alive HTTP/1.1 client connection that sends one fixed
// request and reads a response with a Content-Length body: about what wrk
// does, so the client's cost stays small beside the server's.
type rawConn struct {
	net.Conn
	r    *bufio.Reader
	req  []byte
	body []byte
}

func dialRaw(addr, path string) (*rawConn, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	return &rawConn{Conn: c, r: bufio.NewReaderSize(c, 4096),
		req: []byte("GET " + path + " HTTP/1.1\r\nHost: bench\r\nUser-Agent: bench\r\n\r\n")}, nil
}

// get sends the request and returns the body (valid until the next get).
func (c *rawConn) get() ([]byte, error) {
	if err := c.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return nil, err
	}
	if _, err := c.Write(c.req); err != nil {
		return nil, err
	}
	length, status := -1, 0
	for {
		line, err := c.r.ReadSlice('\n')
		if err != nil {
			return nil, err
		}
		if status == 0 {
			if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.1 ")) {
				return nil, fmt.Errorf("bad status line %q", line)
			}
			status, _ = strconv.Atoi(string(line[9:12]))
			continue
		}
		if len(line) <= 2 { // the blank line ends the header
			break
		}
		if k, v, ok := bytes.Cut(line, []byte(":")); ok && bytes.EqualFold(k, []byte("Content-Length")) {
			length, _ = strconv.Atoi(string(bytes.TrimSpace(v)))
		}
	}
	if status != http.StatusOK || length < 0 || length > 1<<16 {
		return nil, fmt.Errorf("status %d, length %d", status, length)
	}
	c.body = slices.Grow(c.body[:0], length)[:length]
	if _, err := io.ReadFull(c.r, c.body); err != nil {
		return nil, err
	}
	return c.body, nil
}
