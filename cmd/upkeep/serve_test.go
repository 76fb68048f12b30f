package main

import (
	"path/filepath"
	"testing"
)

func TestStoreURL(t *testing.T) {
	abs, err := filepath.Abs("state")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		scenario string
		f        serveFlags
		want     string
		err      bool
	}{
		{scenario: "--store wins over the state directory", f: serveFlags{store: "postgres://u@db/upkeep", stateDir: "/var/lib/upkeep"}, want: "postgres://u@db/upkeep"},
		{scenario: "the default is SQLite in the state directory", f: serveFlags{stateDir: "/var/lib/upkeep"}, want: "sqlite:///var/lib/upkeep/fleet.db"},
		{scenario: "a relative state directory is made absolute", f: serveFlags{stateDir: "state"}, want: "sqlite://" + abs + "/fleet.db"},
		{scenario: "no store and no state directory is a usage error", f: serveFlags{}, err: true},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			got, err := storeURL(tc.f)
			if (err != nil) != tc.err || got != tc.want {
				t.Errorf("storeURL = %q, %v; want %q (error %v)", got, err, tc.want, tc.err)
			}
			if tc.err && !isUsageError(err) {
				t.Errorf("%v is not a usage error", err)
			}
		})
	}
}

func TestDefaultStateDirFollowsSystemd(t *testing.T) {
	t.Setenv("STATE_DIRECTORY", "/var/lib/upkeep:/var/lib/other")
	if got := defaultStateDir(); got != "/var/lib/upkeep" {
		t.Errorf("defaultStateDir with StateDirectory= = %q", got)
	}
	t.Setenv("STATE_DIRECTORY", "")
	if got := defaultStateDir(); !filepath.IsAbs(got) {
		t.Errorf("defaultStateDir = %q, not absolute", got)
	}
}
