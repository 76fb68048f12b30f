package schedule_test

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"upkeep.dev/upkeep/reconcile"
	"upkeep.dev/upkeep/reconcile/calendar"
	"upkeep.dev/upkeep/reconcile/schedule"
	"upkeep.dev/upkeep/spec"
)

// teleportKube reads a schedule as Teleport's kube-agent-updater does
// (integrations/kube-agent-updater/pkg/maintenance/window.go): JSON into
// time.Time fields; valid when no window's start is after its stop and
// some window's stop is after now; open when now is strictly inside one.
// An invalid schedule makes the trigger's Default (true) apply: update now.
func teleportKube(t *testing.T, body []byte, now time.Time) (valid, open bool) {
	t.Helper()
	var doc struct {
		Windows []struct {
			Start time.Time `json:"start"`
			Stop  time.Time `json:"stop"`
		} `json:"windows"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatalf("Teleport's kube updater cannot decode %q: %v", body, err)
	}
	for _, w := range doc.Windows {
		if w.Start.After(w.Stop) {
			return false, false
		}
		if w.Stop.After(now) {
			valid = true
		}
		if now.After(w.Start) && now.Before(w.Stop) {
			open = true
		}
	}
	return valid, open
}

// teleportUnit reads the systemd file as Teleport's unit updater does:
// lines starting with "# " are skipped (Teleport's encoder says so of its
// teleport-upgrade script), every other line is "<start> <stop>" in Unix
// seconds; a file without window lines is a reset schedule, which the
// script treats as no schedule (update now), as is one whose windows have
// all ended.
func teleportUnit(t *testing.T, body []byte, now time.Time) (valid, open bool) {
	t.Helper()
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" || strings.HasPrefix(line, "# ") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 2 {
			t.Fatalf("line %q is not two Unix times", line)
		}
		a, err1 := strconv.ParseInt(f[0], 10, 64)
		b, err2 := strconv.ParseInt(f[1], 10, 64)
		if err1 != nil || err2 != nil {
			t.Fatalf("line %q: %v %v", line, err1, err2)
		}
		if a > b {
			return false, false
		}
		if b > now.Unix() {
			valid = true
		}
		if a <= now.Unix() && now.Unix() < b {
			open = true
		}
	}
	return valid, open
}

func rfc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestPublish(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	tueThu := []spec.Window{{Days: []time.Weekday{time.Tuesday, time.Thursday}, Start: 2 * time.Hour, Duration: 4 * time.Hour}}
	freeze := func(from, to string) []spec.Freeze {
		return []spec.Freeze{{Name: "f", Start: rfc(from), End: rfc(to)}}
	}
	group := func(ws []spec.Window, fz []spec.Freeze) *spec.Group {
		return &spec.Group{Name: "g", Timezone: "Europe/Berlin", Location: berlin, Windows: ws, Freezes: fz}
	}
	now := rfc("2026-12-20T12:00:00Z") // a Sunday
	horizon := reconcile.ScheduleHorizon
	tests := []struct {
		scenario string
		g        *spec.Group
		rule     string
		// first is the first served window's start; "" for NothingOpen.
		first string
		n     int // real windows
	}{
		{"windows inside the horizon are served as they are", group(tueThu, nil),
			schedule.RuleWindowsInHorizon, "2026-12-22T01:00:00Z", 4},
		{"a freeze covering the whole horizon serves the first window after it", group(tueThu, freeze("2026-12-19T00:00:00+01:00", "2027-01-05T00:00:00+01:00")),
			schedule.RuleFirstWindowAfterFreeze, "2027-01-05T01:00:00Z", 1},
		{"a freeze of half a year still finds the window after it", group(tueThu, freeze("2026-12-01T00:00:00Z", "2027-06-01T00:00:00Z")),
			schedule.RuleFirstWindowAfterFreeze, "2027-06-01T00:00:00Z", 1},
		{"a freeze ending inside a window serves the window's rest", group(tueThu, freeze("2026-12-01T00:00:00Z", "2027-01-05T03:00:00Z")),
			schedule.RuleFirstWindowAfterFreeze, "2027-01-05T03:00:00Z", 1},
		{"a group without windows is never open", group(nil, nil), schedule.RuleNothingOpen, "", 0},
		{"a freeze beyond the lookahead is never open", group(tueThu, freeze("2026-01-01T00:00:00Z", "2030-01-01T00:00:00Z")),
			schedule.RuleNothingOpen, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			p := schedule.Publish(tt.g, now, horizon)
			if p.Rule != tt.rule {
				t.Fatalf("rule %s, want %s (served %v)", p.Rule, tt.rule, p.Served)
			}
			if len(p.Served) == 0 {
				t.Fatal("served an empty schedule")
			}
			if len(p.Windows) != tt.n {
				t.Errorf("%d real windows %v, want %d", len(p.Windows), p.Windows, tt.n)
			}
			if tt.first != "" && !p.Served[0].Start.Equal(rfc(tt.first)) {
				t.Errorf("first window %v, want start %s", p.Served[0], tt.first)
			}
			if tt.rule == schedule.RuleNothingOpen {
				want := now.Add(horizon)
				if ph := p.Served[0]; len(p.Served) != 1 || !ph.Start.Equal(want) || !ph.End.Equal(want) {
					t.Errorf("placeholder %v, want one zero-length window at %s", p.Served, want)
				}
			}
			// Whatever the rule, both of Teleport's readers see a valid
			// schedule that is not open now.
			if tt.rule != schedule.RuleWindowsInHorizon {
				body := reconcile.ScheduleJSON(p.Served)
				if valid, open := teleportKube(t, body, now); !valid || open {
					t.Errorf("kube updater reads %s as valid=%v open=%v, want valid, not open", body, valid, open)
				}
				unit := reconcile.ScheduleSystemd(p.Served, "# h")
				if valid, open := teleportUnit(t, unit, now); !valid || open {
					t.Errorf("unit updater reads %q as valid=%v open=%v, want valid, not open", unit, valid, open)
				}
				// upkeep's own reader agrees: a window ahead.
				if s := schedule.Evaluate(p.Served, now); !s.Usable() {
					t.Errorf("upkeep reads it as %v", s)
				}
			}
		})
	}
}

// The example fleet's year-end freeze covers the whole horizon in
// December: the served schedules must stay valid, closed, and name the
// first window after the freeze, through the real snapshot and both
// Teleport formats.
func TestExampleFleetInDecember(t *testing.T) {
	st, errs := spec.LoadDir("../../examples/fleet")
	if errs != nil {
		t.Fatalf("examples/fleet: %v", errs)
	}
	for _, tt := range []struct {
		scenario string
		now      string
		// next is eu-prod's first window, after the freeze: Tuesday
		// 5 January 2027 02:00 Berlin.
		next string
	}{
		{"the day the freeze starts", "2026-12-19T00:00:00+01:00", "2027-01-05T01:00:00Z"},
		{"Christmas", "2026-12-25T12:00:00Z", "2027-01-05T01:00:00Z"},
		{"the last hour of the freeze", "2027-01-04T23:30:00+01:00", "2027-01-05T01:00:00Z"},
	} {
		t.Run(tt.scenario, func(t *testing.T) {
			now := rfc(tt.now)
			snap := reconcile.BuildSnapshot(st, "rev", now)
			g := snap.Group("eu-prod")
			if g == nil {
				t.Fatal("examples/fleet has no group eu-prod")
			}
			if valid, open := teleportKube(t, g.ScheduleJSON, now); !valid || open {
				t.Errorf("kube updater reads %s as valid=%v open=%v, want valid and not open", g.ScheduleJSON, valid, open)
			}
			if valid, open := teleportUnit(t, g.ScheduleSystemd, now); !valid || open {
				t.Errorf("unit updater reads %q as valid=%v open=%v, want valid and not open", g.ScheduleSystemd, valid, open)
			}
			ws, err := schedule.Parse(g.ScheduleJSON)
			if err != nil || len(ws) == 0 || !ws[0].Start.Equal(rfc(tt.next)) {
				t.Errorf("served %v (%v), want the first window at %s", ws, err, tt.next)
			}
			want := []byte(strconv.FormatInt(rfc(tt.next).Unix(), 10) + " ")
			if !bytes.Contains(g.ScheduleSystemd, want) {
				t.Errorf("systemd file %q lacks the window after the freeze", g.ScheduleSystemd)
			}
			// The JSON API's next window is the real one, after the freeze.
			if next, ok := calendar.Next(g.Windows, now); !ok || !next.Start.Equal(rfc(tt.next)) {
				t.Errorf("group view's next window %v %v, want %s", next, ok, tt.next)
			}
		})
	}
	// Every example group keeps a valid schedule all December long.
	for day := rfc("2026-12-01T00:00:00Z"); day.Before(rfc("2027-01-10T00:00:00Z")); day = day.Add(6 * time.Hour) {
		snap := reconcile.BuildSnapshot(st, "rev", day)
		for _, g := range snap.Groups() {
			if valid, _ := teleportKube(t, g.ScheduleJSON, day); !valid {
				t.Errorf("%s at %s: kube updater reads %s as no schedule", g.Name, day, g.ScheduleJSON)
			}
			if valid, _ := teleportUnit(t, g.ScheduleSystemd, day); !valid {
				t.Errorf("%s at %s: unit updater reads %q as no schedule", g.Name, day, g.ScheduleSystemd)
			}
		}
	}
}

func TestPublishReasonAndNextUsable(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	tueThu := []spec.Window{{Days: []time.Weekday{time.Tuesday, time.Thursday}, Start: 2 * time.Hour, Duration: 4 * time.Hour}}
	now := rfc("2026-12-20T12:00:00Z") // a Sunday
	tests := []struct {
		scenario string
		windows  []spec.Window
		freezes  []spec.Freeze
		need     time.Duration
		reason   string
		usable   string // the next usable window's start; "" for none
	}{
		{"windows in the horizon say so, and the first that fits is usable", tueThu, nil, time.Hour,
			"the windows of the next 14 days", "2026-12-22T01:00:00Z"},
		{"a long freeze is named with its end, and the window after it is usable",
			tueThu, []spec.Freeze{
				{Name: "short", Start: rfc("2026-12-19T00:00:00Z"), End: rfc("2026-12-24T00:00:00Z")},
				{Name: "year-end", Start: rfc("2026-12-23T00:00:00Z"), End: rfc("2027-01-05T00:00:00+01:00")},
			}, time.Hour,
			`freeze "year-end" until 2027-01-04T23:00:00Z covers every window of the next 14 days; serving the first window after it`,
			"2027-01-05T01:00:00Z"},
		{"the first window after a freeze that is too short for the update is not usable",
			tueThu, []spec.Freeze{{Name: "q1", Start: rfc("2026-12-01T00:00:00Z"), End: rfc("2027-01-05T04:00:00Z")}}, 3 * time.Hour,
			`freeze "q1" until 2027-01-05T04:00:00Z covers every window of the next 14 days; serving the first window after it`, ""},
		{"a group without windows says so", nil, nil, time.Hour,
			"the group has no windows; serving a zero-length placeholder at 2027-01-03T12:00:00Z, which never opens", ""},
		{"a freeze past the lookahead is named", tueThu, []spec.Freeze{{Name: "forever", Start: rfc("2026-01-01T00:00:00Z"), End: rfc("2030-01-01T00:00:00Z")}}, time.Hour,
			`freeze "forever" until 2030-01-01T00:00:00Z leaves no window within 414 days; serving a zero-length placeholder at 2027-01-03T12:00:00Z, which never opens`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			g := &spec.Group{Name: "g", Timezone: "Europe/Berlin", Location: berlin, Windows: tt.windows, Freezes: tt.freezes}
			p := schedule.Publish(g, now, reconcile.ScheduleHorizon)
			if p.Reason != tt.reason {
				t.Errorf("reason %q,\nwant   %q", p.Reason, tt.reason)
			}
			iv, ok := p.NextUsable(now, tt.need)
			if ok != (tt.usable != "") || ok && !iv.Start.Equal(rfc(tt.usable)) {
				t.Errorf("next usable %v (%v), want %q", iv, ok, tt.usable)
			}
			// The JSON API computes nextUsable from the snapshot's windows.
			if want, wok := calendar.FirstFit(p.Windows, now, tt.need); ok != wok || iv != want {
				t.Errorf("NextUsable %v, FirstFit of the published windows %v", iv, want)
			}
		})
	}
}

func BenchmarkPublish(b *testing.B) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		b.Fatal(err)
	}
	ws := []spec.Window{{Days: []time.Weekday{time.Tuesday, time.Thursday}, Start: 2 * time.Hour, Duration: 4 * time.Hour}}
	now := rfc("2026-12-20T12:00:00Z")
	for _, bc := range []struct {
		name    string
		freezes []spec.Freeze
	}{
		{"WindowsInHorizon", nil},
		{"FirstWindowAfterFreeze", []spec.Freeze{{Name: "year-end", Start: rfc("2026-12-19T00:00:00Z"), End: rfc("2027-01-05T00:00:00Z")}}},
		{"NothingOpen", []spec.Freeze{{Name: "forever", Start: rfc("2026-01-01T00:00:00Z"), End: rfc("2030-01-01T00:00:00Z")}}},
	} {
		g := &spec.Group{Name: "g", Timezone: "Europe/Berlin", Location: berlin, Windows: ws, Freezes: bc.freezes}
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if p := schedule.Publish(g, now, reconcile.ScheduleHorizon); p.Rule != bc.name {
					b.Fatal(p.Rule)
				}
			}
		})
	}
}
