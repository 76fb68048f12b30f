package webui

import (
	"cmp"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"upkeep.dev/upkeep/reconcile"
	"upkeep.dev/upkeep/reconcile/calendar"
	"upkeep.dev/upkeep/reconcile/fleet"
	"upkeep.dev/upkeep/reconcile/report"
	"upkeep.dev/upkeep/reconcile/rollout"
	"upkeep.dev/upkeep/reconcile/schedule"
	"upkeep.dev/upkeep/reconcile/server"
	"upkeep.dev/upkeep/spec"
)

// page is what every template gets.
type page struct {
	Title    string
	Nav      string // overview, agents: the highlighted link
	Now      time.Time
	CSRF     string
	Operate  bool
	Refresh  int    // milliseconds; 0: no auto-refresh
	Revision string // served; "" before the first good sync
	SyncErr  string // the last sync's failure, when failing
	Flash    string
	FlashErr bool
	Search   string // the agent search box's text
	Data     any
}

type loginPage struct {
	Next, Error string
}

type problemPage struct {
	Message string
}

// newPage fills what the layout needs of every authenticated page.
func (h *Handler) newPage(q *request, title, nav string, data any) page {
	p := page{Title: title, Nav: nav, Now: q.now, CSRF: formToken(q.token), Operate: h.o.Operate,
		Refresh: int(h.o.Refresh / time.Millisecond), Data: data}
	st := h.o.Backend.Status()
	p.Revision = st.Revision
	if st.LastError != nil {
		p.SyncErr = st.LastError.Message
	}
	p.Flash, p.FlashErr = h.takeFlash(q)
	return p
}

func (h *Handler) problem(q *request, code int, title, msg string) {
	h.problemPage(q, code, title, msg, false)
}

// problemPage shows what went wrong; refresh keeps the auto-refresh, for
// a failure that may pass (the store), so the page recovers on its own.
func (h *Handler) problemPage(q *request, code int, title, msg string, refresh bool) {
	p := h.newPage(q, title, "", problemPage{Message: msg})
	if !refresh {
		p.Refresh = 0
	}
	h.render(q.w, q.r, code, "problem", p)
}

// --- overview ---------------------------------------------------------

type overviewData struct {
	Channels []channelRow
	Groups   []groupRow
	Agents   int
	Stale    int
	Versions []countRow // by version, newest first
	Health   []countRow // healthy, unhealthy, unknown, stale
	// Orphans are rollouts of channels the served revision lacks.
	Orphans []fleet.Rollout
}

type channelRow struct {
	Name, Version, ControlPlane, ControlPlaneVersion, Withheld string
	Critical, Follow                                           bool
	Rollout                                                    *fleet.Rollout
	Stages                                                     int
	Halted                                                     bool
}

type groupRow struct {
	Name, Channel, Timezone string
	Agents                  int
	Open, NextUsable        *calendar.Interval
	Loc                     *time.Location
}

type countRow struct {
	Key string
	N   int
	Pct float64
}

// healthOrder is how health counts are listed.
var healthOrder = []string{report.HealthHealthy, report.HealthUnhealthy, report.HealthUnknown, report.HealthStale}

func (h *Handler) overview(q *request) {
	if !q.get() {
		h.plain(q.w, http.StatusMethodNotAllowed, "the overview is read with GET")
		return
	}
	ctx := q.r.Context()
	rs, err := h.o.Store.Rollouts(ctx)
	if err != nil {
		h.storeFailed(q, "reading the rollouts", err)
		return
	}
	fp, err := h.o.Store.Fleet(ctx, fleet.Page{Limit: 1}, q.now)
	if err != nil {
		h.storeFailed(q, "counting the agents", err)
		return
	}
	byChannel := map[string]*fleet.Rollout{}
	for i := range rs {
		byChannel[rs[i].Channel] = &rs[i]
	}
	d := overviewData{Agents: fp.Counts.Agents, Stale: fp.Counts.Stale}
	if s := h.o.Backend.Snapshot(); s != nil {
		for _, c := range s.Channels() {
			row := channelRow{Name: c.Name, Version: cmp.Or(c.Version, spec.NoVersion), ControlPlane: c.ControlPlane,
				ControlPlaneVersion: c.ControlPlaneVersion, Withheld: c.Withheld, Critical: c.Critical, Follow: c.Follow,
				Stages: len(s.State.RolloutStages(c.Name))}
			if ro := byChannel[c.Name]; ro != nil {
				row.Rollout, row.Halted = ro, ro.State == fleet.StateHalted
				delete(byChannel, c.Name)
			}
			d.Channels = append(d.Channels, row)
		}
		for _, g := range s.Groups() {
			row := groupRow{Name: g.Name, Channel: g.Channel, Timezone: g.Timezone, Agents: fp.Counts.ByGroup[g.Name], Loc: location(s.State.Group(g.Name))}
			if iv, ok := calendar.Open(g.Windows, q.now); ok {
				row.Open = &iv
			}
			if iv, ok := calendar.FirstFit(g.Windows, q.now, g.UpdateDuration); ok {
				row.NextUsable = &iv
			}
			d.Groups = append(d.Groups, row)
		}
	}
	// Halted rollouts first: they are what needs an operator.
	slices.SortStableFunc(d.Channels, func(a, b channelRow) int {
		if a.Halted != b.Halted {
			if a.Halted {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Name, b.Name)
	})
	for _, ro := range byChannel {
		d.Orphans = append(d.Orphans, *ro)
	}
	slices.SortFunc(d.Orphans, func(a, b fleet.Rollout) int { return strings.Compare(a.Channel, b.Channel) })
	d.Versions = versionCounts(fp.Counts.ByVersion, fp.Counts.Agents)
	d.Health = healthCounts(fp.Counts.ByHealth, fp.Counts.Agents)
	h.render(q.w, q.r, http.StatusOK, "overview", h.newPage(q, "Fleet", "overview", d))
}

func pct(n, total int) float64 {
	if total == 0 {
		return 0
	}
	return float64(n) * 100 / float64(total)
}

// versionCounts lists versions newest first (semver order; unknown last).
func versionCounts(m map[string]int, total int) []countRow {
	out := make([]countRow, 0, len(m))
	for k, n := range m {
		out = append(out, countRow{Key: k, N: n, Pct: pct(n, total)})
	}
	slices.SortFunc(out, func(a, b countRow) int { return report.CompareVersionsNewestFirst(a.Key, b.Key) })
	return out
}

func healthCounts(m map[string]int, total int) []countRow {
	out := make([]countRow, 0, len(healthOrder))
	for _, k := range healthOrder {
		out = append(out, countRow{Key: k, N: m[k], Pct: pct(m[k], total)})
	}
	return out
}

// --- rollout ----------------------------------------------------------

// TransitionsShown is how many of a rollout's transitions its page lists.
const TransitionsShown = 20

type rolloutData struct {
	R         fleet.Rollout
	Stages    []stageRow
	Canaries  []canaryRow
	Failures  []failureRow
	Trans     []fleet.Transition // newest first
	Running   bool
	Halted    bool
	Baking    bool
	Served    string // the channel's version in the served revision
	NoStages  bool   // the served revision has no rollout for the channel any more
	StageName string
}

type stageRow struct {
	server.StageProgress
	// Percentages of the stage's agents for the bar: healthy on the
	// version, on it but not healthy, failed.
	HealthyPct, OnPct, FailedPct float64
	Success, Failure             string
	Bake                         time.Duration
}

type canaryRow struct {
	ID, Group, Version, Health string
	Known                      bool
}

type failureRow struct {
	ID, Group, Why, Version string
}

func (h *Handler) rollout(q *request, channel string) {
	ctx := q.r.Context()
	ro, ok, err := h.o.Store.Rollout(ctx, channel)
	if err != nil {
		h.storeFailed(q, "reading the rollout", err)
		return
	}
	if !ok {
		h.problem(q, http.StatusNotFound, "No rollout", fmt.Sprintf("Channel %q has no rollout: the engine records one within a second of a served channel with a rollout.", channel))
		return
	}
	d := rolloutData{R: ro, Running: rollout.Running(ro.State), Halted: ro.State == fleet.StateHalted, Baking: ro.State == fleet.StateBaking}
	if d.Trans, err = h.o.Store.Transitions(ctx, channel, TransitionsShown); err != nil {
		h.storeFailed(q, "reading the rollout's transitions", err)
		return
	}
	var stages []spec.ResolvedStage
	if s := h.o.Backend.Snapshot(); s != nil {
		stages = s.State.RolloutStages(channel)
		if c := s.Channel(channel); c != nil {
			d.Served = cmp.Or(c.Version, spec.NoVersion)
		}
	}
	d.NoStages = stages == nil
	agents, err := h.o.Store.AgentStates(ctx, channel, server.StageGroups(stages), q.now)
	if err != nil {
		h.storeFailed(q, "reading the rollout's agents", err)
		return
	}
	if stages != nil {
		for i, p := range server.Progress(ro, stages, agents) {
			row := stageRow{StageProgress: p, Success: stages[i].SuccessThreshold.String(), Failure: stages[i].FailureThreshold.String(), Bake: stages[i].BakeTime}
			if p.Agents > 0 {
				row.HealthyPct = pct(p.Healthy, p.Agents)
				row.OnPct = pct(p.OnVersion-p.Healthy, p.Agents)
				row.FailedPct = pct(p.Failed, p.Agents)
			}
			d.Stages = append(d.Stages, row)
		}
	}
	// Failures as the engine counts them; while halted, the ones that
	// halted it (the engine counts only later ones once resumed).
	judge := ro
	if ro.State == fleet.StateHalted {
		judge.HaltedAt = time.Time{}
	}
	byID := make(map[string]*fleet.AgentState, len(agents))
	for i := range agents {
		a := &agents[i]
		byID[a.AgentID] = a
		if why, ok := rollout.Failure(*a, judge); ok {
			d.Failures = append(d.Failures, failureRow{ID: a.AgentID, Group: a.Group, Why: why, Version: a.CurrentVersion})
		}
	}
	for _, id := range ro.Canaries {
		row := canaryRow{ID: id}
		if a := byID[id]; a != nil {
			row.Known, row.Group, row.Version, row.Health = true, a.Group, a.CurrentVersion, a.Health
		}
		d.Canaries = append(d.Canaries, row)
	}
	h.render(q.w, q.r, http.StatusOK, "rollout", h.newPage(q, "Rollout of "+channel, "overview", d))
}

// --- group ------------------------------------------------------------

// WeekDays is the length of the group page's strip.
const WeekDays = 7

type groupData struct {
	G              *spec.Group
	Loc            *time.Location
	UpdateDuration time.Duration
	MaxConcurrent  string
	Open           *calendar.Interval
	Next           *calendar.Interval
	NextUsable     *calendar.Interval
	Strip          strip
	Windows        []calendar.Interval // of the strip's week
	Freezes        []freezeRow
	Leases         []fleet.Lease
	Agents         agentTable
	Stage          int // the group's stage in its channel's rollout, -1 none
	Stages         int
}

type freezeRow struct {
	spec.Freeze
	Active, Past bool
}

// strip is the week drawn as SVG: one column per local day.
type strip struct {
	Width, Height, DayWidth int
	Days                    []stripDay
	Bars                    []stripBar
	NowX                    float64
	NowIn                   bool
}

type stripDay struct {
	X     int
	Label string
}

type stripBar struct {
	X, W  float64
	Kind  string // window, freeze
	Title string
}

func (h *Handler) group(q *request, name string) {
	s := h.o.Backend.Snapshot()
	if s == nil || s.State.Group(name) == nil {
		msg := fmt.Sprintf("The served revision has no group %q.", name)
		if s == nil {
			msg = "No valid revision is served yet: see /status."
		}
		h.problem(q, http.StatusNotFound, "No such group", msg)
		return
	}
	g := s.State.Group(name)
	gv := s.Group(name)
	loc := location(g)
	d := groupData{G: g, Loc: loc, UpdateDuration: gv.UpdateDuration, Stage: -1}
	d.MaxConcurrent = "unlimited"
	if !g.MaxConcurrent.IsZero() {
		d.MaxConcurrent = g.MaxConcurrent.String()
	}
	// The windows from now, as the server publishes them (freezes cut
	// out; the first window after a freeze over the horizon), for open,
	// next and first usable.
	pub := schedule.Publish(g, q.now, reconcile.ScheduleHorizon)
	ahead := pub.Windows
	if iv, ok := calendar.Open(ahead, q.now); ok {
		d.Open = &iv
	}
	if iv, ok := calendar.Next(ahead, q.now); ok {
		d.Next = &iv
	}
	if iv, ok := pub.NextUsable(q.now, gv.UpdateDuration); ok {
		d.NextUsable = &iv
	}
	y, m, day := q.now.In(loc).Date()
	weekStart := time.Date(y, m, day, 0, 0, 0, 0, loc)
	weekEnd := weekStart.AddDate(0, 0, WeekDays)
	d.Windows = calendar.Windows(g, weekStart, weekEnd.Sub(weekStart))
	d.Strip = drawStrip(weekStart, weekEnd, loc, d.Windows, g.Freezes, q.now)
	for _, f := range g.Freezes {
		d.Freezes = append(d.Freezes, freezeRow{Freeze: f, Active: !q.now.Before(f.Start) && q.now.Before(f.End), Past: !q.now.Before(f.End)})
	}
	if stages := s.State.RolloutStages(g.Channel); stages != nil {
		d.Stage, d.Stages = spec.StageOf(stages, g.Name), len(stages)
	}
	ctx := q.r.Context()
	var err error
	if d.Leases, err = h.o.Store.Leases(ctx, g.Name, q.now); err != nil {
		h.storeFailed(q, "reading the group's leases", err)
		return
	}
	if d.Agents, err = h.agentTable(q, fleet.Page{Filter: report.Filter{Group: g.Name}, Limit: DefaultPageSize}); err != nil {
		h.storeFailed(q, "reading the group's agents", err)
		return
	}
	h.render(q.w, q.r, http.StatusOK, "group", h.newPage(q, "Group "+name, "overview", d))
}

// drawStrip lays the week out: each local day the same width (a DST day
// is 23 or 25 hours long, drawn in the same column), windows and freezes
// placed by their local times.
func drawStrip(start, end time.Time, loc *time.Location, windows []calendar.Interval, freezes []spec.Freeze, now time.Time) strip {
	const dayW = 120
	st := strip{DayWidth: dayW, Width: dayW * WeekDays, Height: 64}
	days := make([]time.Time, 0, WeekDays+1)
	for d := start; !d.After(end); d = d.AddDate(0, 0, 1) {
		days = append(days, d)
	}
	// x maps an instant to the strip: the day it falls in, then its share
	// of that day's real length.
	x := func(t time.Time) float64 {
		if !t.After(start) {
			return 0
		}
		for i := 0; i+1 < len(days); i++ {
			if t.Before(days[i+1]) {
				share := float64(t.Sub(days[i])) / float64(days[i+1].Sub(days[i]))
				return float64(i*dayW) + share*dayW
			}
		}
		return float64(st.Width)
	}
	for i := 0; i+1 < len(days); i++ {
		st.Days = append(st.Days, stripDay{X: i * dayW, Label: days[i].Format("Mon 02 Jan")})
	}
	for _, f := range freezes {
		if !f.End.After(start) || !f.Start.Before(end) {
			continue
		}
		x0, x1 := x(f.Start), x(f.End)
		st.Bars = append(st.Bars, stripBar{X: x0, W: x1 - x0, Kind: "freeze",
			Title: fmt.Sprintf("freeze %s: %s – %s", f.Name, f.Start.In(loc).Format("Mon 02 Jan 15:04"), f.End.In(loc).Format("Mon 02 Jan 15:04 MST"))})
	}
	for _, w := range windows {
		x0, x1 := x(w.Start), x(w.End)
		if x1 <= x0 {
			continue
		}
		st.Bars = append(st.Bars, stripBar{X: x0, W: x1 - x0, Kind: "window",
			Title: fmt.Sprintf("window %s – %s", w.Start.In(loc).Format("Mon 02 Jan 15:04"), w.End.In(loc).Format("Mon 02 Jan 15:04 MST"))})
	}
	if !now.Before(start) && now.Before(end) {
		st.NowIn, st.NowX = true, x(now)
	}
	return st
}

func location(g *spec.Group) *time.Location {
	if g != nil && g.Location != nil {
		return g.Location
	}
	if g != nil {
		if l, err := time.LoadLocation(g.Timezone); err == nil {
			return l
		}
	}
	return time.UTC
}

// --- agents -----------------------------------------------------------

// agentTable is a page of agents and the counts of the selection.
type agentTable struct {
	Now     time.Time
	Rows    []report.Agent
	Counts  report.Counts
	Health  []countRow
	Next    template.URL // the next page's path and query; "" on the last
	First   template.URL // the first page of the same selection
	Query   url.Values
	Shown   int
	Search  string
	Group   string
	HealthQ string
}

func (h *Handler) agentTable(q *request, p fleet.Page) (agentTable, error) {
	fp, err := h.o.Store.Fleet(q.r.Context(), p, q.now)
	if err != nil {
		return agentTable{}, err
	}
	t := agentTable{Now: q.now, Rows: fp.Agents, Counts: fp.Counts, Health: healthCounts(fp.Counts.ByHealth, fp.Counts.Agents),
		Shown: len(fp.Agents), Search: p.Search, Group: p.Group, HealthQ: p.Health}
	v := url.Values{}
	if p.Search != "" {
		v.Set("q", p.Search)
	}
	if p.Group != "" {
		v.Set("group", p.Group)
	}
	if p.Health != "" {
		v.Set("health", p.Health)
	}
	if p.Limit != DefaultPageSize {
		v.Set("limit", strconv.Itoa(p.Limit))
	}
	// Built here from escaped values, so they are safe as URLs.
	t.First = template.URL(Prefix + "agents?" + v.Encode())
	if fp.Next != nil {
		v.Set("after", encodeCursor(*fp.Next))
		t.Next = template.URL(Prefix + "agents?" + v.Encode())
	}
	return t, nil
}

type agentListData struct {
	T      agentTable
	Groups []string
	Health []string
	// First says this is the first page (no cursor).
	First bool
}

func (h *Handler) agentList(q *request) {
	if !q.get() {
		h.plain(q.w, http.StatusMethodNotAllowed, "the agent list is read with GET")
		return
	}
	p := fleet.Page{Limit: DefaultPageSize}
	qs := q.r.URL.Query()
	for k, v := range qs {
		val := v[0]
		switch k {
		case "q":
			p.Search = strings.TrimSpace(val)
			if len(p.Search) > report.MaxIDLength {
				h.problem(q, http.StatusBadRequest, "Search too long", fmt.Sprintf("An agent id is at most %d bytes; so is a search.", report.MaxIDLength))
				return
			}
		case "group":
			p.Group = val
		case "health":
			switch val {
			case "", report.HealthHealthy, report.HealthUnhealthy, report.HealthUnknown, report.HealthStale:
				p.Health = val
			default:
				h.problem(q, http.StatusBadRequest, "Bad health", "health is healthy, unhealthy, unknown or stale.")
				return
			}
		case "limit":
			n, err := strconv.Atoi(val)
			if err != nil || n < 1 || n > MaxPageSize {
				h.problem(q, http.StatusBadRequest, "Bad page size", fmt.Sprintf("limit is a number of agents from 1 to %d.", MaxPageSize))
				return
			}
			p.Limit = n
		case "after":
			c, err := decodeCursor(val)
			if err != nil {
				h.problem(q, http.StatusBadRequest, "Bad cursor", err.Error())
				return
			}
			p.After = c
		default:
			h.problem(q, http.StatusBadRequest, "Bad query", fmt.Sprintf("Unknown query parameter %q: use q, group, health, limit and after.", k))
			return
		}
	}
	t, err := h.agentTable(q, p)
	if err != nil {
		h.storeFailed(q, "reading the agents", err)
		return
	}
	d := agentListData{T: t, Health: healthOrder, First: p.After == (fleet.Cursor{})}
	if s := h.o.Backend.Snapshot(); s != nil {
		for _, g := range s.Groups() {
			d.Groups = append(d.Groups, g.Name)
		}
	}
	pg := h.newPage(q, "Agents", "agents", d)
	pg.Search = p.Search
	h.render(q.w, q.r, http.StatusOK, "agents", pg)
}

// encodeCursor is the cursor as GET /v1/fleet's "after" spells it:
// base64url of "<group>\n<agent id>".
func encodeCursor(c fleet.Cursor) string {
	return base64.RawURLEncoding.EncodeToString([]byte(c.Group + "\n" + c.AgentID))
}

func decodeCursor(s string) (fleet.Cursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil && len(b) <= 2*report.MaxIDLength {
		if g, id, ok := strings.Cut(string(b), "\n"); ok && id != "" {
			return fleet.Cursor{Group: g, AgentID: id}, nil
		}
	}
	return fleet.Cursor{}, errors.New("after is not a cursor: follow the page's own \"next\" link")
}

type agentData struct {
	A       report.Agent
	Health  string
	History []report.Agent
	// Answer is what the server answers this agent for its channel now.
	Answer       string
	Held         bool
	HeldReason   string
	RolloutState string
	HasRollout   bool
	Behind       bool // runs something other than the answer
}

// HistoryShown bounds the agent page's history.
const HistoryShown = 20

func (h *Handler) agent(q *request, id string) {
	if err := report.CheckAgentID(id); err != nil {
		h.problem(q, http.StatusBadRequest, "Bad agent id", err.Error())
		return
	}
	ctx := q.r.Context()
	a, ok, err := h.o.Store.Agent(ctx, id, q.now)
	if err != nil {
		h.storeFailed(q, "reading the agent", err)
		return
	}
	if !ok {
		h.problem(q, http.StatusNotFound, "No such agent", fmt.Sprintf("No report from agent %q: it has not reported to any replica sharing this store.", id))
		return
	}
	d := agentData{A: a, Health: a.EffectiveHealth()}
	if d.History, err = h.o.Store.History(ctx, id, HistoryShown); err != nil {
		h.storeFailed(q, "reading the agent's history", err)
		return
	}
	if s := h.o.Backend.Snapshot(); s != nil {
		if c := s.Channel(a.Channel); c != nil {
			d.Answer = cmp.Or(c.Version, spec.NoVersion)
			if h.o.Answers != nil && s.State.RolloutStages(a.Channel) != nil {
				if an := h.o.Answers().Channel(a.Channel); an != nil {
					d.HasRollout, d.RolloutState = true, an.State
					d.Answer, d.Held, d.HeldReason = an.VersionFor(a.Group, a.AgentID)
					d.Answer = cmp.Or(d.Answer, spec.NoVersion)
				}
			}
			d.Behind = d.Answer != spec.NoVersion && a.CurrentVersion != d.Answer
		}
	}
	h.render(q.w, q.r, http.StatusOK, "agent", h.newPage(q, "Agent "+id, "agents", d))
}
