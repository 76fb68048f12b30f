package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"upkeep.dev/upkeep/reconcile"
	"upkeep.dev/upkeep/reconcile/fleet"
	"upkeep.dev/upkeep/reconcile/fleet/pgtest"
	"upkeep.dev/upkeep/reconcile/fleet/sqlstore"
	"upkeep.dev/upkeep/reconcile/report"
	"upkeep.dev/upkeep/reconcile/rollout"
	"upkeep.dev/upkeep/reconcile/server"
)

const (
	reportToken = "c0ffee0123456789abcdef0123456789"
	labToken    = "lab-fleet-token-000000000000001"
	wrongToken  = "not-a-configured-token-000000000"
)

// clock is the store's injected clock.
type clock struct{ t atomic.Pointer[time.Time] }

func (c *clock) Now() time.Time          { return *c.t.Load() }
func (c *clock) Set(t time.Time)         { c.t.Store(&t) }
func (c *clock) Advance(d time.Duration) { c.Set(c.Now().Add(d)) }

type reportServer struct {
	*testServer
	clock *clock
	store fleet.Store
}

// openStore opens a real SQLite fleet store in a file of the test's own.
func openStore(t testing.TB, o fleet.Options) (*sqlstore.Store, string) {
	t.Helper()
	url := "sqlite://" + filepath.Join(t.TempDir(), "fleet.db")
	st, err := sqlstore.Open(context.Background(), url, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st, url
}

func testTokens(t testing.TB) *report.Tokens {
	t.Helper()
	tokens, err := report.ParseTokens("tokens", []byte("# hosts\n"+reportToken+"\n"+labToken+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	return tokens
}

// startReports serves the test fleet with reports enabled (both tokens)
// over a real SQLite store, over real HTTP on 127.0.0.1.
func startReports(t testing.TB, o fleet.Options) *reportServer {
	t.Helper()
	store, _ := openStore(t, o)
	return startOn(t, store, serving(t, "rev1"), nil)
}

// startOn serves b with the fleet routes over store, as one replica.
func startOn(t testing.TB, store fleet.Store, b *fakeBackend, answers func() *rollout.Answers) *reportServer {
	t.Helper()
	c := &clock{}
	c.Set(buildTime)
	reg := prometheus.NewRegistry()
	logs := &bytes.Buffer{}
	h := server.New(b, server.Options{
		Registerer: reg, ReportTokens: testTokens(t), Store: store, Now: c.Now, Answers: answers,
		Logger: slog.New(slog.NewTextHandler(&lockedWriter{w: logs}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return &reportServer{testServer: &testServer{Server: s, b: b, reg: reg, log: logs}, clock: c, store: store}
}

// known says the store holds a report of agent id.
func (s *reportServer) known(t testing.TB, id string) bool {
	t.Helper()
	_, ok, err := s.store.Agent(context.Background(), id, s.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

func (s *reportServer) logs() string {
	// The logger writes through lockedWriter; reading after the requests
	// have returned is ordered by them.
	return s.log.String()
}

// send makes a request with a body and headers (name, value pairs).
func (s *testServer) send(t testing.TB, method, path, body string, header ...string) response {
	t.Helper()
	req, err := http.NewRequest(method, s.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		t.Fatal(err)
	}
	return response{code: resp.StatusCode, body: string(b), header: resp.Header}
}

func bearer(token string) []string { return []string{"Authorization", "Bearer " + token} }

func agentReport(id, group, version, health string, action reconcile.Action) report.Report {
	next := buildTime.Add(36 * time.Hour)
	r := report.Report{
		AgentID: id, Group: group, Channel: "stable/cloud", Kind: report.KindHost, Hostname: id + ".example.com",
		CurrentVersion: version, TargetVersion: "17.3.0", Health: health, NextWindow: &next,
		UpdaterVersion: "1.4.0", Time: buildTime,
	}
	r.SetDecision(reconcile.Decision{Action: action, Rule: reconcile.RuleWaitForWindow, Reason: "NextWindow", Message: "waits for the window"})
	return r
}

func reportJSON(t testing.TB, r report.Report) string {
	t.Helper()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func (s *reportServer) post(t testing.TB, r report.Report) {
	t.Helper()
	if got := s.send(t, "POST", "/v1/reports", reportJSON(t, r), bearer(reportToken)...); got.code != http.StatusAccepted {
		t.Fatalf("POST /v1/reports: %d %s", got.code, got.body)
	}
}

// fleetPage is GET /v1/fleet's body.
type fleetPage struct {
	report.Fleet
	Next  *fleet.Cursor `json:"next"`
	After string        `json:"after"`
}

func (s *reportServer) fleet(t testing.TB, query string) fleetPage {
	t.Helper()
	got := s.send(t, "GET", "/v1/fleet"+query, "", bearer(reportToken)...)
	if got.code != http.StatusOK {
		t.Fatalf("GET /v1/fleet%s: %d %s", query, got.code, got.body)
	}
	var f fleetPage
	dec := json.NewDecoder(strings.NewReader(got.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		t.Fatalf("GET /v1/fleet: %v\n%s", err, got.body)
	}
	return f
}

func TestReportsDisabledWithoutTokens(t *testing.T) {
	s := start(t, serving(t, "rev1"), nil)
	for _, tc := range []struct{ method, path string }{{"POST", "/v1/reports"}, {"GET", "/v1/fleet"}} {
		got := s.send(t, tc.method, tc.path, reportJSON(t, agentReport("a1", "eu-prod", "17.2.3", "healthy", reconcile.ActionWait)), bearer(reportToken)...)
		if got.code != http.StatusNotFound || !strings.Contains(got.body, "--report-token-file") {
			t.Errorf("%s %s without tokens: %d %q, want 404 naming the flag", tc.method, tc.path, got.code, got.body)
		}
	}
	if strings.Contains(s.do(t, "GET", "/metrics").body, "upkeep_reports_total") {
		t.Error("report metrics are registered while reports are disabled")
	}
}

func TestPostReport(t *testing.T) {
	good := reportJSON(t, agentReport("web-01", "eu-prod", "17.2.3", "healthy", reconcile.ActionWait))
	unknownField := strings.Replace(good, "{", `{"colour":"blue",`, 1)
	badVersion := strings.Replace(good, `"currentVersion":"17.2.3"`, `"currentVersion":"latest"`, 1)
	// Padding inside a string keeps the JSON valid: only the size is wrong.
	oversized := strings.Replace(good, `"message":"`, `"message":"`+strings.Repeat("x", server.MaxReportBody), 1)
	for _, tc := range []struct {
		scenario string
		method   string
		body     string
		header   []string
		code     int
		want     []string // in the body
		wwwAuth  string   // WWW-Authenticate, when 401
		stored   bool
	}{
		{scenario: "a report without a token is refused", body: good, code: 401,
			want: []string{"missing bearer token"}, wwwAuth: `Bearer realm="upkeep"`},
		{scenario: "basic credentials are not a bearer token", body: good, header: []string{"Authorization", "Basic dXNlcjpwYXNz"}, code: 401,
			want: []string{"missing bearer token"}, wwwAuth: `Bearer realm="upkeep"`},
		{scenario: "a report with a wrong token is refused", body: good, header: bearer(wrongToken), code: 401,
			want: []string{"not one of the server's report tokens"}, wwwAuth: `Bearer realm="upkeep", error="invalid_token"`},
		{scenario: "a token is refused before its body is read, however large", body: oversized, header: bearer(wrongToken), code: 401},
		{scenario: "a report with a good token is accepted", body: good, header: bearer(reportToken), code: 202, stored: true},
		{scenario: "any configured token is good", body: good, header: []string{"Authorization", "bearer " + labToken}, code: 202, stored: true},
		{scenario: "a body over 64 KiB is refused", body: oversized, header: bearer(reportToken), code: 413, want: []string{"64 KiB"}},
		{scenario: "an unknown field is refused, naming it", body: unknownField, header: bearer(reportToken), code: 400,
			want: []string{"colour: unknown field", "agentId"}},
		{scenario: "a version that is not semver is refused, naming the field", body: badVersion, header: bearer(reportToken), code: 400,
			want: []string{"currentVersion:", `"latest" is not a semantic version`}},
		{scenario: "two reports in one body are refused", body: good + good, header: bearer(reportToken), code: 400, want: []string{"exactly one object"}},
		{scenario: "an empty body is refused", body: "", header: bearer(reportToken), code: 400, want: []string{"empty body"}},
		{scenario: "GET is not how reports are sent", method: "GET", header: bearer(reportToken), code: 405, want: []string{"use POST"}},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			s := startReports(t, fleet.Options{})
			method := tc.method
			if method == "" {
				method = "POST"
			}
			got := s.send(t, method, "/v1/reports", tc.body, tc.header...)
			if got.code != tc.code {
				t.Fatalf("%d %q, want %d", got.code, got.body, tc.code)
			}
			for _, w := range tc.want {
				if !strings.Contains(got.body, w) {
					t.Errorf("body %q lacks %q", got.body, w)
				}
			}
			if tc.wwwAuth != "" && got.header.Get("WWW-Authenticate") != tc.wwwAuth {
				t.Errorf("WWW-Authenticate %q, want %q", got.header.Get("WWW-Authenticate"), tc.wwwAuth)
			}
			if tc.code == 405 && got.header.Get("Allow") != "POST" {
				t.Errorf("Allow %q", got.header.Get("Allow"))
			}
			if ok := s.known(t, "web-01"); ok != tc.stored {
				t.Errorf("stored = %v, want %v", ok, tc.stored)
			}
			if tc.stored {
				f := s.fleet(t, "")
				if len(f.Agents) != 1 || f.Agents[0].AgentID != "web-01" || f.Agents[0].Hostname != "web-01.example.com" {
					t.Errorf("/v1/fleet after the report: %+v", f.Agents)
				}
			}
			for _, secret := range []string{reportToken, labToken, wrongToken} {
				if strings.Contains(s.logs(), secret) {
					t.Errorf("the log shows a token:\n%s", s.logs())
				}
			}
		})
	}
}

func TestFleetNeedsAToken(t *testing.T) {
	s := startReports(t, fleet.Options{})
	s.post(t, agentReport("web-01", "eu-prod", "17.2.3", "healthy", reconcile.ActionWait))
	for _, tc := range []struct {
		scenario string
		method   string
		header   []string
		code     int
	}{
		{scenario: "the fleet is not shown without a token", method: "GET", code: 401},
		{scenario: "the fleet is not shown with a wrong token", method: "GET", header: bearer(wrongToken), code: 401},
		{scenario: "the fleet is shown with a report token", method: "GET", header: bearer(reportToken), code: 200},
		{scenario: "the fleet is read-only", method: "POST", header: bearer(reportToken), code: 405},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			got := s.send(t, tc.method, "/v1/fleet", "", tc.header...)
			if got.code != tc.code {
				t.Fatalf("%d %q, want %d", got.code, got.body, tc.code)
			}
			if shown := strings.Contains(got.body, "web-01"); shown != (tc.code == 200) {
				t.Errorf("agent shown = %v with status %d", shown, tc.code)
			}
			if tc.code == 200 && (got.header.Get("Cache-Control") != "no-store" || got.header.Get("Content-Type") != "application/json") {
				t.Errorf("headers %v", got.header)
			}
		})
	}
}

func TestTheLatestReportReplacesThePrevious(t *testing.T) {
	s := startReports(t, fleet.Options{})
	s.post(t, agentReport("web-01", "eu-prod", "17.2.3", "healthy", reconcile.ActionWait))
	s.clock.Advance(5 * time.Minute)
	second := agentReport("web-01", "eu-prod", "v17.3.0", "unhealthy", reconcile.ActionUpdate)
	second.LastError = "health check failed after the update"
	s.post(t, second)

	f := s.fleet(t, "")
	if len(f.Agents) != 1 {
		t.Fatalf("%d agents, want 1: %+v", len(f.Agents), f.Agents)
	}
	a := f.Agents[0]
	if a.CurrentVersion != "17.3.0" || a.Health != "unhealthy" || a.Action != "Update" || a.LastError == "" {
		t.Errorf("agent %+v, want the second report", a.Report)
	}
	if !a.ReceivedAt.Equal(buildTime.Add(5*time.Minute)) || a.Stale {
		t.Errorf("receivedAt %s stale %v", a.ReceivedAt, a.Stale)
	}
	if f.Counts.Agents != 1 || f.Counts.ByVersion["17.3.0"] != 1 || f.Counts.ByVersion["17.2.3"] != 0 {
		t.Errorf("counts %+v", f.Counts)
	}
}

func TestFleetCountsFiltersAndStaleness(t *testing.T) {
	s := startReports(t, fleet.Options{StaleAfter: 15 * time.Minute})
	s.post(t, agentReport("db-01", "us-prod", "17.2.3", "healthy", reconcile.ActionWait))
	s.clock.Advance(10 * time.Minute)
	s.post(t, agentReport("web-02", "eu-prod", "17.3.0", "healthy", reconcile.ActionNothing))
	s.post(t, agentReport("web-01", "eu-prod", "17.2.3", "unhealthy", reconcile.ActionUpdate))
	s.post(t, agentReport("lab-01", "lab", "17.3.0", "unknown", reconcile.ActionWait))

	f := s.fleet(t, "")
	var order []string
	for _, a := range f.Agents {
		order = append(order, a.AgentID)
	}
	if fmt.Sprint(order) != "[web-01 web-02 lab-01 db-01]" {
		t.Errorf("order %v, want by group then id", order)
	}
	want := report.Counts{
		Agents:    4,
		ByGroup:   map[string]int{"eu-prod": 2, "lab": 1, "us-prod": 1},
		ByVersion: map[string]int{"17.2.3": 2, "17.3.0": 2},
		ByHealth:  map[string]int{"healthy": 2, "unhealthy": 1, "unknown": 1},
		ByAction:  map[string]int{"Wait": 2, "Update": 1, "Nothing": 1},
	}
	if fmt.Sprint(f.Counts) != fmt.Sprint(want) || f.StaleAfter != "15m0s" || !f.Time.Equal(buildTime.Add(10*time.Minute)) {
		t.Errorf("fleet %+v / %s / %s\nwant counts %+v", f.Counts, f.StaleAfter, f.Time, want)
	}

	// 6 minutes on, db-01 has been silent for 16: stale, in the list and the counts.
	s.clock.Advance(6 * time.Minute)
	f = s.fleet(t, "")
	for _, a := range f.Agents {
		if a.Stale != (a.AgentID == "db-01") {
			t.Errorf("%s stale = %v", a.AgentID, a.Stale)
		}
	}
	if f.Counts.Stale != 1 || f.Counts.ByHealth["stale"] != 1 || f.Counts.ByHealth["healthy"] != 1 {
		t.Errorf("counts after 16 minutes: %+v", f.Counts)
	}

	for _, tc := range []struct {
		scenario, query string
		ids             string
	}{
		{scenario: "a group selects its agents and counts", query: "?group=eu-prod", ids: "[web-01 web-02]"},
		{scenario: "stale selects the silent agents", query: "?health=stale", ids: "[db-01]"},
		{scenario: "group and health combine", query: "?group=eu-prod&health=unhealthy", ids: "[web-01]"},
		{scenario: "an unknown group selects none", query: "?group=nowhere", ids: "[]"},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			f := s.fleet(t, tc.query)
			var ids []string
			for _, a := range f.Agents {
				ids = append(ids, a.AgentID)
			}
			if fmt.Sprint(ids) != tc.ids || f.Counts.Agents != len(ids) {
				t.Errorf("agents %v (counted %d), want %s", ids, f.Counts.Agents, tc.ids)
			}
		})
	}
	for _, q := range []string{"?health=ok", "?colour=blue", "?%0aevil=1"} {
		if got := s.send(t, "GET", "/v1/fleet"+q, "", bearer(reportToken)...); got.code != 400 || strings.Contains(got.body, "\nevil") {
			t.Errorf("GET /v1/fleet%s: %d %q, want 400", q, got.code, got.body)
		}
	}
}

func TestStoreFullAnswers503(t *testing.T) {
	s := startReports(t, fleet.Options{MaxAgents: 1})
	s.post(t, agentReport("web-01", "eu-prod", "17.2.3", "healthy", reconcile.ActionWait))
	got := s.send(t, "POST", "/v1/reports", reportJSON(t, agentReport("web-02", "eu-prod", "17.2.3", "healthy", reconcile.ActionWait)), bearer(reportToken)...)
	if got.code != 503 || !strings.Contains(got.body, "full") || !strings.Contains(got.body, "new agent id on every run") {
		t.Errorf("past the cap: %d %q", got.code, got.body)
	}
	// The known agent still reports.
	s.post(t, agentReport("web-01", "eu-prod", "17.3.0", "healthy", reconcile.ActionNothing))
}

func TestReportMetrics(t *testing.T) {
	s := startReports(t, fleet.Options{StaleAfter: 15 * time.Minute})
	s.post(t, agentReport("db-01", "us-prod", "17.2.3", "healthy", reconcile.ActionWait))
	s.clock.Advance(10 * time.Minute)
	s.post(t, agentReport("web-01", "eu-prod", "17.2.3", "healthy", reconcile.ActionWait))
	s.post(t, agentReport("web-02", "eu-prod", "v17.2.3", "healthy", reconcile.ActionWait))
	s.post(t, agentReport("web-03", "eu-prod", "17.3.0", "unhealthy", reconcile.ActionUpdate))
	s.send(t, "POST", "/v1/reports", "{}", bearer(wrongToken)...)
	s.send(t, "POST", "/v1/reports", "{}", bearer(reportToken)...)
	s.send(t, "POST", "/v1/reports", strings.Repeat(" ", server.MaxReportBody+1), bearer(reportToken)...)

	check := func(want, absent []string) {
		t.Helper()
		body := s.do(t, "GET", "/metrics").body
		for _, w := range want {
			if !strings.Contains(body, w+"\n") {
				t.Errorf("metrics lack %s\n%s", w, grep(body, "upkeep_agents"))
			}
		}
		for _, a := range absent {
			if strings.Contains(body, a) {
				t.Errorf("metrics have %s", a)
			}
		}
	}
	check([]string{
		`upkeep_agents{group="eu-prod",health="healthy",version="17.2.3"} 2`,
		`upkeep_agents{group="eu-prod",health="unhealthy",version="17.3.0"} 1`,
		`upkeep_agents{group="us-prod",health="healthy",version="17.2.3"} 1`,
		`upkeep_reports_total{result="accepted"} 4`,
		`upkeep_reports_total{result="unauthorized"} 1`,
		`upkeep_reports_total{result="invalid"} 1`,
		`upkeep_reports_total{result="too_large"} 1`,
		`upkeep_reports_total{result="store_full"} 0`,
		`upkeep_http_requests_total{code="202",route="reports"} 4`,
		`upkeep_http_requests_total{code="401",route="reports"} 1`,
		`upkeep_http_requests_total{code="413",route="reports"} 1`,
	}, []string{`version="v17.2.3"`})

	// Staleness is judged at scrape time.
	s.clock.Advance(6 * time.Minute)
	check([]string{`upkeep_agents{group="us-prod",health="stale",version="17.2.3"} 1`},
		[]string{`upkeep_agents{group="us-prod",health="healthy"`})
}

func TestClientAgainstTheServer(t *testing.T) {
	s := startReports(t, fleet.Options{})
	dir := t.TempDir()
	write := func(name, token string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(token+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// The updater points at the version server URL it already has.
	c, err := report.NewClient(s.URL+"/v1/webapi/automaticupgrades/channel", report.ClientOptions{TokenFile: write("good", labToken)})
	if err != nil {
		t.Fatal(err)
	}
	r := agentReport("web-01", "eu-prod", "17.2.3", "healthy", reconcile.ActionWait)
	r.Time = time.Time{} // the client fills it
	if err := c.Send(context.Background(), r); err != nil {
		t.Fatalf("Send: %v", err)
	}
	f := s.fleet(t, "")
	if len(f.Agents) != 1 || f.Agents[0].AgentID != "web-01" || f.Agents[0].Time.IsZero() || f.Agents[0].NextWindow == nil {
		t.Fatalf("after Send the fleet is %+v", f.Agents)
	}

	bad, err := report.NewClient(s.URL, report.ClientOptions{TokenFile: write("bad", wrongToken)})
	if err != nil {
		t.Fatal(err)
	}
	err = bad.Send(context.Background(), r)
	if err == nil || !strings.Contains(err.Error(), "401") || !strings.Contains(err.Error(), "check the token file") || strings.Contains(err.Error(), wrongToken) {
		t.Errorf("Send with a wrong token: %v", err)
	}

	disabled := start(t, serving(t, "rev1"), nil)
	off, err := report.NewClient(disabled.URL, report.ClientOptions{TokenFile: write("good2", reportToken)})
	if err != nil {
		t.Fatal(err)
	}
	if err := off.Send(context.Background(), r); err == nil || !strings.Contains(err.Error(), "--report-token-file") {
		t.Errorf("Send to a server without reports: %v", err)
	}
}

// TestConcurrentReports posts from many updaters at once while the fleet
// and metrics are read; with -race it checks the store is shared safely.
func TestConcurrentReports(t *testing.T) {
	s := startReports(t, fleet.Options{})
	var wg sync.WaitGroup
	do := func(method, path, body, token string) (int, error) {
		req, err := http.NewRequest(method, s.URL+path, strings.NewReader(body))
		if err != nil {
			return 0, err
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := s.Client().Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		_, err = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, err
	}
	for w := range 8 {
		wg.Go(func() {
			for i := range 25 {
				body := reportJSON(t, agentReport(fmt.Sprintf("agent-%d-%d", w, i), "eu-prod", "17.2.3", "healthy", reconcile.ActionWait))
				for _, req := range []struct {
					method, path, body, token string
					want                      int
				}{
					{"POST", "/v1/reports", body, "", 401},
					{"POST", "/v1/reports", body, reportToken, 202},
					{"GET", "/v1/fleet", "", reportToken, 200},
					{"GET", "/metrics", "", "", 200},
				} {
					if code, err := do(req.method, req.path, req.body, req.token); err != nil || code != req.want {
						t.Errorf("%s %s: %d %v, want %d", req.method, req.path, code, err, req.want)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	if n := len(s.fleet(t, "").Agents); n != 200 {
		t.Errorf("%d agents, want 200", n)
	}
}

// BenchmarkPostReport is POST /v1/reports through the handler into a real
// store (a SQLite file; PostgreSQL started by pgtest): one transaction per
// report (the latest row, the history row, the pruning), 1000 agents
// reporting in turn, one at a time.
func BenchmarkPostReport(b *testing.B) {
	tokens, _ := report.ParseTokens("t", []byte(reportToken))
	bodies := make([][]byte, 1000)
	for i := range bodies {
		bodies[i] = []byte(reportJSON(b, agentReport(fmt.Sprintf("agent-%04d", i), "eu-prod", "17.2.3", "healthy", reconcile.ActionWait)))
	}
	for _, engine := range []string{"sqlite", "postgres"} {
		b.Run(engine, func(b *testing.B) {
			var store fleet.Store
			if engine == "sqlite" {
				store, _ = openStore(b, fleet.Options{})
			} else {
				st, err := sqlstore.Open(context.Background(), pgtest.Shared(b), fleet.Options{})
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { st.Close() })
				store = st
			}
			h := server.New(serving(b, "rev1"), server.Options{ReportTokens: tokens, Store: store, Logger: slog.New(slog.DiscardHandler)})
			w := &discardWriter{h: http.Header{}}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				req := httptest.NewRequest("POST", "/v1/reports", bytes.NewReader(bodies[i%len(bodies)]))
				req.Header.Set("Authorization", "Bearer "+reportToken)
				h.ServeHTTP(w, req)
				if w.code != http.StatusAccepted {
					b.Fatalf("status %d", w.code)
				}
				i++
			}
		})
	}
}
