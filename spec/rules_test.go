package spec

import (
	"errors"
	"testing"
)

func TestControlPlaneAdmits(t *testing.T) {
	cloud := &ControlPlane{Name: "cloud", Version: "17.2.3"}
	narrowed := &ControlPlane{Name: "cloud", Version: "17.2.3", Agents: ">= 16.2.0, < 17.2.0"}
	zero := &ControlPlane{Name: "lab", Version: "0.9.0"}
	tests := []struct {
		scenario string
		cp       *ControlPlane
		version  string
		reason   string // "" when admitted
		msg      string
	}{
		{"the control plane's own version is admitted", cloud, "17.2.3", "", ""},
		{"a leading v is accepted", cloud, "v17.0.0", "", ""},
		{"the first release of the previous major is admitted", cloud, "16.0.0", "", ""},
		{"a patch above the control plane is refused", cloud, "17.2.4", ReasonAboveControlPlane,
			`"17.2.4" is above control plane "cloud" version 17.2.3`},
		{"a prerelease of the next version is above", cloud, "17.3.0-rc.1", ReasonAboveControlPlane,
			`"17.3.0-rc.1" is above control plane "cloud" version 17.2.3`},
		{"two majors behind is refused", cloud, "15.99.0", ReasonBelowSupportedMajor,
			`"15.99.0" is below 16.0.0: agents may be at most one major version behind control plane "cloud" version 17.2.3`},
		{"a major-0 control plane admits 0.x", zero, "0.1.0", "", ""},
		{"inside the agents constraint", narrowed, "16.2.0", "", ""},
		{"below the agents constraint", narrowed, "16.1.9", ReasonOutsideAgentsAllowed,
			`"16.1.9" is outside control plane "cloud" agents constraint ">= 16.2.0, < 17.2.0"`},
		{"above the agents constraint but not the control plane", narrowed, "17.2.0", ReasonOutsideAgentsAllowed,
			`"17.2.0" is outside control plane "cloud" agents constraint ">= 16.2.0, < 17.2.0"`},
		{"not a version", cloud, "latest", ReasonInvalidVersion,
			`got "latest"; want a semantic version MAJOR.MINOR.PATCH such as "17.2.3"`},
		{"a control plane without a version", &ControlPlane{Name: "x", Version: ""}, "1.0.0", ReasonInvalidControlPlane,
			`control plane "x" has no valid version: got ""; want a semantic version MAJOR.MINOR.PATCH such as "17.2.3"`},
		{"a control plane with a broken constraint", &ControlPlane{Name: "x", Version: "2.0.0", Agents: "~> nope"}, "2.0.0", ReasonInvalidControlPlane,
			`control plane "x" has an invalid agents constraint "~> nope": improper constraint: "~> nope"`},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			err := tt.cp.Admits(tt.version)
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("Admits(%q) = %v, want nil", tt.version, err)
				}
				return
			}
			var ae *AdmitError
			if !errors.As(err, &ae) {
				t.Fatalf("Admits(%q) = %v, want an *AdmitError", tt.version, err)
			}
			if ae.Reason != tt.reason || ae.Error() != tt.msg {
				t.Errorf("Admits(%q) = %s: %s\nwant %s: %s", tt.version, ae.Reason, ae.Error(), tt.reason, tt.msg)
			}
		})
	}
}

func TestStateLookups(t *testing.T) {
	// Built by hand, out of order: lookups must not rely on Load's sorting.
	st := &State{
		ControlPlanes: []*ControlPlane{{Name: "onprem", Version: "v16.1.0"}, {Name: "cloud", Version: "17.2.3"}},
		Channels: []*Channel{
			{Name: "z", ControlPlane: "cloud", Version: "17.0.0"},
			{Name: "rolling", ControlPlane: "onprem", Follow: FollowControlPlane},
			{Name: "off", ControlPlane: "cloud", Version: NoVersion},
			{Name: "orphan", ControlPlane: "gone", Follow: FollowControlPlane},
		},
		Groups: []*Group{{Name: "b"}, {Name: "a"}},
	}
	if st.ControlPlane("cloud") != st.ControlPlanes[1] || st.ControlPlane("nope") != nil {
		t.Error("ControlPlane lookup")
	}
	if st.Channel("off") != st.Channels[2] || st.Channel("stable") != nil {
		t.Error("Channel lookup")
	}
	if st.Group("a") != st.Groups[1] || st.Group("c") != nil {
		t.Error("Group lookup")
	}
	for name, want := range map[string]string{"z": "17.0.0", "rolling": "16.1.0", "off": "", "orphan": ""} {
		if got := st.ResolvedVersion(st.Channel(name)); got != want {
			t.Errorf("ResolvedVersion(%s) = %q, want %q", name, got, want)
		}
	}
	if got := st.ResolvedVersion(nil); got != "" {
		t.Errorf("ResolvedVersion(nil) = %q", got)
	}
}

func TestErrorsSort(t *testing.T) {
	es := Errors{
		{Pos: Position{"b.yaml", 1, 1}, Msg: "x"},
		{Pos: Position{"a.yaml", 10, 2}, Path: "spec", Msg: "b"},
		{Pos: Position{"a.yaml", 10, 2}, Path: "spec", Msg: "a"},
		{Pos: Position{"a.yaml", 9, 30}, Path: "z", Msg: "z"},
		{Pos: Position{"a.yaml", 10, 1}, Path: "spec.version", Msg: "a"},
		{Pos: Position{"a.yaml", 10, 2}, Path: "metadata", Msg: "z"},
	}
	es.Sort()
	want := []string{
		"a.yaml:9:30: z: z",
		"a.yaml:10:1: spec.version: a",
		"a.yaml:10:2: metadata: z",
		"a.yaml:10:2: spec: a",
		"a.yaml:10:2: spec: b",
		"b.yaml:1:1: x",
	}
	for i, e := range es {
		if e.Error() != want[i] {
			t.Errorf("%d: %s, want %s", i, e.Error(), want[i])
		}
	}
}

func TestParentPath(t *testing.T) {
	for in, want := range map[string]string{
		"spec":                  "",
		"spec.version":          "spec",
		"spec.windows[0]":       "spec.windows",
		"spec.windows[0].start": "spec.windows[0]",
		`spec["a.b[1]"]`:        "spec",
		`spec["a.b"].c`:         `spec["a.b"]`,
		`["x"]`:                 "",
	} {
		if got := parentPath(in); got != want {
			t.Errorf("parentPath(%s) = %q, want %q", in, got, want)
		}
	}
}
