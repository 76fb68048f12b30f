package kube

import (
	"context"
	"slices"
	"sync"
	"time"

	"upkeep.dev/upkeep/reconcile"
	"upkeep.dev/upkeep/reconcile/calendar"
	"upkeep.dev/upkeep/sources/versionclient"
)

// VersionServer is what the updater asks about channels and groups;
// versionclient.Client is the real one.
type VersionServer interface {
	Target(ctx context.Context, channel string) (versionclient.Target, error)
	Critical(ctx context.Context, channel string) (bool, error)
	Schedule(ctx context.Context, group string) ([]calendar.Interval, error)
	// GroupChannel is the channel the group follows (upkeep's API only).
	GroupChannel(ctx context.Context, group string) (string, error)
}

// ChannelInfo is a channel's answer as last fetched.
type ChannelInfo struct {
	Target   reconcile.Target
	Text     string // the target as reported: a version, "none", or "" when unknown
	Critical reconcile.Critical
	At       time.Time
}

func (a ChannelInfo) same(b ChannelInfo) bool {
	return a.Text == b.Text && a.Critical == b.Critical && (a.Target.Err == nil) == (b.Target.Err == nil)
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

// serverCache asks the version server once per channel and group per ttl,
// however many workloads follow them: 200 Deployments on one channel cost
// two requests per poll, not 400 per pass. Concurrent callers of a stale
// entry wait for one fetch.
type serverCache struct {
	srv VersionServer
	ttl time.Duration
	now func() time.Time

	mu       sync.Mutex
	channels map[string]*cacheEntry[ChannelInfo]
	groups   map[string]*cacheEntry[GroupInfo]
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
		channels: map[string]*cacheEntry[ChannelInfo]{}, groups: map[string]*cacheEntry[GroupInfo]{},
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

func entry[T any](c *serverCache, m map[string]*cacheEntry[T], key string, now time.Time) *cacheEntry[T] {
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

// Channel returns the channel's target and critical flag, fetching them when
// the cached answer is older than the ttl.
func (c *serverCache) Channel(ctx context.Context, channel string) ChannelInfo {
	now := c.now()
	e := entry(c, c.channels, channel, now)
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.at.IsZero() && now.Sub(e.at) < c.ttl {
		return e.val
	}
	e.val, e.at = c.fetchChannel(ctx, channel), now
	return e.val
}

func (c *serverCache) fetchChannel(ctx context.Context, channel string) ChannelInfo {
	info := ChannelInfo{At: c.now()}
	t, err := c.srv.Target(ctx, channel)
	switch {
	case err != nil:
		info.Target = reconcile.Target{Err: err}
		return info
	case t.None:
		info.Target, info.Text = reconcile.Target{Version: "none"}, "none"
	default:
		info.Target, info.Text = reconcile.Target{Version: t.Version}, t.Version
	}
	info.Critical = reconcile.CriticalUnknown
	if crit, err := c.srv.Critical(ctx, channel); err == nil {
		info.Critical = reconcile.CriticalNo
		if crit {
			info.Critical = reconcile.CriticalYes
		}
	}
	return info
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
	chNames, grNames, gcNames := c.live(now, forget)
	for _, name := range chNames {
		if entry(c, c.channels, name, time.Time{}).refresh(ctx, now, func() ChannelInfo {
			return c.fetchChannel(ctx, name)
		}, ChannelInfo.same) {
			channels = append(channels, name)
		}
	}
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
func (c *serverCache) live(now time.Time, forget time.Duration) (chNames, grNames, gcNames []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for name, e := range c.channels {
		if now.Sub(e.lastUsed) > forget {
			delete(c.channels, name)
			continue
		}
		chNames = append(chNames, name)
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
	slices.Sort(chNames)
	slices.Sort(grNames)
	slices.Sort(gcNames)
	return chNames, grNames, gcNames
}
