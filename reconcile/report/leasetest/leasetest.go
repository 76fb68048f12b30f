// Package leasetest is an in-memory concurrency lease server speaking the
// wire of docs/design/2026-12-03-rollouts.md (POST /v1/leases, DELETE
// /v1/leases/<group>/<agentId>), for updaters' tests over real HTTP. It
// keeps a log of what it granted, refused and released, so tests assert
// maxConcurrent from the server's own records. The real server is
// reconcile/server over a fleet.Store.
package leasetest

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Event is one entry of the log.
type Event struct {
	Group, AgentID, Event string // Event: acquired, renewed, refused, released
	Version               string
}

type holder struct {
	version string
	expires time.Time
}

// Leases is the lease table. Max maps a group ("_none" for agents without
// one) to its maxConcurrent; a group not in it is unlimited.
type Leases struct {
	Token string        // the bearer token required; "" accepts any
	TTL   time.Duration // default 30m
	Now   func() time.Time

	mu      sync.Mutex
	max     map[string]int
	held    map[string]map[string]holder
	log     []Event
	maxSeen map[string]int
}

// New returns a lease table with the given limits.
func New(max map[string]int) *Leases {
	return &Leases{max: max, held: map[string]map[string]holder{}, maxSeen: map[string]int{}}
}

func (l *Leases) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

// Register adds the leases routes to mux.
func (l *Leases) Register(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/leases", l.acquire)
	mux.HandleFunc("DELETE /v1/leases/{group}/{agent}", l.release)
}

func (l *Leases) authorized(w http.ResponseWriter, r *http.Request) bool {
	if l.Token != "" && r.Header.Get("Authorization") != "Bearer "+l.Token {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return false
	}
	return true
}

func (l *Leases) acquire(w http.ResponseWriter, r *http.Request) {
	if !l.authorized(w, r) {
		return
	}
	var req struct {
		AgentID string `json:"agentId"`
		Group   string `json:"group"`
		Channel string `json:"channel"`
		Version string `json:"version"`
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, 4<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || req.AgentID == "" || req.Channel == "" || req.Version == "" {
		http.Error(w, "bad lease request", http.StatusBadRequest)
		return
	}
	group := req.Group
	if group == "" {
		group = "_none"
	}
	now := l.now()
	ttl := l.TTL
	if ttl == 0 {
		ttl = 30 * time.Minute
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	g := l.held[group]
	if g == nil {
		g = map[string]holder{}
		l.held[group] = g
	}
	for id, h := range g {
		if !now.Before(h.expires) {
			delete(g, id)
			l.log = append(l.log, Event{group, id, "expired", h.version})
		}
	}
	limit, limited := l.max[group]
	if _, mine := g[req.AgentID]; !mine && limited && len(g) >= limit {
		earliest := time.Time{}
		for _, h := range g {
			if earliest.IsZero() || h.expires.Before(earliest) {
				earliest = h.expires
			}
		}
		l.log = append(l.log, Event{group, req.AgentID, "refused", req.Version})
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusConflict)
		_ = json.NewEncoder(w).Encode(map[string]any{"granted": false, "holders": len(g), "max": limit,
			"retryAfter": earliest.UTC().Format(time.RFC3339)})
		return
	}
	ev := "acquired"
	if _, mine := g[req.AgentID]; mine {
		ev = "renewed"
	}
	g[req.AgentID] = holder{req.Version, now.Add(ttl)}
	l.log = append(l.log, Event{group, req.AgentID, ev, req.Version})
	l.maxSeen[group] = max(l.maxSeen[group], len(g))
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"granted": true, "expiresAt": now.Add(ttl).UTC().Format(time.RFC3339)})
}

func (l *Leases) release(w http.ResponseWriter, r *http.Request) {
	if !l.authorized(w, r) {
		return
	}
	group, agent := r.PathValue("group"), r.PathValue("agent")
	l.mu.Lock()
	defer l.mu.Unlock()
	h, ok := l.held[group][agent]
	if !ok {
		http.Error(w, "no lease", http.StatusNotFound)
		return
	}
	delete(l.held[group], agent)
	l.log = append(l.log, Event{group, agent, "released", h.version})
	w.WriteHeader(http.StatusNoContent)
}

// Log is every event so far, oldest first.
func (l *Leases) Log() []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Event(nil), l.log...)
}

// Holders are the agents holding a lease of group (expired ones included
// until the next request drops them).
func (l *Leases) Holders(group string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var ids []string
	for id := range l.held[group] {
		ids = append(ids, id)
	}
	return ids
}

// Hold gives agent a lease of group, as another updater would.
func (l *Leases) Hold(group, agent string, expires time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held[group] == nil {
		l.held[group] = map[string]holder{}
	}
	l.held[group][agent] = holder{"other", expires}
	l.maxSeen[group] = max(l.maxSeen[group], len(l.held[group]))
}

// MaxSeen is the most leases group held at once.
func (l *Leases) MaxSeen(group string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.maxSeen[group]
}

// Events are the log's event names for agent, in order, joined by spaces.
func (l *Leases) Events(agent string) string {
	var evs []string
	for _, e := range l.Log() {
		if e.AgentID == agent {
			evs = append(evs, e.Event)
		}
	}
	return strings.Join(evs, " ")
}
