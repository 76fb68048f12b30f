package spec

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/Masterminds/semver/v3"

	"upkeep.dev/upkeep/schema"
)

// loader collects the documents of one Load and the errors found on the way.
type loader struct {
	errs Errors
	// names holds, per kind, the first document that claimed each name,
	// including documents that failed the schema: a reference to such a
	// document is not also reported as dangling.
	names map[string]map[string]*document
	// checked holds the documents that passed the schema, in walk order:
	// references are checked on them even when a field rule failed.
	checked       []*document
	controlPlanes []*ControlPlane
	channels      []*Channel
	groups        []*Group
	// docs maps each kept object to its document, for the positions of
	// cross-document errors.
	docs map[any]*document
	// suggestions memoises suggest, per kind.
	suggestions map[string]string
}

func newLoader() *loader {
	return &loader{
		names: map[string]map[string]*document{
			KindControlPlane: {}, KindChannel: {}, KindGroup: {},
		},
		docs:        map[any]*document{},
		suggestions: map[string]string{},
	}
}

// fail records an error at path of d and returns false, for `ok = l.fail(...)`.
func (l *loader) fail(d *document, path, msg string) bool {
	l.errs = append(l.errs, Error{Pos: d.at(path), Path: path, Msg: msg})
	return false
}

// seen registers the name of a document; a second document of the same kind
// and name is an error, and is left out of the State.
func (l *loader) seen(kind, name string, d *document) {
	if first, dup := l.names[kind][name]; dup {
		d.duplicate = true
		l.fail(d, "metadata.name", fmt.Sprintf("duplicate %s name %q: first defined at %s; rename or remove one of them",
			kind, name, first.at("metadata.name")))
		return
	}
	l.names[kind][name] = d
}

// crossChecks are the rules between documents, in order. Each runs over the
// documents that passed their own checks.
var crossChecks = []struct {
	name  string
	check func(*loader, *State)
}{
	{"ChannelControlPlaneExists", (*loader).checkChannelRefs},
	{"GroupChannelExists", (*loader).checkGroupRefs},
	{"ChannelVersionAdmitted", (*loader).checkVersionBounds},
	{"RolloutGroupsFollowChannel", (*loader).checkRolloutGroups},
	{"OneDefaultChannel", (*loader).checkDefaultChannel},
}

func (l *loader) crossCheck() {
	st := l.state()
	for _, c := range crossChecks {
		c.check(l, st)
	}
}

func (l *loader) checkChannelRefs(*State) {
	l.checkRefs(KindChannel, "spec.controlPlane", KindControlPlane, "control plane")
}

func (l *loader) checkGroupRefs(*State) {
	l.checkRefs(KindGroup, "spec.channel", KindChannel, "channel")
}

// checkRefs checks that the field at path of every document of kind names
// a document of kind target.
func (l *loader) checkRefs(kind, path, target, noun string) {
	for _, d := range l.checked {
		if d.kind != kind {
			continue
		}
		ref, _ := d.str(path)
		if _, ok := l.names[target][ref]; !ok {
			l.fail(d, path, fmt.Sprintf("%s %q is not defined; %s", noun, ref, suggest(target, l.names[target], l.suggestions)))
		}
	}
}

// suggest tells how to fix a dangling reference, naming a few known names.
// A load can hold thousands of dangling references to one kind: the
// sorted names are the same for each, so each kind's suggestion is built once
// (memo, keyed by kind).
func suggest(kind string, known map[string]*document, memo map[string]string) string {
	if s, ok := memo[kind]; ok {
		return s
	}
	s := suggestion(kind, known)
	memo[kind] = s
	return s
}

func suggestion(kind string, known map[string]*document) string {
	if len(known) == 0 {
		return fmt.Sprintf("no %s is defined yet: add one", kind)
	}
	names := make([]string, 0, len(known))
	for n := range known {
		names = append(names, n)
	}
	slices.Sort(names)
	more := ""
	if len(names) > 5 {
		names, more = names[:5], fmt.Sprintf(" (and %d more)", len(names)-5)
	}
	return fmt.Sprintf("define a %s with that name or use a defined one: %s%s", kind, strings.Join(names, ", "), more)
}

// checkVersionBounds checks each channel's resolved version against its
// control plane. Channels whose control plane is missing or invalid are
// skipped: that problem is reported on its own.
func (l *loader) checkVersionBounds(st *State) {
	// Channels share a few versions, and Admits parses the control plane's
	// constraint each time: each pair is judged once.
	admitted := map[[2]string]error{}
	for _, ch := range l.channels {
		cp := st.ControlPlane(ch.ControlPlane)
		if cp == nil {
			continue
		}
		version, path := ch.Version, "spec.version"
		if ch.Follow == FollowControlPlane {
			version, path = cp.Version, "spec.follow"
		}
		if version == NoVersion || version == "" {
			continue
		}
		key := [2]string{cp.Name, version}
		err, known := admitted[key]
		if !known {
			err = cp.Admits(version)
			admitted[key] = err
		}
		if err != nil {
			l.fail(l.docs[ch], path, err.Error())
		}
	}
}

// checkDefaultChannel: at most one channel answers as Teleport's
// "default", so an install script never gets a version by accident. A
// channel named "default" is the default; marking another one too is
// ambiguous and refused.
func (l *loader) checkDefaultChannel(*State) {
	var marked []*Channel
	var named *Channel
	for _, ch := range l.channels {
		if ch.Default {
			marked = append(marked, ch)
		}
		if ch.Name == DefaultChannelName {
			named = ch
		}
	}
	for _, ch := range marked[min(1, len(marked)):] {
		l.fail(l.docs[ch], "spec.default", fmt.Sprintf(
			"channel %q is already marked default at %s; only one channel may answer as Teleport's %q channel: remove spec.default from one of them",
			marked[0].Name, l.docs[marked[0]].at("spec.default"), DefaultChannelName))
	}
	if named != nil && len(marked) > 0 && marked[0] != named {
		l.fail(l.docs[marked[0]], "spec.default", fmt.Sprintf(
			"the channel named %q (%s) already answers as Teleport's default channel; remove spec.default here, or rename that channel",
			DefaultChannelName, l.docs[named].at("metadata.name")))
	}
}

func (l *loader) state() *State {
	byName := func(a, b string) int { return cmp.Compare(a, b) }
	st := &State{
		ControlPlanes: slices.Clone(l.controlPlanes),
		Channels:      slices.Clone(l.channels),
		Groups:        slices.Clone(l.groups),
	}
	slices.SortFunc(st.ControlPlanes, func(a, b *ControlPlane) int { return byName(a.Name, b.Name) })
	slices.SortFunc(st.Channels, func(a, b *Channel) int { return byName(a.Name, b.Name) })
	slices.SortFunc(st.Groups, func(a, b *Group) int { return byName(a.Name, b.Name) })
	return st
}

func (l *loader) errors() Errors {
	if len(l.errs) == 0 {
		return nil
	}
	l.errs.Sort()
	return l.errs
}

// Reasons a control plane does not admit an agent version.
const (
	ReasonInvalidVersion       = "InvalidVersion"
	ReasonInvalidControlPlane  = "InvalidControlPlane"
	ReasonAboveControlPlane    = "AboveControlPlane"
	ReasonBelowSupportedMajor  = "BelowSupportedMajor"
	ReasonOutsideAgentsAllowed = "OutsideAgentsConstraint"
)

// AdmitError says why a control plane does not admit a version: a named
// reason for programs and a message for people.
type AdmitError struct {
	Reason string
	Msg    string
}

func (e *AdmitError) Error() string { return e.Msg }

// Admits reports whether agents may run version (with or without a leading
// "v") against this control plane: not above the control plane's version,
// not below the first release of the previous major version, and inside the
// agents constraint when there is one. The error is an *AdmitError.
func (cp *ControlPlane) Admits(version string) error {
	v, err := parseVersion(version)
	if err != nil {
		return &AdmitError{ReasonInvalidVersion, err.Error()}
	}
	cpv, err := parseVersion(cp.Version)
	if err != nil {
		return &AdmitError{ReasonInvalidControlPlane, fmt.Sprintf("control plane %q has no valid version: %v", cp.Name, err)}
	}
	if v.GreaterThan(cpv) {
		return &AdmitError{ReasonAboveControlPlane, fmt.Sprintf("%q is above control plane %q version %s", v.Original(), cp.Name, cpv.Original())}
	}
	floor := semver.New(max(cpv.Major(), 1)-1, 0, 0, "", "")
	if v.LessThan(floor) {
		return &AdmitError{ReasonBelowSupportedMajor, fmt.Sprintf(
			"%q is below %s: agents may be at most one major version behind control plane %q version %s",
			v.Original(), floor, cp.Name, cpv.Original())}
	}
	if cp.Agents != "" {
		c, err := semver.NewConstraint(cp.Agents)
		if err != nil {
			return &AdmitError{ReasonInvalidControlPlane, fmt.Sprintf("control plane %q has an invalid agents constraint %q: %v", cp.Name, cp.Agents, err)}
		}
		if !c.Check(v) {
			return &AdmitError{ReasonOutsideAgentsAllowed, fmt.Sprintf("%q is outside control plane %q agents constraint %q", v.Original(), cp.Name, cp.Agents)}
		}
	}
	return nil
}

// checkRolloutGroups checks that every group a channel's rollout names is
// defined and follows that channel: a stage cannot hold back agents that
// ask another channel. Groups whose document broke the schema are not
// judged (that problem is reported on its own).
func (l *loader) checkRolloutGroups(*State) {
	for _, d := range l.checked {
		if d.kind != KindChannel || !d.has("spec.rollout") {
			continue
		}
		var following map[string]*document // groups that follow this channel, for suggestions
		var hint string                    // what to do about a missing group
		seen := map[string]bool{}
		for i := range d.length("spec.rollout.stages") {
			groups := schema.IndexPath("spec.rollout.stages", i) + ".groups"
			for j := range d.length(groups) {
				p := schema.IndexPath(groups, j)
				g, _ := d.str(p)
				if seen[g] {
					continue // reported by the channel's own rules
				}
				seen[g] = true
				gd, defined := l.names[KindGroup][g]
				if !defined {
					if following == nil {
						// Once per channel: a stage may name thousands of missing groups.
						following = l.groupsFollowing(d.name)
						hint = suggest(KindGroup, l.names[KindGroup], l.suggestions)
						if len(following) > 0 {
							hint = strings.Replace(suggestion(KindGroup, following), "use a defined one", "use one that follows this channel", 1)
						}
					}
					l.fail(d, p, fmt.Sprintf("group %q is not defined; %s", g, hint))
					continue
				}
				if !gd.checked {
					continue
				}
				if ch, _ := gd.str("spec.channel"); ch != d.name {
					l.fail(d, p, fmt.Sprintf(
						"group %q follows channel %q (%s), not %q, so its agents never ask this channel; set the group's channel to %q or remove it from this stage",
						g, ch, gd.at("spec.channel"), d.name, d.name))
				}
			}
		}
	}
}

// groupsFollowing is the groups (that passed the schema) whose channel is channel.
func (l *loader) groupsFollowing(channel string) map[string]*document {
	out := map[string]*document{}
	for name, gd := range l.names[KindGroup] {
		if ch, _ := gd.str("spec.channel"); gd.checked && ch == channel {
			out[name] = gd
		}
	}
	return out
}
