package server_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"upkeep.dev/upkeep/reconcile"
	"upkeep.dev/upkeep/reconcile/fleet"
	"upkeep.dev/upkeep/reconcile/fleet/pgtest"
	"upkeep.dev/upkeep/reconcile/fleet/sqlstore"
	"upkeep.dev/upkeep/reconcile/report"
	"upkeep.dev/upkeep/reconcile/server"
	"upkeep.dev/upkeep/reconcile/server/loadtest"
)

// fleetAgents is the fleet size of the load target: 10,000 agents
// reporting every 5 minutes (33 reports/s). The benchmark sends reports as
// fast as 8 concurrent senders can, far above that rate, so its latencies
// are an upper bound for the target load.
const fleetAgents = 10_000

// BenchmarkFleetLoad is report handling for a 10,000-agent fleet: every
// agent reports once before the clock starts (so the store holds the
// fleet and its history), then reports go round-robin over the agents
// through two handlers ("replicas") sharing one PostgreSQL, or one handler
// on a SQLite file. It reports p50 and p99 latency per report and the
// store's size per agent.
func BenchmarkFleetLoad(b *testing.B) {
	tokens, _ := report.ParseTokens("t", []byte(reportToken))
	bodies := make([][]byte, fleetAgents)
	for i := range bodies {
		bodies[i] = []byte(reportJSON(b, agentReport(fmt.Sprintf("agent-%05d", i), "eu-prod", "17.2.3", "healthy", reconcile.ActionWait)))
	}
	for _, engine := range []string{"postgres", "sqlite"} {
		b.Run(engine, func(b *testing.B) {
			var stores []fleet.Store
			var size func() int64
			open := func(url string) fleet.Store {
				st, err := sqlstore.Open(context.Background(), url, fleet.Options{})
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { st.Close() })
				return st
			}
			if engine == "sqlite" {
				file := filepath.Join(b.TempDir(), "fleet.db")
				stores = []fleet.Store{open("sqlite://" + file)}
				size = func() int64 {
					var n int64
					for _, f := range []string{file, file + "-wal"} {
						if fi, err := os.Stat(f); err == nil {
							n += fi.Size()
						}
					}
					return n
				}
			} else {
				url := pgtest.Shared(b)
				stores = []fleet.Store{open(url), open(url)}
				size = func() int64 { return pgDatabaseSize(b, url) }
			}
			handlers := make([]http.Handler, len(stores))
			for i, st := range stores {
				handlers[i] = server.New(serving(b, "rev1"), server.Options{ReportTokens: tokens, Store: st, Logger: slog.New(slog.DiscardHandler)})
			}
			send := func(h http.Handler, body []byte) {
				req := httptest.NewRequest("POST", "/v1/reports", bytes.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+reportToken)
				w := &discardWriter{h: http.Header{}}
				h.ServeHTTP(w, req)
				if w.code != http.StatusAccepted {
					b.Errorf("status %d", w.code)
				}
			}
			// Seed the fleet: every agent known before timing starts.
			var wg sync.WaitGroup
			for s := range 8 {
				wg.Go(func() {
					for i := s; i < fleetAgents; i += 8 {
						send(handlers[i%len(handlers)], bodies[i])
					}
				})
			}
			wg.Wait()

			var next atomic.Int64
			var mu sync.Mutex
			var lat []time.Duration
			b.SetParallelism(4) // 8 senders on 2 cores
			selfCPU, pgCPU := loadtest.ProcessCPU(), postgresCPU()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				own := make([]time.Duration, 0, 1024)
				for pb.Next() {
					i := int(next.Add(1)) % fleetAgents
					start := time.Now()
					send(handlers[i%len(handlers)], bodies[i])
					own = append(own, time.Since(start))
				}
				mu.Lock()
				lat = append(lat, own...)
				mu.Unlock()
			})
			b.StopTimer()
			// CPU per report: this process (handlers, the driver and, for
			// SQLite, the whole store) and PostgreSQL's own processes.
			b.ReportMetric(float64((loadtest.ProcessCPU()-selfCPU).Microseconds())/float64(b.N), "server-cpu-µs/report")
			if engine == "postgres" {
				b.ReportMetric(float64((postgresCPU()-pgCPU).Microseconds())/float64(b.N), "postgres-cpu-µs/report")
			}
			slices.Sort(lat)
			pct := func(p float64) float64 {
				return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
			}
			b.ReportMetric(pct(0.50), "p50-ms")
			b.ReportMetric(pct(0.99), "p99-ms")
			b.ReportMetric(float64(size())/fleetAgents, "store-bytes/agent")
		})
	}
}

// postgresCPU is the CPU time used so far by the processes named
// postgres: during the benchmark, the server pgtest started.
func postgresCPU() time.Duration {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var ticks int64
	for _, p := range stats {
		raw, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		s := string(raw)
		open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || end < open || s[open+1:end] != "postgres" {
			continue
		}
		f := strings.Fields(s[end+1:]) // f[0] is field 3 (state); utime and stime are fields 14 and 15
		if len(f) < 13 {
			continue
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		ticks += u + st
	}
	return time.Duration(ticks) * 10 * time.Millisecond // USER_HZ is 100 on Linux
}

// pgDatabaseSize is the size of the database url names, in bytes.
func pgDatabaseSize(b *testing.B, url string) int64 {
	b.Helper()
	st, err := sqlstore.Open(context.Background(), url, fleet.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	var n int64
	if err := st.DB().QueryRowContext(context.Background(), "SELECT pg_database_size(current_database())").Scan(&n); err != nil {
		b.Fatal(err)
	}
	return n
}
