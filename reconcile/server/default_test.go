package server_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"upkeep.dev/upkeep/reconcile"
)

// Teleport's proxy always has a channel named "default" and its install
// scripts ask for it: the channel the fleet marks spec.default answers on
// both Teleport routes, in the channel list and as its detail.
func TestDefaultChannelRoutes(t *testing.T) {
	tests := []struct {
		scenario string
		mark     string // the channel marked default; "" for none
		version  string // want /default/version; "" for 404
		critical string
	}{
		{"a channel marked default answers as Teleport's default", "hotfix", "v17.4.1", "yes"},
		{"another channel marked default answers instead", "stable/cloud", "v17.3.0", "no"},
		{"without a default channel the default routes are 404, never a guess", "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			st := testState(t)
			for _, c := range st.Channels {
				c.Default = c.Name == tt.mark
			}
			b := &fakeBackend{}
			b.snap.Store(reconcile.BuildSnapshot(st, "rev1", buildTime))
			s := start(t, b, nil)
			for _, prefix := range []string{"/v1/webapi/automaticupgrades/channel/default", "/v1/default"} {
				v := s.do(t, http.MethodGet, prefix+"/version")
				c := s.do(t, http.MethodGet, prefix+"/critical")
				if tt.version == "" {
					if v.code != http.StatusNotFound || !strings.Contains(v.body, "spec.default: true") || c.code != http.StatusNotFound {
						t.Errorf("%s: %d %q / %d %q, want 404 saying how to declare one", prefix, v.code, v.body, c.code, c.body)
					}
					continue
				}
				got, err := teleportVersion(v.body)
				if v.code != http.StatusOK || err != nil || got != tt.version {
					t.Errorf("%s/version = %d %q (%v), want %s", prefix, v.code, v.body, err, tt.version)
				}
				if c.code != http.StatusOK || c.body != tt.critical {
					t.Errorf("%s/critical = %d %q, want %s", prefix, c.code, c.body, tt.critical)
				}
			}
			var list struct {
				Channels []struct {
					Name    string `json:"name"`
					Default bool   `json:"default"`
				} `json:"channels"`
			}
			r := s.do(t, http.MethodGet, "/v1/channels")
			if err := json.Unmarshal([]byte(r.body), &list); err != nil {
				t.Fatal(err)
			}
			for _, c := range list.Channels {
				if c.Default != (c.Name == tt.mark) {
					t.Errorf("/v1/channels: %s default=%v", c.Name, c.Default)
				}
			}
			d := s.do(t, http.MethodGet, "/v1/channels/default")
			if tt.mark == "" {
				if d.code != http.StatusNotFound {
					t.Errorf("/v1/channels/default = %d, want 404", d.code)
				}
			} else if d.code != http.StatusOK || !strings.Contains(d.body, `"name":"`+tt.mark+`"`) {
				t.Errorf("/v1/channels/default = %d %s, want %s's detail", d.code, d.body, tt.mark)
			}
		})
	}
}
