package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
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
