// Package server serves the reconciler's current snapshot over HTTP:
// Teleport's version server protocol (byte for byte), upkeep's JSON API,
// the Git webhook that triggers a sync, and, over the shared fleet store
// (reconcile/fleet), updaters' reports and the fleet view (reports.go),
// concurrency leases (leases.go) and rollouts (rollouts.go), health,
// readiness and Prometheus metrics.
//
// Every answer about channels and groups is a precomputed body of the
// snapshot; the server adds only headers, built once per snapshot, so the
// Teleport routes cost a map lookup and a write. A channel under a
// rollout answers each agent from the rollout's answer table, also a map
// lookup (answers.go). Only the fleet routes reach the store, each call
// under a timeout.
package server

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"upkeep.dev/upkeep/reconcile"
	"upkeep.dev/upkeep/reconcile/calendar"
	"upkeep.dev/upkeep/reconcile/fleet"
	"upkeep.dev/upkeep/reconcile/report"
	"upkeep.dev/upkeep/reconcile/rollout"
	"upkeep.dev/upkeep/spec"
)

// Backend is what the server serves; *reconcile.Reconciler is the real one.
type Backend interface {
	// Snapshot returns the snapshot to serve, or nil before the first good sync.
	Snapshot() *reconcile.Snapshot
	Status() reconcile.Status
	// Trigger asks for a sync soon; it must not block.
	Trigger()
}

// Options configures the handler. The zero value serves the snapshot (the
// Teleport protocol, the JSON API, health and metrics on a private
// registry) but not the webhook, the fleet routes or rollouts.
type Options struct {
	// WebhookSecret is the shared secret of POST /v1/hooks/git (GitHub's
	// X-Hub-Signature-256). Empty disables the route (404).
	WebhookSecret []byte
	// Registerer receives the server's metrics; nil means a private registry.
	Registerer prometheus.Registerer
	// Gatherer is what /metrics exposes; default: Registerer, when it is
	// also a Gatherer (as *prometheus.Registry is).
	Gatherer prometheus.Gatherer
	Logger   *slog.Logger // default slog.Default()
	// ReportTokens authenticate the fleet routes: reports, the fleet view,
	// agents, leases and the operator's rollout steps (see reports.go);
	// none disables them (404).
	ReportTokens *report.Tokens
	// Store is the fleet's shared state (reconcile/fleet/sqlstore); the
	// fleet routes need it and are disabled (404) without it. The server
	// does not close it.
	Store fleet.Store
	// StoreTimeout bounds each store call of a request or a scrape
	// (DefaultStoreTimeout).
	StoreTimeout time.Duration
	// Answers returns the rollouts' answer tables (rollout.Cache.Answers);
	// nil, or a nil result, answers every channel's version to everyone.
	Answers func() *rollout.Answers
	// LeaseTTL is a lease's life when the updater asks none
	// (DefaultLeaseTTL); an updater may ask up to MaxLeaseTTL.
	LeaseTTL time.Duration
	// Now is the clock of the store's times; default time.Now.
	Now func() time.Time
}

// DefaultStoreTimeout bounds one store call: far above a healthy store's
// milliseconds, short enough that a stuck database fails requests
// quickly rather than piling them up.
const DefaultStoreTimeout = 5 * time.Second

// MaxWebhookBody bounds the body of POST /v1/hooks/git; GitHub's push
// payloads are capped at 25 MB but are far smaller without file lists.
const MaxWebhookBody = 1 << 20

const teleportPrefix = "/v1/webapi/automaticupgrades/channel/"

// Header values shared by every response. net/http never modifies header
// value slices, so assigning these directly to the header map saves an
// allocation per header and request.
var (
	hText      = []string{"text/plain; charset=utf-8"}
	hJSON      = []string{"application/json"}
	hNoCache   = []string{"no-cache"}
	hNoSniff   = []string{"nosniff"}
	hAllowGet  = []string{"GET, HEAD"}
	hAllowPost = []string{"POST"}
	// The plain critical answer of a critical channel depends on the
	// group the request names (answers.go).
	hVaryGroup = []string{HeaderGroup}
)

type handler struct {
	b       Backend
	secret  []byte
	log     *slog.Logger
	metrics *metrics
	reports *reports     // nil when the fleet routes are disabled
	promh   http.Handler // nil when there is nothing to gather
	cur     atomic.Pointer[tables]
	answers func() *rollout.Answers // nil: no rollouts
	roll    atomic.Pointer[rollTable]
	now     func() time.Time
}

// New returns the version server's handler over b.
func New(b Backend, o Options) http.Handler {
	h := &handler{b: b, log: o.Logger, answers: o.Answers, now: o.Now}
	if h.now == nil {
		h.now = time.Now
	}
	if len(o.WebhookSecret) > 0 {
		h.secret = append([]byte(nil), o.WebhookSecret...)
	}
	if h.log == nil {
		h.log = slog.Default()
	}
	reg, gat := o.Registerer, o.Gatherer
	if reg == nil {
		r := prometheus.NewRegistry()
		reg = r
		if gat == nil {
			gat = r
		}
	}
	if gat == nil {
		gat, _ = reg.(prometheus.Gatherer)
	}
	h.metrics = newMetrics(reg, b)
	h.reports = newReports(o, reg, h.log)
	if gat != nil {
		h.promh = promhttp.HandlerFor(gat, promhttp.HandlerOpts{
			ErrorLog:      slog.NewLogLogger(h.log.Handler(), slog.LevelError),
			ErrorHandling: promhttp.ContinueOnError,
		})
	}
	return h
}

// NewHTTPServer returns an http.Server for h with every limit set, so that
// slow or oversized clients cannot hold connections or memory: headers
// within 5 s, a request body within BodyReadTimeout, a response within
// 30 s, an idle connection 120 s.
func NewHTTPServer(addr string, h http.Handler) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           bodyDeadline{h},
		ReadHeaderTimeout: 5 * time.Second,
		// No ReadTimeout: it re-arms the connection's read deadline on
		// every request, a measurable share of the /version route
		// (BenchmarkServeVsFloor); bodyDeadline bounds the few requests
		// that have a body instead.
		WriteTimeout:   30 * time.Second,
		IdleTimeout:    120 * time.Second,
		MaxHeaderBytes: 64 << 10,
		ErrorLog:       slog.NewLogLogger(slog.Default().Handler(), slog.LevelWarn),
	}
}

// BodyReadTimeout bounds reading a request's body (a webhook body is at
// most MaxWebhookBody; reports and leases are smaller).
const BodyReadTimeout = 30 * time.Second

// bodyReadTimeout is BodyReadTimeout; tests shorten it.
var bodyReadTimeout = BodyReadTimeout

// bodyDeadline sets the read deadline of requests that carry a body, or
// one of unknown length; a GET without one reads nothing after its
// headers, which ReadHeaderTimeout bounds.
type bodyDeadline struct{ h http.Handler }

func (b bodyDeadline) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength != 0 {
		_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(bodyReadTimeout))
	}
	b.h.ServeHTTP(w, r)
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rt, code := h.route(w, r)
	h.metrics.count(rt, code)
}

// route dispatches on the path without allocating and returns the route's
// metric name and the status code written.
func (h *handler) route(w http.ResponseWriter, r *http.Request) (route, int) {
	p := r.URL.Path
	switch p {
	case "/healthz":
		return routeHealthz, h.healthz(w, r)
	case "/readyz":
		return routeReadyz, h.readyz(w, r)
	case "/status":
		return routeStatus, h.status(w, r)
	case "/metrics":
		return routeMetrics, h.metricsPage(w, r)
	case "/v1/channels":
		return routeChannels, h.channelList(w, r)
	case "/v1/groups":
		return routeGroups, h.groupList(w, r)
	case "/v1/hooks/git":
		return routeWebhook, h.webhook(w, r)
	case "/v1/reports":
		return routeReports, h.postReport(w, r)
	case "/v1/fleet":
		return routeFleet, h.fleet(w, r)
	case "/v1/leases":
		return routeLeases, h.leases(w, r)
	case "/v1/rollouts":
		return routeRollouts, h.rolloutList(w, r)
	}
	if rest, ok := strings.CutPrefix(p, teleportPrefix); ok {
		return h.teleport(w, r, rest, true)
	}
	if rest, ok := strings.CutPrefix(p, "/v1/"); ok {
		return h.v1(w, r, rest)
	}
	return routeUnmatched, notFound(w, "no such route")
}

// v1 routes the paths under /v1/ that carry a name. Channel names contain
// "/", so a path may read both as a channel detail and as a Teleport
// request for a channel named "channels/…"; the name that exists wins,
// the detail first.
func (h *handler) v1(w http.ResponseWriter, r *http.Request, rest string) (route, int) {
	if rt, code, ok := h.fleetRoutes(w, r, rest); ok {
		return rt, code
	}
	name, isDetail := strings.CutPrefix(rest, "channels/")
	if isDetail {
		if t := h.tables(); t != nil {
			if e := t.channels[name]; e != nil {
				if !readMethod(w, r) {
					return routeChannel, http.StatusMethodNotAllowed
				}
				return routeChannel, writeBody(w, r, hJSON, e.detailETag, e.view.JSON)
			}
		}
	}
	if g, ok := strings.CutPrefix(rest, "groups/"); ok {
		if group, ok := strings.CutSuffix(g, "/schedule"); ok && !strings.Contains(group, "/") {
			return routeSchedule, h.schedule(w, r, group)
		}
		// A group's detail; as with channels, a group that exists wins over
		// a Teleport request for a channel named "groups".
		if g != "" && !strings.Contains(g, "/") {
			if t := h.tables(); t != nil && t.groups[g] != nil {
				return routeGroup, h.groupDetail(w, r, g)
			}
			if _, kind, ok := splitTeleport(rest); !ok || (kind != "version" && kind != "critical") {
				return routeGroup, h.groupDetail(w, r, g)
			}
		}
	}
	if _, kind, ok := splitTeleport(rest); ok && (kind == "version" || kind == "critical") {
		return h.teleport(w, r, rest, false)
	}
	if isDetail {
		return routeChannel, h.unknownChannel(w, r, name)
	}
	return routeUnmatched, notFound(w, "no such route")
}

// teleport answers Teleport's version server protocol for rest =
// "<channel>/{version,critical}". Surrounding slashes are ignored, as
// Teleport's proxy does. Under the webapi prefix (strict) every other shape
// is a bad request.
func (h *handler) teleport(w http.ResponseWriter, r *http.Request, rest string, strict bool) (route, int) {
	channel, kind, ok := splitTeleport(rest)
	rt := routeVersion
	if kind == "critical" {
		rt = routeCritical
	}
	if !readMethod(w, r) {
		return rt, http.StatusMethodNotAllowed
	}
	if !ok || channel == "" {
		return rt, badRequest(w, "path format should be /v1/webapi/automaticupgrades/channel/<channel>/{version,critical}")
	}
	if kind != "version" && kind != "critical" {
		if !strict {
			return routeUnmatched, notFound(w, "no such route")
		}
		return rt, badRequest(w, "the path must end with /version or /critical")
	}
	t := h.tables()
	if t == nil {
		return rt, notReady(w)
	}
	e := t.channels[channel]
	scoped := ""
	if e == nil {
		// The group-scoped channel of Teleport's own updaters, which send
		// no identity: "group/<group>" answers what the group's all step
		// allows. The loader refuses channel names starting "group/", so
		// this never hides a real channel.
		g, ok := strings.CutPrefix(channel, spec.GroupChannelPrefix)
		if !ok {
			return rt, h.unknownChannel(w, r, channel)
		}
		ge := t.groups[g]
		if ge == nil {
			if !validName(g, false) {
				return rt, badRequest(w, fmt.Sprintf("%s: %s", quoteParam(g), spec.NameProblem(g, false)))
			}
			return rt, notFound(w, fmt.Sprintf("unknown group %q in the group-scoped channel %q", g, channel))
		}
		if e = t.channels[ge.view.Channel]; e == nil {
			return rt, notFound(w, fmt.Sprintf("group %q follows channel %q, which the served revision does not define", g, ge.view.Channel))
		}
		scoped = g
		if rt == routeCritical {
			if e.view.Critical {
				if held, code := h.criticalHeld(w, r, t, g); held {
					return rt, code
				}
			}
			return rt, writeBody(w, r, hText, e.criticalETag, e.view.CriticalBody)
		}
		if e.rollout {
			a, loading := h.rolloutEntry(t, e)
			if loading {
				return rt, rolloutsLoading(w)
			}
			if a != nil {
				v, held, reason := a.a.GroupVersion(scoped)
				return rt, a.write(w, r, v, held, reason)
			}
		}
		return rt, writeBody(w, r, hText, e.versionETag, e.view.VersionBody)
	}
	if rt == routeCritical {
		if e.view.Critical {
			// An upkeep updater names its group (Upkeep-Group or ?group=):
			// its group's freeze holds the critical update as on the
			// group-scoped route. Without a group, the channel's answer.
			hdr := w.Header()
			hdr["Vary"] = hVaryGroup
			if _, group := identity(r); group != "" {
				if held, code := h.criticalHeld(w, r, t, group); held {
					return rt, code
				}
			}
		}
		return rt, writeBody(w, r, hText, e.criticalETag, e.view.CriticalBody)
	}
	if e.rollout {
		a, loading := h.rolloutEntry(t, e)
		if loading {
			return rt, rolloutsLoading(w)
		}
		if a != nil {
			agent, group := identity(r)
			var v, reason string
			var held bool
			if agent == "" {
				// No identity: the group's all-step answer, never a canary's.
				v, held, reason = a.a.GroupVersion(group)
			} else {
				v, held, reason = a.a.VersionFor(group, agent)
			}
			return rt, a.write(w, r, v, held, reason)
		}
	}
	return rt, writeBody(w, r, hText, e.versionETag, e.view.VersionBody)
}

// HeaderFreeze names the freeze that turned a critical answer into "no".
const HeaderFreeze = "Upkeep-Freeze"

// criticalHeld answers "no" to a critical request of a group (the
// group-scoped channel, or the plain channel route asked with the group's
// identity) while the group is in a freeze that does not allow critical
// updates (rule CriticalHeldByFreeze, the decision chain's reason):
// Teleport's updaters update at once on "yes" whatever their schedule, so
// the schedule alone cannot hold a critical update back. The plain channel
// route asked without a group keeps the channel's answer: it serves every
// group of the channel. An unknown group holds nothing.
func (h *handler) criticalHeld(w http.ResponseWriter, r *http.Request, t *tables, group string) (bool, int) {
	if t.snap.State == nil {
		return false, 0
	}
	g := t.snap.State.Group(group)
	if g == nil {
		return false, 0
	}
	f, ok := calendar.Frozen(g, h.now())
	if !ok || f.AllowCritical {
		return false, 0
	}
	w.Header().Set(HeaderFreeze, fmt.Sprintf("rule=CriticalHeldByFreeze; freeze=%s; until=%s", f.Name, f.End.UTC().Format(time.RFC3339)))
	// No ETag: the answer changes when the freeze ends, not with the revision.
	return true, writeBody(w, r, hText, nil, reconcile.CriticalBody(false))
}

// splitTeleport splits "<channel>/<kind>" as Teleport does: trim slashes,
// the last segment is the kind.
func splitTeleport(rest string) (channel, kind string, ok bool) {
	rest = strings.Trim(rest, "/")
	i := strings.LastIndexByte(rest, '/')
	if i < 0 {
		return "", rest, false
	}
	return rest[:i], rest[i+1:], true
}

func (h *handler) unknownChannel(w http.ResponseWriter, r *http.Request, name string) int {
	if !readMethod(w, r) {
		return http.StatusMethodNotAllowed
	}
	if h.tables() == nil {
		return notReady(w)
	}
	if !validName(name, true) {
		return badRequest(w, fmt.Sprintf("%s: %s", quoteParam(name), spec.NameProblem(name, true)))
	}
	if name == spec.DefaultChannelName {
		// Guessing a channel could hand an install script a version of
		// the wrong control plane; Teleport's updaters treat 404 as an
		// error, not as a version.
		return notFound(w, `no channel answers as Teleport's "default" channel: mark one Channel with spec.default: true (or name one "default")`)
	}
	return notFound(w, fmt.Sprintf("unknown channel %q", name))
}

func (h *handler) channelList(w http.ResponseWriter, r *http.Request) int {
	if !readMethod(w, r) {
		return http.StatusMethodNotAllowed
	}
	t := h.tables()
	if t == nil {
		return notReady(w)
	}
	return writeBody(w, r, hJSON, t.channelsETag, t.snap.ChannelsJSON)
}

func (h *handler) groupList(w http.ResponseWriter, r *http.Request) int {
	if !readMethod(w, r) {
		return http.StatusMethodNotAllowed
	}
	t := h.tables()
	if t == nil {
		return notReady(w)
	}
	return writeBody(w, r, hJSON, t.groupsETag, t.snap.GroupsJSON)
}

// groupDetail answers one group's document, which names its channel: a
// Kubernetes workload annotated with a group alone follows that channel.
func (h *handler) groupDetail(w http.ResponseWriter, r *http.Request, name string) int {
	e, code := h.group(w, r, name)
	if e == nil {
		return code
	}
	return writeBody(w, r, hJSON, e.detailETag, e.view.JSON)
}

// group finds a served group for a read request, or answers the request
// (405, 503, 400 or 404) and returns its status code.
func (h *handler) group(w http.ResponseWriter, r *http.Request, name string) (*groupEntry, int) {
	if !readMethod(w, r) {
		return nil, http.StatusMethodNotAllowed
	}
	t := h.tables()
	if t == nil {
		return nil, notReady(w)
	}
	e := t.groups[name]
	if e == nil {
		if !validName(name, false) {
			return nil, badRequest(w, fmt.Sprintf("%s: %s", quoteParam(name), spec.NameProblem(name, false)))
		}
		return nil, notFound(w, fmt.Sprintf("unknown group %q", name))
	}
	return e, 0
}

func (h *handler) schedule(w http.ResponseWriter, r *http.Request, name string) int {
	e, code := h.group(w, r, name)
	if e == nil {
		return code
	}
	format := ""
	if r.URL.RawQuery != "" {
		format = r.URL.Query().Get("format")
	}
	switch format {
	case "", "json", "kubernetes":
		return writeBody(w, r, hJSON, e.jsonETag, e.view.ScheduleJSON)
	case "systemd":
		return writeBody(w, r, hText, e.systemdETag, e.view.ScheduleSystemd)
	}
	return badRequest(w, fmt.Sprintf("format %q: use json (Teleport's Kubernetes schedule) or systemd (/etc/teleport-upgrade.d/schedule)", format))
}

func (h *handler) status(w http.ResponseWriter, r *http.Request) int {
	if !readMethod(w, r) {
		return http.StatusMethodNotAllowed
	}
	body, err := json.Marshal(h.b.Status())
	if err != nil {
		h.log.Error("encoding /status", "error", err)
		return textError(w, http.StatusInternalServerError, "cannot encode the status; see the server log")
	}
	return writeBody(w, r, hJSON, nil, append(body, '\n'))
}

func (h *handler) healthz(w http.ResponseWriter, r *http.Request) int {
	if !readMethod(w, r) {
		return http.StatusMethodNotAllowed
	}
	return writeBody(w, r, hText, nil, []byte("ok\n"))
}

// readyz is ready once a snapshot is served and, when a channel has a
// rollout, the rollouts are read: before either an updater would get 503s.
func (h *handler) readyz(w http.ResponseWriter, r *http.Request) int {
	if !readMethod(w, r) {
		return http.StatusMethodNotAllowed
	}
	s := h.b.Snapshot()
	if s == nil {
		msg := "not ready: no valid revision served yet"
		if e := h.b.Status().LastError; e != nil {
			msg += "; last sync: " + e.Message
		}
		return textError(w, http.StatusServiceUnavailable, msg)
	}
	if t := h.tables(); h.answers != nil && h.answers() == nil && t.anyRollout {
		// A channel under rollout would answer 503 until the rollouts are read.
		return textError(w, http.StatusServiceUnavailable, "not ready: the rollouts are not read from the fleet store yet")
	}
	return writeBody(w, r, hText, nil, []byte("ready: serving revision "+s.Revision+"\n"))
}

func (h *handler) metricsPage(w http.ResponseWriter, r *http.Request) int {
	if !readMethod(w, r) {
		return http.StatusMethodNotAllowed
	}
	if h.promh == nil {
		return notFound(w, "metrics are not exposed: the registerer is not a gatherer")
	}
	sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
	h.promh.ServeHTTP(sw, r)
	return sw.code
}

// statusWriter remembers the status code promhttp writes.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (s *statusWriter) WriteHeader(code int) {
	s.code = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// writeBody answers 200 with body, or 304 when the request's If-None-Match
// names etag (nil: no ETag).
func writeBody(w http.ResponseWriter, r *http.Request, contentType, etag []string, body []byte) int {
	hdr := w.Header()
	hdr["Cache-Control"] = hNoCache
	hdr["X-Content-Type-Options"] = hNoSniff
	if etag != nil {
		hdr["Etag"] = etag
		if inm, ok := r.Header["If-None-Match"]; ok && etagMatches(inm, etag[0]) {
			w.WriteHeader(http.StatusNotModified)
			return http.StatusNotModified
		}
	}
	hdr["Content-Type"] = contentType
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body) // a failed write is the client's loss; nothing to do
	return http.StatusOK
}

// etagMatches applies If-None-Match's weak comparison: any listed tag equal
// to etag, W/ ignored, or "*".
func etagMatches(values []string, etag string) bool {
	for _, v := range values {
		for {
			v = strings.TrimLeft(v, " \t,")
			if v == "" {
				break
			}
			if v[0] == '*' {
				return true
			}
			v = strings.TrimPrefix(v, "W/")
			if v == "" || v[0] != '"' {
				break // malformed: ignore the rest of this value
			}
			end := strings.IndexByte(v[1:], '"')
			if end < 0 {
				break
			}
			if v[:end+2] == etag {
				return true
			}
			v = v[end+2:]
		}
	}
	return false
}

// readMethod answers 405 unless the request is a GET or HEAD.
func readMethod(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	w.Header()["Allow"] = hAllowGet
	textError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed: use GET or HEAD")
	return false
}

func notReady(w http.ResponseWriter) int {
	w.Header().Set("Retry-After", "5")
	return textError(w, http.StatusServiceUnavailable, "no valid revision served yet: see /status")
}

func notFound(w http.ResponseWriter, msg string) int {
	return textError(w, http.StatusNotFound, msg)
}

func badRequest(w http.ResponseWriter, msg string) int {
	return textError(w, http.StatusBadRequest, msg)
}

func textError(w http.ResponseWriter, code int, msg string) int {
	hdr := w.Header()
	hdr["Content-Type"] = hText
	hdr["Cache-Control"] = hNoCache
	hdr["X-Content-Type-Options"] = hNoSniff
	w.WriteHeader(code)
	_, _ = w.Write([]byte(msg + "\n"))
	return code
}

// validName reports whether s has the syntax of a channel name (segments
// joined by "/" when multi) or a group name: each segment
// [a-z0-9]([a-z0-9.-]*[a-z0-9])?. It only decides between 400 and 404 for
// names the snapshot does not have.
func validName(s string, multi bool) bool {
	return spec.ValidName(s, multi) // the loader's rule and length limit
}
