// Package loadtest drives HTTP servers for the benchmarks that compare
// upkeep's server with a floor (a plain net/http server with a fixed
// body): a minimal keep-alive client, and rounds that alternate between
// the two so noise from a shared machine falls on both. Tests only.
package loadtest

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
)

// Conn is a keep-alive HTTP/1.1 client connection that sends one fixed
// request and reads a response with a Content-Length body: about what wrk
// does, so the client's cost stays small beside the server's.
type Conn struct {
	net.Conn
	r    *bufio.Reader
	req  []byte
	body []byte
}

// Dial connects to addr for GET path.
func Dial(addr, path string) (*Conn, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	return &Conn{Conn: c, r: bufio.NewReaderSize(c, 4096),
		req: []byte("GET " + path + " HTTP/1.1\r\nHost: bench\r\nUser-Agent: bench\r\n\r\n")}, nil
}

// Get sends the request and returns the body (valid until the next Get).
func (c *Conn) Get() ([]byte, error) {
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

// Comparison is one floor-versus-upkeep run.
type Comparison struct {
	FloorAddr, UpkeepAddr string
	Path                  string // the route both are asked
	Body                  []byte // the answer both must give
	Conns                 int    // keep-alive connections per server
	Rounds                int    // pairs of rounds
	// InProcess: both servers run in this process, so its CPU time and
	// allocations during a server's rounds are that server's (and the
	// shared client's), and are reported too.
	InProcess bool
	// PIDs are the floor's and upkeep's processes when each runs in its
	// own: their own CPU time per request is reported too (server-cpu-ratio).
	PIDs [2]int
}

// Run connects, checks both answers, then runs b.N requests in Rounds
// pairs of rounds (floor first in even pairs, upkeep first in odd ones)
// and reports per server req/s and p99, the median pair's req/s ratio
// (upkeep over floor: robust to one noisy round) and the p99 difference;
// in process, also allocations per request and the CPU ratio; with PIDs,
// each server's CPU per request and server-cpu-ratio, the floor's CPU per
// request over upkeep's (1: as cheap as the floor).
func (cmp Comparison) Run(b *testing.B) {
	b.Helper()
	names := [2]string{"floor", "upkeep"}
	var conns [2][]*Conn
	for i, addr := range [2]string{cmp.FloorAddr, cmp.UpkeepAddr} {
		for range cmp.Conns {
			c, err := Dial(addr, cmp.Path)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { c.Close() })
			// Warm the connection, and check the answer, before timing.
			if got, err := c.Get(); err != nil || !bytes.Equal(got, cmp.Body) {
				b.Fatalf("%s answered %q, %v", names[i], got, err)
			}
			conns[i] = append(conns[i], c)
		}
	}
	perConn := max(b.N/(cmp.Rounds*cmp.Conns), 1)
	var (
		lat     [2][]time.Duration
		took    [2]time.Duration
		cpu     [2]time.Duration
		srvCPU  [2]time.Duration
		mallocs [2]uint64
		pairs   []float64
		ms      runtime.MemStats
	)
	b.ResetTimer()
	for round := range cmp.Rounds {
		var rps [2]float64
		for k := range 2 {
			i := k ^ (round & 1)
			own := make([][]time.Duration, cmp.Conns)
			errs := make([]error, cmp.Conns)
			var wg sync.WaitGroup
			runtime.ReadMemStats(&ms)
			s0 := cmp.serverCPU(b, i)
			m0, c0, t0 := ms.Mallocs, ProcessCPU(), time.Now()
			for j, c := range conns[i] {
				wg.Go(func() {
					l := make([]time.Duration, 0, perConn)
					for range perConn {
						s := time.Now()
						got, err := c.Get()
						l = append(l, time.Since(s))
						if err != nil || len(got) != len(cmp.Body) {
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
			cpu[i] += ProcessCPU() - c0
			srvCPU[i] += cmp.serverCPU(b, i) - s0
			runtime.ReadMemStats(&ms)
			mallocs[i] += ms.Mallocs - m0
			rps[i] = float64(cmp.Conns*perConn) / d.Seconds()
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
	for i, name := range names {
		slices.Sort(lat[i])
		p99[i] = float64(lat[i][len(lat[i])*99/100].Microseconds())
		b.ReportMetric(float64(len(lat[i]))/took[i].Seconds(), name+"-req/s")
		b.ReportMetric(p99[i], name+"-p99-µs")
		if cmp.InProcess {
			b.ReportMetric(float64(mallocs[i])/float64(len(lat[i])), name+"-allocs/req")
		}
	}
	slices.Sort(pairs)
	b.ReportMetric(pairs[len(pairs)/2], "ratio")
	b.ReportMetric(p99[1]-p99[0], "p99-diff-µs")
	if cmp.InProcess {
		// CPU per request, client included (the same client for both):
		// less sensitive than req/s to what else runs on the machine.
		b.ReportMetric(float64(cpu[1])/float64(cpu[0]), "cpu-ratio")
		b.ReportMetric(float64(cpu[1]-cpu[0])/float64(len(lat[1])), "extra-cpu-ns/req")
	}
	if cmp.PIDs[0] != 0 && cmp.PIDs[1] != 0 {
		// Each server's own CPU per request: on a shared machine, steadier
		// than req/s, which also measures how the client was scheduled.
		for i, name := range names {
			b.ReportMetric(float64(srvCPU[i])/float64(len(lat[i])), name+"-cpu-ns/req")
		}
		b.ReportMetric(float64(srvCPU[0])/float64(len(lat[0]))/(float64(srvCPU[1])/float64(len(lat[1]))), "server-cpu-ratio")
	}
	b.ReportMetric(0, "ns/op") // the per-request figures above are the result
}

// serverCPU is server i's CPU time so far, or 0 when it is not measured.
func (cmp Comparison) serverCPU(b *testing.B, i int) time.Duration {
	if cmp.PIDs[i] == 0 {
		return 0
	}
	d, err := CPUOf(cmp.PIDs[i])
	if err != nil {
		b.Fatal(err)
	}
	return d
}
