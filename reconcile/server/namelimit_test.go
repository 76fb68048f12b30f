package server_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"testing/fstest"

	"upkeep.dev/upkeep/reconcile"
	"upkeep.dev/upkeep/reconcile/fleet"
	"upkeep.dev/upkeep/sources/versionclient"
	"upkeep.dev/upkeep/spec"
)

// TestNamesAtTheLimitWorkEverywhere: a fleet whose channel and group names
// are spec.MaxNameLength bytes validates, and every route, the report and
// lease APIs and the version client accept those names; names one byte
// longer are refused by each with a clear error (the loader's refusal, with
// file:line, is spec's TestLoadNameLengths).
func TestNamesAtTheLimitWorkEverywhere(t *testing.T) {
	ch := "stable/" + strings.Repeat("c", spec.MaxNameLength-len("stable/"))
	g := strings.Repeat("g", spec.MaxNameLength)
	st, errs := spec.Load(fstest.MapFS{"fleet.yaml": {Data: []byte(fmt.Sprintf(`apiVersion: upkeep.dev/v1alpha1
kind: ControlPlane
metadata: {name: cloud}
spec: {version: 17.4.2}
---
apiVersion: upkeep.dev/v1alpha1
kind: Channel
metadata: {name: %s}
spec: {controlPlane: cloud, version: 17.3.0}
---
apiVersion: upkeep.dev/v1alpha1
kind: Group
metadata: {name: %s}
spec: {channel: %s, timezone: UTC, windows: [{start: "02:00", duration: 4h}]}
`, ch, g, ch))}})
	if errs != nil {
		t.Fatalf("names of %d bytes do not validate: %v", spec.MaxNameLength, errs)
	}
	b := &fakeBackend{}
	b.snap.Store(reconcile.BuildSnapshot(st, "rev1", buildTime))
	b.status = reconcile.Status{Source: "test", Revision: "rev1", LastSync: buildTime, LastSuccess: buildTime}
	store, _ := openStore(t, fleet.Options{})
	s := startOn(t, store, b, nil)

	lease := func(group, channel string) response {
		return s.send(t, "POST", "/v1/leases", fmt.Sprintf(`{"agentId":"web-01","group":%q,"channel":%q,"version":"17.3.0"}`, group, channel), bearer(reportToken)...)
	}
	report := func(group, channel string) response {
		r := agentReport("web-01", group, "17.2.0", "healthy", reconcile.ActionWait)
		r.Channel = channel
		return s.send(t, "POST", "/v1/reports", reportJSON(t, r), bearer(reportToken)...)
	}
	for _, tt := range []struct {
		scenario string
		got      response
		want     int
	}{
		{"Teleport's version route", s.do(t, "GET", "/v1/webapi/automaticupgrades/channel/"+ch+"/version"), http.StatusOK},
		{"Teleport's critical route", s.do(t, "GET", "/v1/webapi/automaticupgrades/channel/"+ch+"/critical"), http.StatusOK},
		{"the group-scoped Teleport channel", s.do(t, "GET", "/v1/webapi/automaticupgrades/channel/"+spec.GroupChannelPrefix+g+"/version"), http.StatusOK},
		{"the channel detail", s.do(t, "GET", "/v1/channels/"+ch), http.StatusOK},
		{"the group detail", s.do(t, "GET", "/v1/groups/"+g), http.StatusOK},
		{"the group's schedule", s.do(t, "GET", "/v1/groups/"+g+"/schedule"), http.StatusOK},
		{"a report", report(g, ch), http.StatusAccepted},
		{"a lease", lease(g, ch), http.StatusOK},
		{"the fleet page of the group", s.send(t, "GET", "/v1/fleet?group="+g, "", bearer(reportToken)...), http.StatusOK},
	} {
		if tt.got.code != tt.want {
			t.Errorf("%s, names at the limit: %d %s, want %d", tt.scenario, tt.got.code, tt.got.body, tt.want)
		}
	}
	c, err := versionclient.New(s.URL, versionclient.Options{Group: g, AgentID: "web-01"})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := c.Target(context.Background(), ch); err != nil || got.Version != "17.3.0" {
		t.Errorf("version client, channel at the limit: %+v, %v", got, err)
	}
	if got, err := c.GroupChannel(context.Background(), g); err != nil || got != ch {
		t.Errorf("version client, group at the limit: %q, %v", got, err)
	}
	if _, err := c.Schedule(context.Background(), g); err != nil {
		t.Errorf("version client, schedule of a group at the limit: %v", err)
	}

	chOver, gOver := ch+"c", g+"g"
	for _, tt := range []struct {
		scenario string
		got      response
		want     string
	}{
		{"Teleport's version route", s.do(t, "GET", "/v1/webapi/automaticupgrades/channel/"+chOver+"/version"), "254 bytes, over the 253 allowed (limit name-length)"},
		{"the group-scoped Teleport channel", s.do(t, "GET", "/v1/webapi/automaticupgrades/channel/"+spec.GroupChannelPrefix+gOver+"/version"), "254 bytes, over the 253 allowed (limit name-length)"},
		{"the group detail", s.do(t, "GET", "/v1/groups/"+gOver), "254 bytes, over the 253 allowed (limit name-length)"},
		{"a report's group", report(gOver, ch), "group: 254 bytes, at most 253 allowed"},
		{"a report's channel", report(g, chOver), "channel: 254 bytes, at most 253 allowed"},
		{"a lease's group", lease(gOver, ch), "254 bytes, over the 253 allowed (limit name-length)"},
		{"a lease's channel", lease(g, chOver), "254 bytes, over the 253 allowed (limit name-length)"},
	} {
		if tt.got.code != http.StatusBadRequest || !strings.Contains(tt.got.body, tt.want) {
			t.Errorf("%s, a name one byte over: %d %s, want 400 saying %q", tt.scenario, tt.got.code, tt.got.body, tt.want)
		}
	}
	if err := (versionclient.Identity{AgentID: "web-01", Group: gOver}).Check(); err == nil || !strings.Contains(err.Error(), "limit name-length") {
		t.Errorf("version client, a group one byte over: %v", err)
	}
	if _, err := c.Target(context.Background(), chOver); err == nil {
		t.Errorf("version client, a channel one byte over: no error")
	} else {
		t.Logf("version client, a channel one byte over: %v", err)
	}
}
