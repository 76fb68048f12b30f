package fleetclient

import (
	"bufio"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"upkeep.dev/upkeep/reconcile/fleet"
	"upkeep.dev/upkeep/reconcile/report"
)

// MaxListed bounds the agents a table lists per kind (behind, unhealthy,
// stale); -o json lists them all.
const MaxListed = 20

// JSON writes v as indented JSON.
func JSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// FleetTable writes the fleet view for a terminal.
func FleetTable(w io.Writer, v FleetView) error {
	bw := bufio.NewWriter(w)
	p := func(format string, a ...any) { fmt.Fprintf(bw, format+"\n", a...) }
	head := "upkeep fleet: " + v.Server + " at " + utc(v.Time)
	if v.Revision != "" {
		head += ", revision " + shortRev(v.Revision)
	}
	if v.StaleAfter != "" {
		head += ", stale after " + v.StaleAfter
	}
	p("%s", head)
	p("%s", totalsLine(v.Totals))
	for _, c := range v.Channels {
		if r := c.Rollout; r != nil && r.State == fleet.StateHalted {
			p("HALTED: %s's rollout of %s (%s/%s): nobody new gets it; after a fix, `upkeep rollout resume %s`", c.Name, r.Version, r.Rule, r.Reason, c.Name)
		}
	}

	if len(v.Channels) > 0 {
		p("")
		tw := table(bw)
		fmt.Fprintln(tw, "CHANNEL\tSERVED\tROLLOUT\tAGENTS\tBEHIND\tUNHEALTHY\tSTALE")
		for _, c := range v.Channels {
			served := cmp.Or(c.Served, "(not served)")
			if c.Critical {
				served += " (critical)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\n", c.Name, served, rolloutCell(c.Rollout),
				c.Totals.Agents, c.Totals.Behind, c.Totals.Unhealthy, c.Totals.Stale)
		}
		tw.Flush()
	}
	if len(v.Groups) > 0 {
		p("")
		tw := table(bw)
		fmt.Fprintln(tw, "GROUP\tCHANNEL\tAGENTS\tBEHIND\tUNHEALTHY\tSTALE\tVERSIONS")
		for _, g := range v.Groups {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%s\n", g.Name, cmp.Or(g.Channel, "-"),
				g.Totals.Agents, g.Totals.Behind, g.Totals.Unhealthy, g.Totals.Stale, VersionCounts(g.ByVersion))
		}
		tw.Flush()
	}
	agentList(bw, "Behind", v.Behind, v.Time)
	agentList(bw, "Unhealthy", v.Unhealthy, v.Time)
	agentList(bw, "Stale", v.Stale, v.Time)
	return bw.Flush()
}

func totalsLine(t Totals) string {
	parts := []string{fmt.Sprintf("%s: %d on target, %d behind", Count(t.Agents, "agent"), t.OnTarget, t.Behind)}
	if t.Ahead > 0 {
		parts = append(parts, fmt.Sprintf("%d ahead", t.Ahead))
	}
	if t.NoTarget > 0 {
		parts = append(parts, fmt.Sprintf("%d without a target", t.NoTarget))
	}
	parts = append(parts, fmt.Sprintf("%d unhealthy", t.Unhealthy), fmt.Sprintf("%d stale", t.Stale))
	if t.Unknown > 0 {
		parts = append(parts, fmt.Sprintf("%d of unknown health", t.Unknown))
	}
	return strings.Join(parts, ", ")
}

func rolloutCell(r *RolloutBrief) string {
	if r == nil {
		return "-"
	}
	s := arrow(r.FromVersion, r.Version) + " " + r.State
	if r.State != fleet.StateDone {
		s += ", " + stageLabel(r.Stage, r.Stages)
		if r.Step == fleet.StepCanary {
			s += ", canary step"
		}
	}
	return s
}

func agentList(bw *bufio.Writer, title string, rows []AgentRow, now time.Time) {
	if len(rows) == 0 {
		return
	}
	fmt.Fprintf(bw, "\n%s (%d):\n", title, len(rows))
	tw := table(bw)
	fmt.Fprintln(tw, "  AGENT\tGROUP\tCURRENT\tTARGET\tHEALTH\tLAST REPORT\tDECISION")
	for _, a := range rows[:min(len(rows), MaxListed)] {
		target := cmp.Or(a.Target, "-")
		if a.Held != "" {
			target += " (held: " + a.Held + ")"
		}
		decision := a.Rule
		if a.Reason != "" {
			decision += "/" + a.Reason
		}
		if a.LastErr != "" {
			decision += ": " + oneLine(a.LastErr, 80)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.ID, cmp.Or(a.Group, "-"), cmp.Or(a.Current, "unknown"), target,
			a.Health, ago(a.Received, now), cmp.Or(decision, "-"))
	}
	tw.Flush()
	if len(rows) > MaxListed {
		fmt.Fprintf(bw, "  … and %d more (-o json lists them all)\n", len(rows)-MaxListed)
	}
}

// RolloutTable writes one rollout for a terminal: its state, the last
// transition's rule and reason, its stages with their progress, and its
// latest transitions. now places the bake's end.
func RolloutTable(w io.Writer, d RolloutDetail, now time.Time) error {
	bw := bufio.NewWriter(w)
	p := func(format string, a ...any) { fmt.Fprintf(bw, format+"\n", a...) }
	p("Rollout of %s: %s%s", d.Channel, arrow(d.FromVersion, d.Version), criticalNote(d.Critical))
	p("  revision %s, started %s", shortRev(d.Revision), utc(d.StartedAt))
	state := d.State + " since " + utc(d.Since)
	if d.State != fleet.StateDone && d.State != fleet.StateSuperseded {
		state += ", " + stageLabel(d.Stage, len(d.Stages))
		if d.Step == fleet.StepCanary {
			state += ", canary step"
		} else if d.Step == fleet.StepAll {
			state += ", all agents"
		}
	}
	p("  state: %s", state)
	if !d.BakeUntil.IsZero() {
		p("  bake ends %s (%s)", utc(d.BakeUntil), until(d.BakeUntil, now))
	}
	if !d.HaltedAt.IsZero() {
		p("  halted at %s", utc(d.HaltedAt))
	}
	if len(d.Canaries) > 0 {
		p("  canaries: %s", strings.Join(d.Canaries, ", "))
	}
	last := d.Rule
	if d.Reason != "" {
		last += "/" + d.Reason
	}
	if d.Message != "" {
		last += ": " + oneLine(d.Message, 200)
	}
	if n := len(d.Transitions); n > 0 {
		last += " (by " + d.Transitions[n-1].Actor + ")"
	}
	p("  last transition: %s", last)

	if len(d.Stages) > 0 {
		p("")
		tw := table(bw)
		fmt.Fprintf(tw, "STAGE\tGROUPS\tSTATUS\tCANARIES\tBAKE\tAGENTS\tLIVE\tON %s\tHEALTHY\tFAILED\tPROGRESS\n", d.Version)
		for _, st := range d.Stages {
			groups := strings.Join(st.Groups, ", ")
			if st.Implicit {
				groups = cmp.Or(groups, "agents of no stage") + " (implicit)"
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\n", st.Index, groups, st.Status, st.Canaries,
				shortDuration(st.BakeTime), st.Agents, st.Live, st.OnVersion, st.Healthy, st.Failed, bar(st.Healthy, st.Agents))
		}
		tw.Flush()
	}
	if len(d.Transitions) > 0 {
		p("")
		p("Transitions (oldest first):")
		tw := table(bw)
		for _, t := range d.Transitions {
			fmt.Fprintf(tw, "  %s\t%s → %s\t%s\t%s/%s\t%s\t%s\n", utc(t.At), cmp.Or(t.From, "(new)"), t.To,
				stageLabel(t.Stage, len(d.Stages)), t.Rule, t.Reason, t.Actor, oneLine(t.Message, 120))
		}
		tw.Flush()
	}
	return bw.Flush()
}

// RolloutList writes every channel's rollout, one per line.
func RolloutList(w io.Writer, rs []fleet.Rollout) error {
	bw := bufio.NewWriter(w)
	if len(rs) == 0 {
		fmt.Fprintln(bw, "no rollouts: no served channel declares spec.rollout, or the engine has not seen one yet")
		return bw.Flush()
	}
	tw := table(bw)
	fmt.Fprintln(tw, "CHANNEL\tVERSION\tSTATE\tSTAGE\tSTEP\tSINCE\tLAST RULE")
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s/%s\n", r.Channel, arrow(r.FromVersion, r.Version), r.State, r.Stage,
			cmp.Or(r.Step, "-"), utc(r.Since), r.Rule, r.Reason)
	}
	tw.Flush()
	return bw.Flush()
}

// StepText writes the transition an operator's halt or resume recorded.
func StepText(w io.Writer, s Step) error {
	t := s.Transition
	_, err := fmt.Fprintf(w, "%s %s: %s → %s (%s/%s) by %s at %s\n  %s\n", s.Rollout.Channel, s.Rollout.Version,
		t.From, t.To, t.Rule, t.Reason, t.Actor, utc(t.At), oneLine(t.Message, 400))
	return err
}

// VersionCounts is "17.3.0 ×2, 17.4.0 ×1", by version (semver order,
// others after).
func VersionCounts(m map[string]int) string {
	if len(m) == 0 {
		return "-"
	}
	keys := slices.Collect(maps.Keys(m))
	slices.SortFunc(keys, report.CompareVersions)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s ×%d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

// Count is "1 agent", "1,240 agents".
func Count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return Thousands(n) + " " + noun + "s"
}

// Thousands writes n with comma separators: 1,240.
func Thousands(n int) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func table(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0) }

func utc(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// shortRev is a revision's first 12 digits, after its "sha256:" (a
// folder's content hash) if any.
func shortRev(r string) string {
	prefix, digits, ok := strings.Cut(r, ":")
	if !ok {
		prefix, digits = "", r
	} else {
		prefix += ":"
	}
	if len(digits) > 12 {
		digits = digits[:12]
	}
	return cmp.Or(prefix+digits, "-")
}

func arrow(from, to string) string {
	if from == "" || from == to {
		return to
	}
	return from + " → " + to
}

func criticalNote(c bool) string {
	if c {
		return " (critical: bake times skipped)"
	}
	return ""
}

// until is "in 1h30m", or "passed 5m ago".
func until(t, now time.Time) string {
	d := t.Sub(now).Round(time.Second)
	if d >= 0 {
		return "in " + shortDuration(d.String())
	}
	return "passed " + shortDuration((-d).String()) + " ago"
}

// ago is how long before now t was: "2m30s ago".
func ago(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t).Round(time.Second)
	if d <= 0 {
		return "just now"
	}
	return shortDuration(d.String()) + " ago"
}

// shortDuration drops the zero units of a Go duration string: "2h0m0s" → "2h".
func shortDuration(s string) string {
	if s == "0s" || s == "" {
		return "0"
	}
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// bar is a ten-cell progress bar with the percentage: "[######----] 60%".
func bar(n, of int) string {
	if of == 0 {
		return "[----------] -"
	}
	cells := n * 10 / of
	return "[" + strings.Repeat("#", cells) + strings.Repeat("-", 10-cells) + "] " + fmt.Sprintf("%d%%", n*100/of)
}

func oneLine(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > max {
		cut := max
		for cut > 0 && s[cut]&0xC0 == 0x80 {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}
