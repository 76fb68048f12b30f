package diff

import (
	"cmp"
	"errors"
	"slices"
	"time"

	"upkeep.dev/upkeep/reconcile"
	"upkeep.dev/upkeep/reconcile/calendar"
	"upkeep.dev/upkeep/reconcile/schedule"
	"upkeep.dev/upkeep/spec"
)

// UpdaterPreview is what the updaters of one group would do right now if
// head were merged, assuming healthy agents that run what base offers them.
type UpdaterPreview struct {
	Group    string `json:"group"`
	Channel  string `json:"channel"`
	Timezone string `json:"timezone"`
	Order    int    `json:"order"` // rollout order among groups (lower first)
	// Current is the version base offers the group's agents ("" when base
	// offers none or did not have the group); Target what head offers.
	Current string `json:"current"`
	Target  string `json:"target"`
	// Action, Rule, Reason, Message and RecheckAt are reconcile.Decide's.
	Action    reconcile.Action `json:"action"`
	Rule      string           `json:"rule"`
	Reason    string           `json:"reason"`
	Message   string           `json:"message"`
	RecheckAt time.Time        `json:"recheckAt,omitzero"`
}

// previewUpdaters runs the decision chain for every head group on a channel
// the report lists (added, modified, or made invalid) and every group that
// is new or moved to another channel: the agents whose target merging
// changes.
func previewUpdaters(base, head *spec.State, r *Report, now time.Time) []UpdaterPreview {
	affected := map[string]bool{}
	for _, c := range r.Channels {
		if c.Change != Removed {
			affected[c.Name] = true
		}
	}
	moved := map[string]bool{}
	for _, g := range r.Groups {
		if g.Change == Added || slices.Contains(g.Fields, "channel") {
			moved[g.Name] = true
		}
	}
	out := []UpdaterPreview{}
	for _, g := range head.Groups {
		if !affected[g.Channel] && !moved[g.Name] {
			continue
		}
		if p, ok := previewGroup(base, head, g, now); ok {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b UpdaterPreview) int {
		return cmp.Or(cmp.Compare(a.Channel, b.Channel), cmp.Compare(a.Order, b.Order), cmp.Compare(a.Group, b.Group))
	})
	return out
}

func previewGroup(base, head *spec.State, g *spec.Group, now time.Time) (UpdaterPreview, bool) {
	c := head.Channel(g.Channel)
	if c == nil {
		return UpdaterPreview{}, false // head is invalid and says so
	}
	p := UpdaterPreview{Group: g.Name, Channel: g.Channel, Timezone: g.Timezone, Order: g.Order}
	if bg := base.Group(g.Name); bg != nil {
		if bc := base.Channel(bg.Channel); bc != nil {
			p.Current = base.ResolvedVersion(bc)
		}
	}
	in := reconcile.DecisionInput{
		Now:            now,
		Current:        p.Current,
		Health:         reconcile.Healthy,
		Critical:       reconcile.CriticalNo,
		UpdateDuration: g.UpdateDuration,
		// A settled updater: one that has already seen an unusable schedule
		// as often as the chain wants before it updates at once, so the
		// preview shows where the group ends up, not a first glance.
		UnusableChecks: reconcile.DefaultUnusableThreshold - 1,
	}
	if c.Critical {
		in.Critical = reconcile.CriticalYes
	}
	switch v := head.ResolvedVersion(c); {
	case v != "":
		p.Target, in.Target.Version = v, v
	case c.Version == spec.NoVersion:
		p.Target, in.Target.Version = spec.NoVersion, spec.NoVersion
	default:
		in.Target.Err = errors.New("the channel's control plane is missing in head")
	}
	if stages := head.RolloutStages(c.Name); stages != nil && p.Current != "" && p.Target != "" && p.Target != p.Current {
		if st := spec.StageOf(stages, g.Name); st > 0 {
			// The merge starts a rollout in its first stage: the server
			// answers this group base's version until its stage comes.
			in.Target.Version = p.Current
			in.Target.Held = &reconcile.RolloutHold{Version: p.Target, State: "Pending", Stage: 0, Reason: "StageNotReached"}
		}
	}
	if cp := head.ControlPlane(c.ControlPlane); cp != nil {
		in.Bounds = cp // only when present: a nil *ControlPlane in the interface would not be nil
	}
	if g.Location != nil {
		// What the updater saves from the server: never empty (a freeze
		// over the horizon serves the window after it, a group that never
		// opens a placeholder), so the preview meets the rules it meets.
		in.Schedule = reconcile.Schedule{State: reconcile.ScheduleLoaded, Windows: schedule.Publish(g, now, WindowHorizon).Served}
	}
	if fz, ok := calendar.Frozen(g, now); ok {
		in.Freeze = &fz
	}
	d := reconcile.Decide(in)
	p.Action, p.Rule, p.Reason, p.Message, p.RecheckAt = d.Action, d.Rule, d.Reason, d.Message, d.RecheckAt
	return p, true
}
