package spec

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/Masterminds/semver/v3"

	"upkeep.dev/upkeep/schema"
)

// The decoders below run only on documents that passed the schema, so
// fields have the right types and shapes; they check what CUE cannot
// (semver, time zones, duration ranges, freeze order) and build the Go value.
// A document with any error here is left out of the State: d.obj stays nil.

// MaxWindowDuration is the longest maintenance window: a week, after which
// a weekly window would overlap itself.
const MaxWindowDuration = 7 * 24 * time.Hour

func (ck *checker) controlPlane(d *document) {
	name, _ := d.str("metadata.name")
	cp := &ControlPlane{Name: name, Pos: d.at("metadata.name")}
	ok := ck.checkNameLength(d, "metadata.name")
	raw, _ := d.str("spec.version")
	if v, err := parseVersion(raw); err != nil {
		ok = ck.fail(d, "spec.version", err.Error())
	} else {
		cp.Version = v.Original()
	}
	if agents, present := d.str("spec.agents"); present {
		if _, err := semver.NewConstraint(agents); err != nil {
			ok = ck.fail(d, "spec.agents", fmt.Sprintf(
				"invalid agents constraint: %v; want a semver constraint such as \">= 16.0.0, < 17.3.0\"", err))
		}
		cp.Agents = agents
	}
	if ok {
		d.obj = cp
	}
}

func (ck *checker) channel(d *document) {
	name, _ := d.str("metadata.name")
	ch := &Channel{Name: name, Pos: d.at("metadata.name")}
	ch.ControlPlane, _ = d.str("spec.controlPlane")
	ch.Critical, _ = d.boolean("spec.critical")
	ch.Default, _ = d.boolean("spec.default")
	ok := ck.checkNameLength(d, "metadata.name")
	ok = ck.checkNameLength(d, "spec.controlPlane") && ok
	if strings.HasPrefix(name, GroupChannelPrefix) {
		ok = ck.fail(d, "metadata.name", fmt.Sprintf(
			"channel name %q starts with %q, which is reserved for the group-scoped channel Teleport's updaters ask (%s<group>); rename the channel",
			name, GroupChannelPrefix, GroupChannelPrefix))
	}
	raw, hasVersion := d.str("spec.version")
	follow, hasFollow := d.str("spec.follow")
	switch {
	case hasVersion && hasFollow:
		ok = ck.fail(d, "spec.follow", "set either version or follow, not both; remove one of them")
	case !hasVersion && !hasFollow:
		ok = ck.fail(d, "spec", `set version (such as "17.2.3", or "none") or follow: controlPlane`)
	case hasFollow:
		ch.Follow = follow
	case raw == NoVersion:
		ch.Version = NoVersion
	default:
		if v, err := parseVersion(raw); err != nil {
			ok = ck.fail(d, "spec.version", err.Error()+`, or "none" to serve no version`)
		} else {
			ch.Version = v.Original()
		}
	}
	if d.has("spec.rollout") {
		ro, good := ck.rollout(d)
		ok = ok && good
		ch.Rollout = ro
	}
	if ok {
		d.obj = ch
	}
}

// Stage defaults, applied when a stage leaves the field out.
var (
	// DefaultSuccessThreshold: every live agent of a step runs the version healthy.
	DefaultSuccessThreshold = Quantity{Percent: 100, IsPercent: true}
	// DefaultFailureThreshold: the first rolled-back or unhealthy agent halts the rollout.
	DefaultFailureThreshold = Quantity{Count: 1}
)

// rollout decodes spec.rollout. References to groups are checked between
// documents (checkRolloutGroups); a group named twice is caught here, as it
// needs this document alone.
func (ck *checker) rollout(d *document) (*Rollout, bool) {
	ro := &Rollout{Pos: d.at("spec.rollout"), Stages: []Stage{}}
	ok := true
	if raw, present := d.str("spec.rollout.resume"); present {
		t, err := time.Parse(time.RFC3339, raw)
		if err != nil {
			ok = ck.fail(d, "spec.rollout.resume", fmt.Sprintf(
				"got %q; want an RFC 3339 time with an offset such as 2026-12-03T10:00:00Z", raw))
		}
		ro.Resume = t
	}
	n := d.length("spec.rollout.stages")
	if n == 0 {
		ok = ck.fail(d, "spec.rollout.stages",
			"rollout has no stages; list at least one stage of groups, or remove rollout to serve the version to every agent at once")
	}
	inStage := map[string]int{} // group → the stage that first names it
	for i := range n {
		at := schema.IndexPath("spec.rollout.stages", i)
		st := Stage{Pos: d.at(at), SuccessThreshold: DefaultSuccessThreshold, FailureThreshold: DefaultFailureThreshold}
		groups := at + ".groups"
		if d.length(groups) == 0 {
			ok = ck.fail(d, groups, "stage lists no groups; name at least one group, or remove the stage")
		}
		for j := range d.length(groups) {
			p := schema.IndexPath(groups, j)
			g, _ := d.str(p)
			ok = ck.checkNameLength(d, p) && ok
			if first, dup := inStage[g]; dup {
				where := fmt.Sprintf("already in stages[%d]", first)
				if first == i {
					where = "already in this stage"
				}
				ok = ck.fail(d, p, fmt.Sprintf("group %q is %s; a group belongs to one stage of a channel: remove one of them", g, where))
				continue
			}
			inStage[g] = i
			st.Groups = append(st.Groups, g)
		}
		if q, present, good := ck.quantity(d, at+".canaries"); present {
			ok = ok && good
			if good && q.IsPercent && q.Percent >= 100 {
				ok = ck.fail(d, at+".canaries", fmt.Sprintf(
					"canaries %q are the whole stage, so the canary step would be the all step; use a lower percent, or 0 for no canaries", q))
			}
			st.Canaries = q
		}
		if raw, present := d.str(at + ".bakeTime"); present {
			dur, err := parseDuration(raw)
			if err != nil {
				ok = ck.fail(d, at+".bakeTime", err.Error()+"; leave bakeTime out for no bake")
			}
			st.BakeTime = dur
		}
		if q, present, good := ck.quantity(d, at+".successThreshold"); present {
			ok = ok && good
			if good && q.IsZero() {
				ok = ck.fail(d, at+".successThreshold",
					`got 0, which would let a step pass with no agent updated; want at least 1, or a percent such as "95%" (default "100%")`)
			}
			st.SuccessThreshold = q
		}
		if q, present, good := ck.quantity(d, at+".failureThreshold"); present {
			ok = ok && good
			if good && q.IsZero() {
				ok = ck.fail(d, at+".failureThreshold",
					`got 0, which would halt every rollout before any agent fails; want at least 1, or a percent such as "5%" (default 1)`)
			}
			st.FailureThreshold = q
		}
		ro.Stages = append(ro.Stages, st)
	}
	return ro, ok
}

// quantity reads a count or a percent at path; the schema has already
// checked that it is a non-negative integer or a string "N%".
func (ck *checker) quantity(d *document, path string) (q Quantity, present, ok bool) {
	if !d.has(path) {
		return Quantity{}, false, true
	}
	if raw, isStr := d.str(path); isStr {
		q, err := parseQuantity(raw)
		if err != nil {
			return q, true, ck.fail(d, path, err.Error())
		}
		return q, true, true
	}
	n, _, err := d.integer(path)
	if err != nil {
		return Quantity{}, true, ck.fail(d, path, err.Error()+`; want a count such as 5 or a percent such as "20%"`)
	}
	if n < 0 { // the schema refuses it; kept so the decoder stands alone
		return Quantity{}, true, ck.fail(d, path, fmt.Sprintf("got %d; want a count of 0 or more", n))
	}
	return Quantity{Count: n}, true, true
}

// parseQuantity reads "N%" (0 < N <= 100, decimals allowed) or a count.
func parseQuantity(s string) (Quantity, error) {
	num, isPercent := strings.CutSuffix(s, "%")
	if !isPercent {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return Quantity{}, fmt.Errorf(`got %q; want a count such as 5 or a percent such as "20%%"`, s)
		}
		return Quantity{Count: n}, nil
	}
	p, err := strconv.ParseFloat(num, 64)
	switch {
	case err != nil:
		return Quantity{}, fmt.Errorf(`got %q; want a percent such as "20%%" or "12.5%%"`, s)
	case p == 0:
		return Quantity{}, fmt.Errorf(`got %q; a percent must be above 0%% (write 0 for none)`, s)
	case p > 100:
		return Quantity{}, fmt.Errorf(`got %q; a percent must be at most 100%%`, s)
	}
	return Quantity{Percent: p, IsPercent: true}, nil
}

func (ck *checker) group(d *document) {
	name, _ := d.str("metadata.name")
	g := &Group{Name: name, Pos: d.at("metadata.name"), UpdateDuration: DefaultUpdateDuration}
	g.Channel, _ = d.str("spec.channel")
	ok := ck.checkNameLength(d, "metadata.name")
	ok = ck.checkNameLength(d, "spec.channel") && ok
	g.Timezone, _ = d.str("spec.timezone")
	loc, err := ck.zones.load(g.Timezone)
	if err != nil {
		ok = ck.fail(d, "spec.timezone", err.Error())
		loc = time.UTC // keeps checking the freezes' dates
	}
	g.Location = loc
	if raw, present := d.str("spec.updateDuration"); present {
		dur, err := parseDuration(raw)
		if err != nil {
			ok = ck.fail(d, "spec.updateDuration", err.Error())
		}
		g.UpdateDuration = dur
	}
	if n, present, err := d.integer("spec.order"); present {
		if err != nil {
			ok = ck.fail(d, "spec.order", err.Error())
		}
		g.Order = n
	}

	if q, present, good := ck.quantity(d, "spec.maxConcurrent"); present {
		ok = ok && good
		g.MaxConcurrent = q
	}

	g.Windows = []Window{}
	for i := range d.length("spec.windows") {
		at := schema.IndexPath("spec.windows", i)
		w, good := ck.window(d, at)
		ok = ok && good
		g.Windows = append(g.Windows, w)
	}
	if longest := longestWindow(g.Windows); len(g.Windows) > 0 && g.UpdateDuration > longest && longest > 0 {
		ok = ck.fail(d, "spec.updateDuration", fmt.Sprintf(
			"updateDuration %s is longer than every window (the longest is %s), so no window could ever be used; shorten it or lengthen a window",
			g.UpdateDuration, longest))
	}

	g.Freezes = []Freeze{}
	names := map[string]int{}
	for i := range d.length("spec.freezes") {
		at := schema.IndexPath("spec.freezes", i)
		f, good := ck.freeze(d, at, loc)
		ok = ok && good
		if first, dup := names[f.Name]; dup {
			ok = ck.fail(d, at+".name", fmt.Sprintf("duplicate freeze name %q (first is freezes[%d]); give each freeze its own name", f.Name, first))
		} else {
			names[f.Name] = i
		}
		g.Freezes = append(g.Freezes, f)
	}
	if ok {
		d.obj = g
	}
}

var weekdays = map[string]time.Weekday{
	"Sun": time.Sunday, "Mon": time.Monday, "Tue": time.Tuesday, "Wed": time.Wednesday,
	"Thu": time.Thursday, "Fri": time.Friday, "Sat": time.Saturday,
}

func (ck *checker) window(d *document, at string) (Window, bool) {
	var w Window
	ok := true
	seen := map[time.Weekday]bool{}
	for j := range d.length(at + ".days") {
		p := schema.IndexPath(at+".days", j)
		s, _ := d.str(p)
		day, known := weekdays[s]
		if !known {
			ok = ck.fail(d, p, fmt.Sprintf("got %q; want one of Mon, Tue, Wed, Thu, Fri, Sat, Sun", s))
			continue
		}
		if !seen[day] { // a repeated day adds nothing
			seen[day] = true
			w.Days = append(w.Days, day)
		}
	}
	start, _ := d.str(at + ".start")
	if off, err := parseTimeOfDay(start); err != nil {
		ok = ck.fail(d, at+".start", err.Error())
	} else {
		w.Start = off
	}
	raw, _ := d.str(at + ".duration")
	dur, err := parseDuration(raw)
	if err != nil {
		ok = ck.fail(d, at+".duration", err.Error())
	}
	w.Duration = dur
	return w, ok
}

func longestWindow(ws []Window) time.Duration {
	var longest time.Duration
	for _, w := range ws {
		longest = max(longest, w.Duration)
	}
	return longest
}

func (ck *checker) freeze(d *document, at string, loc *time.Location) (Freeze, bool) {
	var f Freeze
	f.Name, _ = d.str(at + ".name")
	ok := ck.checkNameLength(d, at+".name")
	f.AllowCritical, _ = d.boolean(at + ".allowCritical")
	rawStart, _ := d.str(at + ".start")
	start, err := parseFreezeTime(rawStart, loc, false)
	if err != nil {
		ok = ck.fail(d, at+".start", err.Error())
	}
	rawEnd, _ := d.str(at + ".end")
	end, err := parseFreezeTime(rawEnd, loc, true)
	if err != nil {
		ok = ck.fail(d, at+".end", err.Error())
	}
	f.Start, f.End = start, end
	if ok && !end.After(start) {
		ok = ck.fail(d, at+".end", fmt.Sprintf("end %q does not come after start %q; fix the dates or swap them", rawEnd, rawStart))
	}
	return f, ok
}

// parseVersion reads a semantic version, with or without a leading "v";
// the returned version's Original() has no "v".
func parseVersion(s string) (*semver.Version, error) {
	v, err := semver.StrictNewVersion(strings.TrimPrefix(s, "v"))
	if err != nil {
		return nil, fmt.Errorf("got %q; want a semantic version MAJOR.MINOR.PATCH such as \"17.2.3\"", s)
	}
	return v, nil
}

var timeOfDay = regexp.MustCompile(`^([01][0-9]|2[0-3]):([0-5][0-9])$`)

// parseTimeOfDay reads "HH:MM" as an offset from midnight.
func parseTimeOfDay(s string) (time.Duration, error) {
	m := timeOfDay.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("got %q; want a time of day \"HH:MM\" from \"00:00\" to \"23:59\"", s)
	}
	h, _ := strconv.Atoi(m[1])
	mins, _ := strconv.Atoi(m[2])
	return time.Duration(h)*time.Hour + time.Duration(mins)*time.Minute, nil
}

// parseDuration reads a Go duration that must be above 0 and at most a week.
func parseDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("got %q; want a duration such as \"30m\", \"4h\" or \"1h30m\"", s)
	}
	if d <= 0 || d > MaxWindowDuration {
		return d, fmt.Errorf("got %q; want a duration above 0 and at most 168h (one week)", s)
	}
	return d, nil
}

var isDate = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`)

// parseFreezeTime reads a freeze bound: a date means midnight in the group's
// time zone, and an end date includes that whole day (so the bound is the
// next midnight); an RFC 3339 time is taken as is (an end is exclusive).
func parseFreezeTime(s string, loc *time.Location, end bool) (time.Time, error) {
	if isDate.MatchString(s) {
		t, err := time.ParseInLocation(time.DateOnly, s, loc)
		if err != nil {
			return time.Time{}, fmt.Errorf("got %q; not a calendar date (%v)", s, trimTimeErr(err))
		}
		if end {
			// time.Date normalises day+1 and stays at midnight across DST changes.
			t = time.Date(t.Year(), t.Month(), t.Day()+1, 0, 0, 0, 0, loc)
		}
		return t, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("got %q; want a date such as 2026-12-20 or an RFC 3339 time with an offset such as 2026-12-20T18:00:00+01:00", s)
	}
	return t, nil
}

func trimTimeErr(err error) string {
	if pe, ok := err.(*time.ParseError); ok && pe.Message != "" {
		return strings.TrimPrefix(pe.Message, ": ")
	}
	return err.Error()
}

// zones loads each IANA zone once per load: 1,000 groups share a handful.
// Files are checked in parallel, hence the lock.
type zones struct {
	mu  sync.Mutex
	loc map[string]*time.Location
}

func (z *zones) load(name string) (*time.Location, error) {
	z.mu.Lock()
	defer z.mu.Unlock()
	if loc, ok := z.loc[name]; ok {
		return loc, nil
	}
	if name == "Local" {
		return nil, fmt.Errorf(`got "Local", which depends on the server's settings; name the zone, such as "Europe/Berlin" or "UTC"`)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("unknown time zone %q; want an IANA name such as \"Europe/Berlin\", \"America/New_York\" or \"UTC\"", name)
	}
	if z.loc == nil {
		z.loc = map[string]*time.Location{}
	}
	z.loc[name] = loc
	return loc, nil
}
