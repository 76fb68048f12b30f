package server

import (
	"net/http"
	"net/url"
	"strings"

	"upkeep.dev/upkeep/reconcile"
	"upkeep.dev/upkeep/reconcile/rollout"
)

// The per-agent version answer. A channel with a rollout answers each
// agent what its stage and canary status allow (rollout.Answer); the
// bodies and Upkeep-Rollout header values are built once per answer table,
// so the request still costs map lookups and a write, without allocating.
//
// Identity: the Upkeep-Agent-Id and Upkeep-Group headers, or the query
// parameters agent and group (headers win). A request without an agent id
// gets the group's all-step answer, as the group-scoped channel does: an
// unidentified caller is never taken for a canary.

// Header names of the rollout wire (docs/design/2026-12-03-rollouts.md).
const (
	HeaderAgentID = "Upkeep-Agent-Id"
	HeaderGroup   = "Upkeep-Group"
	HeaderRollout = "Upkeep-Rollout"
)

// heldReasons are the reasons whose header values are prebuilt.
var heldReasons = []string{rollout.HeldPending, rollout.HeldNotCanary, rollout.HeldStageLater, rollout.HeldHalted, rollout.HeldSuperseded}

// rollTable is the answer tables of one Answers under one snapshot's
// tables, with their bodies.
type rollTable struct {
	t         *tables
	src       *rollout.Answers
	byChannel map[string]*rollEntry
}

type rollEntry struct {
	a      *rollout.Answer
	bodies map[string][]byte   // version → Teleport body ("v1.2.3", "none")
	held   map[string][]string // reason → Upkeep-Rollout header value
}

// rolloutEntry is the answer table of e's channel, or nil when it has
// none (no rollout stored yet, or the server runs without rollouts: the
// channel's version, as before). loading is true while the rollouts have
// not been read yet: answering the channel's version then could hand a
// version under rollout to everyone, so the caller answers 503.
func (h *handler) rolloutEntry(t *tables, e *channelEntry) (re *rollEntry, loading bool) {
	if h.answers == nil {
		return nil, false
	}
	src := h.answers()
	if src == nil {
		return nil, true
	}
	rt := h.roll.Load()
	if rt == nil || rt.t != t || rt.src != src {
		// The cache swaps its tables every refresh; the first request to
		// see a new one builds the bodies, a few per channel. Two requests
		// may race to do it; either result is right.
		rt = buildRoll(t, src)
		h.roll.Store(rt)
	}
	return rt.byChannel[e.view.Name], false
}

// rolloutsLoading answers 503 while the rollouts are not read yet.
func rolloutsLoading(w http.ResponseWriter) int {
	w.Header().Set("Retry-After", "1")
	return textError(w, http.StatusServiceUnavailable, "the channel is under a rollout whose state is not read from the fleet store yet: ask again in a second")
}

func buildRoll(t *tables, src *rollout.Answers) *rollTable {
	rt := &rollTable{t: t, src: src, byChannel: map[string]*rollEntry{}}
	for name, e := range t.channels {
		if !e.rollout || name != e.view.Name { // the "default" alias shares its channel's entry
			continue
		}
		a := src.Channel(name)
		if a == nil {
			continue
		}
		re := &rollEntry{a: a, bodies: map[string][]byte{}, held: map[string][]string{}}
		for _, v := range []string{a.Version, a.FromVersion} {
			re.bodies[v] = reconcile.VersionBody(v)
		}
		for _, reason := range heldReasons {
			re.held[reason] = []string{a.Header(reason)}
		}
		rt.byChannel[name] = re
	}
	return rt
}

// write answers version v, with the Upkeep-Rollout header when held.
func (re *rollEntry) write(w http.ResponseWriter, r *http.Request, v string, held bool, reason string) int {
	body := re.bodies[v]
	if body == nil {
		body = reconcile.VersionBody(v) // not one of the table's two versions; never expected
	}
	if held {
		hv := re.held[reason]
		if hv == nil {
			hv = []string{re.a.Header(reason)}
		}
		w.Header()[HeaderRollout] = hv
	}
	// No ETag: the answer depends on who asks and changes with the rollout.
	return writeBody(w, r, hText, nil, body)
}

// identity is the agent id and group a version request names.
func identity(r *http.Request) (agent, group string) {
	if v := r.Header[HeaderAgentID]; len(v) > 0 {
		agent = strings.TrimSpace(v[0])
	}
	if v := r.Header[HeaderGroup]; len(v) > 0 {
		group = strings.TrimSpace(v[0])
	}
	if (agent == "" || group == "") && r.URL.RawQuery != "" {
		qa, qg := queryIdentity(r.URL.RawQuery)
		if agent == "" {
			agent = qa
		}
		if group == "" {
			group = qg
		}
	}
	return agent, group
}

// queryIdentity reads agent= and group= from a raw query without
// allocating, unless a value is escaped.
func queryIdentity(q string) (agent, group string) {
	for q != "" {
		var kv string
		kv, q, _ = strings.Cut(q, "&")
		k, v, _ := strings.Cut(kv, "=")
		if strings.ContainsAny(v, "%+") {
			if u, err := url.QueryUnescape(v); err == nil {
				v = u
			}
		}
		switch k {
		case "agent":
			if agent == "" {
				agent = v
			}
		case "group":
			if group == "" {
				group = v
			}
		}
	}
	return agent, group
}
