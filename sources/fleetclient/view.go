package fleetclient

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/Masterminds/semver/v3"

	"upkeep.dev/upkeep/reconcile/fleet"
	"upkeep.dev/upkeep/reconcile/report"
	"upkeep.dev/upkeep/reconcile/rollout"
	"upkeep.dev/upkeep/spec"
)

// FleetView is `upkeep fleet`: every agent judged against the version
// the server answers it (its channel's, or its stage's under a rollout).
type FleetView struct {
	Server     string    `json:"server"`
	Revision   string    `json:"revision"`
	Time       time.Time `json:"time"`
	StaleAfter string    `json:"staleAfter"`
	Totals     Totals    `json:"totals"`
	// Channels are the served channels and any an agent reports, by name.
	Channels []ChannelRow `json:"channels"`
	// Groups are the groups agents report, by name ("_none" for none).
	Groups []GroupRow `json:"groups"`
	// Behind, Unhealthy and Stale list the agents of each kind, by group
	// then id; an agent may be in more than one.
	Behind    []AgentRow `json:"behind"`
	Unhealthy []AgentRow `json:"unhealthy"`
	Stale     []AgentRow `json:"stale"`
}

// Totals count agents. An agent is behind when it runs a version below
// its target (or does not know its version) and ahead when above it; on
// target otherwise. Agents whose channel the server does not serve, or
// serves no version, have no target and are in none of the three.
type Totals struct {
	Agents    int `json:"agents"`
	OnTarget  int `json:"onTarget"`
	Behind    int `json:"behind"`
	Ahead     int `json:"ahead"`
	NoTarget  int `json:"noTarget"`
	Healthy   int `json:"healthy"`
	Unhealthy int `json:"unhealthy"`
	Unknown   int `json:"unknown"` // health unknown
	Stale     int `json:"stale"`
}

func (t *Totals) add(a AgentRow) {
	t.Agents++
	switch a.Position {
	case OnTarget:
		t.OnTarget++
	case Behind:
		t.Behind++
	case Ahead:
		t.Ahead++
	default:
		t.NoTarget++
	}
	switch a.Health {
	case report.HealthHealthy:
		t.Healthy++
	case report.HealthUnhealthy:
		t.Unhealthy++
	case report.HealthStale:
		t.Stale++
	default:
		t.Unknown++
	}
}

// RolloutBrief is a channel's rollout in one line.
type RolloutBrief struct {
	Version     string `json:"version"`
	FromVersion string `json:"fromVersion"`
	State       string `json:"state"`
	Stage       int    `json:"stage"` // index, as the server counts
	Stages      int    `json:"stages"`
	Step        string `json:"step"`
	Rule        string `json:"rule"`
	Reason      string `json:"reason"`
}

// ChannelRow is one channel and its agents.
type ChannelRow struct {
	Name     string        `json:"name"`
	Served   string        `json:"served"` // the channel's version, "none", or "" when not served
	Critical bool          `json:"critical"`
	Rollout  *RolloutBrief `json:"rollout,omitempty"`
	Totals   Totals        `json:"totals"`
}

// GroupRow is one group and its agents by version.
type GroupRow struct {
	Name      string         `json:"name"`
	Channel   string         `json:"channel"` // the served group's channel; "" for none
	Totals    Totals         `json:"totals"`
	ByVersion map[string]int `json:"byVersion"`
}

// Positions of an agent against its target.
const (
	OnTarget = "onTarget"
	Behind   = "behind"
	Ahead    = "ahead"
	NoTarget = "noTarget"
)

// AgentRow is one agent as `upkeep fleet` shows it.
type AgentRow struct {
	ID      string `json:"id"`
	Group   string `json:"group"`
	Channel string `json:"channel"`
	Host    string `json:"host"` // hostname or workload
	Current string `json:"current"`
	// Target is the version the server answers this agent now; "" when
	// it has none. Held names why a rollout holds it back (rollout.Held*).
	Target   string    `json:"target"`
	Held     string    `json:"held,omitempty"`
	Position string    `json:"position"`
	Health   string    `json:"health"` // effective: stale when silent
	Action   string    `json:"action"`
	Rule     string    `json:"rule"`
	Reason   string    `json:"reason"`
	LastErr  string    `json:"lastError,omitempty"`
	Received time.Time `json:"receivedAt"`
}

// Snapshot is what the server answered, for Build.
type Snapshot struct {
	Server   string
	Revision string
	Channels []Channel
	Groups   []Group
	Fleet    report.Fleet
	// Rollouts are the channels' rollouts, with the stages of those not Done.
	Rollouts []RolloutDetail
}

// Fetch reads everything `upkeep fleet` shows: the channels, groups,
// rollouts (with the stages of those still running) and every agent.
func (c *Client) Fetch(ctx context.Context) (Snapshot, error) {
	s := Snapshot{Server: c.String()}
	var err error
	if s.Revision, s.Channels, err = c.Channels(ctx); err != nil {
		return s, err
	}
	if s.Groups, err = c.Groups(ctx); err != nil {
		return s, err
	}
	ros, err := c.Rollouts(ctx)
	if err != nil {
		return s, err
	}
	for _, ro := range ros {
		d := RolloutDetail{Rollout: ro}
		if ro.State != fleet.StateDone {
			if d, err = c.Rollout(ctx, ro.Channel, 1); err != nil {
				return s, err
			}
		}
		s.Rollouts = append(s.Rollouts, d)
	}
	s.Fleet, err = c.Fleet(ctx, "")
	return s, err
}

// Build judges every agent of s against the version the server answers it:
// under a rollout not Done, the answer of its stage (rollout.Answer, the
// server's own table, built from the stages the server listed); else the
// channel's served version.
func Build(s Snapshot) FleetView {
	v := FleetView{
		Server: s.Server, Revision: s.Revision, Time: s.Fleet.Time, StaleAfter: s.Fleet.StaleAfter,
		Channels: []ChannelRow{}, Groups: []GroupRow{}, Behind: []AgentRow{}, Unhealthy: []AgentRow{}, Stale: []AgentRow{},
	}
	served := map[string]Channel{}
	for _, c := range s.Channels {
		served[c.Name] = c
	}
	groupChannel := map[string]string{}
	for _, g := range s.Groups {
		groupChannel[g.Name] = g.Channel
	}
	onVersion := map[string][]string{}
	for _, a := range s.Fleet.Agents {
		onVersion[a.Channel+"\x00"+a.CurrentVersion] = append(onVersion[a.Channel+"\x00"+a.CurrentVersion], a.AgentID)
	}
	answers := map[string]*rollout.Answer{}
	briefs := map[string]*RolloutBrief{}
	for _, d := range s.Rollouts {
		briefs[d.Channel] = &RolloutBrief{Version: d.Version, FromVersion: d.FromVersion, State: d.State, Stage: d.Stage,
			Stages: len(d.Stages), Step: d.Step, Rule: d.Rule, Reason: d.Reason}
		if d.State == fleet.StateDone {
			continue
		}
		stages := make([]spec.ResolvedStage, len(d.Stages))
		for i, st := range d.Stages {
			stages[i] = spec.ResolvedStage{Stage: spec.Stage{Groups: st.Groups}, Implicit: st.Implicit}
		}
		answers[d.Channel] = rollout.NewAnswer(d.Rollout, stages, onVersion[d.Channel+"\x00"+d.Version])
	}

	chRows := map[string]*ChannelRow{}
	channelRow := func(name string) *ChannelRow {
		if r := chRows[name]; r != nil {
			return r
		}
		r := &ChannelRow{Name: name, Rollout: briefs[name]}
		if c, ok := served[name]; ok {
			r.Served, r.Critical = c.Version, c.Critical
		}
		chRows[name] = r
		return r
	}
	for _, c := range s.Channels {
		channelRow(c.Name)
	}
	gRows := map[string]*GroupRow{}
	pos := positions{}
	for _, a := range s.Fleet.Agents {
		row := agentRow(a, served, answers, pos)
		channelRow(row.Channel).Totals.add(row)
		gname := cmp.Or(a.Group, report.NoGroup)
		g := gRows[gname]
		if g == nil {
			g = &GroupRow{Name: gname, Channel: groupChannel[a.Group], ByVersion: map[string]int{}}
			gRows[gname] = g
		}
		g.Totals.add(row)
		g.ByVersion[cmp.Or(row.Current, report.UnknownVersion)]++
		v.Totals.add(row)
		if row.Position == Behind {
			v.Behind = append(v.Behind, row)
		}
		switch row.Health {
		case report.HealthUnhealthy:
			v.Unhealthy = append(v.Unhealthy, row)
		case report.HealthStale:
			v.Stale = append(v.Stale, row)
		}
	}
	for _, r := range chRows {
		v.Channels = append(v.Channels, *r)
	}
	slices.SortFunc(v.Channels, func(a, b ChannelRow) int { return cmp.Compare(a.Name, b.Name) })
	for _, g := range gRows {
		v.Groups = append(v.Groups, *g)
	}
	slices.SortFunc(v.Groups, func(a, b GroupRow) int { return cmp.Compare(a.Name, b.Name) })
	return v
}

func agentRow(a report.Agent, served map[string]Channel, answers map[string]*rollout.Answer, pos positions) AgentRow {
	row := AgentRow{
		ID: a.AgentID, Group: a.Group, Channel: a.Channel, Host: cmp.Or(a.Hostname, a.Workload),
		Current: a.CurrentVersion, Health: a.EffectiveHealth(), Action: a.Action, Rule: a.Rule, Reason: a.Reason,
		LastErr: a.LastError, Received: a.ReceivedAt,
	}
	if ans := answers[a.Channel]; ans != nil {
		row.Target, _, row.Held = ans.VersionFor(a.Group, a.AgentID)
	} else if c, ok := served[a.Channel]; ok {
		row.Target = c.Version
	}
	if row.Target == spec.NoVersion {
		row.Target = ""
	}
	row.Position = pos.of(row.Current, row.Target)
	return row
}

// positions remembers position's answers: a fleet has few versions, and
// parsing them is most of the work of judging 10,000 agents.
type positions map[[2]string]string

func (p positions) of(current, target string) string {
	k := [2]string{current, target}
	if s, ok := p[k]; ok {
		return s
	}
	s := position(current, target)
	p[k] = s
	return s
}

// position compares an agent's version with its target.
func position(current, target string) string {
	if target == "" {
		return NoTarget
	}
	if current == "" {
		return Behind
	}
	cv, err1 := semver.NewVersion(current)
	tv, err2 := semver.NewVersion(target)
	switch {
	case err1 != nil || err2 != nil:
		if current == target {
			return OnTarget
		}
		return Behind
	case cv.LessThan(tv):
		return Behind
	case cv.GreaterThan(tv):
		return Ahead
	}
	return OnTarget
}

// stageLabel is "stage 1 (of 0–2)": stages are numbered from 0, as the
// server, the engine's messages and the Upkeep-Rollout header number them.
func stageLabel(index, stages int) string {
	if stages <= 0 {
		return fmt.Sprintf("stage %d", index)
	}
	return fmt.Sprintf("stage %d (of 0–%d)", index, stages-1)
}
