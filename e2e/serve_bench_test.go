package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"upkeep.dev/upkeep/reconcile/server/loadtest"
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
// body, built as its own process like `upkeep serve`. With the argument
// "limits" it has the connection limits upkeep's server.NewHTTPServer sets,
// to tell their cost from the rest.
const floorSource = `package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"time"
)

func main() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	fmt.Println(ln.Addr())
	body := []byte("v17.3.0")
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(body) })}
	if len(os.Args) > 1 && os.Args[1] == "limits" {
		srv.ReadHeaderTimeout, srv.WriteTimeout, srv.IdleTimeout = 5*time.Second, 30*time.Second, 120*time.Second
		srv.MaxHeaderBytes = 64 << 10
	}
	_ = srv.Serve(ln)
}
`

// startFloor builds and starts the floor server with args and returns its
// address and process ID.
func startFloor(b *testing.B, args ...string) (string, int) {
	dir := b.TempDir()
	for name, data := range map[string]string{"go.mod": "module floor\n\ngo 1.26\n", "main.go": floorSource} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	run(b, dir, "go", "build", "-o", "floor", ".")
	cmd := exec.Command(filepath.Join(dir, "floor"), args...)
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
	return strings.TrimSpace(line), cmd.Process.Pid
}

// BenchmarkServeVsFloor runs the built `upkeep serve` and the floor (a
// plain net/http server with a fixed body), each its own process, under
// the same load: 16 keep-alive connections from a minimal raw-TCP client
// asking Teleport's /version route, in alternating rounds (floor first in
// even rounds), so that noise from the shared machine falls on both. The
// ratio is the median of the rounds' upkeep/floor req/s; server-cpu-ratio
// compares the two processes' own CPU per request. The floor runs twice:
// plain, as the target names it, and with upkeep's connection
// limits (header, write and idle timeouts), which tells what those cost.
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
	for _, floor := range []struct{ name, arg string }{{"plain", ""}, {"same-limits", "limits"}} {
		b.Run("floor="+floor.name, func(b *testing.B) {
			var args []string
			if floor.arg != "" {
				args = append(args, floor.arg)
			}
			addr, pid := startFloor(b, args...)
			loadtest.Comparison{
				FloorAddr: addr, UpkeepAddr: strings.TrimPrefix(srv.URL, "http://"),
				Path: "/v1/webapi/automaticupgrades/channel/stable/cloud/version", Body: []byte("v17.3.0"),
				Conns: 16, Rounds: 20, PIDs: [2]int{pid, srv.cmd.Process.Pid},
			}.Run(b)
		})
	}
}
