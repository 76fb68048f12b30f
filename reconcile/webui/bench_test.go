package webui_test

import (
	"io"
	"net/http"
	"testing"
	"time"

	"upkeep.dev/upkeep/reconcile/server/loadtest"
)

// BenchmarkPages10k renders each view over real HTTP on loopback from a
// real SQLite store seeded with 10,000 agents, in the middle of two
// rollouts; the target is under 100 ms a page. The rollout page reads
// every agent of its channel (its stages' progress and failures), the
// others a page of 50 and the counts of their selection.
func BenchmarkPages10k(b *testing.B) {
	const agents = 10_000
	e := newEnv(b, envOptions{agents: agents})
	client := &http.Client{Timeout: 10 * time.Second}
	for _, p := range []struct{ name, path string }{
		{"overview", "/ui/"},
		{"rollout", "/ui/rollouts/stable/cloud"},
		{"rollout-halted", "/ui/rollouts/stable/onprem"},
		{"group", "/ui/groups/eu-prod"},
		{"agents", "/ui/agents"},
		{"agents-page-200", "/ui/agents?limit=200&group=us-prod"},
		{"agents-search", "/ui/agents?q=us-0999"},
		{"agent", "/ui/agents/c-1"},
		{"overview-fragment", "/ui/"},
	} {
		b.Run(p.name, func(b *testing.B) {
			req, err := http.NewRequest("GET", e.srv.URL+p.path, nil)
			if err != nil {
				b.Fatal(err)
			}
			req.AddCookie(sessionCookie(testToken))
			if p.name == "overview-fragment" {
				req.Header.Set("X-Upkeep-Fragment", "1")
			}
			var bytes int64
			b.ReportAllocs()
			start, cpu := time.Now(), loadtest.ProcessCPU()
			for b.Loop() {
				resp, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				n, _ := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("GET %s: %d", p.path, resp.StatusCode)
				}
				bytes = n
			}
			b.ReportMetric(float64(time.Since(start).Microseconds())/1000/float64(b.N), "ms/page")
			// CPU of the whole process (server, store and client), which a
			// shared machine's load does not inflate as it does wall time.
			b.ReportMetric(float64((loadtest.ProcessCPU()-cpu).Microseconds())/1000/float64(b.N), "cpu-ms/page")
			b.ReportMetric(float64(bytes), "B/page")
		})
	}
}
