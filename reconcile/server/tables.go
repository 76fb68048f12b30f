package server

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"upkeep.dev/upkeep/reconcile"
	"upkeep.dev/upkeep/spec"
)

// tables are the per-snapshot response headers, built once when the
// backend starts serving a new snapshot, so that requests only look up.
type tables struct {
	snap         *reconcile.Snapshot
	channels     map[string]*channelEntry
	groups       map[string]*groupEntry
	channelsETag []string
	groupsETag   []string
	anyRollout   bool // some channel answers from a rollout table
}

type channelEntry struct {
	view                                  *reconcile.ChannelView
	versionETag, criticalETag, detailETag []string
	// rollout: the channel has rollout stages and serves a version, so
	// its version answer comes from the rollout's answer table. A channel
	// serving none ("none", withheld) answers none to everyone at once.
	rollout bool
}

type groupEntry struct {
	view                  *reconcile.GroupView
	jsonETag, systemdETag []string
	detailETag            []string
	// maxConcurrent is the group's spec.maxConcurrent (zero: unlimited).
	maxConcurrent spec.Quantity
}

// tables returns the tables of the backend's current snapshot, or nil when
// there is none yet. Two requests may race to build the tables of a new
// snapshot; both results are equal and either may be kept.
func (h *handler) tables() *tables {
	s := h.b.Snapshot()
	if s == nil {
		return nil
	}
	if t := h.cur.Load(); t != nil && t.snap == s {
		return t
	}
	t := buildTables(s)
	h.cur.Store(t)
	return t
}

// ETags: "<revision>" for documents of the whole snapshot that do not
// change within a revision, "<revision>-<kind>-<name>" for one resource's
// documents, plus a hash of the body for documents that also change with
// time (schedules, the group list).
func buildTables(s *reconcile.Snapshot) *tables {
	rev := etagSafe(s.Revision)
	t := &tables{
		snap:         s,
		channels:     make(map[string]*channelEntry, len(s.Channels())),
		groups:       make(map[string]*groupEntry, len(s.Groups())),
		channelsETag: etag(rev),
		groupsETag:   etag(rev, "groups", bodyHash(s.GroupsJSON)),
	}
	for _, c := range s.Channels() {
		name := etagSafe(c.Name)
		t.channels[c.Name] = &channelEntry{
			view:         c,
			versionETag:  etag(rev, "version", name),
			criticalETag: etag(rev, "critical", name),
			detailETag:   etag(rev, "channel", name),
			rollout:      c.Version != "" && s.State != nil && s.State.RolloutStages(c.Name) != nil,
		}
		t.anyRollout = t.anyRollout || t.channels[c.Name].rollout
	}
	// Teleport's "default" channel answers as the channel the fleet
	// declares (spec.default), on every route that takes a channel name.
	if s.State != nil {
		if dc := s.State.DefaultChannel(); dc != nil && t.channels[dc.Name] != nil {
			t.channels[spec.DefaultChannelName] = t.channels[dc.Name]
		}
	}
	for _, g := range s.Groups() {
		name := etagSafe(g.Name)
		t.groups[g.Name] = &groupEntry{
			view:        g,
			jsonETag:    etag(rev, "schedule", name, bodyHash(g.ScheduleJSON)),
			systemdETag: etag(rev, "schedule", name, bodyHash(g.ScheduleSystemd)),
			// The detail names the open and next windows, which move with time.
			detailETag: etag(rev, "group", name, bodyHash(g.JSON)),
		}
		if s.State != nil {
			if sg := s.State.Group(g.Name); sg != nil {
				t.groups[g.Name].maxConcurrent = sg.MaxConcurrent
			}
		}
	}
	return t
}

func etag(parts ...string) []string {
	return []string{`"` + strings.Join(parts, "-") + `"`}
}

func bodyHash(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:6])
}

// etagSafe returns s when every byte may stand in an entity tag (RFC 9110:
// %x21 / %x23-7E), else a hash of it, so a strange revision id cannot
// break the header.
func etagSafe(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c == '"' || c > 0x7e {
			return "h" + bodyHash([]byte(s))
		}
	}
	if s == "" {
		return "none"
	}
	return s
}
