package kube

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"upkeep.dev/upkeep/reconcile"
	"upkeep.dev/upkeep/reconcile/calendar"
	"upkeep.dev/upkeep/sources/versionclient"
)

// VersionServer is what the updater asks about channels and groups;
// versionclient.Client is the real one.
type VersionServer interface {
	// TargetAs asks the channel's version as one workload (its identity
	// headers), since a rollout answers each agent by its stage and canary
	// status.
	TargetAs(ctx context.Context, channel string, id versionclient.Identity) (versionclient.Target, error)
	// CriticalAnswerAs asks the channel's critical flag as a group (only
	// the group is sent): a freeze of the group may hold it (Critical.Held).
	CriticalAnswerAs(ctx context.Context, channel string, id versionclient.Identity) (versionclient.Critical, error)
	Schedule(ctx context.Context, group string) ([]calendar.Interval, error)
	// GroupChannel is the channel the group follows (upkeep's API only).
	GroupChannel(ctx context.Context, group string) (string, error)
}

// ChannelInfo is a channel's answer as last fetched.
type ChannelInfo struct {
	Target   reconcile.Target
	Text     string // the target as reported: a version, "none", or "" when unknown
	Critical reconcile.Critical
	// CriticalHold is the server's freeze holding the critical update back
	// for the workload's group (Upkeep-Freeze); Critical is then Yes.
	CriticalHold *reconcile.FreezeHold
	At           time.Time
}

func (a ChannelInfo) same(b ChannelInfo) bool {
	return a.Text == b.Text && a.Critical == b.Critical && (a.Target.Err == nil) == (b.Target.Err == nil) &&
		sameHold(a.Target.Held, b.Target.Held) && sameFreeze(a.CriticalHold, b.CriticalHold)
}

func sameFreeze(a, b *reconcile.FreezeHold) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Rule == b.Rule && a.Freeze == b.Freeze && a.Until.Equal(b.Until)
}

func sameHold(a, b *reconcile.RolloutHold) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return *a == *b
}

// targetKey is one workload's question: a rollout answers each agent on its
// own, so targets are cached per channel and identity. The critical flag is
// cached per channel and group, since a group's freeze may hold it.
type targetKey struct {
	channel string
	id      versionclient.Identity
}

// criticalKey is a critical question: a channel, asked as a group.
type criticalKey struct{ channel, group string }

// criticalInfo is a channel's critical flag for a group as last fetched.
type criticalInfo struct {
	Critical reconcile.Critical
	Held     *reconcile.FreezeHold
}

// GroupInfo is a group's schedule as last fetched.
type GroupInfo struct {
	Windows []calendar.Interval
	Err     error
	At      time.Time
}

func (a GroupInfo) same(b GroupInfo) bool {
	return slices.Equal(a.Windows, b.Windows) && (a.Err == nil) == (b.Err == nil)
}

// GroupChannelInfo is the channel a group follows, as last fetched.
type GroupChannelInfo struct {
	Channel string
	Err     error
	At      time.Time
}

func (a GroupChannelInfo) same(b GroupChannelInfo) bool {
	return a.Channel == b.Channel && (a.Err == nil) == (b.Err == nil)
}

// serverCache asks the version server once per ttl for each workload's
// target (the answer is per agent while a rollout runs), once per channel
// for its critical flag and once per group: 200 Deployments on one channel
// cost 201 requests per poll, whatever the number of passes. Concurrent
// callers of a stale entry wait for one fetch.
type serverCache struct {
	srv VersionServer
	ttl time.Duration
	now func() time.Time

	mu        sync.Mutex
	channels  map[targetKey]*cacheEntry[ChannelInfo]
	criticals map[criticalKey]*cacheEntry[criticalInfo]
	groups    map[string]*cacheEntry[GroupInfo]
	// groupChannels are asked only for workloads without a channel annotation.
	groupChannels map[string]*cacheEntry[GroupChannelInfo]
}

type cacheEntry[T any] struct {
	mu       sync.Mutex
	val      T
	at       time.Time
	lastUsed time.Time
}

func newServerCache(srv VersionServer, ttl time.Duration, now func() time.Time) *serverCache {
	return &serverCache{srv: srv, ttl: ttl, now: now,
		channels: map[targetKey]*cacheEntry[ChannelInfo]{}, criticals: map[criticalKey]*cacheEntry[criticalInfo]{},
		groups:        map[string]*cacheEntry[GroupInfo]{},
		groupChannels: map[string]*cacheEntry[GroupChannelInfo]{}}
}

// refresh replaces the entry's value with a fresh fetch, unless ctx ended
// during it, and reports whether a value seen before has changed.
func (e *cacheEntry[T]) refresh(ctx context.Context, now time.Time, fetch func() T, same func(a, b T) bool) (changed bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	old, had := e.val, !e.at.IsZero()
	v := fetch()
	if ctx.Err() != nil {
		return false
	}
	e.val, e.at = v, now
	return had && !same(old, v)
}

func entry[K comparable, T any](c *serverCache, m map[K]*cacheEntry[T], key K, now time.Time) *cacheEntry[T] {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := m[key]
	if e == nil {
		e = &cacheEntry[T]{}
		m[key] = e
	}
	if !now.IsZero() {
		e.lastUsed = now
	}
	return e
}

// Channel returns the channel's target for the workload id and the
// channel's critical flag, fetching them when the cached answer is older
// than the ttl.
func (c *serverCache) Channel(ctx context.Context, channel string, id versionclient.Identity) ChannelInfo {
	now := c.now()
	key := targetKey{channel, id}
	e := entry(c, c.channels, key, now)
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.at.IsZero() && now.Sub(e.at) < c.ttl {
		return e.val
	}
	e.val, e.at = c.fetchChannel(ctx, key), now
	return e.val
}

func (c *serverCache) fetchChannel(ctx context.Context, key targetKey) ChannelInfo {
	info := ChannelInfo{At: c.now()}
	t, err := c.srv.TargetAs(ctx, key.channel, key.id)
	switch {
	case err != nil:
		info.Target = reconcile.Target{Err: err}
		return info
	case t.None:
		info.Target, info.Text = reconcile.Target{Version: "none"}, "none"
	default:
		info.Target, info.Text = reconcile.Target{Version: t.Version}, t.Version
	}
	info.Target.Held = t.Held
	crit := c.critical(ctx, criticalKey{key.channel, key.id.Group})
	info.Critical, info.CriticalHold = crit.Critical, crit.Held
	return info
}

// critical is the channel's critical flag for a group, asked once per ttl
// for all the workloads of the group that follow the channel (a refresh
// asks it again first). A hold by the group's freeze is a critical update
// held back: Yes, with Held.
func (c *serverCache) critical(ctx context.Context, key criticalKey) criticalInfo {
	now := c.now()
	e := entry(c, c.criticals, key, now)
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.at.IsZero() && now.Sub(e.at) < c.ttl {
		return e.val
	}
	v := criticalInfo{Critical: reconcile.CriticalUnknown}
	if crit, err := c.srv.CriticalAnswerAs(ctx, key.channel, versionclient.Identity{Group: key.group}); err == nil {
		v.Critical, v.Held = reconcile.CriticalNo, crit.Held
		if crit.Critical || crit.Held != nil {
			v.Critical = reconcile.CriticalYes
		}
	}
	if ctx.Err() == nil {
		e.val, e.at = v, now
	}
	return v
}

// Group returns the group's windows, fetching them when the cached answer
// is older than the ttl.
func (c *serverCache) Group(ctx context.Context, group string) GroupInfo {
	now := c.now()
	e := entry(c, c.groups, group, now)
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.at.IsZero() && now.Sub(e.at) < c.ttl {
		return e.val
	}
	ws, err := c.srv.Schedule(ctx, group)
	e.val, e.at = GroupInfo{Windows: ws, Err: err, At: now}, now
	return e.val
}

// GroupChannel returns the channel group follows, fetching it when the
// cached answer is older than the ttl.
func (c *serverCache) GroupChannel(ctx context.Context, group string) GroupChannelInfo {
	now := c.now()
	e := entry(c, c.groupChannels, group, now)
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.at.IsZero() && now.Sub(e.at) < c.ttl {
		return e.val
	}
	ch, err := c.srv.GroupChannel(ctx, group)
	e.val, e.at = GroupChannelInfo{Channel: ch, Err: err, At: now}, now
	return e.val
}

// Refresh fetches every channel and group asked for within forget, drops the
// others, and returns the names whose answer changed. A group whose channel
// changed counts as a changed group: its workloads follow the new channel.
func (c *serverCache) Refresh(ctx context.Context, forget time.Duration) (channels, groups []string) {
	now := c.now()
	keys, grNames, gcNames := c.live(now, forget)
	// Each channel's critical flag (per group) is asked again by the first
	// of its targets refreshed below, and reused by the others.
	c.mu.Lock()
	crits := make([]*cacheEntry[criticalInfo], 0, len(c.criticals))
	for _, e := range c.criticals {
		crits = append(crits, e)
	}
	c.mu.Unlock()
	for _, e := range crits {
		e.mu.Lock()
		e.at = time.Time{}
		e.mu.Unlock()
	}
	for _, key := range keys {
		if entry(c, c.channels, key, time.Time{}).refresh(ctx, now, func() ChannelInfo {
			return c.fetchChannel(ctx, key)
		}, ChannelInfo.same) && !slices.Contains(channels, key.channel) {
			channels = append(channels, key.channel)
		}
	}
	slices.Sort(channels)
	for _, name := range grNames {
		if entry(c, c.groups, name, time.Time{}).refresh(ctx, now, func() GroupInfo {
			ws, err := c.srv.Schedule(ctx, name)
			return GroupInfo{Windows: ws, Err: err, At: now}
		}, GroupInfo.same) {
			groups = append(groups, name)
		}
	}
	for _, name := range gcNames {
		if entry(c, c.groupChannels, name, time.Time{}).refresh(ctx, now, func() GroupChannelInfo {
			ch, err := c.srv.GroupChannel(ctx, name)
			return GroupChannelInfo{Channel: ch, Err: err, At: now}
		}, GroupChannelInfo.same) && !slices.Contains(groups, name) {
			groups = append(groups, name)
		}
	}
	slices.Sort(groups)
	return channels, groups
}

// live lists the names used within forget and drops the rest. entry() above
// refreshes lastUsed only for real callers; Refresh passes a zero time.
func (c *serverCache) live(now time.Time, forget time.Duration) (keys []targetKey, grNames, gcNames []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for key, e := range c.channels {
		if now.Sub(e.lastUsed) > forget {
			delete(c.channels, key)
			continue
		}
		keys = append(keys, key)
	}
	for key, e := range c.criticals {
		if now.Sub(e.lastUsed) > forget {
			delete(c.criticals, key)
		}
	}
	for name, e := range c.groups {
		if now.Sub(e.lastUsed) > forget {
			delete(c.groups, name)
			continue
		}
		grNames = append(grNames, name)
	}
	for name, e := range c.groupChannels {
		if now.Sub(e.lastUsed) > forget {
			delete(c.groupChannels, name)
			continue
		}
		gcNames = append(gcNames, name)
	}
	slices.SortFunc(keys, func(a, b targetKey) int {
		return strings.Compare(a.channel+"\x00"+a.id.Group+"\x00"+a.id.AgentID, b.channel+"\x00"+b.id.Group+"\x00"+b.id.AgentID)
	})
	slices.Sort(grNames)
	slices.Sort(gcNames)
	return keys, grNames, gcNames
}
