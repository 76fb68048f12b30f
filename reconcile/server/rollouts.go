package server

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"upkeep.dev/upkeep/reconcile/fleet"
	"upkeep.dev/upkeep/reconcile/report"
	"upkeep.dev/upkeep/reconcile/rollout"
	"upkeep.dev/upkeep/spec"
)

// Rollouts, as the store holds them (the leader writes them; every
// replica reads the same rows):
//
//   - GET /v1/rollouts answers {rollouts: [<rollout>…]}, by channel.
//   - GET /v1/rollouts/<channel> answers the rollout's fields, "stages"
//     (each stage's groups and the progress of its agents, counted from
//     the store) and "transitions": the latest ?transitions=<n> (at most
//     MaxTransitions, default DefaultTransitions) in the order they were
//     taken, oldest first. Steps of one engine pass share one time, so the
//     order is the store's, not a sort by time.
//   - POST /v1/rollouts/<channel>/halt and .../resume are the operator's
//     steps (rules HaltedByOperator, ResumedByOperator), recorded in the
//     store with the actor "operator:token-<8 hex digits of the token's
//     SHA-256>", so the log says which token acted without holding it. An
//     optional body {"note": "…"} joins the transition's message. 200 with
//     {rollout, transition}; 404 when the channel has no rollout; 409 when
//     it is not running (halt) or not halted (resume).
//
// All take the bearer tokens of reports: canaries name agents.

// Transition counts of GET /v1/rollouts/<channel>.
const (
	DefaultTransitions = 100
	MaxTransitions     = 1000
	maxOperatorBody    = 4 << 10
)

// StageProgress is one stage of GET /v1/rollouts/<channel> (and of the
// fleet page's rollout view, reconcile/webui).
type StageProgress struct {
	Index    int      `json:"index"`
	Groups   []string `json:"groups"`
	Implicit bool     `json:"implicit,omitempty"` // the groups in no stage, and agents without one
	Canaries string   `json:"canaries"`
	BakeTime string   `json:"bakeTime"`
	// Status: done (every step passed), current, or waiting.
	Status string `json:"status"`
	// Counts over the stage's agents in the store.
	Agents    int `json:"agents"`
	Live      int `json:"live"`      // not stale
	OnVersion int `json:"onVersion"` // run the rollout's version
	Healthy   int `json:"healthy"`   // run it, healthy, not stale
	Failed    int `json:"failed"`    // rolled it back or failed to install it
}

// rolloutDetail is GET /v1/rollouts/<channel>'s body.
type rolloutDetail struct {
	fleet.Rollout
	Stages      []StageProgress    `json:"stages"`
	Transitions []fleet.Transition `json:"transitions"`
}

func (h *handler) rolloutList(w http.ResponseWriter, r *http.Request) int {
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
	ctx, cancel := rp.ctx(r)
	defer cancel()
	rs, err := rp.store.Rollouts(ctx)
	if err != nil {
		return h.storeFailed(w, r, "reading the rollouts", err)
	}
	if rs == nil {
		rs = []fleet.Rollout{}
	}
	return h.writeJSON(w, r, http.StatusOK, struct {
		Rollouts []fleet.Rollout `json:"rollouts"`
	}{rs})
}

// rolloutRoute serves /v1/rollouts/<tail>.
func (h *handler) rolloutRoute(w http.ResponseWriter, r *http.Request, tail string) (route, int, bool) {
	if h.reports == nil {
		return routeRollout, reportsDisabled(w), true
	}
	if r.Method == http.MethodPost {
		if ch, ok := strings.CutSuffix(tail, "/halt"); ok {
			return routeRollout, h.operate(w, r, ch, rollout.Halt), true
		}
		if ch, ok := strings.CutSuffix(tail, "/resume"); ok {
			return routeRollout, h.operate(w, r, ch, rollout.Resume), true
		}
		w.Header()["Allow"] = hAllowGet
		return routeRollout, textError(w, http.StatusMethodNotAllowed, "POST /v1/rollouts/<channel>/halt or /resume; a rollout itself is read with GET"), true
	}
	return routeRollout, h.rolloutDetail(w, r, tail), true
}

func (h *handler) rolloutDetail(w http.ResponseWriter, r *http.Request, channel string) int {
	rp := h.reports
	if !readMethod(w, r) {
		return http.StatusMethodNotAllowed
	}
	if code := h.authorize(w, r); code != 0 {
		return code
	}
	if !validName(channel, true) {
		return badRequest(w, fmt.Sprintf("%s: %s", quoteParam(channel), spec.NameProblem(channel, true)))
	}
	limit, msg := onlyIntParam(r, "transitions", 1, MaxTransitions, DefaultTransitions)
	if msg != "" {
		return badRequest(w, msg)
	}
	ctx, cancel := rp.ctx(r)
	defer cancel()
	ro, ok, err := rp.store.Rollout(ctx, channel)
	if err != nil {
		return h.storeFailed(w, r, "reading the rollout", err)
	}
	if !ok {
		return notFound(w, fmt.Sprintf("channel %q has no rollout: the engine records one within a second of a served channel's first sight", channel))
	}
	d := rolloutDetail{Rollout: ro, Stages: []StageProgress{}}
	if d.Transitions, err = rp.store.Transitions(ctx, channel, limit); err != nil {
		return h.storeFailed(w, r, "reading the rollout's transitions", err)
	}
	if d.Transitions == nil {
		d.Transitions = []fleet.Transition{}
	}
	slices.Reverse(d.Transitions) // the store answers newest first
	if t := h.tables(); t != nil && t.snap.State != nil {
		if stages := t.snap.State.RolloutStages(channel); stages != nil {
			if d.Stages, err = h.progress(r, ro, stages); err != nil {
				return h.storeFailed(w, r, "counting the rollout's agents", err)
			}
		}
	}
	return h.writeJSON(w, r, http.StatusOK, d)
}

// progress counts each stage's agents against the rollout's version.
func (h *handler) progress(r *http.Request, ro fleet.Rollout, stages []spec.ResolvedStage) ([]StageProgress, error) {
	rp := h.reports
	ctx, cancel := rp.ctx(r)
	defer cancel()
	agents, err := rp.store.AgentStates(ctx, ro.Channel, StageGroups(stages), rp.now())
	if err != nil {
		return nil, err
	}
	return Progress(ro, stages, agents), nil
}

// StageGroups are the groups of stages, the ones to pass to
// fleet.Store.AgentStates with the rollout's channel for Progress.
func StageGroups(stages []spec.ResolvedStage) []string {
	var groups []string
	for _, st := range stages {
		groups = append(groups, st.Groups...)
	}
	return groups
}

// Progress counts each stage's agents (fleet.Store.AgentStates of the
// rollout's channel and StageGroups) against the rollout's version, as
// GET /v1/rollouts/<channel> answers them.
func Progress(ro fleet.Rollout, stages []spec.ResolvedStage, agents []fleet.AgentState) []StageProgress {
	out := make([]StageProgress, len(stages))
	for i, st := range stages {
		status := "waiting"
		switch {
		case ro.State == fleet.StateDone || i < ro.Stage:
			status = "done"
		case i == ro.Stage:
			status = "current"
		}
		out[i] = StageProgress{Index: i, Groups: append([]string{}, st.Groups...), Implicit: st.Implicit,
			Canaries: st.Canaries.String(), BakeTime: st.BakeTime.String(), Status: status}
	}
	for _, a := range agents {
		i := spec.StageOf(stages, a.Group)
		if i < 0 {
			continue
		}
		p := &out[i]
		p.Agents++
		live := a.Health != report.HealthStale
		if live {
			p.Live++
		}
		if a.CurrentVersion == ro.Version {
			p.OnVersion++
			if live && a.Health == report.HealthHealthy {
				p.Healthy++
			}
		}
		if a.FailedVersion != "" && a.FailedVersion == ro.Version {
			p.Failed++
		}
	}
	return out
}

type operatorStep func(fleet.Rollout, string, string, time.Time) (fleet.Rollout, fleet.Transition, error)

// operate applies an operator's step to channel's stored rollout.
func (h *handler) operate(w http.ResponseWriter, r *http.Request, channel string, step operatorStep) int {
	rp := h.reports
	if code := h.authorize(w, r); code != 0 {
		return code
	}
	if !validName(channel, true) {
		return badRequest(w, fmt.Sprintf("%s: %s", quoteParam(channel), spec.NameProblem(channel, true)))
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxOperatorBody))
	if err != nil {
		return textError(w, http.StatusRequestEntityTooLarge, "the body is at most {\"note\": \"…\"}, under 4 KiB")
	}
	var body struct {
		Note string `json:"note"`
	}
	if len(bytes.TrimSpace(raw)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&body); err != nil {
			return badRequest(w, "the body is optional; when sent it is {\"note\": \"why\"}: "+err.Error())
		}
	}
	note := report.CleanText(strings.TrimSpace(body.Note), report.MaxMessageLength/2)
	token, _ := report.BearerToken(r.Header.Get("Authorization"))
	who := TokenName(token)
	ctx, cancel := rp.ctx(r)
	defer cancel()
	saved, t, err := rollout.Operate(ctx, rp.store, channel, step, who, note, rp.now())
	switch {
	case errors.Is(err, rollout.ErrNoRollout):
		return notFound(w, err.Error())
	case errors.Is(err, rollout.ErrNotRunning), errors.Is(err, rollout.ErrNotHalted):
		return textError(w, http.StatusConflict, err.Error())
	case errors.Is(err, fleet.ErrConflict):
		return textError(w, http.StatusConflict, "the rollout kept changing under the request (the leader is stepping it): try again")
	case err != nil:
		return h.storeFailed(w, r, "recording the operator's step", err)
	}
	h.log.Warn("rollout step by an operator", "channel", channel, "version", t.Version, "from", t.From, "to", t.To,
		"rule", t.Rule, "actor", t.Actor, "message", t.Message, "remote", r.RemoteAddr)
	return h.writeJSON(w, r, http.StatusOK, struct {
		Rollout    fleet.Rollout    `json:"rollout"`
		Transition fleet.Transition `json:"transition"`
	}{saved, t})
}

// TokenName names a token in the store's records without revealing it:
// "token-" and 8 hex digits of its SHA-256 (`printf %s "$TOKEN" |
// sha256sum | cut -c1-8` finds which).
func TokenName(token string) string {
	sum := sha256.Sum256([]byte(token))
	return "token-" + hex.EncodeToString(sum[:4])
}
