package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// BenchmarkServeThroughput measures the built `upkeep serve` on loopback: 32
// clients on keep-alive connections ask for channel versions (Teleport's
// route) as fast as they can. It reports requests per second and the 99th
// percentile latency. Client and server share the machine's cores.
func BenchmarkServeThroughput(b *testing.B) {
	dir := b.TempDir()
	doc := fleetControlPlanes + "---\n" + fleetChannels("17.3.0", false) + "---\n" + fleetGroups
	if err := os.WriteFile(filepath.Join(dir, "fleet.yaml"), []byte(doc), 0o644); err != nil {
		b.Fatal(err)
	}
	srv := startServe(b, "--source", dir)
	waitFor(b, 20*time.Second, "readyz", func() bool {
		code, _, _ := get(b, srv.URL+"/readyz")
		return code == http.StatusOK
	})
	const clients = 32
	tr := &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	urls := []string{
		srv.URL + "/v1/webapi/automaticupgrades/channel/stable/cloud/version",
		srv.URL + "/v1/stable/rolling/version",
		srv.URL + "/v1/webapi/automaticupgrades/channel/stable/cloud/critical",
	}

	var (
		mu        sync.Mutex
		latencies = make([]time.Duration, 0, b.N)
		wg        sync.WaitGroup
		next      = make(chan int, clients)
		failed    error
	)
	b.ResetTimer()
	start := time.Now()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			own := make([]time.Duration, 0, b.N/clients+1)
			for i := range next {
				t0 := time.Now()
				resp, err := c.Get(urls[i%len(urls)])
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				own = append(own, time.Since(t0))
				if err != nil {
					mu.Lock()
					failed = err
					mu.Unlock()
				}
			}
			mu.Lock()
			latencies = append(latencies, own...)
			mu.Unlock()
		}()
	}
	for i := range b.N {
		next <- i
	}
	close(next)
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if failed != nil {
		b.Fatal(failed)
	}
	slices.Sort(latencies)
	p99 := latencies[len(latencies)*99/100]
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
	b.ReportMetric(float64(p99.Microseconds()), "p99-µs")
}

// floorSource is the floor: a plain net/http server answering a fixed
// body, built as its own process like `upkeep serve`.
const floorSource = `package main

import (
	"fmt"
	"net"
	"net/http"
)

func main() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	fmt.Println(ln.Addr())
	body := []byte("v17.3.0")
	_ = http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(body) }))
}
`

// startFloor builds and starts the floor server and returns its address.
func startFloor(b *testing.B) string {
	dir := b.TempDir()
	for name, data := range map[string]string{"go.mod": "module floor\n\ngo 1.26\n", "main.go": floorSource} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	run(b, dir, "go", "build", "-o", "floor", ".")
	cmd := exec.Command(filepath.Join(dir, "floor"))
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		b.Fatalf("floor server: %v", err)
	}
	return strings.TrimSpace(line)
}

// BenchmarkServeVsFloor runs the built `upkeep serve` and the floor (a
// plain net/http server with a fixed body), each its own process, under
// the same load: 16 keep-alive connections from a minimal raw-TCP client
// asking Teleport's /version route, in alternating rounds (floor first in
// even rounds), so that noise from the shared machine falls on both. The
// ratio is the median of the rounds' upkeep/floor req/s.
func BenchmarkServeVsFloor(b *testing.B) {
	dir := b.TempDir()
	doc := fleetControlPlanes + "---\n" + fleetChannels("17.3.0", false) + "---\n" + fleetGroups
	if err := os.WriteFile(filepath.Join(dir, "fleet.yaml"), []byte(doc), 0o644); err != nil {
		b.Fatal(err)
	}
	srv := startServe(b, "--source", dir)
	waitFor(b, 20*time.Second, "readyz", func() bool {
		code, _, _ := get(b, srv.URL+"/readyz")
		return code == http.StatusOK
	})
	const (
		conns  = 16
		rounds = 20
		path   = "/v1/webapi/automaticupgrades/channel/stable/cloud/version"
	)
	addrs := [2]string{startFloor(b), strings.TrimPrefix(srv.URL, "http://")}
	names := [2]string{"floor", "upkeep"}
	var cs [2][]*rawConn
	for i, addr := range addrs {
		for range conns {
			c, err := dialRaw(addr, path)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { c.Close() })
			if got, err := c.get(); err != nil || string(got) != "v17.3.0" {
				b.Fatalf("%s answered %q, %v", names[i], got, err)
			}
			cs[i] = append(cs[i], c)
		}
	}
	perConn := max(b.N/(rounds*conns), 1)
	var (
		lat   [2][]time.Duration
		took  [2]time.Duration
		pairs []float64
	)
	b.ResetTimer()
	for round := range rounds {
		var rps [2]float64
		for k := range 2 {
			i := k ^ (round & 1)
			own := make([][]time.Duration, conns)
			errs := make([]error, conns)
			var wg sync.WaitGroup
			t0 := time.Now()
			for j, c := range cs[i] {
				wg.Go(func() {
					l := make([]time.Duration, 0, perConn)
					for range perConn {
						s := time.Now()
						got, err := c.get()
						l = append(l, time.Since(s))
						if err != nil || len(got) != len("v17.3.0") {
							errs[j] = fmt.Errorf("%s: %q %v", names[i], got, err)
							break
						}
					}
					own[j] = l
				})
			}
			wg.Wait()
			d := time.Since(t0)
			took[i] += d
			rps[i] = float64(conns*perConn) / d.Seconds()
			for j := range own {
				if errs[j] != nil {
					b.Fatal(errs[j])
				}
				lat[i] = append(lat[i], own[j]...)
			}
		}
		pairs = append(pairs, rps[1]/rps[0])
	}
	b.StopTimer()
	var p99 [2]float64
	for i := range names {
		slices.Sort(lat[i])
		p99[i] = float64(lat[i][len(lat[i])*99/100].Microseconds())
		b.ReportMetric(float64(len(lat[i]))/took[i].Seconds(), names[i]+"-req/s")
		b.ReportMetric(p99[i], names[i]+"-p99-µs")
	}
	slices.Sort(pairs)
	b.ReportMetric(pairs[len(pairs)/2], "ratio")
	b.ReportMetric(p99[1]-p99[0], "p99-diff-µs")
}

// rawConn is a keep-alive HTTP/1.1 connection that sends one fixed
// request and reads a response with a Content-Length body, about what wrk
// does, so the client costs little of the shared CPU.
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
		if len(line) <= 2 {
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
