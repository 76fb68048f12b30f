package server

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"upkeep.dev/upkeep/reconcile/fleet"
	"upkeep.dev/upkeep/reconcile/report"
)

// Updaters' reports and the fleet view, over the fleet store: every
// replica writes and reads the same rows, so any of them answers for the
// whole fleet.
//
//   - POST /v1/reports takes one report.Report as JSON (at most
//     MaxReportBody, unknown fields refused) and answers 202 once stored.
//   - GET /v1/fleet answers one page of {time, staleAfter, agents, counts,
//     next, after}: the latest report per agent, sorted by group then
//     agent id, and counts over every agent the filter selects.
//     ?group=<name> and ?health=<healthy|unhealthy|unknown|stale> select;
//     ?limit=<1..10000> sizes the page (default 10000); ?after=<the
//     previous page's "after"> (or ?afterGroup=&afterAgent=, the fields of
//     its "next") continues. "next" is absent on the last page.
//   - GET /v1/agents/<id> answers {agent, history}: the agent's latest
//     report and its past ones, newest first (?history=<n> bounds them).
//
// Every fleet route takes "Authorization: Bearer <token>" with a token of
// Options.ReportTokens. The fleet view needs a token too: versions and
// health are operational, not secret, but agent ids and hostnames map the
// fleet for an attacker. The same tokens serve every route so that one
// file is all there is to manage; whoever may report may see the fleet.
// The aggregate counts, which name no agent, are in /metrics
// (upkeep_agents) with the other metrics, unauthenticated.
//
// Without tokens, or without a store, the routes answer 404: disabled.

// MaxReportBody bounds the body of POST /v1/reports; a valid report, every
// field at its limit, is under 10 KiB.
const MaxReportBody = 64 << 10

// Results of POST /v1/reports, the upkeep_reports_total label.
type reportResult int

const (
	resultAccepted reportResult = iota
	resultUnauthorized
	resultTooLarge
	resultInvalid
	resultStoreFull
	resultStoreError
	numResults
)

var resultNames = [numResults]string{
	resultAccepted:     "accepted",
	resultUnauthorized: "unauthorized",
	resultTooLarge:     "too_large",
	resultInvalid:      "invalid",
	resultStoreFull:    "store_full",
	resultStoreError:   "store_error",
}

// reports holds what the fleet routes share: the store, the tokens, the
// clock and their metrics.
type reports struct {
	store   fleet.Store
	tokens  *report.Tokens
	timeout time.Duration
	now     func() time.Time
	ttl     time.Duration // default lease TTL
	results [numResults]prometheus.Counter
	leases  [numLeaseResults]prometheus.Counter
}

var hNoStore = []string{"no-store"}

// newReports enables the fleet routes when o has tokens and a store, and
// registers their metrics; nil when disabled.
func newReports(o Options, reg prometheus.Registerer, log *slog.Logger) *reports {
	if o.ReportTokens.Len() == 0 {
		return nil
	}
	if o.Store == nil {
		log.Error("report tokens are set but there is no fleet store: reports, the fleet view and leases are disabled")
		return nil
	}
	rp := &reports{store: o.Store, tokens: o.ReportTokens, timeout: cmp.Or(o.StoreTimeout, DefaultStoreTimeout),
		now: o.Now, ttl: cmp.Or(o.LeaseTTL, DefaultLeaseTTL)}
	if rp.now == nil {
		rp.now = time.Now
	}
	total := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "upkeep_reports_total",
		Help: "Updater reports received on POST /v1/reports, by result: accepted, unauthorized, too_large, invalid, store_full, store_error.",
	}, []string{"result"})
	for i := range numResults {
		rp.results[i] = total.WithLabelValues(resultNames[i])
	}
	leases := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "upkeep_leases_total",
		Help: "Concurrency lease requests on POST /v1/leases, by result: granted (renewals included), refused (the group is at its maxConcurrent), error (invalid or the store failed).",
	}, []string{"result"})
	for i := range numLeaseResults {
		rp.leases[i] = leases.WithLabelValues(leaseResultNames[i])
	}
	reg.MustRegister(total, leases, &agentsCollector{rp: rp, log: log})
	return rp
}

// ctx bounds one store call of a request.
func (rp *reports) ctx(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), rp.timeout)
}

// storeFailed answers 503 for a store error (logged with its cause; the
// client learns only that the store failed), or 504 when it timed out.
func (h *handler) storeFailed(w http.ResponseWriter, r *http.Request, what string, err error) int {
	h.log.Error("fleet store call failed", "what", what, "path", r.URL.Path, "error", err)
	w.Header().Set("Retry-After", "5")
	if errors.Is(err, context.DeadlineExceeded) {
		return textError(w, http.StatusServiceUnavailable, what+": the fleet store did not answer in time; try again, and see the server log")
	}
	return textError(w, http.StatusServiceUnavailable, what+": the fleet store failed; try again, and see the server log")
}

// fleetRoutes dispatches the fleet paths under /v1/ that carry a name;
// ok false when rest is none of them. A Teleport request for a channel
// that exists ("leases/x/version") wins, as channel details do.
func (h *handler) fleetRoutes(w http.ResponseWriter, r *http.Request, rest string) (route, int, bool) {
	var rt route
	var tail string
	switch {
	case strings.HasPrefix(rest, "agents/"):
		rt, tail = routeAgent, rest[len("agents/"):]
	case strings.HasPrefix(rest, "leases/"):
		rt, tail = routeLeases, rest[len("leases/"):]
	case strings.HasPrefix(rest, "rollouts/"):
		rt, tail = routeRollout, rest[len("rollouts/"):]
	default:
		return 0, 0, false
	}
	if ch, kind, ok := splitTeleport(rest); ok && (kind == "version" || kind == "critical") {
		if t := h.tables(); t != nil && t.channels[ch] != nil {
			return 0, 0, false
		}
	}
	switch rt {
	case routeAgent:
		return rt, h.agent(w, r, tail), true
	case routeLeases:
		return rt, h.releaseLease(w, r, tail), true
	}
	return h.rolloutRoute(w, r, tail)
}

func (h *handler) postReport(w http.ResponseWriter, r *http.Request) int {
	rp := h.reports
	if rp == nil {
		return reportsDisabled(w)
	}
	if r.Method != http.MethodPost {
		w.Header()["Allow"] = hAllowPost
		return textError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed: use POST")
	}
	if code := h.authorize(w, r); code != 0 {
		rp.results[resultUnauthorized].Inc()
		return code
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxReportBody))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			rp.results[resultTooLarge].Inc()
			h.log.Warn("report refused: body too large", "remote", r.RemoteAddr, "limit", MaxReportBody)
			return textError(w, http.StatusRequestEntityTooLarge, "report body larger than 64 KiB; a report is a few KiB at most")
		}
		return badRequest(w, "reading the report body: "+err.Error())
	}
	rep, err := report.Decode(body)
	if err != nil {
		rp.results[resultInvalid].Inc()
		h.log.Warn("report refused", "remote", r.RemoteAddr, "error", err)
		return badRequest(w, err.Error())
	}
	ctx, cancel := rp.ctx(r)
	defer cancel()
	isNew, err := rp.store.PutReport(ctx, rep, rp.now())
	if err != nil {
		if errors.Is(err, fleet.ErrFull) {
			rp.results[resultStoreFull].Inc()
			h.log.Error("report refused", "agent", rep.AgentID, "error", err)
			return textError(w, http.StatusServiceUnavailable, err.Error())
		}
		if _, ok := errors.AsType[report.ValidationError](err); ok {
			rp.results[resultInvalid].Inc()
			return badRequest(w, err.Error())
		}
		rp.results[resultStoreError].Inc()
		return h.storeFailed(w, r, "recording the report", err)
	}
	rp.results[resultAccepted].Inc()
	level := slog.LevelDebug
	if isNew {
		level = slog.LevelInfo // a new agent is worth a line; its every pass is not
	}
	h.log.Log(r.Context(), level, "report accepted", "agent", rep.AgentID, "new", isNew, "group", rep.Group,
		"version", rep.CurrentVersion, "target", rep.TargetVersion, "health", rep.Health, "action", rep.Action, "reason", rep.Reason)
	hdr := w.Header()
	hdr["Content-Type"] = hText
	hdr["Cache-Control"] = hNoCache
	w.WriteHeader(http.StatusAccepted)
	_, _ = w.Write([]byte("report accepted\n"))
	return http.StatusAccepted
}

func (h *handler) fleet(w http.ResponseWriter, r *http.Request) int {
	rp := h.reports
	if rp == nil {
		return reportsDisabled(w)
	}
	if !readMethod(w, r) {
		return http.StatusMethodNotAllowed
	}
	if code := h.authorize(w, r); code != 0 {
		return code
	}
	var p fleet.Page
	var afterGroup, afterAgent *string
	query, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return badRequest(w, "the query is not URL-encoded: "+err.Error())
	}
	for k, v := range query {
		switch k {
		case "group":
			p.Group = v[0]
		case "health":
			switch p.Health = v[0]; p.Health {
			case report.HealthHealthy, report.HealthUnhealthy, report.HealthUnknown, report.HealthStale:
			default:
				return badRequest(w, "health must be healthy, unhealthy, unknown or stale")
			}
		case "limit":
			n, err := strconv.Atoi(v[0])
			if err != nil || n < 1 || n > fleet.MaxPage {
				return badRequest(w, fmt.Sprintf("limit must be a number of agents from 1 to %d", fleet.MaxPage))
			}
			p.Limit = n
		case "after":
			c, err := decodeCursor(v[0])
			if err != nil {
				return badRequest(w, "after: "+err.Error())
			}
			p.After = c
		case "afterGroup":
			afterGroup = &v[0]
		case "afterAgent":
			afterAgent = &v[0]
		default:
			return badRequest(w, "unknown query parameter "+quoteParam(k)+": use group, health, limit, after (or afterGroup and afterAgent)")
		}
	}
	if afterAgent != nil || afterGroup != nil {
		if afterAgent == nil || p.After != (fleet.Cursor{}) {
			return badRequest(w, "afterAgent (with afterGroup, empty for agents without a group) continues after one agent; or give after, not both")
		}
		if afterGroup != nil {
			p.After.Group = *afterGroup
		}
		p.After.AgentID = *afterAgent
	}
	ctx, cancel := rp.ctx(r)
	defer cancel()
	page, err := rp.store.Fleet(ctx, p, rp.now())
	if err != nil {
		return h.storeFailed(w, r, "reading the fleet", err)
	}
	ans := fleetAnswer{FleetPage: page}
	if page.Next != nil {
		ans.After = encodeCursor(*page.Next)
	}
	hdr := w.Header()
	hdr["Content-Type"] = hJSON
	hdr["Cache-Control"] = hNoStore // names hosts; keep it out of shared caches
	hdr["X-Content-Type-Options"] = hNoSniff
	w.WriteHeader(http.StatusOK)
	// Streamed: a full page is megabytes, and encoding plain fields cannot
	// fail; a write error is the client's loss.
	_ = json.NewEncoder(w).Encode(ans)
	return http.StatusOK
}

// fleetAnswer is GET /v1/fleet's body: the page, and its next cursor both
// as fields (next) and as one opaque query value (after).
type fleetAnswer struct {
	fleet.FleetPage
	// After is ?after= for the next page; absent on the last one.
	After string `json:"after,omitempty"`
}

// encodeCursor makes a cursor one URL- and JSON-safe token: base64url of
// "<group>\n<agent id>" (neither holds a newline).
func encodeCursor(c fleet.Cursor) string {
	return base64.RawURLEncoding.EncodeToString([]byte(c.Group + "\n" + c.AgentID))
}

func decodeCursor(s string) (fleet.Cursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) > 2*report.MaxIDLength {
		return fleet.Cursor{}, errors.New("not a cursor: pass the \"after\" of the previous page as it is")
	}
	g, id, ok := strings.Cut(string(b), "\n")
	if !ok || id == "" {
		return fleet.Cursor{}, errors.New("not a cursor: pass the \"after\" of the previous page as it is")
	}
	return fleet.Cursor{Group: g, AgentID: id}, nil
}

// MaxHistory bounds GET /v1/agents/<id>'s history.
const MaxHistory = 1000

// agent answers GET /v1/agents/<id>: the latest report and the history.
func (h *handler) agent(w http.ResponseWriter, r *http.Request, id string) int {
	rp := h.reports
	if rp == nil {
		return reportsDisabled(w)
	}
	if !readMethod(w, r) {
		return http.StatusMethodNotAllowed
	}
	if code := h.authorize(w, r); code != 0 {
		return code
	}
	if err := report.CheckAgentID(id); err != nil {
		return badRequest(w, err.Error())
	}
	limit, msg := onlyIntParam(r, "history", 0, MaxHistory, 0) // 0: the store's whole history
	if msg != "" {
		return badRequest(w, msg)
	}
	ctx, cancel := rp.ctx(r)
	defer cancel()
	a, ok, err := rp.store.Agent(ctx, id, rp.now())
	if err != nil {
		return h.storeFailed(w, r, "reading the agent", err)
	}
	if !ok {
		return notFound(w, fmt.Sprintf("no report from agent %q: it has not reported to any replica sharing this store", id))
	}
	var hist []report.Agent
	if limit != 0 || !r.URL.Query().Has("history") {
		if hist, err = rp.store.History(ctx, id, limit); err != nil {
			return h.storeFailed(w, r, "reading the agent's history", err)
		}
	}
	if hist == nil {
		hist = []report.Agent{}
	}
	return h.writeJSON(w, r, http.StatusOK, struct {
		Agent   report.Agent   `json:"agent"`
		History []report.Agent `json:"history"`
	}{a, hist})
}

// writeJSON answers v as JSON with status code, kept out of shared caches.
func (h *handler) writeJSON(w http.ResponseWriter, r *http.Request, code int, v any) int {
	body, err := json.Marshal(v)
	if err != nil {
		h.log.Error("encoding an answer", "path", r.URL.Path, "error", err)
		return textError(w, http.StatusInternalServerError, "cannot encode the answer; see the server log")
	}
	hdr := w.Header()
	hdr["Content-Type"] = hJSON
	hdr["Cache-Control"] = hNoStore
	hdr["X-Content-Type-Options"] = hNoSniff
	w.WriteHeader(code)
	_, _ = w.Write(append(body, '\n'))
	return code
}

// authorize checks the request's bearer token; it answers 401 and returns
// its code when the token is missing or wrong, else 0. The token is never
// logged.
func (h *handler) authorize(w http.ResponseWriter, r *http.Request) int {
	token, ok := report.BearerToken(r.Header.Get("Authorization"))
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="upkeep"`)
		return textError(w, http.StatusUnauthorized, "missing bearer token: send \"Authorization: Bearer <token>\" with a token of the server's --report-token-file")
	}
	if !h.reports.tokens.Match(token) {
		h.log.Warn("report route: wrong bearer token", "remote", r.RemoteAddr, "path", r.URL.Path)
		w.Header().Set("WWW-Authenticate", `Bearer realm="upkeep", error="invalid_token"`)
		return textError(w, http.StatusUnauthorized, "the bearer token is not one of the server's report tokens: check the updater's token file")
	}
	return 0
}

func reportsDisabled(w http.ResponseWriter) int {
	return notFound(w, "reports, the fleet view, leases and rollout steps are disabled: start serve with --report-token-file")
}

// quoteParam quotes an untrusted query parameter name for an error, briefly.
func quoteParam(s string) string {
	if len(s) > 32 {
		return strconv.QuoteToASCII(s[:32]) + "…"
	}
	return strconv.QuoteToASCII(s)
}

var agentsDesc = prometheus.NewDesc("upkeep_agents",
	"Agents by group, current version (\"unknown\" when the agent does not know it) and health (\"stale\" when not heard from within the stale period), from their latest reports. Beyond "+
		"a fixed number of combinations the smallest are summed under group and version \"_other\".",
	[]string{"group", "version", "health"}, nil)

// agentsCollector counts the store's agents at scrape time (a GROUP BY,
// under the store timeout), so the gauge is the store's state, shared by
// every replica, and staleness is judged at that moment.
type agentsCollector struct {
	rp  *reports
	log *slog.Logger
}

func (c *agentsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- agentsDesc }

func (c *agentsCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.rp.timeout)
	defer cancel()
	series, err := c.rp.store.Series(ctx, report.DefaultMaxSeries, c.rp.now())
	if err != nil {
		// The scrape shows the error; the other metrics still go out.
		c.log.Error("upkeep_agents: cannot count the agents in the fleet store", "error", err)
		ch <- prometheus.NewInvalidMetric(agentsDesc, fmt.Errorf("counting the agents in the fleet store: %w", err))
		return
	}
	for _, s := range series {
		ch <- prometheus.MustNewConstMetric(agentsDesc, prometheus.GaugeValue, float64(s.Agents), s.Group, s.Version, s.Health)
	}
}

// onlyIntParam reads the one query parameter a route takes, an integer
// from lo to hi (def when absent); msg says what is wrong, else "".
func onlyIntParam(r *http.Request, name string, lo, hi, def int) (n int, msg string) {
	n = def
	for k, v := range r.URL.Query() {
		if k != name {
			return 0, "unknown query parameter " + quoteParam(k) + ": use " + name
		}
		var err error
		if n, err = strconv.Atoi(v[0]); err != nil || n < lo || n > hi {
			return 0, fmt.Sprintf("%s must be a number from %d to %d", name, lo, hi)
		}
	}
	return n, ""
}
