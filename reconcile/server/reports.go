package server

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"upkeep.dev/upkeep/reconcile/report"
)

// Updaters' reports and the fleet view.
//
//   - POST /v1/reports takes one report.Report as JSON (at most
//     MaxReportBody, unknown fields refused) and answers 202.
//   - GET /v1/fleet answers {time, staleAfter, agents, counts}: the latest
//     report per agent, sorted by group then agent id, and counts over them.
//     ?group=<name> and ?health=<healthy|unhealthy|unknown|stale> select.
//
// Both take "Authorization: Bearer <token>" with a token of
// Options.ReportTokens. The fleet view needs a token too: versions and
// health are operational, not secret, but agent ids and hostnames map the
// fleet for an attacker. The same tokens serve both so that one file is
// all there is to manage; whoever may report may see the fleet. The
// aggregate counts, which name no agent, are in /metrics (upkeep_agents)
// with the other metrics, unauthenticated.
//
// Without tokens both routes answer 404: reports are disabled.

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
	numResults
)

var resultNames = [numResults]string{
	resultAccepted:     "accepted",
	resultUnauthorized: "unauthorized",
	resultTooLarge:     "too_large",
	resultInvalid:      "invalid",
	resultStoreFull:    "store_full",
}

type reports struct {
	store   *report.Store
	tokens  *report.Tokens
	results [numResults]prometheus.Counter
}

var hNoStore = []string{"no-store"}

// newReports enables the report routes when o has tokens, and registers
// their metrics; nil when disabled.
func newReports(o Options, reg prometheus.Registerer) *reports {
	if o.ReportTokens.Len() == 0 {
		return nil
	}
	rp := &reports{store: o.Reports, tokens: o.ReportTokens}
	if rp.store == nil {
		rp.store = report.NewStore(report.StoreOptions{})
	}
	total := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "upkeep_reports_total",
		Help: "Updater reports received on POST /v1/reports, by result: accepted, unauthorized, too_large, invalid, store_full.",
	}, []string{"result"})
	for i := range numResults {
		rp.results[i] = total.WithLabelValues(resultNames[i])
	}
	reg.MustRegister(total, &agentsCollector{store: rp.store})
	return rp
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
	isNew, err := rp.store.Put(rep)
	if err != nil {
		if errors.Is(err, report.ErrFull) {
			rp.results[resultStoreFull].Inc()
			h.log.Error("report refused", "agent", rep.AgentID, "error", err)
			return textError(w, http.StatusServiceUnavailable, err.Error())
		}
		rp.results[resultInvalid].Inc()
		return badRequest(w, err.Error())
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
	var f report.Filter
	for k, v := range r.URL.Query() {
		switch k {
		case "group":
			f.Group = v[0]
		case "health":
			switch f.Health = v[0]; f.Health {
			case report.HealthHealthy, report.HealthUnhealthy, report.HealthUnknown, report.HealthStale:
			default:
				return badRequest(w, "health must be healthy, unhealthy, unknown or stale")
			}
		default:
			return badRequest(w, "unknown query parameter "+quoteParam(k)+": use group or health")
		}
	}
	hdr := w.Header()
	hdr["Content-Type"] = hJSON
	hdr["Cache-Control"] = hNoStore // names hosts; keep it out of shared caches
	hdr["X-Content-Type-Options"] = hNoSniff
	w.WriteHeader(http.StatusOK)
	// Streamed: a full fleet is tens of MiB, and encoding plain fields
	// cannot fail; a write error is the client's loss.
	_ = json.NewEncoder(w).Encode(rp.store.Fleet(f))
	return http.StatusOK
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
	return notFound(w, "reports are disabled: start serve with --report-token-file")
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

// agentsCollector counts the store's agents at scrape time, so the gauge
// is always the store's state and staleness is judged at that moment.
type agentsCollector struct{ store *report.Store }

func (c *agentsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- agentsDesc }

func (c *agentsCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.store.Series(report.DefaultMaxSeries) {
		ch <- prometheus.MustNewConstMetric(agentsDesc, prometheus.GaugeValue, float64(s.Agents), s.Group, s.Version, s.Health)
	}
}
