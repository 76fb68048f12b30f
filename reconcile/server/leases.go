package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"upkeep.dev/upkeep/reconcile/fleet"
	"upkeep.dev/upkeep/reconcile/report"
	"upkeep.dev/upkeep/spec"
)

// Concurrency leases (FleetLock semantics), kept in the fleet store so that
// every replica counts the same places:
//
//   - POST /v1/leases {agentId, group, channel, version, ttl?} answers
//     200 {granted: true, expiresAt, holders, max} or 409 {granted: false,
//     holders, max, retryAfter} (and a Retry-After header in seconds). The
//     places are the served group's maxConcurrent: a count, or a percent
//     of the group's agents in the store (at least one place). An agent
//     that holds a lease renews it. ttl is a Go duration up to MaxLeaseTTL;
//     default Options.LeaseTTL.
//   - DELETE /v1/leases/<group>/<agentId> (report.NoGroup for none) gives a
//     lease back: 200, or 404 when the agent held none (it expired).
//   - GET /v1/leases[?group=] lists the unexpired leases (every group's
//     without ?group, report.NoGroup for the agents without one).
//
// The same bearer tokens as reports.

// Lease limits.
const (
	DefaultLeaseTTL = 30 * time.Minute
	MaxLeaseTTL     = 2 * time.Hour
	minLeaseTTL     = time.Second
	maxLeaseBody    = 4 << 10
)

// Results of POST /v1/leases, the upkeep_leases_total label.
const (
	leaseGranted = iota
	leaseRefused
	leaseError
	numLeaseResults
)

var leaseResultNames = [numLeaseResults]string{leaseGranted: "granted", leaseRefused: "refused", leaseError: "error"}

// leaseBody is POST /v1/leases's body.
type leaseBody struct {
	AgentID string `json:"agentId"`
	Group   string `json:"group"`
	Channel string `json:"channel"`
	Version string `json:"version"`
	TTL     string `json:"ttl,omitempty"`
}

// leaseAnswer is both answers of POST /v1/leases.
type leaseAnswer struct {
	Granted    bool       `json:"granted"`
	ExpiresAt  *time.Time `json:"expiresAt,omitempty"`
	Holders    int        `json:"holders"`
	Max        int        `json:"max"` // 0: unlimited
	RetryAfter *time.Time `json:"retryAfter,omitempty"`
}

// leases serves /v1/leases: POST takes a lease, GET lists them.
func (h *handler) leases(w http.ResponseWriter, r *http.Request) int {
	rp := h.reports
	if rp == nil {
		return reportsDisabled(w)
	}
	switch r.Method {
	case http.MethodPost:
	case http.MethodGet, http.MethodHead:
		return h.leaseList(w, r)
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		return textError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed: POST takes a lease, GET lists them")
	}
	if code := h.authorize(w, r); code != 0 {
		rp.leases[leaseError].Inc()
		return code
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxLeaseBody))
	if err != nil {
		rp.leases[leaseError].Inc()
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return textError(w, http.StatusRequestEntityTooLarge, "lease request larger than 4 KiB")
		}
		return badRequest(w, "reading the lease request: "+err.Error())
	}
	req, ttl, err := decodeLease(raw, rp.ttl)
	if err != nil {
		rp.leases[leaseError].Inc()
		return badRequest(w, err.Error())
	}
	t := h.tables()
	if t == nil {
		rp.leases[leaseError].Inc()
		return notReady(w)
	}
	ctx, cancel := rp.ctx(r)
	defer cancel()
	now := rp.now()
	places, err := h.leaseMax(r, t, req.Group, now)
	if err != nil {
		rp.leases[leaseError].Inc()
		return h.storeFailed(w, r, "counting the group's agents", err)
	}
	grant, err := rp.store.AcquireLease(ctx, fleet.LeaseRequest{
		Group: req.Group, AgentID: req.AgentID, Channel: req.Channel, Version: req.Version, Max: places, TTL: ttl,
	}, now)
	if err != nil {
		rp.leases[leaseError].Inc()
		return h.storeFailed(w, r, "taking the lease", err)
	}
	ans := leaseAnswer{Granted: grant.Granted, Holders: grant.Holders, Max: places}
	if grant.Granted {
		rp.leases[leaseGranted].Inc()
		exp := grant.Lease.ExpiresAt.UTC()
		ans.ExpiresAt = &exp
		h.log.Debug("lease granted", "group", req.Group, "agent", req.AgentID, "version", req.Version,
			"holders", grant.Holders, "max", places, "expires", exp)
		return h.writeJSON(w, r, http.StatusOK, ans)
	}
	rp.leases[leaseRefused].Inc()
	retry := grant.RetryAfter.UTC()
	ans.RetryAfter = &retry
	secs := int(retry.Sub(now).Seconds() + 0.999)
	w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
	h.log.Debug("lease refused: the group is at its maxConcurrent", "group", req.Group, "agent", req.AgentID,
		"holders", grant.Holders, "max", places, "retryAfter", retry)
	return h.writeJSON(w, r, http.StatusConflict, ans)
}

// decodeLease reads a lease request strictly and returns it with its TTL.
func decodeLease(raw []byte, def time.Duration) (leaseBody, time.Duration, error) {
	var b leaseBody
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		return b, 0, fmt.Errorf("not a lease request: %v; send {\"agentId\", \"group\", \"channel\", \"version\", \"ttl\"}", err)
	}
	if dec.More() {
		return b, 0, errors.New("data after the lease request's JSON object: send exactly one object")
	}
	if err := report.CheckAgentID(b.AgentID); err != nil {
		return b, 0, err
	}
	if b.Group == report.NoGroup {
		b.Group = ""
	}
	if why := spec.NameProblem(b.Group, false); b.Group != "" && why != "" {
		return b, 0, fmt.Errorf("group %s: %s", quoteParam(b.Group), why)
	}
	if why := spec.NameProblem(b.Channel, true); b.Channel != "" && why != "" {
		return b, 0, fmt.Errorf("channel %s: %s", quoteParam(b.Channel), why)
	}
	if len(b.Version) > report.MaxVersionLength {
		return b, 0, fmt.Errorf("version: %d bytes, at most %d allowed", len(b.Version), report.MaxVersionLength)
	}
	b.Version = report.CanonicalVersion(b.Version)
	ttl := def
	if b.TTL != "" {
		d, err := time.ParseDuration(b.TTL)
		if err != nil || d < minLeaseTTL || d > MaxLeaseTTL {
			return b, 0, fmt.Errorf("ttl %s: a duration from %s to %s, such as 30m", quoteParam(b.TTL), minLeaseTTL, MaxLeaseTTL)
		}
		ttl = d
	}
	return b, ttl, nil
}

// leaseMax is the group's places: its maxConcurrent as served, a percent
// taken of the group's agents in the store, never 0 for a limited group
// (0 means unlimited to the store). A group the snapshot does not know,
// and agents without a group, are unlimited.
func (h *handler) leaseMax(r *http.Request, t *tables, group string, now time.Time) (int, error) {
	ge := t.groups[group]
	if group == "" || ge == nil || ge.maxConcurrent.IsZero() {
		return 0, nil
	}
	q := ge.maxConcurrent
	if !q.IsPercent {
		return q.Count, nil
	}
	n, err := h.groupAgents(r, group, now)
	if err != nil {
		return 0, err
	}
	return max(q.Of(n), 1), nil
}

// groupAgents counts the group's agents in the store (stale ones too: a
// silent agent may come back and update).
func (h *handler) groupAgents(r *http.Request, group string, now time.Time) (int, error) {
	rp := h.reports
	ctx, cancel := rp.ctx(r)
	defer cancel()
	page, err := rp.store.Fleet(ctx, fleet.Page{Filter: report.Filter{Group: group}, Limit: 1}, now)
	if err != nil {
		return 0, err
	}
	return page.Counts.Agents, nil
}

// releaseLease serves DELETE /v1/leases/<group>/<agentId>.
func (h *handler) releaseLease(w http.ResponseWriter, r *http.Request, tail string) int {
	rp := h.reports
	if rp == nil {
		return reportsDisabled(w)
	}
	if r.Method != http.MethodDelete {
		w.Header().Set("Allow", "DELETE")
		return textError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed: DELETE /v1/leases/<group>/<agentId> gives a lease back")
	}
	if code := h.authorize(w, r); code != 0 {
		return code
	}
	group, agent, ok := strings.Cut(tail, "/")
	if ok {
		var err1, err2 error
		group, err1 = url.PathUnescape(group)
		agent, err2 = url.PathUnescape(agent)
		ok = err1 == nil && err2 == nil
	}
	if !ok || group == "" || agent == "" || strings.Contains(agent, "/") {
		return badRequest(w, "the path is /v1/leases/<group>/<agentId>, with "+report.NoGroup+" for an agent without a group")
	}
	if group == report.NoGroup {
		group = ""
	}
	if err := report.CheckAgentID(agent); err != nil {
		return badRequest(w, err.Error())
	}
	ctx, cancel := rp.ctx(r)
	defer cancel()
	held, err := rp.store.ReleaseLease(ctx, group, agent, rp.now())
	if err != nil {
		return h.storeFailed(w, r, "releasing the lease", err)
	}
	if !held {
		return notFound(w, fmt.Sprintf("agent %q holds no lease in group %q: it expired or was given back", agent, cmpGroup(group)))
	}
	h.log.Debug("lease released", "group", group, "agent", agent)
	return h.writeJSON(w, r, http.StatusOK, map[string]bool{"released": true})
}

// leaseList serves GET /v1/leases[?group=].
func (h *handler) leaseList(w http.ResponseWriter, r *http.Request) int {
	rp := h.reports
	if code := h.authorize(w, r); code != 0 {
		return code
	}
	group := ""
	for k, v := range r.URL.Query() {
		if k != "group" {
			return badRequest(w, "unknown query parameter "+quoteParam(k)+": use group")
		}
		group = v[0]
	}
	ctx, cancel := rp.ctx(r)
	defer cancel()
	ls, err := rp.store.Leases(ctx, group, rp.now())
	if err != nil {
		return h.storeFailed(w, r, "listing the leases", err)
	}
	if ls == nil {
		ls = []fleet.Lease{}
	}
	return h.writeJSON(w, r, http.StatusOK, struct {
		Leases []fleet.Lease `json:"leases"`
	}{ls})
}

func cmpGroup(g string) string {
	if g == "" {
		return report.NoGroup
	}
	return g
}
